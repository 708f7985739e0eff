#!/usr/bin/env bash
# Builds the real peers the test-bed and the demo run against, once per version, into a cache folder
# outside the checkout, and the local OCI images (pause, busybox). Idempotent: when everything is
# cached it only checks stamps, refreshes the bin/ links and prints the versions.
#
#   $NAUTI_PEERS_DIR            default $HOME/.cache/nauti-peers
#     bin/<command>             symlinks to the current build of each peer (put this on PATH)
#     store/<peer>-<version>-<key>/   one build; <key> hashes the pinned module and the build flags,
#                               so a version bump (or a flag change) builds a new folder
#     images/pause.oci.tar      localhost/nauti/pause:3.10
#     images/busybox.oci.tar    localhost/nauti/busybox:latest
#
# Go peers come from the Go module proxy through pinned modules under tests/peers/go/<peer>/
# (go.mod + go.sum + tools.go). Each is built with -trimpath and CGO_ENABLED=0.
# See tests/README.md, section "Peers".
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
PEERS_DIR="${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}"
BIN="$PEERS_DIR/bin"
STORE="$PEERS_DIR/store"
IMAGES="$PEERS_DIR/images"
mkdir -p "$BIN" "$STORE" "$IMAGES"
# One build at a time per cache (two checkouts or sessions may share it).
exec 9>"$PEERS_DIR/.lock"
flock 9

if ! command -v go >/dev/null; then
  export PATH="/usr/local/go/bin:$PATH"
fi
command -v go >/dev/null || { echo "go not found (install Go >= 1.26.6 at /usr/local/go)" >&2; exit 1; }
# Every pinned module says `go 1.26.6` at least; an older local Go fetches that toolchain from the
# module proxy when GOTOOLCHAIN allows it (the default "auto").
export CGO_ENABLED=0
export GOFLAGS="-buildvcs=false -mod=readonly"

log() { printf 'peers: %s\n' "$*" >&2; }

# key FILE... : a short hash of the given files and of the extra words in $KEY_EXTRA.
key() { { cat "$@"; printf '%s\n' "$KEY_EXTRA"; } | sha256sum | cut -c1-12; }

