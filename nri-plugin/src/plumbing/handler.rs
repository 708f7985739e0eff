//! The [`SandboxHandler`] that plumbs pods: the allocator and the three backends, driven by the
//! plans of [`super::plan`] and [`super::actions`].
//!
//! Every answer to the runtime is given within its request timeout (the value it passes in
//! `Configure`) minus a margin: the work runs in a task of its own, and when the deadline comes
//! first the answer names the steps still under way, while the task runs to completion and
//! undoes what the failed sandbox no longer needs.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex as SyncMutex, PoisonError};
use std::time::{Duration, Instant};

use async_trait::async_trait;
use nauti_api::PodNetwork;
use nauti_ipam::Pool;
use tokio::sync::{Mutex, Notify, RwLock, watch};
use tracing::{Instrument as _, debug, info, warn};

use super::annotator::Annotator;
use super::backends::Backends;
use super::error::PlumbError;
use super::events::FailureEvents;
use super::node_block::BlockState;
use super::plan::{
    NodeNetwork, OptOut, Skip, is_port_of, owner, pod_plan, port_name_for, skip_reason,
};
use super::settings::{FailurePolicy, PlumbingSettings};
use super::steps::Steps;
use crate::core::{Backoff, Container, PodSandbox, RuntimeInfo};
use crate::handler::{HandlerError, SandboxHandler};
use crate::metrics::Metrics;
use crate::nic::host_ifname;

/// What the handler is built from: settings, the three backends, the node block as watched, and
/// where annotations and failure events go.
pub struct Parts {
    pub settings: PlumbingSettings,
    pub backends: Backends,
    pub blocks: watch::Receiver<BlockState>,
    pub annotator: Annotator,
    pub events: Arc<dyn FailureEvents>,
    pub metrics: Arc<Metrics>,
}

/// Plumbs each pod's second NIC on sandbox events.
#[derive(Clone)]
pub struct NautiHandler {
    pub(super) inner: Arc<Inner>,
}

/// The node's allocator, once the node has a block.
pub(super) struct Allocation {
    pub network: NodeNetwork,
    pub pool: Pool,
}

/// The runtime's sandboxes as the plugin knows them: the last `Synchronize`, then each event.
#[derive(Default)]
pub(super) struct Sandboxes {
    /// A `Synchronize` arrived on the current connection, so `live` is complete.
    pub synchronized: bool,
    pub live: BTreeMap<String, PodSandbox>,
}

pub(super) struct Inner {
    pub settings: PlumbingSettings,
    pub opt_out: OptOut,
    pub backends: Backends,
    pub annotator: Annotator,
    pub events: Arc<dyn FailureEvents>,
    pub metrics: Arc<Metrics>,
    /// Sandbox events hold it shared and run concurrently (each pod has its own port, veth and
    /// OVS port); a reconciliation holds it exclusively only while it rebuilds the allocator
    /// from OVN and makes its plan, so the rebuild never misses an allocation whose port is
    /// still being written.
    pub gate: RwLock<()>,
    /// Held only for allocator operations, never across I/O.
    pub alloc: Mutex<Option<Allocation>>,
    /// The node's network, published once the allocator serves it.
    pub network: watch::Sender<Option<NodeNetwork>>,
    pub sandboxes: SyncMutex<Sandboxes>,
    /// Sandboxes whose release is being retried: their addresses stay taken until OVN confirms
    /// their port is gone.
    /// With the port names to check, and whether another pass was asked for meanwhile.
    pub releasing: SyncMutex<BTreeMap<String, (Vec<String>, bool)>>,
    /// Sandboxes whose own plumbing task is under way (perhaps waiting for the node's network):
    /// a reconciliation leaves them to it, or both would plumb the pod with two addresses.
    pub plumbing: SyncMutex<BTreeSet<String>>,
    /// How long an answer to the runtime may take.
    pub answer_deadline: SyncMutex<Duration>,
    /// Wakes the reconciliation loop.
    pub reconcile_now: Notify,
    /// What the reconciliation or the block installation under way waits for, named in the
    /// answers it delays.
    pub reconciling: Steps,
    /// Why the last attempt to serve the node's block failed, until one succeeds.
    pub network_error: SyncMutex<Option<String>>,
    /// One reconciliation at a time, from its plan to its last action: two overlapping ones
    /// would plan the same missing pod and plumb it twice at once.
    pub reconcile_serial: tokio::sync::Mutex<()>,
}

