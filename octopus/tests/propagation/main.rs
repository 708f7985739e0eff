//! Propagation benchmark (ignored by default; `tests/bench/propagation.sh` runs it): a hub and
//! three members on real kube-apiservers, an OVN central per member, `octopus hub`, three
//! `octopus member --ovn-nb ...` and a `crossdns` per member, all under the repository's RBAC
//! for octopus. Each member runs a third of `PROPAGATION_SERVICES` (1,000) Services, each with
//! one ready pod whose global address is a port on the member's logical switch. Then every
//! member creates its ServiceExports, one after the other, the three members at once (all at once,
//! or paced at `PROPAGATION_RATE` per second); for each
//! service, the time from just before its `ServiceExport` create call to the first correct
//! answer (`<svc>.default.svc.hyperos.local` A = the pod's global address) from the crossdns
//! of the next member, polled over UDP every `POLL` until a bound. Prints p50, p90, p99 and the
//! maximum.
//!
//! Binaries: `NAUTI_OCTOPUS_BIN` (default: this crate's `octopus`) and `NAUTI_CROSSDNS_BIN`
//! (default: `target/release/crossdns`), so the script runs release builds.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::collections::{BTreeMap, HashMap};
use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt as _;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use kube::runtime::{WatchStreamExt as _, watcher};
use nauti_api::MacAddr;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI, ServiceExport,
};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, Peer};
use nauti_octopus::hub::assign::assigned_slice;
use nauti_ovn::{Client, Endpoint as OvnEndpoint, LogicalSwitch, LogicalSwitchPort, Northbound};
use nauti_testbed::ovn::OvnCentral;
use nauti_testbed::{Daemon, KubeApi, TestDir, require_root};

#[path = "../support/mod.rs"]
mod support;
use support::{Hub, WAIT, issued_token, poll, start_hub, start_member_api, write_token};

const NS: &str = "default";
const CLUSTERS: usize = 3;
/// How often each pending name is asked again.
const POLL: Duration = Duration::from_millis(50);
/// Every service must be answered within this of the last export.
const ANSWER_BOUND: Duration = Duration::from_secs(180);
/// Requests in flight per member while the services are set up.
const SETUP_IN_FLIGHT: usize = 8;

fn services_wanted() -> usize {
    std::env::var("PROPAGATION_SERVICES")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(1000)
}

/// `PROPAGATION_RATE`: ServiceExports created per second, the members together; `None` (unset,
/// `0` or `burst`) creates them all at once.
fn export_rate() -> Option<f64> {
    std::env::var("PROPAGATION_RATE")
        .ok()
        .and_then(|v| v.parse::<f64>().ok())
        .filter(|rate| *rate > 0.0)
}

/// The 1, 5 and 15 minute load averages.
fn load_average() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|text| {
            text.split_whitespace()
                .take(3)
                .collect::<Vec<_>>()
                .join(" ")
        })
        .unwrap_or_default()
}

fn octopus_bin() -> PathBuf {
    std::env::var_os("NAUTI_OCTOPUS_BIN").map_or_else(
        || PathBuf::from(env!("CARGO_BIN_EXE_octopus")),
        PathBuf::from,
    )
}

fn crossdns_bin() -> PathBuf {
    std::env::var_os("NAUTI_CROSSDNS_BIN").map_or_else(
        || nauti_testbed::repo_root().join("target/release/crossdns"),
        PathBuf::from,
    )
}

fn spawn_octopus(dir: &TestDir, name: &str, args: &[&str]) -> Daemon {
    let mut cmd = Command::new(octopus_bin());
    cmd.args(["--log", "info"])
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0"]);
    Daemon::spawn(name, cmd, &dir.log(name)).unwrap()
}

struct Member {
    id: String,
    api: KubeApi,
    kubeconfig: PathBuf,
    admin: kube::Client,
    nb: Northbound,
    ovn: OvnCentral,
    _ovn_dir: TestDir,
}

async fn start_member(dir: &TestDir, id: String) -> Member {
    let api = start_member_api(dir, true).await;
    let ovn_dir = TestDir::new(&format!("octopus-propagation-ovn-{id}")).unwrap();
    let ovn = OvnCentral::start(&ovn_dir).unwrap();
    let nb = Northbound::new(
        Client::connect_to(OvnEndpoint::parse(&ovn.nb_remote()).unwrap())
            .await
            .unwrap(),
    );
    nb.ensure_logical_switch(&LogicalSwitch::new(format!("nauti-{id}")))
        .await
        .unwrap();
    Member {
        id,
        api: api.api,
        kubeconfig: api.kubeconfig,
        admin: api.admin,
        nb,
        ovn,
        _ovn_dir: ovn_dir,
    }
}

