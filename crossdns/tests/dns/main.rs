//! The `crossdns` binary against a real kube-apiserver, queried with the real `dig`. It runs
//! under an identity bound only to `deploy/rbac/crossdns.yaml`, so that role is proven
//! sufficient. One apiserver for the whole binary's scenario.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::collections::BTreeMap;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::ServiceAccount;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, DeleteParams, ObjectMeta, Patch, PatchParams, PostParams};
use nauti_api::ServiceImport;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI,
    ServiceImportSpec, ServiceImportType, ServicePort,
};
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::process::wait_until;
use nauti_testbed::{Daemon, KubeApi, TestDir};

mod coredns;

const NS: &str = "shop";
const USER: &str = "system:serviceaccount:nauti-system:crossdns";
/// How long an answer may take to follow a change.
const FOLLOW: Duration = Duration::from_secs(10);

/// A crossdns process and where it answers.
struct Crossdns {
    daemon: Daemon,
    dns: SocketAddr,
    metrics: SocketAddr,
}

fn start_crossdns(dir: &TestDir, kubeconfig: &std::path::Path) -> Crossdns {
    let dns_port = nauti_testbed::names::free_port().unwrap();
    let metrics_port = nauti_testbed::names::free_port().unwrap();
    let dns: SocketAddr = format!("127.0.0.1:{dns_port}").parse().unwrap();
    let metrics: SocketAddr = format!("127.0.0.1:{metrics_port}").parse().unwrap();
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_crossdns"));
    cmd.env_remove("KUBECONFIG")
        .arg("--kubeconfig")
        .arg(kubeconfig)
        .args(["--dns-addr", &dns.to_string()])
        .args(["--metrics-addr", &metrics.to_string()]);
    let mut daemon = Daemon::spawn("crossdns", cmd, &dir.log("crossdns")).unwrap();
    daemon
        .wait_ready(Duration::from_secs(30), || {
            std::net::TcpStream::connect(dns).is_ok()
        })
        .unwrap();
    Crossdns {
        daemon,
        dns,
        metrics,
    }
}

/// A kubeconfig of crossdns's service account (rights: only what its RBAC grants).
fn crossdns_kubeconfig(kube: &KubeApi) -> std::path::PathBuf {
    kube.kubeconfig_for(
        USER,
        &[
            "system:serviceaccounts",
            "system:serviceaccounts:nauti-system",
        ],
    )
    .unwrap()
}

/// `dig` output for `name`/`qtype` with extra flags.
fn dig(server: SocketAddr, name: &str, qtype: &str, flags: &[&str]) -> String {
    let out = Command::new("dig")
        .arg(format!("@{}", server.ip()))
        .args(["-p", &server.port().to_string()])
        .args(["+norec", "+time=2", "+tries=1"])
        .args(flags)
        .args([name, qtype])
        .output()
        .unwrap();
    String::from_utf8_lossy(&out.stdout).into_owned()
}

fn status(out: &str) -> &str {
    out.split("status: ")
        .nth(1)
        .and_then(|s| s.split(',').next())
        .unwrap_or("none")
}

/// The data of the answer section's records of `qtype`, sorted.
fn answers(out: &str, qtype: &str) -> Vec<String> {
    let mut found: Vec<String> = section(out, "ANSWER")
        .into_iter()
        .filter_map(|line| {
            let fields: Vec<&str> = line.split_whitespace().collect();
            (fields.get(3) == Some(&qtype)).then(|| fields[4..].join(" "))
        })
        .collect();
    found.sort();
    found
}

fn section<'a>(out: &'a str, name: &str) -> Vec<&'a str> {
    let header = format!(";; {name} SECTION:");
    out.lines()
        .skip_while(|l| !l.starts_with(&header))
        .skip(1)
        .take_while(|l| !l.trim().is_empty())
        .collect()
}

