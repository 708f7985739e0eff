#!/usr/bin/env bash
# Builds the local OCI images without any daemon and writes them as OCI archives:
#   OUT/pause.oci.tar    ($PAUSE_IMAGE,   default localhost/nauti/pause:3.10)   /pause, a static C program
#   OUT/busybox.oci.tar  ($BUSYBOX_IMAGE, default localhost/nauti/busybox:latest) Debian's busybox-static
# The archives carry no reference name (no org.opencontainers.image.ref.name): import them with
# `ctr images import --index-name <name> <tar>`; a plain import names nothing. (An archive that did
# carry the same name, imported with --index-name, gets a gc.expire label and is garbage-collected
# seconds later: so the name is given in one place only, the import.) Called by build.sh;
# usage: build-images.sh OUT
set -euo pipefail
HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
OUT=${1:?usage: build-images.sh OUT}
PAUSE_IMAGE=${PAUSE_IMAGE:-localhost/nauti/pause:3.10}
BUSYBOX_IMAGE=${BUSYBOX_IMAGE:-localhost/nauti/busybox:latest}
mkdir -p "$OUT"

work=$(mktemp -d /tmp/nauti-images.XXXXXX)
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
  bh rm --all >/dev/null 2>&1 || true
  # vfs leaves plain directories, but a failed build may leave the storage's own mounts behind.
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# image NAME ROOTFS_DIR ARCHIVE CONFIG_ARGS...: one layer from ROOTFS_DIR, written as an OCI archive
# without a reference name (NAME only labels the build).
image() {
  local name=$1 rootfs=$2 archive=$3
  shift 3
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$rootfs" -cf "$work/layer.tar" .
  local c
  c=$(bh from --quiet scratch)
  bh add --quiet "$c" "$work/layer.tar" / >/dev/null
  bh config --os linux --arch amd64 --created-by "tests/peers/build-images.sh" "$@" "$c"
  rm -f "$archive.tmp"
  bh config --label "io.nauti.image.name=$name" "$c"
  bh commit --quiet --format oci --timestamp 0 --rm "$c" "oci-archive:$archive.tmp" >/dev/null
  if tar -xOf "$archive.tmp" index.json | grep -q '"org.opencontainers.image.ref.name"'; then
    echo "build-images: $archive carries a reference name" >&2
    exit 1
  fi
  mv "$archive.tmp" "$archive"
  rm -f "$work/layer.tar"
}

# pause: a static binary that holds the sandbox's namespaces and exits on SIGTERM/SIGINT.
mkdir -p "$work/pause"
gcc -static -Os -s -o "$work/pause/pause" "$HERE/pause.c"
image "$PAUSE_IMAGE" "$work/pause" "$OUT/pause.oci.tar" \
  --entrypoint '["/pause"]' --cmd '' --user 65535:65535 \
  --label org.opencontainers.image.title=nauti-pause

# busybox: /bin/busybox plus one symlink per applet, and the few files a shell expects.
bb="$work/busybox"
mkdir -p "$bb/bin" "$bb/sbin" "$bb/usr/bin" "$bb/usr/sbin" "$bb/etc" "$bb/tmp" "$bb/root" "$bb/var/run"
chmod 1777 "$bb/tmp"
cp /bin/busybox "$bb/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ "$applet" = bin/busybox ] && continue
  [ -e "$bb/$applet" ] || ln -s /bin/busybox "$bb/$applet"
done
printf 'root:x:0:0:root:/root:/bin/sh\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$bb/etc/passwd"
printf 'root:x:0:\nnogroup:x:65534:\n' >"$bb/etc/group"
image "$BUSYBOX_IMAGE" "$bb" "$OUT/busybox.oci.tar" \
  --cmd '["/bin/sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  --label org.opencontainers.image.title=nauti-busybox \
  --label "org.opencontainers.image.version=$(dpkg-query -W -f='${Version}' busybox-static)"
echo "images: $PAUSE_IMAGE -> $OUT/pause.oci.tar, $BUSYBOX_IMAGE -> $OUT/busybox.oci.tar"
