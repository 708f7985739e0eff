#!/usr/bin/env bash
# `make images`: an OCI archive of every image the charts deploy/charts/nauti and
# deploy/charts/nauti-agent run, named as the charts' values name them (every optional component
# switched on, so that OVN central and the chassis count too). Nauti's own daemons are static
# builds on an empty base (build-nauti-images.sh), the OVN/OVS image is Debian's packages
# (build-ovn-image.sh); no Docker, no registry.
#   OUT/<name with / and : as _>.oci.tar, and OUT/images.txt: "<image> <archive>" per line.
# The archives carry no reference name: import each with
#   ctr -n k8s.io images import --index-name <image> <archive>
# Usage: make-images.sh [OUT] (default: target/images); extra `helm template` arguments in
# HELM_VALUES (e.g. "--set images.tag=v1") change the names as they change the charts.
set -euo pipefail
cd "$(dirname "${BASH_SOURCE[0]}")/../.."
OUT=${1:-target/images}
PEERS_DIR=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
mkdir -p "$OUT"
read -r -a extra <<<"${HELM_VALUES:-}"

work=$(mktemp -d /tmp/nauti-make-images.XXXXXX)
trap 'rm -rf "$work"' EXIT
# Placeholders for the required values: only the image names of the render are read.
printf -- '-----BEGIN CERTIFICATE-----\n-----END CERTIFICATE-----\n' >"$work/ca.crt"
{
  helm template nauti deploy/charts/nauti --namespace nauti-system \
    --set tunnel.endpoint=192.0.2.1 "${extra[@]}"
  helm template nauti-agent deploy/charts/nauti-agent --namespace nauti-system \
    --set hub.hubURL=https://192.0.2.1:6443 --set cluster.clusterID=cluster1 \
    --set hub.bootstrapToken=abcdef.0123456789abcdef --set-file "hub.caCert=$work/ca.crt" \
    --set ovn.central.enabled=true --set ovn.chassis.enabled=true --set crossdns.wireCoreDNS=true \
    --set cleanup.enabled=true --set cleanup.annotations=true "${extra[@]}"
} | sed -n 's/^ *image: *"\{0,1\}\([^" ]*\)"\{0,1\} *$/\1/p' | sort -u >"$work/images"
[ -s "$work/images" ] || { echo "make-images: the charts name no image" >&2; exit 1; }

nauti_bins=(nauti-nri nauti-ipam nauti-ovnmaster octopus crossdns nautictl)
wanted_bins=()
ovn_image=""
while read -r image; do
  repo=${image%:*}
  base=${repo##*/}
  if printf '%s\n' "${nauti_bins[@]}" | grep -qx "$base"; then
    wanted_bins+=("$base")
  elif [ "$base" = ovn ]; then
    ovn_image=$image
  else
    echo "make-images: no build for $image (the charts name an image this project does not make)" >&2
    exit 1
  fi
done <"$work/images"

if [ "${#wanted_bins[@]}" -gt 0 ]; then
  bash tests/peers/build-nauti-images.sh "$PEERS_DIR/images/nauti" "${wanted_bins[@]}"
fi
if [ -n "$ovn_image" ]; then
  bash tests/peers/build-ovn-image.sh "$PEERS_DIR/images/ovn.oci.tar" "$ovn_image"
fi

: >"$OUT/images.txt.tmp"
while read -r image; do
  repo=${image%:*}
  base=${repo##*/}
  if [ "$base" = ovn ]; then src="$PEERS_DIR/images/ovn.oci.tar"; else src="$PEERS_DIR/images/nauti/$base.oci.tar"; fi
  archive="$OUT/$(printf '%s' "$image" | tr '/:' '__').oci.tar"
  cp -f "$src" "$archive"
  echo "$image $archive" >>"$OUT/images.txt.tmp"
  echo "images: $image -> $archive"
done <"$work/images"
mv "$OUT/images.txt.tmp" "$OUT/images.txt"
echo "images: import each with: ctr -n k8s.io images import --index-name <image> <archive> (list: $OUT/images.txt)"
