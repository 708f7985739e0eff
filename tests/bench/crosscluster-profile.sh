#!/usr/bin/env bash
# Profile of the cross-cluster bench (tests/bench/crosscluster.sh), run beside it:
#   tests/bench/crosscluster-profile.sh OUT_DIR & NAUTI_BENCH_FAILOVER=0 tests/bench/crosscluster.sh
# Waits for the bench's first cross-cluster iperf3 client (a process whose ancestry is the bench
# or its bed), then for 5 s: `perf record -a -g` of the whole machine, `top -H`, and OVS's
# per-node datapath counters and flows; then each gateway pod's nstat and link counters. Its own
# processes are listed in OUT_DIR/pids.txt, so `perf report --pid` or `--comm` can cut the
# machine's profile to them. Root; bounded to 30 min of waiting.
set -u
out=${1:?usage: crosscluster-profile.sh OUT_DIR}; mkdir -p "$out"
ancestry() { local p=$1; while [ -n "$p" ] && [ "$p" != 1 ] && [ "$p" != 0 ]; do tr '\0' ' ' < /proc/$p/cmdline 2>/dev/null; echo; p=$(awk '/^PPid:/{print $2}' /proc/$p/status 2>/dev/null); done; }
mine() { ancestry $1 | grep -q -e bench_cross_cluster_path -e 'nauti-tests/xcb-'; }
pid=
for i in $(seq 1 3600); do
  for p in $(pgrep -f '^iperf3 -c 10\.1(1[2-9]|2[0-7])\.'); do mine $p && { pid=$p; break; }; done
  [ -n "$pid" ] && break
  sleep 0.5
done
[ -z "$pid" ] && { echo "no iperf3"; exit 1; }
ps -o args= -p $pid > $out/client.txt
sleep 1.5
: > $out/pids.txt
for p in $(pgrep -f '^/nauti/octopus|ovs-vswitchd|ovn-controller|iperf3'); do mine $p && echo "$p $(tr '\0' ' ' < /proc/$p/cmdline | cut -c1-150)" >> $out/pids.txt; done
ctls=$(grep ovs-vswitchd $out/pids.txt | grep -o -- '--unixctl=[^ ]*' | cut -d= -f2)
for c in $ctls; do ovs-appctl -t $c dpif-netdev/pmd-stats-clear; done > $out/clear.txt 2>&1
cat /proc/loadavg > $out/load.txt
perf record -a -g -F 499 -o $out/perf.data -- sleep 5 > $out/perf-record.log 2>&1 &
top -H -b -n 2 -d 4 -w 220 > $out/top.txt &
sleep 4.5
for c in $ctls; do echo "== $c"; ovs-appctl -t $c dpif-netdev/pmd-stats-show; ovs-appctl -t $c dpctl/dump-flows > $out/flows-$(basename $(dirname $c)).txt; wc -l < $out/flows-$(basename $(dirname $c)).txt; ovs-appctl -t $c coverage/show | head -80; done > $out/ovs.txt 2>&1
for p in $(grep /nauti/octopus $out/pids.txt | cut -d' ' -f1); do echo "== $p $(tr '\0' ' ' < /proc/$p/cmdline)"; nsenter -t $p -n nstat -az 2>/dev/null | grep -E 'Frag|Reasm|RcvbufErrors|SndbufErrors|InErrors|Discards|TCPBacklog|IpExtInNoRoutes|Udp(In|Out)Datagrams'; nsenter -t $p -n ip -s -s link; nsenter -t $p -n ip route; done > $out/ns.txt 2>&1
wait
cat /proc/loadavg >> $out/load.txt
echo done
