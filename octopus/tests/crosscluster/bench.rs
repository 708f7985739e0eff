//! The cross-cluster benchmark (`tests/bench/crosscluster.sh`): on a bed like the test's, with
//! east on two nodes and a client pod on each, iperf3 (the machine's, run in the pods' and the
//! gateways' network namespaces) and ping, taking turns round by round:
//! - the full path from each of east's clients to west's server: pod, OVN, east's CNF,
//!   WireGuard and NAT to the hub, the hub, WireGuard to west, west's CNF, OVN, pod; once from
//!   the client on the CNF's node, once from the other (one geneve hop more);
//! - its four hops alone: the client beside the CNF to the CNF (OVN), east's CNF to the hub
//!   (WireGuard through east's NAT), the hub to west's CNF (WireGuard), west's CNF to the server
//!   (OVN);
//! - the same client's OVN path to the pod on east's other node, inside one cluster.
//!
//! Each figure comes with the sender's TCP retransmissions and the share of the machine's CPU
//! busy during the run: every hop runs on the same two cores, so a CPU-bound path's throughput
//! is the CPU divided by its cost per bit, which the summary prints next to the ratios. Then the
//! time from SIGKILLing the active CNF to the first ping answered again (skipped with
//! `NAUTI_BENCH_FAILOVER=0`). The plain tunnel and wireguard-go in the same place are
//! `tests/bench/wg.sh`'s, in the same `make bench` run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nauti_testbed::require_root;

use nauti_testbed::cluster_bed::Cluster;

use crate::cluster::{NAMESPACE, install, pod_address, start_bed};
use crate::failover::{holder_pod, kill_octopus_of, octopus_pid, two_replicas_on_a_short_lease};

const ROUNDS: usize = 3;
const SECONDS: &str = "8";

/// The PID of the pod process whose command line is `sleep <marker>` (each pod sleeps a
/// different number of seconds, so the machine's process table tells them apart).
fn pid_of(marker: &str) -> u32 {
    let wanted = format!("sleep\0{marker}\0");
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        if std::fs::read(format!("/proc/{pid}/cmdline")).is_ok_and(|c| c == wanted.as_bytes()) {
            return pid;
        }
    }
    panic!("no process `sleep {marker}`");
}

fn in_pod(pid: u32, program: &str) -> Command {
    let mut cmd = Command::new("nsenter");
    cmd.args(["-t", &pid.to_string(), "-n", program]);
    cmd
}

/// With `NAUTI_BENCH_GRO=1`: GRO on every gateway pod's NICs, to compare the forwarded path
/// with coalesced segments.
fn gro_on_gateways() {
    if std::env::var("NAUTI_BENCH_GRO").as_deref() != Ok("1") {
        return;
    }
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/nauti/octopus\0") {
            continue;
        }
        for ifname in ["eth-nauti", "eth0"] {
            let ok = in_pod(pid, "ethtool")
                .args(["-K", ifname, "gro", "on"])
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            eprintln!("GRO on {ifname} of gateway process {pid}: {ok}");
        }
    }
}

struct Server(Child);

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

/// An iperf3 server run by `iperf3` (a command naming the program, in some namespace).
fn iperf_server(mut iperf3: Command) -> Server {
    let child = iperf3
        .args(["-s", "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Server(child)
}

/// Busy and total jiffies of the whole machine (`/proc/stat`'s first line).
fn cpu_jiffies() -> (u64, u64) {
    let stat = std::fs::read_to_string("/proc/stat").unwrap();
    let fields: Vec<u64> = stat
        .lines()
        .next()
        .unwrap()
        .split_whitespace()
        .skip(1)
        .filter_map(|f| f.parse().ok())
        .collect();
    let total: u64 = fields.iter().take(8).sum();
    // idle and iowait
    let idle = fields[3] + fields[4];
    (total - idle, total)
}

/// One iperf3 run.
#[derive(Clone, Copy)]
struct Run {
    gbits: f64,
    /// The sender's TCP retransmissions (loss on the path shows there first).
    retransmits: u64,
    /// Share of the machine's CPU busy during the run, 0 to 1.
    busy: f64,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{:.2} Gbit/s ({} retr., CPU {:.0} %)",
            self.gbits,
            self.retransmits,
            self.busy * 100.0
        )
    }
}

