//! Installing Nauti on the bed's clusters: CRDs and RBAC from deploy/, octopus as pods, and the
//! node agents as processes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use nauti_testbed::cluster_bed::plan::WIREGUARD_PORT;
use nauti_testbed::cluster_bed::{Cluster, ClusterBed, ClusterSpec, images::TOOLS_IMAGE};
use nauti_testbed::{Daemon, TestDir};
use serde_json::{Value, json};

pub const NAMESPACE: &str = "nauti-system";
const WG_INTERFACE: &str = "nauti-wg";
const METRICS_PORT: u16 = 9466;
const GLOBAL: &str = "10.112.0.0/12";

fn repo() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("..")
}

/// The octopus binary under test, and the directory of the workspace's other binaries.
fn octopus() -> PathBuf {
    PathBuf::from(env!("CARGO_BIN_EXE_octopus"))
}

fn sibling(name: &str) -> PathBuf {
    let path = octopus().with_file_name(name);
    assert!(
        path.is_file(),
        "{} is missing: build it first (`cargo build -p nauti-ovn -p nauti-nri`; `make test` does)",
        path.display()
    );
    path
}

fn apply_files(cluster: &Cluster, files: &[&str]) {
    for file in files {
        let path = repo().join(file);
        cluster
            .kubectl(&["apply", "--server-side", "-f", &path.display().to_string()])
            .unwrap_or_else(|e| panic!("{}: apply {file}: {e}", cluster.name));
    }
}

