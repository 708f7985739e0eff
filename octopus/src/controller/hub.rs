//! `octopus hub`: the hub's controller.
//!
//! One pass over the Peers, on every change and every [`RESYNC`](super::RESYNC):
//! 1. publish the hub's own Peer (created once, patched when its flags or its key change: the
//!    key Secret is watched, and a key written into it switches the running tunnel in place);
//! 2. for each Peer being deleted: revoke its member's grants, then let the Peer go (the hub's
//!    finalizer keeps it until then, so a member that leaves while the hub is down is still
//!    cleaned up);
//! 3. delete the bootstrap token of each member that has published its Peer (it holds its
//!    credential, so the token has served its one use);
//! 4. decide every live Peer's slice ([`decide_slices`]) and write it into `spec.clusterCIDRs`
//!    with the `Valid` condition for that generation;
//! 5. hand the hub cluster's own slice to its `nauti-ovnmaster`;
//! 6. work out the hub's WireGuard plan (a peer per valid member), log it when it changes,
//!    and with `--wireguard-interface` apply it to the in-process device, routes and
//!    forwarding ([`crate::gateway`]): the hub forwards between members.
//!
//! 7. with the tunnel (passes then come at least every 10 s), read its counters into each
//!    member's Peer status: `Ready`, `lastHandshake`, the byte counters and `latencyMs` (pings
//!    through the tunnel to the member's gateway, [`super::probe`]) ([`super::status`]), each
//!    Peer written only when that changes, and into the per-peer metrics.
//!
//! Members' certificate requests are approved by [`approval::run`] beside it. All of this runs
//! only on the replica holding the Lease (`--lease-name`); the others wait for it.

use std::collections::BTreeSet;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use anyhow::Context as _;
use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, ListParams, Patch, PatchParams, PostParams};
use nauti_api::Peer;
use nauti_api::conditions::{new_condition, set_condition};
use nauti_api::daemon::election::LeaseSettings;
use nauti_api::daemon::owner::{Owner, OwnerArgs, resolve_owner};
use nauti_api::daemon::{AbortOnDrop, start_endpoints};
use nauti_api::peer::condition;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::active::{self, ActivePod, active_pod};
use super::leadership::{Replica, lead_on_lease};
use super::metrics::{Metrics, ValidLabel};
use super::probe::ProbeSettings;
use super::publish::{OwnPeer, publish};
use super::status::{self, StatusWriter};
use super::{connect, local, next_pass, watch_peers};
use crate::core::{LocalRole, SlicePolicy, TopologyPlan, plan_topology, review_peers};
use crate::gateway::file::log_plan;
use crate::gateway::{
    Gateway, GatewayConfig, log_applied, resolve_endpoints, tunnel_address, usable_peers,
};
use crate::hub::assign::{SliceDecision, assigned_slice, decide_slices};
use crate::hub::{approval, grants};
use crate::wg::AnyDevice;

/// Finalizer the hub puts on every Peer, removed once the member's grants are revoked.
pub const FINALIZER: &str = "nauti.io/octopus-hub";

/// What `octopus hub` runs with.
#[derive(Debug, Clone)]
pub struct HubConfig {
    /// Kubeconfig of the hub cluster; `None`: in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the Peers and of the hub's own key and slice ConfigMap.
    pub namespace: String,
    /// The hub cluster's ID.
    pub cluster_id: String,
    /// How slices are carved.
    pub policy: SlicePolicy,
    /// Where members reach the hub's gateway.
    pub endpoint: String,
    /// The gateway's UDP port.
    pub port: u16,
    /// A specific slice for the hub cluster.
    pub requested: Option<IpNet>,
    /// Secret holding the gateway's WireGuard key.
    pub key_secret: String,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Run the tunnel here and apply the plan to it; `None` only logs the plan.
    pub gateway: Option<GatewayConfig>,
    /// The Lease replicas elect their leader on.
    pub lease: LeaseSettings,
    /// This replica's pod, labelled [`active::ACTIVE_LABEL`] while it leads and runs the tunnel.
    pub pod_name: Option<String>,
    /// The Deployment that owns the Lease, the key, the slice ConfigMap and the hub's Peer.
    pub owner: OwnerArgs,
}

