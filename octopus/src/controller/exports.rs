//! The export controller: this cluster's `ServiceExport`s, published on the hub.
//!
//! It watches the ServiceExports, Services, EndpointSlices and Pods of its cluster and its own
//! objects in its namespace on the hub. On every change (and every [`RESYNC`]) it reads the
//! pods' ports from the cluster's OVN northbound database and the cluster's slice, plans each
//! export ([`plan_export`]) and brings the hub in line: the export's `ServiceImport` and
//! EndpointSlices for a valid export, nothing for an invalid or deleted one. Each export's
//! `Valid` and `Ready` conditions say what happened.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::Arc;

use anyhow::Context as _;
use futures::StreamExt as _;
use ipnet::IpNet;
use k8s_openapi::api::core::v1::{ConfigMap, Pod, Service};
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort, EndpointSlice};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
use kube::ResourceExt as _;
use kube::api::{Api, DeleteParams, Patch, PatchParams};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::{ObjectRef, Store};
use kube::runtime::watcher;
use nauti_api::ServiceImport;
use nauti_api::conditions::{new_condition, set_condition};
use nauti_api::mcs::{
    LABEL_MANAGED_BY, MANAGED_BY_NAUTI, ServiceExport, ServiceExportStatus, export_condition,
};
use nauti_ovn::Northbound;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::local::{CLUSTER_CONFIGMAP, CLUSTER_SUBNET_KEY};
use super::services::{
    FIELD_MANAGER, Keys, REFILL_AT, RESYNC, RETRY, SyncContext, WRITE_CONCURRENCY, WorkQueue,
    all_ready, connect_nb, gone_is_fine, spawn_keyed_store,
};
use crate::core::mcs::hub::{hub_import, hub_labels, hub_object_key, hub_slice_name};
use crate::core::mcs::local::{
    LABEL_KUBERNETES_SERVICE_NAME, endpoint_ports, local_endpoints, local_service, verified_ports,
};
use crate::core::mcs::{
    ExportPlan, ExportedSlice, ServiceKey, VerifiedPorts, cut_slices, plan_export,
};
use crate::join::member_namespace;

struct Stores {
    exports: Store<ServiceExport>,
    services: Store<Service>,
    slices: Store<EndpointSlice>,
    pods: Store<PartialObjectMeta<Pod>>,
    hub_imports: Store<ServiceImport>,
    hub_slices: Store<EndpointSlice>,
}

impl Stores {
    async fn ready(&self) -> bool {
        self.exports.wait_until_ready().await.is_ok()
            && self.services.wait_until_ready().await.is_ok()
            && self.slices.wait_until_ready().await.is_ok()
            && self.pods.wait_until_ready().await.is_ok()
            && self.hub_imports.wait_until_ready().await.is_ok()
            && self.hub_slices.wait_until_ready().await.is_ok()
    }
}

