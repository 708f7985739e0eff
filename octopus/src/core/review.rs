//! Which `Peer`s a gateway may act on, and why the others are refused.
//!
//! Peers are judged in a fixed order of precedence (oldest first, then by name) so that when
//! two Peers claim the same slice or key, the one that was there first keeps it, on every
//! cluster and after every restart. A refused Peer gets no WireGuard peer and no routes; its
//! rejection carries the reason for its `Valid=False` condition.

use std::collections::BTreeSet;
use std::net::IpAddr;

use ipnet::IpNet;
use nauti_api::peer::condition;
use nauti_api::{Peer, PeerError};

use super::key::PublicKey;
use super::slices::{SliceClaim, SliceError, SlicePolicy};

/// A Peer that passed every check, in the shape the topology needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ValidPeer {
    /// The cluster's ID (also the Peer's name).
    pub cluster_id: String,
    /// Its slices of the global network.
    pub slices: Vec<IpNet>,
    /// Where its gateway listens, if it is reachable.
    pub endpoint: Option<Endpoint>,
    /// Its gateway's WireGuard public key.
    pub public_key: PublicKey,
    /// True for the hub.
    pub is_hub: bool,
    /// True when every other cluster can dial it.
    pub is_public: bool,
}

/// A gateway's address: an IP, or a host name the adapter resolves.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// IP or DNS name, as in the Peer.
    pub host: EndpointHost,
    /// UDP port.
    pub port: u16,
}

/// The host part of an [`Endpoint`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum EndpointHost {
    /// A literal address.
    Ip(IpAddr),
    /// A DNS name, resolved at the edge.
    Name(String),
}

/// Why a Peer is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerRejection {
    /// The Peer breaks a rule of its own (name, key, endpoint, CIDRs).
    #[error(transparent)]
    Spec(#[from] PeerError),
    /// One of its slices is not acceptable to the slice policy or to the Peers before it.
    #[error(transparent)]
    Slice(#[from] SliceError),
    /// The cluster never joined (the hub knows of no such member).
    #[error("cluster {cluster_id:?} has not joined the cluster set")]
    UnknownCluster {
        /// The Peer's cluster ID.
        cluster_id: String,
    },
    /// An older Peer already uses the same WireGuard public key.
    #[error("spec.publicKey is already used by cluster {other_cluster:?}")]
    DuplicateKey {
        /// The cluster that has the key.
        other_cluster: String,
    },
    /// An older Peer already says it is the hub.
    #[error("cluster {other_cluster:?} is already the hub; a cluster set has one")]
    SecondHub {
        /// The hub.
        other_cluster: String,
    },
}

impl PeerRejection {
    /// The reason of the `Valid=False` condition.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            Self::Slice(e) => e.condition_reason(),
            Self::Spec(PeerError::OverlappingCidrs { .. }) => condition::REASON_CIDR_CONFLICT,
            Self::Spec(_) | Self::DuplicateKey { .. } | Self::SecondHub { .. } => {
                condition::REASON_INVALID_SPEC
            }
            Self::UnknownCluster { .. } => REASON_UNKNOWN_CLUSTER,
        }
    }
}

/// Reason for `Valid=False` on a Peer whose cluster never joined.
pub const REASON_UNKNOWN_CLUSTER: &str = "UnknownCluster";

/// The outcome for one Peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerVerdict {
    /// `metadata.name` of the Peer (empty if unset).
    pub name: String,
    /// The usable Peer, or why it is refused.
    pub result: Result<ValidPeer, PeerRejection>,
}

/// Precedence among Peers: the older first; within the same second (creation timestamps have
/// no finer grain) the hub's, then by name.
pub fn by_age(a: &Peer, b: &Peer) -> std::cmp::Ordering {
    let created = |p: &Peer| p.metadata.creation_timestamp.as_ref().map(|t| t.0);
    created(a)
        .cmp(&created(b))
        .then_with(|| b.spec.is_hub.cmp(&a.spec.is_hub))
        .then_with(|| a.metadata.name.cmp(&b.metadata.name))
}

/// Judges every Peer. `joined` is the set of cluster IDs that completed the join (`None` where
/// that is not known, e.g. on a member, which trusts the hub's record). Verdicts come back in
/// order of precedence.
pub fn review_peers(
    peers: &[Peer],
    policy: &SlicePolicy,
    joined: Option<&BTreeSet<String>>,
) -> Vec<PeerVerdict> {
    let mut ordered: Vec<&Peer> = peers.iter().collect();
    ordered.sort_by(|a, b| by_age(a, b));
    let mut accepted: Vec<ValidPeer> = Vec::new();
    ordered
        .into_iter()
        .map(|peer| {
            let result = review_one(peer, policy, joined, &accepted);
            if let Ok(valid) = &result {
                accepted.push(valid.clone());
            }
            PeerVerdict {
                name: peer.metadata.name.clone().unwrap_or_default(),
                result,
            }
        })
        .collect()
}

fn review_one(
    peer: &Peer,
    policy: &SlicePolicy,
    joined: Option<&BTreeSet<String>>,
    accepted: &[ValidPeer],
) -> Result<ValidPeer, PeerRejection> {
    peer.validate()?;
    let spec = &peer.spec;
    if let Some(joined) = joined
        && !joined.contains(&spec.cluster_id)
    {
        return Err(PeerRejection::UnknownCluster {
            cluster_id: spec.cluster_id.clone(),
        });
    }
    let public_key = PublicKey(spec.public_key_bytes()?);
    if let Some(other) = accepted.iter().find(|p| p.public_key == public_key) {
        return Err(PeerRejection::DuplicateKey {
            other_cluster: other.cluster_id.clone(),
        });
    }
    if spec.is_hub
        && let Some(hub) = accepted.iter().find(|p| p.is_hub)
    {
        return Err(PeerRejection::SecondHub {
            other_cluster: hub.cluster_id.clone(),
        });
    }
    let claims: Vec<SliceClaim> = accepted
        .iter()
        .map(|p| SliceClaim {
            cluster_id: p.cluster_id.clone(),
            cidrs: p.slices.clone(),
        })
        .collect();
    for cidr in &spec.cluster_cidrs {
        policy.check(*cidr, &claims)?;
    }
    let endpoint = spec.endpoint.as_ref().map(|host| Endpoint {
        host: host
            .parse::<IpAddr>()
            .map_or_else(|_| EndpointHost::Name(host.clone()), EndpointHost::Ip),
        port: spec.port,
    });
    Ok(ValidPeer {
        cluster_id: spec.cluster_id.clone(),
        slices: spec.cluster_cidrs.clone(),
        endpoint,
        public_key,
        is_hub: spec.is_hub,
        is_public: spec.is_public,
    })
}

#[cfg(test)]
#[path = "review_tests.rs"]
mod tests;