/// Runs the hub until `shutdown`. Replicas elect a leader on the Lease; a standby only waits,
/// and a leader that loses the lease stops (its pod restarts as a standby), so never two
/// replicas write or run the tunnel at once.
pub async fn run(config: HubConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new("connecting to the API server"));
    let _endpoints = start_endpoints(config.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .with_context(|| format!("serve --metrics-addr {}", config.metrics_addr))?;
    let client = connect(config.kubeconfig.as_deref()).await?;
    // A healthy standby is ready: the gateway Service selects the leader by its label.
    let active = active_pod(
        &client,
        &config.namespace,
        config.pod_name.as_deref(),
        config.gateway.is_some(),
    )
    .await;
    let owner = resolve_owner(&config.owner, client.clone(), &config.namespace, &shutdown).await;
    metrics.set_ready();
    let work = lead(
        &config,
        client.clone(),
        &metrics,
        active.as_ref(),
        owner.as_ref(),
        &shutdown,
    );
    let replica = Replica {
        client: client.clone(),
        lease: &config.lease,
        owner: owner.as_ref(),
        metrics: &metrics,
        active: active.as_ref(),
    };
    lead_on_lease(
        replica,
        std::future::pending(),
        "no pass over the Peers yet",
        &shutdown,
        work,
    )
    .await
}

/// What the leader runs: the tunnel, the approvals and the passes over the Peers.
async fn lead(
    config: &HubConfig,
    client: kube::Client,
    metrics: &Metrics,
    active: Option<&ActivePod>,
    owner: Option<&Owner>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut key =
        local::ensure_wireguard_key(client.clone(), &config.namespace, &config.key_secret, owner)
            .await?;
    // A rotation wakes a pass as a Peer change does.
    let notify = Arc::new(Notify::new());
    let (_key_watch, mut key_view) = local::watch_key_secret(
        client.clone(),
        &config.namespace,
        &config.key_secret,
        notify.clone(),
    );
    let gateway = config
        .gateway
        .clone()
        .map(|gw| Gateway::start(gw, key.private, config.port))
        .transpose()
        .context("start the WireGuard gateway")?;
    let mut last_plan = None;
    let mut own = OwnPeer {
        cluster_id: config.cluster_id.clone(),
        endpoint: Some(config.endpoint.clone()),
        port: config.port,
        public_key: key.public,
        is_hub: true,
        is_public: true,
        requested: config.requested,
    };
    let _approval = AbortOnDrop(tokio::spawn(approve_forever(
        client.clone(),
        vec![config.cluster_id.clone()],
    )));
    let peers: Api<Peer> = Api::namespaced(client.clone(), &config.namespace);
    let _watch = watch_peers(peers.clone(), notify.clone());
    let mut status_writer = StatusWriter::new();
    tracing::info!(cluster = %config.cluster_id, public_key = %key.public, "hub running");
    let mut next_status = tokio::time::Instant::now();
    let mut marked = false;
    loop {
        metrics.syncs.inc();
        // The tunnel runs here: the gateway Service may send members' packets to this pod.
        if !marked && let Some(active) = active {
            marked = active::take_over(active).await;
        }
        if local::follow_key_secret(&mut key_view, &mut key, gateway.as_ref()) {
            own.public_key = key.public;
        }
        let outcome = pass(
            &client,
            &peers,
            config,
            (&own, owner),
            metrics,
            (gateway.as_ref(), &mut last_plan),
        );
        match outcome.await {
            Ok(valid) => {
                metrics.set_ready();
                if let Some(gateway) = &gateway {
                    report_tunnels(gateway, &peers, &valid, config, metrics, &mut status_writer)
                        .await;
                }
            }
            Err(error) => {
                metrics.sync_errors.inc();
                tracing::warn!(
                    error = format!("{error:#}"),
                    "pass over the Peers failed; retried"
                );
            }
        }
        // With a tunnel, look at it every STATUS_INTERVAL even without a Peer change.
        if gateway.is_some() {
            next_status = tokio::time::Instant::now() + STATUS_INTERVAL;
        }
        let wait = async {
            if gateway.is_some() {
                tokio::time::sleep_until(next_status).await;
            } else {
                std::future::pending::<()>().await;
            }
        };
        let go_on = tokio::select! {
            go_on = next_pass(&notify, shutdown) => go_on,
            () = wait => true,
        };
        if !go_on {
            return Ok(());
        }
    }
}

/// How often the hub reads the tunnel's counters into the Peers' status (each Peer is
/// written only when that changes, paced by [`crate::core::WritePacing`]).
const STATUS_INTERVAL: Duration = Duration::from_secs(10);