/// Runs the export controller until `stop`.
pub async fn run(context: SyncContext, stop: CancellationToken) {
    let Some(endpoint) = context.config.ovn_nb.clone() else {
        warn!("no --ovn-nb: this cluster's ServiceExports are not published");
        return;
    };
    let Some(nb) = connect_nb(endpoint, context.config.ovn_nb_tls.clone(), &stop).await else {
        return;
    };
    let queue = Arc::new(WorkQueue::default());
    let own = member_namespace(&context.cluster_id);
    // The built-in controller's slices of every Service; Nauti's own imports are not inputs.
    let local_slices = watcher::Config::default().labels(&format!(
        "{LABEL_KUBERNETES_SERVICE_NAME},{LABEL_MANAGED_BY}!={MANAGED_BY_NAUTI}"
    ));
    let stores = Stores {
        exports: spawn_keyed_store(
            Api::all(context.local.clone()),
            watcher::Config::default(),
            "serviceexports",
            &queue,
            Keys::Of(|e: &ServiceExport| object_key(&e.metadata).into_iter().collect()),
            &stop,
        ),
        services: spawn_keyed_store(
            Api::all(context.local.clone()),
            watcher::Config::default(),
            "services",
            &queue,
            Keys::Of(|s: &Service| object_key(&s.metadata).into_iter().collect()),
            &stop,
        ),
        slices: spawn_keyed_store(
            Api::all(context.local.clone()),
            local_slices,
            "endpointslices",
            &queue,
            Keys::Of(|s: &EndpointSlice| service_of_slice(s).into_iter().collect()),
            &stop,
        ),
        // Only a trigger: a pod's port in OVN appears with the pod, not with a slice change,
        // and the ports are read for every export at once.
        pods: spawn_keyed_store(
            Api::all(context.local.clone()),
            watcher::Config::default(),
            "pods",
            &queue,
            Keys::All,
            &stop,
        ),
        hub_imports: spawn_keyed_store(
            Api::namespaced(context.hub.clone(), &own),
            watcher::Config::default(),
            "hub serviceimports",
            &queue,
            Keys::DeletedOf(|i: &ServiceImport| {
                hub_object_key(&i.metadata)
                    .map(|(k, _)| k)
                    .into_iter()
                    .collect()
            }),
            &stop,
        ),
        hub_slices: spawn_keyed_store(
            Api::namespaced(context.hub.clone(), &own),
            watcher::Config::default(),
            "hub endpointslices",
            &queue,
            Keys::DeletedOf(|s: &EndpointSlice| {
                hub_object_key(&s.metadata)
                    .map(|(k, _)| k)
                    .into_iter()
                    .collect()
            }),
            &stop,
        ),
    };
    if !all_ready(stores.ready(), &stop).await {
        return;
    }
    info!(switch = %switch_name(&context), "watching ServiceExports");
    queue.resync();
    let mut view: Option<Arc<View>> = None;
    let mut ovn: Option<Arc<OvnView>> = None;
    let mut in_flight = futures::stream::FuturesUnordered::new();
    let mut resync_at = tokio::time::Instant::now() + RESYNC;
    loop {
        if queue.take_resync() {
            // Every export again, with the ports read anew.
            ovn = None;
            resync_at = tokio::time::Instant::now() + RESYNC;
            for key in all_keys(&stores) {
                queue.add(key);
            }
            if let Err(error) = withdraw_unreadable(&context, &stores).await {
                warn!(
                    error = format!("{error:#}"),
                    "hub objects not withdrawn; retrying"
                );
            }
        }
        let free = WRITE_CONCURRENCY - in_flight.len();
        if queue.has_waiting() && (in_flight.is_empty() || free >= REFILL_AT) {
            // A port written to OVN makes no Kubernetes event: what is read goes stale.
            if ovn
                .as_ref()
                .is_some_and(|o| o.read_at.elapsed() > OVN_MAX_AGE)
            {
                ovn = None;
            }
            if ovn.is_none() {
                match read_ovn(&context, &nb).await {
                    Ok(read) => ovn = Some(Arc::new(read)),
                    Err(error) => {
                        warn!(
                            error = format!("{error:#}"),
                            "cannot read this cluster's ports; retrying"
                        );
                        tokio::select! {
                            () = stop.cancelled() => return,
                            () = tokio::time::sleep(RETRY) => continue,
                        }
                    }
                }
            }
            // Taken before the view is read: a change to a key after this reconciles it again.
            let keys = queue.take(free);
            let generation = queue.generation();
            let current = match (&view, &ovn) {
                (Some(v), Some(o)) if v.generation == generation && Arc::ptr_eq(&v.ovn, o) => {
                    v.clone()
                }
                (_, Some(o)) => {
                    let built = Arc::new(build_view(&stores, generation, o.clone()));
                    view = Some(built.clone());
                    built
                }
                // Read just above; were it not, the keys wait again.
                (_, None) => {
                    for key in keys {
                        queue.done(&key);
                        queue.add(key);
                    }
                    continue;
                }
            };
            for key in keys {
                let (context, stores, view) = (&context, &stores, current.clone());
                let span = info_span!("export", service = %key);
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
                if let Err(error) = result {
                    warn!(service = %key, error = format!("{error:#}"), "export not published; retried");
                    // The ports may be what is missing.
                    ovn = None;
                    queue.retry_later(key, RETRY, &stop);
                }
            }
            () = queue.notified() => {}
            () = tokio::time::sleep_until(resync_at) => queue.resync(),
        }
    }
}

