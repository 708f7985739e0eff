//! The [`SandboxHandler`] that plumbs pods: allocator, OVN northbound, the node's OVS, netlink
//! and the Kubernetes API, driven by the plans of [`super::plan`].

use std::net::IpAddr;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use async_trait::async_trait;
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use kube::api::Api;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use nauti_api::{NetworkConfig, PodNetwork};
use nauti_ipam::{Pool, RangeSpec};
use nauti_ovn::{Client, ClientConfig, Endpoint, Northbound, OpenVswitch};
use tokio::sync::{Mutex, RwLock};
use tracing::{info, warn};

use super::annotator::Annotator;
use super::plan::{
    NodeNetwork, OptOut, Skip, allocations_from_ports, external_ids, node_ports, owner, pod_plan,
    skip_reason, sync_plan,
};
use super::settings::{FailurePolicy, PlumbingSettings};
use crate::core::{Container, PodSandbox};
use crate::handler::{HandlerError, SandboxHandler};
use crate::metrics::Metrics;
use crate::nic::{self, host_ifname};

/// Why a pod could not be plumbed, or the plugin could not start.
#[derive(Debug, thiserror::Error)]
pub enum PlumbError {
    #[error("node {node} has no `nauti.io/node-cidr` annotation yet (is nauti-ovnmaster running?)")]
    NoNodeBlock { node: String },
    #[error("node {node}: {reason}")]
    BadNode { node: String, reason: String },
    #[error("logical switch {0} not found in OVN (is nauti-ovnmaster running?)")]
    NoLogicalSwitch(String),
    #[error("logical switch {switch}: other_config:subnet `{value}` is not a CIDR")]
    BadSwitchSubnet { switch: String, value: String },
    #[error("node block {block} does not lie in the cluster subnet {subnet}")]
    BlockOutsideSubnet {
        block: ipnet::IpNet,
        subnet: ipnet::IpNet,
    },
    #[error("bad endpoint `{0}`: expected unix:<path> or tcp:<host>:<port>")]
    Endpoint(String),
    #[error("OVSDB {what}: {source}")]
    Ovsdb {
        what: String,
        #[source]
        source: Box<nauti_ovn::Error>,
    },
    #[error("Kubernetes API, {what}: {source}")]
    Kube {
        what: String,
        #[source]
        source: Box<kube::Error>,
    },
    #[error("node block: {0}")]
    Range(#[from] nauti_ipam::RangeError),
    #[error("no free address in node block {block}: {source}")]
    Exhausted {
        block: ipnet::IpNet,
        #[source]
        source: nauti_ipam::AllocError,
    },
    #[error("pod NIC: {0}")]
    Nic(#[from] nic::NicError),
    #[error("pod has no network namespace path")]
    NoNetns,
}

impl PlumbError {
    fn ovsdb(what: impl Into<String>) -> impl FnOnce(nauti_ovn::Error) -> Self {
        let what = what.into();
        move |source| Self::Ovsdb {
            what,
            source: Box::new(source),
        }
    }

    fn kube(what: impl Into<String>) -> impl FnOnce(kube::Error) -> Self {
        let what = what.into();
        move |source| Self::Kube {
            what,
            source: Box::new(source),
        }
    }

    /// The NRI status the runtime sees: OVN or the API being away is `Unavailable`.
    fn into_handler_error(self, pod: &PodSandbox) -> HandlerError {
        let context = format!("pod {}: second NIC not plumbed", pod.key());
        match self {
            Self::Ovsdb { .. } | Self::Kube { .. } => HandlerError::Unavailable {
                what: context,
                source: Box::new(self),
            },
            other => HandlerError::Failed {
                context,
                source: Box::new(other),
            },
        }
    }
}

/// Plumbs each pod's second NIC on sandbox events.
#[derive(Clone)]
pub struct NautiHandler {
    inner: Arc<Inner>,
}

struct Inner {
    node: NodeNetwork,
    opt_out: OptOut,
    policy: FailurePolicy,
    range: RangeSpec,
    /// Sandbox events hold it shared and run concurrently (each pod has its own port, veth and
    /// OVS port); `Synchronize` holds it exclusively, so the allocator it rebuilds from OVN never
    /// misses an allocation whose port is still being written.
    gate: RwLock<()>,
    /// Held only for allocator operations, never across I/O.
    pool: Mutex<Pool>,
    nb: Northbound,
    ovs: OpenVswitch,
    annotator: Arc<Annotator>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
}

impl std::fmt::Debug for NautiHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NautiHandler")
            .field("node", &self.inner.node)
            .finish_non_exhaustive()
    }
}