/// Reads the device, exports each member's tunnel as metrics and writes it into its Peer.
async fn report_tunnels(
    gateway: &Gateway<AnyDevice>,
    peers: &Api<Peer>,
    valid: &[Peer],
    config: &HubConfig,
    metrics: &Metrics,
    writer: &mut StatusWriter,
) {
    let state = match gateway.state() {
        Ok(state) => state,
        Err(error) => {
            tracing::warn!(%error, "cannot read the tunnel's counters");
            return;
        }
    };
    let members: Vec<Peer> = valid
        .iter()
        .filter(|p| p.metadata.name.as_deref() != Some(config.cluster_id.as_str()))
        .cloned()
        .collect();
    let now = SystemTime::now();
    let mut statuses = status::observe(&state, &members, now);
    // From the hub's own tunnel address, which members route back into their tunnels.
    let source = valid
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(config.cluster_id.as_str()))
        .and_then(assigned_slice)
        .and_then(tunnel_address)
        .map(|address| address.addr());
    status::add_latency(&mut statuses, &members, source, ProbeSettings::default()).await;
    status::record_metrics(metrics, &statuses);
    let failures = writer.write(peers, &members, &statuses, now).await;
    if failures > 0 {
        metrics.sync_errors.inc();
    }
}

/// The approval loop, started again whenever its watch ends; nobody may join as the hub.
async fn approve_forever(client: kube::Client, reserved: Vec<String>) {
    loop {
        match approval::run_reserving(client.clone(), &reserved).await {
            Ok(()) => tracing::warn!("certificate request watch ended; restarting"),
            Err(error) => tracing::warn!(%error, "certificate approval failed; restarting"),
        }
        tokio::time::sleep(Duration::from_secs(5)).await;
    }
}

fn has_finalizer(peer: &Peer) -> bool {
    peer.metadata
        .finalizers
        .as_ref()
        .is_some_and(|f| f.iter().any(|f| f == FINALIZER))
}

async fn pass(
    client: &kube::Client,
    peers: &Api<Peer>,
    config: &HubConfig,
    (own, owner): (&OwnPeer, Option<&Owner>),
    metrics: &Metrics,
    (gateway, last_plan): (Option<&Gateway<AnyDevice>>, &mut Option<TopologyPlan>),
) -> anyhow::Result<Vec<Peer>> {
    publish(peers, own, owner)
        .await
        .context("publish the hub's Peer")?;
    let list = peers
        .list(&ListParams::default())
        .await
        .context("list Peers")?
        .items;
    // One member's failure must not hold back the others: count it, go on, retry next pass.
    let mut failures = 0usize;
    for leaving in list
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_some() && has_finalizer(p))
    {
        if let Err(error) = release(client, peers, leaving, &config.cluster_id).await {
            failures += 1;
            tracing::warn!(
                error = format!("{error:#}"),
                "cannot release a leaving member"
            );
        }
    }
    // A member that has published its Peer holds its credential: its join token is spent.
    for (member, token_id) in grants::used_tokens(client.clone())
        .await
        .context("list members' join tokens")?
    {
        let published = list.iter().any(|p| {
            p.metadata.name.as_deref() == Some(member.as_str())
                && p.metadata.deletion_timestamp.is_none()
        });
        if published {
            match grants::delete_join_token(client.clone(), &member, &token_id).await {
                Ok(()) => tracing::info!(
                    %member, %token_id, "join token deleted: the member holds its credential"
                ),
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%member, %error, "cannot delete the member's join token");
                }
            }
        }
    }
    let mut joined: BTreeSet<String> = grants::joined_members(client.clone())
        .await
        .context("list joined members")?
        .into_iter()
        .collect();
    joined.insert(config.cluster_id.clone());
    let decisions = decide_slices(&list, &config.policy, &joined);
    let mut counts = [0i64; 2];
    let mut own_slice = None;
    let mut valid = Vec::new();
    for decision in &decisions {
        let Some(peer) = list
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(decision.name.as_str()))
        else {
            continue;
        };
        counts[usize::from(decision.outcome.is_ok())] += 1;
        match apply(peers, peer, decision, &config.cluster_id).await {
            Ok(stored) => {
                if decision.name == config.cluster_id {
                    own_slice = assigned_slice(&stored);
                }
                if decision.outcome.is_ok() && stored.metadata.deletion_timestamp.is_none() {
                    valid.push(stored);
                }
            }
            Err(error) => {
                failures += 1;
                tracing::warn!(peer = %decision.name, %error, "cannot record the slice decision");
            }
        }
    }
    for (valid, count) in ["false", "true"].into_iter().zip(counts) {
        metrics
            .peers
            .get_or_create(&ValidLabel {
                valid: valid.to_owned(),
            })
            .set(count);
    }
    metrics.slice_assigned.set(i64::from(own_slice.is_some()));
    if let Some(slice) = own_slice
        && local::write_cluster_subnet(client.clone(), &config.namespace, slice, owner).await?
    {
        tracing::info!(%slice, "cluster slice handed to nauti-ovnmaster");
    }

    let usable = usable_peers(review_peers(&valid, &config.policy, Some(&joined)));
    let resolved = resolve_endpoints(&usable).await;
    let plan = plan_topology(
        &LocalRole {
            cluster_id: config.cluster_id.clone(),
            is_hub: true,
            is_public: true,
        },
        &usable,
        |name| resolved.get(name).copied(),
    );
    if last_plan.as_ref() != Some(&plan) {
        log_plan(&plan);
        metrics
            .wanted_peers
            .set(i64::try_from(plan.peers.len()).unwrap_or(i64::MAX));
        metrics
            .wanted_routes
            .set(i64::try_from(plan.routes.len()).unwrap_or(i64::MAX));
    }
    // Applied on every pass: drift is repaired within one resync.
    if let Some(gateway) = gateway {
        match gateway.apply(&plan).await {
            Ok(applied) => log_applied(gateway.ifname(), &applied),
            Err(error) => {
                failures += 1;
                tracing::warn!(%error, "cannot apply the WireGuard plan");
            }
        }
        // The latency probes go out from this address (its slice's gateway address, which no
        // pod is given): every member routes the hub's slice back into its tunnel.
        if let Some(slice) = own_slice {
            match gateway.ensure_tunnel_address(slice).await {
                Ok(true) => tracing::info!(%slice, ifname = gateway.ifname(), "tunnel address set"),
                Ok(false) => {}
                Err(error) => {
                    failures += 1;
                    tracing::warn!(%error, "cannot set the tunnel's address");
                }
            }
        }
    }
    *last_plan = Some(plan);
    anyhow::ensure!(failures == 0, "{failures} step(s) failed");
    Ok(valid)
}