impl std::fmt::Debug for NautiHandler {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("NautiHandler")
            .field("node", &self.inner.settings.node_name)
            .finish_non_exhaustive()
    }
}

/// containerd's default request timeout, until `Configure` says otherwise.
const DEFAULT_REQUEST_TIMEOUT: Duration = Duration::from_secs(2);

/// The part of the runtime's request timeout kept for the answer to travel and for the runtime's
/// own bookkeeping: a fifth of it, at least 200 ms.
pub fn answer_deadline(request_timeout: Duration) -> Duration {
    let timeout = if request_timeout.is_zero() {
        DEFAULT_REQUEST_TIMEOUT
    } else {
        request_timeout
    };
    let margin = (timeout / 5).max(Duration::from_millis(200));
    timeout
        .saturating_sub(margin)
        .max(Duration::from_millis(50))
}

pub(super) fn lock<T>(mutex: &SyncMutex<T>) -> std::sync::MutexGuard<'_, T> {
    // Each update of these maps is one insert or remove: a panicking holder leaves them whole.
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

const WAITING_FOR_RECONCILIATION: &str = "waiting for the node's reconciliation";
const WAITING_FOR_NETWORK: &str = "waiting for the node's network (its block, the Node's \
     nauti.io/node-cidr annotation, and its logical switch in the OVN northbound database)";

/// A plumbing task's state, so the answer and the task agree on who handles a late result.
const RUNNING: u8 = 0;
const ANSWERED: u8 = 1;
/// Answered with an error: under `fail` the sandbox failed.
const ABANDONED: u8 = 2;
/// Answered as started without its NIC (a forwarder before the node's network): it keeps the
/// NIC the task brings late, whatever the policy.
const STARTED_WITHOUT_NIC: u8 = 3;

/// Marks a sandbox's plumbing as under way until dropped.
struct InFlight {
    inner: Arc<Inner>,
    sandbox: String,
}

impl InFlight {
    fn enter(inner: &Arc<Inner>, sandbox: &str) -> Self {
        lock(&inner.plumbing).insert(sandbox.to_owned());
        Self {
            inner: inner.clone(),
            sandbox: sandbox.to_owned(),
        }
    }
}

impl Drop for InFlight {
    fn drop(&mut self) {
        lock(&self.inner.plumbing).remove(&self.sandbox);
    }
}

impl NautiHandler {
    /// The handler over `parts`; starts following the node block and the periodic
    /// reconciliation, both ending when the last clone of the handler is dropped.
    pub fn start(parts: Parts) -> Self {
        let Parts {
            settings,
            backends,
            blocks,
            annotator,
            events,
            metrics,
        } = parts;
        let handler = Self {
            inner: Arc::new(Inner {
                opt_out: OptOut {
                    namespaces: settings.opt_out_namespaces.clone(),
                },
                settings,
                backends,
                annotator,
                events,
                metrics,
                gate: RwLock::new(()),
                alloc: Mutex::new(None),
                network: watch::Sender::new(None),
                sandboxes: SyncMutex::default(),
                releasing: SyncMutex::default(),
                plumbing: SyncMutex::default(),
                answer_deadline: SyncMutex::new(answer_deadline(DEFAULT_REQUEST_TIMEOUT)),
                reconcile_now: Notify::new(),
                reconciling: Steps::default(),
                network_error: SyncMutex::default(),
                reconcile_serial: tokio::sync::Mutex::new(()),
            }),
        };
        let weak = Arc::downgrade(&handler.inner);
        tokio::spawn(super::reconcile::follow_block(weak.clone(), blocks).in_current_span());
        tokio::spawn(super::reconcile::periodically(weak).in_current_span());
        handler
    }

    /// The node-level facts the plans use, once the node has a block.
    pub fn node_network(&self) -> Option<NodeNetwork> {
        self.inner.network.borrow().clone()
    }

    pub(super) fn deadline(&self) -> Duration {
        *lock(&self.inner.answer_deadline)
    }

    pub(super) fn count_addresses(&self, pool: &Pool) {
        let stats = pool.stats();
        let usable = stats.size.saturating_sub(stats.reserved);
        self.inner
            .metrics
            .addresses_allocated
            .set(i64::from(stats.allocated));
        self.inner.metrics.addresses_usable.set(i64::from(usable));
    }