/// `crossdns` on the member's API server (its admin kubeconfig: RBAC is not what is measured
/// here) on a free loopback port; returns the daemon and its DNS address once it answers.
fn start_crossdns(dir: &TestDir, kubeconfig: &Path, name: &str) -> (Daemon, SocketAddr) {
    let port = nauti_testbed::names::free_port().unwrap();
    let dns: SocketAddr = format!("127.0.0.1:{port}").parse().unwrap();
    let mut cmd = Command::new(crossdns_bin());
    cmd.env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--dns-addr", &dns.to_string()])
        .args(["--metrics-addr", "127.0.0.1:0"])
        .args(["--udp-sockets", "1"]);
    let mut daemon = Daemon::spawn(name, cmd, &dir.log(name)).unwrap();
    daemon
        .wait_ready(Duration::from_secs(30), || {
            std::net::TcpStream::connect(dns).is_ok()
        })
        .unwrap();
    (daemon, dns)
}

/// The `index`th service's name.
fn service_name(index: usize) -> String {
    format!("svc-{index:04}")
}

/// The `n`th host of `slice`, past its first 256 addresses.
fn host(slice: IpNet, n: usize) -> Ipv4Addr {
    let IpNet::V4(v4) = slice else {
        panic!("IPv4 slices only here");
    };
    let address = Ipv4Addr::from(u32::from(v4.network()) + 256 + u32::try_from(n).unwrap());
    assert!(v4.contains(&address), "{address} outside {slice}");
    address
}

/// A query for `name` A with `id`.
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

/// Skips a (possibly compressed) name at `at`; the offset after it.
fn skip_name(packet: &[u8], mut at: usize) -> Option<usize> {
    loop {
        let len = *packet.get(at)?;
        if len & 0xc0 == 0xc0 {
            return Some(at + 2);
        }
        if len == 0 {
            return Some(at + 1);
        }
        at += 1 + usize::from(len);
    }
}

/// The id and the A records of a NOERROR response to one question; `None` for anything else.
fn a_answer(packet: &[u8]) -> Option<(u16, Vec<Ipv4Addr>)> {
    if packet.len() < 12 || packet[2] & 0x80 == 0 || packet[3] & 0x0f != 0 {
        return None;
    }
    let id = u16::from_be_bytes([packet[0], packet[1]]);
    let questions = u16::from_be_bytes([packet[4], packet[5]]);
    let answers = u16::from_be_bytes([packet[6], packet[7]]);
    let mut at = 12;
    for _ in 0..questions {
        at = skip_name(packet, at)? + 4;
    }
    let mut found = Vec::new();
    for _ in 0..answers {
        at = skip_name(packet, at)?;
        let fixed = packet.get(at..at + 10)?;
        let rtype = u16::from_be_bytes([fixed[0], fixed[1]]);
        let rdlength = usize::from(u16::from_be_bytes([fixed[8], fixed[9]]));
        at += 10;
        let rdata = packet.get(at..at + rdlength)?;
        if rtype == 1 && rdlength == 4 {
            found.push(Ipv4Addr::new(rdata[0], rdata[1], rdata[2], rdata[3]));
        }
        at += rdlength;
    }
    Some((id, found))
}

#[test]
fn a_answer_reads_the_a_records_of_a_response() {
    let mut response = query(7, "svc-0001.default.svc.hyperos.local");
    response[2] = 0x84;
    response[7] = 1;
    response.extend([0xc0, 12, 0, 1, 0, 1, 0, 0, 0, 5, 0, 4, 10, 112, 1, 9]);
    assert_eq!(
        a_answer(&response),
        Some((7, vec![Ipv4Addr::new(10, 112, 1, 9)]))
    );
    response[3] = 3;
    assert_eq!(a_answer(&response), None, "NXDOMAIN");
    assert_eq!(a_answer(&query(7, "a.b")), None, "not a response");
}

