//! A query flood against the `crossdns` binary, fed by a real kube-apiserver under the
//! identity of `deploy/rbac/crossdns.yaml`: for 10 s, UDP queries as fast as several sockets
//! send them (good names, unknown names, garbage) and TCP connections that send nothing, half
//! a query or a length prefix beyond the largest query, reopened as soon as crossdns closes
//! them, three times as many as it may hold. Throughout, crossdns's RSS stays under a bound,
//! the TCP connections it holds stay within `--max-tcp-connections`, and `dig` gets the right
//! A record; right after, also over TCP.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::{BTreeMap, BTreeSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::process::Command;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::time::{Duration, Instant};

use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use kube::api::{Api, ObjectMeta, PostParams};
use nauti_api::ServiceImport;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI,
    ServiceImportSpec, ServiceImportType, ServicePort,
};
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::process::wait_until;
use nauti_testbed::{Daemon, KubeApi, TestDir};

const NS: &str = "shop";
const USER: &str = "system:serviceaccount:nauti-system:crossdns";
const FLOOD: Duration = Duration::from_secs(10);
const MAX_TCP: usize = 64;
const IDLE_SECONDS: u64 = 2;
const UDP_FLOODERS: usize = 3;
/// crossdns's resident memory must stay under this during and after the flood (a debug
/// build idles at about 20 MiB; 64 TCP connections of at most a 4 KiB query and one answer
/// each, and UDP answered in line, add little).
const RSS_BOUND_KIB: u64 = 64 * 1024;
/// ... and grow by less than this over what it held before the flood.
const RSS_GROWTH_BOUND_KIB: u64 = 24 * 1024;
/// How many times a `dig` of five tries is run during the flood before it counts as wrong.
const DIG_RUNS: usize = 3;
/// Digs asked during the flood, at least.
const MIN_DIGS: usize = 3;
const VIP: &str = "10.127.0.10";
const NAME: &str = "web.shop.svc.clusterset.local";

fn dig(server: SocketAddr, name: &str, flags: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        // A flood fills crossdns's receive queues: a query may be dropped, as a resolver's
        // would be, and is retried.
        .args(["+norec", "+time=1", "+tries=5"])
        .args(flags)
        .args([name, "A"])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

/// The A records of `dig`'s answer section.
fn a_records(out: &str) -> Vec<String> {
    out.lines()
        .skip_while(|l| !l.starts_with(";; ANSWER SECTION:"))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| {
            let fields: Vec<&str> = l.split_whitespace().collect();
            (fields.get(3) == Some(&"A")).then(|| fields[4].to_owned())
        })
        .collect()
}

/// VmRSS of `pid`, in KiB.
fn rss_kib(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|v| v.parse().ok())
        .unwrap()
}

/// TCP connections (not listeners) on local `port` whose sockets `pid` holds open.
fn tcp_connections_held(pid: u32, port: u16) -> usize {
    let mut inodes = BTreeSet::new();
    for entry in std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .flatten()
    {
        if let Ok(target) = std::fs::read_link(entry.path()) {
            let target = target.to_string_lossy().into_owned();
            if let Some(inode) = target
                .strip_prefix("socket:[")
                .and_then(|t| t.strip_suffix(']'))
            {
                inodes.insert(inode.to_owned());
            }
        }
    }
    // Distinct inodes: the table is read in several chunks while it changes, and the kernel
    // may list an entry twice across them.
    let table = std::fs::read_to_string(format!("/proc/{pid}/net/tcp")).unwrap();
    let held: BTreeSet<&str> = table
        .lines()
        .skip(1)
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            let local_port = fields[1]
                .rsplit(':')
                .next()
                .and_then(|p| u16::from_str_radix(p, 16).ok());
            // 0A: LISTEN.
            (local_port == Some(port) && fields[3] != "0A" && inodes.contains(fields[9]))
                .then_some(fields[9])
        })
        .collect();
    held.len()
}

fn query(id: u16, name: &str) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend(id.to_be_bytes());
    packet.extend([0, 0, 0, 1, 0, 0, 0, 0, 0, 0]);
    for label in name.split('.') {
        packet.push(u8::try_from(label.len()).unwrap());
        packet.extend(label.as_bytes());
    }
    packet.extend([0, 0, 1, 0, 1]);
    packet
}

