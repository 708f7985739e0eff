//! The import controller: every cluster's exports, read from the hub, kept in this cluster.
//!
//! It watches every member's exports on the hub (the `ServiceImport`s and EndpointSlices in the
//! `nauti-member-<id>` namespaces, which every member may read), the Peers (for each cluster's
//! slice), and in this cluster the imports it keeps, the namespaces and the ServiceExports. On
//! every change it merges the exports of each name ([`plan_imports`]) and keeps, in the
//! Service's namespace (when it exists here), one `ServiceImport` and a copy of each exporting
//! cluster's EndpointSlices, labelled as crossdns reads them. An endpoint outside its
//! cluster's slice is never copied. The `Conflict` condition goes on this cluster's own
//! ServiceExports.
//!
//! With `--ovn-nb`, each `ClusterSetIP` import's address is made to work on the cluster's
//! logical switch: one OVN load balancer per protocol balances `clusterset-IP:port` over the
//! ready endpoints copied here ([`plan_load_balancers`]); the ones no import wants any more are
//! removed. Only load balancers carrying octopus's `nauti.io/owner` are ever touched.
//!
//! While the hub cannot be reached the watches keep what they last saw, so nothing here is
//! removed; a name goes away only when the hub no longer holds any export of it.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::Namespace;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use nauti_api::conditions::{new_condition, set_condition};
use nauti_api::mcs::{
    ClusterStatus, EndpointSliceObjects, LABEL_MANAGED_BY, LABEL_SERVICE_NAME,
    LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI, ServiceExport, ServiceExportStatus,
    ServiceImportStatus, export_condition, import_condition,
};
use nauti_api::{Peer, ServiceImport};
use nauti_ovn::{Client, ClientConfig, LoadBalancer, Northbound};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info, info_span, warn};

use super::exports::same_slice;
use super::services::{
    CONFLICT_FIELD_MANAGER, FIELD_MANAGER, Keys, REFILL_AT, RESYNC, RETRY, SyncContext,
    WRITE_CONCURRENCY, WorkQueue, all_ready, first_ip, gone_is_fine, spawn_keyed_store,
};
use crate::core::mcs::hub::{hub_export, hub_object_key, import_spec, local_slice_name};
use crate::core::mcs::{
    LB_OWNER, PlannedImport, ServiceKey, admitted, plan_imports, plan_load_balancers,
};
use crate::hub::assign::assigned_slice;

struct Stores {
    hub_imports: Store<ServiceImport>,
    hub_slices: Store<EndpointSlice>,
    peers: Store<Peer>,
    imports: Store<ServiceImport>,
    slices: Store<EndpointSlice>,
    namespaces: Store<PartialObjectMeta<Namespace>>,
    exports: Store<ServiceExport>,
}

impl Stores {
    async fn ready(&self) -> bool {
        self.hub_imports.wait_until_ready().await.is_ok()
            && self.hub_slices.wait_until_ready().await.is_ok()
            && self.peers.wait_until_ready().await.is_ok()
            && self.imports.wait_until_ready().await.is_ok()
            && self.slices.wait_until_ready().await.is_ok()
            && self.namespaces.wait_until_ready().await.is_ok()
            && self.exports.wait_until_ready().await.is_ok()
    }
}

/// How long the load balancers wait for a burst of imports to end before one write.
const BALANCE_SETTLE: std::time::Duration = std::time::Duration::from_millis(500);

fn managed_by_nauti() -> watcher::Config {
    watcher::Config::default().labels(&format!("{LABEL_MANAGED_BY}={MANAGED_BY_NAUTI}"))
}

/// The northbound database the clusterset IPs' load balancers go to, connected on first use
/// (the client reconnects by itself afterwards).
struct Balancers {
    nb: Option<Northbound>,
}

impl Balancers {
    /// The northbound database; `None` without `--ovn-nb`.
    async fn connect(&mut self, context: &SyncContext) -> anyhow::Result<Option<&Northbound>> {
        let Some(endpoint) = context.config.ovn_nb.clone() else {
            return Ok(None);
        };
        if self.nb.is_none() {
            let mut config = ClientConfig::new(endpoint.clone());
            config.connect_timeout = std::time::Duration::from_secs(5);
            config.tls = context.config.ovn_nb_tls.clone();
            let client = Client::connect(config)
                .await
                .with_context(|| format!("connect to the OVN northbound database {endpoint}"))?;
            info!(%endpoint, "connected to the OVN northbound database for clusterset IPs");
            self.nb = Some(Northbound::new(client));
        }
        Ok(self.nb.as_ref())
    }
}

