//! The seed's demo across clusters, installed with Helm on a [`ClusterBed`]: a public hub and two
//! members behind NAT, `helm install nauti` on the hub, the bootstrap token read from what the
//! install printed, `helm install nauti-agent` on each member with the line the hub's NOTES print,
//! the nginx example exported in `cluster1` and fetched by name from `cluster2`, then
//! `helm uninstall` everywhere and a check that nothing is left. `make demo` runs it
//! (`nauti-demo-clusters`), and so does `cargo test -p nauti-testbed --test demo_clusters`.
//!
//! What stands for a user's nodes: OVN is each member's existing OVN (the bed's central, served
//! over TCP on the control plane's address: the chart's `ovn.northbound`/`ovn.southbound`), and
//! every node runs its own Open vSwitch and ovn-controller (the bed's chassis:
//! `ovn.chassis.enabled=false`). Each member has one node, so the node paths the chart mounts
//! (`nri.socketPath`, `nri.netnsDir`, `ovs.runDir`) are one value per cluster.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use crate::cluster_bed::{Cluster, ClusterBed, ClusterSpec, KubeNode};
use crate::error::{Error, Result};
use crate::process::run;
use crate::{Daemon, TestDir, peers, repo_root};

pub const HUB: &str = "hub";
pub const MEMBERS: [&str; 2] = ["cluster1", "cluster2"];
pub const NAMESPACE: &str = "nauti-system";
pub const GLOBAL_CIDR: &str = "10.112.0.0/12";
/// The name the seed curls from the other cluster.
pub const SEED_NAME: &str = "nginx-svc.default.svc.hyperos.local";
/// What the nginx page must hold.
pub const NGINX_TITLE: &str = "<title>Welcome to nginx!</title>";
/// The images the charts run on the bed (built by tests/peers/build-nauti-images.sh).
pub const NAUTI_BINARIES: [&str; 5] = [
    "octopus",
    "nauti-nri",
    "nauti-ovnmaster",
    "crossdns",
    "nautictl",
];
const NB_PORT: u16 = 6641;
const SB_PORT: u16 = 6642;

/// Where the demo says what it does: each step, the commands as a user types them, their output.
pub trait Narrator {
    fn say(&self, line: &str);
}

/// Prints to stdout.
pub struct Stdout;

impl Narrator for Stdout {
    fn say(&self, line: &str) {
        use std::io::Write;
        let mut out = std::io::stdout().lock();
        let _ = writeln!(out, "{line}");
    }
}

/// The hub and the members, Nauti installed on them.
pub struct SeedDemo<'n> {
    narrator: &'n dyn Narrator,
    started: Instant,
    dir: TestDir,
    /// TCP listeners of each member's OVN central; dropped before the bed.
    ovn_tcp: Vec<Daemon>,
    bed: ClusterBed,
    hub_ca: PathBuf,
}

impl<'n> SeedDemo<'n> {
    /// Starts the bed and installs the charts as the seed does; the bed goes away on failure.
    pub fn install(narrator: &'n dyn Narrator) -> Result<Self> {
        let started = Instant::now();
        let dir = TestDir::new("seed-demo")?;
        let mut demo = Self {
            narrator,
            started,
            hub_ca: dir.path().join("nauti-hub-ca.crt"),
            dir,
            ovn_tcp: Vec::new(),
            bed: {
                narrator.say(
                    "==> ClusterBed: a public hub and two members behind NAT (one node each), \
                     the members' pod and service CIDRs identical on purpose",
                );
                ClusterBed::start(
                    "seed-demo",
                    &[
                        ClusterSpec::hub(HUB, 1),
                        ClusterSpec::member(MEMBERS[0], 1),
                        ClusterSpec::member(MEMBERS[1], 1).with_ranges_of(MEMBERS[0]),
                    ],
                )?
            },
        };
        for cluster in demo.bed.clusters() {
            narrator.say(&format!(
                "    {}: pods {}, services {}",
                cluster.name,
                cluster.plan.pod_cidr(),
                cluster.plan.service_cidr()
            ));
        }
        demo.step("clusters ready");
        for member in MEMBERS {
            let listeners = demo.prepare_member(member)?;
            demo.ovn_tcp.extend(listeners);
        }
        let notes = demo.install_hub()?;
        let mut notes = notes;
        for (i, member) in MEMBERS.iter().enumerate() {
            if i > 0 {
                // The hub deletes a token once a member has joined with it: an upgrade prints
                // the next one, as NOTES say.
                notes = demo.next_token()?;
            }
            demo.install_member(member, &notes)?;
        }
        demo.wait_peers_ready()?;
        Ok(demo)
    }