/// A pod's port as nauti-nri writes it (api/src/core/port.rs).
fn pod_port(pod: &str, uid: &str, ip: Ipv4Addr) -> LogicalSwitchPort {
    let ip = ip.to_string();
    let mac = MacAddr::from_ip(ip.parse().unwrap()).to_string();
    LogicalSwitchPort::new(nauti_api::core::port::lsp_name(NS, pod))
        .with_address(&mac, &[&ip])
        .with_external_id("pod", pod)
        .with_external_id("namespace", NS)
        .with_external_id("uid", uid)
        .with_external_id("node", "node-1")
        .with_external_id("sandbox", format!("sandbox-{pod}"))
        .with_external_id("nauti.io/owner", "pod")
}

/// A ready pod labelled `app=<service>` with `primary_ip`; its UID.
async fn ready_pod(
    client: &kube::Client,
    name: &str,
    service: &str,
    primary_ip: Ipv4Addr,
) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), service.to_owned())])),
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "web".to_owned(),
                image: Some("localhost/nauti/nginx:bookworm".to_owned()),
                ..Container::default()
            }],
            ..PodSpec::default()
        }),
        ..Pod::default()
    };
    let created = pods.create(&PostParams::default(), &pod).await.unwrap();
    let status = serde_json::json!({"status": {
        "phase": "Running",
        "podIP": primary_ip.to_string(),
        "podIPs": [{"ip": primary_ip.to_string()}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    created.metadata.uid.unwrap()
}

/// The Service `name` (port 80) and its EndpointSlice as the built-in controller writes it.
async fn service_with_slice(
    client: &kube::Client,
    name: &str,
    pod: &str,
    uid: &str,
    primary_ip: Ipv4Addr,
) {
    let service = Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), name.to_owned())])),
            ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                name: Some("http".to_owned()),
                port: 80,
                protocol: Some("TCP".to_owned()),
                ..Default::default()
            }]),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Api::<Service>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &service)
        .await
        .unwrap();
    let slice = EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{name}-x7k2p")),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/service-name".to_owned(), name.to_owned()),
                (
                    "endpointslice.kubernetes.io/managed-by".to_owned(),
                    "endpointslice-controller.k8s.io".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: Some(vec![Endpoint {
            addresses: vec![primary_ip.to_string()],
            conditions: Some(EndpointConditions {
                ready: Some(true),
                serving: Some(true),
                terminating: Some(false),
            }),
            target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                kind: Some("Pod".to_owned()),
                namespace: Some(NS.to_owned()),
                name: Some(pod.to_owned()),
                uid: Some(uid.to_owned()),
                ..Default::default()
            }),
            ..Endpoint::default()
        }]),
        ports: Some(vec![EndpointPort {
            name: Some("http".to_owned()),
            port: Some(80),
            protocol: Some("TCP".to_owned()),
            app_protocol: None,
        }]),
    };
    Api::<EndpointSlice>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &slice)
        .await
        .unwrap();
}

/// The value at quantile `q` of sorted `values` (nearest rank).
fn quantile(sorted: &[Duration], q: f64) -> Duration {
    let rank = ((q * sorted.len() as f64).ceil() as usize).clamp(1, sorted.len());
    sorted[rank - 1]
}

#[test]
fn quantiles_are_nearest_rank() {
    let values: Vec<Duration> = (1..=100).map(Duration::from_millis).collect();
    assert_eq!(quantile(&values, 0.5), Duration::from_millis(50));
    assert_eq!(quantile(&values, 0.99), Duration::from_millis(99));
    assert_eq!(quantile(&values, 1.0), Duration::from_millis(100));
    assert_eq!(quantile(&values[..1], 0.99), Duration::from_millis(1));
}

/// What the poller tracks per service.
#[derive(Clone, Debug)]
struct Watched {
    /// The crossdns asked (the member after the exporting one).
    server: usize,
    name: String,
    expected: Ipv4Addr,
    /// Just before its ServiceExport create call.
    exported: Option<Instant>,
    answered: Option<Instant>,
}

