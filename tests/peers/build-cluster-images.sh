#!/usr/bin/env bash
# Builds the images the multi-cluster test-bed (`ClusterBed`) runs as pods, without any daemon or
# registry, as OCI archives without a reference name (import with `ctr images import --index-name`):
#   OUT/nginx.oci.tar    localhost/nauti/nginx:bookworm    Debian's nginx on :80, a page naming the pod
#   OUT/tools.oci.tar    localhost/nauti/tools:bookworm    Debian's curl, dig, nc, plus busybox
#   OUT/coredns.oci.tar  localhost/nauti/coredns:<version> the coredns that `make peers` built
# Each is `from scratch`: the binaries, the shared libraries `ldd` names, and their data files.
# Cached: rebuilt only when this script, the Debian packages or the coredns binary change (a stamp
# `.cluster-complete-<key>` in OUT). Run by `make peers` after build.sh;
# usage: build-cluster-images.sh [OUT [COREDNS_BINARY]] (defaults: $NAUTI_PEERS_DIR/images, .../bin/coredns)
set -euo pipefail
PEERS_DIR=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
OUT=${1:-$PEERS_DIR/images}
COREDNS=${2:-$PEERS_DIR/bin/coredns}
mkdir -p "$OUT"
versions=$(dpkg-query -W -f='${Package}=${Version}\n' nginx curl bind9-dnsutils netcat-openbsd busybox-static libc6)
key=$({ cat "${BASH_SOURCE[0]}"; printf '%s\n' "$versions"; sha256sum <"$COREDNS"; } | sha256sum | cut -c1-12)
if [ -f "$OUT/.cluster-complete-$key" ] && [ -f "$OUT/nginx.oci.tar" ] && [ -f "$OUT/tools.oci.tar" ] && [ -f "$OUT/coredns.oci.tar" ]; then
  echo "cluster images: cached ($key)"
  exit 0
fi

