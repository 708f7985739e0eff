#!/usr/bin/env bash
# Builds the Open vSwitch / OVN image the nauti-agent chart runs (OVN central and the per-node
# chassis) from Debian's packages installed on this machine (openvswitch-switch, ovn-central,
# ovn-host; tests/peers/install-debian.sh), without any daemon or registry: the programs the
# chart's scripts call, every shared library `ldd` names, the database schemas, and busybox for
# /bin/sh and the applets the scripts use (grep, awk, sleep), in one layer `from scratch`,
# written as an OCI archive without a reference name (import with `ctr images import --index-name`).
# Cached: rebuilt only when this script or the packages change (a stamp beside the archive).
# Usage: build-ovn-image.sh [ARCHIVE [NAME]]
#   defaults: $NAUTI_PEERS_DIR/images/ovn.oci.tar, localhost/nauti/ovn:bookworm
set -euo pipefail
PEERS_DIR=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
ARCHIVE=${1:-$PEERS_DIR/images/ovn.oci.tar}
NAME=${2:-localhost/nauti/ovn:bookworm}
mkdir -p "$(dirname "$ARCHIVE")"
packages=(openvswitch-common openvswitch-switch ovn-common ovn-central ovn-host busybox-static libc6 iproute2)
versions=$(dpkg-query -W -f='${Package}=${Version}\n' "${packages[@]}")
key=$({ cat "${BASH_SOURCE[0]}"; printf '%s\n' "$versions" "$NAME"; } | sha256sum | cut -c1-12)
stamp="$ARCHIVE.$key.stamp"
if [ -f "$ARCHIVE" ] && [ -f "$stamp" ]; then
  echo "ovn image: $NAME cached ($key)"
  exit 0
fi

work=$(mktemp -d /tmp/nauti-ovn-image.XXXXXX)
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
  bh rm --all >/dev/null 2>&1 || true
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

root="$work/rootfs"
mkdir -p "$root/etc" "$root/tmp" "$root/root" "$root/bin" \
  "$root/var/run/openvswitch" "$root/var/run/ovn" "$root/var/lib/ovn" "$root/var/log/openvswitch" \
  "$root/var/log/ovn" "$root/etc/openvswitch" "$root/etc/ovn"
chmod 1777 "$root/tmp"
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$root/etc/group"
printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
printf '127.0.0.1 localhost\n' >"$root/etc/hosts"

# Each program with every shared library it loads, at the same paths.
programs=(
  /usr/bin/ovsdb-tool /usr/sbin/ovsdb-server /usr/bin/ovs-vsctl /usr/sbin/ovs-vswitchd
  /usr/bin/ovs-appctl /usr/bin/ovs-ofctl /usr/bin/ovn-controller /usr/bin/ovn-northd
  /usr/bin/ovn-nbctl /usr/bin/ovn-sbctl /usr/bin/ovn-appctl /usr/bin/getent /usr/sbin/ip
)
for f in "${programs[@]}"; do
  mkdir -p "$root$(dirname "$f")"
  cp -L "$f" "$root$f"
  for lib in $(ldd "$f" | grep -o '/[^ ]*'); do
    mkdir -p "$root$(dirname "$lib")"
    [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
  done
done
mkdir -p "$root/usr/share/openvswitch" "$root/usr/share/ovn"
cp /usr/share/openvswitch/*.ovsschema "$root/usr/share/openvswitch/"
cp /usr/share/ovn/*.ovsschema "$root/usr/share/ovn/"
cp /bin/busybox "$root/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$root/$(dirname "$applet")"
  [ -e "$root/$applet" ] || ln -s /bin/busybox "$root/$applet"
done

tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$root" -cf "$work/layer.tar" .
c=$(bh from --quiet scratch)
bh add --quiet "$c" "$work/layer.tar" / >/dev/null
bh config --os linux --arch amd64 --created-by "tests/peers/build-ovn-image.sh" \
  --cmd '["/bin/sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  --label "io.nauti.image.name=$NAME" --label org.opencontainers.image.title=nauti-ovn \
  --label "org.opencontainers.image.version=$(dpkg-query -W -f='${Version}' ovn-common)" "$c"
rm -f "$ARCHIVE.tmp"
bh commit --quiet --format oci --timestamp 0 --rm "$c" "oci-archive:$ARCHIVE.tmp" >/dev/null
mv "$ARCHIVE.tmp" "$ARCHIVE"
rm -f "$ARCHIVE".*.stamp
touch "$stamp"
echo "ovn image: $NAME -> $ARCHIVE"
