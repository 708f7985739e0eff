#!/usr/bin/env bash
# Runs each crate's cargo-fuzz targets for a bounded time (FUZZ_SECONDS, default 60) on nightly.
set -euo pipefail
cd "$(dirname "$0")/../.."
seconds=${FUZZ_SECONDS:-60}
command -v cargo-fuzz >/dev/null || cargo install --locked cargo-fuzz
for dir in */fuzz; do
  [ -f "$dir/Cargo.toml" ] || continue
  crate=$(dirname "$dir")
  for target in $(cd "$crate" && cargo +nightly fuzz list); do
    echo "=== fuzz: $crate/$target for ${seconds}s"
    # Checked-in seeds (fuzz/seeds/<target>) join the generated corpus, which stays untracked.
    seeds=()
    [ -d "$dir/seeds/$target" ] && seeds=("seeds/$target")
    (cd "$crate" && mkdir -p "fuzz/corpus/$target" &&
      cargo +nightly fuzz run "$target" "fuzz/corpus/$target" "${seeds[@]/#/fuzz/}" -- -max_total_time="$seconds")
  done
done
