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
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, debug, info, info_span, warn};

use super::local::{CLUSTER_CONFIGMAP, CLUSTER_SUBNET_KEY};
use super::services::{
    FIELD_MANAGER, RESYNC, RETRY, SyncContext, WRITE_CONCURRENCY, all_ready, connect_nb,
    gone_is_fine, next_pass, spawn_store,
};
use crate::core::mcs::hub::{hub_import, hub_labels, hub_object_key, hub_slice_name};
use crate::core::mcs::local::{
    LABEL_KUBERNETES_SERVICE_NAME, endpoint_ports, local_endpoints, local_service, verified_ports,
};
use crate::core::mcs::{ExportPlan, ExportedSlice, ServiceKey, cut_slices, plan_export};
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
    let changed = Arc::new(Notify::new());
    let own = member_namespace(&context.cluster_id);
    // The built-in controller's slices of every Service; Nauti's own imports are not inputs.
    let local_slices = watcher::Config::default().labels(&format!(
        "{LABEL_KUBERNETES_SERVICE_NAME},{LABEL_MANAGED_BY}!={MANAGED_BY_NAUTI}"
    ));
    let stores = Stores {
        exports: spawn_store(
            Api::all(context.local.clone()),
            watcher::Config::default(),
            "serviceexports",
            &changed,
            &stop,
        ),
        services: spawn_store(
            Api::all(context.local.clone()),
            watcher::Config::default(),
            "services",
            &changed,
            &stop,
        ),
        slices: spawn_store(
            Api::all(context.local.clone()),
            local_slices,
            "endpointslices",
            &changed,
            &stop,
        ),
        // Only a trigger: a pod's port in OVN appears with the pod, not with a slice change.
        pods: spawn_store(
            Api::all(context.local.clone()),
            watcher::Config::default(),
            "pods",
            &changed,
            &stop,
        ),
        hub_imports: spawn_store(
            Api::namespaced(context.hub.clone(), &own),
            watcher::Config::default(),
            "hub serviceimports",
            &changed,
            &stop,
        ),
        hub_slices: spawn_store(
            Api::namespaced(context.hub.clone(), &own),
            watcher::Config::default(),
            "hub endpointslices",
            &changed,
            &stop,
        ),
    };
    if !all_ready(stores.ready(), &stop).await {
        return;
    }
    info!(switch = %switch_name(&context), "watching ServiceExports");
    loop {
        let delay = match pass(&context, &nb, &stores).await {
            Ok(()) => RESYNC,
            Err(error) => {
                warn!(error = format!("{error:#}"), "export pass failed; retrying");
                RETRY
            }
        };
        if !next_pass(&changed, delay, &stop).await {
            return;
        }
    }
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

async fn pass(context: &SyncContext, nb: &Northbound, stores: &Stores) -> anyhow::Result<()> {
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
    // The Service's own slices, by service, once per pass.
    let mut by_service: BTreeMap<ServiceKey, Vec<Arc<EndpointSlice>>> = BTreeMap::new();
    for slice in stores.slices.state() {
        if let (Some(namespace), Some(service)) = (
            slice.metadata.namespace.clone(),
            slice.labels().get(LABEL_KUBERNETES_SERVICE_NAME).cloned(),
        ) {
            by_service
                .entry(ServiceKey::new(namespace, service))
                .or_default()
                .push(slice);
        }
    }
    // What each export has on the hub, once per pass.
    let mut published: BTreeMap<ServiceKey, Vec<String>> = BTreeMap::new();
    for slice in stores.hub_slices.state() {
        if let Some((key, _)) = hub_object_key(&slice.metadata) {
            published.entry(key).or_default().push(slice.name_any());
        }
    }
    let mut wanted: BTreeSet<ServiceKey> = BTreeSet::new();
    let mut failed = 0usize;
    let mut exports: Vec<Arc<ServiceExport>> = stores.exports.state();
    exports.sort_by_key(|e| (e.namespace(), e.name_any()));
    let mut jobs = Vec::with_capacity(exports.len());
    for export in exports {
        let Some(namespace) = export.namespace() else {
            continue;
        };
        let key = ServiceKey::new(namespace, export.name_any());
        if export.metadata.deletion_timestamp.is_some() {
            continue;
        }
        let service = stores
            .services
            .get(&ObjectRef::new(&key.name).within(&key.namespace));
        let own_slices = by_service.get(&key).map(Vec::as_slice).unwrap_or_default();
        let plan = plan_export(
            service.as_deref().map(local_service).as_ref(),
            &local_endpoints(own_slices.iter().map(AsRef::as_ref)),
            &ports,
            &slices,
        );
        let target_ports = endpoint_ports(own_slices.iter().map(AsRef::as_ref));
        jobs.push((key, export, plan, target_ports));
    }
    // Each export writes its own objects: a burst of new exports goes out side by side.
    let results: Vec<(ServiceKey, anyhow::Result<bool>)> =
        futures::stream::iter(jobs.into_iter().map(|(key, export, plan, target_ports)| {
            let on_hub = published.get(&key).map(Vec::as_slice).unwrap_or_default();
            let span = info_span!("export", service = %key);
            async move {
                let result =
                    export_one(context, stores, &key, &export, &plan, target_ports, on_hub)
                        .instrument(span)
                        .await;
                (key, result)
            }
        }))
        .buffer_unordered(WRITE_CONCURRENCY)
        .collect()
        .await;
    for (key, result) in results {
        match result {
            Ok(true) => {
                wanted.insert(key);
            }
            Ok(false) => {}
            Err(error) => {
                // Keep what is on the hub: a failed write is no reason to withdraw.
                wanted.insert(key.clone());
                failed += 1;
                warn!(service = %key, error = format!("{error:#}"), "export not published; retried");
            }
        }
    }
    withdraw_others(context, stores, &wanted).await?;
    anyhow::ensure!(failed == 0, "{failed} exports failed");
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

/// Removes from the hub every export of this cluster that is not in `wanted`.
async fn withdraw_others(
    context: &SyncContext,
    stores: &Stores,
    wanted: &BTreeSet<ServiceKey>,
) -> anyhow::Result<()> {
    withdraw_except(context, stores, wanted, None).await
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
