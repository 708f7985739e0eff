#!/usr/bin/env bash
# Userspace WireGuard benchmark: iperf3 (Debian) TCP throughput between two network namespaces
# joined by a veth, through (a) octopus's device (`octopus wg-device`, release build) on both ends,
# (b) wireguard-go from the peers on both ends, (c) boringtun-cli from the peers (one thread, its
# best setting here) when it is installed, and the plain veth as reference. The implementations
# take turns round by round, so load on the machine falls on each alike. Prints Gbit/s and the
# median ping round trip per run, the medians over the rounds, and the ratio octopus /
# wireguard-go of the throughput medians. Needs root. Nothing leaves the namespaces.
# Knobs: WG_BENCH_SECONDS (10), WG_BENCH_ROUNDS (3), WG_BENCH_ONLY (space-separated subset of
# "veth octopus wireguard-go boringtun"), OCTOPUS_BIN (a prebuilt binary instead of the release build).
set -euo pipefail
cd "$(dirname "$0")/../.."
export CARGO_TARGET_DIR=${CARGO_TARGET_DIR:-$PWD/target}
peers=${NAUTI_PEERS_DIR:-$HOME/.cache/nauti-peers}
export PATH=$peers/bin:$PATH
seconds=${WG_BENCH_SECONDS:-10}
rounds=${WG_BENCH_ROUNDS:-3}
only=${WG_BENCH_ONLY:-veth octopus wireguard-go boringtun}

if [ "$(id -u)" != 0 ]; then echo "wg.sh needs root (network namespaces); skipped" >&2; exit 0; fi
if [ -z "${OCTOPUS_BIN:-}" ]; then
  cargo build -q --release -p nauti-octopus --bin octopus
  OCTOPUS_BIN=$CARGO_TARGET_DIR/release/octopus
fi
have() { command -v "$1" >/dev/null 2>&1; }
for tool in wg iperf3 jq; do have "$tool" || { echo "wg.sh: $tool is missing (Debian wireguard-tools, iperf3, jq)" >&2; exit 1; }; done

id=wgb$$
ns_a=$id-a ns_b=$id-b
work=$(mktemp -d)
pids=()
cleanup() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  ip netns del "$ns_a" 2>/dev/null || true
  ip netns del "$ns_b" 2>/dev/null || true
  rm -f /var/run/wireguard/"$id"?.sock
  rm -rf "$work"
}
trap cleanup EXIT

ip netns add "$ns_a"; ip netns add "$ns_b"
ip -n "$ns_a" link set lo up; ip -n "$ns_b" link set lo up
ip -n "$ns_a" link add ul type veth peer name ul netns "$ns_b"
ip -n "$ns_a" addr add 198.18.250.1/24 dev ul; ip -n "$ns_a" link set ul up
ip -n "$ns_b" addr add 198.18.250.2/24 dev ul; ip -n "$ns_b" link set ul up
umask 077
wg genkey >"$work/a.key"; wg pubkey <"$work/a.key" >"$work/a.pub"
wg genkey >"$work/b.key"; wg pubkey <"$work/b.key" >"$work/b.pub"
port=51820

# start_device <impl> <ns> <ifname> <side>: the device process, left running; its pid in $pids.
start_device() {
  local impl=$1 ns=$2 ifname=$3 side=$4 log=$work/$1-$4.log
  case $impl in
    octopus) ip netns exec "$ns" "$OCTOPUS_BIN" wg-device --interface "$ifname" \
               --private-key-file "$work/$side.key" --listen-port $port --mtu 1420 >"$log" 2>&1 & ;;
    wireguard-go) ip netns exec "$ns" wireguard-go -f "$ifname" >"$log" 2>&1 & ;;
    boringtun) ip netns exec "$ns" boringtun-cli --foreground --disable-drop-privileges \
                 --threads 1 "$ifname" >"$log" 2>&1 & ;;
  esac
  pids+=($!)
  for _ in $(seq 100); do [ -S /var/run/wireguard/"$ifname".sock ] && return 0; sleep 0.1; done
  echo "wg.sh: $impl in $ns did not open its UAPI socket; log:" >&2; tail -20 "$log" >&2; return 1
}

