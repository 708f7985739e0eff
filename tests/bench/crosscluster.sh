#!/usr/bin/env bash
# Cross-cluster path on ClusterBed (hub, east on two nodes, west; members behind NAT): iperf3 TCP
# throughput and ping between pods of east and west (pod, CNF, hub, CNF, pod) against the same
# client's OVN path to a pod on east's other node, round by round; then the time from SIGKILLing
# the active CNF to traffic flowing again, three times. Release builds. Needs root.
# The plain userspace tunnel and wireguard-go in the same place are wg.sh's, same run.
set -euo pipefail
cd "$(dirname "$0")/../.."
peers=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
export PATH=$peers/bin:$PATH NAUTI_PEERS_DIR=$peers NAUTI_REQUIRE_ROOT=1
if [ "$(id -u)" != 0 ]; then echo "crosscluster.sh needs root (ClusterBed)" >&2; exit 1; fi
command -v iperf3 >/dev/null || { echo "crosscluster.sh: iperf3 is missing (Debian iperf3)" >&2; exit 1; }
cargo build -q --release -p nauti-ovn -p nauti-nri --bins
cargo test -q --release -p nauti-octopus --test crosscluster bench_cross_cluster_path -- \
  --ignored --nocapture --test-threads=1
