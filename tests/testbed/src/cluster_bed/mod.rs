//! `ClusterBed`: several real Kubernetes clusters on one machine, each in network namespaces of
//! its own, meeting on a "WAN" namespace; the hub is public, members sit behind NAT.
//!
//! Every cluster has its own etcd, kube-apiserver, kube-controller-manager, kube-scheduler and
//! CoreDNS (a Deployment behind `kube-dns`), an OVN central, and nodes like kind's: a namespace
//! with an OVN chassis, containerd with NRI, kubelet and kube-proxy. Addresses follow [`plan`].
//!
//! A bed records itself under [`sweep::beds_dir`] and tags what it starts, so that a bed whose
//! test was killed is swept by the next bed that starts; dropping a bed sweeps it too.

pub mod cluster;
pub mod control_plane;
pub mod coredns;
pub mod credentials;
pub mod images;
pub mod node;
pub mod plan;
pub mod relay;
pub mod sweep;
pub mod underlay;
pub mod usage;

use std::path::{Path, PathBuf};
use std::time::Duration;

use crate::error::{Error, IoContext, Result};
use crate::names;
use crate::testdir::TestDir;

pub use cluster::Cluster;
pub use node::KubeNode;
pub use plan::ClusterPlan;

use sweep::Ownership;
use underlay::Wan;

/// How long a cluster may take to have every node Ready and DNS available.
pub const READY_TIMEOUT: Duration = Duration::from_secs(180);

/// One cluster to start.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterSpec {
    pub name: String,
    pub nodes: u8,
    /// Public: its LAN and API port take connections from the WAN. Otherwise behind NAT.
    pub public: bool,
    /// The cluster whose pod and service ranges this one takes too (by name, started before
    /// it); `None`: ranges of its own.
    pub ranges_of: Option<String>,
}

impl ClusterSpec {
    /// A public cluster (the hub).
    pub fn hub(name: &str, nodes: u8) -> Self {
        Self {
            name: name.to_owned(),
            nodes,
            public: true,
            ranges_of: None,
        }
    }

    /// A cluster behind NAT.
    pub fn member(name: &str, nodes: u8) -> Self {
        Self {
            name: name.to_owned(),
            nodes,
            public: false,
            ranges_of: None,
        }
    }

    /// The same cluster with the pod and service ranges of `cluster` (overlapping on purpose).
    pub fn with_ranges_of(mut self, cluster: &str) -> Self {
        self.ranges_of = Some(cluster.to_owned());
        self
    }
}

/// The bed; dropping it stops every cluster and sweeps what is left.
#[derive(Debug)]
pub struct ClusterBed {
    clusters: Vec<Cluster>,
    wan: Option<Wan>,
    ownership: Ownership,
    test: Option<TestDir>,
}

/// Every kubelet and containerd holds several inotify instances; the kernel's default of 128 per
/// user runs out with a few beds on one machine ("inotify_init: too many open files"), as kind
/// documents for several clusters on one host. Raised, never lowered.
const INOTIFY_INSTANCES: u64 = 1024;
const INOTIFY_INSTANCES_SYSCTL: &str = "/proc/sys/fs/inotify/max_user_instances";

fn raise_inotify_instances() -> Result<()> {
    let current: u64 = std::fs::read_to_string(INOTIFY_INSTANCES_SYSCTL)
        .io_context(|| format!("read {INOTIFY_INSTANCES_SYSCTL}"))?
        .trim()
        .parse()
        .unwrap_or(0);
    if current < INOTIFY_INSTANCES {
        std::fs::write(INOTIFY_INSTANCES_SYSCTL, INOTIFY_INSTANCES.to_string())
            .io_context(|| format!("raise {INOTIFY_INSTANCES_SYSCTL} to {INOTIFY_INSTANCES}"))?;
    }
    Ok(())
}

impl ClusterBed {
    /// Sweeps the leftovers of dead beds, then starts `specs` and waits until each is ready.
    pub fn start(name: &str, specs: &[ClusterSpec]) -> Result<Self> {
        let swept = sweep::sweep_dead_beds();
        if !swept.is_empty() {
            eprintln!("swept the leftovers of beds {}", swept.join(", "));
        }
        raise_inotify_instances()?;
        let id = names::unique("b");
        let ownership = Ownership::claim(&id)?;
        let test = TestDir::new(name)?;
        ownership.add_path(test.path())?;
        let wan = Wan::start(&id)?;
        let mut bed = Self {
            clusters: Vec::new(),
            wan: Some(wan),
            ownership,
            test: Some(test),
        };
        for spec in specs {
            bed.start_cluster(spec)?;
        }
        for cluster in &bed.clusters {
            cluster.wait_ready(READY_TIMEOUT)?;
        }
        Ok(bed)
    }

    /// Adds a cluster to the running bed and waits until it is ready.
    pub fn add_cluster(&mut self, spec: &ClusterSpec) -> Result<&Cluster> {
        self.start_cluster(spec)?;
        let cluster = self
            .clusters
            .last()
            .ok_or_else(|| Error::Other("no cluster after adding one".into()))?;
        cluster.wait_ready(READY_TIMEOUT)?;
        Ok(cluster)
    }

