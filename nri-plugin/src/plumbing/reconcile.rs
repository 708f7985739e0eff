//! Keeping the node in step with the runtime and with its Node object.
//!
//! * [`follow_block`]: when the node's block appears or changes, the allocator is rebuilt for it
//!   from OVN; when it vanishes, nothing more is allocated.
//! * [`NautiHandler::reconcile`]: after every `Synchronize` and then periodically, a snapshot of
//!   the node's ports, OVS interfaces and host ends is compared with the runtime's sandboxes
//!   ([`reconcile_plan`]) and the actions are carried out, each to completion.

use std::sync::Weak;
use std::time::Instant;

use ipnet::IpNet;
use nauti_ipam::{Pool, RangeSpec};
use nauti_ovn::LogicalSwitchPort;
use tokio::sync::{oneshot, watch};
use tracing::{debug, info, warn};

use super::actions::{Action, NodeSnapshot, reconcile_plan};
use super::error::PlumbError;
use super::handler::{Allocation, Inner, NautiHandler, lock};
use super::node_block::BlockState;
use super::plan::{allocations_from_ports, node_network, node_ports, owner, pod_plan};
use super::steps::Steps;
use crate::core::Backoff;
use crate::nic::host_ifname;

const READING_SWITCH: &str = "reading the logical switch from the OVN northbound database";
const LISTING_PORTS: &str = "listing the switch's ports in the OVN northbound database";
const LISTING_IFACES: &str = "listing the interfaces of the node's Open vSwitch";
const LISTING_LINKS: &str = "listing the node's links";

/// Follows the node block for as long as the handler lives.
pub(super) async fn follow_block(inner: Weak<Inner>, mut blocks: watch::Receiver<BlockState>) {
    loop {
        let state = blocks.borrow_and_update().clone();
        let Some(inner) = inner.upgrade() else {
            return;
        };
        let handler = NautiHandler { inner };
        let changed_meanwhile = match state {
            BlockState::Unknown => false,
            BlockState::Block(block) => handler.serve_block(block, &mut blocks).await,
            BlockState::Missing => {
                handler
                    .withdraw_block("the Node has no nauti.io/node-cidr")
                    .await;
                false
            }
            BlockState::Invalid(reason) => {
                handler.withdraw_block(&reason).await;
                false
            }
        };
        drop(handler);
        if !changed_meanwhile && blocks.changed().await.is_err() {
            return;
        }
    }
}

/// Reconciles every `settings.reconcile_interval`, or at once when asked.
pub(super) async fn periodically(inner: Weak<Inner>) {
    loop {
        let Some(strong) = inner.upgrade() else {
            return;
        };
        let interval = strong.settings.reconcile_interval;
        let handler = NautiHandler { inner: strong };
        tokio::select! {
            () = tokio::time::sleep(interval) => {}
            () = handler.inner.reconcile_now.notified() => {}
        }
        if let Err(error) = handler.reconcile(None).await {
            warn!(%error, "periodic reconciliation failed; the next one retries");
        }
    }
}

impl NautiHandler {
    /// Installs the allocator for `block`, retrying while OVN is away. Returns `true` when the
    /// block changed meanwhile (the caller looks again at once).
    async fn serve_block(&self, block: IpNet, blocks: &mut watch::Receiver<BlockState>) -> bool {
        let mut backoff = Backoff::new(
            std::time::Duration::from_millis(200),
            std::time::Duration::from_secs(10),
        );
        loop {
            let installed = self.install_block(block).await;
            *lock(&self.inner.network_error) = installed.as_ref().err().map(ToString::to_string);
            match installed {
                Ok(()) => {
                    self.inner.reconcile_now.notify_one();
                    return false;
                }
                Err(error) => {
                    let delay = backoff.next_delay();
                    warn!(%block, %error, ?delay, "cannot serve the node block yet; retrying");
                    tokio::select! {
                        () = tokio::time::sleep(delay) => {}
                        changed = blocks.changed() => return changed.is_ok(),
                    }
                }
            }
        }
    }