    /// The seed's example in cluster1 (exported) and cluster2, and the page fetched by name
    /// from cluster2's `alpine` container; returns the page.
    pub fn fetch_across(&self) -> Result<String> {
        let example = repo_root().join("tests/demo/nginx-deploy.yaml");
        let export = repo_root().join("tests/demo/nginx-export.yaml");
        let (c1, c2) = (self.member(0)?, self.member(1)?);
        self.narrator
            .say("==> Create this example in one cluster (cluster1), and export it");
        self.kubectl_shown(c1, &["create", "-f", &example.display().to_string()])?;
        self.kubectl_shown(c1, &["create", "-f", &export.display().to_string()])?;
        self.narrator
            .say("==> ... and in the other (cluster2), where curl runs");
        self.kubectl_shown(c2, &["create", "-f", &example.display().to_string()])?;
        for cluster in [c1, c2] {
            cluster.kubectl(&[
                "rollout",
                "status",
                "deployment/nginx-app",
                "--timeout=180s",
            ])?;
        }
        let pod = example_pod(c2)?;
        self.step("the example runs in both clusters");
        self.narrator
            .say("==> Test it in another cluster (cluster2)");
        self.narrator.say(&format!(
            "$ kubectl exec -it {pod} -c alpine -- curl {SEED_NAME}"
        ));
        // The export travels cluster1 -> hub -> cluster2 -> crossdns, and CoreDNS's `reload`
        // takes up to 45 s to see the forwarding block: bounded retries.
        let mut last = String::new();
        let page = wait_for("the nginx page by name from cluster2", 240, || {
            match c2.kubectl(&[
                "exec", &pod, "-c", "alpine", "--", "curl", "-sS", "-m", "5", SEED_NAME,
            ]) {
                Ok(page) if page.contains(NGINX_TITLE) => Some(page),
                Ok(other) => {
                    last = other;
                    None
                }
                Err(e) => {
                    last = e.to_string();
                    None
                }
            }
        })
        .map_err(|e| Error::Other(format!("{e}; last answer: {last}\n{}", self.diagnostics())))?;
        for line in page.lines() {
            self.narrator.say(line);
        }
        self.step("fetched across clusters");
        Ok(page)
    }

    /// Restarts `member`'s gateway pods as an upgrade does (`kubectl rollout restart`), with
    /// cluster2 fetching the page all along. Returns the longest run of failed fetches, once
    /// the rollout is done and the page comes again.
    pub fn roll_gateways(&self, member: usize) -> Result<Duration> {
        let (cluster, c2) = (self.member(member)?, self.member(1)?);
        let name = &cluster.name;
        self.narrator.say(&format!(
            "==> Roll {name}'s gateway pods as an upgrade does, cluster2 fetching the page meanwhile"
        ));
        let pod = example_pod(c2)?;
        let gateway_pods =
            || cluster.pod_names(NAMESPACE, "app.kubernetes.io/component=octopus-member");
        let old = gateway_pods()?;
        self.kubectl_shown(
            cluster,
            &[
                "rollout",
                "restart",
                "-n",
                NAMESPACE,
                "deployment/octopus-member",
            ],
        )?;
        let deadline = Instant::now() + Duration::from_secs(300);
        let (mut longest, mut failing_since) = (Duration::ZERO, None::<Instant>);
        loop {
            let asked = Instant::now();
            let fetched = c2
                .kubectl(&[
                    "exec", &pod, "-c", "alpine", "--", "curl", "-sS", "-m", "2", SEED_NAME,
                ])
                .is_ok_and(|page| page.contains(NGINX_TITLE));
            if fetched {
                if let Some(since) = failing_since.take() {
                    longest = longest.max(asked.duration_since(since));
                }
                // Done when every old pod is gone and the new ones are all ready.
                let rolled = !gateway_pods()?.iter().any(|p| old.contains(p))
                    && wait_rollout(cluster, "deployment/octopus-member", 1).is_ok();
                if rolled {
                    break;
                }
            } else if failing_since.is_none() {
                failing_since = Some(asked);
            }
            if Instant::now() >= deadline {
                return Err(Error::Other(format!(
                    "{name}: after rolling its gateway pods, no page for cluster2 or no finished rollout within 300 s\n{}",
                    self.diagnostics()
                )));
            }
            std::thread::sleep(Duration::from_millis(200));
        }
        self.narrator.say(&format!(
            "    pods {} replaced by {}; the longest run of failed fetches: {:.1} s",
            old.join(", "),
            gateway_pods()?.join(", "),
            longest.as_secs_f64()
        ));
        self.step(&format!("{name}'s gateway pods rolled"));
        Ok(longest)
    }

