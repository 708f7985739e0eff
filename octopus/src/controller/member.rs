//! `octopus member`: a member cluster's controller.
//!
//! At start it reads its WireGuard key from its own cluster (creating it once; then watched, so
//! a key written into the Secret, e.g. by `nautictl rotate-keys`, switches the running tunnel
//! in place and is published in the next pass) and its
//! credential on the hub (joining with the bootstrap token only when it has none, or only an
//! expired one). Then, on every change of the Peers on the hub and every
//! [`RESYNC`](super::RESYNC):
//! 1. publish its own Peer (the hub fills in the slice);
//! 2. once the hub's `Valid=True` covers it, write its slice into the ConfigMap
//!    `nauti-cluster` (key `cluster-subnet`) of its own cluster, for `nauti-ovnmaster`;
//! 3. work out the WireGuard plan from the Peers the hub found valid, log it when it changes
//!    and export its size as metrics; with `--wireguard-interface`, apply it to the in-process
//!    WireGuard device, routes and forwarding ([`crate::gateway`]) on every pass.
//!
//! The certificate is renewed two thirds into its life, under the member's own identity.
//!
//! Replicas elect a leader on a Lease in the member's own cluster (`--lease-name`, default
//! `octopus-member`): only the holder reads the key, joins or renews, publishes, syncs services
//! and runs the tunnel. A standby waits, its `/readyz` answering 503 with the holder's name;
//! the key and credential Secrets are shared, so a standby that takes over keeps the cluster's
//! public key and credential (no new join).

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use anyhow::{Context as _, bail};
use ipnet::IpNet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams};
use nauti_api::Peer;
use nauti_api::daemon::election::LeaseSettings;
use nauti_api::daemon::owner::{Owner, OwnerArgs, resolve_owner};
use nauti_api::daemon::start_endpoints;
use nauti_api::peer::condition;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::active::{self, ActivePod, active_pod};
use super::claim::GatewayClaim;
use super::leadership::{Replica, lead_on_lease};
use super::metrics::{Metrics, ValidLabel};
use super::publish::{OwnPeer, publish};
use super::status;
use super::{connect, local, next_pass, pause, watch_peers};
use crate::core::{LocalRole, SlicePolicy, TopologyPlan, plan_topology, review_peers};
use crate::gateway::file::log_plan;
use crate::gateway::{Gateway, GatewayConfig, log_applied, resolve_endpoints, usable_peers};
use crate::hub::assign::assigned_slice;
use crate::join::credential::bootstrap_client;
use crate::join::csr::{CsrError, request_certificate};
use crate::join::{BootstrapToken, Credential};
use crate::wg::AnyDevice;

/// How long a join or renewal waits for the hub to approve and sign.
const CERTIFICATE_WAIT: Duration = Duration::from_secs(120);
/// Pause between join attempts the hub refused or did not answer.
const JOIN_RETRY: Duration = Duration::from_secs(3);
/// Pause before trying a failed renewal again.
const RENEW_RETRY: Duration = Duration::from_secs(30);
/// A stored credential this close to its expiry is not used; the member joins again.
const EXPIRY_MARGIN_SECS: i64 = 60;

