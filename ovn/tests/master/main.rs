//! `nauti-ovnmaster` against a real kube-apiserver and a real OVN northbound database. The
//! controller runs as its binary, under an identity bound only to `deploy/rbac/ovnmaster.yaml`,
//! so the RBAC is proven sufficient. One binary, one module per topic.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod blocks;
mod election;
mod gc;

use std::collections::BTreeMap;
use std::future::Future;
use std::path::PathBuf;
use std::process::Command;
use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{Container, Node, Pod, PodSpec, ServiceAccount};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding, Role, RoleBinding};
use kube::api::{Api, ObjectMeta, PostParams};
use nauti_ovn::{Client, ClientConfig, Endpoint, Northbound};
use nauti_testbed::ovn::OvnCentral;
use nauti_testbed::{Daemon, KubeApi, TestDir};
use tokio::io::{AsyncReadExt, AsyncWriteExt};

pub const CLUSTER_ID: &str = "member-1";
pub const SUBNET: &str = "10.113.0.0/16";
pub const SWITCH: &str = "nauti-member-1";
pub const NAMESPACE: &str = "nauti-system";
pub const NODE_CIDR: &str = "nauti.io/node-cidr";
/// The user name RBAC matches against the ServiceAccount subject of the bindings.
const MASTER_USER: &str = "system:serviceaccount:nauti-system:nauti-ovnmaster";

/// A real apiserver and OVN central. Fields drop in order: peers first, the folder last.
pub struct Bed {
    pub master_kubeconfig: PathBuf,
    pub admin: kube::Client,
    pub ovn: OvnCentral,
    pub kube: KubeApi,
    pub dir: TestDir,
}

impl Bed {
    /// Starts the peers, the namespace and the controller's RBAC from the repository's YAML.
    pub async fn start(test: &str) -> Self {
        let dir = TestDir::new(test).unwrap();
        let kube = KubeApi::start(&dir).await.unwrap();
        let ovn = OvnCentral::start(&dir).unwrap();
        kube.create_namespace(NAMESPACE).await.unwrap();
        let admin = kube.client().await.unwrap();
        apply_rbac(&admin).await;
        let master_kubeconfig = kube
            .kubeconfig_for(
                MASTER_USER,
                &[
                    "system:serviceaccounts",
                    "system:serviceaccounts:nauti-system",
                ],
            )
            .unwrap();
        Self {
            master_kubeconfig,
            admin,
            ovn,
            kube,
            dir,
        }
    }

    /// Starts the controller binary as `identity` with short test timings.
    pub fn master(&self, identity: &str, extra: &[&str]) -> Master {
        let port = nauti_testbed::names::free_port().unwrap();
        let mut cmd = Command::new(env!("CARGO_BIN_EXE_nauti-ovnmaster"));
        cmd.env_remove("KUBECONFIG")
            .arg("--kubeconfig")
            .arg(&self.master_kubeconfig)
            .args(["--ovn-nb", &self.ovn.nb_remote()])
            .args(["--cluster-id", CLUSTER_ID, "--cluster-subnet", SUBNET])
            .args(["--lease-duration", "3s", "--lease-renew-interval", "500ms"])
            .args(["--lease-identity", identity])
            .args(["--gc-grace", "2s", "--resync-interval", "2s"])
            .args(["--metrics-addr", &format!("127.0.0.1:{port}")])
            .args(["--log", "info,nauti_ovn=debug"])
            .args(extra);
        let log = self.dir.log(&format!("ovnmaster-{identity}"));
        Master {
            daemon: Daemon::spawn(format!("nauti-ovnmaster {identity}"), cmd, &log).unwrap(),
            identity: identity.to_owned(),
            port,
            log,
        }
    }

    pub async fn nb(&self) -> Northbound {
        let mut config = ClientConfig::new(Endpoint::parse(&self.ovn.nb_remote()).unwrap());
        config.connect_timeout = Duration::from_secs(5);
        Northbound::new(Client::connect(config).await.unwrap())
    }

    pub async fn create_node(&self, name: &str, annotation: Option<&str>) {
        let node = Node {
            metadata: ObjectMeta {
                name: Some(name.into()),
                annotations: annotation
                    .map(|a| BTreeMap::from([(NODE_CIDR.to_owned(), a.to_owned())])),
                ..ObjectMeta::default()
            },
            ..Node::default()
        };
        let nodes: Api<Node> = Api::all(self.admin.clone());
        nodes.create(&PostParams::default(), &node).await.unwrap();
    }

