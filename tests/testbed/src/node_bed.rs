//! A whole Nauti node on real peers: a node namespace with its OVN chassis and containerd, the
//! cluster's OVN central and kube-apiserver, the cluster's logical switch and the Node object with
//! its block (as `nauti-ovnmaster` writes them), and the `nauti-nri` plugin running in the node.
//! The NRI plugin's end-to-end tests and `make demo` stand on it.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::process::Command;
use std::time::Duration;

use k8s_openapi::api::core::v1::{Node, Pod};
use k8s_openapi::api::rbac::v1::{ClusterRole, ClusterRoleBinding};
use kube::api::{Api, ObjectMeta, PostParams};

use crate::containerd::{Containerd, Pod as Sandbox, PodSpec};
use crate::error::{Error, IoContext, Result};
use crate::forward::Forward;
use crate::kube_api::KubeApi;
use crate::netns::Netns;
use crate::ovn::{OvnCentral, OvnNode};
use crate::process::{Daemon, run, wait_until};
use crate::testdir::TestDir;

pub const NODE: &str = "node-1";
pub const CLUSTER: &str = "east";
pub const SWITCH: &str = "nauti-east";
pub const CLUSTER_SUBNET: &str = "10.112.0.0/16";
pub const NODE_BLOCK: &str = "10.112.1.0/24";
/// How long anything here may take before it counts as broken.
pub const WAIT: Duration = Duration::from_secs(30);

/// The port of the plugin's `/metrics`, `/healthz` and `/readyz` by default.
pub const PLUGIN_METRICS_PORT: u16 = 9465;

fn kube_err(what: &str) -> impl FnOnce(kube::Error) -> Error + '_ {
    move |e| Error::Other(format!("{what}: {e}"))
}

/// One node with every peer and the plugin; everything stops on drop (fields drop in order).
pub struct NodeBed {
    pub plugin: Option<Daemon>,
    pub ctrd: Containerd,
    _forward: Forward,
    pub ovn_node: OvnNode,
    pub central: OvnCentral,
    pub kube: KubeApi,
    pub node: Netns,
    _underlay: Netns,
    pub dir: TestDir,
    plugin_bin: PathBuf,
    /// Who the plugin runs as.
    pub plugin_identity: PluginIdentity,
    extra_args: Vec<String>,
    starts: u32,
}

impl NodeBed {
    /// Starts every peer, then `plugin_bin` with `extra_args` added to the node's flags.
    pub async fn start(name: &str, plugin_bin: PathBuf, extra_args: &[&str]) -> Result<Self> {
        let mut bed = Self::start_without_plugin(name, plugin_bin, extra_args).await?;
        bed.start_plugin()?;
        Ok(bed)
    }

    /// Starts every peer but not the plugin.
    pub async fn start_without_plugin(
        name: &str,
        plugin_bin: PathBuf,
        extra_args: &[&str],
    ) -> Result<Self> {
        let dir = TestDir::new(name)?;
        let kube = KubeApi::start(&dir).await?;
        let node = Netns::new("npn")?;
        let underlay = Netns::new("npu")?;
        node.veth_to("ul0", &underlay, "ul1")?;
        let central = OvnCentral::start(&dir)?;
        let ovn_node = OvnNode::start(&dir, &node, NODE, "ul0", "198.18.0.1/24", &central)?;
        let subnet = format!("other_config:subnet={CLUSTER_SUBNET}");
        central.nbctl(&[
            "ls-add",
            SWITCH,
            "--",
            "set",
            "logical_switch",
            SWITCH,
            &subnet,
        ])?;
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
        Api::<Node>::all(kube.client().await?)
            .create(&PostParams::default(), &node_obj)
            .await
            .map_err(kube_err("create the Node"))?;
        let plugin_identity = least_privilege_identity(&kube).await?;
        let ctrd = Containerd::start(&node, &dir)?;
        let forward = kube.expose_in(&node)?;
        Ok(Self {
            plugin: None,
            ctrd,
            _forward: forward,
            ovn_node,
            central,
            kube,
            node,
            _underlay: underlay,
            dir,
            plugin_bin,
            plugin_identity,
            extra_args: extra_args.iter().map(|s| (*s).to_owned()).collect(),
            starts: 0,
        })
    }

