#!/usr/bin/env bash
# Builds images of Nauti's own daemons for the cluster test-bed: each binary built statically
# (`-C target-feature=+crt-static`, glibc, as tests/bench/ipam.sh builds nauti-ipam) and put alone
# into an image `from scratch`, written as an OCI archive without a reference name:
#   OUT/<binary>.oci.tar   localhost/nauti/<binary>:dev   (entrypoint /<binary>)
# OUT defaults to $NAUTI_PEERS_DIR/images/nauti. An archive is rewritten only when its binary
# changed (a stamp per binary holds the binary's sha256), so a second run costs one `cargo build`.
# Binaries: all of Nauti's daemons by default, or the ones named after OUT.
# Usage: build-nauti-images.sh [OUT [BINARY...]]
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
PEERS_DIR=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
OUT=${1:-$PEERS_DIR/images/nauti}
shift || true
# binary:package of every program that runs in a pod: the daemons, and nautictl (the
# nauti-agent chart's uninstall hook).
ALL=(nauti-nri:nauti-nri nauti-ipam:nauti-ipam nauti-ovnmaster:nauti-ovn octopus:nauti-octopus crossdns:nauti-crossdns nautictl:nautictl)
wanted=("$@")
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
triple=$(rustc -vV | sed -n 's/^host: //p')
mkdir -p "$OUT"

selected=()
for entry in "${ALL[@]}"; do
  bin=${entry%%:*}
  if [ "${#wanted[@]}" -eq 0 ] || printf '%s\n' "${wanted[@]}" | grep -qx "$bin"; then
    selected+=("$entry")
  fi
done
[ "${#selected[@]}" -gt 0 ] || { echo "build-nauti-images: nothing selected from: ${ALL[*]}" >&2; exit 1; }

args=()
for entry in "${selected[@]}"; do args+=(-p "${entry#*:}" --bin "${entry%%:*}"); done
# --target keeps the static artifacts apart from the default build and RUSTFLAGS off build scripts.
RUSTFLAGS="-C target-feature=+crt-static" cargo build -q --release --target "$triple" "${args[@]}"

work=$(mktemp -d /tmp/nauti-own-images.XXXXXX)
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
  bh rm --all >/dev/null 2>&1 || true
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

for entry in "${selected[@]}"; do
  bin=${entry%%:*}
  built="$CARGO_TARGET_DIR/$triple/release/$bin"
  sum=$(sha256sum <"$built" | cut -c1-64)
  if [ -f "$OUT/$bin.oci.tar" ] && [ "$(cat "$OUT/.$bin.sha256" 2>/dev/null)" = "$sum" ]; then
    echo "nauti images: $bin cached"
    continue
  fi
  # A static-pie still has a dynamic section (ldd calls it "statically linked"); a dynamic binary
  # names its loader in PT_INTERP.
  if readelf -l "$built" | grep -q 'program interpreter'; then
    echo "build-nauti-images: $bin is not static" >&2
    exit 1
  fi
  root="$work/$bin"
  mkdir -p "$root/tmp"
  chmod 1777 "$root/tmp"
  install -m 0755 "$built" "$root/$bin"
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$root" -cf "$work/layer.tar" .
  c=$(bh from --quiet scratch)
  bh add --quiet "$c" "$work/layer.tar" / >/dev/null
  bh config --os linux --arch amd64 --created-by "tests/peers/build-nauti-images.sh" \
    --entrypoint "[\"/$bin\"]" --cmd '' \
    --label "io.nauti.image.name=localhost/nauti/$bin:dev" \
    --label "org.opencontainers.image.title=$bin" --label "org.opencontainers.image.revision=$sum" "$c"
  rm -f "$OUT/$bin.oci.tar.tmp"
  bh commit --quiet --format oci --timestamp 0 --rm "$c" "oci-archive:$OUT/$bin.oci.tar.tmp" >/dev/null
  mv "$OUT/$bin.oci.tar.tmp" "$OUT/$bin.oci.tar"
  echo "$sum" >"$OUT/.$bin.sha256"
  rm -f "$work/layer.tar"
  echo "nauti images: localhost/nauti/$bin:dev -> $OUT/$bin.oci.tar"
done
