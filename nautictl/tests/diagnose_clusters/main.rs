//! `nautictl diagnose` and `show` on real clusters (ClusterBed: a hub and two members behind
//! NAT, Nauti installed as `nauti-octopus --test crosscluster` installs it, nginx exported from
//! west and crossdns in east with east's CoreDNS wired to it, as `--test mcs_clusters` does): the
//! path from a pod in east to a pod in west passes every hop; then one thing at a time is broken
//! and restored (the CNF scaled to 0, the gateway router's route deleted, west's CNF's tunnel
//! route to east's slice deleted, an annotation forged on the source pod) and the diagnosis names
//! the hop and the cause; `show` lists the three
//! clusters, the members' gateway pods and nodes, the tunnels Ready with bytes and the export;
//! the exported name resolves in crossdns and through CoreDNS until crossdns is scaled to 0,
//! which the dns hop names; a bad kubeconfig, an unknown context and a frozen API server give a
//! clear error and a non-zero exit (`show` still prints the clusters that answered).
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

#[path = "../../../octopus/tests/mcs_clusters/mcs.rs"]
#[allow(
    dead_code,
    reason = "shared with octopus's --test mcs_clusters, which uses the rest"
)]
mod mcs;

use std::process::Command;
use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::{Cluster, ClusterBed, ClusterSpec};
use nauti_testbed::{TestDir, require_root};

use cluster::{Member, NAMESPACE, active_pods, deploy_hub, issue_token, pod_address};
use mcs::{
    corefile, crossdns_command, crossdns_log, deploy_crossdns, deploy_exported_nginx,
    install_hub_mcs_crds,
};
use nautictl::clean::{HOST_IFNAME_PREFIX, host_veths};