/// Asks each pending service's crossdns every [`POLL`] until all are answered correctly or
/// `stop`; answers are read by one thread per socket and stamped on arrival.
fn poll_answers(sockets: &[UdpSocket], watched: &Mutex<Vec<Watched>>, stop: &AtomicBool) {
    std::thread::scope(|scope| {
        for socket in sockets {
            scope.spawn(|| {
                socket
                    .set_read_timeout(Some(Duration::from_millis(100)))
                    .unwrap();
                let mut buf = [0u8; 1500];
                while !stop.load(Ordering::Relaxed) {
                    let Ok(len) = socket.recv(&mut buf) else {
                        continue;
                    };
                    let arrived = Instant::now();
                    let Some((id, addresses)) = a_answer(&buf[..len]) else {
                        continue;
                    };
                    let mut watched = watched.lock().unwrap();
                    let Some(service) = watched.get_mut(usize::from(id)) else {
                        continue;
                    };
                    if service.exported.is_some()
                        && service.answered.is_none()
                        && addresses == [service.expected]
                    {
                        service.answered = Some(arrived);
                    }
                }
            });
        }
        while !stop.load(Ordering::Relaxed) {
            let round = Instant::now();
            let pending: Vec<(usize, usize, String)> = watched
                .lock()
                .unwrap()
                .iter()
                .enumerate()
                .filter(|(_, s)| s.exported.is_some() && s.answered.is_none())
                .map(|(i, s)| (i, s.server, s.name.clone()))
                .collect();
            for (index, server, name) in pending {
                let packet = query(u16::try_from(index).unwrap(), &name);
                let _ = sockets[server].send(&packet);
            }
            std::thread::sleep(POLL.saturating_sub(round.elapsed()));
        }
    });
}

/// When each (source cluster, service) first had an EndpointSlice with an endpoint in `api`.
type FirstSeen = Arc<Mutex<HashMap<(String, String), Instant>>>;

/// Watches octopus's EndpointSlices in `api` and stamps the first one with an endpoint per
/// source cluster and service; stops when the returned task is aborted.
fn stamp_slices(api: Api<EndpointSlice>) -> (FirstSeen, tokio::task::JoinHandle<()>) {
    let seen: FirstSeen = Arc::default();
    let config =
        watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_NAUTI}"));
    let task = {
        let seen = seen.clone();
        tokio::spawn(async move {
            let mut slices = std::pin::pin!(watcher(api, config).applied_objects());
            while let Some(slice) = slices.next().await {
                let Ok(slice) = slice else { continue };
                let labels = slice.metadata.labels.clone().unwrap_or_default();
                let (Some(service), Some(cluster)) = (
                    labels.get(LABEL_SERVICE_NAME),
                    labels.get(LABEL_SOURCE_CLUSTER),
                ) else {
                    continue;
                };
                if slice.endpoints.as_ref().is_some_and(|e| !e.is_empty()) {
                    seen.lock()
                        .unwrap()
                        .entry((cluster.clone(), service.clone()))
                        .or_insert_with(Instant::now);
                }
            }
        })
    };
    (seen, task)
}

