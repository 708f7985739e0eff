#!/usr/bin/env bash
# Propagation benchmark: a hub and three members on real kube-apiservers (an OVN central per member),
# release builds of `octopus hub`, `octopus member` and one `crossdns` per member. PROPAGATION_SERVICES
# (1000) Services, a third in each member, are exported the three members at once; per service, the
# time from its ServiceExport create call to the first correct A answer from the crossdns of another
# member (polled over UDP every 50 ms). Prints p50, p90, p99 and the maximum. Needs root (OVN).
# PROPAGATION_RATES ("burst 20"): one run per entry, "burst" creating every ServiceExport at once,
# a number creating that many per second (the members together).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export NAUTI_PEERS_DIR=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
export PATH=$NAUTI_PEERS_DIR/bin:$PATH
export PROPAGATION_SERVICES=${PROPAGATION_SERVICES:-1000}
cargo build -q --release -p nauti-octopus --bin octopus
cargo build -q --release -p nauti-crossdns --bin crossdns
export NAUTI_OCTOPUS_BIN=$CARGO_TARGET_DIR/release/octopus
export NAUTI_CROSSDNS_BIN=$CARGO_TARGET_DIR/release/crossdns
for rate in ${PROPAGATION_RATES:-burst 20}; do
  echo "command: tests/bench/propagation.sh; PROPAGATION_SERVICES=$PROPAGATION_SERVICES PROPAGATION_RATE=$rate; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
  PROPAGATION_RATE=$rate cargo test -q -p nauti-octopus --test propagation -- --ignored --nocapture --test-threads 1 2>&1 \
    | grep -E '^(propagation|set up |test result|thread .* panicked|  )' || { echo "propagation benchmark FAILED" >&2; exit 1; }
done