/// One iperf3 run from the network namespace of `pid` to `server`, from `source` if given.
fn iperf(pid: u32, source: Option<&str>, server: &str) -> Run {
    let mut cmd = in_pod(pid, "iperf3");
    cmd.args(["-c", server, "-p", "5201", "-t", SECONDS, "-J"]);
    if let Some(source) = source {
        cmd.args(["-B", source]);
    }
    let before = cpu_jiffies();
    let out = cmd.output().unwrap();
    let after = cpu_jiffies();
    let report: serde_json::Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|_| {
        panic!(
            "iperf3 to {server}: {}",
            String::from_utf8_lossy(&out.stderr)
        )
    });
    let gbits = report["end"]["sum_received"]["bits_per_second"]
        .as_f64()
        .unwrap_or_else(|| panic!("iperf3 to {server}: {report}"))
        / 1e9;
    let retransmits = report["end"]["sum_sent"]["retransmits"]
        .as_u64()
        .unwrap_or_default();
    let busy = (after.0 - before.0) as f64 / (after.1 - before.1).max(1) as f64;
    Run {
        gbits,
        retransmits,
        busy,
    }
}

/// A gateway's octopus process, its node and its address on the global network.
struct Gateway {
    pid: u32,
    node: String,
    address: String,
}

/// The one gateway pod of `cluster` that `selector` names; its global address is on `device`.
fn gateway(cluster: &Cluster, selector: &str, device: &str) -> Gateway {
    let pods = cluster.pod_names(NAMESPACE, selector).unwrap();
    let [pod] = pods.as_slice() else {
        panic!("one gateway pod {selector} expected: {pods:?}");
    };
    let pid = octopus_pid(pod);
    let node = cluster
        .kubectl(&[
            "get",
            "pod",
            pod,
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.nodeName}",
        ])
        .unwrap();
    let out = in_pod(pid, "ip")
        .args(["-4", "-o", "addr", "show", "dev", device])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let address = text
        .split_whitespace()
        .skip_while(|w| *w != "inet")
        .nth(1)
        .and_then(|a| a.split('/').next())
        .unwrap_or_else(|| panic!("no IPv4 address on {device} of {pod}: {text}"))
        .to_owned();
    Gateway {
        pid,
        node: node.trim().to_owned(),
        address,
    }
}

/// The machine's 1-minute load average (the bench shares two cores with other work).
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .unwrap_or_default()
        .split_whitespace()
        .next()
        .unwrap_or("?")
        .to_owned()
}

/// Average ping round trip in ms.
fn rtt(pid: u32, server: &str) -> f64 {
    let out = in_pod(pid, "ping")
        .args(["-c", "20", "-i", "0.2", "-q", server])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    text.lines()
        .find_map(|l| l.split_once(" = ").filter(|_| l.contains("min/avg/max")))
        .and_then(|(_, v)| v.split('/').nth(1)?.parse().ok())
        .unwrap_or_else(|| panic!("ping {server}: {text}"))
}

fn answers(pid: u32, server: &str) -> bool {
    in_pod(pid, "ping")
        .args(["-c", "1", "-W", "0.2", server])
        .stdout(Stdio::null())
        .status()
        .is_ok_and(|s| s.success())
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(f64::total_cmp);
    v[v.len() / 2]
}

/// The figures of one kind of run over the rounds.
#[derive(Default)]
struct Series(Vec<Run>);

impl Series {
    fn median_gbits(&self) -> f64 {
        median(self.0.iter().map(|r| r.gbits).collect())
    }

    /// Busy cores (of two) per Gbit/s carried, the median over the rounds.
    fn cpu_per_gbit(&self) -> f64 {
        median(self.0.iter().map(|r| r.busy * 2.0 / r.gbits).collect())
    }
}

