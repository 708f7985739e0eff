//! `nautictl diagnose` on real clusters (ClusterBed: a hub and two members behind NAT, Nauti
//! installed as `nauti-octopus --test crosscluster` installs it): the path from a pod in east to
//! a pod in west passes every hop; then one thing at a time is broken and restored (the CNF
//! scaled to 0, the gateway router's route deleted, an annotation forged on the source pod) and
//! the diagnosis names the hop and the cause; a bad kubeconfig, an unknown context and a frozen
//! API server give a clear error and a non-zero exit.
//!
//! The built `nautictl` runs on the machine against the clusters' API servers (through the bed's
//! relays) and the OVN central's unix sockets, as an operator's would.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../octopus/tests/crosscluster/cluster.rs"]
#[allow(
    dead_code,
    reason = "shared with octopus's --test crosscluster, which uses the rest"
)]
mod cluster;

use std::process::Command;
use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::{Cluster, ClusterBed, ClusterSpec};
use nauti_testbed::{TestDir, require_root};

use cluster::{Member, NAMESPACE, deploy_hub, issue_token, pod_address};

const GLOBAL: &str = "10.112.0.0/12";

/// One run of `nautictl`: exit code, stdout, stderr and how long it took.
struct Run {
    code: Option<i32>,
    stdout: String,
    stderr: String,
    took: Duration,
}

impl std::fmt::Display for Run {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "exit {:?} after {:?}\n--- stdout\n{}--- stderr\n{}",
            self.code, self.took, self.stdout, self.stderr
        )
    }
}

fn nautictl(args: &[&str]) -> Run {
    let start = Instant::now();
    let out = Command::new(env!("CARGO_BIN_EXE_nautictl"))
        .args(args)
        .output()
        .unwrap();
    let run = Run {
        code: out.status.code(),
        stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
        stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        took: start.elapsed(),
    };
    assert!(
        !run.stderr.contains("panicked"),
        "nautictl panicked:\n{run}"
    );
    run
}

/// The clusters and databases one diagnosis reads.
struct Path3<'a> {
    east: &'a Cluster,
    west: &'a Cluster,
    hub: &'a Cluster,
}

impl Path3<'_> {
    /// The arguments of `diagnose` from east's client to west's server, every database given.
    fn args(&self) -> Vec<String> {
        let path = |c: &Cluster| c.kubeconfig().display().to_string();
        [
            "--kubeconfig",
            &path(self.east),
            "diagnose",
            "--from",
            "default/client",
            "--to",
            "default/server",
            "--to-kubeconfig",
            &path(self.west),
            "--hub-kubeconfig",
            &path(self.hub),
            "--hub-context",
            "hub",
            "--ovn-nb",
            &self.east.central.nb_remote(),
            "--ovn-sb",
            &self.east.central.sb_remote(),
            "--timeout",
            "5s",
        ]
        .map(str::to_owned)
        .to_vec()
    }

    fn diagnose(&self) -> Run {
        let args = self.args();
        nautictl(&args.iter().map(String::as_str).collect::<Vec<_>>())
    }

    /// Diagnoses every second until the path passes; panics after `timeout` with the last run.
    fn until_healthy(&self, what: &str, timeout: Duration) -> Run {
        let start = Instant::now();
        loop {
            let run = self.diagnose();
            if run.code == Some(0) {
                return run;
            }
            assert!(
                start.elapsed() < timeout,
                "{what}: the path did not pass within {timeout:?}; last:\n{run}"
            );
            std::thread::sleep(Duration::from_secs(1));
        }
    }
}

/// Asserts `run` failed at `hop` with a message holding every one of `wants`, after every hop
/// before it passed and none after was checked.
fn assert_fails_at(run: &Run, hop: &str, wants: &[&str]) {
    assert_eq!(run.code, Some(1), "{run}");
    let lines: Vec<&str> = run.stdout.lines().collect();
    let last = lines.last().copied().unwrap_or_default();
    assert!(
        last.starts_with("FAIL  ") && last[6..].starts_with(hop),
        "the last line is not the {hop} hop failing:\n{run}"
    );
    for want in wants {
        assert!(
            last.contains(want),
            "{want:?} missing from the failure:\n{run}"
        );
    }
    for line in &lines[..lines.len() - 1] {
        assert!(
            line.starts_with("ok ") || line.starts_with("skip "),
            "a hop before {hop} did not pass:\n{run}"
        );
    }
}