fn import(name: &str, type_: ServiceImportType, ips: &[&str]) -> ServiceImport {
    let mut import = ServiceImport::new(
        name,
        ServiceImportSpec {
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                app_protocol: None,
                port: 80,
            }],
            ips: ips.iter().map(|s| (*s).to_owned()).collect(),
            type_,
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

fn endpoint(address: &str, hostname: Option<&str>, ready: bool) -> Endpoint {
    Endpoint {
        addresses: vec![address.to_owned()],
        hostname: hostname.map(str::to_owned),
        conditions: Some(EndpointConditions {
            ready: Some(ready),
            serving: Some(ready),
            terminating: Some(false),
        }),
        ..Endpoint::default()
    }
}

fn slice(
    name: &str,
    service: &str,
    cluster: &str,
    family: &str,
    endpoints: Vec<Endpoint>,
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.into()),
            namespace: Some(NS.into()),
            labels: Some(BTreeMap::from([
                (LABEL_SERVICE_NAME.to_owned(), service.to_owned()),
                (LABEL_SOURCE_CLUSTER.to_owned(), cluster.to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_NAUTI.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        address_type: family.into(),
        endpoints: Some(endpoints),
        ports: Some(vec![EndpointPort {
            name: Some("http".into()),
            port: Some(8080),
            protocol: Some("TCP".into()),
            app_protocol: None,
        }]),
    }
}

/// Creates every object of `deploy/rbac/crossdns.yaml` with the admin client.
async fn apply_rbac(admin: &kube::Client) {
    let path = nauti_testbed::repo_root().join("deploy/rbac/crossdns.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let pp = PostParams::default();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    for value in docs {
        match value["kind"].as_str().unwrap() {
            "ServiceAccount" => {
                let ns = value["metadata"]["namespace"].as_str().unwrap().to_owned();
                Api::<ServiceAccount>::namespaced(admin.clone(), &ns)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "ClusterRole" => {
                Api::<ClusterRole>::all(admin.clone())
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "ClusterRoleBinding" => {
                Api::<ClusterRoleBinding>::all(admin.clone())
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "Role" => {
                let ns = value["metadata"]["namespace"].as_str().unwrap().to_owned();
                Api::<Role>::namespaced(admin.clone(), &ns)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "RoleBinding" => {
                let ns = value["metadata"]["namespace"].as_str().unwrap().to_owned();
                Api::<RoleBinding>::namespaced(admin.clone(), &ns)
                    .create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            other => panic!("unexpected kind {other} in {}", path.display()),
        }
    }
}

/// Polls `dig` until `check` holds on its output, for at most [`FOLLOW`].
fn dig_until(server: SocketAddr, name: &str, qtype: &str, check: impl Fn(&str) -> bool) -> String {
    let mut last = String::new();
    let ok = wait_until(FOLLOW, || {
        last = dig(server, name, qtype, &[]);
        check(&last)
    });
    assert!(ok, "{name} {qtype} never matched; last answer:\n{last}");
    last
}

/// A response's id and rcode.
type IdAndRcode = (u16, u8);

const NOERROR: u8 = 0;
const FORMERR: u8 = 1;
const NOTIMP: u8 = 4;

/// A DNS message with `flags` and the questions (`name`, `qtype`) of class IN.
fn query_packet(id: u16, flags: u16, questions: &[(&str, u16)]) -> Vec<u8> {
    let mut packet = Vec::new();
    packet.extend(id.to_be_bytes());
    packet.extend(flags.to_be_bytes());
    packet.extend(u16::try_from(questions.len()).unwrap().to_be_bytes());
    packet.extend([0u8; 6]);
    for (name, qtype) in questions {
        for label in name.split('.') {
            packet.push(u8::try_from(label.len()).unwrap());
            packet.extend(label.as_bytes());
        }
        packet.push(0);
        packet.extend(qtype.to_be_bytes());
        packet.extend(1u16.to_be_bytes());
    }
    packet
}

/// Sends one datagram from a fresh socket; the response's id and rcode, if one comes within
/// half a second. Every response must be a response (QR set).
fn exchange(server: SocketAddr, packet: &[u8]) -> Option<IdAndRcode> {
    let socket = UdpSocket::bind("127.0.0.1:0").unwrap();
    socket
        .set_read_timeout(Some(Duration::from_millis(500)))
        .unwrap();
    socket.send_to(packet, server).unwrap();
    let mut buf = [0u8; 1500];
    let (len, _) = socket.recv_from(&mut buf).ok()?;
    assert!(len >= 12 && buf[2] & 0x80 != 0, "{:?}", &buf[..len]);
    Some((u16::from_be_bytes([buf[0], buf[1]]), buf[3] & 0x0f))
}

async fn scrape(addr: SocketAddr, path: &str) -> String {
    let mut stream = TcpStream::connect(addr).unwrap();
    write!(
        stream,
        "GET {path} HTTP/1.1\r\nHost: t\r\nConnection: close\r\n\r\n"
    )
    .unwrap();
    let mut out = String::new();
    stream.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn crossdns_answers_the_imports_of_a_real_apiserver_with_dig() {
    let dir = TestDir::new("crossdns-dig").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    kube.install_crds(&repo_crds()).await.unwrap();
    for namespace in ["nauti-system", "kube-system", NS] {
        kube.create_namespace(namespace).await.unwrap();
    }
    let admin = kube.client().await.unwrap();
    let kubeconfig = crossdns_kubeconfig(&kube);

    // Started before its role exists: the lists are forbidden, nothing is synced, and queries
    // in our zones get SERVFAIL rather than a negative answer a resolver would cache.
    let mut crossdns = start_crossdns(&dir, &kubeconfig);
    let server = crossdns.dns;
    let out = dig(server, "web.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(status(&out), "SERVFAIL", "{out}");
    assert!(
        scrape(crossdns.metrics, "/readyz")
            .await
            .starts_with("HTTP/1.1 503")
    );
    // Other zones are refused from the start.
    let out = dig(server, "example.com", "A", &[]);
    assert_eq!(status(&out), "REFUSED", "{out}");

    apply_rbac(&admin).await;
    let out = dig_until(server, "dns-version.clusterset.local", "TXT", |o| {
        status(o) == "NOERROR"
    });
    assert_eq!(answers(&out, "TXT"), ["\"1.0.0\""], "{out}");
    assert!(
        scrape(crossdns.metrics, "/readyz")
            .await
            .starts_with("HTTP/1.1 200")
    );

    // The objects octopus would write.
    let imports: Api<ServiceImport> = Api::namespaced(admin.clone(), NS);
    let slices: Api<EndpointSlice> = Api::namespaced(admin.clone(), NS);
    let pp = PostParams::default();
    imports
        .create(
            &pp,
            &import("web", ServiceImportType::ClusterSetIP, &["10.127.0.10"]),
        )
        .await
        .unwrap();
    imports
        .create(&pp, &import("db", ServiceImportType::Headless, &[]))
        .await
        .unwrap();
    let web_east = slice(
        "web-east",
        "web",
        "east",
        "IPv4",
        vec![
            endpoint("10.113.0.5", None, true),
            endpoint("10.113.0.6", None, false),
        ],
    );
    slices.create(&pp, &web_east).await.unwrap();
    slices
        .create(
            &pp,
            &slice(
                "web-west",
                "web",
                "west",
                "IPv4",
                vec![endpoint("10.114.0.7", None, true)],
            ),
        )
        .await
        .unwrap();
    slices
        .create(
            &pp,
            &slice(
                "web-west-v6",
                "web",
                "west",
                "IPv6",
                vec![endpoint("fd00:72::7", None, true)],
            ),
        )
        .await
        .unwrap();
    slices
        .create(
            &pp,
            &slice(
                "db-east",
                "db",
                "east",
                "IPv4",
                vec![
                    endpoint("10.113.1.1", Some("db-0"), true),
                    endpoint("10.113.1.2", Some("db-1"), true),
                ],
            ),
        )
        .await
        .unwrap();
    // A slice without Nauti's managed-by is not ours: never answered.
    let mut foreign = slice(
        "web-foreign",
        "web",
        "east",
        "IPv4",
        vec![endpoint("10.113.9.9", None, true)],
    );
    foreign
        .metadata
        .labels
        .as_mut()
        .unwrap()
        .remove(LABEL_MANAGED_BY);
    slices.create(&pp, &foreign).await.unwrap();

    // hyperos.local: the ready endpoints of every cluster.
    let out = dig_until(server, "web.shop.svc.hyperos.local", "A", |o| {
        answers(o, "A").len() == 2
    });
    assert_eq!(answers(&out, "A"), ["10.113.0.5", "10.114.0.7"], "{out}");
    assert!(out.contains("flags: qr aa"), "{out}");
    let out = dig(server, "web.shop.svc.hyperos.local", "AAAA", &[]);
    assert_eq!(answers(&out, "AAAA"), ["fd00:72::7"], "{out}");
    // clusterset.local: the clusterset IP, SRV by port and by bare name.
    let out = dig(server, "WEB.shop.svc.ClusterSet.local", "A", &[]);
    assert_eq!(answers(&out, "A"), ["10.127.0.10"], "{out}");
    assert!(
        section(&out, "ANSWER")
            .iter()
            .all(|l| l.split_whitespace().nth(1) == Some("5")),
        "TTL 5 expected:\n{out}"
    );
    let out = dig(
        server,
        "_http._tcp.web.shop.svc.clusterset.local",
        "SRV",
        &[],
    );
    assert_eq!(
        answers(&out, "SRV"),
        ["0 100 80 web.shop.svc.clusterset.local."],
        "{out}"
    );
    let out = dig(server, "web.shop.svc.clusterset.local", "SRV", &[]);
    assert_eq!(
        answers(&out, "SRV"),
        ["0 100 80 web.shop.svc.clusterset.local."],
        "{out}"
    );
    // Headless: the endpoints, per-host names, SRV to each host at the pods' port.
    let out = dig(server, "db.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(answers(&out, "A"), ["10.113.1.1", "10.113.1.2"], "{out}");
    let out = dig(server, "db-1.east.db.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(answers(&out, "A"), ["10.113.1.2"], "{out}");
    let out = dig(
        server,
        "_http._tcp.db.shop.svc.clusterset.local",
        "SRV",
        &[],
    );
    assert_eq!(
        answers(&out, "SRV"),
        [
            "0 100 8080 db-0.east.db.shop.svc.clusterset.local.",
            "0 100 8080 db-1.east.db.shop.svc.clusterset.local."
        ],
        "{out}"
    );
    // Negative answers carry the zone's SOA; NXDOMAIN and NODATA apart.
    let out = dig(server, "nope.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    assert!(
        section(&out, "AUTHORITY")
            .iter()
            .any(|l| l.contains("SOA") && l.starts_with("clusterset.local.")),
        "{out}"
    );
    let out = dig(server, "web.shop.svc.clusterset.local", "TXT", &[]);
    assert_eq!(status(&out), "NOERROR", "{out}");
    assert!(answers(&out, "TXT").is_empty(), "{out}");
    assert!(
        section(&out, "AUTHORITY").iter().any(|l| l.contains("SOA")),
        "{out}"
    );
    // Negative answers are cached for the same small TTL (the SOA's minimum and TTL).
    let out = dig(server, "nope.shop.svc.hyperos.local", "A", &[]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");
    let soa: Vec<&str> = section(&out, "AUTHORITY")[0].split_whitespace().collect();
    assert_eq!(
        (soa[0], soa[1], soa[3]),
        ("hyperos.local.", "5", "SOA"),
        "{out}"
    );
    assert_eq!(soa.last(), Some(&"5"), "SOA minimum:\n{out}");
    // Names that exist only because names below them do: NODATA, not NXDOMAIN.
    for name in [
        "east.db.shop.svc.clusterset.local",
        "_tcp.web.shop.svc.clusterset.local",
        "shop.svc.clusterset.local",
        "svc.hyperos.local",
    ] {
        let out = dig(server, name, "A", &[]);
        assert_eq!(status(&out), "NOERROR", "{name}:\n{out}");
        assert!(answers(&out, "A").is_empty(), "{name}:\n{out}");
    }
    let out = dig(server, "west.db.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(
        status(&out),
        "NXDOMAIN",
        "no endpoint of db in west:\n{out}"
    );
    // The headless bare name's SRV targets every host; TTL 5 in the hyperos zone too.
    let out = dig(server, "db.shop.svc.clusterset.local", "SRV", &[]);
    assert_eq!(
        answers(&out, "SRV"),
        [
            "0 100 8080 db-0.east.db.shop.svc.clusterset.local.",
            "0 100 8080 db-1.east.db.shop.svc.clusterset.local."
        ],
        "{out}"
    );
    let out = dig(server, "web.shop.svc.hyperos.local", "A", &[]);
    assert!(
        section(&out, "ANSWER")
            .iter()
            .all(|l| l.split_whitespace().nth(1) == Some("5")),
        "TTL 5 expected:\n{out}"
    );
    let out = dig(server, "east.web.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(
        status(&out),
        "NXDOMAIN",
        "no per-cluster name for a clusterset IP:\n{out}"
    );

    // A big headless answer: truncated over UDP, whole over TCP.
    let many: Vec<Endpoint> = (1..=120)
        .map(|i| endpoint(&format!("10.113.2.{i}"), Some(&format!("big-{i}")), true))
        .collect();
    imports
        .create(&pp, &import("big", ServiceImportType::Headless, &[]))
        .await
        .unwrap();
    slices
        .create(&pp, &slice("big-east", "big", "east", "IPv4", many))
        .await
        .unwrap();
    dig_until(server, "big.shop.svc.clusterset.local", "A", |o| {
        o.contains("flags: qr aa tc") || answers(o, "A").len() == 120
    });
    let udp = dig(server, "big.shop.svc.clusterset.local", "A", &["+ignore"]);
    assert!(udp.contains("flags: qr aa tc"), "{udp}");
    assert!(answers(&udp, "A").len() < 120, "{udp}");
    let udp_plain = dig(
        server,
        "big.shop.svc.clusterset.local",
        "A",
        &["+ignore", "+noedns"],
    );
    assert!(udp_plain.contains("tc"), "{udp_plain}");
    let tcp = dig(server, "big.shop.svc.clusterset.local", "A", &["+tcp"]);
    assert_eq!(answers(&tcp, "A").len(), 120, "{tcp}");
    // dig without +ignore retries over TCP by itself.
    let retried = dig(server, "big.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(answers(&retried, "A").len(), 120, "{retried}");

    // Scaling: the answers follow.
    let mut scaled = web_east.clone();
    scaled.endpoints = Some(vec![
        endpoint("10.113.0.5", None, true),
        endpoint("10.113.0.6", None, true),
        endpoint("10.113.0.8", None, true),
    ]);
    slices
        .patch(
            "web-east",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"endpoints": scaled.endpoints})),
        )
        .await
        .unwrap();
    dig_until(server, "web.shop.svc.hyperos.local", "A", |o| {
        answers(o, "A") == ["10.113.0.5", "10.113.0.6", "10.113.0.8", "10.114.0.7"]
    });
    slices
        .delete("web-west", &DeleteParams::default())
        .await
        .unwrap();
    dig_until(server, "web.shop.svc.hyperos.local", "A", |o| {
        answers(o, "A") == ["10.113.0.5", "10.113.0.6", "10.113.0.8"]
    });

    // Bad packets, each from a socket of its own: answered with the code RFC 1035 gives, or
    // dropped when there is nothing to answer (no header, or a response: no reflection).
    let web_query = query_packet(0x1234, 0, &[("web.shop.svc.clusterset.local", 1)]);
    assert_eq!(exchange(server, &web_query), Some((0x1234, NOERROR)));
    let cases: [(&str, Vec<u8>, Option<IdAndRcode>); 8] = [
        ("shorter than a header", vec![0u8; 3], None),
        (
            "two questions",
            query_packet(
                0x2001,
                0,
                &[
                    ("web.shop.svc.clusterset.local", 1),
                    ("db.shop.svc.clusterset.local", 1),
                ],
            ),
            Some((0x2001, FORMERR)),
        ),
        (
            "no question",
            query_packet(0x2002, 0, &[]),
            Some((0x2002, FORMERR)),
        ),
        (
            "opcode STATUS",
            query_packet(0x2003, 2 << 11, &[("web.shop.svc.clusterset.local", 1)]),
            Some((0x2003, NOTIMP)),
        ),
        (
            "a label running past the end",
            vec![0x20, 0x04, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 0, 0x3f, b'a'],
            Some((0x2004, FORMERR)),
        ),
        (
            "65535 questions announced, none sent",
            vec![0x20, 0x05, 0, 0, 0xff, 0xff, 0, 0, 0, 0, 0, 0],
            Some((0x2005, FORMERR)),
        ),
        (
            "a response",
            query_packet(0x2006, 0x8000, &[("web.shop.svc.clusterset.local", 1)]),
            None,
        ),
        (
            "a query padded to 65000 bytes",
            {
                let mut packet = query_packet(0x2007, 0, &[("web.shop.svc.clusterset.local", 1)]);
                packet.resize(65_000, 0xab);
                packet
            },
            Some((0x2007, NOERROR)),
        ),
    ];
    for (what, packet, expected) in cases {
        assert_eq!(exchange(server, &packet), expected, "{what}");
    }
    // Garbage that is none of the above, and junk over TCP: a length prefix promising 64 KiB
    // and a connection that goes away, and a frame of noise.
    for packet in [vec![0xff; 12], vec![0xab; 65_000]] {
        let _ = exchange(server, &packet);
    }
    let mut tcp = TcpStream::connect(server).unwrap();
    tcp.write_all(&[0xff, 0xff, 1, 2, 3]).unwrap();
    drop(tcp);
    let mut tcp = TcpStream::connect(server).unwrap();
    tcp.write_all(&[0, 12]).unwrap();
    tcp.write_all(&[0xff; 12]).unwrap();
    drop(tcp);
    // Over TCP, a well-formed query right after is answered in full.
    let mut tcp = TcpStream::connect(server).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(2))).unwrap();
    let big_query = query_packet(0x3001, 0, &[("big.shop.svc.clusterset.local", 1)]);
    tcp.write_all(&u16::try_from(big_query.len()).unwrap().to_be_bytes())
        .unwrap();
    tcp.write_all(&big_query).unwrap();
    let mut length = [0u8; 2];
    tcp.read_exact(&mut length).unwrap();
    let mut response = vec![0u8; usize::from(u16::from_be_bytes(length))];
    tcp.read_exact(&mut response).unwrap();
    assert_eq!(u16::from_be_bytes([response[0], response[1]]), 0x3001);
    assert_eq!(response[2] & 0x02, 0, "no TC over TCP");
    assert_eq!(
        u16::from_be_bytes([response[6], response[7]]),
        120,
        "answers"
    );
    // EDNS version 1 is not ours: BADVERS.
    let out = dig(
        server,
        "web.shop.svc.clusterset.local",
        "A",
        &["+edns=1", "+noednsneg"],
    );
    assert_eq!(status(&out), "BADVERS", "{out}");
    let out = dig(server, "web.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(answers(&out, "A"), ["10.127.0.10"], "{out}");

    // Unexport: the names go away.
    imports
        .delete("web", &DeleteParams::default())
        .await
        .unwrap();
    dig_until(server, "web.shop.svc.hyperos.local", "A", |o| {
        status(o) == "NXDOMAIN"
    });
    let out = dig(server, "web.shop.svc.clusterset.local", "A", &[]);
    assert_eq!(status(&out), "NXDOMAIN", "{out}");

    // The metrics saw it all.
    let metrics = scrape(crossdns.metrics, "/metrics").await;
    for needle in [
        "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"NXDomain\"}",
        "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"ServFail\"}",
        "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"Refused\"}",
        "nauti_crossdns_answer_latency_seconds_count",
        "nauti_crossdns_records ",
    ] {
        assert!(metrics.contains(needle), "{needle} missing in\n{metrics}");
    }
    assert!(
        crossdns.daemon.is_running(),
        "crossdns died; log:\n{}",
        nauti_testbed::process::tail(crossdns.daemon.log(), 40)
    );
}