fn object_key(meta: &ObjectMeta) -> Option<ServiceKey> {
    Some(ServiceKey::new(meta.namespace.clone()?, meta.name.clone()?))
}

fn service_of_slice(slice: &EndpointSlice) -> Option<ServiceKey> {
    Some(ServiceKey::new(
        slice.metadata.namespace.clone()?,
        slice.labels().get(LABEL_KUBERNETES_SERVICE_NAME)?.clone(),
    ))
}

/// Every service the export controller has something to say about.
fn all_keys(stores: &Stores) -> BTreeSet<ServiceKey> {
    let mut keys: BTreeSet<ServiceKey> = stores
        .exports
        .state()
        .iter()
        .filter_map(|e| object_key(&e.metadata))
        .collect();
    keys.extend(
        stores
            .hub_imports
            .state()
            .iter()
            .filter_map(|i| hub_object_key(&i.metadata).map(|(k, _)| k)),
    );
    keys.extend(
        stores
            .hub_slices
            .state()
            .iter()
            .filter_map(|s| hub_object_key(&s.metadata).map(|(k, _)| k)),
    );
    keys
}

fn switch_name(context: &SyncContext) -> String {
    context
        .config
        .logical_switch
        .clone()
        .unwrap_or_else(|| format!("nauti-{}", context.cluster_id))
}

/// This cluster's slices, from the ConfigMap the member writes once the hub assigned one.
async fn cluster_slices(context: &SyncContext) -> anyhow::Result<Vec<IpNet>> {
    let maps: Api<ConfigMap> = Api::namespaced(context.local.clone(), &context.namespace);
    let map = maps
        .get_opt(CLUSTER_CONFIGMAP)
        .await
        .with_context(|| format!("read ConfigMap {}/{CLUSTER_CONFIGMAP}", context.namespace))?;
    Ok(map
        .and_then(|m| m.data)
        .and_then(|d| d.get(CLUSTER_SUBNET_KEY).cloned())
        .and_then(|text| text.trim().parse().ok())
        .into_iter()
        .collect())
}

/// The cluster's slices and its pods' OVN ports, read once for many exports: again on every
/// pod change, resync and failure.
struct OvnView {
    slices: Vec<IpNet>,
    ports: VerifiedPorts,
    read_at: std::time::Instant,
}

/// How long the ports read serve new reconciles: a pod's port that OVN got after the last
/// change of its pod is seen within this.
const OVN_MAX_AGE: std::time::Duration = std::time::Duration::from_millis(250);

async fn read_ovn(context: &SyncContext, nb: &Northbound) -> anyhow::Result<OvnView> {
    let slices = cluster_slices(context).await?;
    let switch = switch_name(context);
    let ovn_ports = nb
        .list_logical_switch_ports(&switch)
        .await
        .with_context(|| format!("list the ports of logical switch {switch}"))?;
    let ports = verified_ports(
        ovn_ports
            .iter()
            .map(|port| (&port.external_ids, port.ips())),
    );
    Ok(OvnView {
        slices,
        ports,
        read_at: std::time::Instant::now(),
    })
}

/// The watched objects indexed by service, as of one `generation` of the queue.
struct View {
    generation: u64,
    ovn: Arc<OvnView>,
    /// The Service's own slices.
    by_service: BTreeMap<ServiceKey, Vec<Arc<EndpointSlice>>>,
    /// What each export has on the hub.
    published: BTreeMap<ServiceKey, Vec<String>>,
}