/// The cluster's logical switch, named as `nauti-ovnmaster` names it unless configured.
fn switch_name(context: &SyncContext) -> String {
    context
        .config
        .logical_switch
        .clone()
        .unwrap_or_else(|| format!("nauti-{}", context.cluster_id))
}

fn hub_key<K: kube::Resource>(object: &K) -> Vec<ServiceKey> {
    hub_object_key(object.meta())
        .map(|(k, _)| k)
        .into_iter()
        .collect()
}

fn object_key(meta: &ObjectMeta) -> Option<ServiceKey> {
    Some(ServiceKey::new(meta.namespace.clone()?, meta.name.clone()?))
}

/// The service an imported slice belongs to, by its label.
fn service_of_slice(slice: &EndpointSlice) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        slice.metadata.namespace.clone()?,
        slice.labels().get(LABEL_SERVICE_NAME)?.clone(),
    ))
}

/// Runs the import controller until `stop`.
pub async fn run(context: SyncContext, stop: CancellationToken) {
    let queue = Arc::new(WorkQueue::default());
    let local = &context.local;
    let hub = &context.hub;
    let stores = Stores {
        hub_imports: spawn_keyed_store(
            Api::all(hub.clone()),
            managed_by_nauti(),
            "hub serviceimports",
            &queue,
            Keys::Of(hub_key::<ServiceImport>),
            &stop,
        ),
        hub_slices: spawn_keyed_store(
            Api::all(hub.clone()),
            managed_by_nauti(),
            "hub endpointslices",
            &queue,
            Keys::Of(hub_key::<EndpointSlice>),
            &stop,
        ),
        peers: spawn_keyed_store(
            Api::namespaced(hub.clone(), &context.hub_namespace),
            watcher::Config::default(),
            "hub peers",
            &queue,
            Keys::All,
            &stop,
        ),
        imports: spawn_keyed_store(
            Api::all(local.clone()),
            managed_by_nauti(),
            "serviceimports",
            &queue,
            Keys::DeletedOf(|i: &ServiceImport| object_key(&i.metadata).into_iter().collect()),
            &stop,
        ),
        slices: spawn_keyed_store(
            Api::all(local.clone()),
            managed_by_nauti(),
            "imported endpointslices",
            &queue,
            Keys::DeletedOf(|s: &EndpointSlice| service_of_slice(s).into_iter().collect()),
            &stop,
        ),
        namespaces: spawn_keyed_store(
            Api::all(local.clone()),
            watcher::Config::default(),
            "namespaces",
            &queue,
            Keys::All,
            &stop,
        ),
        exports: spawn_keyed_store(
            Api::all(local.clone()),
            watcher::Config::default(),
            "serviceexports",
            &queue,
            Keys::Of(|e: &ServiceExport| object_key(&e.metadata).into_iter().collect()),
            &stop,
        ),
    };
    // Until every list is complete nothing is decided: a member starting while the hub is
    // down keeps the imports it has.
    if !all_ready(stores.ready(), &stop).await {
        return;
    }
    info!("importing the cluster set's services");
    if context.config.ovn_nb.is_none() {
        warn!("no --ovn-nb: clusterset IPs get no load balancer");
    }
    let balance = Notify::new();
    tokio::join!(
        reconcile_all(&context, &stores, &queue, &balance, &stop),
        balance_all(&context, &stores, &balance, &stop),
    );
}