work=$(mktemp -d /tmp/nauti-cluster-images.XXXXXX)
bh() { buildah --root "$work/storage" --runroot "$work/run" --storage-driver vfs "$@"; }
cleanup() {
  bh rm --all >/dev/null 2>&1 || true
  grep -o " $work[^ ]*" /proc/mounts | sort -r | xargs -r -n1 umount -l 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT

# image NAME ROOTFS ARCHIVE CONFIG_ARGS...: one layer, no reference name (as build-images.sh).
image() {
  local name=$1 rootfs=$2 archive=$3
  shift 3
  tar --numeric-owner --owner=0 --group=0 --mtime=@0 --sort=name -C "$rootfs" -cf "$work/layer.tar" .
  local c
  c=$(bh from --quiet scratch)
  bh add --quiet "$c" "$work/layer.tar" / >/dev/null
  bh config --os linux --arch amd64 --created-by "tests/peers/build-cluster-images.sh" "$@" "$c"
  bh config --label "io.nauti.image.name=$name" "$c"
  rm -f "$archive.tmp"
  bh commit --quiet --format oci --timestamp 0 --rm "$c" "oci-archive:$archive.tmp" >/dev/null
  mv "$archive.tmp" "$archive"
  rm -f "$work/layer.tar"
}

# with_libs ROOTFS BINARY...: copies each binary and every shared library it loads (ldd), keeping paths.
with_libs() {
  local root=$1
  shift
  local f lib
  for f in "$@"; do
    mkdir -p "$root$(dirname "$f")"
    cp -L "$f" "$root$f"
    for lib in $(ldd "$f" | grep -o '/[^ ]*'); do
      mkdir -p "$root$(dirname "$lib")"
      [ -e "$root$lib" ] || cp -L "$lib" "$root$lib"
    done
  done
}

# base ROOTFS: the files a process expects (users, groups, hosts, a writable /tmp).
base() {
  local root=$1
  mkdir -p "$root/etc" "$root/tmp" "$root/root" "$root/var/run"
  chmod 1777 "$root/tmp"
  printf 'root:x:0:0:root:/root:/bin/sh\nwww-data:x:33:33:www-data:/var/www:/bin/false\nnobody:x:65534:65534:nobody:/nonexistent:/bin/false\n' >"$root/etc/passwd"
  printf 'root:x:0:\nwww-data:x:33:\nnogroup:x:65534:\n' >"$root/etc/group"
  printf 'passwd: files\ngroup: files\nhosts: files dns\n' >"$root/etc/nsswitch.conf"
  printf '127.0.0.1 localhost\n' >"$root/etc/hosts"
}

# nginx: serves a page that names the pod (HOSTNAME is the pod name), so a test sees which backend answered.
ng="$work/nginx"
base "$ng"
with_libs "$ng" /usr/sbin/nginx
mkdir -p "$ng/etc/nginx" "$ng/var/lib/nginx" "$ng/var/log/nginx" "$ng/usr/share/nginx/html"
cp /etc/nginx/mime.types "$ng/etc/nginx/mime.types"
cat >"$ng/etc/nginx/nginx.conf" <<'EOF'
daemon off;
user root;
worker_processes 1;
pid /tmp/nginx.pid;
error_log stderr warn;
env HOSTNAME;
events { worker_connections 256; }
http {
  include /etc/nginx/mime.types;
  access_log off;
  client_body_temp_path /tmp/body;
  proxy_temp_path /tmp/proxy;
  fastcgi_temp_path /tmp/fastcgi;
  uwsgi_temp_path /tmp/uwsgi;
  scgi_temp_path /tmp/scgi;
  server {
    listen 80 default_server;
    root /usr/share/nginx/html;
    location = /hostname { default_type text/plain; return 200 "$hostname\n"; }
  }
}
EOF
printf '<!DOCTYPE html>\n<html><head><title>Welcome to nginx!</title></head><body><h1>Welcome to nginx!</h1></body></html>\n' \
  >"$ng/usr/share/nginx/html/index.html"
image localhost/nauti/nginx:bookworm "$ng" "$OUT/nginx.oci.tar" \
  --entrypoint '["/usr/sbin/nginx"]' --cmd '' --port 80/tcp \
  --label org.opencontainers.image.title=nauti-nginx \
  --label "org.opencontainers.image.version=$(dpkg-query -W -f='${Version}' nginx)"

# tools: curl, dig, nc from Debian, and busybox for a shell and the usual applets.
tl="$work/tools"
base "$tl"
with_libs "$tl" /usr/bin/curl /usr/bin/dig /usr/bin/nc.openbsd
ln -s nc.openbsd "$tl/usr/bin/nc"
mkdir -p "$tl/bin" "$tl/etc/ssl/certs"
cp /bin/busybox "$tl/bin/busybox"
for applet in $(/bin/busybox --list-full); do
  [ "$applet" = bin/busybox ] && continue
  mkdir -p "$tl/$(dirname "$applet")"
  [ -e "$tl/$applet" ] || ln -s /bin/busybox "$tl/$applet"
done
image localhost/nauti/tools:bookworm "$tl" "$OUT/tools.oci.tar" \
  --cmd '["/bin/sh"]' --env PATH=/usr/sbin:/usr/bin:/sbin:/bin \
  --label org.opencontainers.image.title=nauti-tools

# coredns: the static binary `make peers` built.
cd_root="$work/coredns"
base "$cd_root"
cp -L "$COREDNS" "$cd_root/coredns"
version=$("$COREDNS" -version | sed -n 's/^CoreDNS-//p' | head -n1)
image "localhost/nauti/coredns:$version" "$cd_root" "$OUT/coredns.oci.tar" \
  --entrypoint '["/coredns"]' --cmd '' --port 53/udp --port 53/tcp \
  --label org.opencontainers.image.title=nauti-coredns \
  --label "org.opencontainers.image.version=$version"
rm -f "$OUT"/.cluster-complete-*
touch "$OUT/.cluster-complete-$key"
echo "cluster images: nginx, tools, coredns $version -> $OUT"
