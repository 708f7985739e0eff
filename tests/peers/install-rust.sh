#!/usr/bin/env bash
# Rust components the checks use (rustfmt, clippy). Idempotent.
set -euo pipefail
command -v cargo >/dev/null || { echo "cargo not found: install Rust with rustup first" >&2; exit 1; }
have() { rustup component list --installed 2>/dev/null | grep -q "^$1"; }
for c in rustfmt clippy; do
  have "$c" || rustup component add "$c"
done
echo "rust: $(rustc --version)"