fn wait(what: &str, timeout: Duration, mut done: impl FnMut() -> Option<String>) -> String {
    let start = std::time::Instant::now();
    loop {
        if let Some(value) = done() {
            return value;
        }
        assert!(
            start.elapsed() < timeout,
            "timed out after {timeout:?}: {what}"
        );
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// The pod spec parts every octopus pod shares: the binary mounted from this build.
fn octopus_container(args: &[&str], env: Vec<Value>, mounts: Vec<Value>) -> Value {
    let mut all_mounts = vec![
        json!({"name": "bin", "mountPath": "/nauti", "readOnly": true}),
        json!({"name": "wireguard", "mountPath": "/var/run/wireguard"}),
    ];
    all_mounts.extend(mounts);
    let mut command = vec![json!("/nauti/octopus")];
    command.extend(args.iter().map(|a| json!(a)));
    let mut all_env = vec![
        json!({"name": "POD_NAME", "valueFrom": {"fieldRef": {"fieldPath": "metadata.name"}}}),
        json!({"name": "NAUTI_LOG", "value": "info,nauti_octopus=debug,boringtun=debug"}),
        json!({"name": "OCTOPUS_METRICS_ADDR", "value": format!("0.0.0.0:{METRICS_PORT}")}),
        json!({"name": "OCTOPUS_WIREGUARD_INTERFACE", "value": WG_INTERFACE}),
        json!({"name": "OCTOPUS_GLOBAL_CIDR", "value": GLOBAL}),
    ];
    all_env.extend(env);
    json!({
        "name": "octopus", "image": TOOLS_IMAGE, "imagePullPolicy": "IfNotPresent",
        "command": command, "env": all_env, "volumeMounts": all_mounts,
        "securityContext": {"privileged": true},
        "readinessProbe": {"httpGet": {"path": "/readyz", "port": METRICS_PORT}, "periodSeconds": 1},
    })
}

fn octopus_volumes(extra: Vec<Value>) -> Vec<Value> {
    let mut volumes = vec![
        json!({"name": "bin", "hostPath": {"path": octopus().parent().unwrap(), "type": "Directory"}}),
        json!({"name": "wireguard", "emptyDir": {}}),
    ];
    volumes.extend(extra);
    volumes
}

fn deployment(name: &str, account: &str, annotations: Value, pod: Value) -> Value {
    let labels = json!({"app": name});
    let mut spec = pod;
    spec["serviceAccountName"] = json!(account);
    json!({
        "apiVersion": "apps/v1", "kind": "Deployment",
        "metadata": {"name": name, "namespace": NAMESPACE},
        "spec": {
            "replicas": 1,
            // The old pods go first (the hub's hostPort fits one pod on its node).
            "strategy": {"type": "Recreate"},
            "selector": {"matchLabels": labels},
            "template": {"metadata": {"labels": labels, "annotations": annotations}, "spec": spec},
        },
    })
}

/// The pods of `deployment` (label `app`) labelled `nauti.io/gateway-active=true` by their
/// leader, leaving out those being deleted.
pub fn active_pods(cluster: &Cluster, deployment: &str) -> Vec<String> {
    cluster
        .kubectl(&[
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            &format!("app={deployment},nauti.io/gateway-active=true"),
            "-o",
            "jsonpath={range .items[*]}{.metadata.name} {.metadata.deletionTimestamp}{\"\\n\"}{end}",
        ])
        .unwrap_or_default()
        .lines()
        .filter_map(|line| match line.split_whitespace().collect::<Vec<_>>()[..] {
            [name] => Some(name.to_owned()),
            _ => None,
        })
        .collect()
}

/// Waits until `deployment` has `replicas` pods of its current template, all ready (a standby
/// is ready too), one of them labelled active by the leader, and no pod of an earlier template
/// left terminating (an old leader still runs its tunnel, with the cluster's key, until it ends).
fn wait_leader(cluster: &Cluster, deployment: &str, replicas: usize) {
    let start = std::time::Instant::now();
    loop {
        let status = cluster
            .kubectl(&[
                "get", "deployment", deployment, "-n", NAMESPACE, "-o",
                "jsonpath={.metadata.generation} {.status.observedGeneration} {.status.updatedReplicas} {.status.replicas} {.status.readyReplicas}",
            ])
            .unwrap_or_default();
        let fields: Vec<&str> = status.split_whitespace().collect();
        let want = replicas.to_string();
        if let [generation, observed, updated, total, ready] = fields.as_slice()
            && generation == observed
            && *updated == want
            && *total == want
            && *ready == want
            && active_pods(cluster, deployment).len() == 1
            && cluster
                .pod_names(NAMESPACE, &format!("app={deployment}"))
                .is_ok_and(|pods| pods.len() == replicas)
        {
            return;
        }
        if start.elapsed() > Duration::from_secs(180) {
            let pods = cluster
                .kubectl(&["get", "pods", "-A", "-o", "wide"])
                .unwrap_or_default();
            let logs = cluster
                .kubectl(&[
                    "logs",
                    "-n",
                    NAMESPACE,
                    &format!("deployment/{deployment}"),
                    "--tail=60",
                ])
                .unwrap_or_default();
            panic!(
                "{}: {deployment} has no leader ({status}):\n{pods}\n{logs}",
                cluster.name
            )
        }
        std::thread::sleep(Duration::from_millis(500));
    }
}

/// CRDs, RBAC and `octopus hub` with its gateway (hostPort: the hub's router forwards the
/// WireGuard port to its first node).
pub fn deploy_hub(hub: &Cluster) {
    apply_files(
        hub,
        &[
            "deploy/crds/peers.nauti.io.yaml",
            "deploy/crds/serviceexports.multicluster.x-k8s.io.yaml",
            "deploy/crds/serviceimports.multicluster.x-k8s.io.yaml",
            "deploy/rbac/octopus-hub.yaml",
        ],
    );
    let endpoint = hub.plan.router_wan_ip();
    let mut pod = json!({
        "containers": [octopus_container(
            &["hub"],
            vec![
                json!({"name": "OCTOPUS_CLUSTER_ID", "value": "hub"}),
                json!({"name": "OCTOPUS_ENDPOINT", "value": endpoint}),
            ],
            vec![],
        )],
        "volumes": octopus_volumes(vec![]),
    });
    pod["containers"][0]["ports"] = json!([{
        "containerPort": WIREGUARD_PORT, "hostPort": WIREGUARD_PORT, "protocol": "UDP",
    }]);
    hub.apply(&deployment("octopus-hub", "octopus-hub", json!({}), pod))
        .unwrap();
    wait_leader(hub, "octopus-hub", 1);
}

/// A bed of a hub and two members behind NAT: `east` on `east_nodes` nodes, `west` on one.
pub fn start_bed(name: &str, east_nodes: u8) -> ClusterBed {
    ClusterBed::start(
        name,
        &[
            ClusterSpec::hub("hub", 1),
            ClusterSpec::member("east", east_nodes),
            ClusterSpec::member("west", 1),
        ],
    )
    .unwrap()
}

/// Nauti on `bed`: the hub's gateway, then east (slice `10.113.0.0/16`) and west
/// (`10.114.0.0/16`) joined with a token the hub issued, each with its CNF leading.
pub fn install(bed: &ClusterBed) -> (Member<'_>, Member<'_>) {
    let hub = bed.cluster("hub").unwrap();
    deploy_hub(hub);
    let token = issue_token(hub);
    let east = Member::start(bed, "east", "10.113.0.0/16", &token);
    let west = Member::start(bed, "west", "10.114.0.0/16", &token);
    east.wait_gateway_ready(1);
    west.wait_gateway_ready(1);
    (east, west)
}

/// A bootstrap token from `octopus hub issue-token`.
pub fn issue_token(hub: &Cluster) -> String {
    let out = Command::new(octopus())
        .args(["hub", "issue-token", "--kubeconfig"])
        .arg(hub.kubeconfig())
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let issued: Value = serde_json::from_slice(&out.stdout).unwrap();
    issued["token"].as_str().unwrap().to_owned()
}

/// A member with its node agents running and its CNF deployed.
pub struct Member<'a> {
    cluster: &'a Cluster,
    _agents: Vec<Daemon>,
    _dir: TestDir,
}

impl<'a> Member<'a> {
    /// Installs the member side into `name`, asking the hub for `slice`.
    pub fn start(bed: &'a ClusterBed, name: &str, slice: &str, token: &str) -> Self {
        let cluster = bed.cluster(name).unwrap();
        let hub = bed.cluster("hub").unwrap();
        let dir = TestDir::new(&format!("crosscluster-{name}")).unwrap();
        apply_files(
            cluster,
            &[
                "deploy/crds/serviceexports.multicluster.x-k8s.io.yaml",
                "deploy/crds/serviceimports.multicluster.x-k8s.io.yaml",
                "deploy/rbac/octopus-member.yaml",
            ],
        );
        let nb = cluster.central.nb_remote();
        let mut agents = vec![start_ovnmaster(cluster, &dir, name, slice, &nb)];
        for node in &cluster.nodes {
            agents.push(start_nri(cluster, node, &dir, name, &nb));
        }

        let hub_url = format!("https://{}:6443", hub.plan.router_wan_ip());
        cluster
            .apply(&json!({
                "apiVersion": "v1", "kind": "Secret",
                "metadata": {"name": "nauti-hub", "namespace": NAMESPACE},
                "stringData": {"ca.crt": hub.control_plane.creds.ca_pem(), "token": token},
            }))
            .unwrap();
        let nb_socket = PathBuf::from(nb.strip_prefix("unix:").unwrap());
        let pod = json!({
            "containers": [octopus_container(
                &["member"],
                vec![
                    json!({"name": "OCTOPUS_CLUSTER_ID", "value": name}),
                    json!({"name": "OCTOPUS_HUB_URL", "value": hub_url}),
                    json!({"name": "OCTOPUS_HUB_CA_FILE", "value": "/etc/nauti/hub/ca.crt"}),
                    json!({"name": "OCTOPUS_TOKEN_FILE", "value": "/etc/nauti/hub/token"}),
                    json!({"name": "OCTOPUS_NAMESPACE", "value": NAMESPACE}),
                    json!({"name": "OCTOPUS_CLUSTER_CIDR", "value": slice}),
                    json!({"name": "OCTOPUS_OVN_NB", "value": format!(
                        "unix:/run/nauti-ovn/{}", nb_socket.file_name().unwrap().to_string_lossy())}),
                ],
                vec![
                    json!({"name": "hub", "mountPath": "/etc/nauti/hub", "readOnly": true}),
                    json!({"name": "ovn", "mountPath": "/run/nauti-ovn"}),
                ],
            )],
            "volumes": octopus_volumes(vec![
                json!({"name": "hub", "secret": {"secretName": "nauti-hub"}}),
                json!({"name": "ovn", "hostPath": {"path": nb_socket.parent().unwrap(), "type": "Directory"}}),
            ]),
        });
        cluster
            .apply(&deployment(
                "octopus-member",
                "octopus-member",
                json!({"nauti.io/forwarder": "true"}),
                pod,
            ))
            .unwrap();
        Self {
            cluster,
            _agents: agents,
            _dir: dir,
        }
    }

    pub fn cluster(&self) -> &Cluster {
        self.cluster
    }

    /// Waits until the CNF is the leader, joined and has passed over the Peers.
    pub fn wait_gateway_ready(&self, replicas: usize) {
        wait_leader(self.cluster, "octopus-member", replicas);
    }

    /// Runs a tools pod named `name` with `command` and waits until it runs.
    pub fn run_pod(&self, name: &str, command: &[&str]) {
        self.run_pod_on(name, None, command);
    }

    /// [`run_pod`](Self::run_pod) on the node `node`, if given.
    pub fn run_pod_on(&self, name: &str, node: Option<&str>, command: &[&str]) {
        let mut pod = json!({
            "apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default"},
            "spec": {
                "terminationGracePeriodSeconds": 1,
                "containers": [{"name": "main", "image": TOOLS_IMAGE,
                                "imagePullPolicy": "IfNotPresent", "command": command}],
            },
        });
        if let Some(node) = node {
            pod["spec"]["nodeName"] = json!(node);
        }
        self.cluster.apply(&pod).unwrap();
        self.cluster
            .kubectl(&[
                "wait",
                "--for=condition=Ready",
                &format!("pod/{name}"),
                "--timeout=120s",
            ])
            .unwrap_or_else(|e| panic!("{}: pod {name} not ready: {e}", self.cluster.name));
    }

    /// `kubectl exec` in a pod of `default`; the output, or the error with it.
    pub fn exec(&self, pod: &str, command: &[&str]) -> Result<String, String> {
        let mut args = vec!["exec", pod, "--"];
        args.extend(command);
        self.cluster.kubectl(&args).map_err(|e| e.to_string())
    }

    /// Runs `octopus member leave` as the chart's pre-delete hook does (a Job under the member's
    /// ServiceAccount) and waits for it to succeed.
    pub fn leave(&self) {
        let name = &self.cluster.name;
        let mut pod = json!({
            "restartPolicy": "Never",
            "serviceAccountName": "octopus-member",
            "containers": [octopus_container(
                &["member", "leave"],
                vec![
                    json!({"name": "OCTOPUS_CLUSTER_ID", "value": name}),
                    json!({"name": "OCTOPUS_NAMESPACE", "value": NAMESPACE}),
                ],
                vec![],
            )],
            "volumes": octopus_volumes(vec![]),
        });
        pod["containers"][0]
            .as_object_mut()
            .unwrap()
            .remove("readinessProbe");
        self.cluster
            .apply(&json!({
                "apiVersion": "batch/v1", "kind": "Job",
                "metadata": {"name": "octopus-member-leave", "namespace": NAMESPACE},
                "spec": {"backoffLimit": 0, "template": {"spec": pod}},
            }))
            .unwrap();
        self.cluster
            .kubectl(&[
                "wait",
                "-n",
                NAMESPACE,
                "--for=condition=Complete",
                "job/octopus-member-leave",
                "--timeout=120s",
            ])
            .unwrap_or_else(|e| {
                let logs = self
                    .cluster
                    .kubectl(&["logs", "-n", NAMESPACE, "job/octopus-member-leave"])
                    .unwrap_or_default();
                panic!("{name}: leaving failed: {e}\n{logs}")
            });
    }

    /// Replaces the bootstrap token the CNF joins with.
    pub fn set_token(&self, token: &str) {
        let hub_secret = self
            .cluster
            .kubectl(&["get", "secret", "nauti-hub", "-n", NAMESPACE, "-o", "json"])
            .unwrap();
        let mut secret: Value = serde_json::from_str(&hub_secret).unwrap();
        secret["stringData"] = json!({"token": token});
        self.cluster.apply(&secret).unwrap();
    }

    /// Scales the CNF Deployment.
    pub fn scale_gateway(&self, replicas: usize) {
        self.cluster
            .kubectl(&[
                "scale",
                "-n",
                NAMESPACE,
                "deployment/octopus-member",
                &format!("--replicas={replicas}"),
            ])
            .unwrap();
    }

    /// The next hop of the gateway router's route to the global network (the active CNF).
    pub fn gateway_next_hop(&self) -> String {
        self.cluster
            .central
            .nbctl(&[
                "--bare",
                "--columns=nexthop",
                "find",
                "Logical_Router_Static_Route",
                &format!("ip_prefix=\"{GLOBAL}\""),
            ])
            .unwrap_or_default()
            .trim()
            .to_owned()
    }

    /// What a failure report needs: pods, the CNF's log, the gateway router's routes.
    pub fn diagnostics(&self) -> String {
        let pods = self
            .cluster
            .kubectl(&["get", "pods", "-A", "-o", "wide"])
            .unwrap_or_default();
        let logs = self
            .cluster
            .kubectl(&[
                "logs",
                "-n",
                NAMESPACE,
                "deployment/octopus-member",
                "--tail=80",
            ])
            .unwrap_or_default();
        let routes = self
            .cluster
            .central
            .nbctl(&["lr-route-list", &format!("nauti-{}-gw", self.cluster.name)])
            .unwrap_or_default();
        format!("{pods}\n--- octopus-member\n{logs}\n--- routes\n{routes}")
    }
}