#[test]
fn diagnose_passes_a_healthy_path_and_names_each_broken_hop() {
    require_root!();
    let started = Instant::now();
    let bed = ClusterBed::start(
        "dg",
        &[
            ClusterSpec::hub("hub", 1),
            ClusterSpec::member("east", 1),
            ClusterSpec::member("west", 1),
        ],
    )
    .unwrap();
    let hub = bed.cluster("hub").unwrap();
    deploy_hub(hub);
    let token = issue_token(hub);
    let east = Member::start(&bed, "east", "10.113.0.0/16", &token);
    let west = Member::start(&bed, "west", "10.114.0.0/16", &token);
    east.wait_gateway_ready(1);
    west.wait_gateway_ready(1);
    west.run_pod("server", &["sleep", "3600"]);
    east.run_pod("client", &["sleep", "3600"]);
    let server_ip = pod_address(west.cluster(), "server");
    let client_ip = pod_address(east.cluster(), "client");
    eprintln!("bed and Nauti ready after {:?}", started.elapsed());

    // The tunnels come up with the first packets (members dial out): the handshakes the Peers
    // report need traffic.
    let mut pinged = String::new();
    for _ in 0..30 {
        match east.exec(
            "client",
            &["busybox", "ping", "-c", "2", "-W", "2", &server_ip],
        ) {
            Ok(out) if out.contains(" 0% packet loss") => {
                pinged = out;
                break;
            }
            Ok(out) | Err(out) => pinged = out,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        pinged.contains(" 0% packet loss"),
        "east's client cannot ping west's server at {server_ip}:\n{pinged}\n{}",
        east.diagnostics()
    );

    let path = Path3 {
        east: east.cluster(),
        west: west.cluster(),
        hub,
    };
    healthy(&path, &client_ip);
    cnf_scaled_to_zero(&path, &east);
    route_deleted(&path, &east);
    annotation_forged(&path, &east, &client_ip);
    service_not_exported(&path);
    operator_errors(&path, &bed);
    eprintln!("whole test: {:?}", started.elapsed());
}

fn healthy(path: &Path3<'_>, client_ip: &str) {
    let run = path.until_healthy("healthy", Duration::from_secs(90));
    eprintln!("healthy diagnosis in {:?}:\n{}", run.took, run.stdout);
    let hops: Vec<&str> = run.stdout.lines().collect();
    let want = [
        "ok    annotations ",
        "ok    logical switch port ",
        "ok    port binding ",
        "ok    gateway ",
        "ok    peer ",
    ];
    assert_eq!(hops.len(), want.len(), "{run}");
    for (line, prefix) in hops.iter().zip(want) {
        assert!(line.starts_with(prefix), "{prefix:?} expected:\n{run}");
    }
    for seen in [
        format!("nauti.io/ip_address={client_ip}"),
        "default_client holds 0a:58:".to_owned(),
        "bound on chassis east-n0".to_owned(),
        format!("route {GLOBAL} via 10.113."),
        "on nauti-east-gw (CNF pod nauti-system/octopus-member-".to_owned(),
        "Running, holds Lease nauti-system/octopus-member".to_owned(),
        "Peer east Ready".to_owned(),
        "Peer west Ready, last handshake".to_owned(),
    ] {
        assert!(run.stdout.contains(&seen), "{seen:?} missing:\n{run}");
    }
}

fn cnf_pods(cluster: &Cluster) -> String {
    cluster
        .kubectl(&[
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            "app=octopus-member",
            "-o",
            "name",
        ])
        .unwrap_or_else(|e| format!("error: {e}"))
}

fn cnf_scaled_to_zero(path: &Path3<'_>, east: &Member<'_>) {
    east.scale_gateway(0);
    let start = Instant::now();
    while !cnf_pods(path.east).trim().is_empty() {
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "east's CNF pods did not go: {}",
            cnf_pods(path.east)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = path.diagnose();
    eprintln!(
        "CNF scaled to 0, diagnosed in {:?}:\n{}",
        run.took, run.stdout
    );
    assert_fails_at(
        &run,
        "gateway",
        &[
            &format!("route {GLOBAL} via 10.113."),
            "names CNF pod nauti-system/octopus-member-",
            "which does not exist",
            "Deployment octopus-member has 0 replica(s), 0 ready (scaled to 0?)",
        ],
    );
    east.scale_gateway(1);
    east.wait_gateway_ready(1);
    let restored = Instant::now();
    path.until_healthy("CNF scaled back to 1", Duration::from_secs(90));
    eprintln!(
        "path healthy {:?} after the new CNF was ready",
        restored.elapsed()
    );
}

fn route_deleted(path: &Path3<'_>, east: &Member<'_>) {
    let router = "nauti-east-gw";
    // The leader puts the route back on its next pass (at most 30 s away): delete it again if
    // that pass came between the deletion and the diagnosis.
    let mut run = None;
    for _ in 0..3 {
        path.east
            .central
            .nbctl(&["lr-route-del", router, GLOBAL])
            .unwrap();
        let attempt = path.diagnose();
        if attempt.code != Some(0) {
            run = Some(attempt);
            break;
        }
    }
    let run = run.expect("the route came back before every diagnosis");
    eprintln!(
        "route deleted, diagnosed in {:?}:\n{}",
        run.took, run.stdout
    );
    assert_fails_at(
        &run,
        "gateway",
        &[&format!(
            "gateway router {router} has no route to {GLOBAL} (the global network)"
        )],
    );
    let deleted = Instant::now();
    path.until_healthy("route put back by the CNF", Duration::from_secs(60));
    eprintln!(
        "the CNF put the route back {:?} after the failing diagnosis (next hop {})",
        deleted.elapsed(),
        east.gateway_next_hop()
    );
}

fn annotation_forged(path: &Path3<'_>, east: &Member<'_>, client_ip: &str) {
    // Another address of east's slice, one the port does not hold.
    let forged = if client_ip == "10.113.200.200" {
        "10.113.200.201"
    } else {
        "10.113.200.200"
    };
    let annotate = |value: &str| {
        east.cluster()
            .kubectl(&[
                "annotate",
                "--overwrite",
                "pod",
                "client",
                &format!("nauti.io/ip_address={value}"),
            ])
            .unwrap();
    };
    annotate(forged);
    let run = path.diagnose();
    annotate(client_ip);
    eprintln!(
        "annotation forged, diagnosed in {:?}:\n{}",
        run.took, run.stdout
    );
    assert_fails_at(
        &run,
        "logical switch port",
        &[&format!(
            "pod default/client is annotated nauti.io/ip_address={forged} but its logical \
             switch port default_client holds {client_ip}: the annotation is forged or stale"
        )],
    );
    path.until_healthy("annotation restored", Duration::from_secs(30));
}

/// A service name nobody exports, asked of a crossdns that is not there (a closed UDP port
/// on the machine): the DNS hop names both.
fn service_not_exported(path: &Path3<'_>) {
    let closed = std::net::UdpSocket::bind("127.0.0.1:0").unwrap();
    let crossdns = closed.local_addr().unwrap().to_string();
    drop(closed);
    let mut args = path.args();
    let to = args.iter().position(|a| a == "--to").unwrap();
    args[to + 1] = "nginx.default".to_owned();
    args.extend(["--crossdns".to_owned(), crossdns]);
    let run = nautictl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    eprintln!("service not exported: {run}");
    assert_fails_at(
        &run,
        "dns",
        &[
            "nginx.default.svc.hyperos.local does not resolve in crossdns, and no cluster exports it \
           (no ServiceImport on the hub)",
        ],
    );
    assert!(
        run.stdout
            .contains("skip  peer                 no cluster exports the service"),
        "{run}"
    );
}

fn operator_errors(path: &Path3<'_>, bed: &ClusterBed) {
    let dir = TestDir::new("diagnose-errors").unwrap();
    let garbage = dir.path().join("garbage.kubeconfig");
    std::fs::write(&garbage, "clusters: [this is not, a kubeconfig\n").unwrap();
    let mut args = path.args();
    args[1] = garbage.display().to_string();
    let run = nautictl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(
        run.stderr
            .contains(&format!("bad kubeconfig {}", garbage.display())),
        "{run}"
    );

    let mut args = path.args();
    args.splice(2..2, ["--context".to_owned(), "nope".to_owned()]);
    let run = nautictl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("unknown context \"nope\"") && run.stderr.contains("(it has: east)"),
        "{run}"
    );

    let mut args = path.args();
    let hub_context = args.iter().position(|a| a == "--hub-context").unwrap();
    args[hub_context + 1] = "east".to_owned();
    let run = nautictl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("the hub: unknown context \"east\""),
        "{run}"
    );

    // West's API server frozen: accepting connections, answering nothing.
    let west = bed.cluster("west").unwrap();
    west.control_plane.pause_apiserver().unwrap();
    let run = path.diagnose();
    west.control_plane.resume_apiserver().unwrap();
    eprintln!("west's API server frozen: {run}");
    assert_ne!(run.code, Some(0), "{run}");
    assert!(run.stdout.is_empty(), "{run}");
    assert!(
        run.stderr.contains("the destination cluster")
            || run
                .stderr
                .contains("read pod default/server on the API server"),
        "{run}"
    );
    assert!(run.took < Duration::from_secs(30), "{run}");

    // An OVN northbound database that is not there.
    let mut args = path.args();
    let nb = args.iter().position(|a| a == "--ovn-nb").unwrap();
    let missing = dir.path().join("no-such-nb.sock");
    args[nb + 1] = format!("unix:{}", missing.display());
    let run = nautictl(&args.iter().map(String::as_str).collect::<Vec<_>>());
    assert_ne!(run.code, Some(0), "{run}");
    assert!(
        run.stderr.contains("connect to the OVN database at unix:")
            && run.stderr.contains("(--ovn-nb)"),
        "{run}"
    );
}
