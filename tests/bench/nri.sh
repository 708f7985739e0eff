#!/usr/bin/env bash
# NRI plugin: 100 pods 10 at a time on one real node; plugin handling time and pod start-up ratio.
set -euo pipefail
cd "$(dirname "$0")/../.."
cargo build --quiet --release -p nauti-nri --bin nauti-nri
cargo build --quiet --release -p nauti-testbed --bin nauti-bench-pods
target_dir=$(cargo metadata --format-version 1 --no-deps | jq -r .target_directory)
NAUTI_NRI_BIN="$target_dir/release/nauti-nri" "$target_dir/release/nauti-bench-pods"