/// Reconciles the services the queue hands out, [`WRITE_CONCURRENCY`] at a time, until `stop`.
async fn reconcile_all(
    context: &SyncContext,
    stores: &Stores,
    queue: &Arc<WorkQueue>,
    balance: &Notify,
    stop: &CancellationToken,
) {
    queue.resync();
    let mut view: Option<Arc<View>> = None;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut resync_at = tokio::time::Instant::now() + RESYNC;
    loop {
        if queue.take_resync() {
            resync_at = tokio::time::Instant::now() + RESYNC;
            for key in all_keys(stores) {
                queue.add(key);
            }
            if let Err(error) = remove_unreadable(context, stores).await {
                warn!(
                    error = format!("{error:#}"),
                    "imported objects not removed; retrying"
                );
            }
            balance.notify_one();
        }
        let free = WRITE_CONCURRENCY - in_flight.len();
        if queue.has_waiting() && (in_flight.is_empty() || free >= REFILL_AT) {
            // Taken before the view is read: a change to a key after this reconciles it again.
            let keys = queue.take(free);
            let generation = queue.generation();
            let current = match &view {
                Some(v) if v.generation == generation => v.clone(),
                _ => {
                    let built = Arc::new(build_view(context, stores, generation));
                    view = Some(built.clone());
                    built
                }
            };
            for key in keys {
                let view = current.clone();
                let span = info_span!("import", service = %key);
                in_flight.push(async move {
                    let result = reconcile(context, stores, &view, &key)
                        .instrument(span)
                        .await;
                    (key, result)
                });
            }
        }
        tokio::select! {
            () = stop.cancelled() => return,
            Some((key, result)) = in_flight.next(), if !in_flight.is_empty() => {
                queue.done(&key);
                balance.notify_one();
                if let Err(error) = result {
                    warn!(service = %key, error = format!("{error:#}"), "import not written; retried");
                    queue.retry_later(key, RETRY, stop);
                }
            }
            () = queue.notified() => {}
            () = tokio::time::sleep_until(resync_at) => queue.resync(),
        }
    }
}

/// Keeps the clusterset IPs' load balancers in line with the imports, once per burst of
/// reconciles, until `stop`.
async fn balance_all(
    context: &SyncContext,
    stores: &Stores,
    balance: &Notify,
    stop: &CancellationToken,
) {
    let mut balancers = Balancers { nb: None };
    loop {
        tokio::select! {
            () = stop.cancelled() => return,
            () = balance.notified() => {}
        }
        // A burst of imports makes one write.
        tokio::select! {
            () = stop.cancelled() => return,
            () = tokio::time::sleep(BALANCE_SETTLE) => {}
        }
        let view = build_view(context, stores, 0);
        let wanted: Vec<LoadBalancer> = view
            .plan
            .iter()
            .filter(|(key, _)| view.present.contains(&key.namespace))
            .flat_map(|(key, planned)| {
                let imported = view.wanted_slices(key);
                plan_load_balancers(
                    key,
                    &import_spec(&planned.merged.properties, &planned.ips),
                    &imported.into_iter().map(|(_, s)| s).collect::<Vec<_>>(),
                )
            })
            .collect();
        if let Err(error) = keep_load_balancers(context, &mut balancers, &wanted).await {
            warn!(
                error = format!("{error:#}"),
                "clusterset IP load balancers not written; retried"
            );
            tokio::select! {
                () = stop.cancelled() => return,
                () = tokio::time::sleep(RETRY) => balance.notify_one(),
            }
        }
    }
}

/// Every service the import controller has something to say about.
fn all_keys(stores: &Stores) -> BTreeSet<ServiceKey> {
    let mut keys: BTreeSet<ServiceKey> = stores
        .hub_imports
        .state()
        .iter()
        .flat_map(|i| hub_key(i.as_ref()))
        .collect();
    keys.extend(
        stores
            .imports
            .state()
            .iter()
            .filter_map(|i| object_key(&i.metadata)),
    );
    keys.extend(
        stores
            .slices
            .state()
            .iter()
            .filter_map(|s| service_of_slice(s)),
    );
    keys
}

/// Removes the imported slices that name no service.
async fn remove_unreadable(context: &SyncContext, stores: &Stores) -> anyhow::Result<()> {
    for stale in stores.slices.state() {
        if service_of_slice(&stale).is_some() {
            continue;
        }
        let (namespace, name) = (stale.namespace().unwrap_or_default(), stale.name_any());
        gone_is_fine(
            Api::<EndpointSlice>::namespaced(context.local.clone(), &namespace)
                .delete(&name, &DeleteParams::default())
                .await,
        )
        .with_context(|| format!("delete EndpointSlice {namespace}/{name}"))?;
        info!(slice = %format!("{namespace}/{name}"), "imported endpoints removed");
    }
    Ok(())
}