fn build_view(stores: &Stores, generation: u64, ovn: Arc<OvnView>) -> View {
    let mut by_service: BTreeMap<ServiceKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in stores.slices.state() {
        if let Some(key) = service_of_slice(&slice) {
            by_service.entry(key).or_default().push(slice);
        }
    }
    let mut published: BTreeMap<ServiceKey, Vec<String>> = BTreeMap::new();
    for slice in stores.hub_slices.state() {
        if let Some((key, _)) = hub_object_key(&slice.metadata) {
            published.entry(key).or_default().push(slice.name_any());
        }
    }
    View {
        generation,
        ovn,
        by_service,
        published,
    }
}

/// Brings the hub in line with one service's export, or withdraws it when there is none.
async fn reconcile(
    context: &SyncContext,
    stores: &Stores,
    view: &View,
    key: &ServiceKey,
) -> anyhow::Result<()> {
    let export = stores
        .exports
        .get(&ObjectRef::new(&key.name).within(&key.namespace))
        .filter(|e| e.metadata.deletion_timestamp.is_none());
    let Some(export) = export else {
        return withdraw(context, stores, key).await;
    };
    let service = stores
        .services
        .get(&ObjectRef::new(&key.name).within(&key.namespace));
    let own_slices = view
        .by_service
        .get(key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    let plan = plan_export(
        service.as_deref().map(local_service).as_ref(),
        &local_endpoints(own_slices.iter().map(AsRef::as_ref)),
        &view.ovn.ports,
        &view.ovn.slices,
    );
    let target_ports = endpoint_ports(own_slices.iter().map(AsRef::as_ref));
    let on_hub = view
        .published
        .get(key)
        .map(Vec::as_slice)
        .unwrap_or_default();
    export_one(context, stores, key, &export, &plan, target_ports, on_hub).await?;
    Ok(())
}

/// Brings the hub in line with one export's plan and writes its conditions. True when the
/// export is valid (its objects stay on the hub).
async fn export_one(
    context: &SyncContext,
    stores: &Stores,
    key: &ServiceKey,
    export: &ServiceExport,
    plan: &ExportPlan,
    target_ports: Option<Vec<EndpointPort>>,
    on_hub: &[String],
) -> anyhow::Result<bool> {
    for skipped in &plan.skipped {
        debug!(reason = %skipped, "endpoint left out");
    }
    let published = match &plan.properties {
        Err(invalid) => {
            withdraw(context, stores, key).await?;
            write_status(context, export, Err((invalid.reason(), invalid.message()))).await?;
            return Ok(false);
        }
        Ok(properties) => {
            let exported_at = export
                .metadata
                .creation_timestamp
                .as_ref()
                .map_or(jiff::Timestamp::UNIX_EPOCH, |t| t.0);
            let import = hub_import(key, &context.cluster_id, exported_at, properties);
            let hub_imports: Api<ServiceImport> =
                Api::namespaced(context.hub.clone(), &member_namespace(&context.cluster_id));
            let current = stores.hub_imports.get(&ObjectRef::from_obj(&import));
            if current.as_deref().is_none_or(|c| !same_import(c, &import)) {
                hub_imports
                    .patch(&import.name_any(), &apply(), &Patch::Apply(&import))
                    .await
                    .context("apply the export's ServiceImport on the hub")?;
                info!(ports = properties.ports.len(), type_ = ?properties.type_, "export published");
            }
            let ports = target_ports.unwrap_or_else(|| {
                properties
                    .ports
                    .iter()
                    .map(|p| EndpointPort {
                        name: Some(p.name.clone()),
                        port: Some(p.port),
                        protocol: Some(p.protocol.clone()),
                        app_protocol: p.app_protocol.clone(),
                    })
                    .collect()
            });
            publish_slices(context, stores, key, plan, &ports, on_hub).await?;
            plan.endpoints.len()
        }
    };
    write_status(context, export, Ok(published)).await?;
    Ok(true)
}

fn apply() -> PatchParams {
    PatchParams::apply(FIELD_MANAGER).force()
}

fn same_import(current: &ServiceImport, wanted: &ServiceImport) -> bool {
    current.spec == wanted.spec
        && contains(
            current.metadata.labels.as_ref(),
            wanted.metadata.labels.as_ref(),
        )
        && contains(
            current.metadata.annotations.as_ref(),
            wanted.metadata.annotations.as_ref(),
        )
}

fn contains(
    current: Option<&BTreeMap<String, String>>,
    wanted: Option<&BTreeMap<String, String>>,
) -> bool {
    wanted
        .into_iter()
        .flatten()
        .all(|(k, v)| current.and_then(|c| c.get(k)) == Some(v))
}

/// The slice as published on the hub.
fn hub_slice(
    context: &SyncContext,
    key: &ServiceKey,
    slice: &ExportedSlice,
    ports: &[EndpointPort],
) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(hub_slice_name(key, &slice.name)),
            namespace: Some(member_namespace(&context.cluster_id)),
            labels: Some(hub_labels(key, &context.cluster_id)),
            ..ObjectMeta::default()
        },
        address_type: slice.address_type.to_owned(),
        endpoints: Some(
            slice
                .endpoints
                .iter()
                .map(|e| Endpoint {
                    addresses: vec![e.address.to_string()],
                    conditions: Some(EndpointConditions {
                        ready: Some(e.ready),
                        serving: Some(e.serving),
                        terminating: Some(e.terminating),
                    }),
                    hostname: e.hostname.clone(),
                    ..Endpoint::default()
                })
                .collect(),
        ),
        ports: Some(ports.to_vec()),
    }
}