const GLOBAL: &str = "10.112.0.0/12";
/// East's slice, and the WireGuard interface of the CNFs (`--test crosscluster`'s).
const EAST_SLICE: &str = "10.113.0.0/16";
const WG_INTERFACE: &str = "nauti-wg";

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

    /// `show` on the hub with both members, in `output`.
    fn show(&self, output: &str) -> Run {
        let east = self.east.kubeconfig().display().to_string();
        let west = self.west.kubeconfig().display().to_string();
        let hub = self.hub.kubeconfig().display().to_string();
        nautictl(&[
            "--kubeconfig",
            &hub,
            "show",
            "--member-kubeconfig",
            &east,
            "--member-kubeconfig",
            &west,
            "--timeout",
            "5s",
            "-o",
            output,
        ])
    }

    /// The arguments of `diagnose` from east's client to the service name `to`.
    fn service_args(&self, to: &str) -> Vec<String> {
        let mut args = self.args();
        let at = args.iter().position(|a| a == "--to").unwrap();
        args[at + 1] = to.to_owned();
        args
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
    // The hub carries the members' exports: `show` lists them and the DNS hops resolve them.
    install_hub_mcs_crds(hub);
    let token = issue_token(hub);
    let east = Member::start(&bed, "east", "10.113.0.0/16", &token);
    let west = Member::start(&bed, "west", "10.114.0.0/16", &token);
    east.wait_gateway_ready(1);
    west.wait_gateway_ready(1);
    west.run_pod("server", &["sleep", "3600"]);
    east.run_pod("client", &["sleep", "3600"]);
    // A service exported from west; crossdns in east with east's CoreDNS wired to it.
    deploy_exported_nginx(west.cluster(), 1);
    let crossdns_ip = deploy_crossdns(east.cluster());
    let wired = crossdns_command(
        east.cluster(),
        &["wire-coredns", "--forward-to", &crossdns_ip],
    );
    assert!(
        wired.is_ok(),
        "wire-coredns: {wired:?}\n{}\n{}",
        corefile(east.cluster()),
        crossdns_log(east.cluster())
    );
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
    tunnel_route_deleted(&path);
    annotation_forged(&path, &east, &client_ip);
    service_not_exported(&path);
    show_lists_the_set(&path);
    service_resolves_then_crossdns_stopped(&path);
    operator_errors(&path, &bed);
    clean_east(&bed, east);
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
        "ok    interface ",
        "ok    gateway ",
        "ok    peer ",
        "ok    tunnel routes ",
    ];
    assert_eq!(hops.len(), want.len(), "{run}");
    for (line, prefix) in hops.iter().zip(want) {
        assert!(line.starts_with(prefix), "{prefix:?} expected:\n{run}");
    }
    for seen in [
        format!("nauti.io/ip_address={client_ip}"),
        "default_client holds 0a:58:".to_owned(),
        "bound on chassis east-n0".to_owned(),
        "eth-nauti in pod default/client holds 0a:58:".to_owned(),
        format!(" {client_ip}\nok    gateway"),
        format!("route {GLOBAL} via 10.113."),
        "on nauti-east-gw (CNF pod nauti-system/octopus-member-".to_owned(),
        "Running, holds Lease nauti-system/octopus-member".to_owned(),
        "Peer east Ready".to_owned(),
        "Peer west Ready, last handshake".to_owned(),
        "east's CNF pod nauti-system/octopus-member-".to_owned(),
        format!(" routes 10.114.0.0/16 (west) into {WG_INTERFACE}; west's CNF pod "),
        format!(" routes {EAST_SLICE} (east) into {WG_INTERFACE}\n"),
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

/// West's active CNF loses its tunnel route to east's slice (deleted in its pod's network
/// namespace): the tunnel routes hop names west, the pod, the interface and the slice until the
/// CNF's next pass puts the route back.
fn tunnel_route_deleted(path: &Path3<'_>) {
    let mut failed = None;
    // The CNF re-applies its routes on every pass: delete again if one came in between.
    for attempt in 0..3 {
        let active = active_pods(path.west, "octopus-member");
        assert_eq!(active.len(), 1, "west's active CNF pods: {active:?}");
        let pod = active[0].clone();
        let deleted = path.west.kubectl(&[
            "exec",
            "-n",
            NAMESPACE,
            &pod,
            "--",
            "busybox",
            "ip",
            "route",
            "del",
            EAST_SLICE,
            "dev",
            WG_INTERFACE,
        ]);
        // Still gone from the previous attempt is fine; the first must find it.
        if let Err(e) = &deleted {
            assert!(
                attempt > 0 && e.to_string().contains("No such process"),
                "delete {EAST_SLICE} dev {WG_INTERFACE} in {pod}: {e}"
            );
        }
        let run = path.diagnose();
        if run.code != Some(0) {
            failed = Some((pod, run));
            break;
        }
    }
    let (pod, run) = failed.expect("west's CNF put the route back before every diagnosis");
    eprintln!(
        "west's tunnel route deleted, diagnosed in {:?}:\n{}",
        run.took, run.stdout
    );
    assert_fails_at(
        &run,
        "tunnel routes",
        &[&format!(
            "cluster west's CNF pod {NAMESPACE}/{pod} has no route to {EAST_SLICE} (cluster \
             east's slice) on {WG_INTERFACE}"
        )],
    );
    let deleted = Instant::now();
    path.until_healthy(
        "tunnel route put back by west's CNF",
        Duration::from_secs(60),
    );
    eprintln!(
        "west's CNF put the route back {:?} after the failing diagnosis",
        deleted.elapsed()
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
    let shown = path.show("table");
    west.control_plane.resume_apiserver().unwrap();
    eprintln!("show with west's API server frozen: {shown}");
    assert_eq!(shown.code, Some(1), "{shown}");
    assert!(
        shown.stderr.contains("nautictl: cluster west: ")
            && shown.stderr.contains("on the API server https://"),
        "{shown}"
    );
    // The clusters that answered are still shown.
    assert!(
        shown.stdout.lines().any(|l| l
            .split_whitespace()
            .take(2)
            .collect::<Vec<_>>()
            .join(" ")
            .starts_with("east octopus-member-")),
        "{shown}"
    );
    assert!(shown.took < Duration::from_secs(30), "{shown}");
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

const NGINX: &str = "nginx-svc.default";

/// `show` lists the three clusters with Ready tunnels that carried bytes, each member's gateway
/// pod and node, and the service west exports imported in east; in JSON, then as a table.
fn show_lists_the_set(path: &Path3<'_>) {
    let start = Instant::now();
    let shown = loop {
        let run = path.show("json");
        assert_eq!(run.code, Some(0), "{run}");
        let json: serde_json::Value = serde_json::from_str(&run.stdout).unwrap();
        if show_complete(&json) {
            break (run, json);
        }
        assert!(
            start.elapsed() < Duration::from_secs(120),
            "show never listed the whole set; last:\n{run}"
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    let (run, json) = shown;
    eprintln!(
        "show listed the set {:?} after it was asked (one run {:?}):\n{}",
        start.elapsed(),
        run.took,
        run.stdout
    );
    let cluster = |id: &str| {
        json["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .find(|c| c["clusterId"] == id)
            .unwrap_or_else(|| panic!("no cluster {id}: {json}"))
            .clone()
    };
    assert_eq!(cluster("hub")["isHub"], true, "{json}");
    for id in ["east", "west"] {
        let row = cluster(id);
        assert_eq!(row["ready"]["status"], "True", "{json}");
        assert!(row["rxBytes"].as_u64().unwrap() > 0, "{json}");
        assert!(row["txBytes"].as_u64().unwrap() > 0, "{json}");
        assert!(row["lastHandshake"].is_string(), "{json}");
    }
    assert_eq!(
        cluster("east")["slices"],
        serde_json::json!(["10.113.0.0/16"])
    );
    let members = json["members"].as_array().unwrap();
    assert_eq!(members.len(), 2, "{json}");
    for (member, id) in members.iter().zip(["east", "west"]) {
        assert_eq!(member["context"], id, "{json}");
        assert_eq!(member["clusterId"], id, "{json}");
        let gateways = member["gateways"].as_array().unwrap();
        assert_eq!(gateways.len(), 1, "{json}");
        assert_eq!(gateways[0]["role"], "active", "{json}");
        assert_eq!(gateways[0]["node"], format!("{id}-n0"), "{json}");
        assert!(
            gateways[0]["name"]
                .as_str()
                .unwrap()
                .starts_with("octopus-member-"),
            "{json}"
        );
    }
    assert_eq!(
        json["services"],
        serde_json::json!([{"namespace": "default", "name": "nginx-svc", "clusters": ["west"]}])
    );
    let east_imports = &members[0]["imports"];
    assert_eq!(east_imports[0]["name"], "nginx-svc", "{json}");
    assert_eq!(east_imports[0]["clusters"], serde_json::json!(["west"]));
    assert_eq!(east_imports[0]["endpoints"], 1, "{json}");

    let table = path.show("table");
    assert_eq!(table.code, Some(0), "{table}");
    let words = |start: &str| {
        table
            .stdout
            .lines()
            .map(|l| l.split_whitespace().collect::<Vec<_>>().join(" "))
            .find(|l| l.starts_with(start))
            .unwrap_or_else(|| panic!("no line {start:?}:\n{table}"))
    };
    for id in ["east", "west"] {
        assert!(
            words(&format!("{id} 10.11")).contains(" True (Connected) "),
            "{table}"
        );
        let gateway = words(&format!("{id} octopus-member-"));
        assert!(
            gateway.ends_with(&format!("{id}-n0 active Running Ready")),
            "{table}"
        );
    }
    assert_eq!(words("default/nginx-svc"), "default/nginx-svc west");
    assert_eq!(
        words("east default/nginx-svc"),
        "east default/nginx-svc west 1"
    );
}

/// Whether `show`'s JSON has everything the set should show once settled.
fn show_complete(json: &serde_json::Value) -> bool {
    let ready_with_bytes = json["clusters"].as_array().is_some_and(|clusters| {
        ["east", "west"].iter().all(|id| {
            clusters.iter().any(|c| {
                c["clusterId"] == *id
                    && c["ready"]["status"] == "True"
                    && c["rxBytes"].as_u64().unwrap_or(0) > 0
                    && c["txBytes"].as_u64().unwrap_or(0) > 0
            })
        })
    });
    let imported = json["members"][0]["imports"].as_array().is_some_and(|i| {
        i.iter()
            .any(|i| i["name"] == "nginx-svc" && i["endpoints"] == 1)
    });
    ready_with_bytes && imported && json["services"].as_array().is_some_and(|s| !s.is_empty())
}

fn crossdns_pods(cluster: &Cluster) -> String {
    cluster
        .kubectl(&[
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            "app=crossdns",
            "-o",
            "name",
        ])
        .unwrap_or_else(|e| format!("error: {e}"))
}

/// The exported name resolves in crossdns and through east's CoreDNS to west's pod; then
/// crossdns is scaled to 0 and the dns hop names it.
fn service_resolves_then_crossdns_stopped(path: &Path3<'_>) {
    let args = path.service_args(NGINX);
    let argv: Vec<&str> = args.iter().map(String::as_str).collect();
    let start = Instant::now();
    let healthy = loop {
        let run = nautictl(&argv);
        if run.code == Some(0) {
            break run;
        }
        assert!(
            start.elapsed() < Duration::from_secs(90),
            "{NGINX} never resolved through crossdns and CoreDNS; last:\n{run}\n{}",
            corefile(path.east)
        );
        std::thread::sleep(Duration::from_secs(1));
    };
    eprintln!(
        "{NGINX} diagnosed healthy {:?} after asked (one run {:?}):\n{}",
        start.elapsed(),
        healthy.took,
        healthy.stdout
    );
    let nginx_ip = path
        .west
        .kubectl(&[
            "get",
            "pods",
            "-l",
            "app=nginx",
            "-o",
            "jsonpath={.items[0].metadata.annotations.nauti\\.io/ip_address}",
        ])
        .unwrap();
    let nginx_ip = nginx_ip.trim().split('/').next().unwrap();
    let fqdn = "nginx-svc.default.svc.hyperos.local";
    for seen in [
        format!("ok    dns                  {fqdn} -> {nginx_ip} (exported by west)"),
        format!("ok    coredns              {fqdn} -> {nginx_ip} through CoreDNS at 10."),
        "(Service kube-system/kube-dns), as crossdns".to_owned(),
    ] {
        assert!(
            healthy.stdout.contains(&seen),
            "{seen:?} missing:\n{healthy}"
        );
    }

    path.east
        .kubectl(&[
            "scale",
            "-n",
            NAMESPACE,
            "deployment/crossdns",
            "--replicas=0",
        ])
        .unwrap();
    let stopped = Instant::now();
    while !crossdns_pods(path.east).trim().is_empty() {
        assert!(
            stopped.elapsed() < Duration::from_secs(60),
            "crossdns pods did not go: {}",
            crossdns_pods(path.east)
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    let run = nautictl(&argv);
    eprintln!(
        "crossdns scaled to 0, diagnosed in {:?}:\n{}",
        run.took, run.stdout
    );
    assert_fails_at(
        &run,
        "dns",
        &[&format!(
            "{fqdn} does not resolve: crossdns is stopped (Deployment nauti-system/crossdns has \
             0 replica(s): scaled to 0) although west export(s) it"
        )],
    );
}

/// Nauti's traces left in `cluster`, one line each: northbound rows, `nauti.io/*` annotations
/// on pods and Nodes (the user's `nauti.io/enabled` aside), the CoreDNS block, the pod's
/// `eth-nauti`, the nodes' host veths (`nti*`) and their Open vSwitch ports.
fn scan(cluster: &Cluster, pod: &str) -> Vec<String> {
    let mut found = Vec::new();
    let nb = cluster.central.nbctl(&["show"]).unwrap();
    for line in nb
        .lines()
        .filter(|l| l.contains("nauti") || l.contains(pod))
    {
        found.push(format!("northbound: {}", line.trim()));
    }
    let balancers = cluster.central.nbctl(&["lb-list"]).unwrap();
    for line in balancers.lines().skip(1) {
        found.push(format!("load balancer: {}", line.trim()));
    }
    for kind in ["pods", "nodes"] {
        let list: serde_json::Value =
            serde_json::from_str(&cluster.kubectl(&["get", kind, "-A", "-o", "json"]).unwrap())
                .unwrap();
        for item in list["items"].as_array().unwrap() {
            let empty = serde_json::Map::new();
            let annotations = item["metadata"]["annotations"]
                .as_object()
                .unwrap_or(&empty);
            for key in annotations.keys() {
                if key.starts_with("nauti.io/") && key != "nauti.io/enabled" {
                    found.push(format!(
                        "{kind} {}/{} annotation {key}",
                        item["metadata"]["namespace"].as_str().unwrap_or(""),
                        item["metadata"]["name"].as_str().unwrap_or("")
                    ));
                }
            }
        }
    }
    if corefile(cluster).contains("nauti-crossdns") {
        found.push("Corefile: the crossdns block".to_owned());
    }
    let in_pod = cluster
        .kubectl(&["exec", pod, "--", "busybox", "ip", "-o", "link"])
        .unwrap();
    if in_pod.contains("eth-nauti") {
        found.push(format!("pod {pod}: eth-nauti"));
    }
    for node in &cluster.nodes {
        let links = node.netns.exec("ip", &["-o", "link"]).unwrap();
        for veth in host_veths(&links) {
            found.push(format!("node {}: veth {veth}", node.name));
        }
        let ports = node.ovn.vsctl(&["list-ports", "br-int"]).unwrap();
        for port in ports.lines().filter(|p| p.starts_with(HOST_IFNAME_PREFIX)) {
            found.push(format!("node {}: OVS port {port}", node.name));
        }
    }
    found
}

/// Uninstalls Nauti from east as the charts do (its own workloads, then the node agents), runs
/// `clean` with the northbound database, the node's Open vSwitch database and `--node-nics`,
/// and scans: nothing of Nauti is left, and the client pod lives on.
fn clean_east(bed: &ClusterBed, east: Member<'_>) {
    let cluster = bed.cluster("east").unwrap();
    let before = scan(cluster, "client");
    for want in [
        "pods default/client annotation nauti.io/ip_address",
        "pod client: eth-nauti",
        "Corefile: the crossdns block",
    ] {
        assert!(
            before.iter().any(|t| t == want),
            "the scan does not see {want:?}: {before:#?}"
        );
    }
    for want in [
        "nauti-east-gw",
        "node east-n0: veth nti",
        "node east-n0: OVS port nti",
    ] {
        assert!(
            before.iter().any(|t| t.contains(want)),
            "the scan does not see {want:?}: {before:#?}"
        );
    }
    // Nauti's own workloads first, while nauti-nri still takes their NICs down with them.
    cluster
        .kubectl(&[
            "delete",
            "deployment",
            "-n",
            NAMESPACE,
            "octopus-member",
            "crossdns",
            "--wait=true",
            "--timeout=60s",
        ])
        .unwrap();
    let start = Instant::now();
    loop {
        let left = cluster
            .kubectl(&["get", "pods", "-n", NAMESPACE, "-o", "name"])
            .unwrap_or_default();
        if left.trim().is_empty() {
            break;
        }
        assert!(
            start.elapsed() < Duration::from_secs(60),
            "Nauti's pods did not go: {left}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
    // nauti-ovnmaster and nauti-nri stop, as helm uninstall removes them.
    drop(east);

    let kubeconfig = cluster.kubeconfig().display().to_string();
    let nb = cluster.central.nb_remote();
    let ovs = cluster.nodes[0].ovn.db_remote();
    let clean = |extra: &[&str]| {
        let mut args = vec![
            "--kubeconfig",
            &kubeconfig,
            "clean",
            "--ovn-nb",
            &nb,
            "--ovs-db",
            &ovs,
            "--node-nics",
        ];
        args.extend(extra);
        nautictl(&args)
    };
    let uninstalled = scan(cluster, "client");
    let dry = clean(&["--dry-run"]);
    assert_eq!(dry.code, Some(0), "{dry}");
    for listed in [
        "Node east-n0 link nti",
        &format!("Open_vSwitch {ovs} port nti"),
        "Pod default/client annotations ",
        "Logical_Router nauti-east-gw",
        "block # BEGIN nauti-crossdns",
    ] {
        assert!(dry.stdout.contains(listed), "{listed:?} not listed:\n{dry}");
    }
    assert_eq!(
        scan(cluster, "client"),
        uninstalled,
        "the dry run changed something"
    );
    let run = clean(&[]);
    eprintln!("clean of east in {:?}:\n{}", run.took, run.stdout);
    assert_eq!(run.code, Some(0), "{run}");
    for removed in [
        "removed Node east-n0 link nti",
        &format!("removed Open_vSwitch {ovs} port nti"),
    ] {
        assert!(run.stdout.contains(removed), "{removed:?} missing:\n{run}");
    }
    let after = scan(cluster, "client");
    assert!(
        after.is_empty(),
        "Nauti left in east after clean: {after:#?}\n{run}"
    );
    // The pod lives on without its second NIC; a second clean finds nothing.
    let again = clean(&[]);
    assert_eq!(again.code, Some(0), "{again}");
    assert_eq!(again.stdout, "nothing of Nauti left to remove\n", "{again}");
}
