//! crossdns against CoreDNS serving the same names, same machine, same run (`tests/bench/dns.sh`).
//!
//! A real kube-apiserver gets `DNS_BENCH_SERVICES` ClusterSetIP ServiceImports, each with one
//! imported slice of two ready endpoints from each of two clusters. crossdns (the release binary
//! given as the first argument) reads them; CoreDNS (`coredns` from the peers) serves the same A
//! records from two `file` zones. `dnsperf` then sends the same query file (A for every service
//! in both zones) to each, in turns, at full speed with the same number of queries in flight,
//! and the per-query latencies of its verbose output give p50 and p99.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::print_stdout
)]

use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::Path;
use std::process::Command;
use std::time::Duration;

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointPort, EndpointSlice};
use kube::api::{Api, ObjectMeta, PostParams};
use nauti_api::ServiceImport;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI,
    ServiceImportSpec, ServiceImportType, ServicePort,
};
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::process::wait_until;
use nauti_testbed::{Daemon, KubeApi, TestDir, peers};

const NS: &str = "bench";
const CLUSTERS: [&str; 2] = ["east", "west"];

fn env_or(name: &str, default: u64) -> u64 {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn vip(i: usize) -> String {
    format!("10.127.{}.{}", i / 250, i % 250 + 1)
}

fn endpoint_ip(cluster: usize, i: usize, k: usize) -> String {
    format!("10.{}.{}.{}", 113 + cluster, i / 120, (i % 120) * 2 + k + 1)
}

fn import(i: usize) -> ServiceImport {
    let mut import = ServiceImport::new(
        &format!("svc-{i}"),
        ServiceImportSpec {
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                app_protocol: None,
                port: 80,
            }],
            ips: vec![vip(i)],
            type_: ServiceImportType::ClusterSetIP,
            session_affinity: None,
            session_affinity_config: None,
            ip_families: vec![],
            internal_traffic_policy: None,
            traffic_distribution: None,
        },
    );
    import.metadata.namespace = Some(NS.into());
    import
}