    /// The cluster set in a few lines: Peers on the hub, exports and imports in the members.
    pub fn summary(&self) -> Result<String> {
        let hub = self.bed.cluster(HUB)?;
        let mut text =
            String::from("==> The cluster set\n$ kubectl get peers -n nauti-system (hub)\n");
        text.push_str(&hub.kubectl(&["get", "peers", "-n", NAMESPACE])?);
        text.push_str("$ kubectl get serviceexports -A (cluster1)\n");
        text.push_str(&self.member(0)?.kubectl(&["get", "serviceexports", "-A"])?);
        text.push_str("$ kubectl get serviceimports -A (cluster2)\n");
        text.push_str(&self.member(1)?.kubectl(&["get", "serviceimports", "-A"])?);
        for line in text.lines() {
            self.narrator.say(line);
        }
        Ok(text)
    }

    /// How to reach each cluster with kubectl.
    pub fn kubeconfigs(&self) -> Vec<(String, PathBuf)> {
        self.bed.kubeconfigs()
    }

    /// `helm uninstall` on the members, then on the hub, and a check that nothing Nauti wrote is
    /// left: pods' and Nodes' `nauti.io/*` annotations, OVN rows, the CoreDNS block, the Peers
    /// and bootstrap tokens on the hub, the release's objects. Returns what is left.
    pub fn uninstall(&self) -> Result<Leftovers> {
        for (i, member) in MEMBERS.iter().enumerate() {
            let cluster = self.member(i)?;
            self.narrator
                .say(&format!("==> Uninstall nauti-agent from {member}"));
            self.helm_shown(
                cluster,
                &[
                    "uninstall",
                    "nauti-agent",
                    "-n",
                    NAMESPACE,
                    "--wait",
                    "--timeout",
                    "5m",
                ],
            )
            .map_err(|e| Error::Other(format!("{e}\n{}", self.leave_diagnostics(cluster))))?;
            // An existing OVN outlives the release, and the chart's daemons ran until its
            // resources went: its rows are removed after, as the chart's README says.
            let nautictl = release_binary("nautictl")?;
            let nb = cluster.central.nb_remote();
            self.narrator.say(&format!(
                "$ nautictl --context {member} clean --ovn-nb {nb}"
            ));
            let out = run(Command::new(&nautictl)
                .arg("--kubeconfig")
                .arg(cluster.kubeconfig())
                .args(["clean", "--ovn-nb", &nb]))?;
            for line in out.lines() {
                self.narrator.say(line);
            }
        }
        let hub = self.bed.cluster(HUB)?;
        // The members left: their Peers are gone before the hub goes.
        let mut left = Vec::new();
        let peers = hub.kubectl(&["get", "peers", "-n", NAMESPACE, "-o", "name"])?;
        let members_left: Vec<&str> = peers
            .lines()
            .map(str::trim)
            .filter(|p| MEMBERS.iter().any(|m| p.ends_with(&format!("/{m}"))))
            .collect();
        if !members_left.is_empty() {
            left.push(format!(
                "hub: members' Peers after they left: {members_left:?}"
            ));
        }
        self.narrator.say("==> Uninstall nauti from the hub");
        self.helm_shown(
            hub,
            &[
                "uninstall",
                "nauti",
                "-n",
                NAMESPACE,
                "--wait",
                "--timeout",
                "5m",
            ],
        )?;
        self.step("uninstalled");
        // What the daemons made at run time (Leases, the slice ConfigMap, the WireGuard key,
        // the hub's Peer) belongs to their Deployments: the garbage collector takes it soon
        // after they go.
        let deadline = Instant::now() + GARBAGE_COLLECTION;
        let mut remaining = self.remaining(hub)?;
        while !remaining.is_empty() && Instant::now() < deadline {
            std::thread::sleep(Duration::from_secs(1));
            remaining = self.remaining(hub)?;
        }
        left.extend(remaining);
        if left.is_empty() {
            self.narrator.say(
                "==> Nothing Nauti wrote into the clusters is left: no nauti.io annotation, OVN row, \
                 CoreDNS block, Peer, bootstrap token or object in the release's namespace",
            );
        }
        for line in &left {
            self.narrator.say(&format!("left behind: {line}"));
        }
        self.step("checked");
        Ok(Leftovers { nauti: left })
    }

    /// What is left of Nauti in the clusters once every release is uninstalled.
    fn remaining(&self, hub: &Cluster) -> Result<Vec<String>> {
        let mut left = Vec::new();
        let peers = hub.kubectl(&["get", "peers", "-A", "-o", "name"])?;
        if !peers.trim().is_empty() {
            left.push(format!("hub: Peers after uninstall: {}", peers.trim()));
        }
        for (i, member) in MEMBERS.iter().enumerate() {
            left.extend(self.leftovers_in(member, self.member(i)?)?);
        }
        let tokens = hub.kubectl(&[
            "get",
            "secrets",
            "-n",
            "kube-system",
            "-l",
            "nauti.io/bootstrap-token=true",
            "-o",
            "name",
        ])?;
        if !tokens.trim().is_empty() {
            left.push(format!("hub: bootstrap tokens: {}", tokens.trim()));
        }
        left.extend(release_objects(hub, HUB)?);
        Ok(left)
    }