fn endpoint(remote: &str) -> Result<Endpoint, PlumbError> {
    Endpoint::parse(remote).ok_or_else(|| PlumbError::Endpoint(remote.to_owned()))
}

impl NautiHandler {
    /// Connects to the API server, OVN and OVS, learns the node's block and the cluster subnet,
    /// and rebuilds the node's allocator from the pod ports OVN holds for this node.
    pub async fn connect(
        settings: PlumbingSettings,
        kube: kube::Client,
        metrics: Arc<Metrics>,
    ) -> Result<Self, PlumbError> {
        let node_obj = Api::<Node>::all(kube.clone())
            .get(&settings.node_name)
            .await
            .map_err(PlumbError::kube(format!("get node {}", settings.node_name)))?;
        let annotations = node_obj.metadata.annotations.unwrap_or_default();
        let node_block = nauti_api::core::annotations::node_cidr(&annotations)
            .map_err(|e| PlumbError::BadNode {
                node: settings.node_name.clone(),
                reason: e.to_string(),
            })?
            .ok_or_else(|| PlumbError::NoNodeBlock {
                node: settings.node_name.clone(),
            })?;

        let nb_client = Client::connect(ClientConfig::new(endpoint(&settings.ovn_nb)?))
            .await
            .map_err(PlumbError::ovsdb(format!("connect {}", settings.ovn_nb)))?;
        let nb = Northbound::new(nb_client);
        let ovs_client = Client::connect(ClientConfig::new(endpoint(&settings.ovs_db)?))
            .await
            .map_err(PlumbError::ovsdb(format!("connect {}", settings.ovs_db)))?;
        let ovs = OpenVswitch::new(ovs_client);

        let switch = nb
            .get_logical_switch(&settings.logical_switch)
            .await
            .map_err(PlumbError::ovsdb(format!(
                "read {}",
                settings.logical_switch
            )))?
            .ok_or_else(|| PlumbError::NoLogicalSwitch(settings.logical_switch.clone()))?;
        let subnet_text = switch
            .other_config
            .get("subnet")
            .cloned()
            .unwrap_or_default();
        let cluster_subnet: ipnet::IpNet =
            subnet_text
                .parse()
                .map_err(|_| PlumbError::BadSwitchSubnet {
                    switch: settings.logical_switch.clone(),
                    value: subnet_text.clone(),
                })?;
        if !cluster_subnet.contains(&node_block) {
            return Err(PlumbError::BlockOutsideSubnet {
                block: node_block,
                subnet: cluster_subnet,
            });
        }
        let gateway = NetworkConfig::gateway_of(&cluster_subnet).ok_or_else(|| {
            PlumbError::BadSwitchSubnet {
                switch: settings.logical_switch.clone(),
                value: subnet_text,
            }
        })?;
        let gateway_in_block = node_block.contains(&gateway).then_some(gateway);
        let range = RangeSpec::new(node_block, None, None, gateway_in_block)?;
        let node = NodeNetwork {
            node: settings.node_name.clone(),
            logical_switch: settings.logical_switch.clone(),
            cluster_subnet,
            gateway,
            global_cidr: settings.global_cidr,
            node_block,
            pod_ifname: settings.pod_ifname.clone(),
            mtu: settings.mtu,
            tx_checksum_offload: settings.tx_checksum_offload,
            integration_bridge: settings.integration_bridge.clone(),
        };
        let recorder = Recorder::new(
            kube.clone(),
            Reporter {
                controller: "nauti-nri".into(),
                instance: Some(settings.node_name.clone()),
            },
        );
        let handler = Self {
            inner: Arc::new(Inner {
                node,
                opt_out: OptOut {
                    namespaces: settings.opt_out_namespaces.clone(),
                },
                policy: settings.failure_policy,
                gate: RwLock::new(()),
                pool: Mutex::new(Pool::new(range.clone())),
                range,
                nb,
                ovs,
                annotator: Annotator::new(kube, ANNOTATION_FIRST_RETRY, metrics.clone()),
                metrics,
                recorder,
            }),
        };
        handler.rebuild().await?;
        info!(
            node = %handler.inner.node.node,
            block = %node_block,
            subnet = %cluster_subnet,
            mtu = handler.inner.node.mtu,
            "pod plumbing ready"
        );
        Ok(handler)
    }

