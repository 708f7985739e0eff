#!/usr/bin/env bash
# DNS benchmark: crossdns (release build, fed by a real kube-apiserver holding the ServiceImports
# and imported EndpointSlices) against CoreDNS from the peers serving the same names from `file`
# zones, same machine, same run, with dnsperf (Debian) at full speed and the same queries in
# flight. Prints qps, p50 and p99 per run and the median ratio. No root.
# Knobs: DNS_BENCH_SERVICES (1000), DNS_BENCH_SECONDS (10), DNS_BENCH_ROUNDS (3),
# DNS_BENCH_IN_FLIGHT (20).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
export PATH=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}/bin:$PATH
cargo build -q --release -p nauti-crossdns --bin crossdns --example dns_bench
echo "command: tests/bench/dns.sh; $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
"$CARGO_TARGET_DIR/release/examples/dns_bench" "$CARGO_TARGET_DIR/release/crossdns"