fn start_ovnmaster(cluster: &Cluster, dir: &TestDir, name: &str, slice: &str, nb: &str) -> Daemon {
    let mut cmd = Command::new(sibling("nauti-ovnmaster"));
    cmd.arg("--kubeconfig")
        .arg(cluster.kubeconfig())
        .args([
            "--ovn-nb",
            nb,
            "--cluster-id",
            name,
            "--cluster-subnet",
            slice,
        ])
        .args(["--metrics-addr", "127.0.0.1:0", "--log", "info"]);
    Daemon::spawn(
        "nauti-ovnmaster",
        cmd,
        &dir.log(&format!("ovnmaster-{name}")),
    )
    .unwrap()
}

fn start_nri(
    cluster: &Cluster,
    node: &nauti_testbed::cluster_bed::KubeNode,
    dir: &TestDir,
    name: &str,
    nb: &str,
) -> Daemon {
    // The plugin runs in the node's namespace: the API server at its own address, not the relay.
    let admin = std::fs::read_to_string(cluster.kubeconfig()).unwrap();
    let server = format!("https://127.0.0.1:{}", cluster.control_plane.relay_port());
    assert!(
        admin.contains(&server),
        "the admin kubeconfig does not name {server}"
    );
    let inside = dir.path().join(format!("{}.kubeconfig", node.name));
    std::fs::write(
        &inside,
        admin.replace(&server, &cluster.plan.apiserver_url()),
    )
    .unwrap();
    let mut cmd = Command::new("nsenter");
    cmd.arg(format!("--net={}", node.netns.path().display()))
        .arg(sibling("nauti-nri"))
        .arg("--nri-socket")
        .arg(node.containerd.nri_socket())
        .args(["--node-name", &node.name, "--cluster-id", name])
        .args(["--ovn-nb", nb, "--ovs-db", &node.ovn.db_remote()])
        .arg("--kubeconfig")
        .arg(&inside)
        .args(["--log", "info"]);
    Daemon::spawn("nauti-nri", cmd, &dir.log(&format!("nri-{}", node.name))).unwrap()
}