# go_peer NAME VERSION MODDIR TAGS LDFLAGS PACKAGE...
# Builds every PACKAGE of the module in tests/peers/go/MODDIR in one `go build` (they share the
# compilation of common packages) into store/NAME-VERSION-KEY, then links the commands into bin/.
go_peer() {
  local name=$1 version=$2 moddir="$HERE/go/$3" tags=$4 ldflags=$5
  shift 5
  local KEY_EXTRA="$name $version tags=$tags ldflags=$ldflags pkgs=$*"
  local k out
  k=$(key "$moddir/go.mod" "$moddir/go.sum" "$moddir/tools.go")
  out="$STORE/$name-$version-$k"
  if [ ! -f "$out/.complete" ]; then
    log "building $name $version ($*)"
    local start=$SECONDS
    rm -rf "$out.tmp" && mkdir -p "$out.tmp"
    (cd "$moddir" && go build -trimpath ${tags:+-tags "$tags"} -ldflags "$ldflags" -o "$out.tmp/" "$@")
    rm -rf "$out" && mv "$out.tmp" "$out"
    touch "$out/.complete"
    log "built $name $version in $((SECONDS - start))s"
  fi
  local f
  for f in "$out"/*; do
    ln -sfn "$f" "$BIN/$(basename "$f")"
  done
}

# ---------------------------------------------------------------------------------------------
# containerd (daemon, ctr, runc shim). CGO_ENABLED=0 leaves the btrfs snapshotter out (it needs cgo
# and Debian's btrfs headers); no_btrfs says so explicitly. NRI is built in and on by default.
CONTAINERD_VERSION=v2.4.2
CTRD_PKG=github.com/containerd/containerd/v2
go_peer containerd "$CONTAINERD_VERSION" containerd "urfave_cli_no_docs no_btrfs" \
  "-s -w -X $CTRD_PKG/version.Version=$CONTAINERD_VERSION -X $CTRD_PKG/version.Revision=$CONTAINERD_VERSION -X $CTRD_PKG/version.Package=$CTRD_PKG" \
  $CTRD_PKG/cmd/containerd $CTRD_PKG/cmd/ctr $CTRD_PKG/cmd/containerd-shim-runc-v2

# crictl
CRICTL_VERSION=v1.37.0
go_peer cri-tools "$CRICTL_VERSION" cri-tools "" \
  "-s -w -X sigs.k8s.io/cri-tools/pkg/version.Version=${CRICTL_VERSION#v}" \
  sigs.k8s.io/cri-tools/cmd/crictl

# Kubernetes: all commands in one `go build` (they share most of their packages).
K8S_VERSION=v1.37.2
k8s_ld="-s -w"
for p in k8s.io/component-base/version k8s.io/client-go/pkg/version; do
  k8s_ld+=" -X $p.gitVersion=$K8S_VERSION -X $p.gitMajor=1 -X $p.gitMinor=37 -X $p.gitTreeState=clean"
  k8s_ld+=" -X $p.gitCommit=$K8S_VERSION -X $p.buildDate=1970-01-01T00:00:00Z"
done
go_peer kubernetes "$K8S_VERSION" kubernetes "" "$k8s_ld" \
  k8s.io/kubernetes/cmd/kube-apiserver k8s.io/kubernetes/cmd/kube-controller-manager \
  k8s.io/kubernetes/cmd/kube-scheduler k8s.io/kubernetes/cmd/kube-proxy \
  k8s.io/kubernetes/cmd/kubelet k8s.io/kubernetes/cmd/kubectl

# helm v3 (what `helm install` users run); its lint/chartutil Kubernetes version follows its client-go.
HELM_VERSION=v3.22.0
helm_k8s_minor=$(awk '$1 == "k8s.io/client-go" && $2 ~ /^v0\./ {split($2, v, "."); print v[2]; exit}' "$HERE/go/helm/go.mod")
go_peer helm "$HELM_VERSION" helm "" \
  "-s -w -X helm.sh/helm/v3/internal/version.version=$HELM_VERSION -X helm.sh/helm/v3/internal/version.gitTreeState=clean -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/lint/rules.k8sVersionMinor=${helm_k8s_minor} -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMajor=1 -X helm.sh/helm/v3/pkg/chartutil.k8sVersionMinor=${helm_k8s_minor}" \
  helm.sh/helm/v3/cmd/helm

# CoreDNS (its version is a constant of the module).
COREDNS_VERSION=v1.15.0
go_peer coredns "$COREDNS_VERSION" coredns "" \
  "-s -w -X github.com/coredns/coredns/coremain.GitCommit=$COREDNS_VERSION" \
  github.com/coredns/coredns

# wireguard-go: the module has no tags; this is the newest pseudo-version the proxy lists.
WIREGUARD_GO_VERSION=v0.0.0-20260522210424-ecfc5a8d5446
go_peer wireguard-go "$WIREGUARD_GO_VERSION" wireguard-go "" "-s -w" golang.zx2c4.com/wireguard
# `go build` names it after the module's last element.
if [ -e "$BIN/wireguard" ]; then
  ln -sfn "$(readlink "$BIN/wireguard")" "$BIN/wireguard-go" && rm -f "$BIN/wireguard"
fi

# ---------------------------------------------------------------------------------------------
# Local OCI images, built without a daemon (buildah, vfs storage in a throw-away root).
PAUSE_IMAGE=localhost/nauti/pause:3.10
BUSYBOX_IMAGE=localhost/nauti/busybox:latest
busybox_version=$(dpkg-query -W -f='${Version}' busybox-static)
KEY_EXTRA="busybox-static=$busybox_version $PAUSE_IMAGE $BUSYBOX_IMAGE"
images_key=$(key "$HERE/pause.c" "$HERE/build-images.sh")
if [ ! -f "$IMAGES/.complete-$images_key" ] || [ ! -f "$IMAGES/pause.oci.tar" ] || [ ! -f "$IMAGES/busybox.oci.tar" ]; then
  log "building OCI images"
  PAUSE_IMAGE=$PAUSE_IMAGE BUSYBOX_IMAGE=$BUSYBOX_IMAGE bash "$HERE/build-images.sh" "$IMAGES"
  rm -f "$IMAGES"/.complete-*
  touch "$IMAGES/.complete-$images_key"
fi

# ---------------------------------------------------------------------------------------------
# One line per peer, from the binary's own version command.
first() { head -n1 | tr -s ' \t' ' '; }
v() { local name=$1; shift; printf '%-24s %s\n' "$name" "$("$@" 2>&1 | first)"; }
export PATH="$BIN:$PATH"
echo "peers in $PEERS_DIR:"
v containerd containerd --version
v ctr ctr --version
printf '%-24s %s\n' containerd-shim-runc-v2 "$(containerd-shim-runc-v2 -v | sed -n 's/^ *Version: *//p')"
v crictl crictl --version
v kube-apiserver kube-apiserver --version
v kube-controller-manager kube-controller-manager --version
v kube-scheduler kube-scheduler --version
v kube-proxy kube-proxy --version
v kubelet kubelet --version
v kubectl kubectl version --client
v helm helm version --short
v coredns coredns -version
v wireguard-go wireguard-go --version
v etcd etcd --version
v runc runc --version
printf '%-24s %s\n' cni-plugins "/usr/lib/cni (Debian containernetworking-plugins $(dpkg-query -W -f='${Version}' containernetworking-plugins))"
printf '%-24s %s (%s)\n' pause-image "$PAUSE_IMAGE" "$IMAGES/pause.oci.tar"
printf '%-24s %s (%s)\n' busybox-image "$BUSYBOX_IMAGE" "$IMAGES/busybox.oci.tar"