# tunnel <impl>: a device in each namespace, configured with wg set, tunnel 10.112.250.1 <-> .2.
tunnel() {
  local impl=$1 side ns ifname other tun_ip
  for side in a b; do
    if [ $side = a ]; then ns=$ns_a other=b tun_ip=10.112.250.1 peer_ip=198.18.250.2 peer_tun=10.112.250.2
    else ns=$ns_b other=a tun_ip=10.112.250.2 peer_ip=198.18.250.1 peer_tun=10.112.250.1; fi
    ifname=$id$side
    start_device "$impl" "$ns" "$ifname" $side
    ip netns exec "$ns" wg set "$ifname" private-key "$work/$side.key" listen-port $port \
      peer "$(cat "$work/$other.pub")" endpoint $peer_ip:$port allowed-ips $peer_tun/32
    ip -n "$ns" link set "$ifname" mtu 1420 up
    ip -n "$ns" addr add $tun_ip/24 dev "$ifname"
  done
  ip netns exec "$ns_a" ping -q -c 3 -i 0.2 -W 2 10.112.250.2 >/dev/null
}

stop_devices() {
  for pid in "${pids[@]}"; do kill "$pid" 2>/dev/null || true; done
  for pid in "${pids[@]}"; do wait "$pid" 2>/dev/null || true; done
  pids=()
  rm -f /var/run/wireguard/"$id"?.sock
  # The TUN interfaces go with their processes; wait so the next device can take the names.
  for _ in $(seq 50); do
    ip -n "$ns_a" link show "${id}a" >/dev/null 2>&1 || ip -n "$ns_b" link show "${id}b" >/dev/null 2>&1 || break
    sleep 0.1
  done
}

# gbits <server address>: one iperf3 run from A to B, Gbit/s as the receiver counted it.
gbits() {
  # Runs in a subshell ($(...)), out of reach of the EXIT trap: bounded by a timeout instead.
  ip netns exec "$ns_b" timeout $((seconds + 30)) iperf3 -s -1 -B "$1" >/dev/null 2>&1 &
  local server=$!
  sleep 0.3
  ip netns exec "$ns_a" timeout $((seconds + 30)) iperf3 -c "$1" -t "$seconds" -J >"$work/iperf.json"
  wait $server || true
  jq .end.sum_received.bits_per_second "$work/iperf.json" | awk "{printf \"%.2f\\n\", \$1 / 1e9}"
}

median() { tr ' ' '\n' | grep . | sort -g | awk '{v[NR]=$1} END {print (NR%2) ? v[(NR+1)/2] : (v[NR/2]+v[NR/2+1])/2}'; }
# rtt_ms <address>: median round trip of 50 pings 20 ms apart from A, tunnel otherwise idle.
rtt_ms() {
  ip netns exec "$ns_a" ping -c 50 -i 0.02 -W 1 "$1" | sed -n 's/.* time=\([0-9.]*\) ms/\1/p' | median
}

impls=()
for impl in $only; do
  case $impl in
    veth|octopus) impls+=("$impl") ;;
    wireguard-go) have wireguard-go && impls+=("$impl") || echo "# wireguard-go not installed: skipped" ;;
    boringtun) have boringtun-cli && impls+=("$impl") || echo "# boringtun-cli not installed: skipped" ;;
  esac
done

echo "command: tests/bench/wg.sh (WG_BENCH_SECONDS=$seconds WG_BENCH_ROUNDS=$rounds); $(nproc) cores, load average $(cut -d' ' -f1-3 /proc/loadavg)"
declare -A results rtts
for round in $(seq "$rounds"); do
  for impl in "${impls[@]}"; do
    if [ "$impl" = veth ]; then
      figure=$(gbits 198.18.250.2); rtt=$(rtt_ms 198.18.250.2)
    else
      tunnel "$impl"
      figure=$(gbits 10.112.250.2); rtt=$(rtt_ms 10.112.250.2)
      stop_devices
    fi
    results[$impl]="${results[$impl]:-} $figure"
    rtts[$impl]="${rtts[$impl]:-} $rtt"
    echo "round $round  $impl  $figure Gbit/s  rtt $rtt ms"
  done
done

echo "## medians over $rounds rounds of ${seconds}s: Gbit/s, ping round trip"
for impl in "${impls[@]}"; do
  echo "$impl: $(echo "${results[$impl]}" | median) Gbit/s (runs:${results[$impl]}), rtt $(echo "${rtts[$impl]}" | median) ms"
done
if [ -n "${results[octopus]:-}" ] && [ -n "${results[wireguard-go]:-}" ]; then
  echo "ratio octopus / wireguard-go: $(awk -v a="$(echo "${results[octopus]}" | median)" -v b="$(echo "${results[wireguard-go]}" | median)" 'BEGIN {printf "%.2f", a/b}')"
fi
echo "# load average after: $(cut -d' ' -f1-3 /proc/loadavg)"
