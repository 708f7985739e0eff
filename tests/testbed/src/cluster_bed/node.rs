//! A cluster node, like a kind node: a namespace on the cluster's LAN with an OVN chassis on the
//! userspace datapath (owning the LAN link), containerd with NRI, kubelet with its own root dir,
//! cgroup root and node identity, kube-proxy in iptables mode, and the primary CNI network
//! (`bridge` + `host-local` over the node's pod range).

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::containerd::Containerd;
use crate::error::{Error, IoContext, Result};
use crate::netns::Netns;
use crate::ovn::{OvnCentral, OvnNode};
use crate::peers;
use crate::process::Daemon;
use crate::testdir::TestDir;

use super::credentials::{Credentials, write};
use super::images;
use super::plan::{self, CLUSTER_DOMAIN, ClusterPlan};
use super::sweep::Ownership;
use super::underlay::{Router, nsenter};

/// The v1 hierarchies kubelet and runc use on this machine (cgroup v1 with a unified mount beside).
const CGROUP_V1: &[&str] = &[
    "cpu", "cpuacct", "cpuset", "memory", "devices", "freezer", "blkio", "pids", "systemd",
];

/// One node of a cluster; everything stops on drop (fields drop in order).
#[derive(Debug)]
pub struct KubeNode {
    _proxy: Daemon,
    kubelet: Daemon,
    pub containerd: Containerd,
    pub ovn: OvnNode,
    pub netns: Netns,
    pub name: String,
    pub index: u8,
    pub ip: String,
    pub dir: PathBuf,
}

/// What a node needs to know of its cluster.
pub struct NodeContext<'a> {
    pub bed: &'a Ownership,
    pub cluster: &'a str,
    pub plan: ClusterPlan,
    pub router: &'a Router,
    pub creds: &'a Credentials,
    pub central: &'a OvnCentral,
    pub test: &'a TestDir,
}

impl KubeNode {
    /// Starts node `index` of the cluster, named `<cluster>-n<index>`; returns once kubelet and
    /// kube-proxy run (the Node becomes Ready a few seconds later).
    pub fn start(ctx: &NodeContext<'_>, index: u8) -> Result<Self> {
        let bed = ctx.bed.id();
        let name = format!("{}-n{index}", ctx.cluster);
        let ip = ctx.plan.node_ip(index);
        let dir = ctx.test.sub(&name)?;
        let netns = Netns::new(&format!("{}{name}-", plan::netns_prefix(bed)))?;
        ctx.router.attach(&netns, &format!("p-n{index}"), "eth0")?;
        let cidr = format!("{ip}/24");
        let run_parent = ctx.bed.run_dir()?;
        let ovn = OvnNode::start_in(
            ctx.test,
            &netns,
            &name,
            ("eth0", &cidr),
            ctx.central,
            &run_parent,
        )?;
        netns.exec("ethtool", &["-K", "br-phy", "tx", "off"])?;
        netns.ip(&["route", "add", "default", "via", &ctx.plan.router_lan_ip()])?;

        let containerd = Containerd::start(&netns, ctx.test)?;
        let conflist = containerd.cni_conf_dir().join("10-primary.conflist");
        write(
            &conflist,
            &primary_network(&ctx.plan, index, &dir).to_string(),
        )?;
        images::import_cluster_images(&containerd)?;
        images::import_nauti_images(&containerd)?;

        let cgroup = plan::cgroup_name(bed, ctx.cluster, &format!("n{index}"));
        create_cgroup_root(&cgroup)?;

        let kubelet_kubeconfig = ctx.creds.kubeconfig(
            &format!("kubelet-{name}"),
            &ctx.plan.apiserver_url(),
            &format!("system:node:{name}"),
            &["system:nodes"],
        )?;
        let resolv = dir.join("resolv.conf");
        // No upstream resolver: nothing a pod asks may leave the machine.
        write(&resolv, "# the bed has no upstream DNS\n")?;
        let config = dir.join("kubelet.json");
        let kubelet_root = dir.join("kubelet");
        let settings = KubeletSettings {
            node_ip: &ip,
            cgroup_root: &format!("/{cgroup}"),
            ca_file: &ctx.creds.path("ca.crt"),
            dns_ip: &ctx.plan.dns_ip(),
            resolv_conf: &resolv,
            runtime_socket: &containerd.socket(),
            pod_logs: &dir.join("pod-logs"),
            volume_plugins: &dir.join("volume-plugins"),
        };
        write(&config, &kubelet_config(&settings).to_string())?;
        let mut cmd = nsenter(&netns, &peers::bin("kubelet")?, bed);
        cmd.arg(format!("--config={}", config.display()))
            .arg(format!("--kubeconfig={}", kubelet_kubeconfig.display()))
            .arg(format!("--root-dir={}", kubelet_root.display()))
            .arg(format!("--hostname-override={name}"))
            .arg(format!("--node-ip={ip}"))
            .arg("--v=0")
            .env("PATH", path_with_peers());
        let mut kubelet = Daemon::spawn("kubelet", cmd, &dir.join("kubelet.log"))?;
        let healthz = "http://127.0.0.1:10248/healthz";
        kubelet.wait_ready(Duration::from_secs(60), || {
            super::control_plane::curl_in(&netns, &[healthz]).is_ok_and(|b| b.trim() == "ok")
        })?;

        let proxy_kubeconfig = ctx.creds.kubeconfig(
            &format!("kube-proxy-{name}"),
            &ctx.plan.apiserver_url(),
            "system:kube-proxy",
            &[],
        )?;
        let proxy_config = dir.join("kube-proxy.json");
        write(
            &proxy_config,
            &kube_proxy_config(&name, &ctx.plan, &proxy_kubeconfig).to_string(),
        )?;
        let mut cmd = nsenter(&netns, &peers::bin("kube-proxy")?, bed);
        cmd.arg(format!("--config={}", proxy_config.display()))
            .arg("--v=0")
            .env("PATH", path_with_peers());
        let proxy = Daemon::spawn("kube-proxy", cmd, &dir.join("kube-proxy.log"))?;
        Ok(Self {
            _proxy: proxy,
            kubelet,
            containerd,
            ovn,
            netns,
            name,
            index,
            ip,
            dir,
        })
    }

