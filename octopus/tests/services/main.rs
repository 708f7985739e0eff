//! Multi-cluster services end to end on real API servers, without a data plane: a hub
//! (kube-apiserver with bootstrap tokens and kube-controller-manager's `csrsigning`,
//! `tokencleaner` and `namespace`), two members (a kube-apiserver and an OVN central each), and
//! the `octopus` binary as `octopus hub` and as `octopus member --ovn-nb ...` under the
//! repository's RBAC (`deploy/rbac/octopus-*.yaml`), with only those rights.
//!
//! The pods are API objects (status written through the status subresource, no kubelet); their
//! global addresses are ports on the member's logical switch, written as nauti-nri writes them.
//! The Service's EndpointSlice is written as the built-in controller would.
//!
//! One test in steps that build on each other: export and import, the same name from both
//! members (union of ports, then a type conflict), invalid exports, a member writing into
//! another's hub namespace, a hub outage, unexport.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use k8s_openapi::api::core::v1::{Container, Pod, PodSpec, Secret, Service, ServiceSpec};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nauti_api::mcs::{ServiceExport, ServiceImportType, export_condition};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, Peer};
use nauti_api::{MacAddr, ServiceImport};
use nauti_octopus::controller::local::CREDENTIAL_SECRET;
use nauti_octopus::hub::assign::assigned_slice;
use nauti_octopus::join::{Credential, member_namespace};
use nauti_ovn::{Client, Endpoint as OvnEndpoint, LogicalSwitch, LogicalSwitchPort, Northbound};
use nauti_testbed::ovn::OvnCentral;
use nauti_testbed::{Daemon, KubeApi, TestDir, require_root};

#[path = "../support/mod.rs"]
mod support;
use support::{
    Hub, MemberApi, WAIT, issued_token, octopus, poll, start_hub, start_member_api, write_token,
};

/// An unexport must be gone from the other members within this.
const REMOVAL_BOUND: Duration = Duration::from_secs(10);
const SVC: &str = "nginx-svc";
const NS: &str = "default";

struct Member {
    id: &'static str,
    _api: KubeApi,
    kubeconfig: PathBuf,
    admin: kube::Client,
    nb: Northbound,
    /// Keeps the member's OVN central running (its own folder: the log names are fixed).
    ovn: OvnCentral,
    _ovn_dir: TestDir,
}

async fn start_member(dir: &TestDir, id: &'static str) -> Member {
    let MemberApi {
        api,
        kubeconfig,
        admin,
    } = start_member_api(dir, true).await;
    let ovn_dir = TestDir::new(&format!("octopus-services-ovn-{id}")).unwrap();
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
        _api: api,
        kubeconfig,
        admin,
        nb,
        ovn,
        _ovn_dir: ovn_dir,
    }
}

/// A token from `octopus hub issue-token`, written to a file.
fn issue_token(dir: &TestDir, hub: &Hub, name: &str) -> PathBuf {
    write_token(dir, hub, name, &issued_token(hub))
}

fn run_member(dir: &TestDir, hub: &Hub, member: &Member, token_file: &Path) -> Daemon {
    let ovn_nb = member.ovn.nb_remote();
    support::run_member(
        dir,
        hub,
        &format!("octopus-{}", member.id),
        member.id,
        &member.kubeconfig,
        token_file,
        &["--ovn-nb", &ovn_nb],
    )
}

/// Polls `check` every 100 ms until it returns `Some`, at most `bound`.
async fn within<T, F, Fut>(what: &str, bound: Duration, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(what, bound, Duration::from_millis(100), check).await
}

async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    within(what, WAIT, check).await
}

/// A process stopped with SIGSTOP until dropped (SIGCONT), also when the test fails.
struct Frozen(u32);

impl Frozen {
    fn stop(pid: u32) -> Self {
        signal(pid, "-STOP");
        Self(pid)
    }
}

impl Drop for Frozen {
    fn drop(&mut self) {
        signal(self.0, "-CONT");
    }
}