/// A Peer is being deleted: its member leaves. Revoke the grants, then drop the finalizer.
async fn release(
    client: &kube::Client,
    peers: &Api<Peer>,
    peer: &Peer,
    hub_id: &str,
) -> anyhow::Result<()> {
    let name = peer.metadata.name.clone().unwrap_or_default();
    if name != hub_id {
        grants::revoke(client.clone(), &name)
            .await
            .with_context(|| format!("revoke the grants of member {name}"))?;
        tracing::info!(member = %name, "member left: Peer released, grants revoked");
    }
    let mut released = peer.clone();
    if let Some(finalizers) = released.metadata.finalizers.as_mut() {
        finalizers.retain(|f| f != FINALIZER);
    }
    peers
        .replace(&name, &PostParams::default(), &released)
        .await
        .with_context(|| format!("release Peer {name}"))?;
    Ok(())
}

/// Writes one decision: the finalizer and the slice into the Peer, then `Valid` for the
/// generation that holds them. Returns the Peer as stored. The hub's own Peer gets no
/// finalizer: it has no grants to revoke, and it goes with the hub's Deployment, when no hub
/// is left to release it.
async fn apply(
    peers: &Api<Peer>,
    peer: &Peer,
    decision: &SliceDecision,
    hub_id: &str,
) -> Result<Peer, kube::Error> {
    let name = decision.name.as_str();
    let wanted = decision.wanted_cidrs();
    let mut current = peer.clone();
    let mut changed = false;
    let finalized = name != hub_id;
    if finalized != has_finalizer(&current) {
        let finalizers = current.metadata.finalizers.get_or_insert_with(Vec::new);
        if finalized {
            finalizers.push(FINALIZER.to_owned());
        } else {
            finalizers.retain(|f| f != FINALIZER);
        }
        changed = true;
    }
    if current.spec.cluster_cidrs != wanted {
        current.spec.cluster_cidrs = wanted;
        changed = true;
    }
    if changed {
        current = peers
            .replace(name, &PostParams::default(), &current)
            .await?;
    }
    let (valid, reason, message) = decision.valid_condition();
    let mut conditions = current
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let wanted_condition = new_condition(
        condition::VALID,
        Some(valid),
        reason,
        message.clone(),
        current.metadata.generation,
        Time(jiff::Timestamp::now()),
    );
    if set_condition(&mut conditions, wanted_condition) {
        let patch = serde_json::json!({"status": {"conditions": conditions}});
        current = peers
            .patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
            .await?;
        if valid {
            tracing::info!(peer = name, %message, "Peer valid");
        } else {
            tracing::warn!(peer = name, reason, %message, "Peer refused");
        }
    }
    Ok(current)
}