    /// The node-level facts the plans use.
    pub fn node_network(&self) -> &NodeNetwork {
        &self.inner.node
    }

    /// Replaces the allocator's state with what OVN holds for this node.
    /// Returns the switch's ports it was rebuilt from.
    async fn rebuild(&self) -> Result<Vec<nauti_ovn::LogicalSwitchPort>, PlumbError> {
        let ports = self.list_ports().await?;
        let mine = node_ports(&ports, &self.inner.node.node);
        let pairs = allocations_from_ports(&mine, &self.inner.node.pod_ifname);
        let (rebuilt, conflicts) = Pool::rebuild(self.inner.range.clone(), pairs);
        for conflict in conflicts {
            warn!(address = %conflict.address, error = %conflict.error,
                "a port in OVN claims an address this node cannot honour");
        }
        let mut pool = self.inner.pool.lock().await;
        *pool = rebuilt;
        self.count_addresses(&pool);
        Ok(ports)
    }

    fn count_addresses(&self, pool: &Pool) {
        let stats = pool.stats();
        let usable = stats.size.saturating_sub(stats.reserved);
        self.inner
            .metrics
            .addresses_allocated
            .set(i64::from(stats.allocated));
        self.inner.metrics.addresses_usable.set(i64::from(usable));
    }

    async fn list_ports(&self) -> Result<Vec<nauti_ovn::LogicalSwitchPort>, PlumbError> {
        let switch = &self.inner.node.logical_switch;
        self.inner
            .nb
            .list_logical_switch_ports(switch)
            .await
            .map_err(PlumbError::ovsdb(format!("list ports of {switch}")))
    }

    /// Allocates, writes the port, plumbs the NIC and plugs it into OVS; returns what the pod's
    /// annotations are to say. On failure everything made so far is undone.
    async fn plumb(&self, pod: &PodSandbox) -> Result<(IpAddr, PodNetwork), PlumbError> {
        let netns = pod.netns_path.clone().ok_or(PlumbError::NoNetns)?;
        let owner = owner(&pod.id, &self.inner.node.pod_ifname);
        let mut pool = self.inner.pool.lock().await;
        let ip = match pool.lookup(owner) {
            Some(lease) => lease.address,
            None => {
                pool.allocate(owner)
                    .map_err(|source| PlumbError::Exhausted {
                        block: self.inner.node.node_block,
                        source,
                    })?
                    .address
            }
        };
        self.count_addresses(&pool);
        drop(pool);
        let plan = pod_plan(pod, ip, &self.inner.node);
        let result = async {
            // The logical port does not depend on the NIC. The OVS port needs the host end of
            // the veth pair, not the configured pod end: once the pair exists, the two go on
            // side by side.
            let t0 = std::time::Instant::now();
            let netns = Path::new(&netns);
            let lsp = async {
                let _timer = StepTimer::new("lsp", t0);
                self.inner
                    .nb
                    .ensure_logical_switch_port(&self.inner.node.logical_switch, &plan.lsp)
                    .await
                    .map_err(PlumbError::ovsdb(format!("write port {}", plan.lsp.name)))
            };
            let nic_and_port = async {
                {
                    let _timer = StepTimer::new("veth pair", t0);
                    nic::create_pair(netns, &plan.nic).await?;
                }
                let t1 = std::time::Instant::now();
                let pod_end = async {
                    let _timer = StepTimer::new("pod end", t1);
                    nic::configure_pod_end(netns, &plan.nic)
                        .await
                        .map_err(PlumbError::from)
                };
                let ovs_port = async {
                    let _timer = StepTimer::new("ovs port", t1);
                    self.inner
                        .ovs
                        .ensure_port(&self.inner.node.integration_bridge, &plan.ovs_port)
                        .await
                        .map_err(PlumbError::ovsdb(format!("plug {}", plan.ovs_port.name)))
                };
                tokio::try_join!(pod_end, ovs_port).map(|_| ())
            };
            tokio::try_join!(lsp, nic_and_port).map(|_| ())
        }
        .await;
        if let Err(error) = result {
            self.undo(pod).await;
            return Err(error);
        }
        Ok((ip, plan.network))
    }

