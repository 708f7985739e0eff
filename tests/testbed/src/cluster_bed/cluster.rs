//! One cluster of a bed: its router, control plane, OVN central, nodes and DNS add-on.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::error::{Error, Result};
use crate::ovn::OvnCentral;
use crate::peers;
use crate::process::run;
use crate::testdir::TestDir;

use super::control_plane::ControlPlane;
use super::coredns;
use super::credentials::write;
use super::node::{KubeNode, NodeContext};
use super::plan::ClusterPlan;
use super::sweep::Ownership;
use super::underlay::{Router, Wan, route};

/// A cluster with its nodes; everything stops on drop (fields drop in order: nodes first).
#[derive(Debug)]
pub struct Cluster {
    pub nodes: Vec<KubeNode>,
    pub central: OvnCentral,
    pub control_plane: ControlPlane,
    pub router: Router,
    pub name: String,
    pub plan: ClusterPlan,
    dir: PathBuf,
}

impl Cluster {
    /// Starts the router, the control plane, the OVN central and `nodes` nodes, and applies the
    /// DNS add-on; does not wait for the nodes to be Ready (see [`Cluster::wait_ready`]).
    pub fn start(
        bed: &Ownership,
        test: &TestDir,
        wan: &Wan,
        name: &str,
        plan: ClusterPlan,
        nodes: u8,
        public: bool,
    ) -> Result<Self> {
        let dir = test.sub(name)?;
        let router = Router::start(bed.id(), name, plan, wan, public)?;
        let control_plane = ControlPlane::start(bed.id(), name, plan, &router, &dir)?;
        let central = OvnCentral::start_in(test, &bed.run_dir()?)?;
        let mut cluster = Self {
            nodes: Vec::new(),
            central,
            control_plane,
            router,
            name: name.to_owned(),
            plan,
            dir,
        };
        for _ in 0..nodes {
            cluster.add_node(bed, test)?;
        }
        cluster.apply(&coredns::manifests(&plan))?;
        Ok(cluster)
    }

    /// Starts one more node and routes its pod range from every other member of the cluster.
    pub fn add_node(&mut self, bed: &Ownership, test: &TestDir) -> Result<&KubeNode> {
        let index = u8::try_from(self.nodes.len())
            .ok()
            .filter(|i| *i < super::plan::MAX_NODES)
            .ok_or_else(|| Error::Other(format!("{} has too many nodes", self.name)))?;
        let ctx = NodeContext {
            bed,
            cluster: &self.name,
            plan: self.plan,
            router: &self.router,
            creds: &self.control_plane.creds,
            central: &self.central,
            test,
        };
        let node = KubeNode::start(&ctx, index)?;
        self.nodes.push(node);
        self.route_pods()?;
        self.nodes
            .last()
            .ok_or_else(|| Error::Other("no node after adding one".into()))
    }

    /// Routes every node's pod range via that node, in the router, the control plane and every
    /// other node: pods talk across nodes without encapsulation, as on a flat cloud network.
    fn route_pods(&self) -> Result<()> {
        for node in &self.nodes {
            let cidr = self.plan.node_pod_cidr(node.index);
            self.router.route(&cidr, &node.ip)?;
            route(&self.control_plane.netns, &cidr, &node.ip)?;
            for other in self.nodes.iter().filter(|o| o.index != node.index) {
                route(&other.netns, &cidr, &node.ip)?;
            }
        }
        Ok(())
    }

    /// The administrator's kubeconfig, context named after the cluster; works from the machine.
    pub fn kubeconfig(&self) -> &Path {
        self.control_plane.admin_kubeconfig()
    }

    /// `kubectl --kubeconfig <admin> <args>`; its stdout.
    pub fn kubectl(&self, args: &[&str]) -> Result<String> {
        run(Command::new(peers::bin("kubectl")?)
            .arg("--kubeconfig")
            .arg(self.kubeconfig())
            .args(["--request-timeout", "30s"])
            .args(args))
    }

    /// The names of the pods in `namespace` matching the label `selector`.
    pub fn pod_names(&self, namespace: &str, selector: &str) -> Result<Vec<String>> {
        Ok(self
            .kubectl(&[
                "get",
                "pods",
                "-n",
                namespace,
                "-l",
                selector,
                "-o",
                "jsonpath={.items[*].metadata.name}",
            ])?
            .split_whitespace()
            .map(str::to_owned)
            .collect())
    }

    /// `kubectl apply` of a manifest (an object or a `List`).
    pub fn apply(&self, manifest: &serde_json::Value) -> Result<String> {
        let file = self
            .dir
            .join(format!("apply-{}.json", crate::names::unique("m")));
        write(&file, &manifest.to_string())?;
        self.kubectl(&["apply", "-f", &file.display().to_string()])
    }

    /// Waits until every node is Ready and CoreDNS is available.
    pub fn wait_ready(&self, timeout: Duration) -> Result<()> {
        let seconds = format!("--timeout={}s", timeout.as_secs());
        let deadline = std::time::Instant::now() + timeout;
        // `kubectl wait` fails at once while a Node is not registered yet: poll until all are.
        let expected = self.nodes.len();
        loop {
            let registered = self
                .kubectl(&["get", "nodes", "-o", "name"])
                .map(|out| out.lines().count())
                .unwrap_or(0);
            if registered >= expected {
                break;
            }
            if std::time::Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "{}: {registered} of {expected} nodes registered after {timeout:?}",
                    self.name
                )));
            }
            std::thread::sleep(Duration::from_millis(500));
        }
        self.kubectl(&["wait", "--for=condition=Ready", "node", "--all", &seconds])?;
        self.kubectl(&[
            "-n",
            "kube-system",
            "rollout",
            "status",
            "deployment/coredns",
            &seconds,
        ])?;
        Ok(())
    }

    /// The node called `name`.
    pub fn node(&self, name: &str) -> Result<&KubeNode> {
        self.nodes
            .iter()
            .find(|n| n.name == name)
            .ok_or_else(|| Error::Other(format!("{} has no node {name}", self.name)))
    }
}