    /// Allocates (or finds the sandbox's address), writes the port, plumbs the NIC and plugs it
    /// into OVS; returns the address and what the pod's annotations are to say. On failure
    /// what was made is undone, in the background until OVN confirms.
    pub(super) async fn plumb(
        &self,
        pod: &PodSandbox,
        steps: &Steps,
    ) -> Result<(IpAddr, PodNetwork), PlumbError> {
        let netns = pod.netns_path.clone().ok_or(PlumbError::NoNetns)?;
        let node = &self.inner.settings.node_name;
        let holder = {
            let _step = steps.enter("reading the pod's port in the OVN northbound database");
            let plain = super::plan::lsp_name(&pod.namespace, &pod.name);
            self.inner
                .backends
                .nb
                .get_port(&plain)
                .await
                .map_err(PlumbError::northbound(format!("read port {plain}")))?
        };
        let lsp_name = port_name_for(pod, holder.as_ref(), node);
        let owner = owner(&pod.id, &self.inner.settings.pod_ifname);
        let (ip, network) = {
            let mut alloc = self.inner.alloc.lock().await;
            let Some(alloc) = alloc.as_mut() else {
                return Err(PlumbError::NoNodeBlock { node: node.clone() });
            };
            let ip = match alloc.pool.lookup(owner) {
                Some(lease) => lease.address,
                None => {
                    alloc
                        .pool
                        .allocate(owner)
                        .map_err(|source| PlumbError::Exhausted {
                            block: alloc.network.node_block,
                            source,
                        })?
                        .address
                }
            };
            self.count_addresses(&alloc.pool);
            (ip, alloc.network.clone())
        };
        let plan = pod_plan(pod, ip, &lsp_name, &network);
        let backends = &self.inner.backends;
        let result = async {
            // The logical port does not depend on the NIC. The OVS port needs the host end of
            // the veth pair, not the configured pod end: once the pair exists, the pod end is
            // configured while the OVS port is plugged.
            let netns = Path::new(&netns);
            let lsp = async {
                let _step =
                    steps.enter("writing the logical switch port to the OVN northbound database");
                backends
                    .nb
                    .ensure_port(&network.logical_switch, &plan.lsp)
                    .await
                    .map_err(PlumbError::northbound(format!(
                        "write port {}",
                        plan.lsp.name
                    )))
            };
            let nic_and_port = async {
                {
                    let _step = steps.enter("creating the veth pair");
                    backends.links.create_pair(netns, &plan.nic).await?;
                }
                let pod_end = async {
                    let _step = steps.enter("configuring the pod end");
                    backends
                        .links
                        .configure_pod_end(netns, &plan.nic)
                        .await
                        .map_err(PlumbError::from)
                };
                let ovs_port = async {
                    let _step = steps.enter("plugging the OVS port into the node's Open vSwitch");
                    backends
                        .ovs
                        .ensure_port(&network.integration_bridge, &plan.ovs_port)
                        .await
                        .map_err(PlumbError::vswitch(format!("plug {}", plan.ovs_port.name)))
                };
                tokio::try_join!(pod_end, ovs_port).map(|_| ())
            };
            tokio::try_join!(lsp, nic_and_port).map(|_| ())
        }
        .await;
        if let Err(error) = result {
            self.release_in_background(&pod.id, vec![lsp_name]);
            return Err(error);
        }
        Ok((ip, plan.network))
    }

    /// Takes the NIC off the node: OVS port and veth. Idempotent.
    pub(super) async fn unplug(&self, host: &str) -> Result<(), PlumbError> {
        self.inner
            .backends
            .ovs
            .remove_port(host)
            .await
            .map_err(PlumbError::vswitch(format!("unplug {host}")))?;
        self.inner.backends.links.remove(host).await?;
        Ok(())
    }