/// Whether two slices carry the same content (what the hub's copy may differ in is ignored).
pub(crate) fn same_slice(current: &EndpointSlice, wanted: &EndpointSlice) -> bool {
    let endpoints = |s: &EndpointSlice| s.endpoints.clone().unwrap_or_default();
    let ports = |s: &EndpointSlice| s.ports.clone().unwrap_or_default();
    current.address_type == wanted.address_type
        && endpoints(current) == endpoints(wanted)
        && ports(current) == ports(wanted)
        && contains(
            current.metadata.labels.as_ref(),
            wanted.metadata.labels.as_ref(),
        )
}

async fn publish_slices(
    context: &SyncContext,
    stores: &Stores,
    key: &ServiceKey,
    plan: &ExportPlan,
    ports: &[EndpointPort],
    on_hub: &[String],
) -> anyhow::Result<()> {
    let api: Api<EndpointSlice> =
        Api::namespaced(context.hub.clone(), &member_namespace(&context.cluster_id));
    let mut names = BTreeSet::new();
    for slice in cut_slices(key, &context.cluster_id, &plan.endpoints) {
        let wanted = hub_slice(context, key, &slice, ports);
        let name = wanted.name_any();
        let current = stores.hub_slices.get(&ObjectRef::from_obj(&wanted));
        if current.as_deref().is_none_or(|c| !same_slice(c, &wanted)) {
            api.patch(&name, &apply(), &Patch::Apply(&wanted))
                .await
                .with_context(|| format!("apply EndpointSlice {name} on the hub"))?;
            info!(slice = %name, endpoints = slice.endpoints.len(), "endpoints published");
        }
        names.insert(name);
    }
    for stale in on_hub.iter().filter(|name| !names.contains(*name)) {
        gone_is_fine(api.delete(stale, &DeleteParams::default()).await)
            .with_context(|| format!("delete EndpointSlice {stale} on the hub"))?;
    }
    Ok(())
}

