//! What an approved member may do on the hub, as objects the hub creates when it approves and
//! deletes when the member leaves:
//!
//! - namespace `nauti-member-<id>` (labelled with the cluster ID), where a RoleBinding to the
//!   ClusterRole [`EXPORTS_CLUSTER_ROLE`] lets it write its exported EndpointSlices and
//!   ServiceImports;
//! - in the Peer namespace, a Role `nauti-member-<id>` with `resourceNames: [<id>]` that lets
//!   it update and delete only its own `Peer`, and the RoleBinding to it.
//!
//! Reading every Peer and every member's exports, and creating its own Peer, come from
//! `deploy/rbac/octopus-hub.yaml` for the whole `nauti:members` group.

use std::collections::BTreeMap;

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::api::rbac::v1::{PolicyRule, Role, RoleBinding, RoleRef, Subject};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use kube::{Resource, ResourceExt};
use nauti_api::peer::DEFAULT_PEER_NAMESPACE;

use crate::join::identity::{member_namespace, member_user};
use crate::join::token::SECRET_NAMESPACE;

/// Label on a member's namespace on the hub; its value is the cluster ID.
pub const MEMBER_LABEL: &str = "nauti.io/member-cluster";
/// The ClusterRole bound in each member's namespace (defined in deploy/rbac/octopus-hub.yaml).
pub const EXPORTS_CLUSTER_ROLE: &str = "nauti:member-exports";

fn meta(name: String, namespace: Option<&str>, cluster_id: &str) -> ObjectMeta {
    ObjectMeta {
        name: Some(name),
        namespace: namespace.map(str::to_owned),
        labels: Some(BTreeMap::from([(
            MEMBER_LABEL.to_owned(),
            cluster_id.to_owned(),
        )])),
        ..Default::default()
    }
}

fn user(cluster_id: &str) -> Vec<Subject> {
    vec![Subject {
        api_group: Some("rbac.authorization.k8s.io".to_owned()),
        kind: "User".to_owned(),
        name: member_user(cluster_id),
        namespace: None,
    }]
}

/// Annotation on a member's namespace naming the bootstrap token it joined with, until the hub
/// has deleted that token (see [`used_tokens`]).
pub const JOIN_TOKEN_ANNOTATION: &str = "nauti.io/join-token-id";

/// The member's namespace on the hub; `join_token` is the ID of the token it joined with.
pub fn namespace(cluster_id: &str, join_token: Option<&str>) -> Namespace {
    let mut metadata = meta(member_namespace(cluster_id), None, cluster_id);
    metadata.annotations =
        join_token.map(|id| BTreeMap::from([(JOIN_TOKEN_ANNOTATION.to_owned(), id.to_owned())]));
    Namespace {
        metadata,
        ..Default::default()
    }
}

/// The Role that lets the member write only the Peer named after it.
pub fn own_peer_role(cluster_id: &str) -> Role {
    Role {
        metadata: meta(
            member_namespace(cluster_id),
            Some(DEFAULT_PEER_NAMESPACE),
            cluster_id,
        ),
        rules: Some(vec![PolicyRule {
            api_groups: Some(vec![nauti_api::peer::GROUP.to_owned()]),
            resources: Some(vec!["peers".to_owned()]),
            resource_names: Some(vec![cluster_id.to_owned()]),
            verbs: ["get", "update", "patch", "delete"]
                .map(str::to_owned)
                .to_vec(),
            ..Default::default()
        }]),
    }
}

/// The binding of [`own_peer_role`] to the member.
pub fn own_peer_binding(cluster_id: &str) -> RoleBinding {
    RoleBinding {
        metadata: meta(
            member_namespace(cluster_id),
            Some(DEFAULT_PEER_NAMESPACE),
            cluster_id,
        ),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "Role".to_owned(),
            name: member_namespace(cluster_id),
        },
        subjects: Some(user(cluster_id)),
    }
}

/// The binding of [`EXPORTS_CLUSTER_ROLE`] to the member in its own namespace.
pub fn exports_binding(cluster_id: &str) -> RoleBinding {
    let ns = member_namespace(cluster_id);
    RoleBinding {
        metadata: meta("nauti-member-exports".to_owned(), Some(&ns), cluster_id),
        role_ref: RoleRef {
            api_group: Some("rbac.authorization.k8s.io".to_owned()),
            kind: "ClusterRole".to_owned(),
            name: EXPORTS_CLUSTER_ROLE.to_owned(),
        },
        subjects: Some(user(cluster_id)),
    }
}

/// The cluster IDs of joined members: those with a namespace on the hub, including one still
/// being deleted (its ID is free once the namespace is gone).
pub async fn joined_members(hub: kube::Client) -> Result<Vec<String>, kube::Error> {
    let api: Api<Namespace> = Api::all(hub);
    let list = api
        .list(&ListParams::default().labels(MEMBER_LABEL))
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|ns| ns.labels().get(MEMBER_LABEL).cloned())
        .collect())
}