    /// Unplugs, removes each of `ports` that is still this sandbox's, and frees the address,
    /// in that order: the address is free only once OVN confirms no port holds it.
    pub(super) async fn release(&self, sandbox: &str, ports: &[String]) -> Result<(), PlumbError> {
        self.unplug(&host_ifname(sandbox)).await?;
        let nb = &self.inner.backends.nb;
        for name in ports {
            let current = nb
                .get_port(name)
                .await
                .map_err(PlumbError::northbound(format!("read port {name}")))?;
            // A newer sandbox of the same pod may own the port by now: leave it alone.
            if current.is_some_and(|p| is_port_of(&p, sandbox)) {
                nb.remove_port(name)
                    .await
                    .map_err(PlumbError::northbound(format!("remove port {name}")))?;
            }
        }
        let mut alloc = self.inner.alloc.lock().await;
        if let Some(alloc) = alloc.as_mut() {
            alloc
                .pool
                .release(owner(sandbox, &self.inner.settings.pod_ifname));
            self.count_addresses(&alloc.pool);
        }
        Ok(())
    }

    /// Releases in a task of its own, retried with backoff until it succeeds; meanwhile the
    /// sandbox's address stays taken (rebuilds keep it too). Resolves with the first attempt's
    /// outcome.
    pub(super) fn release_in_background(
        &self,
        sandbox: &str,
        ports: Vec<String>,
    ) -> tokio::sync::oneshot::Receiver<Result<(), String>> {
        let (first_tx, first_rx) = tokio::sync::oneshot::channel();
        {
            let mut releasing = lock(&self.inner.releasing);
            if let Some((known, again)) = releasing.get_mut(sandbox) {
                // Already being released: add the names and have that task make one more pass,
                // since what it removed may have been made again since (a late plumbing).
                known.extend(ports);
                known.sort();
                known.dedup();
                *again = true;
                let _ = first_tx.send(Err("a release of this sandbox is under way".into()));
                return first_rx;
            }
            releasing.insert(sandbox.to_owned(), (ports, false));
        }
        let this = self.clone();
        let sandbox = sandbox.to_owned();
        tokio::spawn(
            async move {
                let mut first = Some(first_tx);
                let mut backoff = Backoff::new(Duration::from_millis(100), Duration::from_secs(5));
                loop {
                    let ports = lock(&this.inner.releasing)
                        .get_mut(&sandbox)
                        .map(|(ports, again)| {
                            *again = false;
                            ports.clone()
                        })
                        .unwrap_or_default();
                    let result = this.release(&sandbox, &ports).await;
                    let outcome = result.as_ref().map(|_| ()).map_err(ToString::to_string);
                    if let Some(first) = first.take() {
                        let _ = first.send(outcome);
                    }
                    match result {
                        Ok(()) => {
                            let mut releasing = lock(&this.inner.releasing);
                            if releasing.get(&sandbox).is_some_and(|(_, again)| *again) {
                                continue;
                            }
                            releasing.remove(&sandbox);
                            debug!(sandbox = %sandbox, "released");
                            return;
                        }
                        Err(error) => {
                            let delay = backoff.next_delay();
                            warn!(sandbox = %sandbox, %error, ?delay, "release incomplete; retrying");
                            tokio::time::sleep(delay).await;
                        }
                    }
                }
            }
            .in_current_span(),
        );
        first_rx
    }

    fn skip(&self, pod: &PodSandbox) -> Result<bool, HandlerError> {
        match skip_reason(pod, &self.inner.opt_out) {
            Ok(None) => Ok(false),
            Ok(Some(skip)) => {
                let why = match skip {
                    Skip::HostNetwork => "host network",
                    Skip::OptedOut => "opted out",
                    Skip::NamespaceOptedOut => "namespace opted out",
                };
                info!(why, "no second NIC");
                Ok(true)
            }
            Err(reason) => Err(HandlerError::InvalidPod {
                pod: pod.key().to_string(),
                reason,
            }),
        }
    }