    /// Installs the plugin the way containerd launches it itself: the binary as
    /// `<plugin dir>/10-nauti` and the node's settings as `<conf dir>/10-nauti.conf`, then
    /// restarts containerd, which starts it, hands it a socket and configures it. The plugin logs
    /// to [`NodeBed::launched_plugin_log`].
    pub fn install_launched_plugin(&mut self) -> Result<()> {
        let binary = self.ctrd.nri_plugin_dir().join("10-nauti");
        std::fs::copy(&self.plugin_bin, &binary)
            .io_context(|| format!("copy the plugin to {}", binary.display()))?;
        let config = format!(
            "# nauti-nri settings, passed by containerd in Configure\n\
             node-name: {NODE}\ncluster-id: {CLUSTER}\novn-nb: {}\novs-db: {}\n\
             kubeconfig: {}\nlog-file: {}\n",
            self.central.nb_remote(),
            self.ovn_node.db_remote(),
            self.plugin_identity.kubeconfig.display(),
            self.launched_plugin_log().display(),
        );
        let conf = self.ctrd.nri_conf_dir().join("10-nauti.conf");
        std::fs::write(&conf, config).io_context(|| format!("write {}", conf.display()))?;
        self.ctrd.restart()
    }

    /// Where the plugin containerd launched logs.
    pub fn launched_plugin_log(&self) -> PathBuf {
        self.dir.log("nauti-nri-launched")
    }

    /// Starts the plugin in the node's namespace and waits until it synchronized.
    pub fn start_plugin(&mut self) -> Result<()> {
        let mut cmd = self.plugin_command(NODE);
        cmd.args(["--log", "info,nauti_nri=debug"])
            .args(&self.extra_args);
        self.starts += 1;
        let log = self.plugin_log();
        let mut plugin = Daemon::spawn("nauti-nri", cmd, &log)?;
        plugin.wait_ready(WAIT, || self.plugin_ready())?;
        self.plugin = Some(plugin);
        Ok(())
    }

    /// Whether the plugin's `/readyz` answers 200: registered, synchronised and its first
    /// reconciliation with the runtime done.
    pub fn plugin_ready(&self) -> bool {
        self.plugin_endpoint("/readyz")
            .is_ok_and(|(status, _)| status == 200)
    }

    /// Sets (`Some`) or removes (`None`) the Node's `nauti.io/node-cidr`, as the controller would.
    pub async fn set_node_block(&self, node: &str, block: Option<&str>) -> Result<()> {
        let patch = serde_json::json!({"metadata": {"annotations": {"nauti.io/node-cidr": block}}});
        Api::<Node>::all(self.kube.client().await?)
            .patch(
                node,
                &kube::api::PatchParams::default(),
                &kube::api::Patch::Merge(&patch),
            )
            .await
            .map_err(kube_err("patch the Node"))?;
        Ok(())
    }

    /// The current plugin's log file.
    pub fn plugin_log(&self) -> PathBuf {
        self.dir.log(&format!("nauti-nri-{}", self.starts))
    }

    /// The plugin's command line with the node's settings, for runs of its own.
    pub fn plugin_command(&self, node_name: &str) -> Command {
        let mut cmd = Command::new("nsenter");
        cmd.arg(format!("--net={}", self.node.path().display()))
            .arg(&self.plugin_bin)
            .arg("--nri-socket")
            .arg(self.ctrd.nri_socket())
            .args(["--node-name", node_name, "--cluster-id", CLUSTER])
            .arg("--ovn-nb")
            .arg(self.central.nb_remote())
            .arg("--ovs-db")
            .arg(self.ovn_node.db_remote())
            .arg("--kubeconfig")
            .arg(&self.plugin_identity.kubeconfig);
        cmd
    }

