//! One node with every real peer, and the plugin binary running in it.

use std::collections::BTreeMap;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use kube::api::{Api, ObjectMeta, PostParams};
use nauti_api::PodNetwork;
use nauti_testbed::forward::Forward;
use nauti_testbed::ovn::{OvnCentral, OvnNode};
use nauti_testbed::process::{Daemon, wait_until};
use nauti_testbed::{Containerd, KubeApi, Netns, Pod as Sandbox, PodSpec, TestDir};

pub const NODE: &str = "node-1";
pub const CLUSTER: &str = "east";
pub const SWITCH: &str = "nauti-east";
pub const CLUSTER_SUBNET: &str = "10.112.0.0/16";
pub const NODE_BLOCK: &str = "10.112.1.0/24";
pub const WAIT: Duration = Duration::from_secs(30);

/// A node: its namespace, OVN chassis, containerd, the API reachable inside, and the plugin.
pub struct Bed {
    pub plugin: Option<Daemon>,
    pub ctrd: Containerd,
    _forward: Forward,
    pub ovn_node: OvnNode,
    pub central: OvnCentral,
    pub kube: KubeApi,
    pub node: Netns,
    _underlay: Netns,
    pub dir: TestDir,
    extra_args: Vec<String>,
    starts: u32,
}

impl Bed {
    pub async fn start(name: &str, extra_args: &[&str]) -> Self {
        let dir = TestDir::new(name).unwrap();
        let kube = KubeApi::start(&dir).await.unwrap();
        let node = Netns::new("npn").unwrap();
        let underlay = Netns::new("npu").unwrap();
        node.veth_to("ul0", &underlay, "ul1").unwrap();
        let central = OvnCentral::start(&dir).unwrap();
        let ovn_node = OvnNode::start(&dir, &node, NODE, "ul0", "198.18.0.1/24", &central).unwrap();
        central
            .nbctl(&[
                "ls-add",
                SWITCH,
                "--",
                "set",
                "logical_switch",
                SWITCH,
                &format!("other_config:subnet={CLUSTER_SUBNET}"),
            ])
            .unwrap();
        let client = kube.client().await.unwrap();
        let node_obj = Node {
            metadata: ObjectMeta {
                name: Some(NODE.into()),
                annotations: Some(
                    [("nauti.io/node-cidr".to_owned(), NODE_BLOCK.to_owned())].into(),
                ),
                ..Default::default()
            },
            ..Default::default()
        };
        Api::<Node>::all(client)
            .create(&PostParams::default(), &node_obj)
            .await
            .unwrap();
        let ctrd = Containerd::start(&node, &dir).unwrap();
        let forward = kube.expose_in(&node).unwrap();
        let mut bed = Self {
            plugin: None,
            ctrd,
            _forward: forward,
            ovn_node,
            central,
            kube,
            node,
            _underlay: underlay,
            dir,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            starts: 0,
        };
        bed.start_plugin();
        bed
    }

    /// Starts `nauti-nri` in the node's namespace and waits until it synchronized.
    pub fn start_plugin(&mut self) {
        let mut cmd = self.plugin_command(NODE);
        cmd.args(["--log", "info,nauti_nri=debug"])
            .args(&self.extra_args);
        self.starts += 1;
        let log = self.dir.log(&format!("nauti-nri-{}", self.starts));
        let mut plugin = Daemon::spawn("nauti-nri", cmd, &log).unwrap();
        plugin
            .wait_ready(WAIT, || {
                std::fs::read_to_string(&log)
                    .is_ok_and(|t| t.contains("synchronized with the runtime"))
            })
            .unwrap();
        self.plugin = Some(plugin);
    }

    /// The plugin's command line with the node's settings, for runs of its own.
    pub fn plugin_command(&self, node_name: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.node.path().display()))
            .arg(env!("CARGO_BIN_EXE_nauti-nri"))
            .arg("--nri-socket")
            .arg(self.ctrd.nri_socket())
            .args(["--node-name", node_name, "--cluster-id", CLUSTER])
            .arg("--ovn-nb")
            .arg(self.central.nb_remote())
            .arg("--ovs-db")
            .arg(self.ovn_node.db_remote())
            .arg("--kubeconfig")
            .arg(self.kube.kubeconfig());
        cmd
    }

    /// Kills the plugin at once, as a crash would.
    pub fn kill_plugin(&mut self) {
        if let Some(mut plugin) = self.plugin.take() {
            plugin.kill();
        }
    }

    /// Creates the Pod object, then its sandbox through CRI with the same name and UID.
    pub async fn run_pod(&self, name: &str, annotations: &[(&str, &str)]) -> Sandbox {
        let spec = self.create_pod_object(name, annotations).await;
        self.ctrd.run_pod(&spec).unwrap()
    }

    pub async fn create_pod_object(&self, name: &str, annotations: &[(&str, &str)]) -> PodSpec {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {"containers": [{"name": "sh", "image": "localhost/nauti/busybox:latest"}]},
        }))
        .unwrap();
        let created = self
            .pods()
            .await
            .create(&PostParams::default(), &pod)
            .await
            .unwrap();
        let mut spec = PodSpec::new("default", name);
        spec.uid = created.metadata.uid.unwrap();
        spec.annotations = annotations;
        spec
    }

    pub async fn pods(&self) -> Api<Pod> {
        Api::namespaced(self.kube.client().await.unwrap(), "default")
    }

    /// The pod's `nauti.io/*` annotations as the API server has them.
    pub async fn network_of(&self, name: &str) -> Option<PodNetwork> {
        let pod = self.pods().await.get(name).await.unwrap();
        PodNetwork::try_from_annotations(&pod.metadata.annotations.unwrap_or_default()).unwrap()
    }

    /// Names of the logical switch ports of the cluster's switch.
    pub fn lsps(&self) -> Vec<String> {
        self.central
            .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])
            .unwrap()
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Names of the ports on the node's `br-int`.
    pub fn ovs_ports(&self) -> Vec<String> {
        let out = Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.ovn_node.db_remote()))
            .args(["list-ports", "br-int"])
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout)
            .split_whitespace()
            .map(str::to_owned)
            .collect()
    }

    /// Host ends of pod NICs in the node's namespace.
    pub fn host_veths(&self) -> Vec<String> {
        self.node
            .ip(&["-o", "link", "show"])
            .unwrap()
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .filter(|name| name.starts_with("nti"))
            .collect()
    }

    /// Waits until `check` holds, polling; panics with `what` after [`WAIT`].
    pub async fn eventually(&self, what: &str, mut check: impl AsyncFnMut() -> bool) {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if check().await {
                return;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        panic!("{what} did not happen within {WAIT:?}");
    }
}

/// `ip -o -4 addr` and the MAC of `eth-nauti` inside a container.
pub fn nic_in(ctrd: &Containerd, container: &str) -> (String, String) {
    let addr = ctrd
        .exec(container, &["ip", "-o", "-4", "addr", "show", "eth-nauti"])
        .unwrap();
    let mac = ctrd
        .exec(container, &["cat", "/sys/class/net/eth-nauti/address"])
        .unwrap();
    (addr, mac.trim().to_owned())
}

pub fn settle(pred: impl FnMut() -> bool) -> bool {
    wait_until(WAIT, pred)
}