    /// Seconds since the demo started.
    pub fn elapsed(&self) -> Duration {
        self.started.elapsed()
    }

    fn member(&self, index: usize) -> Result<&Cluster> {
        self.bed.cluster(MEMBERS[index])
    }

    fn step(&self, what: &str) {
        self.narrator.say(&format!(
            "    [{:>5.1} s] {what}",
            self.started.elapsed().as_secs_f64()
        ));
    }

    /// The member's existing OVN served over TCP on its control plane's address, and its node's
    /// pod network namespaces on a shared mount (nauti-nri mounts them HostToContainer).
    fn prepare_member(&self, name: &str) -> Result<Vec<Daemon>> {
        let cluster = self.bed.cluster(name)?;
        let cp_ip = cluster.plan.control_plane_ip();
        let mut listeners = Vec::new();
        for (port, socket) in [
            (NB_PORT, cluster.central.nb_socket()),
            (SB_PORT, cluster.central.sb_socket()),
        ] {
            let mut cmd = Command::new("nsenter");
            cmd.arg(format!(
                "--net={}",
                cluster.control_plane.netns.path().display()
            ))
            .arg("socat")
            .arg(format!("TCP-LISTEN:{port},bind={cp_ip},fork,reuseaddr"))
            .arg(format!("UNIX-CONNECT:{}", socket.display()));
            let log = self.dir.log(&format!("ovn-tcp-{name}-{port}"));
            let mut daemon = Daemon::spawn(format!("ovn tcp {name}:{port}"), cmd, &log)?;
            let netns = cluster.control_plane.netns.path();
            let addr: std::net::SocketAddr = format!("{cp_ip}:{port}")
                .parse()
                .map_err(|e| Error::Other(format!("{cp_ip}:{port}: {e}")))?;
            daemon.wait_ready(Duration::from_secs(20), || {
                crate::netns::run_in_path(&netns, move || {
                    std::net::TcpStream::connect_timeout(&addr, Duration::from_secs(1)).is_ok()
                })
                .unwrap_or(false)
            })?;
            listeners.push(daemon);
        }
        for node in &cluster.nodes {
            share_netns_dir(node)?;
        }
        Ok(listeners)
    }

    /// `helm install nauti` on the hub as the seed types it; returns what it printed.
    fn install_hub(&self) -> Result<String> {
        let hub = self.bed.cluster(HUB)?;
        let endpoint = hub.plan.router_wan_ip();
        self.narrator.say("==> Install nauti on the hub");
        // The hub's router forwards the WireGuard port to its node: kube-proxy takes it there
        // for the gateway's Service (externalIPs).
        let out = self.helm_shown(
            hub,
            &[
                "install",
                "nauti",
                &chart("nauti"),
                "--namespace",
                NAMESPACE,
                "--create-namespace",
                "--set",
                &format!("tunnel.endpoint={endpoint}"),
                "--set",
                &format!("tunnel.cidr={GLOBAL_CIDR}"),
                "--set",
                "gateway.service.type=ClusterIP",
                "--set",
                &format!("gateway.service.externalIPs={{{}}}", hub.nodes[0].ip),
            ],
        )?;
        wait_rollout(hub, "deployment/octopus-hub", 240)?;
        self.step("hub installed");
        // What the NOTES ask for: the hub's CA, saved as nauti-hub-ca.crt.
        let ca = hub.kubectl(&[
            "get",
            "configmap",
            "kube-root-ca.crt",
            "--namespace",
            NAMESPACE,
            "-o",
            "jsonpath={.data.ca\\.crt}",
        ])?;
        std::fs::write(&self.hub_ca, ca)
            .map_err(|e| Error::Other(format!("write {}: {e}", self.hub_ca.display())))?;
        Ok(out)
    }

    /// `helm upgrade --reuse-values` on the hub, which prints the next token.
    fn next_token(&self) -> Result<String> {
        let hub = self.bed.cluster(HUB)?;
        self.narrator
            .say("==> A token for the next member (the last one was spent)");
        self.helm_shown(
            hub,
            &[
                "upgrade",
                "nauti",
                &chart("nauti"),
                "--namespace",
                NAMESPACE,
                "--reuse-values",
            ],
        )
    }