    async fn install_block(&self, block: IpNet) -> Result<(), PlumbError> {
        let settings = &self.inner.settings;
        let nb = &self.inner.backends.nb;
        let switch = self
            .bounded(READING_SWITCH, async {
                nb.get_switch(&settings.logical_switch)
                    .await
                    .map_err(PlumbError::northbound(format!(
                        "read {}",
                        settings.logical_switch
                    )))
            })
            .await?
            .ok_or_else(|| PlumbError::NoLogicalSwitch(settings.logical_switch.clone()))?;
        let network = node_network(
            settings,
            block,
            switch.other_config.get("subnet").map(String::as_str),
        )?;
        let gateway_in_block = block.contains(&network.gateway).then_some(network.gateway);
        let range = RangeSpec::new(block, None, None, gateway_in_block)?;
        let _exclusive = self.inner.gate.write().await;
        let ports = self.bounded(LISTING_PORTS, self.list_ports()).await?;
        let mut alloc = self.inner.alloc.lock().await;
        let pool = self.rebuilt_pool(range, alloc.as_ref().map(|a| &a.pool), &ports);
        self.count_addresses(&pool);
        *alloc = Some(Allocation {
            network: network.clone(),
            pool,
        });
        drop(alloc);
        info!(
            %block,
            subnet = %network.cluster_subnet,
            mtu = network.mtu,
            "serving pods from the node block"
        );
        self.inner.network.send_replace(Some(network));
        Ok(())
    }

    async fn withdraw_block(&self, reason: &str) {
        let _exclusive = self.inner.gate.write().await;
        let had = self.inner.alloc.lock().await.take().is_some();
        self.inner.network.send_replace(None);
        if had {
            warn!(
                reason,
                "the node block is gone: no new address is handed out until it returns; running pods keep theirs"
            );
        }
    }

    /// Runs a read of the node's reconciliation as `step`, named in the answers it delays, and
    /// gives up after the answer deadline.
    async fn bounded<T, E>(
        &self,
        step: &'static str,
        read: impl Future<Output = Result<T, E>>,
    ) -> Result<T, PlumbError>
    where
        PlumbError: From<E>,
    {
        let _step = self.inner.reconciling.enter(step);
        let deadline = self.deadline();
        Ok(tokio::time::timeout(deadline, read)
            .await
            .map_err(|_| PlumbError::Timeout {
                after: deadline,
                steps: step.to_owned(),
            })??)
    }

    async fn list_ports(&self) -> Result<Vec<LogicalSwitchPort>, PlumbError> {
        let switch = &self.inner.settings.logical_switch;
        self.inner
            .backends
            .nb
            .list_ports(switch)
            .await
            .map_err(PlumbError::northbound(format!("list ports of {switch}")))
    }

    /// The allocator as OVN has it for this node, plus the addresses of sandboxes whose release
    /// is still being retried (their port may yet exist).
    fn rebuilt_pool(
        &self,
        range: RangeSpec,
        old: Option<&Pool>,
        ports: &[LogicalSwitchPort],
    ) -> Pool {
        let settings = &self.inner.settings;
        let mine = node_ports(ports, &settings.node_name);
        let mut pairs = allocations_from_ports(&mine, &settings.pod_ifname);
        if let Some(old) = old {
            for sandbox in lock(&self.inner.releasing).keys() {
                let owner = owner(sandbox, &settings.pod_ifname);
                if let Some(lease) = old.lookup(owner)
                    && !pairs.iter().any(|(o, _)| *o == owner)
                {
                    pairs.push((owner, lease.address));
                }
            }
        }
        let (rebuilt, conflicts) = Pool::rebuild(range, pairs);
        for conflict in conflicts {
            warn!(address = %conflict.address, error = %conflict.error,
                "a port in OVN claims an address this node cannot honour");
        }
        rebuilt
    }