/// Sends queries from its own socket until `stop`, draining answers between bursts; counts both.
fn flood_udp(server: SocketAddr, stop: &AtomicBool, sent: &AtomicU64, answered: &AtomicU64) {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket.set_nonblocking(true).unwrap();
    let good = query(1, NAME);
    let unknown = query(2, "nope.shop.svc.clusterset.local");
    let other_zone = query(3, "example.com");
    let garbage = vec![0xab; 300];
    let packets = [&good, &unknown, &other_zone, &garbage];
    let mut buf = [0u8; 1500];
    let mut i = 0usize;
    while !stop.load(Ordering::Relaxed) {
        for _ in 0..64 {
            i += 1;
            if socket.send_to(packets[i % packets.len()], server).is_ok() {
                sent.fetch_add(1, Ordering::Relaxed);
            }
        }
        while socket.recv_from(&mut buf).is_ok() {
            answered.fetch_add(1, Ordering::Relaxed);
        }
        std::thread::yield_now();
    }
}

/// What a bad TCP client sends before holding its connection open.
fn bad_opening(kind: usize) -> Vec<u8> {
    match kind % 3 {
        0 => Vec::new(),
        // Half a query: a prefix of 45 bytes, 10 of them.
        1 => {
            let mut half = 45u16.to_be_bytes().to_vec();
            half.extend(&query(4, NAME)[..10]);
            half
        }
        // A length prefix beyond the largest query crossdns reads, and a little of it.
        _ => vec![0xff, 0xff, 1, 2, 3, 4],
    }
}