/// What `octopus member` runs with.
#[derive(Debug, Clone)]
pub struct MemberConfig {
    /// Kubeconfig of the member's own cluster; `None`: in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace in the member's cluster of its key, credential and slice ConfigMap.
    pub namespace: String,
    /// The hub's API server URL.
    pub hub_url: String,
    /// The hub API server's CA (PEM).
    pub hub_ca_pem: String,
    /// Namespace of the Peers on the hub.
    pub hub_namespace: String,
    /// The token to join with, when the member has no credential yet.
    pub token: Option<BootstrapToken>,
    /// This cluster's ID.
    pub cluster_id: String,
    /// Secret holding the credential on the hub.
    pub credential_secret: String,
    /// Secret holding the gateway's WireGuard key.
    pub key_secret: String,
    /// Where other clusters reach this gateway, if anywhere.
    pub endpoint: Option<String>,
    /// The gateway's UDP port.
    pub port: u16,
    /// True when every other cluster can dial this one.
    pub is_public: bool,
    /// A specific slice to ask for.
    pub requested: Option<IpNet>,
    /// The slice policy (the hub's), to judge Peers by.
    pub policy: SlicePolicy,
    /// Lifetime asked for the certificate.
    pub credential_lifetime: Duration,
    /// Address of `/metrics`, `/healthz`, `/readyz`.
    pub metrics_addr: SocketAddr,
    /// Run the tunnel here and apply the plan to it; `None` only logs the plan.
    pub gateway: Option<GatewayConfig>,
    /// With the tunnel: make this pod the cluster's gateway (the route of its gateway router).
    pub claim: Option<super::claim::ClaimConfig>,
    /// Multi-cluster services: where the cluster's OVN northbound database is.
    pub services: super::services::ServicesConfig,
    /// The Lease (in the member's own cluster) replicas elect their leader on.
    pub lease: LeaseSettings,
    /// This replica's pod, labelled [`super::active::ACTIVE_LABEL`] while it leads and runs
    /// the tunnel.
    pub pod_name: Option<String>,
    /// The Deployment that owns the Lease, the key and the slice ConfigMap.
    pub owner: OwnerArgs,
}

#[derive(Default)]
struct Seen {
    slice: Option<IpNet>,
    refusal: Option<String>,
    plan: Option<TopologyPlan>,
}

