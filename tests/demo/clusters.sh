#!/usr/bin/env bash
# `make demo`: the seed's demo across clusters. A hub and two members behind NAT (ClusterBed),
# `helm install nauti` on the hub, `helm install nauti-agent` on each member with the line the
# hub printed, the nginx example fetched by name from the other cluster, then `helm uninstall`
# and a check that nothing is left. KEEP=1 keeps the clusters up until Ctrl-C.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, containerd)" >&2; exit 1; }
cargo build --quiet -p nauti-testbed --bin nauti-demo-clusters
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
exec "$target_dir/debug/nauti-demo-clusters"