/// Every import planned from the hub, and what each service's decision reads, as of one
/// `generation` of the queue.
struct View {
    generation: u64,
    plan: BTreeMap<ServiceKey, PlannedImport>,
    present: BTreeSet<String>,
    cluster_slices: BTreeMap<String, IpNet>,
    /// Each service's published slices, with the exporting cluster.
    published: BTreeMap<ServiceKey, Vec<(String, Arc<EndpointSlice>)>>,
    /// Each service's slices in this cluster.
    imported: BTreeMap<ServiceKey, Vec<Arc<EndpointSlice>>>,
}

impl View {
    /// The slices `key` should have here, by name.
    fn wanted_slices(&self, key: &ServiceKey) -> Vec<(String, EndpointSlice)> {
        let mut wanted = Vec::new();
        for (cluster, published) in self.published.get(key).into_iter().flatten() {
            let hub_name = published.name_any();
            let Some(name) = local_slice_name(&hub_name, key, cluster) else {
                warn!(service = %key, %cluster, slice = %hub_name, "published slice has a name not laid out for its service; not imported");
                continue;
            };
            let allowed: Vec<IpNet> = self
                .cluster_slices
                .get(cluster)
                .copied()
                .into_iter()
                .collect();
            wanted.push((
                name.to_owned(),
                local_slice(key, cluster, name, published, &allowed),
            ));
        }
        wanted
    }
}

fn build_view(context: &SyncContext, stores: &Stores, generation: u64) -> View {
    let exports = stores
        .hub_imports
        .state()
        .iter()
        .filter(|i| i.metadata.deletion_timestamp.is_none())
        .filter_map(|i| hub_export(i))
        .collect();
    let held: BTreeMap<ServiceKey, IpAddr> = stores
        .imports
        .state()
        .iter()
        .filter_map(|i| {
            let key = ServiceKey::new(i.namespace()?, i.name_any());
            Some((key, first_ip(&i.spec.ips)?))
        })
        .collect();
    let plan = plan_imports(exports, &held, context.clusterset);
    let present: BTreeSet<String> = stores
        .namespaces
        .state()
        .iter()
        .filter(|n| n.metadata.deletion_timestamp.is_none())
        .map(|n| n.name_any())
        .collect();
    let cluster_slices: BTreeMap<String, IpNet> = stores
        .peers
        .state()
        .iter()
        .filter_map(|p| Some((p.spec.cluster_id.clone(), assigned_slice(p)?)))
        .collect();
    let mut published: BTreeMap<ServiceKey, Vec<(String, Arc<EndpointSlice>)>> = BTreeMap::new();
    for slice in stores.hub_slices.state() {
        if let Some((key, cluster)) = hub_object_key(&slice.metadata) {
            published.entry(key).or_default().push((cluster, slice));
        }
    }
    let mut imported: BTreeMap<ServiceKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in stores.slices.state() {
        if let Some(key) = service_of_slice(&slice) {
            imported.entry(key).or_default().push(slice);
        }
    }
    View {
        generation,
        plan,
        present,
        cluster_slices,
        published,
        imported,
    }
}

