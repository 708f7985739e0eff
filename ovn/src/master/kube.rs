//! The Kubernetes edge: the client, metadata caches of Nodes and Pods fed by watches, and the
//! conversions from watched objects into the core's plain types.
//!
//! Only metadata is watched (`Api<PartialObjectMeta<_>>`): names, UIDs, annotations and creation times
//! are all the controller reads, and a Pod's full object is many times larger.

use std::collections::HashMap;
use std::path::Path;
use std::sync::Arc;

use k8s_openapi::api::core::v1::{Node, ObjectReference, Pod};
use kube::api::{Api, Patch, PatchParams};
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::core::PartialObjectMeta;
use kube::runtime::reflector::Store;
use kube::runtime::watcher;
use serde_json::json;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

use super::MasterError;
use super::core::{NodeView, PodKey};
use nauti_api::daemon::watch::spawn_store;
use nauti_api::keys::NODE_CIDR;

/// Field manager of our patches (shows up in `managedFields`).
pub const FIELD_MANAGER: &str = "nauti-ovnmaster";

/// A Node's metadata.
pub type NodeMeta = PartialObjectMeta<Node>;
/// A Pod's metadata.
pub type PodMeta = PartialObjectMeta<Pod>;

/// Builds a client from a kubeconfig file, or from the usual places (in-cluster service
/// account, `$KUBECONFIG`, `~/.kube/config`).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, MasterError> {
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path).map_err(|e| MasterError::KubeConfig {
                source_of: path.display().to_string(),
                reason: e.to_string(),
            })?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| MasterError::KubeConfig {
                    source_of: path.display().to_string(),
                    reason: e.to_string(),
                })?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| MasterError::KubeConfig {
                source_of: "the in-cluster service account or $KUBECONFIG".into(),
                reason: e.to_string(),
            })?,
    };
    kube::Client::try_from(config).map_err(|e| MasterError::KubeConfig {
        source_of: "the loaded configuration".into(),
        reason: e.to_string(),
    })
}

/// The watched state.
#[derive(Clone)]
pub struct Caches {
    /// Every Node's metadata.
    pub nodes: Store<NodeMeta>,
    /// Every Pod's metadata.
    pub pods: Store<PodMeta>,
}

impl Caches {
    /// Waits until both caches hold a full list.
    pub async fn ready(&self) -> bool {
        self.nodes.wait_until_ready().await.is_ok() && self.pods.wait_until_ready().await.is_ok()
    }
}

/// Starts the Node and Pod watches; every change wakes `changed`. The watches retry with
/// backoff on errors (a forbidden list is logged and retried, never fatal).
pub fn spawn_watches(
    client: &kube::Client,
    changed: Arc<Notify>,
    shutdown: &CancellationToken,
) -> Caches {
    Caches {
        // An `Api` of `PartialObjectMeta` makes metadata-only requests.
        nodes: spawn_store(
            Api::<PartialObjectMeta<Node>>::all(client.clone()),
            watcher::Config::default(),
            "nodes",
            &changed,
            shutdown,
        ),
        pods: spawn_store(
            Api::<PartialObjectMeta<Pod>>::all(client.clone()),
            watcher::Config::default(),
            "pods",
            &changed,
            shutdown,
        ),
    }
}

/// The Nodes as block assignment sees them, oldest first (then by name), so that of two nodes
/// claiming overlapping blocks the one more likely to have pods on it keeps its block.
pub fn node_views<'a>(nodes: impl IntoIterator<Item = &'a NodeMeta>) -> Vec<NodeView> {
    let mut nodes: Vec<&NodeMeta> = nodes.into_iter().collect();
    nodes.sort_by(|a, b| {
        let created = |n: &NodeMeta| n.metadata.creation_timestamp.as_ref().map(|t| t.0);
        created(a)
            .cmp(&created(b))
            .then_with(|| a.metadata.name.cmp(&b.metadata.name))
    });
    nodes
        .into_iter()
        .filter_map(|n| {
            Some(NodeView {
                name: n.metadata.name.clone()?,
                annotation: n
                    .metadata
                    .annotations
                    .as_ref()
                    .and_then(|a| a.get(NODE_CIDR).cloned()),
            })
        })
        .collect()
}

/// Namespace/name → UID of every pod in the cache.
pub fn live_pods<'a>(pods: impl IntoIterator<Item = &'a PodMeta>) -> HashMap<PodKey, String> {
    pods.into_iter()
        .filter_map(|p| {
            let m = &p.metadata;
            Some((
                (m.namespace.clone()?, m.name.clone()?),
                m.uid.clone().unwrap_or_default(),
            ))
        })
        .collect()
}

/// Writes a node's block with a merge patch guarded by the `resourceVersion` the decision was
/// made on: if the node changed since (someone else annotated it), the apiserver answers
/// `409 Conflict` and the next reconcile decides again.
pub async fn patch_node_block(
    api: &Api<Node>,
    node: &str,
    resource_version: Option<&str>,
    block: &str,
) -> Result<(), kube::Error> {
    let mut metadata = json!({ "annotations": { NODE_CIDR: block } });
    if let Some(rv) = resource_version {
        metadata["resourceVersion"] = json!(rv);
    }
    let patch = json!({ "metadata": metadata });
    let params = PatchParams {
        field_manager: Some(FIELD_MANAGER.to_owned()),
        ..PatchParams::default()
    };
    api.patch_metadata(node, &params, &Patch::Merge(&patch))
        .await
        .map(|_| ())
}

/// An event reference to a node (events about cluster-scoped objects go to `default`).
pub fn node_reference(node: &NodeMeta) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Node".into()),
        name: node.metadata.name.clone(),
        uid: node.metadata.uid.clone(),
        ..ObjectReference::default()
    }
}

#[cfg(test)]
mod tests {
    use std::collections::BTreeMap;

    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, Time};
    use k8s_openapi::jiff::Timestamp;

    use super::*;

    fn mk_node(name: &str, created_s: i64, cidr: Option<&str>) -> NodeMeta {
        PartialObjectMeta {
            types: None,
            metadata: ObjectMeta {
                name: Some(name.into()),
                creation_timestamp: Some(Time(Timestamp::from_second(created_s).unwrap())),
                annotations: cidr.map(|c| BTreeMap::from([(NODE_CIDR.to_owned(), c.to_owned())])),
                ..ObjectMeta::default()
            },
            _phantom: std::marker::PhantomData,
        }
    }

    #[test]
    fn nodes_are_ordered_oldest_first_then_by_name() {
        let nodes = [
            mk_node("c", 10, None),
            mk_node("b", 5, Some("10.113.0.0/24")),
            mk_node("a", 10, None),
        ];
        let views = node_views(&nodes);
        let names: Vec<&str> = views.iter().map(|v| v.name.as_str()).collect();
        assert_eq!(names, ["b", "a", "c"]);
        assert_eq!(views[0].annotation.as_deref(), Some("10.113.0.0/24"));
    }
}