    /// `helm install nauti-agent` on `name` with the line the hub's NOTES printed, plus the
    /// bed's node paths.
    fn install_member(&self, name: &str, notes: &str) -> Result<()> {
        let cluster = self.bed.cluster(name)?;
        let printed = agent_install_line(notes).ok_or_else(|| {
            Error::Other(format!("no `helm install nauti-agent` line in:\n{notes}"))
        })?;
        let token = printed_token(notes)
            .ok_or_else(|| Error::Other(format!("no bootstrap token in:\n{notes}")))?;
        let ca = self.hub_ca.display().to_string();
        let mut args: Vec<String> = agent_args(&printed, name, &ca);
        if !args.iter().any(|a| a.contains(&token)) {
            return Err(Error::Other(format!(
                "the printed line does not carry the printed token {token}: {printed}"
            )));
        }
        let node = &cluster.nodes[0];
        let bed_values = [
            format!(
                "ovn.northbound=tcp:{}:{NB_PORT}",
                cluster.plan.control_plane_ip()
            ),
            format!(
                "ovn.southbound=tcp:{}:{SB_PORT}",
                cluster.plan.control_plane_ip()
            ),
            "ovn.chassis.enabled=false".to_owned(),
            "ovn.chassis.datapathType=netdev".to_owned(),
            format!("ovs.runDir={}", node.ovn.run_dir().display()),
            format!(
                "ovs.dbSocket={}",
                node.ovn
                    .db_socket()
                    .file_name()
                    .map(|n| n.to_string_lossy().into_owned())
                    .unwrap_or_default()
            ),
            format!("nri.socketPath={}", node.containerd.nri_socket().display()),
            format!("nri.netnsDir={}", pod_netns_dir(node).display()),
        ];
        self.narrator.say(&format!(
            "==> Install nauti-agent in {name}: the line NOTES printed, with clusterID={name}"
        ));
        self.narrator.say(
            "    (and this bed's node paths and existing OVN: --set ovn.northbound=... ovn.southbound=... \
             ovn.chassis.enabled=false ovs.runDir=... nri.socketPath=... nri.netnsDir=...)",
        );
        for value in &bed_values {
            args.push("--set".to_owned());
            args.push(value.clone());
        }
        let refs: Vec<&str> = args.iter().map(String::as_str).collect();
        self.helm_shown_as(
            cluster,
            &refs,
            &printed.replace(
                "cluster.clusterID=cluster1",
                &format!("cluster.clusterID={name}"),
            ),
        )?;
        for workload in [
            "daemonset/nauti-nri",
            "deployment/nauti-ovnmaster",
            "deployment/crossdns",
        ] {
            wait_rollout(cluster, workload, 240)
                .map_err(|e| Error::Other(format!("{e}\n{}", pods_and_events(cluster))))?;
        }
        self.wait_gateway_leader(cluster)?;
        self.step(&format!("{name} joined"));
        Ok(())
    }

    /// octopus-member has a ready pod: the leader (the standby waits on the Lease).
    fn wait_gateway_leader(&self, cluster: &Cluster) -> Result<()> {
        let name = &cluster.name;
        wait_for(
            &format!("{name}: octopus-member has a ready leader"),
            240,
            || {
                cluster
                    .kubectl(&[
                        "get",
                        "deployment",
                        "octopus-member",
                        "-n",
                        NAMESPACE,
                        "-o",
                        "jsonpath={.status.readyReplicas}",
                    ])
                    .ok()
                    .filter(|r| r.trim().parse::<u32>().unwrap_or(0) >= 1)
            },
        )
        .map_err(|e| Error::Other(format!("{e}\n{}", pods_and_events(cluster))))?;
        Ok(())
    }

    /// Every member's Peer on the hub is Ready (its tunnel to the hub is up).
    fn wait_peers_ready(&self) -> Result<()> {
        let hub = self.bed.cluster(HUB)?;
        for member in MEMBERS {
            wait_for(&format!("Peer {member} Ready on the hub"), 240, || {
                hub.kubectl(&[
                    "get",
                    "peer",
                    member,
                    "-n",
                    NAMESPACE,
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
                ])
                .ok()
                .filter(|s| s.trim() == "True")
            })
            .map_err(|e| Error::Other(format!("{e}\n{}", self.diagnostics())))?;
        }
        self.step("every Peer Ready on the hub");
        Ok(())
    }