    fn start_cluster(&mut self, spec: &ClusterSpec) -> Result<()> {
        if self.clusters.iter().any(|c| c.name == spec.name) {
            return Err(Error::Other(format!("cluster {} exists", spec.name)));
        }
        let index = u8::try_from(self.clusters.len()).unwrap_or(u8::MAX);
        let plan = ClusterPlan::new(index).ok_or_else(|| {
            Error::Other(format!(
                "a bed holds at most {} clusters",
                plan::MAX_CLUSTERS
            ))
        })?;
        let plan = match &spec.ranges_of {
            None => plan,
            Some(other) => {
                let ranges = self
                    .clusters
                    .iter()
                    .find(|c| &c.name == other)
                    .map(|c| c.plan.index)
                    .ok_or_else(|| {
                        Error::Other(format!(
                            "cluster {}: no cluster {other} started before it to share ranges with",
                            spec.name
                        ))
                    })?;
                plan.with_ranges_of(ranges).ok_or_else(|| {
                    Error::Other(format!("cluster {}: no ranges of {other}", spec.name))
                })?
            }
        };
        let (Some(wan), Some(test)) = (self.wan.as_ref(), self.test.as_ref()) else {
            return Err(Error::Other("the bed is stopping".into()));
        };
        let cluster = Cluster::start(
            &self.ownership,
            test,
            wan,
            &spec.name,
            plan,
            spec.nodes,
            spec.public,
        )?;
        self.clusters.push(cluster);
        self.route_public_lans()
    }

    /// Opens a member to the WAN, as if it had public addresses: its LAN and API port take new
    /// connections, and every router routes its LAN.
    pub fn mark_public(&mut self, name: &str) -> Result<()> {
        let cluster = self
            .clusters
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::Other(format!("no cluster {name}")))?;
        cluster.router.set_public(true)?;
        self.route_public_lans()
    }

    /// Every router routes the LAN of every public cluster via that cluster's router.
    fn route_public_lans(&self) -> Result<()> {
        for router in self.clusters.iter().map(|c| &c.router) {
            for other in &self.clusters {
                if std::ptr::eq(&other.router, router) {
                    continue;
                }
                if other.router.is_public() {
                    router.route(&other.plan.lan_cidr(), &other.plan.router_wan_ip())?;
                } else {
                    router.unroute(&other.plan.lan_cidr());
                }
            }
        }
        Ok(())
    }

    pub fn clusters(&self) -> &[Cluster] {
        &self.clusters
    }

    /// The cluster called `name`.
    pub fn cluster(&self, name: &str) -> Result<&Cluster> {
        self.clusters
            .iter()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::Other(format!("no cluster {name}")))
    }

    /// Mutable access to the cluster called `name` (to add nodes).
    pub fn cluster_mut(&mut self, name: &str) -> Result<&mut Cluster> {
        self.clusters
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::Other(format!("no cluster {name}")))
    }

    /// Adds a node to cluster `name` and waits until the cluster is ready.
    pub fn add_node(&mut self, name: &str) -> Result<()> {
        let (Some(test), ownership) = (self.test.as_ref(), &self.ownership) else {
            return Err(Error::Other("the bed is stopping".into()));
        };
        let cluster = self
            .clusters
            .iter_mut()
            .find(|c| c.name == name)
            .ok_or_else(|| Error::Other(format!("no cluster {name}")))?;
        cluster.add_node(ownership, test)?;
        cluster.wait_ready(READY_TIMEOUT)
    }

    /// The bed's id (prefix of its namespaces, value of `NAUTI_BED` in its processes).
    pub fn id(&self) -> &str {
        self.ownership.id()
    }

    /// The bed's folder (configs, PKI, logs).
    pub fn dir(&self) -> Option<&Path> {
        self.test.as_ref().map(TestDir::path)
    }

    /// (cluster, administrator kubeconfig) for every cluster.
    pub fn kubeconfigs(&self) -> Vec<(String, PathBuf)> {
        self.clusters
            .iter()
            .map(|c| (c.name.clone(), c.kubeconfig().to_owned()))
            .collect()
    }

    /// What is left of bed `id` on this machine (empty once it is gone).
    pub fn leftovers_of(id: &str, record: &sweep::Record) -> Vec<String> {
        sweep::leftovers(id, record)
    }

    /// Memory and CPU time of every process of the bed now.
    pub fn usage(&self) -> usage::Usage {
        usage::usage(self.id(), &self.ownership.record())
    }

    /// The bed's ownership record as written so far.
    pub fn record(&self) -> sweep::Record {
        self.ownership.record()
    }
}

impl Drop for ClusterBed {
    fn drop(&mut self) {
        // Killed first, all at once: the guards below then find their processes gone and only
        // remove what is left, in seconds rather than a graceful stop per daemon.
        sweep::kill_all(self.ownership.id(), &self.ownership.record());
        self.clusters.clear();
        self.wan = None;
        let keep = std::thread::panicking() || std::env::var_os("NAUTI_KEEP_TEST_DIR").is_some();
        if keep {
            // The folder holds every peer's log: the TestDir keeps it and says where.
            self.ownership
                .release_keeping(self.test.as_ref().map(TestDir::path));
        } else {
            self.ownership.release_keeping(None);
        }
        self.test = None;
    }
}