    /// Kills the plugin at once, as a crash would.
    pub fn kill_plugin(&mut self) {
        if let Some(mut plugin) = self.plugin.take() {
            plugin.kill();
        }
    }

    /// Creates the Pod object, then its sandbox through CRI with the same name and UID.
    pub async fn run_pod(&self, name: &str, annotations: &[(&str, &str)]) -> Result<Sandbox> {
        let spec = self.create_pod_object(name, annotations).await?;
        self.ctrd.run_pod(&spec)
    }

    /// Creates the Pod object a kubelet on [`NODE`] would be running, and the matching CRI pod
    /// spec.
    pub async fn create_pod_object(
        &self,
        name: &str,
        annotations: &[(&str, &str)],
    ) -> Result<PodSpec> {
        let annotations: BTreeMap<String, String> = annotations
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        let pod: Pod = serde_json::from_value(serde_json::json!({
            "metadata": {"name": name, "namespace": "default", "annotations": annotations},
            "spec": {
                "nodeName": NODE,
                "containers": [{"name": "sh", "image": crate::containerd::BUSYBOX_IMAGE}],
            },
        }))
        .map_err(|e| Error::Other(format!("pod object: {e}")))?;
        let created = self
            .pods()
            .await?
            .create(&PostParams::default(), &pod)
            .await
            .map_err(kube_err("create the Pod"))?;
        let mut spec = PodSpec::new("default", name);
        spec.uid = created
            .metadata
            .uid
            .ok_or_else(|| Error::Other("the API server gave the Pod no uid".into()))?;
        spec.annotations = annotations;
        Ok(spec)
    }

    /// Pods of the `default` namespace.
    pub async fn pods(&self) -> Result<Api<Pod>> {
        Ok(Api::namespaced(self.kube.client().await?, "default"))
    }

    /// The pod's annotations as the API server has them.
    pub async fn annotations_of(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let pod = self
            .pods()
            .await?
            .get(name)
            .await
            .map_err(kube_err("get the Pod"))?;
        Ok(pod.metadata.annotations.unwrap_or_default())
    }

