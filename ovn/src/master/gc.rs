//! Garbage collection of pod ports: the adapter around [`GcTracker`]. Lists the switch's
//! ports, asks the API server before removing anything, and removes with a guard so a port
//! rewritten meanwhile (same pod name, new UID) survives.

use std::collections::{BTreeMap, HashMap};
use std::time::Instant;

use k8s_openapi::api::core::v1::Pod;
use kube::Api;
use tracing::{debug, info};

use super::core::{
    GcTracker, NAMESPACE_KEY, POD_KEY, PortKind, classify_port, plan_guarded_port_removal,
};
use super::kube::live_pods;
use super::{Context, ReconcileError};
use crate::core::error::ErrorKind;
use crate::core::nb::{DB, LOGICAL_SWITCH_PORT, LogicalSwitchPort, map_col};
use crate::core::ops::{Condition, Operation};
use crate::core::value::{Uuid, Value};

/// Removes the ports whose pod has been gone for the grace period; returns how many.
pub(super) async fn collect(
    ctx: &Context,
    tracker: &mut GcTracker,
) -> Result<usize, ReconcileError> {
    let ports = ctx
        .nb
        .list_logical_switch_ports(&ctx.network.switch)
        .await?;
    let live = live_pods(ctx.caches.pods.state().iter().map(AsRef::as_ref));
    let due = tracker.observe(Instant::now(), ctx.gc_grace, &ports, &live);
    let mut removed = 0;
    for port in due {
        if !ctx.is_leader() {
            break;
        }
        if pod_exists(ctx, &port).await? {
            continue;
        }
        if remove(ctx, &port).await? {
            removed += 1;
            ctx.metrics.ports_collected.inc();
            info!(
                lsp = %port.name,
                pod.ns = port.external_ids.get(NAMESPACE_KEY).map(String::as_str),
                pod.name = port.external_ids.get(POD_KEY).map(String::as_str),
                grace = ?ctx.gc_grace,
                "removed the port of a deleted pod"
            );
        }
    }
    Ok(removed)
}

/// Asks the API server itself: the watch cache can lag behind a pod created a moment ago.
async fn pod_exists(ctx: &Context, port: &LogicalSwitchPort) -> Result<bool, ReconcileError> {
    let (Some(ns), Some(name)) = (
        port.external_ids.get(NAMESPACE_KEY),
        port.external_ids.get(POD_KEY),
    ) else {
        return Ok(true);
    };
    let pods: Api<Pod> = Api::namespaced(ctx.client.clone(), ns);
    let found = pods
        .get_metadata_opt(name)
        .await
        .map_err(ReconcileError::kube(format!("get pod {ns}/{name}")))?;
    let live: HashMap<_, _> = live_pods(found.iter());
    let exists = classify_port(port, &live) == PortKind::Live;
    if exists {
        debug!(lsp = %port.name, "pod exists after all (cache behind); keeping its port");
    }
    Ok(exists)
}

/// Removes the port if it still carries the `external_ids` the decision was made on.
async fn remove(ctx: &Context, port: &LogicalSwitchPort) -> Result<bool, ReconcileError> {
    let client = ctx.nb.client();
    let read = client
        .transact(
            DB,
            vec![Operation::select(
                LOGICAL_SWITCH_PORT,
                vec![Condition::eq("name", port.name.as_str())],
                &["_uuid", "external_ids"],
            )],
        )
        .await?;
    let Some(row) = read
        .first()
        .and_then(|r| r.rows.as_ref())
        .and_then(|rows| rows.first())
    else {
        return Ok(false);
    };
    let Some(uuid) = row.get("_uuid").and_then(Value::as_uuid).cloned() else {
        return Ok(false);
    };
    let ids: BTreeMap<String, String> = map_col(row, "external_ids");
    if ids != port.external_ids {
        debug!(lsp = %port.name, "port rewritten since it was judged; keeping it");
        return Ok(false);
    }
    guarded_remove(ctx, &port.name, &uuid, &ids).await
}

async fn guarded_remove(
    ctx: &Context,
    name: &str,
    uuid: &Uuid,
    ids: &BTreeMap<String, String>,
) -> Result<bool, ReconcileError> {
    match ctx
        .nb
        .client()
        .transact(DB, plan_guarded_port_removal(uuid, ids))
        .await
    {
        Ok(_) => Ok(true),
        Err(e) if matches!(e.server_kind(), Some(ErrorKind::TimedOut)) => {
            debug!(
                lsp = name,
                "port changed between read and removal; keeping it"
            );
            Ok(false)
        }
        Err(e) => Err(e.into()),
    }
}
