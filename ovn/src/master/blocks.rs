//! Node blocks: the adapter around [`plan_node_blocks`]. Reads Nodes, writes the
//! `nauti.io/node-cidr` annotation, reports bad values as Warning events on the Node.

use std::collections::HashMap;

use kube::api::ListParams;
use kube::runtime::events::EventType;
use nauti_api::keys::NODE_CIDR;
use tracing::{debug, error, info, warn};

use super::core::{HeldAddress, plan_node_blocks};
use super::kube::{NodeMeta, node_reference, node_views, patch_node_block};
use super::{Context, ReconcileError};

/// Gives every Node a valid block; `Ok(true)` when a write lost a race and another pass should
/// follow soon.
pub(super) async fn reconcile(ctx: &Context) -> Result<bool, ReconcileError> {
    let cached = ctx.caches.nodes.state();
    let views = node_views(cached.iter().map(AsRef::as_ref));
    // Whether anything is to be written does not depend on the ports: read them only then.
    if plan_node_blocks(&ctx.network, &views, &[]).is_settled() {
        return Ok(false);
    }
    // The cache may not show our latest writes yet, and a plan made on it could hand out a
    // block twice: decide again on a fresh list before writing anything.
    let list = ctx
        .nodes()
        .list_metadata(&ListParams::default())
        .await
        .map_err(ReconcileError::kube("list nodes"))?;
    let ports = ctx
        .nb
        .list_logical_switch_ports(&ctx.network.switch)
        .await?;
    let held = HeldAddress::of_pod_ports(&ports);
    let plan = plan_node_blocks(&ctx.network, &node_views(&list.items), &held);
    let by_name: HashMap<&str, &NodeMeta> = list
        .items
        .iter()
        .filter_map(|n| Some((n.metadata.name.as_deref()?, n)))
        .collect();
    for err in &plan.errors {
        ctx.metrics.blocks_exhausted.inc();
        error!(error = %err, subnet = %ctx.network.subnet, "node left without a block");
    }
    let mut again = false;
    for assignment in &plan.assign {
        if !ctx.is_leader() {
            debug!("lost the lease; leaving the remaining blocks to the new leader");
            return Ok(false);
        }
        let Some(node) = by_name.get(assignment.node.as_str()) else {
            continue;
        };
        let node_name = assignment.node.as_str();
        let block = assignment.block.to_string();
        let previous = node
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(NODE_CIDR));
        if let Some(bad) = &assignment.replaces {
            ctx.metrics.bad_annotations.inc();
            warn!(
                node = node_name,
                value = ?previous,
                reason = %bad,
                %block,
                "replacing an invalid nauti.io/node-cidr annotation"
            );
            let note = format!("{NODE_CIDR} {previous:?} is invalid ({bad}); replaced by {block}");
            ctx.event(
                &node_reference(node),
                EventType::Warning,
                "InvalidNodeCIDR",
                note,
            )
            .await;
        }
        let rv = node.metadata.resource_version.as_deref();
        match patch_node_block(&ctx.nodes(), node_name, rv, &block).await {
            Ok(()) => {
                ctx.metrics.blocks_assigned.inc();
                info!(node = node_name, %block, "assigned node block");
                let note = format!("{NODE_CIDR} set to {block}");
                ctx.event(
                    &node_reference(node),
                    EventType::Normal,
                    "NodeCIDRAssigned",
                    note,
                )
                .await;
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => {
                debug!(
                    node = node_name,
                    "node changed since it was read; deciding again"
                );
                again = true;
            }
            Err(kube::Error::Api(s)) if s.is_not_found() => {
                debug!(
                    node = node_name,
                    "node deleted before its block was written"
                );
            }
            Err(e) => return Err(ReconcileError::kube(format!("patch node {node_name}"))(e)),
        }
    }
    Ok(again)
}