    /// True while kubelet runs.
    pub fn kubelet_running(&mut self) -> bool {
        self.kubelet.is_running()
    }
}

impl Drop for KubeNode {
    fn drop(&mut self) {
        // kubelet first, so that it does not start again what containerd's guard removes.
        self.kubelet.stop(Duration::from_secs(5));
    }
}

/// The node's primary network: a `bridge` over its own pod range, host-local addresses.
pub fn primary_network(plan: &ClusterPlan, node: u8, dir: &Path) -> serde_json::Value {
    serde_json::json!({
        "cniVersion": "1.0.0",
        "name": "primary",
        "plugins": [
            {
                "type": "bridge", "bridge": "cni0", "isGateway": true, "ipMasq": false,
                "hairpinMode": true,
                "ipam": {"type": "host-local", "ranges": [[{"subnet": plan.node_pod_cidr(node)}]],
                         "routes": [{"dst": "0.0.0.0/0"}], "dataDir": dir.join("cni-ipam")},
            },
            {"type": "portmap", "capabilities": {"portMappings": true}},
        ],
    })
}

/// What differs between kubelets on one machine.
pub struct KubeletSettings<'a> {
    pub node_ip: &'a str,
    pub cgroup_root: &'a str,
    pub ca_file: &'a Path,
    pub dns_ip: &'a str,
    pub resolv_conf: &'a Path,
    pub runtime_socket: &'a Path,
    pub pod_logs: &'a Path,
    pub volume_plugins: &'a Path,
}

