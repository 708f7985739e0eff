//! Publishing a cluster's own `Peer` on the hub. The cluster writes what it knows about itself
//! (endpoint, port, public key, role, the slice it asks for); `spec.clusterCIDRs` is the hub's
//! to fill in (see [`crate::hub::assign`]), so it is set only when the Peer is created and
//! never patched here.

use std::collections::BTreeMap;

use ipnet::IpNet;
use kube::api::{Api, Patch, PatchParams, PostParams};
use nauti_api::daemon::owner::{Owner, adopt};
use nauti_api::peer::{Peer, PeerSpec};

use crate::core::PublicKey;
use crate::hub::assign::{NO_SLICE, REQUESTED_SLICE_ANNOTATION};

/// What a cluster says about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OwnPeer {
    /// Cluster ID, also the Peer's name.
    pub cluster_id: String,
    /// Where its gateway is reachable, if anywhere.
    pub endpoint: Option<String>,
    /// The gateway's UDP port.
    pub port: u16,
    /// The gateway's public key.
    pub public_key: PublicKey,
    /// True for the hub.
    pub is_hub: bool,
    /// True when every cluster can dial it.
    pub is_public: bool,
    /// The slice it asks for, if a specific one.
    pub requested: Option<IpNet>,
}

impl OwnPeer {
    /// The Peer to create in `namespace` (no slice yet).
    pub fn new_peer(&self, namespace: &str) -> Peer {
        let mut peer = Peer::new(
            &self.cluster_id,
            PeerSpec {
                cluster_id: self.cluster_id.clone(),
                cluster_cidrs: vec![NO_SLICE],
                endpoint: self.endpoint.clone(),
                port: self.port,
                public_key: self.public_key.to_string(),
                is_hub: self.is_hub,
                is_public: self.is_public,
            },
        );
        peer.metadata.namespace = Some(namespace.to_owned());
        if let Some(request) = self.requested {
            peer.metadata.annotations = Some(BTreeMap::from([(
                REQUESTED_SLICE_ANNOTATION.to_owned(),
                request.to_string(),
            )]));
        }
        peer
    }

    /// Whether `current` already says what this cluster says.
    pub fn matches(&self, current: &Peer) -> bool {
        let spec = &current.spec;
        let request = current
            .metadata
            .annotations
            .as_ref()
            .and_then(|a| a.get(REQUESTED_SLICE_ANNOTATION));
        spec.endpoint == self.endpoint
            && spec.port == self.port
            && spec.public_key == self.public_key.to_string()
            && spec.is_hub == self.is_hub
            && spec.is_public == self.is_public
            && request.cloned() == self.requested.map(|r| r.to_string())
    }

    /// A JSON merge patch of the fields this cluster owns (a `null` removes a field).
    pub fn merge_patch(&self) -> serde_json::Value {
        serde_json::json!({
            "metadata": {"annotations": {
                REQUESTED_SLICE_ANNOTATION: self.requested.map(|r| r.to_string()),
            }},
            "spec": {
                "endpoint": self.endpoint,
                "port": self.port,
                "publicKey": self.public_key.to_string(),
                "isHub": self.is_hub,
                "isPublic": self.is_public,
            },
        })
    }
}

/// Creates the Peer, or patches the fields this cluster owns when they differ. Returns the
/// Peer as stored.
/// A Peer it creates in its owner's namespace carries the owner's reference (only the hub's own
/// Peer lives in its own cluster).
pub async fn publish(
    api: &Api<Peer>,
    own: &OwnPeer,
    owner: Option<&Owner>,
) -> Result<Peer, kube::Error> {
    let name = own.cluster_id.as_str();
    match api.get_opt(name).await? {
        None => {
            let namespace = api_namespace(api);
            let mut peer = own.new_peer(&namespace);
            adopt(owner, &mut peer.metadata);
            let created = api.create(&PostParams::default(), &peer).await?;
            tracing::info!(peer = name, public_key = %own.public_key, "Peer published");
            Ok(created)
        }
        Some(current) if own.matches(&current) => Ok(current),
        Some(_) => {
            let patched = api
                .patch(
                    name,
                    &PatchParams::default(),
                    &Patch::Merge(own.merge_patch()),
                )
                .await?;
            tracing::info!(peer = name, public_key = %own.public_key, "Peer updated");
            Ok(patched)
        }
    }
}

fn api_namespace(api: &Api<Peer>) -> String {
    api.namespace().map_or_else(
        || nauti_api::peer::DEFAULT_PEER_NAMESPACE.to_owned(),
        str::to_owned,
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn own() -> OwnPeer {
        OwnPeer {
            cluster_id: "cluster-a".into(),
            endpoint: None,
            port: 51820,
            public_key: PublicKey([7; 32]),
            is_hub: false,
            is_public: false,
            requested: Some("10.120.0.0/16".parse().unwrap()),
        }
    }

    #[test]
    fn a_new_peer_has_no_slice_and_carries_the_request() {
        let peer = own().new_peer("nauti-system");
        assert_eq!(peer.spec.cluster_cidrs, vec![NO_SLICE]);
        assert!(own().matches(&peer));
        assert_eq!(
            peer.metadata.annotations.unwrap()[REQUESTED_SLICE_ANNOTATION],
            "10.120.0.0/16"
        );
    }

    #[test]
    fn the_patch_never_touches_the_slice_and_clears_a_dropped_request() {
        let mut o = own();
        o.requested = None;
        let patch = o.merge_patch();
        assert!(patch["spec"].get("clusterCIDRs").is_none());
        assert!(patch["metadata"]["annotations"][REQUESTED_SLICE_ANNOTATION].is_null());
        let mut peer = own().new_peer("nauti-system");
        assert!(!o.matches(&peer));
        peer.spec.cluster_cidrs = vec!["10.113.0.0/16".parse().unwrap()];
        assert!(own().matches(&peer), "the slice is not ours to compare");
    }
}