/// Keeps one service's import, its copies of the published slices and its own export's
/// `Conflict` in line with the hub; removes them when no cluster exports it any more.
async fn reconcile(
    context: &SyncContext,
    stores: &Stores,
    view: &View,
    key: &ServiceKey,
) -> anyhow::Result<()> {
    let planned = view
        .plan
        .get(key)
        .filter(|_| view.present.contains(&key.namespace));
    let slices_api: Api<EndpointSlice> = Api::namespaced(context.local.clone(), &key.namespace);
    let mut kept = BTreeSet::new();
    if let Some(planned) = planned {
        let slices = async {
            for (name, wanted) in view.wanted_slices(key) {
                let current = stores
                    .slices
                    .get(&ObjectRef::new(&name).within(&key.namespace));
                if current.as_deref().is_none_or(|c| !same_slice(c, &wanted)) {
                    slices_api
                        .patch(&name, &apply(FIELD_MANAGER), &Patch::Apply(&wanted))
                        .await
                        .with_context(|| format!("apply EndpointSlice {}/{name}", key.namespace))?;
                    let cluster = wanted.labels().get(LABEL_SOURCE_CLUSTER).cloned();
                    info!(cluster = cluster.unwrap_or_default(), slice = %name, "endpoints imported");
                }
                kept.insert(name);
            }
            Ok(())
        };
        keep_import(context, stores, key, planned, slices).await?;
    }
    // What no cluster exports any more goes.
    for stale in view.imported.get(key).into_iter().flatten() {
        let name = stale.name_any();
        if !kept.contains(&name) {
            gone_is_fine(slices_api.delete(&name, &DeleteParams::default()).await)
                .with_context(|| format!("delete EndpointSlice {}/{name}", key.namespace))?;
            info!(slice = %format!("{}/{name}", key.namespace), "imported endpoints removed");
        }
    }
    let Some(planned) = planned else {
        let held = stores
            .imports
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        if held.is_some() {
            let api: Api<ServiceImport> = Api::namespaced(context.local.clone(), &key.namespace);
            gone_is_fine(api.delete(&key.name, &DeleteParams::default()).await)
                .with_context(|| format!("delete ServiceImport {key}"))?;
            info!("import removed: no cluster exports it");
        }
        return Ok(());
    };
    // This cluster's own export learns of the conflicts.
    if planned.merged.clusters.contains(&context.cluster_id)
        && let Some(export) = stores
            .exports
            .get(&ObjectRef::new(&key.name).within(&key.namespace))
    {
        write_conflict(context, &export, planned).await?;
    }
    Ok(())
}

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force()
}

/// Makes the switch's load balancers of octopus exactly `wanted`.
async fn keep_load_balancers(
    context: &SyncContext,
    balancers: &mut Balancers,
    wanted: &[LoadBalancer],
) -> anyhow::Result<()> {
    let Some(nb) = balancers.connect(context).await? else {
        return Ok(());
    };
    let switch = switch_name(context);
    nb.ensure_load_balancers(&switch, wanted)
        .await
        .with_context(|| format!("ensure load balancers on logical switch {switch}"))?;
    let keep: BTreeSet<&str> = wanted.iter().map(|lb| lb.name.as_str()).collect();
    let owned = nb
        .list_owned_load_balancers(LB_OWNER)
        .await
        .context("list octopus's load balancers")?;
    let stale: Vec<&str> = owned
        .iter()
        .map(String::as_str)
        .filter(|name| !keep.contains(name))
        .collect();
    if !stale.is_empty() {
        let removed = nb
            .remove_load_balancers(LB_OWNER, &stale)
            .await
            .context("remove load balancers no import wants")?;
        info!(removed, names = ?stale, "clusterset IP load balancers removed");
    }
    Ok(())
}

/// Writes the import's spec, then awaits `slices` (crossdns answers once it has both), then
/// the import's status.
async fn keep_import(
    context: &SyncContext,
    stores: &Stores,
    key: &ServiceKey,
    planned: &PlannedImport,
    slices: impl std::future::Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    if let Some(error) = &planned.vip_error {
        warn!(%error, "no clusterset IP for this import");
    }
    let api: Api<ServiceImport> = Api::namespaced(context.local.clone(), &key.namespace);
    let mut wanted = ServiceImport::new(
        &key.name,
        import_spec(&planned.merged.properties, &planned.ips),
    );
    wanted.metadata.namespace = Some(key.namespace.clone());
    wanted.metadata.labels = Some(BTreeMap::from([(
        LABEL_MANAGED_BY.to_owned(),
        MANAGED_BY_NAUTI.to_owned(),
    )]));
    let current = stores
        .imports
        .get(&ObjectRef::new(&key.name).within(&key.namespace));
    if current.as_deref().is_none_or(|c| c.spec != wanted.spec) {
        api.patch(&key.name, &apply(FIELD_MANAGER), &Patch::Apply(&wanted))
            .await
            .context("apply the ServiceImport")?;
        info!(ips = ?planned.ips, clusters = ?planned.merged.clusters, "import written");
    }
    slices.await?;
    let mut conditions = current
        .as_deref()
        .and_then(|c| c.status.as_ref())
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let (ready, reason, message) = match &planned.vip_error {
        None => (
            true,
            import_condition::REASON_READY,
            "imported from the hub".to_owned(),
        ),
        Some(error) => (false, import_condition::REASON_PENDING, error.to_string()),
    };
    let changed_condition = set_condition(
        &mut conditions,
        new_condition(
            import_condition::READY,
            Some(ready),
            reason,
            message,
            None,
            Time(jiff::Timestamp::now()),
        ),
    );
    let status = ServiceImportStatus {
        endpoint_slice_objects: Some(EndpointSliceObjects::Present),
        clusters: planned
            .merged
            .clusters
            .iter()
            .map(|c| ClusterStatus { cluster: c.clone() })
            .collect(),
        conditions,
    };
    let current_status = current.as_deref().and_then(|c| c.status.clone());
    let same = current_status.as_ref().is_some_and(|s| {
        s.clusters == status.clusters && s.endpoint_slice_objects == status.endpoint_slice_objects
    });
    if changed_condition || !same {
        let mut patch = ServiceImport::new(&key.name, wanted.spec.clone());
        patch.status = Some(status);
        api.patch_status(&key.name, &apply(FIELD_MANAGER), &Patch::Apply(&patch))
            .await
            .context("write the ServiceImport's status")?;
    }
    Ok(())
}

