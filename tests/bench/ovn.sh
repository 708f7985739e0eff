#!/usr/bin/env bash
# OVN benchmark: nauti-ovn's batched transactions against ovn-nbctl (one call per port) creating
# and deleting 1,000 logical switch ports on one private ovsdb-server, and the client's steady-state
# memory with 10,000 ports in its monitor cache. Needs ovsdb-server and ovn-nbctl (Debian
# ovn-central); no root. Knobs: OVN_BENCH_PORTS, OVN_BENCH_BATCH, OVN_BENCH_CACHED.
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-target}
cargo build -q --release -p nauti-ovn --example ovn_bench
echo "command: tests/bench/ovn.sh (ports=${OVN_BENCH_PORTS:-1000} batch=${OVN_BENCH_BATCH:-100} cached=${OVN_BENCH_CACHED:-10000})"
echo "versions: $(ovsdb-server --version | head -1), $(ovn-nbctl --version | head -1)"
"$CARGO_TARGET_DIR/release/examples/ovn_bench"