#[test]
#[ignore = "a benchmark: tests/bench/crosscluster.sh"]
fn bench_cross_cluster_path() {
    require_root!();
    let bed = start_bed("xcb", 2);
    let hub = bed.cluster("hub").unwrap();
    let (east, west) = install(&bed);
    east.run_pod_on("client-n0", Some("east-n0"), &["sleep", "3601"]);
    east.run_pod_on("client-n1", Some("east-n1"), &["sleep", "3602"]);
    west.run_pod("server", &["sleep", "3603"]);
    let remote = pod_address(west.cluster(), "server");
    let n1_address = pod_address(east.cluster(), "client-n1");
    let (n0, n1, server) = (pid_of("3601"), pid_of("3602"), pid_of("3603"));
    let mut up = false;
    for _ in 0..60 {
        if answers(n0, &remote) && answers(n1, &remote) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(up, "no path to west\n{}", east.diagnostics());
    let east_cnf = gateway(east.cluster(), "app=octopus-member", "eth-nauti");
    let hub_gw = gateway(hub, "app=octopus-hub", "nauti-wg");
    let west_cnf = gateway(west.cluster(), "app=octopus-member", "eth-nauti");
    // The client beside east's CNF, and the one a geneve hop away from it.
    let (near, far) = if east_cnf.node == "east-n0" {
        (n0, n1)
    } else {
        (n1, n0)
    };
    println!(
        "east's CNF on {} ({}), the hub's gateway {}, west's CNF {}",
        east_cnf.node, east_cnf.address, hub_gw.address, west_cnf.address
    );

    gro_on_gateways();
    let servers =
        [n1, server, east_cnf.pid, hub_gw.pid, west_cnf.pid].map(|pid| in_pod(pid, "iperf3"));
    let mut hub_router = Command::new("ip");
    hub_router.args(["netns", "exec", hub.router.netns.name(), "iperf3"]);
    let _servers = servers
        .into_iter()
        .chain([hub_router])
        .map(iperf_server)
        .collect::<Vec<_>>();
    let mut series: [Series; 8] = Default::default();
    let names = [
        "full path, client beside east's CNF",
        "full path, client on east's other node",
        "hop 1: client to east's CNF (OVN)",
        "hop 2: east's CNF to the hub (WireGuard, NAT)",
        "hop 3: the hub to west's CNF (WireGuard)",
        "hop 4: west's CNF to the server (OVN)",
        "same cluster: east-n0 to east-n1 (OVN, geneve)",
        "the bed's underlay: east's CNF to the hub's router (TCP, NAT, no tunnel)",
    ];
    for round in 0..ROUNDS {
        let runs = [
            iperf(near, None, &remote),
            iperf(far, None, &remote),
            iperf(near, None, &east_cnf.address),
            iperf(east_cnf.pid, Some(&east_cnf.address), &hub_gw.address),
            iperf(hub_gw.pid, Some(&hub_gw.address), &west_cnf.address),
            iperf(west_cnf.pid, Some(&west_cnf.address), &remote),
            iperf(n0, None, &n1_address),
            iperf(east_cnf.pid, None, &hub.plan.router_wan_ip()),
        ];
        println!("round {round}, load average {}:", load_average());
        for ((name, run), series) in names.iter().zip(runs).zip(series.iter_mut()) {
            println!("  {name}: {run}");
            series.0.push(run);
        }
    }
    println!("medians (Gbit/s, busy cores per Gbit/s):");
    for (name, series) in names.iter().zip(&series) {
        println!(
            "  {name}: {:.2}, {:.1}",
            series.median_gbits(),
            series.cpu_per_gbit()
        );
    }
    let hops = &series[2..6];
    let slowest = hops
        .iter()
        .map(Series::median_gbits)
        .fold(f64::INFINITY, f64::min);
    let [near_full, far_full] = [&series[0], &series[1]].map(Series::median_gbits);
    let inside = series[6].median_gbits();
    println!(
        "ratio full path / slowest hop: {:.2} beside the CNF, {:.2} a node away (goal 0.8); \
         full path / same cluster: {:.2}",
        near_full / slowest,
        far_full / slowest,
        near_full / inside
    );
    let hop_cost: f64 = hops.iter().map(Series::cpu_per_gbit).sum();
    println!(
        "CPU per Gbit/s: full path beside the CNF {:.1}, its four hops together {hop_cost:.1}, \
         the costliest hop {:.1}",
        series[0].cpu_per_gbit(),
        hops.iter().map(Series::cpu_per_gbit).fold(0.0, f64::max)
    );
    let (rtt_cross, rtt_inside) = (rtt(near, &remote), rtt(n0, &n1_address));
    println!("ping: cross-cluster {rtt_cross:.3} ms, same cluster {rtt_inside:.3} ms");
    if std::env::var("NAUTI_BENCH_FAILOVER").as_deref() == Ok("0") {
        return;
    }

    two_replicas_on_a_short_lease(&east);
    let mut gaps = Vec::new();
    for round in 0..ROUNDS {
        let mut leader = None;
        for _ in 0..120 {
            leader = holder_pod(&east).filter(|_| answers(n0, &remote));
            if leader.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let leader = leader.unwrap_or_else(|| panic!("no leading CNF\n{}", east.diagnostics()));
        let killed = kill_octopus_of(&leader);
        let mut gap = None;
        while killed.elapsed() < Duration::from_secs(60) {
            if answers(n0, &remote) {
                gap = Some(killed.elapsed());
                break;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let gap =
            gap.unwrap_or_else(|| panic!("no traffic after the kill\n{}", east.diagnostics()));
        println!(
            "failover {round}: traffic again {:.2} s after SIGKILL of {leader}",
            gap.as_secs_f64()
        );
        gaps.push(gap.as_secs_f64());
        // The killed pod's container restarts as the standby before the next round.
        east.wait_gateway_ready(2);
        let settle = Instant::now();
        while settle.elapsed() < Duration::from_secs(5) {
            std::thread::sleep(Duration::from_millis(200));
        }
    }
    println!(
        "failover: median {:.2} s, max {:.2} s over {ROUNDS} kills",
        median(gaps.clone()),
        gaps.iter().copied().fold(0.0, f64::max)
    );
}