/// Keeps `3 * MAX_TCP` bad connections open until `stop`, reopening those crossdns closes;
/// counts the connections opened.
fn flood_tcp(server: SocketAddr, stop: &AtomicBool, opened: &AtomicU64) {
    let mut held: Vec<TcpStream> = Vec::new();
    let mut kind = 0usize;
    while !stop.load(Ordering::Relaxed) {
        // Drop those crossdns closed (a read of 0 bytes, or a reset).
        held.retain(|stream| {
            let mut byte = [0u8; 1];
            match stream.peek(&mut byte) {
                Ok(0) => false,
                Ok(_) => true,
                Err(error) => error.kind() == std::io::ErrorKind::WouldBlock,
            }
        });
        while held.len() < 3 * MAX_TCP && !stop.load(Ordering::Relaxed) {
            let Ok(mut stream) = TcpStream::connect_timeout(&server, Duration::from_millis(500))
            else {
                break;
            };
            opened.fetch_add(1, Ordering::Relaxed);
            kind += 1;
            let _ = stream.write_all(&bad_opening(kind));
            stream.set_nonblocking(true).unwrap();
            held.push(stream);
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

async fn scrape(addr: SocketAddr) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET /metrics HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

/// The value of the sample named `name` (with its labels) in a text exposition.
fn sample(metrics: &str, name: &str) -> f64 {
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(name)?.strip_prefix(' '))
        .and_then(|v| v.trim().parse().ok())
        .unwrap_or(0.0)
}

fn start_crossdns(dir: &TestDir, kubeconfig: &Path) -> (Daemon, SocketAddr, SocketAddr) {
    let dns: SocketAddr = format!("127.0.0.1:{}", nauti_testbed::names::free_port().unwrap())
        .parse()
        .unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{}", nauti_testbed::names::free_port().unwrap())
        .parse()
        .unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossdns"));
    cmd.env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--dns-addr", &dns.to_string()])
        .args(["--metrics-addr", &metrics.to_string()])
        .args(["--udp-sockets", "2"])
        .env("NAUTI_MAX_TCP_CONNECTIONS", MAX_TCP.to_string())
        .env("NAUTI_TCP_IDLE_SECONDS", IDLE_SECONDS.to_string());
    let mut daemon = Daemon::spawn("crossdns", cmd, &dir.log("crossdns")).unwrap();
    daemon
        .wait_ready(Duration::from_secs(30), || TcpStream::connect(dns).is_ok())
        .unwrap();
    (daemon, dns, metrics)
}

async fn create_web(admin: &kube::Client) {
    let pp = PostParams::default();
    let mut import = ServiceImport::new(
        "web",
        ServiceImportSpec {
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                app_protocol: None,
                port: 80,
            }],
            ips: vec![VIP.to_owned()],
            type_: ServiceImportType::ClusterSetIP,
            session_affinity: None,
            session_affinity_config: None,
            ip_families: vec![],
            internal_traffic_policy: None,
            traffic_distribution: None,
        },
    );
    import.metadata.namespace = Some(NS.into());
    Api::<ServiceImport>::namespaced(admin.clone(), NS)
        .create(&pp, &import)
        .await
        .unwrap();
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("web-east".into()),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([
                (LABEL_SERVICE_NAME.to_owned(), "web".to_owned()),
                (LABEL_SOURCE_CLUSTER.to_owned(), "east".to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_NAUTI.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".into(),
        endpoints: Some(vec![Endpoint {
            addresses: vec!["10.113.0.5".into()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            ..Endpoint::default()
        }]),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    };
    Api::<EndpointSlice>::namespaced(admin.clone(), NS)
        .create(&pp, &slice)
        .await
        .unwrap();
}

/// What the sampler saw during the flood.
#[derive(Debug, Default)]
struct Seen {
    max_rss_kib: u64,
    max_tcp_held: usize,
    digs: usize,
    slowest_dig: Duration,
    wrong_digs: Vec<String>,
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_query_flood_leaves_memory_and_connections_bounded_and_dig_answered() {
    let dir = TestDir::new("crossdns-flood").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    kube.install_crds(&repo_crds()).await.unwrap();
    for namespace in ["nauti-system", NS] {
        kube.create_namespace(namespace).await.unwrap();
    }
    kube.apply_repo_file("deploy/rbac/crossdns.yaml").unwrap();
    let admin = kube.client().await.unwrap();
    let kubeconfig = kube
        .kubeconfig_for(
            USER,
            &[
                "system:serviceaccounts",
                "system:serviceaccounts:nauti-system",
            ],
        )
        .unwrap();
    let (mut crossdns, server, metrics_addr) = start_crossdns(&dir, &kubeconfig);
    let pid = crossdns.pid();
    create_web(&admin).await;
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(15), || {
            last = dig(server, NAME, &[]);
            a_records(&last) == [VIP]
        }),
        "{NAME} never answered {VIP}:\n{last}"
    );
    // The index is synced and a query answered on every path: what it holds from here on
    // is its working size.
    assert_eq!(a_records(&dig(server, NAME, &["+tcp"])), [VIP]);
    std::thread::sleep(Duration::from_millis(500));
    let rss_before = rss_kib(pid);

    let stop = AtomicBool::new(false);
    let sent = AtomicU64::new(0);
    let answered = AtomicU64::new(0);
    let opened = AtomicU64::new(0);
    let started = Instant::now();
    let seen = tokio::task::block_in_place(|| {
        std::thread::scope(|scope| {
            for _ in 0..UDP_FLOODERS {
                scope.spawn(|| flood_udp(server, &stop, &sent, &answered));
            }
            scope.spawn(|| flood_tcp(server, &stop, &opened));
            let mut seen = Seen::default();
            let mut next_dig = Instant::now() + Duration::from_millis(500);
            // A slow dig may leave fewer than three in the flood's time: it goes on (bounded)
            // until three were asked under it.
            while (started.elapsed() < FLOOD || seen.digs < MIN_DIGS)
                && started.elapsed() < FLOOD * 4
            {
                seen.max_rss_kib = seen.max_rss_kib.max(rss_kib(pid));
                let held = tcp_connections_held(pid, server.port());
                seen.max_tcp_held = seen.max_tcp_held.max(held);
                if Instant::now() >= next_dig {
                    let asked = Instant::now();
                    // Beyond crossdns's rate every queue is full and most datagrams drop, a
                    // client's as well: like a resolver, it asks again (five tries a run, up
                    // to three runs, the flood going on). An answer must always be right.
                    let mut out = dig(server, NAME, &[]);
                    for _ in 1..DIG_RUNS {
                        if !out.contains("no servers could be reached") {
                            break;
                        }
                        out = dig(server, NAME, &[]);
                    }
                    seen.slowest_dig = seen.slowest_dig.max(asked.elapsed());
                    seen.digs += 1;
                    if a_records(&out) != [VIP] {
                        seen.wrong_digs.push(out);
                    }
                    next_dig = Instant::now() + Duration::from_secs(1);
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            stop.store(true, Ordering::Relaxed);
            seen
        })
    });
    let sent = sent.into_inner();
    let answered = answered.into_inner();
    let opened = opened.into_inner();
    eprintln!(
        "flood of {FLOOD:?}: {sent} datagrams sent, {answered} answers received, {opened} TCP \
         connections opened; RSS {rss_before} KiB before, at most {} KiB during; at most {} TCP \
         connections held (limit {MAX_TCP}); {} digs, the slowest {:?}",
        seen.max_rss_kib, seen.max_tcp_held, seen.digs, seen.slowest_dig
    );

    // The flood was one: tens of thousands of datagrams, answered, and far more TCP
    // connections than crossdns may hold.
    assert!(sent > 20_000, "only {sent} datagrams sent");
    assert!(answered > 5_000, "only {answered} answers");
    assert!(opened > 3 * MAX_TCP as u64, "only {opened} connections");
    assert!(seen.max_tcp_held > 0, "the sampler never saw a connection");
    // At the limit, a new connection is accepted only to be closed at once (and counted as
    // refused): a sample can catch that one beside the served ones.
    assert!(
        seen.max_tcp_held <= MAX_TCP + 1,
        "{} TCP connections held, limit {MAX_TCP} served plus the one being refused",
        seen.max_tcp_held
    );
    assert!(
        seen.max_rss_kib < RSS_BOUND_KIB,
        "RSS {} KiB, bound {RSS_BOUND_KIB} KiB",
        seen.max_rss_kib
    );
    assert!(
        seen.max_rss_kib < rss_before + RSS_GROWTH_BOUND_KIB,
        "RSS grew from {rss_before} KiB to {} KiB",
        seen.max_rss_kib
    );
    assert!(
        seen.digs >= MIN_DIGS,
        "only {} digs during the flood",
        seen.digs
    );
    assert!(
        seen.wrong_digs.is_empty(),
        "{} of {} digs during the flood went wrong; first:\n{}",
        seen.wrong_digs.len(),
        seen.digs,
        seen.wrong_digs[0]
    );

    // Right after: UDP at once, and TCP too, since the held connections time out.
    assert_eq!(a_records(&dig(server, NAME, &[])), [VIP]);
    let mut last = String::new();
    assert!(
        wait_until(Duration::from_secs(IDLE_SECONDS + 3), || {
            last = dig(server, NAME, &["+tcp", "+time=1", "+tries=1"]);
            a_records(&last) == [VIP]
        }),
        "no TCP answer after the flood:\n{last}"
    );
    assert!(
        wait_until(Duration::from_secs(IDLE_SECONDS + 3), || {
            tcp_connections_held(pid, server.port()) == 0
        }),
        "crossdns still holds {} TCP connections",
        tcp_connections_held(pid, server.port())
    );
    assert!(rss_kib(pid) < RSS_BOUND_KIB);

    // Why the connections went: all three kinds of reason were seen, and the surplus refused.
    let metrics = scrape(metrics_addr).await;
    for name in [
        "nauti_crossdns_tcp_closed_total{reason=\"timeout\"}",
        "nauti_crossdns_tcp_closed_total{reason=\"bad_length\"}",
        "nauti_crossdns_tcp_refused_total",
        "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"NoError\"}",
        "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"NXDomain\"}",
        "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"Refused\"}",
    ] {
        assert!(sample(&metrics, name) > 0.0, "{name} is 0 in\n{metrics}");
    }
    assert_eq!(
        sample(&metrics, "nauti_crossdns_tcp_connections"),
        0.0,
        "{metrics}"
    );
    assert!(
        crossdns.is_running(),
        "crossdns died; log:\n{}",
        nauti_testbed::process::tail(crossdns.log(), 40)
    );
}