/// The pod's `nauti.io/ip_address`, once written.
pub fn pod_address(cluster: &Cluster, pod: &str) -> String {
    wait(
        &format!("{}: {pod}'s nauti.io/ip_address", cluster.name),
        Duration::from_secs(60),
        || {
            cluster
                .kubectl(&[
                    "get",
                    "pod",
                    pod,
                    "-o",
                    "jsonpath={.metadata.annotations.nauti\\.io/ip_address}",
                ])
                .ok()
                .filter(|ip| !ip.trim().is_empty())
                .map(|ip| ip.trim().to_owned())
        },
    )
}

/// The hub gateway's `octopus_tunnel_<direction>_bytes` towards `peer`, read from its pod.
pub fn tunnel_bytes(hub: &Cluster, peer: &str, direction: &str) -> u64 {
    let ip = hub
        .kubectl(&[
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            "app=octopus-hub",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ])
        .unwrap();
    let out = hub.nodes[0]
        .netns
        .command("curl")
        .args([
            "-sf",
            "-m",
            "3",
            &format!("http://{}:{METRICS_PORT}/metrics", ip.trim()),
        ])
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let prefix = format!("tunnel_{direction}_bytes{{peer=\"{peer}\"}} ");
    text.lines()
        .find_map(|l| {
            l.split_once(&prefix)
                .map(|(_, v)| v.trim().parse::<f64>().unwrap_or(0.0))
        })
        .map_or(0, |v| v as u64)
}