/// Removes an export's objects from the hub.
async fn withdraw(context: &SyncContext, stores: &Stores, key: &ServiceKey) -> anyhow::Result<()> {
    withdraw_except(context, stores, &BTreeSet::new(), Some(key)).await
}

/// Removes from the hub the objects in this cluster's namespace that name no service.
async fn withdraw_unreadable(context: &SyncContext, stores: &Stores) -> anyhow::Result<()> {
    withdraw_except(context, stores, &all_keys(stores), None).await
}

async fn withdraw_except(
    context: &SyncContext,
    stores: &Stores,
    keep: &BTreeSet<ServiceKey>,
    only: Option<&ServiceKey>,
) -> anyhow::Result<()> {
    let own = member_namespace(&context.cluster_id);
    let selected = |meta: &ObjectMeta| match hub_object_key(meta) {
        Some((key, _)) => !keep.contains(&key) && only.is_none_or(|o| o == &key),
        // Objects in our namespace we cannot read back are ours too, and wrong.
        None => only.is_none(),
    };
    let slices: Api<EndpointSlice> = Api::namespaced(context.hub.clone(), &own);
    for slice in stores.hub_slices.state() {
        if selected(&slice.metadata) {
            gone_is_fine(
                slices
                    .delete(&slice.name_any(), &DeleteParams::default())
                    .await,
            )
            .with_context(|| format!("delete EndpointSlice {} on the hub", slice.name_any()))?;
            info!(slice = %slice.name_any(), "endpoints withdrawn from the hub");
        }
    }
    let imports: Api<ServiceImport> = Api::namespaced(context.hub.clone(), &own);
    for import in stores.hub_imports.state() {
        if selected(&import.metadata) {
            gone_is_fine(
                imports
                    .delete(&import.name_any(), &DeleteParams::default())
                    .await,
            )
            .with_context(|| format!("delete ServiceImport {} on the hub", import.name_any()))?;
            info!(import = %import.name_any(), "export withdrawn from the hub");
        }
    }
    Ok(())
}

/// Writes `Valid` and `Ready`: `Ok(endpoints)` for a published export, `Err((reason,
/// message))` for an invalid one.
async fn write_status(
    context: &SyncContext,
    export: &ServiceExport,
    outcome: Result<usize, (&str, &str)>,
) -> anyhow::Result<()> {
    let generation = export.metadata.generation;
    let now = Time(jiff::Timestamp::now());
    let (valid, ready) = match outcome {
        Ok(endpoints) => (
            new_condition(
                export_condition::VALID,
                Some(true),
                export_condition::REASON_VALID,
                "the Service exists and can be exported",
                generation,
                now.clone(),
            ),
            new_condition(
                export_condition::READY,
                Some(true),
                export_condition::REASON_EXPORTED,
                format!("published to the hub with {endpoints} endpoints"),
                generation,
                now,
            ),
        ),
        Err((reason, message)) => (
            new_condition(
                export_condition::VALID,
                Some(false),
                reason,
                message,
                generation,
                now.clone(),
            ),
            new_condition(
                export_condition::READY,
                Some(false),
                export_condition::REASON_FAILED,
                "not exported: the export is not valid",
                generation,
                now,
            ),
        ),
    };
    let mut conditions = export
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let changed = set_condition(&mut conditions, valid) | set_condition(&mut conditions, ready);
    if !changed {
        return Ok(());
    }
    let ours: Vec<_> = conditions
        .into_iter()
        .filter(|c| c.type_ == export_condition::VALID || c.type_ == export_condition::READY)
        .collect();
    let mut status = ServiceExport::new(&export.name_any());
    status.status = Some(ServiceExportStatus { conditions: ours });
    let namespace = export.namespace().unwrap_or_default();
    Api::<ServiceExport>::namespaced(context.local.clone(), &namespace)
        .patch_status(&export.name_any(), &apply(), &Patch::Apply(&status))
        .await
        .context("write the ServiceExport's conditions")?;
    Ok(())
}