/// The copy of a published slice in this cluster, with only the endpoints inside `allowed`.
fn local_slice(
    key: &ServiceKey,
    cluster: &str,
    name: &str,
    published: &EndpointSlice,
    allowed: &[IpNet],
) -> EndpointSlice {
    let endpoints = published
        .endpoints
        .iter()
        .flatten()
        .filter(|e| {
            let inside = !e.addresses.is_empty() && e.addresses.iter().all(|a| admitted(a, allowed));
            if !inside {
                warn!(service = %key, %cluster, addresses = ?e.addresses, "endpoint outside its cluster's slice; not imported");
            }
            inside
        })
        .map(|e| k8s_openapi::api::discovery::v1::Endpoint {
            addresses: e.addresses.clone(),
            conditions: e.conditions.clone(),
            hostname: e.hostname.clone(),
            ..Default::default()
        })
        .collect();
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(key.namespace.clone()),
            labels: Some(BTreeMap::from([
                (LABEL_SERVICE_NAME.to_owned(), key.name.clone()),
                (LABEL_SOURCE_CLUSTER.to_owned(), cluster.to_owned()),
                (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_NAUTI.to_owned()),
            ])),
            ..ObjectMeta::default()
        },
        address_type: published.address_type.clone(),
        endpoints: Some(endpoints),
        ports: published.ports.clone(),
    }
}

async fn write_conflict(
    context: &SyncContext,
    export: &ServiceExport,
    planned: &PlannedImport,
) -> anyhow::Result<()> {
    let conflicts = &planned.merged.conflicts;
    let condition = if conflicts.is_empty() {
        new_condition(
            export_condition::CONFLICT,
            Some(false),
            export_condition::REASON_NO_CONFLICTS,
            "every exporting cluster agrees",
            export.metadata.generation,
            Time(jiff::Timestamp::now()),
        )
    } else {
        let mut reasons: Vec<&str> = conflicts.iter().map(|c| c.reason).collect();
        reasons.dedup();
        new_condition(
            export_condition::CONFLICT,
            Some(true),
            // One reason names the condition; the message lists every conflict.
            reasons[0],
            conflicts
                .iter()
                .map(|c| c.message.as_str())
                .collect::<Vec<_>>()
                .join("; "),
            export.metadata.generation,
            Time(jiff::Timestamp::now()),
        )
    };
    let mut conditions = export
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    if !set_condition(&mut conditions, condition) {
        return Ok(());
    }
    let ours = conditions
        .into_iter()
        .filter(|c| c.type_ == export_condition::CONFLICT)
        .collect();
    let mut patch = ServiceExport::new(&export.name_any());
    patch.status = Some(ServiceExportStatus { conditions: ours });
    Api::<ServiceExport>::namespaced(
        context.local.clone(),
        &export.namespace().unwrap_or_default(),
    )
    .patch_status(
        &export.name_any(),
        &apply(CONFLICT_FIELD_MANAGER),
        &Patch::Apply(&patch),
    )
    .await
    .context("write the Conflict condition")?;
    info!(service = %export.name_any(), conflicts = conflicts.len(), "Conflict condition written");
    Ok(())
}