/// p50, p90, p99 and the maximum of `latencies`, in seconds.
fn summary(mut latencies: Vec<Duration>) -> String {
    latencies.sort();
    format!(
        "p50 {:.3} s, p90 {:.3} s, p99 {:.3} s, max {:.3} s",
        quantile(&latencies, 0.5).as_secs_f64(),
        quantile(&latencies, 0.9).as_secs_f64(),
        quantile(&latencies, 0.99).as_secs_f64(),
        latencies.last().unwrap().as_secs_f64(),
    )
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
#[ignore = "a benchmark: tests/bench/propagation.sh"]
async fn propagation_from_service_export_to_a_crossdns_answer_in_another_cluster() {
    require_root!();
    let total = services_wanted();
    assert!(total <= usize::from(u16::MAX), "ids are DNS message ids");
    let dir = TestDir::new("octopus-propagation").unwrap();
    let setup_started = Instant::now();
    let hub = start_hub(&dir).await;
    let _hub_octopus = spawn_octopus(
        &dir,
        "octopus-hub",
        &[
            "hub",
            "--kubeconfig",
            hub.kubeconfig.to_str().unwrap(),
            "--cluster-id",
            "hub",
            "--endpoint",
            "198.18.0.1",
        ],
    );
    let ids: Vec<String> = (0..CLUSTERS).map(|c| format!("cluster-{c}")).collect();
    let members: Vec<Member> =
        futures::future::join_all(ids.iter().map(|id| start_member(&dir, id.clone()))).await;
    let mut daemons = Vec::new();
    for member in &members {
        let token = write_token(&dir, &hub, &member.id, &issued_token(&hub));
        daemons.push(run_member(&dir, &hub, member, &token));
    }
    let peers = Api::<Peer>::namespaced(hub.admin.clone(), DEFAULT_PEER_NAMESPACE);
    let mut slices = Vec::new();
    for member in &members {
        let slice = poll(
            &format!("a slice for {}", member.id),
            WAIT,
            Duration::from_millis(100),
            || async {
                peers
                    .get_opt(&member.id)
                    .await
                    .unwrap()
                    .as_ref()
                    .and_then(assigned_slice)
            },
        )
        .await;
        slices.push(slice);
    }
    let mut crossdns = Vec::new();
    let mut servers = Vec::new();
    for member in &members {
        let (daemon, server) = start_crossdns(
            &dir,
            member.api.kubeconfig(),
            &format!("crossdns-{}", member.id),
        );
        crossdns.push(daemon);
        servers.push(server);
    }

    // The services: service i runs in member i % 3, and is asked for in member (i + 1) % 3.
    let mut watched = Vec::with_capacity(total);
    for index in 0..total {
        let cluster = index % CLUSTERS;
        let slot = index / CLUSTERS;
        watched.push(Watched {
            server: (cluster + 1) % CLUSTERS,
            name: format!("{}.{NS}.svc.hyperos.local", service_name(index)),
            expected: host(slices[cluster], slot),
            exported: None,
            answered: None,
        });
    }
    for (cluster, member) in members.iter().enumerate() {
        let indexes: Vec<usize> = (cluster..total).step_by(CLUSTERS).collect();
        let uids: Vec<(usize, String)> = futures::stream::iter(indexes.iter().copied())
            .map(|index| async move {
                let slot = index / CLUSTERS;
                let primary = Ipv4Addr::new(
                    10,
                    88,
                    u8::try_from(slot / 250).unwrap(),
                    u8::try_from(slot % 250 + 2).unwrap(),
                );
                let name = service_name(index);
                let pod = format!("{name}-0");
                let uid = ready_pod(&member.admin, &pod, &name, primary).await;
                service_with_slice(&member.admin, &name, &pod, &uid, primary).await;
                (index, uid)
            })
            .buffer_unordered(SETUP_IN_FLIGHT)
            .collect()
            .await;
        let ports: Vec<LogicalSwitchPort> = uids
            .iter()
            .map(|(index, uid)| {
                pod_port(
                    &format!("{}-0", service_name(*index)),
                    uid,
                    host(slices[cluster], index / CLUSTERS),
                )
            })
            .collect();
        member
            .nb
            .ensure_logical_switch_ports(&format!("nauti-{}", member.id), &ports)
            .await
            .unwrap();
    }
    // Every crossdns has synced (a known name answers) before anything is exported.
    for server in &servers {
        let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
        socket.connect(server).unwrap();
        socket
            .set_read_timeout(Some(Duration::from_millis(200)))
            .unwrap();
        poll("crossdns synced", WAIT, Duration::from_millis(100), || {
            let socket = &socket;
            async move {
                socket
                    .send(&query(1, "dns-version.clusterset.local"))
                    .ok()?;
                let mut buf = [0u8; 512];
                let len = socket.recv(&mut buf).ok()?;
                (len >= 12 && buf[3] & 0x0f == 0).then_some(())
            }
        })
        .await;
    }
    eprintln!(
        "set up {total} services in {} members in {:?}",
        CLUSTERS,
        setup_started.elapsed()
    );

    // Where the time goes: octopus's slices on the hub, and in each member.
    let (on_hub, hub_watch) = stamp_slices(Api::all(hub.admin.clone()));
    let member_watches: Vec<(FirstSeen, tokio::task::JoinHandle<()>)> = members
        .iter()
        .map(|m| stamp_slices(Api::namespaced(m.admin.clone(), NS)))
        .collect();
    tokio::time::sleep(Duration::from_secs(1)).await;

    // Export, the three members at once, while the poller asks.
    let watched = Arc::new(Mutex::new(watched));
    let stop = Arc::new(AtomicBool::new(false));
    let sockets: Vec<UdpSocket> = servers
        .iter()
        .map(|server| {
            let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
            socket.connect(server).unwrap();
            socket
        })
        .collect();
    let poller = {
        let watched = watched.clone();
        let stop = stop.clone();
        std::thread::spawn(move || poll_answers(&sockets, &watched, &stop))
    };
    let rate = export_rate();
    let load_before = load_average();
    let burst_started = Instant::now();
    futures::future::join_all(members.iter().enumerate().map(|(cluster, member)| {
        let watched = watched.clone();
        async move {
            let exports = Api::<ServiceExport>::namespaced(member.admin.clone(), NS);
            for index in (cluster..total).step_by(CLUSTERS) {
                // Paced: service i is due i / rate seconds in, whichever member runs it.
                if let Some(rate) = rate {
                    let due = burst_started + Duration::from_secs_f64(index as f64 / rate);
                    tokio::time::sleep_until(due.into()).await;
                }
                watched.lock().unwrap()[index].exported = Some(Instant::now());
                exports
                    .create(
                        &PostParams::default(),
                        &ServiceExport::new(&service_name(index)),
                    )
                    .await
                    .unwrap();
            }
        }
    }))
    .await;
    let burst = burst_started.elapsed();
    let load_after_creates = load_average();
    let deadline = Instant::now() + ANSWER_BOUND;
    while Instant::now() < deadline && watched.lock().unwrap().iter().any(|s| s.answered.is_none())
    {
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
    stop.store(true, Ordering::Relaxed);
    poller.join().unwrap();
    let watched = watched.lock().unwrap().clone();
    let unanswered: Vec<&str> = watched
        .iter()
        .filter(|s| s.answered.is_none())
        .map(|s| s.name.as_str())
        .collect();
    assert!(
        unanswered.is_empty(),
        "{} of {total} never answered, e.g. {:?}",
        unanswered.len(),
        unanswered.first()
    );
    hub_watch.abort();
    for (_, task) in &member_watches {
        task.abort();
    }
    let latencies: Vec<Duration> = watched
        .iter()
        .map(|s| s.answered.unwrap() - s.exported.unwrap())
        .collect();
    let last = watched.iter().filter_map(|s| s.answered).max().unwrap();
    let load_at_end = load_average();
    // Per service: the export, its slice on the hub, its slice in the member asked, the answer.
    let mut to_hub = Vec::new();
    let mut to_member = Vec::new();
    for (index, service) in watched.iter().enumerate() {
        let key = (ids[index % CLUSTERS].clone(), service_name(index));
        let exported = service.exported.unwrap();
        if let Some(seen) = on_hub.lock().unwrap().get(&key) {
            to_hub.push(seen.saturating_duration_since(exported));
        }
        if let Some(seen) = member_watches[service.server].0.lock().unwrap().get(&key) {
            to_member.push(seen.saturating_duration_since(exported));
        }
    }
    let mode = rate.map_or_else(
        || "all at once".to_owned(),
        |rate| format!("paced at {rate} per second"),
    );
    println!(
        "propagation: {total} services exported from {CLUSTERS} members in {burst:?} \
         (ServiceExport creates {mode}, the members side by side); ServiceExport to the first \
         correct crossdns answer in the next member (polled every {POLL:?}): {}; all answered \
         {:.3} s after the first export",
        summary(latencies),
        (last - burst_started).as_secs_f64(),
    );
    println!(
        "propagation load average: {load_before} before the first export, \
         {load_after_creates} after the last, {load_at_end} when all were answered"
    );
    println!(
        "propagation stages: ServiceExport to its EndpointSlice on the hub ({} seen): {}; \
         to the imported EndpointSlice in the next member ({} seen): {}",
        to_hub.len(),
        if to_hub.is_empty() {
            "none".to_owned()
        } else {
            summary(to_hub.clone())
        },
        to_member.len(),
        if to_member.is_empty() {
            "none".to_owned()
        } else {
            summary(to_member.clone())
        },
    );
    for (cluster, daemon) in daemons.iter_mut().enumerate() {
        assert!(daemon.is_running(), "octopus member {cluster} died");
    }
    for daemon in &mut crossdns {
        assert!(daemon.is_running(), "a crossdns died");
    }
}

fn run_member(dir: &TestDir, hub: &Hub, member: &Member, token_file: &Path) -> Daemon {
    let hub_url = hub.api.url();
    let ovn_nb = member.ovn.nb_remote();
    spawn_octopus(
        dir,
        &format!("octopus-{}", member.id),
        &[
            "member",
            "--kubeconfig",
            member.kubeconfig.to_str().unwrap(),
            "--hub-url",
            &hub_url,
            "--hub-ca-file",
            hub.ca_file.to_str().unwrap(),
            "--token-file",
            token_file.to_str().unwrap(),
            "--cluster-id",
            &member.id,
            "--ovn-nb",
            &ovn_nb,
        ],
    )
}
