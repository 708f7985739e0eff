//! The cross-cluster benchmark (`tests/bench/crosscluster.sh`): on a bed like the test's, with
//! east on two nodes, iperf3 (the machine's, run in the pods' network namespaces) and ping
//! between
//! - east's client and west's server: pod, CNF, WireGuard to the hub, hub, WireGuard to west,
//!   west's CNF, pod;
//! - east's client and a pod on east's other node: the same pods' OVN path inside one cluster;
//!
//! taking turns round by round, each figure with the sender's TCP retransmissions and the
//! machine's load average; then the time from SIGKILLing the active CNF to the first ping
//! answered again (skipped with `NAUTI_BENCH_FAILOVER=0`, when only throughput is measured).
//! The plain tunnel and wireguard-go in the same place are `tests/bench/wg.sh`'s, in the same
//! `make bench` run.

use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use nauti_testbed::require_root;

use crate::cluster::{install, pod_address, start_bed};
use crate::failover::{holder_pod, kill_octopus_of, two_replicas_on_a_short_lease};

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

fn iperf_server(pid: u32) -> Server {
    let child = in_pod(pid, "iperf3")
        .args(["-s", "-p", "5201"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    Server(child)
}

/// Gbit/s received in one iperf3 run from the pod `pid` to `server`, and the sender's TCP
/// retransmissions (loss on the path shows there first).
fn iperf(pid: u32, server: &str) -> (f64, u64) {
    let out = in_pod(pid, "iperf3")
        .args(["-c", server, "-p", "5201", "-t", SECONDS, "-J"])
        .output()
        .unwrap();
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
    (gbits, retransmits)
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

#[test]
#[ignore = "a benchmark: tests/bench/crosscluster.sh"]
fn bench_cross_cluster_path() {
    require_root!();
    let bed = start_bed("xcb", 2);
    let (east, west) = install(&bed);
    east.run_pod_on("client", Some("east-n0"), &["sleep", "3601"]);
    east.run_pod_on("local", Some("east-n1"), &["sleep", "3602"]);
    west.run_pod("server", &["sleep", "3603"]);
    let remote = pod_address(west.cluster(), "server");
    let local = pod_address(east.cluster(), "local");
    let (client, local_pid, remote_pid) = (pid_of("3601"), pid_of("3602"), pid_of("3603"));
    let mut up = false;
    for _ in 0..60 {
        if answers(client, &remote) {
            up = true;
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    assert!(up, "no path to west\n{}", east.diagnostics());

    gro_on_gateways();
    let _servers = (iperf_server(local_pid), iperf_server(remote_pid));
    let (mut cross, mut inside) = (Vec::new(), Vec::new());
    for round in 0..ROUNDS {
        let (c, c_retransmits) = iperf(client, &remote);
        let (i, i_retransmits) = iperf(client, &local);
        println!(
            "round {round}: cross-cluster {c:.2} Gbit/s ({c_retransmits} retransmits), same \
             cluster (OVN, two nodes) {i:.2} Gbit/s ({i_retransmits} retransmits), load \
             average {}",
            load_average()
        );
        cross.push(c);
        inside.push(i);
    }
    let (c, i) = (median(cross), median(inside));
    let (rtt_cross, rtt_inside) = (rtt(client, &remote), rtt(client, &local));
    println!(
        "median: cross-cluster {c:.2} Gbit/s, same cluster {i:.2} Gbit/s, ratio {:.2}",
        c / i
    );
    println!("ping: cross-cluster {rtt_cross:.3} ms, same cluster {rtt_inside:.3} ms");
    if std::env::var("NAUTI_BENCH_FAILOVER").as_deref() == Ok("0") {
        return;
    }

    two_replicas_on_a_short_lease(&east);
    let mut gaps = Vec::new();
    for round in 0..ROUNDS {
        let mut leader = None;
        for _ in 0..120 {
            leader = holder_pod(&east).filter(|_| answers(client, &remote));
            if leader.is_some() {
                break;
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        let leader = leader.unwrap_or_else(|| panic!("no leading CNF\n{}", east.diagnostics()));
        let killed = kill_octopus_of(&leader);
        let mut gap = None;
        while killed.elapsed() < Duration::from_secs(60) {
            if answers(client, &remote) {
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