    /// Every node's annotation (absent ones as `None`).
    pub async fn node_blocks(&self) -> BTreeMap<String, Option<String>> {
        let nodes: Api<Node> = Api::all(self.admin.clone());
        nodes
            .list(&Default::default())
            .await
            .unwrap()
            .items
            .into_iter()
            .map(|n| {
                let cidr = n
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NODE_CIDR).cloned());
                (n.metadata.name.unwrap(), cidr)
            })
            .collect()
    }

    /// Creates a pod (never scheduled: nothing here runs it) and returns its UID.
    pub async fn create_pod(&self, ns: &str, name: &str) -> String {
        let pod = Pod {
            metadata: ObjectMeta {
                name: Some(name.into()),
                ..ObjectMeta::default()
            },
            spec: Some(PodSpec {
                containers: vec![Container {
                    name: "c".into(),
                    image: Some("registry.k8s.io/pause:3.10".into()),
                    ..Container::default()
                }],
                ..PodSpec::default()
            }),
            ..Pod::default()
        };
        let pods: Api<Pod> = Api::namespaced(self.admin.clone(), ns);
        let created = pods.create(&PostParams::default(), &pod).await.unwrap();
        created.metadata.uid.unwrap()
    }

    pub async fn lease_holder(&self) -> Option<String> {
        let leases: Api<Lease> = Api::namespaced(self.admin.clone(), NAMESPACE);
        leases
            .get_opt("nauti-ovnmaster")
            .await
            .unwrap()
            .and_then(|l| l.spec?.holder_identity)
            .filter(|h| !h.is_empty())
    }
}

/// The controller binary; SIGTERM then SIGKILL on drop.
pub struct Master {
    pub daemon: Daemon,
    pub identity: String,
    pub port: u16,
    pub log: PathBuf,
}

impl Master {
    /// `GET path` on the metrics endpoint: (status code, body), or `None` while it is not up.
    pub async fn get(&self, path: &str) -> Option<(u16, String)> {
        let mut stream = tokio::net::TcpStream::connect(("127.0.0.1", self.port))
            .await
            .ok()?;
        let request = format!("GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n");
        stream.write_all(request.as_bytes()).await.ok()?;
        let mut response = String::new();
        tokio::time::timeout(Duration::from_secs(5), stream.read_to_string(&mut response))
            .await
            .ok()?
            .ok()?;
        let status = response.split_whitespace().nth(1)?.parse().ok()?;
        let body = response.split_once("\r\n\r\n")?.1.to_owned();
        Some((status, body))
    }

    /// A metric's value as printed (first line starting with `name`).
    pub async fn metric(&self, name: &str) -> Option<f64> {
        let (_, body) = self.get("/metrics").await?;
        body.lines()
            .find(|l| l.starts_with(name))?
            .rsplit(' ')
            .next()?
            .parse()
            .ok()
    }

    pub fn log_text(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }
}

/// Polls `check` every 200 ms until it yields a value, at most `timeout`; panics naming `what`.
pub async fn eventually<T, F, Fut>(what: &str, timeout: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: Future<Output = Option<T>>,
{
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(v) = check().await {
            return v;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {timeout:?} waiting for {what}"
        );
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// Creates every object of `deploy/rbac/ovnmaster.yaml` with the admin client.
async fn apply_rbac(admin: &kube::Client) {
    let path = nauti_testbed::repo_root().join("deploy/rbac/ovnmaster.yaml");
    let text = std::fs::read_to_string(&path).unwrap();
    let pp = PostParams::default();
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text).unwrap();
    for value in docs {
        let kind = value["kind"].as_str().unwrap().to_owned();
        let ns = value["metadata"]["namespace"].as_str().map(str::to_owned);
        match kind.as_str() {
            "ServiceAccount" => {
                let api: Api<ServiceAccount> =
                    Api::namespaced(admin.clone(), ns.as_deref().unwrap());
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "ClusterRole" => {
                let api: Api<ClusterRole> = Api::all(admin.clone());
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "ClusterRoleBinding" => {
                let api: Api<ClusterRoleBinding> = Api::all(admin.clone());
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "Role" => {
                let api: Api<Role> = Api::namespaced(admin.clone(), ns.as_deref().unwrap());
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            "RoleBinding" => {
                let api: Api<RoleBinding> = Api::namespaced(admin.clone(), ns.as_deref().unwrap());
                api.create(&pp, &serde_json::from_value(value).unwrap())
                    .await
                    .unwrap();
            }
            other => panic!("unexpected kind {other} in {}", path.display()),
        }
    }
}