    /// Takes the NIC off the node: OVS port and veth. Idempotent.
    async fn unplug(&self, sandbox_id: &str) -> Result<(), PlumbError> {
        let host = host_ifname(sandbox_id);
        self.inner
            .ovs
            .remove_port(&host)
            .await
            .map_err(PlumbError::ovsdb(format!("unplug {host}")))?;
        nic::unplumb(&host).await?;
        Ok(())
    }

    /// Unplugs, removes the port if it is still this sandbox's, and releases the address.
    async fn release(&self, sandbox_id: &str, lsp: Option<&str>) -> Result<(), PlumbError> {
        self.unplug(sandbox_id).await?;
        if let Some(name) = lsp {
            let current = self
                .inner
                .nb
                .get_logical_switch_port(name)
                .await
                .map_err(PlumbError::ovsdb(format!("read port {name}")))?;
            let ours = current.is_some_and(|p| {
                p.external_ids
                    .get(external_ids::SANDBOX)
                    .map(String::as_str)
                    == Some(sandbox_id)
            });
            // A newer sandbox of the same pod may own the port by now: leave it alone.
            if ours {
                self.inner
                    .nb
                    .remove_logical_switch_port(name)
                    .await
                    .map_err(PlumbError::ovsdb(format!("remove port {name}")))?;
            }
        }
        let mut pool = self.inner.pool.lock().await;
        pool.release(owner(sandbox_id, &self.inner.node.pod_ifname));
        self.count_addresses(&pool);
        Ok(())
    }

    /// Best-effort rollback of a failed plumb; the first error is what the caller reports.
    async fn undo(&self, pod: &PodSandbox) {
        let lsp = super::plan::lsp_name(&pod.namespace, &pod.name);
        if let Err(error) = self.release(&pod.id, Some(&lsp)).await {
            warn!(pod.ns = %pod.namespace, pod.name = %pod.name, %error, "rollback incomplete");
        }
    }

    async fn record_failure(&self, pod: &PodSandbox, error: &PlumbError) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "NautiNicFailed".into(),
            note: Some(format!("started without its second NIC: {error}")),
            action: "PlumbSecondNic".into(),
            secondary: None,
        };
        if let Err(e) = self.inner.recorder.publish(&event, &reference).await {
            warn!(pod.ns = %pod.namespace, pod.name = %pod.name, error = %e, "event not recorded");
        }
    }

    /// Brings OVN, the node and the allocator in line with the runtime's sandboxes.
    async fn reconcile(&self, pods: Vec<PodSandbox>) -> Result<(), PlumbError> {
        let _exclusive = self.inner.gate.write().await;
        let ports = self.rebuild().await?;
        let mine = node_ports(&ports, &self.inner.node.node);
        let plan = sync_plan(&pods, &mine, &self.inner.opt_out);
        let leaked: Vec<(String, String)> = plan
            .release
            .iter()
            .filter_map(|sandbox| Some((sandbox.clone(), mine.get(sandbox.as_str())?.name.clone())))
            .collect();
        for (sandbox, lsp) in leaked {
            match self.release(&sandbox, Some(&lsp)).await {
                Ok(()) => info!(sandbox = %sandbox, lsp = %lsp, "released a leaked port"),
                Err(error) => warn!(sandbox = %sandbox, %error, "could not release a leaked port"),
            }
        }
        for pod in pods.iter().filter(|p| plan.plumb.contains(&p.id)) {
            match self.plumb(pod).await {
                Ok((ip, network)) => {
                    info!(pod.ns = %pod.namespace, pod.name = %pod.name, %ip, "plumbed a missed pod");
                    self.inner
                        .annotator
                        .submit(pod, &network, std::time::Instant::now());
                }
                Err(error) => {
                    warn!(pod.ns = %pod.namespace, pod.name = %pod.name, %error, "could not plumb a missed pod")
                }
            }
        }
        for pod in pods.iter().filter(|p| plan.verify.contains(&p.id)) {
            let Some(netns) = pod.netns_path.as_deref() else {
                continue;
            };
            let present = nic::inspect(Path::new(netns), &self.inner.node.pod_ifname).await;
            if matches!(present, Ok(None)) {
                match self.plumb(pod).await {
                    Ok((ip, network)) => {
                        info!(pod.ns = %pod.namespace, pod.name = %pod.name, %ip, "replumbed a lost NIC");
                        self.inner
                            .annotator
                            .submit(pod, &network, std::time::Instant::now());
                    }
                    Err(error) => {
                        warn!(pod.ns = %pod.namespace, pod.name = %pod.name, %error, "could not replumb")
                    }
                }
            } else if present.is_ok() {
                // Plumbed before: the annotations may not have made it (plugin restarted, API
                // server away); a patch with the same values changes nothing on the server.
                let owner = owner(&pod.id, &self.inner.node.pod_ifname);
                let lease = self.inner.pool.lock().await.lookup(owner);
                if let Some(lease) = lease {
                    let network = pod_plan(pod, lease.address, &self.inner.node).network;
                    self.inner.annotator.ensure(pod, &network);
                }
            }
        }
        Ok(())
    }
}