/// Runs the member until `shutdown`. Replicas elect a leader on the Lease; a standby only
/// waits, and a leader that loses the lease stops (its pod restarts as a standby), so never
/// two replicas publish or run the tunnel at once.
pub async fn run(config: MemberConfig, shutdown: CancellationToken) -> anyhow::Result<()> {
    let metrics = Arc::new(Metrics::new(&standby_reason(&config.lease.name, None)));
    let _endpoints = start_endpoints(config.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .with_context(|| format!("serve --metrics-addr {}", config.metrics_addr))?;
    let local_cluster = connect(config.kubeconfig.as_deref()).await?;
    // A healthy standby is ready: the gateway Service selects the leader by its label.
    let active = active_pod(
        &local_cluster,
        &config.namespace,
        config.pod_name.as_deref(),
        config.gateway.is_some(),
    )
    .await;
    metrics.set_ready();
    let owner = resolve_owner(
        &config.owner,
        local_cluster.clone(),
        &config.namespace,
        &shutdown,
    )
    .await;
    let work = lead(
        &config,
        local_cluster.clone(),
        &metrics,
        active.as_ref(),
        owner.as_ref(),
        &shutdown,
    );
    let replica = Replica {
        client: local_cluster.clone(),
        lease: &config.lease,
        owner: owner.as_ref(),
        metrics: &metrics,
        active: active.as_ref(),
    };
    lead_on_lease(
        replica,
        report_holder(&local_cluster, &config.lease),
        "not joined yet",
        &shutdown,
        work,
    )
    .await
}

/// Why a standby is not ready: it waits for the Lease, held by `holder` if anyone.
fn standby_reason(lease: &str, holder: Option<&str>) -> String {
    match holder.filter(|h| !h.is_empty()) {
        Some(holder) => format!("standby: the lease {lease} is held by {holder}"),
        None => format!("standby: waiting for the lease {lease}"),
    }
}

/// While standing by (ready: a healthy standby), logs the Lease's holder whenever it changes,
/// looking at every renew interval.
async fn report_holder(local_cluster: &kube::Client, lease: &LeaseSettings) {
    let leases: Api<Lease> = Api::namespaced(local_cluster.clone(), &lease.namespace);
    let mut last = None;
    loop {
        match leases.get_opt(&lease.name).await {
            Ok(current) => {
                let holder = current
                    .and_then(|l| l.spec)
                    .and_then(|spec| spec.holder_identity);
                let reason = standby_reason(&lease.name, holder.as_deref());
                if last.as_ref() != Some(&reason) {
                    tracing::info!("{reason}");
                    last = Some(reason);
                }
            }
            Err(error) => tracing::debug!(%error, "cannot read the lease's holder"),
        }
        tokio::time::sleep(lease.renew_interval).await;
    }
}

/// What the leader runs: the key, the credential, the tunnel and the passes over the Peers.
async fn lead(
    config: &MemberConfig,
    local_cluster: kube::Client,
    metrics: &Metrics,
    active: Option<&ActivePod>,
    owner: Option<&Owner>,
    shutdown: &CancellationToken,
) -> anyhow::Result<()> {
    let mut key = local::ensure_wireguard_key(
        local_cluster.clone(),
        &config.namespace,
        &config.key_secret,
        owner,
    )
    .await?;
    // A rotation wakes a pass as a Peer change does.
    let notify = Arc::new(Notify::new());
    let (_key_watch, mut key_view) = local::watch_key_secret(
        local_cluster.clone(),
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
    // Traffic needs the route before anything from the hub: a takeover during a hub outage
    // still moves it.
    let mut claim = config.claim.clone().map(GatewayClaim::new);
    assert_claim(claim.as_mut(), shutdown).await;
    // The tunnel runs here: the gateway Service (a public member's) may send peers' packets
    // to this pod; retried on each pass until done.
    let mut marked = match active {
        Some(active) => active::take_over(active).await,
        None => true,
    };
    let mut own = OwnPeer {
        cluster_id: config.cluster_id.clone(),
        endpoint: config.endpoint.clone(),
        port: config.port,
        public_key: key.public,
        is_hub: false,
        is_public: config.is_public,
        requested: config.requested,
    };
    let Some(mut credential) = obtain_credential(&local_cluster, config, shutdown).await? else {
        return Ok(());
    };
    let mut seen = Seen::default();
    loop {
        let validity = credential.validity()?;
        metrics.credential_expiry.set(validity.not_after);
        let hub = credential.client().await?;
        let peers: Api<Peer> = Api::namespaced(hub.clone(), &config.hub_namespace);
        let _watch = watch_peers(peers.clone(), notify.clone());
        // Exports and imports run under this credential; a renewal restarts them.
        let _services = super::services::spawn(
            super::services::SyncContext {
                local: local_cluster.clone(),
                hub: hub.clone(),
                cluster_id: config.cluster_id.clone(),
                namespace: config.namespace.clone(),
                hub_namespace: config.hub_namespace.clone(),
                clusterset: config.policy.clusterset(),
                config: config.services.clone(),
            },
            shutdown,
        );
        let renew_in =
            u64::try_from(validity.renew_at() - jiff::Timestamp::now().as_second()).unwrap_or(0);
        let renewal = tokio::time::sleep(Duration::from_secs(renew_in));
        tokio::pin!(renewal);
        tracing::info!(cluster = %config.cluster_id, public_key = %key.public, renew_in_secs = renew_in, "member running");
        loop {
            metrics.syncs.inc();
            assert_claim(claim.as_mut(), shutdown).await;
            if !marked && let Some(active) = active {
                marked = active::take_over(active).await;
            }
            if local::follow_key_secret(&mut key_view, &mut key, gateway.as_ref()) {
                own.public_key = key.public;
            }
            let pass = sync(
                (&local_cluster, owner),
                &peers,
                config,
                &own,
                metrics,
                &mut seen,
                gateway.as_ref(),
            );
            match pass.await {
                Ok(()) => metrics.set_ready(),
                Err(error) => {
                    metrics.sync_errors.inc();
                    tracing::warn!(
                        error = format!("{error:#}"),
                        "pass over the Peers failed; retried"
                    );
                }
            }
            tokio::select! {
                () = &mut renewal => match renew(&local_cluster, &hub, config, &credential).await {
                    Ok(renewed) => {
                        credential = renewed;
                        break;
                    }
                    Err(error) => {
                        tracing::warn!(error = format!("{error:#}"), "certificate renewal failed; retrying");
                        renewal.as_mut().reset(tokio::time::Instant::now() + RENEW_RETRY);
                    }
                },
                go = next_pass(&notify, shutdown) => if !go { return Ok(()) },
            }
        }
    }
}

/// Sets the gateway route through this pod when it runs the tunnel; a failure is logged and
/// retried on the next pass.
async fn assert_claim(claim: Option<&mut GatewayClaim>, shutdown: &CancellationToken) {
    if let Some(claim) = claim
        && let Err(error) = claim.assert(shutdown).await
    {
        tracing::warn!(%error, "cannot make this pod the cluster's gateway; retrying");
    }
}

/// The stored credential, or a new one from joining. `None` on shutdown.
async fn obtain_credential(
    local_cluster: &kube::Client,
    config: &MemberConfig,
    shutdown: &CancellationToken,
) -> anyhow::Result<Option<Credential>> {
    let stored = local::load_credential(
        local_cluster.clone(),
        &config.namespace,
        &config.credential_secret,
    )
    .await?;
    if let Some(credential) = stored {
        let validity = credential.validity()?;
        if validity.not_after > jiff::Timestamp::now().as_second() + EXPIRY_MARGIN_SECS {
            tracing::info!(secret = %config.credential_secret, "using the stored credential");
            return Ok(Some(credential));
        }
        tracing::warn!(secret = %config.credential_secret, "the stored credential has expired; joining again");
    }
    let Some(token) = &config.token else {
        bail!(
            "no credential in Secret {}/{} and no bootstrap token (--token-file or OCTOPUS_BOOTSTRAP_TOKEN)",
            config.namespace,
            config.credential_secret
        );
    };
    loop {
        let boot = bootstrap_client(&config.hub_url, &config.hub_ca_pem, token).await?;
        match request_certificate(
            boot,
            &config.cluster_id,
            config.credential_lifetime,
            CERTIFICATE_WAIT,
        )
        .await
        {
            Ok((key_pem, cert_pem)) => {
                let credential = Credential {
                    server: config.hub_url.clone(),
                    ca_pem: config.hub_ca_pem.clone(),
                    cert_pem,
                    key_pem,
                };
                local::store_credential(
                    local_cluster.clone(),
                    &config.namespace,
                    &config.credential_secret,
                    &credential,
                )
                .await?;
                tracing::info!(cluster = %config.cluster_id, hub = %config.hub_url, "joined the hub");
                return Ok(Some(credential));
            }
            Err(CsrError::Api(kube::Error::Api(status))) if status.code == 401 => {
                bail!(
                    "the hub refused bootstrap token {} (expired, deleted or never issued)",
                    token.id()
                );
            }
            Err(error) => tracing::warn!(%error, "join not granted yet; retrying"),
        }
        if !pause(JOIN_RETRY, shutdown).await {
            return Ok(None);
        }
    }
}

async fn renew(
    local_cluster: &kube::Client,
    hub: &kube::Client,
    config: &MemberConfig,
    current: &Credential,
) -> anyhow::Result<Credential> {
    let (key_pem, cert_pem) = request_certificate(
        hub.clone(),
        &config.cluster_id,
        config.credential_lifetime,
        CERTIFICATE_WAIT,
    )
    .await?;
    let renewed = Credential {
        cert_pem,
        key_pem,
        ..current.clone()
    };
    local::store_credential(
        local_cluster.clone(),
        &config.namespace,
        &config.credential_secret,
        &renewed,
    )
    .await?;
    tracing::info!("certificate renewed");
    Ok(renewed)
}

/// `local` is the member's own cluster and the owner of what octopus creates there.
async fn sync(
    (local_cluster, owner): (&kube::Client, Option<&Owner>),
    peers: &Api<Peer>,
    config: &MemberConfig,
    own: &OwnPeer,
    metrics: &Metrics,
    seen: &mut Seen,
    gateway: Option<&Gateway<AnyDevice>>,
) -> anyhow::Result<()> {
    let list = peers
        .list(&ListParams::default())
        .await
        .context("list Peers on the hub")?
        .items;
    let mine = list
        .iter()
        .find(|p| p.metadata.name.as_deref() == Some(config.cluster_id.as_str()));
    match mine {
        Some(p) if p.metadata.deletion_timestamp.is_some() => {
            tracing::warn!("this cluster's Peer is being deleted on the hub (leaving?)");
            return Ok(());
        }
        Some(p) if own.matches(p) => {}
        _ => {
            // On the hub: no owner there.
            publish(peers, own, None)
                .await
                .context("publish this cluster's Peer")?;
        }
    }
    match mine.and_then(assigned_slice) {
        Some(slice) => {
            metrics.slice_assigned.set(1);
            seen.refusal = None;
            if seen.slice != Some(slice) {
                if local::write_cluster_subnet(
                    local_cluster.clone(),
                    &config.namespace,
                    slice,
                    owner,
                )
                .await?
                {
                    tracing::info!(%slice, "cluster slice handed to nauti-ovnmaster");
                }
                seen.slice = Some(slice);
            }
        }
        None => {
            metrics.slice_assigned.set(0);
            let valid = mine
                .and_then(|p| p.status.as_ref())
                .and_then(|s| s.condition(condition::VALID))
                .filter(|c| c.status == "False")
                .map(|c| format!("{}: {}", c.reason, c.message));
            if valid.is_some() && valid != seen.refusal {
                tracing::warn!(
                    reason = valid.as_deref().unwrap_or_default(),
                    "the hub refused this cluster's Peer"
                );
            }
            seen.refusal = valid;
        }
    }

    let (valid, refused): (Vec<Peer>, Vec<Peer>) =
        list.into_iter().partition(|p| assigned_slice(p).is_some());
    for (label, count) in [("true", valid.len()), ("false", refused.len())] {
        metrics
            .peers
            .get_or_create(&ValidLabel {
                valid: label.to_owned(),
            })
            .set(i64::try_from(count).unwrap_or(i64::MAX));
    }
    let usable = usable_peers(review_peers(&valid, &config.policy, None));
    let resolved = resolve_endpoints(&usable).await;
    let plan = plan_topology(
        &LocalRole {
            cluster_id: config.cluster_id.clone(),
            is_hub: false,
            is_public: config.is_public,
        },
        &usable,
        |name| resolved.get(name).copied(),
    );
    if seen.plan.as_ref() != Some(&plan) {
        log_plan(&plan);
        metrics
            .wanted_peers
            .set(i64::try_from(plan.peers.len()).unwrap_or(i64::MAX));
        metrics
            .wanted_routes
            .set(i64::try_from(plan.routes.len()).unwrap_or(i64::MAX));
    }
    // Applied on every pass, not only on a change: drift (a route deleted by hand, a peer
    // removed over UAPI) is repaired within one resync.
    if let Some(gateway) = gateway {
        let applied = gateway
            .apply(&plan)
            .await
            .context("apply the WireGuard plan")?;
        log_applied(gateway.ifname(), &applied);
        // This member's view of its tunnels, as metrics (the hub writes the Peers' status).
        match gateway.state() {
            Ok(state) => status::record_metrics(
                metrics,
                &status::observe(&state, &valid, std::time::SystemTime::now()),
            ),
            Err(error) => tracing::warn!(%error, "cannot read the tunnel's counters"),
        }
    }
    seen.plan = Some(plan);
    Ok(())
}

/// What `octopus member leave` runs with.
#[derive(Debug, Clone)]
pub struct LeaveConfig {
    /// Kubeconfig of the member's own cluster; `None`: in-cluster.
    pub kubeconfig: Option<PathBuf>,
    /// Namespace of the credential Secret.
    pub namespace: String,
    /// Namespace of the Peers on the hub.
    pub hub_namespace: String,
    /// This cluster's ID.
    pub cluster_id: String,
    /// Secret holding the credential.
    pub credential_secret: String,
    /// How long to wait for the hub to release the Peer, and for the pods of
    /// `stop_deployment` to go.
    pub timeout: Duration,
    /// A Deployment (in `namespace`) scaled to zero, and its pods waited out, before the Peer
    /// is deleted: the running `octopus member` would otherwise publish the Peer again.
    pub stop_deployment: Option<String>,
}

/// Leaves the cluster set: with `stop_deployment`, first stops the member's Deployment (see
/// [`stop_deployment`]); then deletes this cluster's Peer on the hub, waits until the hub has
/// revoked the member's grants and released the Peer, then deletes the stored credential. The
/// WireGuard key stays, so joining again publishes the same public key.
pub async fn leave(config: LeaveConfig) -> anyhow::Result<()> {
    let local_cluster = connect(config.kubeconfig.as_deref()).await?;
    if let Some(deployment) = &config.stop_deployment {
        stop_deployment(
            local_cluster.clone(),
            &config.namespace,
            deployment,
            config.timeout,
        )
        .await?;
    }
    let credential = local::load_credential(
        local_cluster.clone(),
        &config.namespace,
        &config.credential_secret,
    )
    .await?
    .with_context(|| {
        format!(
            "no credential in Secret {}/{}: this cluster has not joined",
            config.namespace, config.credential_secret
        )
    })?;
    let peers: Api<Peer> = Api::namespaced(credential.client().await?, &config.hub_namespace);
    match peers
        .delete(&config.cluster_id, &DeleteParams::default())
        .await
    {
        Ok(_) => {}
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => return Err(e).context("delete this cluster's Peer on the hub"),
    }
    let deadline = tokio::time::Instant::now() + config.timeout;
    while peers
        .get_opt(&config.cluster_id)
        .await
        .context("read this cluster's Peer on the hub")?
        .is_some()
    {
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the hub did not release Peer {} within {:?}; is `octopus hub` running?",
                config.cluster_id,
                config.timeout
            );
        }
        tokio::time::sleep(Duration::from_millis(250)).await;
    }
    local::delete_secret(local_cluster, &config.namespace, &config.credential_secret).await?;
    tracing::info!(cluster = %config.cluster_id, "left the cluster set");
    Ok(())
}