/// The kubelet configuration (TESTBED.md, "kubelet on this machine"): cgroup v1 allowed, cgroupfs,
/// a cgroup root of its own, low eviction thresholds and no image GC (a full test disk must not
/// evict pods), no OOM score changes (root here lacks CAP_SYS_RESOURCE), webhook authorization.
pub fn kubelet_config(s: &KubeletSettings<'_>) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kubelet.config.k8s.io/v1beta1",
        "kind": "KubeletConfiguration",
        "failCgroupV1": false,
        "cgroupDriver": "cgroupfs",
        "cgroupRoot": s.cgroup_root,
        "cgroupsPerQOS": true,
        "enforceNodeAllocatable": ["pods"],
        "failSwapOn": false,
        "address": s.node_ip,
        "port": 10250,
        "readOnlyPort": 0,
        "healthzBindAddress": "127.0.0.1",
        "healthzPort": 10248,
        "authentication": {
            "anonymous": {"enabled": false},
            "webhook": {"enabled": true},
            "x509": {"clientCAFile": s.ca_file},
        },
        "authorization": {"mode": "Webhook"},
        "clusterDomain": CLUSTER_DOMAIN,
        "clusterDNS": [s.dns_ip],
        "resolvConf": s.resolv_conf,
        "containerRuntimeEndpoint": format!("unix://{}", s.runtime_socket.display()),
        "podLogsDir": s.pod_logs,
        "volumePluginDir": s.volume_plugins,
        "evictionHard": {
            "memory.available": "1Mi", "nodefs.available": "1%",
            "nodefs.inodesFree": "1%", "imagefs.available": "1%",
        },
        "imageGCHighThresholdPercent": 100,
        "imageGCLowThresholdPercent": 99,
        "oomScoreAdj": 0,
        "serializeImagePulls": false,
        "maxPods": 60,
        "rotateCertificates": false,
        "serverTLSBootstrap": false,
        "syncFrequency": "10s",
    })
}

/// kube-proxy in iptables mode. `masqueradeAll` makes a Service reached from a pod on the same
/// bridge as its backend answer through the node (no `br_netfilter` needed), and the conntrack
/// settings are left alone (they are the machine's, not the namespace's).
pub fn kube_proxy_config(node: &str, plan: &ClusterPlan, kubeconfig: &Path) -> serde_json::Value {
    serde_json::json!({
        "apiVersion": "kubeproxy.config.k8s.io/v1alpha1",
        "kind": "KubeProxyConfiguration",
        "mode": "iptables",
        "clientConnection": {"kubeconfig": kubeconfig},
        "hostnameOverride": node,
        "clusterCIDR": plan.pod_cidr(),
        "iptables": {"masqueradeAll": true, "syncPeriod": "30s", "minSyncPeriod": "1s"},
        "conntrack": {"maxPerCore": 0, "min": 0, "tcpEstablishedTimeout": "0s", "tcpCloseWaitTimeout": "0s"},
        "metricsBindAddress": "127.0.0.1:10249",
        "healthzBindAddress": "127.0.0.1:10256",
        "oomScoreAdj": 0,
    })
}

/// Creates `/<name>` in every v1 hierarchy (kubelet checks they exist), with the cpuset's CPUs
/// and memory nodes copied from the root (a new cpuset starts empty).
fn create_cgroup_root(name: &str) -> Result<()> {
    for hierarchy in CGROUP_V1 {
        let base = Path::new("/sys/fs/cgroup").join(hierarchy);
        if !base.is_dir() {
            continue;
        }
        let dir = base.join(name);
        std::fs::create_dir_all(&dir).io_context(|| format!("create {}", dir.display()))?;
        if *hierarchy == "cpuset" {
            for file in ["cpuset.cpus", "cpuset.mems"] {
                let value = std::fs::read_to_string(base.join(file))
                    .io_context(|| format!("read {}", base.join(file).display()))?;
                std::fs::write(dir.join(file), value.trim())
                    .io_context(|| format!("write {}", dir.join(file).display()))?;
            }
        }
    }
    if !Path::new("/sys/fs/cgroup/cpuset").join(name).is_dir() {
        return Err(Error::Other(format!("no cpuset cgroup {name}")));
    }
    Ok(())
}

fn path_with_peers() -> String {
    let current = std::env::var("PATH").unwrap_or_default();
    format!(
        "{}:/usr/lib/cni:/usr/sbin:/sbin:{current}",
        peers::dir().join("bin").display()
    )
}