fn signal(pid: u32, which: &str) {
    let status = Command::new("kill")
        .args([which, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {which} {pid}");
}

/// The `index`th host address of `slice`.
fn host(slice: IpNet, index: u8) -> String {
    let IpNet::V4(v4) = slice else {
        panic!("IPv4 slices only here");
    };
    let base = u32::from(v4.network());
    std::net::Ipv4Addr::from(base + 256 + u32::from(index)).to_string()
}

/// A pod's port as nauti-nri writes it (api/src/core/port.rs).
fn pod_port(pod: &str, uid: &str, ip: &str) -> LogicalSwitchPort {
    let mac = MacAddr::from_ip(ip.parse().unwrap()).to_string();
    LogicalSwitchPort::new(nauti_api::core::port::lsp_name(NS, pod))
        .with_address(&mac, &[ip])
        .with_external_id("pod", pod)
        .with_external_id("namespace", NS)
        .with_external_id("uid", uid)
        .with_external_id("node", "node-1")
        .with_external_id("sandbox", format!("sandbox-{pod}"))
        .with_external_id("nauti.io/owner", "pod")
}

/// A ready pod (status written as a kubelet would); returns its UID.
async fn ready_pod(
    client: &kube::Client,
    name: &str,
    primary_ip: &str,
    forged_global: Option<&str>,
) -> String {
    let pods: Api<Pod> = Api::namespaced(client.clone(), NS);
    let annotations =
        forged_global.map(|ip| BTreeMap::from([("nauti.io/ip_address".to_owned(), ip.to_owned())]));
    let pod = Pod {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            labels: Some(BTreeMap::from([("app".to_owned(), "nginx".to_owned())])),
            annotations,
            ..ObjectMeta::default()
        },
        spec: Some(PodSpec {
            containers: vec![Container {
                name: "nginx".to_owned(),
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
        "podIP": primary_ip,
        "podIPs": [{"ip": primary_ip}],
        "conditions": [{"type": "Ready", "status": "True"}],
    }});
    pods.patch_status(name, &PatchParams::default(), &Patch::Merge(&status))
        .await
        .unwrap();
    created.metadata.uid.unwrap()
}

fn service(name: &str, ports: &[(&str, i32)], headless: bool) -> Service {
    Service {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            selector: Some(BTreeMap::from([("app".to_owned(), "nginx".to_owned())])),
            cluster_ip: headless.then(|| "None".to_owned()),
            ports: Some(
                ports
                    .iter()
                    .map(
                        |(port_name, port)| k8s_openapi::api::core::v1::ServicePort {
                            name: Some((*port_name).to_owned()),
                            port: *port,
                            protocol: Some("TCP".to_owned()),
                            ..Default::default()
                        },
                    )
                    .collect(),
            ),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    }
}

/// The Service's EndpointSlice as the built-in controller writes it: the pods' primary
/// addresses and references.
fn builtin_slice(service: &str, pods: &[(&str, &str, &str)]) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(format!("{service}-x7k2p")),
            labels: Some(BTreeMap::from([
                ("kubernetes.io/service-name".to_owned(), service.to_owned()),
                (
                    "endpointslice.kubernetes.io/managed-by".to_owned(),
                    "endpointslice-controller.k8s.io".to_owned(),
                ),
            ])),
            ..ObjectMeta::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: Some(
            pods.iter()
                .map(|(name, uid, ip)| Endpoint {
                    addresses: vec![(*ip).to_owned()],
                    conditions: Some(EndpointConditions {
                        ready: Some(true),
                        serving: Some(true),
                        terminating: Some(false),
                    }),
                    target_ref: Some(k8s_openapi::api::core::v1::ObjectReference {
                        kind: Some("Pod".to_owned()),
                        namespace: Some(NS.to_owned()),
                        name: Some((*name).to_owned()),
                        uid: Some((*uid).to_owned()),
                        ..Default::default()
                    }),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ports: Some(vec![EndpointPort {
            name: Some("http".to_owned()),
            port: Some(80),
            protocol: Some("TCP".to_owned()),
            app_protocol: None,
        }]),
    }
}

async fn export(client: &kube::Client, name: &str) {
    Api::<ServiceExport>::namespaced(client.clone(), NS)
        .create(&PostParams::default(), &ServiceExport::new(name))
        .await
        .unwrap();
}

async fn unexport(client: &kube::Client, name: &str) {
    Api::<ServiceExport>::namespaced(client.clone(), NS)
        .delete(name, &DeleteParams::default())
        .await
        .unwrap();
}

async fn import_of(member: &Member, name: &str) -> Option<ServiceImport> {
    Api::<ServiceImport>::namespaced(member.admin.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()
}

/// (status, reason, message) of an export's condition.
async fn export_condition_of(
    member: &Member,
    name: &str,
    type_: &str,
) -> Option<(String, String, String)> {
    let export = Api::<ServiceExport>::namespaced(member.admin.clone(), NS)
        .get_opt(name)
        .await
        .unwrap()?;
    let condition = export
        .status?
        .conditions
        .into_iter()
        .find(|c| c.type_ == type_)?;
    Some((condition.status, condition.reason, condition.message))
}

/// The addresses of the imported EndpointSlices of `service` from `cluster`, as crossdns
/// selects them.
async fn imported_addresses(member: &Member, service: &str, cluster: &str) -> BTreeSet<String> {
    let selector = format!(
        "endpointslice.kubernetes.io/managed-by=octopus.nauti.io,multicluster.kubernetes.io/service-name={service},multicluster.kubernetes.io/source-cluster={cluster}"
    );
    Api::<EndpointSlice>::namespaced(member.admin.clone(), NS)
        .list(&ListParams::default().labels(&selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .flat_map(|s| s.endpoints.unwrap_or_default())
        .flat_map(|e| e.addresses)
        .collect()
}

fn ports_of(import: &ServiceImport) -> Vec<(String, i32, String)> {
    let mut ports: Vec<_> = import
        .spec
        .ports
        .iter()
        .map(|p| (p.name.clone(), p.port, p.protocol.clone()))
        .collect();
    ports.sort();
    ports
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exports_reach_every_member_through_the_hub_and_go_away_on_unexport() {
    require_root!();
    let dir = TestDir::new("octopus-services").unwrap();
    let hub = start_hub(&dir).await;
    let _hub_octopus = octopus(
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
    let a = start_member(&dir, "cluster-a").await;
    let b = start_member(&dir, "cluster-b").await;
    let token_a = issue_token(&dir, &hub, "a");
    let token_b = issue_token(&dir, &hub, "b");
    let _octopus_a = run_member(&dir, &hub, &a, &token_a);
    let _octopus_b = run_member(&dir, &hub, &b, &token_b);
    let peers = Api::<Peer>::namespaced(hub.admin.clone(), DEFAULT_PEER_NAMESPACE);
    let slice_of = |id: &'static str| {
        let peers = peers.clone();
        async move {
            eventually(&format!("a slice for {id}"), || async {
                peers
                    .get_opt(id)
                    .await
                    .unwrap()
                    .as_ref()
                    .and_then(assigned_slice)
            })
            .await
        }
    };
    let slice_a = slice_of(a.id).await;
    let slice_b = slice_of(b.id).await;
    assert_ne!(slice_a, slice_b);
    let clusterset: IpNet = "10.127.0.0/16".parse().unwrap();

    // 1. nginx in A: three pods behind the Service. Two have ports on A's switch; one of them
    // also carries a forged global address in its annotation. The third has no port at all but
    // a forged annotation.
    let uid_0 = ready_pod(&a.admin, "nginx-0", "10.88.0.10", None).await;
    let forged = host(slice_a, 99);
    let uid_1 = ready_pod(&a.admin, "nginx-1", "10.88.0.11", Some(&forged)).await;
    let rogue_forged = host(slice_a, 98);
    let uid_2 = ready_pod(&a.admin, "nginx-2", "10.88.0.12", Some(&rogue_forged)).await;
    let global_0 = host(slice_a, 10);
    let global_1 = host(slice_a, 11);
    a.nb.ensure_logical_switch_ports(
        "nauti-cluster-a",
        &[
            pod_port("nginx-0", &uid_0, &global_0),
            pod_port("nginx-1", &uid_1, &global_1),
        ],
    )
    .await
    .unwrap();
    Api::<Service>::namespaced(a.admin.clone(), NS)
        .create(
            &PostParams::default(),
            &service(SVC, &[("http", 80)], false),
        )
        .await
        .unwrap();
    Api::<EndpointSlice>::namespaced(a.admin.clone(), NS)
        .create(
            &PostParams::default(),
            &builtin_slice(
                SVC,
                &[
                    ("nginx-0", &uid_0, "10.88.0.10"),
                    ("nginx-1", &uid_1, "10.88.0.11"),
                    ("nginx-2", &uid_2, "10.88.0.12"),
                ],
            ),
        )
        .await
        .unwrap();
    let exported = Instant::now();
    export(&a.admin, SVC).await;

    let import = eventually("the import in B", || async {
        let import = import_of(&b, SVC).await?;
        let addresses = imported_addresses(&b, SVC, a.id).await;
        (addresses.len() == 2).then_some(import)
    })
    .await;
    eprintln!(
        "export in A to import with endpoints in B: {:?}",
        exported.elapsed()
    );
    assert_eq!(import.spec.type_, ServiceImportType::ClusterSetIP);
    assert_eq!(import.spec.ips.len(), 1, "{:?}", import.spec.ips);
    let vip: std::net::IpAddr = import.spec.ips[0].parse().unwrap();
    assert!(clusterset.contains(&vip), "{vip} outside {clusterset}");
    assert_eq!(ports_of(&import), [("http".into(), 80, "TCP".into())]);
    assert_eq!(
        imported_addresses(&b, SVC, a.id).await,
        BTreeSet::from([global_0.clone(), global_1.clone()]),
        "A's global addresses from OVN, not the pods' primary ones nor the forged annotations"
    );
    let clusters: Vec<String> = import
        .status
        .as_ref()
        .map(|s| s.clusters.iter().map(|c| c.cluster.clone()).collect())
        .unwrap_or_default();
    assert_eq!(clusters, [a.id]);
    assert_eq!(
        export_condition_of(&a, SVC, export_condition::VALID)
            .await
            .unwrap()
            .0,
        "True"
    );
    eventually("A's export Ready and without conflict", || async {
        let ready = export_condition_of(&a, SVC, export_condition::READY).await?;
        let conflict = export_condition_of(&a, SVC, export_condition::CONFLICT).await?;
        (ready.0 == "True" && conflict.0 == "False").then_some(())
    })
    .await;
    // A imports its own export too, with the same clusterset IP.
    let in_a = eventually("the import in A", || async { import_of(&a, SVC).await }).await;
    assert_eq!(in_a.spec.ips, import.spec.ips);

    // 2. The same name from B with other ports: the import carries the union.
    let b_services = Api::<Service>::namespaced(b.admin.clone(), NS);
    b_services
        .create(
            &PostParams::default(),
            &service(SVC, &[("alt", 8080)], false),
        )
        .await
        .unwrap();
    // Exports are ordered by creation second: B's must be the younger.
    tokio::time::sleep(Duration::from_millis(1100)).await;
    export(&b.admin, SVC).await;
    let union = vec![
        ("alt".to_owned(), 8080, "TCP".to_owned()),
        ("http".to_owned(), 80, "TCP".to_owned()),
    ];
    for member in [&a, &b] {
        let union = &union;
        eventually("the union of ports", || async {
            let import = import_of(member, SVC).await?;
            (ports_of(&import) == *union).then_some(())
        })
        .await;
    }
    assert_eq!(
        import_of(&b, SVC).await.unwrap().spec.ips,
        import.spec.ips,
        "the VIP stays"
    );
    eventually("B's export without conflict", || async {
        export_condition_of(&b, SVC, export_condition::CONFLICT)
            .await
            .filter(|c| c.0 == "False")
    })
    .await;

    // B's Service becomes headless: the types differ, A's older export decides, and both
    // exports say so.
    b_services
        .delete(SVC, &DeleteParams::default())
        .await
        .unwrap();
    eventually("B's Service gone", || async {
        b_services
            .get_opt(SVC)
            .await
            .unwrap()
            .is_none()
            .then_some(())
    })
    .await;
    b_services
        .create(
            &PostParams::default(),
            &service(SVC, &[("alt", 8080)], true),
        )
        .await
        .unwrap();
    for member in [&a, &b] {
        let (_, reason, message) = eventually("Conflict=True", || async {
            export_condition_of(member, SVC, export_condition::CONFLICT)
                .await
                .filter(|c| c.0 == "True")
        })
        .await;
        assert_eq!(reason, export_condition::REASON_TYPE_CONFLICT, "{message}");
        assert!(message.contains("\"cluster-a\""), "{message}");
    }
    let merged = import_of(&b, SVC).await.unwrap();
    assert_eq!(
        merged.spec.type_,
        ServiceImportType::ClusterSetIP,
        "the oldest wins"
    );

    // A headless Service is imported as Headless, with no clusterset IP.
    Api::<Service>::namespaced(a.admin.clone(), NS)
        .create(
            &PostParams::default(),
            &service("db", &[("pg", 5432)], true),
        )
        .await
        .unwrap();
    export(&a.admin, "db").await;
    let headless = eventually("the headless import in B", || async {
        import_of(&b, "db").await
    })
    .await;
    assert_eq!(headless.spec.type_, ServiceImportType::Headless);
    assert!(headless.spec.ips.is_empty(), "{:?}", headless.spec.ips);
    assert_eq!(ports_of(&headless), [("pg".into(), 5432, "TCP".into())]);
    unexport(&a.admin, "db").await;
    within("the headless import removed", REMOVAL_BOUND, || async {
        import_of(&b, "db").await.is_none().then_some(())
    })
    .await;

    // 3. Invalid exports: an ExternalName Service, and no Service at all.
    let external = Service {
        metadata: ObjectMeta {
            name: Some("external".to_owned()),
            ..ObjectMeta::default()
        },
        spec: Some(ServiceSpec {
            type_: Some("ExternalName".to_owned()),
            external_name: Some("example.com".to_owned()),
            ..ServiceSpec::default()
        }),
        ..Service::default()
    };
    Api::<Service>::namespaced(a.admin.clone(), NS)
        .create(&PostParams::default(), &external)
        .await
        .unwrap();
    export(&a.admin, "external").await;
    export(&a.admin, "ghost").await;
    for (name, reason) in [
        ("external", export_condition::REASON_INVALID_SERVICE_TYPE),
        ("ghost", export_condition::REASON_NO_SERVICE),
    ] {
        let valid = eventually("Valid=False", || async {
            export_condition_of(&a, name, export_condition::VALID).await
        })
        .await;
        assert_eq!(
            (valid.0.as_str(), valid.1.as_str()),
            ("False", reason),
            "{name}: {}",
            valid.2
        );
    }
    // Nothing of them reached the hub or B (the valid export's objects did, so the hub has
    // been synced since).
    let hub_imports = Api::<ServiceImport>::namespaced(hub.admin.clone(), &member_namespace(a.id));
    let names: Vec<String> = hub_imports
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|i| i.metadata.name)
        .collect();
    assert_eq!(names, ["default.nginx-svc"]);
    assert!(import_of(&b, "external").await.is_none());
    assert!(import_of(&b, "ghost").await.is_none());

    // 4. A's credential may not write into B's namespace on the hub.
    let secret = Api::<Secret>::namespaced(a.admin.clone(), "nauti-system")
        .get(CREDENTIAL_SECRET)
        .await
        .unwrap();
    let as_a = Credential::from_secret(&secret)
        .unwrap()
        .client()
        .await
        .unwrap();
    let mut intruder = builtin_slice(SVC, &[]);
    intruder.metadata.name = Some("default.nginx-svc-cluster-b-ipv4".to_owned());
    intruder.metadata.labels = Some(BTreeMap::from([
        (
            "multicluster.kubernetes.io/service-name".to_owned(),
            SVC.to_owned(),
        ),
        ("nauti.io/service-namespace".to_owned(), NS.to_owned()),
        (
            "multicluster.kubernetes.io/source-cluster".to_owned(),
            b.id.to_owned(),
        ),
        (
            "endpointslice.kubernetes.io/managed-by".to_owned(),
            "octopus.nauti.io".to_owned(),
        ),
    ]));
    let into_b = Api::<EndpointSlice>::namespaced(as_a.clone(), &member_namespace(b.id));
    for attempt in [
        into_b
            .create(&PostParams::default(), &intruder)
            .await
            .map(|_| ()),
        into_b
            .patch(
                "default.nginx-svc-cluster-b-ipv4",
                &PatchParams::apply("intruder").force(),
                &Patch::Apply(&intruder),
            )
            .await
            .map(|_| ()),
        into_b
            .delete("default.nginx-svc-cluster-b-ipv4", &DeleteParams::default())
            .await
            .map(|_| ()),
    ] {
        match attempt {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("A wrote into B's hub namespace: {other:?}"),
        }
    }
    let imports_in_b = Api::<ServiceImport>::namespaced(as_a, &member_namespace(b.id));
    match imports_in_b
        .delete("default.nginx-svc", &DeleteParams::default())
        .await
    {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("A deleted B's export: {other:?}"),
    }

    // In its own cluster, octopus-member may not touch a Service's own EndpointSlice (the
    // admission policy of deploy/rbac/octopus-member.yaml), only the ones it imports.
    let as_member = nauti_testbed::kube_api::client_from(&a.kubeconfig)
        .await
        .unwrap();
    let member_slices = Api::<EndpointSlice>::namespaced(as_member, NS);
    let mut hijack = builtin_slice(SVC, &[]);
    hijack.metadata.labels = None;
    for attempt in [
        member_slices
            .patch(
                "nginx-svc-x7k2p",
                &PatchParams::apply("octopus").force(),
                &Patch::Apply(&builtin_slice(SVC, &[])),
            )
            .await
            .map(|_| ()),
        member_slices
            .delete("nginx-svc-x7k2p", &DeleteParams::default())
            .await
            .map(|_| ()),
        member_slices
            .create(&PostParams::default(), &{
                hijack.metadata.name = Some("unlabelled".to_owned());
                hijack
            })
            .await
            .map(|_| ()),
    ] {
        match attempt {
            Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
            other => panic!("octopus-member wrote a slice it does not import: {other:?}"),
        }
    }

    // 5. The hub's API server freezes (connections stay open, nothing answers). B keeps its
    // import and A's endpoints; a pod that A adds meanwhile reaches B once the hub is back.
    let outage = Frozen::stop(hub.api.pids()[0]);
    let uid_3 = ready_pod(&a.admin, "nginx-3", "10.88.0.13", None).await;
    let global_3 = host(slice_a, 13);
    a.nb.ensure_logical_switch_port("nauti-cluster-a", &pod_port("nginx-3", &uid_3, &global_3))
        .await
        .unwrap();
    let scaled = builtin_slice(
        SVC,
        &[
            ("nginx-0", &uid_0, "10.88.0.10"),
            ("nginx-1", &uid_1, "10.88.0.11"),
            ("nginx-2", &uid_2, "10.88.0.12"),
            ("nginx-3", &uid_3, "10.88.0.13"),
        ],
    );
    Api::<EndpointSlice>::namespaced(a.admin.clone(), NS)
        .patch(
            &scaled.metadata.name.clone().unwrap(),
            &PatchParams::apply("endpointslice-controller").force(),
            &Patch::Apply(&scaled),
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_secs(3)).await;
    assert!(import_of(&b, SVC).await.is_some(), "B keeps its import");
    assert_eq!(
        imported_addresses(&b, SVC, a.id).await,
        BTreeSet::from([global_0.clone(), global_1.clone()]),
        "B keeps A's endpoints while the hub is down"
    );
    let back = Instant::now();
    drop(outage);
    let all_three = BTreeSet::from([global_0.clone(), global_1.clone(), global_3.clone()]);
    eventually("the change made during the outage in B", || async {
        (imported_addresses(&b, SVC, a.id).await == all_three).then_some(())
    })
    .await;
    eprintln!("hub back to the outage's change in B: {:?}", back.elapsed());

    // 6. Unexport from both: the import and its slices leave every member within seconds.
    unexport(&b.admin, SVC).await;
    eventually(
        "B's export withdrawn: A's type, ports and no conflict",
        || async {
            let import = import_of(&a, SVC).await?;
            let conflict = export_condition_of(&a, SVC, export_condition::CONFLICT).await?;
            (ports_of(&import) == [("http".into(), 80, "TCP".into())] && conflict.0 == "False")
                .then_some(())
        },
    )
    .await;
    let unexported = Instant::now();
    unexport(&a.admin, SVC).await;
    for member in [&b, &a] {
        within("the import removed", REMOVAL_BOUND, || async {
            let gone = import_of(member, SVC).await.is_none()
                && imported_addresses(member, SVC, a.id).await.is_empty();
            gone.then_some(())
        })
        .await;
    }
    eprintln!(
        "unexport in A to import gone in both members: {:?}",
        unexported.elapsed()
    );
    let left = Api::<EndpointSlice>::namespaced(hub.admin.clone(), &member_namespace(a.id))
        .list(&ListParams::default())
        .await
        .unwrap()
        .items;
    assert!(left.is_empty(), "A's slices left on the hub: {left:?}");
}