/// Scales Deployment `namespace/name` to zero replicas through its `scale` subresource (the
/// only write the leave's RBAC allows on it) and waits, at most `timeout`, until none of its
/// pods is left. A missing Deployment has nothing to stop.
async fn stop_deployment(
    client: kube::Client,
    namespace: &str,
    name: &str,
    timeout: Duration,
) -> anyhow::Result<()> {
    let deployments: Api<Deployment> = Api::namespaced(client.clone(), namespace);
    let Some(deployment) = deployments
        .get_opt(name)
        .await
        .with_context(|| format!("read Deployment {namespace}/{name}"))?
    else {
        tracing::info!(deployment = %name, %namespace, "no such Deployment: nothing to stop");
        return Ok(());
    };
    let match_labels = deployment.spec.selector.match_labels.unwrap_or_default();
    let selector = label_selector(&match_labels).with_context(|| {
        format!(
            "Deployment {namespace}/{name} has no spec.selector.matchLabels: its pods cannot be told apart"
        )
    })?;
    let zero = serde_json::json!({ "spec": { "replicas": 0 } });
    match deployments
        .patch_scale(name, &PatchParams::default(), &Patch::Merge(&zero))
        .await
    {
        Ok(_) => {}
        // Deleted between the read and the scale: nothing left to stop.
        Err(kube::Error::Api(status)) if status.code == 404 => {}
        Err(e) => {
            return Err(e)
                .with_context(|| format!("scale Deployment {namespace}/{name} to 0 replicas"));
        }
    }
    tracing::info!(deployment = %name, %namespace, "scaled to 0 replicas");

    let pods: Api<Pod> = Api::namespaced(client, namespace);
    let listing = ListParams::default().labels(&selector);
    let deadline = tokio::time::Instant::now() + timeout;
    let mut reported: Option<Vec<String>> = None;
    loop {
        let listed = pods.list(&listing).await.with_context(|| {
            format!("list the pods of Deployment {namespace}/{name} ({selector})")
        })?;
        let left = remaining_pods(&listed.items);
        if left.is_empty() {
            break;
        }
        if reported.as_ref() != Some(&left) {
            tracing::info!(
                deployment = %name,
                %namespace,
                %selector,
                pods = ?left,
                "waiting for the Deployment's pods to stop"
            );
            reported = Some(left.clone());
        }
        if tokio::time::Instant::now() >= deadline {
            bail!(
                "the pods {left:?} of Deployment {namespace}/{name} did not stop within {timeout:?}"
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }
    tracing::info!(deployment = %name, %namespace, "no pod of the Deployment is left");
    Ok(())
}

/// The label selector (`k=v,k2=v2`) for `match_labels`; `None` for no labels, which would
/// select every pod of the namespace (the leave's own among them).
fn label_selector(match_labels: &BTreeMap<String, String>) -> Option<String> {
    if match_labels.is_empty() {
        return None;
    }
    let pairs: Vec<String> = match_labels
        .iter()
        .map(|(key, value)| format!("{key}={value}"))
        .collect();
    Some(pairs.join(","))
}

/// The names of the pods that may still run the member: every pod, terminating ones too,
/// except those that have finished (`Succeeded` or `Failed`: their containers are gone, and a
/// scale-down does not delete them).
fn remaining_pods(pods: &[Pod]) -> Vec<String> {
    pods.iter()
        .filter(|pod| {
            let phase = pod
                .status
                .as_ref()
                .and_then(|status| status.phase.as_deref());
            !matches!(phase, Some("Succeeded" | "Failed"))
        })
        .map(|pod| pod.metadata.name.clone().unwrap_or_default())
        .collect()
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::api::core::v1::{Pod, PodStatus};
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};

    use super::{label_selector, remaining_pods, standby_reason};

    #[test]
    fn the_selector_joins_every_match_label() {
        let labels = BTreeMap::from([
            (
                "app.kubernetes.io/instance".to_owned(),
                "nauti-agent".to_owned(),
            ),
            (
                "app.kubernetes.io/component".to_owned(),
                "octopus-member".to_owned(),
            ),
        ]);
        assert_eq!(
            label_selector(&labels).as_deref(),
            Some(
                "app.kubernetes.io/component=octopus-member,app.kubernetes.io/instance=nauti-agent"
            )
        );
        assert_eq!(
            label_selector(&BTreeMap::from([(
                "app".to_owned(),
                "octopus-member".to_owned()
            )]))
            .as_deref(),
            Some("app=octopus-member")
        );
    }

    #[test]
    fn no_match_labels_selects_nothing_rather_than_every_pod() {
        assert_eq!(label_selector(&BTreeMap::new()), None);
    }

    fn pod(name: &str, phase: Option<&str>, terminating: bool) -> Pod {
        Pod {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                deletion_timestamp: terminating.then_some(Time(jiff::Timestamp::UNIX_EPOCH)),
                ..Default::default()
            },
            status: phase.map(|phase| PodStatus {
                phase: Some(phase.to_owned()),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn running_pending_and_terminating_pods_remain_finished_ones_do_not() {
        let pods = [
            pod("running", Some("Running"), false),
            pod("terminating", Some("Running"), true),
            pod("pending", Some("Pending"), false),
            pod("new", None, false),
            pod("succeeded", Some("Succeeded"), false),
            pod("failed", Some("Failed"), true),
        ];
        assert_eq!(
            remaining_pods(&pods),
            ["running", "terminating", "pending", "new"]
        );
        assert!(remaining_pods(&[]).is_empty());
        assert!(remaining_pods(&pods[4..]).is_empty());
    }

    #[test]
    fn a_standby_names_the_lease_holder() {
        assert_eq!(
            standby_reason("octopus-member", Some("gw-0_1a2b3c4d")),
            "standby: the lease octopus-member is held by gw-0_1a2b3c4d"
        );
        for free in [None, Some("")] {
            assert_eq!(
                standby_reason("octopus-member", free),
                "standby: waiting for the lease octopus-member"
            );
        }
    }
}
