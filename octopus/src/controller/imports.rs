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
    CONFLICT_FIELD_MANAGER, FIELD_MANAGER, RESYNC, RETRY, SyncContext, WRITE_CONCURRENCY,
    all_ready, first_ip, gone_is_fine, next_pass, spawn_store,
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

/// Runs the import controller until `stop`.
pub async fn run(context: SyncContext, stop: CancellationToken) {
    let changed = Arc::new(Notify::new());
    let local = &context.local;
    let hub = &context.hub;
    let stores = Stores {
        hub_imports: spawn_store(
            Api::all(hub.clone()),
            managed_by_nauti(),
            "hub serviceimports",
            &changed,
            &stop,
        ),
        hub_slices: spawn_store(
            Api::all(hub.clone()),
            managed_by_nauti(),
            "hub endpointslices",
            &changed,
            &stop,
        ),
        peers: spawn_store(
            Api::namespaced(hub.clone(), &context.hub_namespace),
            watcher::Config::default(),
            "hub peers",
            &changed,
            &stop,
        ),
        imports: spawn_store(
            Api::all(local.clone()),
            managed_by_nauti(),
            "serviceimports",
            &changed,
            &stop,
        ),
        slices: spawn_store(
            Api::all(local.clone()),
            managed_by_nauti(),
            "imported endpointslices",
            &changed,
            &stop,
        ),
        namespaces: spawn_store(
            Api::all(local.clone()),
            watcher::Config::default(),
            "namespaces",
            &changed,
            &stop,
        ),
        exports: spawn_store(
            Api::all(local.clone()),
            watcher::Config::default(),
            "serviceexports",
            &changed,
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
    let mut balancers = Balancers { nb: None };
    loop {
        let delay = match pass(&context, &stores, &mut balancers).await {
            Ok(()) => RESYNC,
            Err(error) => {
                warn!(error = format!("{error:#}"), "import pass failed; retrying");
                RETRY
            }
        };
        if !next_pass(&changed, delay, &stop).await {
            return;
        }
    }
}

fn apply(manager: &str) -> PatchParams {
    PatchParams::apply(manager).force()
}

async fn pass(
    context: &SyncContext,
    stores: &Stores,
    balancers: &mut Balancers,
) -> anyhow::Result<()> {
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

    let mut failed = 0usize;
    let mut kept_imports = BTreeSet::new();
    let present_plan: Vec<_> = plan
        .iter()
        .filter(|(key, _)| present.contains(&key.namespace))
        .collect();
    kept_imports.extend(
        present_plan
            .iter()
            .map(|(key, _)| (key.namespace.clone(), key.name.clone())),
    );
    // Each service's import is its own object: a burst goes out side by side.
    // Collected first: a stream over a closure's futures trips the compiler's Send check.
    let imports: Vec<_> = present_plan
        .into_iter()
        .map(|(key, planned)| async move {
            let result = keep_import(context, stores, key, planned)
                .instrument(info_span!("import", service = %key))
                .await;
            (key, result)
        })
        .collect();
    let results: Vec<(&ServiceKey, anyhow::Result<()>)> = futures::stream::iter(imports)
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    for (key, result) in results {
        if let Err(error) = result {
            failed += 1;
            warn!(service = %key, error = format!("{error:#}"), "import not written; retried");
        }
    }

    // The EndpointSlices: each exporting cluster's, inside its slice.
    let slices_api = |namespace: &str| -> Api<EndpointSlice> {
        Api::namespaced(context.local.clone(), namespace)
    };
    let mut kept_slices = BTreeSet::new();
    let mut imported: BTreeMap<ServiceKey, Vec<EndpointSlice>> = BTreeMap::new();
    let mut writes = Vec::new();
    for published in stores.hub_slices.state() {
        let Some((key, cluster)) = hub_object_key(&published.metadata) else {
            continue;
        };
        if !plan.contains_key(&key) || !present.contains(&key.namespace) {
            continue;
        }
        let hub_name = published.name_any();
        let Some(name) = local_slice_name(&hub_name, &key, &cluster).map(str::to_owned) else {
            warn!(service = %key, %cluster, slice = %hub_name, "published slice has a name not laid out for its service; not imported");
            continue;
        };
        let allowed: Vec<IpNet> = cluster_slices.get(&cluster).copied().into_iter().collect();
        let wanted = local_slice(&key, &cluster, &name, &published, &allowed);
        kept_slices.insert((key.namespace.clone(), name.clone()));
        imported
            .entry(key.clone())
            .or_default()
            .push(wanted.clone());
        let current = stores
            .slices
            .get(&ObjectRef::new(&name).within(&key.namespace));
        if current.as_deref().is_none_or(|c| !same_slice(c, &wanted)) {
            writes.push((key, cluster, name, wanted));
        }
    }
    let writes: Vec<_> = writes
        .into_iter()
        .map(|(key, cluster, name, wanted)| async move {
            let applied = slices_api(&key.namespace)
                .patch(&name, &apply(FIELD_MANAGER), &Patch::Apply(&wanted))
                .await;
            match applied {
                Ok(_) => {
                    info!(service = %key, %cluster, slice = %name, "endpoints imported");
                    true
                }
                Err(error) => {
                    warn!(service = %key, slice = %name, %error, "EndpointSlice not written; retried");
                    false
                }
            }
        })
        .collect();
    let applied: Vec<bool> = futures::stream::iter(writes)
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    failed += applied.iter().filter(|ok| !**ok).count();

    // The clusterset IPs, balanced over what was just imported.
    let wanted_balancers: Vec<LoadBalancer> = plan
        .iter()
        .filter(|(key, _)| present.contains(&key.namespace))
        .flat_map(|(key, planned)| {
            plan_load_balancers(
                key,
                &import_spec(&planned.merged.properties, &planned.ips),
                imported.get(key).map_or(&[], Vec::as_slice),
            )
        })
        .collect();
    if let Err(error) = keep_load_balancers(context, balancers, &wanted_balancers).await {
        failed += 1;
        warn!(
            error = format!("{error:#}"),
            "clusterset IP load balancers not written; retried"
        );
    }

    // What no cluster exports any more goes.
    for stale in stores.slices.state() {
        let id = (stale.namespace().unwrap_or_default(), stale.name_any());
        if !kept_slices.contains(&id) {
            gone_is_fine(
                slices_api(&id.0)
                    .delete(&id.1, &DeleteParams::default())
                    .await,
            )
            .with_context(|| format!("delete EndpointSlice {}/{}", id.0, id.1))?;
            info!(slice = %format!("{}/{}", id.0, id.1), "imported endpoints removed");
        }
    }
    for stale in stores.imports.state() {
        let id = (stale.namespace().unwrap_or_default(), stale.name_any());
        if !kept_imports.contains(&id) {
            let api: Api<ServiceImport> = Api::namespaced(context.local.clone(), &id.0);
            gone_is_fine(api.delete(&id.1, &DeleteParams::default()).await)
                .with_context(|| format!("delete ServiceImport {}/{}", id.0, id.1))?;
            info!(service = %format!("{}/{}", id.0, id.1), "import removed: no cluster exports it");
        }
    }

    // This cluster's own exports learn of the conflicts.
    for export in stores.exports.state() {
        let Some(namespace) = export.namespace() else {
            continue;
        };
        let key = ServiceKey::new(namespace, export.name_any());
        let Some(planned) = plan.get(&key) else {
            continue;
        };
        if !planned.merged.clusters.contains(&context.cluster_id) {
            continue;
        }
        if let Err(error) = write_conflict(context, &export, planned).await {
            failed += 1;
            warn!(service = %key, error = format!("{error:#}"), "Conflict condition not written");
        }
    }
    anyhow::ensure!(failed == 0, "{failed} writes failed");
    Ok(())
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

async fn keep_import(
    context: &SyncContext,
    stores: &Stores,
    key: &ServiceKey,
    planned: &PlannedImport,
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
