#!/usr/bin/env bash
# `make demo-node`: builds Nauti and runs the demo on one node on real peers, two pods
# with their second NIC on OVN, annotations read back from the API server, ping and TCP between them.
set -euo pipefail
cd "$(dirname "$0")/../.."
[ "$(id -u)" = 0 ] || { echo "make demo needs root (network namespaces, containerd)" >&2; exit 1; }
cargo build --quiet -p nauti-nri --bin nauti-nri
cargo build --quiet -p nauti-testbed --bin nauti-demo
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
NAUTI_NRI_BIN="$target_dir/debug/nauti-nri" exec "$target_dir/debug/nauti-demo"