    /// What is left in a member after its uninstall.
    fn leftovers_in(&self, name: &str, cluster: &Cluster) -> Result<Vec<String>> {
        let mut left = Vec::new();
        for kind in ["pods", "nodes"] {
            let all = cluster.kubectl(&["get", kind, "-A", "-o", "json"])?;
            let list: serde_json::Value = serde_json::from_str(&all)
                .map_err(|e| Error::Other(format!("{name}: {kind}: {e}")))?;
            for item in list["items"].as_array().into_iter().flatten() {
                let annotated: Vec<&String> = item["metadata"]["annotations"]
                    .as_object()
                    .into_iter()
                    .flat_map(|a| a.keys())
                    .filter(|k| k.starts_with("nauti.io/"))
                    .collect();
                if !annotated.is_empty() {
                    left.push(format!(
                        "{name}: {kind} {}/{}: {annotated:?}",
                        item["metadata"]["namespace"].as_str().unwrap_or(""),
                        item["metadata"]["name"].as_str().unwrap_or("")
                    ));
                }
            }
        }
        for table in ["Logical_Switch", "Logical_Router", "Load_Balancer"] {
            let names = cluster
                .central
                .nbctl(&["--bare", "--columns=name", "list", table])?;
            // The bed's central holds nothing of its own: every row is Nauti's.
            let rows: Vec<&str> = names
                .lines()
                .map(str::trim)
                .filter(|n| !n.is_empty())
                .collect();
            if !rows.is_empty() {
                left.push(format!("{name}: OVN {table}: {rows:?}"));
            }
        }
        let corefile = cluster.kubectl(&[
            "get",
            "configmap",
            "coredns",
            "-n",
            "kube-system",
            "-o",
            "jsonpath={.data.Corefile}",
        ])?;
        if corefile.contains("hyperos.local") || corefile.contains("clusterset.local") {
            left.push(format!(
                "{name}: CoreDNS still forwards the cluster set's zones"
            ));
        }
        left.extend(release_objects(cluster, name)?);
        Ok(left)
    }

    /// Why a member could not leave: its leave Job's log, the hub's grants and octopus-hub's log.
    fn leave_diagnostics(&self, member: &Cluster) -> String {
        let leave = member
            .kubectl(&[
                "logs",
                "-n",
                NAMESPACE,
                "job/octopus-member-leave",
                "--tail=5",
            ])
            .unwrap_or_default();
        let Ok(hub) = self.bed.cluster(HUB) else {
            return leave;
        };
        let grants = hub
            .kubectl(&["get", "roles,rolebindings,peers", "-n", NAMESPACE])
            .unwrap_or_default();
        let log = hub
            .kubectl(&[
                "logs",
                "-n",
                NAMESPACE,
                "deployment/octopus-hub",
                "--tail=60",
            ])
            .unwrap_or_default();
        format!("--- leave\n{leave}\n--- hub grants\n{grants}\n--- octopus-hub\n{log}")
    }

    /// Pods, events and the member daemons' logs, for a failure's report.
    fn diagnostics(&self) -> String {
        let mut text = String::new();
        for cluster in self.bed.clusters() {
            text.push_str(&format!(
                "--- {}\n{}",
                cluster.name,
                pods_and_events(cluster)
            ));
            for deployment in ["octopus-member", "octopus-hub", "crossdns"] {
                if let Ok(log) = cluster.kubectl(&[
                    "logs",
                    "-n",
                    NAMESPACE,
                    &format!("deployment/{deployment}"),
                    "--tail=30",
                ]) {
                    text.push_str(&format!("--- {} {deployment}\n{log}", cluster.name));
                }
            }
        }
        text
    }

    /// Runs helm against `cluster`, printing the command as typed and its output.
    fn helm_shown(&self, cluster: &Cluster, args: &[&str]) -> Result<String> {
        let shown = format!("helm {}", args.join(" "));
        self.helm_shown_as(cluster, args, &shown)
    }

    fn helm_shown_as(&self, cluster: &Cluster, args: &[&str], shown: &str) -> Result<String> {
        self.narrator.say(&format!("$ {shown}"));
        let mut cmd = Command::new(peers::bin("helm")?);
        cmd.current_dir(repo_root())
            .arg("--kubeconfig")
            .arg(cluster.kubeconfig())
            .args(args)
            .env("HELM_CACHE_HOME", self.dir.path().join("helm/cache"))
            .env("HELM_CONFIG_HOME", self.dir.path().join("helm/config"))
            .env("HELM_DATA_HOME", self.dir.path().join("helm/data"));
        let out = run(&mut cmd)?;
        for line in out.lines() {
            self.narrator.say(line);
        }
        Ok(out)
    }

    fn kubectl_shown(&self, cluster: &Cluster, args: &[&str]) -> Result<String> {
        let shown: Vec<String> = args.iter().map(|a| relative_to_repo(a)).collect();
        self.narrator.say(&format!("$ kubectl {}", shown.join(" ")));
        let out = cluster.kubectl(args)?;
        for line in out.lines() {
            self.narrator.say(line);
        }
        Ok(out)
    }
}

impl Drop for SeedDemo<'_> {
    fn drop(&mut self) {
        // The listeners live in the control planes' namespaces: stop them before the bed goes.
        self.ovn_tcp.clear();
    }
}

/// What `helm uninstall` left behind.
#[derive(Debug, Default)]
pub struct Leftovers {
    /// Nauti's marks in the clusters (annotations, OVN rows, the CoreDNS block, Peers, tokens)
    /// and any object left in the release's namespace: must be empty.
    pub nauti: Vec<String>,
}

/// How long the garbage collector may take to remove what the daemons' Deployments owned.
const GARBAGE_COLLECTION: Duration = Duration::from_secs(60);