    /// The plumbing of a new sandbox, in a task that runs to completion whatever the answer.
    async fn plumb_within_deadline(
        &self,
        pod: &PodSandbox,
    ) -> Result<(IpAddr, PodNetwork), PlumbError> {
        let deadline = self.deadline();
        let steps = Steps::default();
        let state = Arc::new(AtomicU8::new(RUNNING));
        let this = self.clone();
        let (task_pod, task_steps, task_state) = (pod.clone(), steps.clone(), state.clone());
        let in_flight = InFlight::enter(&self.inner, &pod.id);
        let mut task = tokio::spawn(
            async move {
                let result = {
                    let _in_flight = in_flight;
                    {
                        let _step = task_steps.enter(WAITING_FOR_NETWORK);
                        let mut network = this.inner.network.subscribe();
                        // The sender lives in `this`.
                        let _ = network.wait_for(Option::is_some).await;
                    }
                    let _shared = {
                        let _step = task_steps.enter(WAITING_FOR_RECONCILIATION);
                        this.inner.gate.read().await
                    };
                    this.plumb(&task_pod, &task_steps).await
                };
                if let Err(answered) = task_state.compare_exchange(
                    RUNNING,
                    ANSWERED,
                    Ordering::AcqRel,
                    Ordering::Acquire,
                ) {
                    let policy = if answered == STARTED_WITHOUT_NIC {
                        FailurePolicy::Ignore
                    } else {
                        this.inner.settings.failure_policy
                    };
                    this.finish_abandoned(&task_pod, &result, policy);
                }
                result
            }
            .in_current_span(),
        );
        match tokio::time::timeout(deadline, &mut task).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(PlumbError::Task(join.to_string())),
            Err(_) => {
                let mut pending = steps.describe();
                let before_network =
                    pending.contains(WAITING_FOR_NETWORK) && self.is_trusted_forwarder(pod);
                let late = if before_network {
                    STARTED_WITHOUT_NIC
                } else {
                    ABANDONED
                };
                if state
                    .compare_exchange(RUNNING, late, Ordering::AcqRel, Ordering::Acquire)
                    .is_ok()
                {
                    if before_network {
                        return Err(PlumbError::ForwarderBeforeNetwork { after: deadline });
                    }
                    let waits_for_node = pending.contains(WAITING_FOR_RECONCILIATION)
                        || pending.contains(WAITING_FOR_NETWORK);
                    if waits_for_node && !self.inner.reconciling.is_idle() {
                        pending =
                            format!("{pending}, which is {}", self.inner.reconciling.describe());
                    }
                    if pending.contains(WAITING_FOR_NETWORK)
                        && let Some(error) = lock(&self.inner.network_error).as_ref()
                    {
                        pending = format!("{pending}; the last attempt failed: {error}");
                    }
                    Err(PlumbError::Timeout {
                        after: deadline,
                        steps: pending,
                    })
                } else {
                    // It finished just now: its result is the answer.
                    task.await
                        .map_err(|join| PlumbError::Task(join.to_string()))?
                }
            }
        }
    }

    /// A plumbing that finished after its sandbox was answered: under `fail` the sandbox failed,
    /// so what was made is released; under `ignore` the pod runs and keeps its late NIC.
    fn finish_abandoned(
        &self,
        pod: &PodSandbox,
        result: &Result<(IpAddr, PodNetwork), PlumbError>,
        policy: FailurePolicy,
    ) {
        match (result, policy) {
            (Ok(_), FailurePolicy::Fail) => {
                info!("plumbed after the deadline; releasing it, the sandbox failed");
                let ports = vec![
                    super::plan::lsp_name(&pod.namespace, &pod.name),
                    nauti_api::core::port::lsp_name_of_sandbox(&pod.namespace, &pod.name, &pod.id),
                ];
                self.release_in_background(&pod.id, ports);
            }
            (Ok((ip, network)), FailurePolicy::Ignore) => {
                info!(%ip, "plumbed after the deadline");
                self.inner.annotator.submit(pod, network, Instant::now());
            }
            (Err(error), _) => debug!(%error, "plumbing after the deadline failed too"),
        }
    }

    /// A pod that forwards other clusters' packets (the CNF) in a namespace trusted with that.
    fn is_trusted_forwarder(&self, pod: &PodSandbox) -> bool {
        super::plan::forwards_from_trusted(pod, &self.inner.settings.forwarder_namespaces)
    }

    fn failed(&self, pod: &PodSandbox, error: PlumbError) -> Result<(), HandlerError> {
        let policy = match error {
            PlumbError::ForwarderBeforeNetwork { .. } => FailurePolicy::Ignore,
            _ => self.inner.settings.failure_policy,
        };
        match policy {
            FailurePolicy::Fail => {
                // The runtime sends no RemovePodSandbox for a sandbox whose creation failed.
                lock(&self.inner.sandboxes).live.remove(&pod.id);
                Err(error.into_handler_error(pod))
            }
            FailurePolicy::Ignore => {
                warn!(%error, "pod starts without its second NIC");
                self.inner.events.nic_failed(pod, error.to_string());
                Ok(())
            }
        }
    }

    /// Waits for at most the answer deadline for `work`, which runs to completion regardless.
    async fn within_deadline<F>(&self, what: &'static str, work: F) -> Result<(), PlumbError>
    where
        F: std::future::Future<Output = Result<(), PlumbError>> + Send + 'static,
    {
        let deadline = self.deadline();
        match tokio::time::timeout(deadline, tokio::spawn(work.in_current_span())).await {
            Ok(Ok(result)) => result,
            Ok(Err(join)) => Err(PlumbError::Task(join.to_string())),
            Err(_) => Err(PlumbError::Timeout {
                after: deadline,
                steps: what.to_owned(),
            }),
        }
    }
}

