//! The Deployment that owns what a daemon creates at run time (its Lease, its ConfigMap, its
//! WireGuard key, the hub's own Peer): each such object carries an owner reference to it, so
//! Kubernetes' garbage collector removes them once the Deployment goes (`helm uninstall`).
//!
//! Owner references cannot cross namespaces: a namespaced object whose owner lies in another
//! namespace counts as orphaned and is deleted at once. An object outside the owner's
//! namespace therefore gets no reference ([`Owner::adopt`]).

use std::time::Duration;

use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{ObjectMeta, OwnerReference};
use kube::Api;
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::core::backoff::Backoff;

/// Flags naming the owning Deployment.
#[derive(Debug, Clone, Default, clap::Args)]
pub struct OwnerArgs {
    /// Deployment (in the daemon's namespace) that owns the objects this daemon creates at run
    /// time, so they go with it; none: they stay until removed by hand.
    #[arg(long, env = "NAUTI_OWNER_DEPLOYMENT")]
    pub owner_deployment: Option<String>,
}

/// An owning object and its namespace.
#[derive(Debug, Clone, PartialEq)]
pub struct Owner {
    namespace: String,
    reference: OwnerReference,
}

// Every field of an owner reference is a string or a flag: equality is total.
impl Eq for Owner {}

impl Owner {
    /// The owner `deployment`, as read from the API server.
    pub fn of_deployment(deployment: &Deployment) -> Option<Self> {
        let meta = &deployment.metadata;
        Some(Self {
            namespace: meta.namespace.clone()?,
            reference: OwnerReference {
                api_version: "apps/v1".into(),
                kind: "Deployment".into(),
                name: meta.name.clone()?,
                uid: meta.uid.clone()?,
                // Nothing waits for these objects: the owner goes at once, they follow.
                block_owner_deletion: None,
                controller: None,
            },
        })
    }

    /// The reference, for an object in `namespace`; none outside the owner's namespace.
    pub fn reference_in(&self, namespace: &str) -> Option<OwnerReference> {
        (namespace == self.namespace).then(|| self.reference.clone())
    }

    /// Adds the reference to `meta` (once) when its namespace is the owner's.
    pub fn adopt(&self, meta: &mut ObjectMeta) {
        let Some(reference) = meta
            .namespace
            .as_deref()
            .and_then(|ns| self.reference_in(ns))
        else {
            return;
        };
        let references = meta.owner_references.get_or_insert_with(Vec::new);
        if !references.iter().any(|r| r.uid == reference.uid) {
            references.push(reference);
        }
    }
}

/// Adds `owner`'s reference to `meta`, if there is an owner.
pub fn adopt(owner: Option<&Owner>, meta: &mut ObjectMeta) {
    if let Some(owner) = owner {
        owner.adopt(meta);
    }
}

/// How long a daemon tries to read its owner before going on without one.
const RESOLVE_FOR: Duration = Duration::from_secs(30);

/// Reads the owning Deployment named by `args` in `namespace`. The daemon works without an
/// owner, its objects then outliving it, so after [`RESOLVE_FOR`] of failures (or a stop)
/// this warns and returns `None`.
pub async fn resolve_owner(
    args: &OwnerArgs,
    client: kube::Client,
    namespace: &str,
    stop: &CancellationToken,
) -> Option<Owner> {
    let name = args.owner_deployment.as_deref()?;
    let api: Api<Deployment> = Api::namespaced(client, namespace);
    let mut backoff = Backoff::new(Duration::from_millis(250), Duration::from_secs(5));
    let deadline = tokio::time::Instant::now() + RESOLVE_FOR;
    loop {
        let error = match api.get(name).await {
            Ok(deployment) => match Owner::of_deployment(&deployment) {
                Some(owner) => {
                    info!(deployment = %name, %namespace, "objects made at run time belong to this Deployment");
                    return Some(owner);
                }
                None => "it has no name, namespace or uid".to_owned(),
            },
            Err(error) => error.to_string(),
        };
        let delay = backoff.next_delay();
        if tokio::time::Instant::now() + delay >= deadline {
            warn!(deployment = %name, %namespace, %error, "cannot read the owning Deployment; objects made at run time will outlive it");
            return None;
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deployment(namespace: &str) -> Deployment {
        Deployment {
            metadata: ObjectMeta {
                name: Some("octopus-member".into()),
                namespace: Some(namespace.into()),
                uid: Some("0d2c6b0e-1".into()),
                ..ObjectMeta::default()
            },
            ..Deployment::default()
        }
    }

    fn meta(namespace: Option<&str>) -> ObjectMeta {
        ObjectMeta {
            name: Some("nauti-cluster".into()),
            namespace: namespace.map(str::to_owned),
            ..ObjectMeta::default()
        }
    }

    #[test]
    fn an_object_in_the_owners_namespace_is_adopted_once() {
        let owner = Owner::of_deployment(&deployment("nauti-system")).unwrap();
        let mut object = meta(Some("nauti-system"));
        owner.adopt(&mut object);
        owner.adopt(&mut object);
        let references = object.owner_references.unwrap();
        assert_eq!(references.len(), 1);
        assert_eq!(references[0].kind, "Deployment");
        assert_eq!(references[0].name, "octopus-member");
        assert_eq!(references[0].uid, "0d2c6b0e-1");
    }

    #[test]
    fn an_object_elsewhere_or_without_a_namespace_gets_no_reference() {
        // The garbage collector would take a reference across namespaces for a missing owner
        // and delete the object at once.
        let owner = Owner::of_deployment(&deployment("nauti-system")).unwrap();
        for namespace in [Some("peers"), None] {
            let mut object = meta(namespace);
            owner.adopt(&mut object);
            assert_eq!(object.owner_references, None, "{namespace:?}");
        }
        let mut object = meta(Some("nauti-system"));
        adopt(None, &mut object);
        assert_eq!(object.owner_references, None);
    }

    #[test]
    fn a_deployment_without_a_uid_is_no_owner() {
        let mut unsaved = deployment("nauti-system");
        unsaved.metadata.uid = None;
        assert_eq!(Owner::of_deployment(&unsaved), None);
    }
}