/// The name of the nginx example's first pod in `cluster` (where curl runs).
fn example_pod(cluster: &Cluster) -> Result<String> {
    cluster
        .pod_names("default", "app=nginx-app")?
        .into_iter()
        .next()
        .ok_or_else(|| Error::Other(format!("{}: no pod app=nginx-app", cluster.name)))
}

/// The path of a chart in this checkout, relative to the repository (helm runs there).
fn chart(name: &str) -> String {
    format!("deploy/charts/{name}")
}

fn relative_to_repo(arg: &str) -> String {
    let root = repo_root().display().to_string();
    arg.strip_prefix(&format!("{root}/"))
        .map_or_else(|| arg.to_owned(), str::to_owned)
}

/// The token after "with bootstrap token: " in the hub's NOTES.
pub fn printed_token(notes: &str) -> Option<String> {
    notes
        .lines()
        .find_map(|l| l.split_once("with bootstrap token: "))
        .and_then(|(_, rest)| rest.split_whitespace().next())
        .map(str::to_owned)
}

/// The `helm install nauti-agent ...` command the hub's NOTES print, its continuation lines
/// (ending in `\`) joined.
pub fn agent_install_line(notes: &str) -> Option<String> {
    let mut lines = notes
        .lines()
        .skip_while(|l| !l.trim_start().starts_with("helm install nauti-agent"));
    let mut command = String::new();
    for line in lines.by_ref() {
        let line = line.trim();
        match line.strip_suffix('\\') {
            Some(head) => {
                command.push_str(head.trim_end());
                command.push(' ');
            }
            None => {
                command.push_str(line);
                return Some(command);
            }
        }
    }
    None
}

/// The printed command's arguments after `helm`, for the member `cluster_id`, with the CA file
/// the NOTES name (`nauti-hub-ca.crt`, in the current folder) at `ca_file`.
pub fn agent_args(printed: &str, cluster_id: &str, ca_file: &str) -> Vec<String> {
    printed
        .split_whitespace()
        .skip(1)
        .map(|arg| {
            if arg.starts_with("cluster.clusterID=") {
                format!("cluster.clusterID={cluster_id}")
            } else if arg == "hub.caCert=nauti-hub-ca.crt" {
                format!("hub.caCert={ca_file}")
            } else {
                arg.to_owned()
            }
        })
        .collect()
}

/// Where the node's containerd (CRI) keeps pods' network namespaces.
fn pod_netns_dir(node: &KubeNode) -> PathBuf {
    node.containerd
        .state_dir()
        .join("io.containerd.grpc.v1.cri/netns")
}

/// Makes the node's pod network namespace folder a shared mount (bound on itself), so that
/// `mountPropagation: HostToContainer` (nauti-nri's mount of it) is allowed and sees new pods.
fn share_netns_dir(node: &KubeNode) -> Result<()> {
    let dir = pod_netns_dir(node);
    std::fs::create_dir_all(&dir)
        .map_err(|e| Error::Other(format!("create {}: {e}", dir.display())))?;
    let path = dir.display().to_string();
    run(Command::new("mount").args(["--rbind", &path, &path]))?;
    run(Command::new("mount").args(["--make-rshared", &path]))?;
    Ok(())
}

/// Polls `check` every 2 s for at most `seconds`.
fn wait_for<T>(what: &str, seconds: u64, mut check: impl FnMut() -> Option<T>) -> Result<T> {
    let deadline = Instant::now() + Duration::from_secs(seconds);
    loop {
        if let Some(value) = check() {
            return Ok(value);
        }
        if Instant::now() > deadline {
            return Err(Error::Other(format!("timed out after {seconds} s: {what}")));
        }
        std::thread::sleep(Duration::from_secs(2));
    }
}

fn wait_rollout(cluster: &Cluster, workload: &str, seconds: u64) -> Result<()> {
    cluster
        .kubectl(&[
            "rollout",
            "status",
            "-n",
            NAMESPACE,
            workload,
            &format!("--timeout={seconds}s"),
        ])
        .map(|_| ())
        .map_err(|e| Error::Other(format!("{}: {workload}: {e}", cluster.name)))
}

fn pods_and_events(cluster: &Cluster) -> String {
    let pods = cluster
        .kubectl(&["get", "pods", "-A", "-o", "wide"])
        .unwrap_or_default();
    let events = cluster
        .kubectl(&["get", "events", "-n", NAMESPACE, "--sort-by=.lastTimestamp"])
        .unwrap_or_default();
    let tail: Vec<&str> = events.lines().rev().take(25).collect();
    let tail: Vec<&str> = tail.into_iter().rev().collect();
    format!("{pods}{}\n", tail.join("\n"))
}