    /// The pod's annotations once `nauti.io/allocated` is among them (the plugin writes them just
    /// after answering the sandbox), or as they are after [`WAIT`].
    pub async fn annotations_when_allocated(&self, name: &str) -> Result<BTreeMap<String, String>> {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let annotations = self.annotations_of(name).await?;
            if annotations.contains_key("nauti.io/allocated")
                || std::time::Instant::now() >= deadline
            {
                return Ok(annotations);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// `GET path` on the plugin's metrics and health endpoint (its default address, inside the
    /// node's namespace): the status code and the body.
    pub fn plugin_endpoint(&self, path: &str) -> Result<(u16, String)> {
        let request = format!("GET {path} HTTP/1.1\r\nHost: node\r\nConnection: close\r\n\r\n");
        let answer = self
            .node
            .run_in(move || -> std::io::Result<String> {
                use std::io::{Read, Write};
                let mut stream = std::net::TcpStream::connect(("127.0.0.1", PLUGIN_METRICS_PORT))?;
                stream.set_read_timeout(Some(WAIT))?;
                stream.write_all(request.as_bytes())?;
                let mut answer = String::new();
                stream.read_to_string(&mut answer)?;
                Ok(answer)
            })?
            .io_context(|| format!("GET {path} on the plugin's endpoint"))?;
        let status = answer
            .split_whitespace()
            .nth(1)
            .and_then(|code| code.parse().ok())
            .ok_or_else(|| Error::Other(format!("not an HTTP answer: {answer:?}")))?;
        let body = answer
            .split_once("\r\n\r\n")
            .map(|(_, body)| body.to_owned())
            .unwrap_or_default();
        Ok((status, body))
    }

    /// Names of every logical switch port.
    pub fn lsps(&self) -> Result<Vec<String>> {
        Ok(self
            .central
            .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch_Port"])?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// Names of the ports on the node's `br-int`.
    pub fn ovs_ports(&self) -> Result<Vec<String>> {
        Ok(run(Command::new("ovs-vsctl")
            .arg(format!("--db={}", self.ovn_node.db_remote()))
            .args(["list-ports", "br-int"]))?
        .split_whitespace()
        .map(str::to_owned)
        .collect())
    }

    /// Host ends of pod NICs in the node's namespace.
    pub fn host_veths(&self) -> Result<Vec<String>> {
        Ok(self
            .node
            .ip(&["-o", "link", "show"])?
            .lines()
            .filter_map(|l| l.split(": ").nth(1))
            .map(|name| name.split('@').next().unwrap_or(name).to_owned())
            .filter(|name| name.starts_with("nti"))
            .collect())
    }

    /// Polls `check` until it holds or [`WAIT`] passes; returns whether it held.
    pub async fn eventually(&self, mut check: impl AsyncFnMut() -> bool) -> bool {
        let deadline = std::time::Instant::now() + WAIT;
        while std::time::Instant::now() < deadline {
            if check().await {
                return true;
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
        false
    }
}

/// The plugin's identity: the ServiceAccount of `deploy/rbac/nri.yaml`, bound by that file's
/// ClusterRole and admission policy and nothing else (so every test proves them sufficient),
/// with a token bound to a Pod on the bed's node, as the DaemonSet's pod on that node would have.
pub struct PluginIdentity {
    /// The ServiceAccount's namespace.
    pub namespace: String,
    /// The ServiceAccount's name.
    pub account: String,
    /// The Pod on [`NODE`] the token is bound to (in `namespace`).
    pub pod: Pod,
    /// A kubeconfig with that token.
    pub kubeconfig: PathBuf,
}

/// Applies every document of `deploy/rbac/nri.yaml`, gives its ServiceAccount a pod on [`NODE`]
/// and a token bound to it, and waits until the admission policy is enforced.
async fn least_privilege_identity(kube: &KubeApi) -> Result<PluginIdentity> {
    let path = crate::repo_root().join("deploy/rbac/nri.yaml");
    let text = std::fs::read_to_string(&path)
        .map_err(|e| Error::Other(format!("read {}: {e}", path.display())))?;
    let docs: Vec<serde_json::Value> = serde_saphyr::from_multiple(&text)
        .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    let account = docs
        .iter()
        .find(|doc| doc["kind"] == "ServiceAccount")
        .ok_or_else(|| Error::Other(format!("no ServiceAccount in {}", path.display())))?;
    let namespace = account["metadata"]["namespace"]
        .as_str()
        .unwrap_or("default")
        .to_owned();
    let account = account["metadata"]["name"]
        .as_str()
        .unwrap_or_default()
        .to_owned();
    kube.create_namespace(&namespace).await?;
    let client = kube.client().await?;
    for doc in docs {
        apply(&client, doc)
            .await
            .map_err(|e| Error::Other(format!("{}: {e}", path.display())))?;
    }
    let pod: Pod = serde_json::from_value(serde_json::json!({
        "metadata": {"name": format!("{account}-{NODE}"), "namespace": namespace},
        "spec": {
            "serviceAccountName": account,
            "nodeName": NODE,
            "containers": [{"name": "plugin", "image": crate::containerd::BUSYBOX_IMAGE}],
        },
    }))
    .map_err(|e| Error::Other(format!("plugin pod: {e}")))?;
    let pod = Api::<Pod>::namespaced(client, &namespace)
        .create(&PostParams::default(), &pod)
        .await
        .map_err(kube_err("create the plugin's pod"))?;
    let token = kube.pod_bound_token(&namespace, &account, &pod).await?;
    let kubeconfig = kube.kubeconfig_with_token(&account, &token)?;
    let identity = PluginIdentity {
        namespace,
        account,
        pod,
        kubeconfig,
    };
    policy_enforced(&identity).await?;
    Ok(identity)
}

/// Creates one document of `deploy/rbac/nri.yaml` (the kinds that file may hold).
async fn apply(client: &kube::Client, doc: serde_json::Value) -> std::result::Result<(), String> {
    use k8s_openapi::api::admissionregistration::v1::{
        ValidatingAdmissionPolicy, ValidatingAdmissionPolicyBinding,
    };
    use k8s_openapi::api::core::v1::ServiceAccount;
    let kind = doc["kind"].as_str().unwrap_or_default().to_owned();
    let pp = PostParams::default();
    let created = match kind.as_str() {
        "ServiceAccount" => {
            let sa: ServiceAccount = serde_json::from_value(doc).map_err(|e| e.to_string())?;
            let namespace = sa.metadata.namespace.clone().unwrap_or_default();
            Api::<ServiceAccount>::namespaced(client.clone(), &namespace)
                .create(&pp, &sa)
                .await
                .map(drop)
        }
        "ClusterRole" => {
            let role: ClusterRole = serde_json::from_value(doc).map_err(|e| e.to_string())?;
            Api::all(client.clone()).create(&pp, &role).await.map(drop)
        }
        "ClusterRoleBinding" => {
            let binding: ClusterRoleBinding =
                serde_json::from_value(doc).map_err(|e| e.to_string())?;
            Api::all(client.clone())
                .create(&pp, &binding)
                .await
                .map(drop)
        }
        "ValidatingAdmissionPolicy" => {
            let policy: ValidatingAdmissionPolicy =
                serde_json::from_value(doc).map_err(|e| e.to_string())?;
            Api::all(client.clone())
                .create(&pp, &policy)
                .await
                .map(drop)
        }
        "ValidatingAdmissionPolicyBinding" => {
            let binding: ValidatingAdmissionPolicyBinding =
                serde_json::from_value(doc).map_err(|e| e.to_string())?;
            Api::all(client.clone())
                .create(&pp, &binding)
                .await
                .map(drop)
        }
        other => {
            return Err(format!(
                "a {other:?} the test-bed does not know how to create"
            ));
        }
    };
    created.map_err(|e| format!("create the {kind}: {e}"))
}

/// Waits until the API server enforces the admission policy (it loads a new policy a moment
/// after it is created): a dry-run label change by the plugin on its own pod is refused.
async fn policy_enforced(identity: &PluginIdentity) -> Result<()> {
    let client = crate::kube_api::client_from(&identity.kubeconfig).await?;
    let pods: Api<Pod> = Api::namespaced(client, &identity.namespace);
    let name = identity.pod.metadata.name.clone().unwrap_or_default();
    let patch = serde_json::json!({"metadata": {"labels": {"nauti.io/probe": "policy"}}});
    let params = kube::api::PatchParams {
        dry_run: true,
        ..Default::default()
    };
    let deadline = std::time::Instant::now() + WAIT;
    loop {
        let last = match pods
            .patch(&name, &params, &kube::api::Patch::Merge(&patch))
            .await
        {
            Err(kube::Error::Api(status))
                if status.code == 403 && status.message.contains("ValidatingAdmissionPolicy") =>
            {
                return Ok(());
            }
            Ok(_) => "the label change was allowed".to_owned(),
            Err(e) => e.to_string(),
        };
        if std::time::Instant::now() >= deadline {
            return Err(Error::Other(format!(
                "the nauti-nri admission policy is not enforced after {WAIT:?}: {last}"
            )));
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

/// The `inet` line and the MAC of `eth-nauti` inside a container.
pub fn nic_in(ctrd: &Containerd, container: &str) -> Result<(String, String)> {
    let addr = ctrd.exec(container, &["ip", "-o", "-4", "addr", "show", "eth-nauti"])?;
    let mac = ctrd.exec(container, &["cat", "/sys/class/net/eth-nauti/address"])?;
    Ok((addr, mac.trim().to_owned()))
}

/// Polls a condition for at most [`WAIT`].
pub fn settle(pred: impl FnMut() -> bool) -> bool {
    wait_until(WAIT, pred)
}