async fn ensure<K>(api: &Api<K>, object: &K) -> Result<(), kube::Error>
where
    K: Resource + Clone + serde::de::DeserializeOwned + serde::Serialize + std::fmt::Debug,
{
    match api.create(&PostParams::default(), object).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(e),
    }
}

/// Creates (idempotently) everything [`namespace`], [`own_peer_role`], [`own_peer_binding`]
/// and [`exports_binding`] describe; `join_token` is the ID of the token of a join.
pub async fn grant(
    hub: kube::Client,
    cluster_id: &str,
    join_token: Option<&str>,
) -> Result<(), kube::Error> {
    ensure(&Api::all(hub.clone()), &namespace(cluster_id, join_token)).await?;
    let peers_ns = DEFAULT_PEER_NAMESPACE;
    ensure(
        &Api::namespaced(hub.clone(), peers_ns),
        &own_peer_role(cluster_id),
    )
    .await?;
    ensure(
        &Api::namespaced(hub.clone(), peers_ns),
        &own_peer_binding(cluster_id),
    )
    .await?;
    ensure(
        &Api::namespaced(hub, &member_namespace(cluster_id)),
        &exports_binding(cluster_id),
    )
    .await
}

/// Removes a member's grants: its Peer Role and binding and its namespace (with its exports and
/// their binding). Certificates already issued stay valid until they expire but carry no
/// rights any more.
pub async fn revoke(hub: kube::Client, cluster_id: &str) -> Result<(), kube::Error> {
    let name = member_namespace(cluster_id);
    let gone = |r: Result<(), kube::Error>| match r {
        Err(kube::Error::Api(s)) if s.code == 404 => Ok(()),
        other => other,
    };
    let dp = DeleteParams::default();
    let bindings: Api<RoleBinding> = Api::namespaced(hub.clone(), DEFAULT_PEER_NAMESPACE);
    gone(bindings.delete(&name, &dp).await.map(|_| ()))?;
    let roles: Api<Role> = Api::namespaced(hub.clone(), DEFAULT_PEER_NAMESPACE);
    gone(roles.delete(&name, &dp).await.map(|_| ()))?;
    let namespaces: Api<Namespace> = Api::all(hub);
    gone(namespaces.delete(&name, &dp).await.map(|_| ()))
}

/// (cluster ID, token ID) of every member whose join token the hub has not deleted yet.
pub async fn used_tokens(hub: kube::Client) -> Result<Vec<(String, String)>, kube::Error> {
    let api: Api<Namespace> = Api::all(hub);
    let list = api
        .list(&ListParams::default().labels(MEMBER_LABEL))
        .await?;
    Ok(list
        .items
        .iter()
        .filter_map(|ns| {
            let cluster = ns.labels().get(MEMBER_LABEL)?;
            let token = ns.annotations().get(JOIN_TOKEN_ANNOTATION)?;
            Some((cluster.clone(), token.clone()))
        })
        .collect())
}

/// Deletes the bootstrap token `token_id` a member joined with, so that nobody can join with it
/// again, then forgets it on the member's namespace. kube-apiserver keeps accepting a token
/// it has accepted before for its token cache's lifetime (10 s by default) after this.
pub async fn delete_join_token(
    hub: kube::Client,
    cluster_id: &str,
    token_id: &str,
) -> Result<(), kube::Error> {
    let secrets: Api<Secret> = Api::namespaced(hub.clone(), SECRET_NAMESPACE);
    let name = format!("bootstrap-token-{token_id}");
    match secrets.delete(&name, &DeleteParams::default()).await {
        Ok(_) => {}
        Err(kube::Error::Api(s)) if s.code == 404 => {}
        Err(e) => return Err(e),
    }
    let namespaces: Api<Namespace> = Api::all(hub);
    let patch = serde_json::json!({"metadata": {"annotations": {JOIN_TOKEN_ANNOTATION: null}}});
    namespaces
        .patch(
            &member_namespace(cluster_id),
            &PatchParams::default(),
            &Patch::Merge(patch),
        )
        .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_joining_members_namespace_names_its_token_and_a_renewal_does_not() {
        let joined = namespace("cluster-a", Some("re51os"));
        assert_eq!(
            joined.metadata.name.as_deref(),
            Some("nauti-member-cluster-a")
        );
        assert_eq!(joined.labels()[MEMBER_LABEL], "cluster-a");
        assert_eq!(joined.annotations()[JOIN_TOKEN_ANNOTATION], "re51os");
        assert!(namespace("cluster-a", None).metadata.annotations.is_none());
    }
}