#[async_trait]
impl SandboxHandler for NautiHandler {
    async fn configure(&self, runtime: &RuntimeInfo, _config: &str) -> Result<(), HandlerError> {
        let deadline = answer_deadline(runtime.request_timeout);
        *lock(&self.inner.answer_deadline) = deadline;
        info!(
            request_timeout_ms = runtime.request_timeout.as_millis(),
            answer_deadline_ms = deadline.as_millis(),
            "answering the runtime within its request timeout"
        );
        Ok(())
    }

    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        _containers: Vec<Container>,
    ) -> Result<(), HandlerError> {
        {
            let mut sandboxes = lock(&self.inner.sandboxes);
            sandboxes.live = pods.into_iter().map(|p| (p.id.clone(), p)).collect();
            sandboxes.synchronized = true;
        }
        // The snapshot and the plan are made before the answer (so no event slips between the
        // runtime's list and OVN's); carrying the plan out continues after it.
        let (planned_tx, planned_rx) = tokio::sync::oneshot::channel();
        let this = self.clone();
        tokio::spawn(
            async move {
                match this.reconcile(Some(planned_tx)).await {
                    Ok(()) => info!("synchronized with the runtime"),
                    Err(error) => warn!(%error, "reconciliation failed; the next one retries"),
                }
            }
            .in_current_span(),
        );
        if tokio::time::timeout(self.deadline(), planned_rx)
            .await
            .is_err()
        {
            warn!(
                "the reconciliation's snapshot takes longer than the runtime waits; answering, it goes on"
            );
        }
        Ok(())
    }

    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        if self.skip(&pod)? {
            return Ok(());
        }
        let started = Instant::now();
        // Known before its port exists, so a reconciliation never takes it for a leftover.
        lock(&self.inner.sandboxes)
            .live
            .insert(pod.id.clone(), pod.clone());
        match self.plumb_within_deadline(&pod).await {
            Ok((ip, network)) => {
                let elapsed_us = u64::try_from(started.elapsed().as_micros()).unwrap_or(u64::MAX);
                info!(%ip, elapsed_us, "second NIC plumbed");
                self.inner.annotator.submit(&pod, &network, started);
                Ok(())
            }
            Err(error) => self.failed(&pod, error),
        }
    }

    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let this = self.clone();
        let host = host_ifname(&pod.id);
        self.within_deadline(
            "unplugging the NIC",
            async move { this.unplug(&host).await },
        )
        .await
        .map_err(|e| e.into_handler_error(&pod))
    }

    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        self.inner.annotator.cancel(&pod.id);
        lock(&self.inner.sandboxes).live.remove(&pod.id);
        let ports = vec![
            super::plan::lsp_name(&pod.namespace, &pod.name),
            nauti_api::core::port::lsp_name_of_sandbox(&pod.namespace, &pod.name, &pod.id),
        ];
        let first = self.release_in_background(&pod.id, ports);
        match tokio::time::timeout(self.deadline(), first).await {
            Ok(Ok(Ok(()))) => info!("second NIC released"),
            Ok(Ok(Err(error))) => {
                warn!(%error, "second NIC not released yet; retrying in the background")
            }
            _ => warn!("release takes longer than the runtime waits; it goes on in the background"),
        }
        Ok(())
    }

    async fn disconnected(&self) {
        // Events may be missed until the next Synchronize: release nothing on stale knowledge.
        lock(&self.inner.sandboxes).synchronized = false;
    }
}

#[cfg(test)]
mod tests;