fn slice(i: usize, c: usize) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("svc-{i}-{}", CLUSTERS[c])),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([
                (LABEL_SERVICE_NAME.to_owned(), format!("svc-{i}")),
                (LABEL_SOURCE_CLUSTER.to_owned(), CLUSTERS[c].to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_NAUTI.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(
            (0..2)
                .map(|k| Endpoint {
                    addresses: vec![endpoint_ip(c, i, k)],
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    }
}

/// The same names as `file` zones for CoreDNS.
fn write_zones(dir: &Path, services: usize) {
    for zone in ["clusterset.local", "hyperos.local"] {
        let mut text = format!(
            "$ORIGIN {zone}.\n@ 5 IN SOA ns.dns.{zone}. hostmaster.{zone}. 1 7200 1800 86400 5\n@ 5 IN NS ns.dns.{zone}.\n"
        );
        for i in 0..services {
            let name = format!("svc-{i}.{NS}.svc");
            if zone == "clusterset.local" {
                writeln!(text, "{name} 5 IN A {}", vip(i)).unwrap();
            } else {
                for c in 0..CLUSTERS.len() {
                    for k in 0..2 {
                        writeln!(text, "{name} 5 IN A {}", endpoint_ip(c, i, k)).unwrap();
                    }
                }
            }
        }
        std::fs::write(dir.join(format!("{zone}.zone")), text).unwrap();
    }
}

fn dig_ok(server: SocketAddr, name: &str, expect: &str) -> bool {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args([
            "-p",
            &server.port().to_string(),
            "+short",
            "+time=1",
            "+tries=1",
            name,
            "A",
        ])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).contains(expect)
}

struct Run {
    qps: f64,
    p50_ms: f64,
    p99_ms: f64,
    lost: u64,
}

/// One dnsperf run at full speed; latencies from its verbose per-query lines.
fn dnsperf(server: SocketAddr, queries: &Path, seconds: u64, in_flight: u64) -> Run {
    let out = Command::new("dnsperf")
        .args([
            "-s",
            &server.ip().to_string(),
            "-p",
            &server.port().to_string(),
        ])
        .arg("-d")
        .arg(queries)
        .args([
            "-l",
            &seconds.to_string(),
            "-q",
            &in_flight.to_string(),
            "-c",
            "4",
            "-T",
            "1",
            "-v",
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let mut latencies: Vec<f64> = text
        .lines()
        .filter(|l| l.starts_with("> "))
        .filter_map(|l| l.split_whitespace().last()?.parse().ok())
        .collect();
    latencies.sort_by(f64::total_cmp);
    let pct = |p: f64| {
        latencies
            .get(((latencies.len() as f64 - 1.0) * p) as usize)
            .copied()
            .unwrap_or(f64::NAN)
            * 1e3
    };
    let field = |key: &str| -> f64 {
        text.lines()
            .find(|l| l.trim_start().starts_with(key))
            .and_then(|l| l.split_whitespace().find_map(|w| w.parse().ok()))
            .unwrap_or(f64::NAN)
    };
    let qps = field("Queries per second:");
    let lost = field("Queries lost:") as u64;
    if qps.is_nan() {
        panic!(
            "dnsperf said:\n{text}\n{}",
            String::from_utf8_lossy(&out.stderr)
        );
    }
    Run {
        qps,
        p50_ms: pct(0.50),
        p99_ms: pct(0.99),
        lost,
    }
}

#[tokio::main]
async fn main() {
    let crossdns_bin = std::env::args()
        .nth(1)
        .expect("usage: dns_bench <crossdns binary>");
    let services = env_or("DNS_BENCH_SERVICES", 1000) as usize;
    let seconds = env_or("DNS_BENCH_SECONDS", 10);
    let rounds = env_or("DNS_BENCH_ROUNDS", 3);
    let in_flight = env_or("DNS_BENCH_IN_FLIGHT", 20);

    let dir = TestDir::new("dns-bench").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    kube.install_crds(&repo_crds()).await.unwrap();
    kube.create_namespace(NS).await.unwrap();
    let client = kube.client().await.unwrap();
    let imports: Api<ServiceImport> = Api::namespaced(client.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(client.clone(), NS);
    let pp = PostParams::default();
    futures::stream::iter(0..services)
        .map(|i| {
            let (imports, slices, pp) = (imports.clone(), slices.clone(), pp.clone());
            async move {
                imports.create(&pp, &import(i)).await.unwrap();
                for c in 0..CLUSTERS.len() {
                    slices.create(&pp, &slice(i, c)).await.unwrap();
                }
            }
        })
        .buffer_unordered(16)
        .collect::<Vec<()>>()
        .await;

    let port = |_| nauti_testbed::names::free_port().unwrap();
    let crossdns_addr: SocketAddr = format!("127.0.0.1:{}", port(())).parse().unwrap();
    let coredns_addr: SocketAddr = format!("127.0.0.1:{}", port(())).parse().unwrap();
    let mut cmd = Command::new(&crossdns_bin);
    cmd.env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(kube.kubeconfig())
        .args(["--dns-addr", &crossdns_addr.to_string()])
        .args(["--metrics-addr", &format!("127.0.0.1:{}", port(()))])
        .args(["--log", "warn"]);
    let mut crossdns = Daemon::spawn("crossdns", cmd, &dir.log("crossdns")).unwrap();
    let last = format!("svc-{}.{NS}.svc.clusterset.local", services - 1);
    crossdns
        .wait_ready(Duration::from_secs(60), || {
            dig_ok(crossdns_addr, &last, &vip(services - 1))
        })
        .unwrap();

    write_zones(dir.path(), services);
    let corefile = dir.path().join("Corefile");
    let mut core = String::new();
    for zone in ["clusterset.local", "hyperos.local"] {
        writeln!(
            core,
            "{zone}:{} {{\n  bind 127.0.0.1\n  file {}\n}}",
            coredns_addr.port(),
            dir.path().join(format!("{zone}.zone")).display()
        )
        .unwrap();
    }
    std::fs::write(&corefile, core).unwrap();
    let mut cmd = Command::new(peers::bin("coredns").unwrap());
    cmd.arg("-conf").arg(&corefile);
    let mut coredns = Daemon::spawn("coredns", cmd, &dir.log("coredns")).unwrap();
    coredns
        .wait_ready(Duration::from_secs(30), || {
            dig_ok(coredns_addr, &last, &vip(services - 1))
        })
        .unwrap();
    // Both answer the same hyperos name the same way.
    let probe = format!("svc-0.{NS}.svc.hyperos.local");
    assert!(wait_until(Duration::from_secs(5), || dig_ok(
        crossdns_addr,
        &probe,
        &endpoint_ip(1, 0, 1)
    )));
    assert!(dig_ok(coredns_addr, &probe, &endpoint_ip(1, 0, 1)));

    let queries = dir.path().join("queries.txt");
    let mut text = String::new();
    for i in 0..services {
        writeln!(text, "svc-{i}.{NS}.svc.clusterset.local A").unwrap();
        writeln!(text, "svc-{i}.{NS}.svc.hyperos.local A").unwrap();
    }
    std::fs::write(&queries, text).unwrap();

    let version = Command::new(peers::bin("coredns").unwrap())
        .arg("-version")
        .output()
        .unwrap();
    println!(
        "# {} services, {seconds}s per run, {rounds} rounds, {in_flight} queries in flight, dnsperf -c 4 -T 1; {}",
        services,
        String::from_utf8_lossy(&version.stdout)
            .lines()
            .next()
            .unwrap_or("coredns")
    );
    println!("| round | server | qps | p50 ms | p99 ms | lost |");
    println!("|---|---|---|---|---|---|");
    let (mut ours, mut theirs) = (Vec::new(), Vec::new());
    for round in 1..=rounds {
        for (name, addr) in [("crossdns", crossdns_addr), ("coredns", coredns_addr)] {
            let run = dnsperf(addr, &queries, seconds, in_flight);
            println!(
                "| {round} | {name} | {:.0} | {:.3} | {:.3} | {} |",
                run.qps, run.p50_ms, run.p99_ms, run.lost
            );
            if name == "crossdns" {
                ours.push(run)
            } else {
                theirs.push(run)
            }
        }
    }
    let median = |runs: &[Run], f: fn(&Run) -> f64| {
        let mut v: Vec<f64> = runs.iter().map(f).collect();
        v.sort_by(f64::total_cmp);
        v[v.len() / 2]
    };
    let (q1, q2) = (median(&ours, |r| r.qps), median(&theirs, |r| r.qps));
    let (p1, p2) = (median(&ours, |r| r.p99_ms), median(&theirs, |r| r.p99_ms));
    println!(
        "median: crossdns {q1:.0} qps (p99 {p1:.3} ms), coredns {q2:.0} qps (p99 {p2:.3} ms): ratio {:.2}x",
        q1 / q2
    );
    crossdns.stop(Duration::from_secs(5));
    coredns.stop(Duration::from_secs(5));
}