    /// Compares the node with the runtime's sandboxes and carries out the plan. `planned` is
    /// told once the snapshot and the plan are made (the only part under the exclusive gate).
    pub(super) async fn reconcile(
        &self,
        planned: Option<oneshot::Sender<()>>,
    ) -> Result<(), PlumbError> {
        let _serial = self.inner.reconcile_serial.lock().await;
        let started = Instant::now();
        let (plan, pods) = {
            let _exclusive = self.inner.gate.write().await;
            let (synchronized, pods) = {
                let sandboxes = lock(&self.inner.sandboxes);
                (
                    sandboxes.synchronized,
                    sandboxes.live.values().cloned().collect::<Vec<_>>(),
                )
            };
            if !synchronized {
                debug!("not synchronized with the runtime; nothing to compare with");
                return Ok(());
            }
            // Reads only, bounded by the answer deadline: a hung peer must not keep the gate
            // (and with it every sandbox event) for longer than the runtime waits.
            let backends = &self.inner.backends;
            let ports = self.bounded(LISTING_PORTS, self.list_ports()).await?;
            let interfaces = self
                .bounded(LISTING_IFACES, async {
                    backends
                        .ovs
                        .list_interfaces()
                        .await
                        .map_err(PlumbError::vswitch("list interfaces"))
                })
                .await?;
            let host_ends = self
                .bounded(LISTING_LINKS, backends.links.host_ends())
                .await?;
            {
                let mut alloc = self.inner.alloc.lock().await;
                if let Some(alloc) = alloc.as_mut() {
                    let range = alloc.pool.spec().clone();
                    alloc.pool = self.rebuilt_pool(range, Some(&alloc.pool), &ports);
                    self.count_addresses(&alloc.pool);
                }
            }
            let snapshot = NodeSnapshot {
                ports: node_ports(&ports, &self.inner.settings.node_name)
                    .into_iter()
                    .map(|(sandbox, port)| (sandbox.to_owned(), port.clone()))
                    .collect(),
                interfaces: NodeSnapshot::sandbox_interfaces(&interfaces),
                host_ends: host_ends.into_iter().collect(),
            };
            let releasing: Vec<String> = lock(&self.inner.releasing).keys().cloned().collect();
            let plumbing = lock(&self.inner.plumbing).clone();
            let plan: Vec<Action> = reconcile_plan(&pods, &snapshot, &self.inner.opt_out)
                .into_iter()
                // A sandbox being released is left to its release task, one being plumbed
                // to its plumbing task (which cannot be inside its plumbing now: this holds
                // the gate exclusively).
                .filter(|action| match action {
                    Action::Plumb { sandbox }
                    | Action::Replumb { sandbox, .. }
                    | Action::Reannotate { sandbox, .. } => {
                        !releasing.contains(sandbox) && !plumbing.contains(sandbox)
                    }
                    _ => true,
                })
                .collect();
            (plan, pods)
        };
        if let Some(planned) = planned {
            let _ = planned.send(());
        }
        let actions = plan.len();
        for action in plan {
            let _shared = self.inner.gate.read().await;
            self.execute(action, &pods).await;
        }
        self.inner.metrics.set_reconciled(true);
        let elapsed_ms = u64::try_from(started.elapsed().as_millis()).unwrap_or(u64::MAX);
        debug!(actions, elapsed_ms, "reconciled");
        Ok(())
    }

    /// Carries out one action, to completion.
    async fn execute(&self, action: Action, pods: &[crate::core::PodSandbox]) {
        let live = |sandbox: &str| lock(&self.inner.sandboxes).live.get(sandbox).cloned();
        match action {
            Action::Release { sandbox, lsp } => {
                if live(&sandbox).is_some() {
                    return;
                }
                let first = self.release_in_background(&sandbox, vec![lsp.clone()]);
                match first.await {
                    Ok(Ok(())) => info!(sandbox = %sandbox, lsp = %lsp, "released a leaked port"),
                    _ => {
                        warn!(sandbox = %sandbox, lsp = %lsp, "leaked port not released yet; retrying")
                    }
                }
            }
            Action::Unplug { host_ifname: host } => {
                let in_use = lock(&self.inner.sandboxes)
                    .live
                    .keys()
                    .any(|s| host_ifname(s) == host);
                if in_use {
                    return;
                }
                match self.unplug(&host).await {
                    Ok(()) => info!(host = %host, "removed what a gone sandbox left"),
                    Err(error) => warn!(host = %host, %error, "could not remove a leftover"),
                }
            }
            Action::Plumb { sandbox } | Action::Replumb { sandbox, .. } => {
                let Some(pod) = live(&sandbox) else {
                    return;
                };
                if self.inner.network.borrow().is_none() {
                    debug!(sandbox = %sandbox, "no node block; the pod waits for it");
                    return;
                }
                match self.plumb(&pod, &Steps::default()).await {
                    Ok((ip, network)) => {
                        info!(pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id, %ip, "plumbed a pod the runtime has");
                        self.inner.annotator.submit(&pod, &network, Instant::now());
                    }
                    Err(error) => {
                        warn!(pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id, %error, "could not plumb a pod the runtime has");
                    }
                }
            }
            Action::Reannotate { sandbox, address } => {
                let Some(pod) = pods.iter().find(|p| p.id == sandbox) else {
                    return;
                };
                let Some(network) = self.inner.network.borrow().clone() else {
                    return;
                };
                let lsp = super::plan::lsp_name(&pod.namespace, &pod.name);
                let annotations = pod_plan(pod, address, &lsp, &network).network;
                self.inner.annotator.ensure(pod, &annotations);
            }
        }
    }
}
