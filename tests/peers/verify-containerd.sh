#!/usr/bin/env bash
# Checks the built peers end to end, as root, in a throw-away node: containerd 2.4 (config rendered
# from containerd-config.toml.tmpl) in its own network namespace and temp root, the local images
# imported with `ctr images import --index-name`, a busybox container run with `ctr run` (Debian's
# runc), then a CRI pod sandbox (local pause image, Debian's bridge + host-local CNI) and a busybox
# container in it through crictl, with an NRI socket present. Cleans up everything it made, also on
# failure. Not part of `make peers`; run it after a version bump:  bash tests/peers/verify-containerd.sh
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}"
BIN="$PEERS_DIR/bin"
SNAPSHOTTER=${SNAPSHOTTER:-overlayfs}
export PATH="$BIN:/usr/sbin:/sbin:$PATH"
[ "$(id -u)" = 0 ] || { echo "verify-containerd: needs root" >&2; exit 1; }

work=$(mktemp -d "${TMPDIR:-/tmp}/nauti-ctrd.XXXXXX")
ns="nauti-verify-$$"
sock="$work/containerd.sock"
pid=""
cleanup() {
  set +e
  if [ -S "$sock" ]; then
    crictl -r "unix://$sock" rmp -fa >/dev/null 2>&1
    for c in $(ctr -a "$sock" -n default tasks ls -q 2>/dev/null); do ctr -a "$sock" -n default tasks kill -s KILL "$c"; done
    sleep 0.5
    ctr -a "$sock" -n default containers rm $(ctr -a "$sock" -n default containers ls -q 2>/dev/null) >/dev/null 2>&1
  fi
  [ -n "$pid" ] && kill "$pid" 2>/dev/null && wait "$pid" 2>/dev/null
  # Shims outlive the daemon by design: end the ones of this node (their cwd is in $work).
  for p in $(pgrep -f containerd-shim-runc-v2); do
    case "$(readlink "/proc/$p/cwd" 2>/dev/null)" in "$work"*) kill -9 "$p" ;; esac
  done
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l
  ip netns del "$ns" 2>/dev/null
  rm -rf "$work"
}
trap cleanup EXIT

mkdir -p "$work"/{root,state,cni,nri/plugins,nri/conf}
sed -e "s|{{ROOT}}|$work/root|g" -e "s|{{STATE}}|$work/state|g" -e "s|{{SOCKET}}|$sock|g" \
  -e "s|{{SNAPSHOTTER}}|$SNAPSHOTTER|g" -e "s|{{SANDBOX_IMAGE}}|localhost/nauti/pause:3.10|g" \
  -e "s|{{SHIM}}|$BIN/containerd-shim-runc-v2|g" -e "s|{{RUNC}}|$(command -v runc)|g" \
  -e "s|{{CNI_BIN_DIR}}|/usr/lib/cni|g" -e "s|{{CNI_CONF_DIR}}|$work/cni|g" \
  -e "s|{{NRI_SOCKET}}|$work/nri/nri.sock|g" -e "s|{{NRI_PLUGIN_DIR}}|$work/nri/plugins|g" \
  -e "s|{{NRI_CONF_DIR}}|$work/nri/conf|g" "$HERE/containerd-config.toml.tmpl" >"$work/config.toml"
# The node's primary pod network; the bridge lives in the node's netns, not in the machine's.
cat >"$work/cni/10-primary.conflist" <<'EOF'
{"cniVersion": "1.0.0", "name": "primary", "plugins": [
  {"type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
   "ipam": {"type": "host-local", "ranges": [[{"subnet": "10.88.0.0/24"}]], "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": "WORK/cni-ipam"}}]}
EOF
sed -i "s|WORK|$work|" "$work/cni/10-primary.conflist"

ip netns add "$ns"
ip -n "$ns" link set lo up
nsenter --net="/run/netns/$ns" containerd --config "$work/config.toml" >"$work/containerd.log" 2>&1 &
pid=$!
for _ in $(seq 100); do [ -S "$sock" ] && ctr -a "$sock" version >/dev/null 2>&1 && break; sleep 0.1; done
ctr -a "$sock" version | sed -n 's/^ *Version: */containerd server: /p' | tail -1
[ -S "$work/nri/nri.sock" ] || { echo "verify-containerd: no NRI socket at $work/nri/nri.sock" >&2; exit 1; }
echo "nri socket: $work/nri/nri.sock"

for img in pause:3.10 busybox:latest; do
  name=${img%%:*}
  ctr -a "$sock" -n default images import --index-name "localhost/nauti/$img" "$PEERS_DIR/images/$name.oci.tar" >/dev/null
  ctr -a "$sock" -n k8s.io images import --index-name "localhost/nauti/$img" "$PEERS_DIR/images/$name.oci.tar" >/dev/null
done
ctr -a "$sock" -n default images ls -q

out=$(ctr -a "$sock" -n default run --rm --snapshotter "$SNAPSHOTTER" localhost/nauti/busybox:latest verify-ctr \
  /bin/sh -c 'echo busybox says hello from $(uname -s)')
echo "ctr run: $out"

cat >"$work/pod.json" <<EOF
{"metadata": {"name": "verify", "namespace": "default", "uid": "verify-$$", "attempt": 0},
 "log_directory": "$work/logs", "linux": {}}
EOF
cat >"$work/ctr.json" <<'EOF'
{"metadata": {"name": "sh"}, "image": {"image": "localhost/nauti/busybox:latest"},
 "command": ["/bin/sh", "-c", "sleep 3600"], "log_path": "sh.log", "linux": {}}
EOF
export CONTAINER_RUNTIME_ENDPOINT="unix://$sock" IMAGE_SERVICE_ENDPOINT="unix://$sock"
crictl info >/dev/null
pod=$(crictl runp "$work/pod.json")
ctr_id=$(crictl create "$pod" "$work/ctr.json" "$work/pod.json")
crictl start "$ctr_id" >/dev/null
echo "crictl pod ip: $(crictl inspectp -o go-template --template '{{.status.network.ip}}' "$pod")"
# exec goes through the CRI stream server, which listens on 127.0.0.1 of the node's netns.
out=$(nsenter --net="/run/netns/$ns" crictl exec "$ctr_id" /bin/sh -c 'ip -4 -o addr show eth0 | tr -s " " | cut -d" " -f2,4')
[ -n "$out" ] || { echo "verify-containerd: crictl exec printed nothing" >&2; exit 1; }
echo "crictl exec: $out"
crictl stop "$ctr_id" >/dev/null && crictl rm "$ctr_id" >/dev/null
crictl stopp "$pod" >/dev/null && crictl rmp "$pod" >/dev/null
echo "verify-containerd: ok (snapshotter $SNAPSHOTTER)"