/// Logs how long a plumbing step took (debug level), when dropped.
struct StepTimer {
    step: &'static str,
    since: std::time::Instant,
}

impl StepTimer {
    fn new(step: &'static str, since: std::time::Instant) -> Self {
        Self { step, since }
    }
}

impl Drop for StepTimer {
    fn drop(&mut self) {
        let us = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(step = self.step, elapsed_us = us, "plumbing step");
    }
}

/// The first pause before a failed annotation patch is tried again.
const ANNOTATION_FIRST_RETRY: Duration = Duration::from_millis(100);

/// How long the background reconciliation after `Synchronize` may take before it gives up.
const RECONCILE_BUDGET: Duration = Duration::from_secs(120);

#[async_trait]
impl SandboxHandler for NautiHandler {
    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        _containers: Vec<Container>,
    ) -> Result<(), HandlerError> {
        // The runtime waits for the answer only a short while; the work goes on in the
        // background, holding the allocator so sandbox events queue behind it.
        let this = self.clone();
        tokio::spawn(async move {
            match tokio::time::timeout(RECONCILE_BUDGET, this.reconcile(pods)).await {
                Ok(Ok(())) => info!("synchronized with the runtime"),
                Ok(Err(error)) => warn!(%error, "synchronization failed; the next one retries"),
                Err(_) => warn!("synchronization took too long and was abandoned"),
            }
        });
        Ok(())
    }

    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        match skip_reason(&pod, &self.inner.opt_out) {
            Ok(None) => {}
            Ok(Some(skip)) => {
                let why = match skip {
                    Skip::HostNetwork => "host network",
                    Skip::OptedOut => "opted out",
                    Skip::NamespaceOptedOut => "namespace opted out",
                };
                info!(pod.ns = %pod.namespace, pod.name = %pod.name, why, "no second NIC");
                return Ok(());
            }
            Err(reason) => {
                return Err(HandlerError::InvalidPod {
                    pod: pod.key().to_string(),
                    reason,
                });
            }
        }
        let started = std::time::Instant::now();
        let _shared = self.inner.gate.read().await;
        match self.plumb(&pod).await {
            Ok((ip, network)) => {
                let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                info!(pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id, %ip, elapsed_us, "second NIC plumbed");
                self.inner.annotator.submit(&pod, &network, started);
                Ok(())
            }
            Err(error) => match self.inner.policy {
                FailurePolicy::Fail => Err(error.into_handler_error(&pod)),
                FailurePolicy::Ignore => {
                    warn!(pod.ns = %pod.namespace, pod.name = %pod.name, %error, "pod starts without its second NIC");
                    self.record_failure(&pod, &error).await;
                    Ok(())
                }
            },
        }
    }

    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let _shared = self.inner.gate.read().await;
        self.unplug(&pod.id)
            .await
            .map_err(|e| e.into_handler_error(&pod))
    }

    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let _shared = self.inner.gate.read().await;
        self.inner.annotator.cancel(&pod.id);
        let owner = owner(&pod.id, &self.inner.node.pod_ifname);
        let lsp = self
            .inner
            .pool
            .lock()
            .await
            .lookup(owner)
            .map(|_| super::plan::lsp_name(&pod.namespace, &pod.name));
        self.release(&pod.id, lsp.as_deref())
            .await
            .map_err(|e| e.into_handler_error(&pod))?;
        info!(pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id, "second NIC released");
        Ok(())
    }
}