/// Objects of the release still in its namespace (the namespace itself may stay, as after the
/// seed's `helm uninstall`).
fn release_objects(cluster: &Cluster, name: &str) -> Result<Vec<String>> {
    let out = cluster.kubectl(&[
        "get",
        "all,configmaps,secrets,serviceaccounts,roles,rolebindings,leases,jobs",
        "-n",
        NAMESPACE,
        "-o",
        "name",
    ])?;
    Ok(out
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        // Every namespace gets these from Kubernetes itself.
        .filter(|l| *l != "configmap/kube-root-ca.crt" && *l != "serviceaccount/default")
        .map(|l| format!("{name}: {l} in {NAMESPACE}"))
        .collect())
}

/// A binary of this checkout as build-nauti-images.sh built it (static, release).
fn release_binary(name: &str) -> Result<PathBuf> {
    let host = run(Command::new("rustc").arg("-vV"))?;
    let triple = host
        .lines()
        .find_map(|l| l.strip_prefix("host: "))
        .ok_or_else(|| Error::Other("rustc -vV names no host".into()))?
        .trim()
        .to_owned();
    let target = std::env::var_os("CARGO_TARGET_DIR")
        .map(PathBuf::from)
        .unwrap_or_else(|| repo_root().join("target"));
    let path = target.join(triple).join("release").join(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(Error::Other(format!(
            "{} is missing (tests/peers/build-nauti-images.sh builds it)",
            path.display()
        )))
    }
}

/// Builds the images of Nauti's daemons the charts run (cached: one `cargo build` when nothing
/// changed), so that every bed node imports them.
/// `NAUTI_DEMO_PREBUILT=1` uses the archives as they are, when every one exists.
pub fn build_images(narrator: &dyn Narrator) -> Result<()> {
    if std::env::var_os("NAUTI_DEMO_PREBUILT").is_some() && images_present() {
        narrator
            .say("==> Images of Nauti's daemons: the archives already built (NAUTI_DEMO_PREBUILT)");
        return Ok(());
    }
    narrator.say("==> Images of Nauti's daemons (tests/peers/build-nauti-images.sh)");
    let script = repo_root().join("tests/peers/build-nauti-images.sh");
    let out_dir = crate::cluster_bed::images::nauti_archives_dir();
    let mut cmd = Command::new("bash");
    cmd.arg(&script)
        .arg(&out_dir)
        .args(NAUTI_BINARIES)
        .current_dir(repo_root());
    let out = run(&mut cmd)?;
    for line in out.lines() {
        narrator.say(&format!("    {line}"));
    }
    Ok(())
}

/// The archive folder exists with every binary's image.
pub fn images_present() -> bool {
    let dir = crate::cluster_bed::images::nauti_archives_dir();
    NAUTI_BINARIES
        .iter()
        .all(|b| Path::new(&dir).join(format!("{b}.oci.tar")).is_file())
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOTES: &str = "Thank you for installing nauti.
Your release is named nauti.
Continue to install nauti-agent on clusters, with bootstrap token: re51os.131tn13kek2iaqoz (valid until 2026-12-06T00:00:00Z)
Save the hub's CA, which members trust the hub API with (run this against the hub):
kubectl get configmap kube-root-ca.crt --namespace nauti-system -o jsonpath='{.data.ca\\.crt}' > nauti-hub-ca.crt
And install nauti-agent in cluster by:
helm install nauti-agent deploy/charts/nauti-agent --namespace nauti-system --create-namespace \\
--set hub.hubURL=https://198.18.0.10:6443 --set cluster.clusterID=cluster1 \\
--set hub.bootstrapToken=re51os.131tn13kek2iaqoz --set-file hub.caCert=nauti-hub-ca.crt
The token is good for one member.";

    #[test]
    fn reads_the_token_and_the_install_line_from_notes() {
        assert_eq!(
            printed_token(NOTES).as_deref(),
            Some("re51os.131tn13kek2iaqoz")
        );
        let line = agent_install_line(NOTES).unwrap();
        assert_eq!(
            line,
            "helm install nauti-agent deploy/charts/nauti-agent --namespace nauti-system \
             --create-namespace --set hub.hubURL=https://198.18.0.10:6443 --set \
             cluster.clusterID=cluster1 --set hub.bootstrapToken=re51os.131tn13kek2iaqoz \
             --set-file hub.caCert=nauti-hub-ca.crt"
        );
        let args = agent_args(&line, "cluster2", "/tmp/ca.crt");
        assert_eq!(args[0], "install");
        assert!(args.contains(&"cluster.clusterID=cluster2".to_owned()));
        assert!(args.contains(&"hub.caCert=/tmp/ca.crt".to_owned()));
        assert!(!args.iter().any(|a| a.contains("cluster1")));
    }

    #[test]
    fn notes_without_a_line_give_none() {
        assert_eq!(
            agent_install_line("helm install nauti-agent x \\\n--set a=b \\"),
            None
        );
        assert_eq!(printed_token("no token here"), None);
    }
}
