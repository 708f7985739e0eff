#!/usr/bin/env bash
# Runs every component benchmark (tests/bench/<component>.sh) in a fixed order and keeps the output
# under target/bench/ so the figures can be copied into BENCHMARKS.md with the command that made them.
set -euo pipefail
cd "$(dirname "$0")/../.."
out=target/bench; mkdir -p "$out"
status=0
for script in tests/bench/*.sh; do
  [ "$(basename "$script")" = bench.sh ] && continue
  name=$(basename "$script" .sh)
  echo "=== bench: $name"
  if ! bash "$script" 2>&1 | tee "$out/$name.txt"; then
    echo "bench $name FAILED" >&2; status=1
  fi
done
exit $status
