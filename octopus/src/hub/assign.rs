//! Which slice each `Peer` holds, as the hub decides it.
//!
//! The hub owns `spec.clusterCIDRs` of every Peer: a member creates its Peer with
//! [`NO_SLICE`] there and, if it wants a specific slice, names it in the annotation
//! [`REQUESTED_SLICE_ANNOTATION`]. On every pass the hub judges the Peers in order of
//! precedence (oldest first, then by name, as [`review_peers`](crate::core::review_peers)
//! does) and writes back either the slice it assigned or [`NO_SLICE`] with the reason, so a
//! member reads its slice from its own Peer once `Valid=True` covers the Peer's generation.
//! Peers that hold a slice are judged before those that hold none.
//!
//! A Peer keeps the slice it holds while that slice stays valid, so a restart of the hub or of
//! a member moves nobody. A request is granted only if free and is never replaced by another
//! slice; a refused request leaves the Peer with no slice.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;

use ipnet::{IpNet, Ipv4Net};
use nauti_api::Peer;
use nauti_api::peer::condition;

use crate::core::key::PublicKey;
use crate::core::review::{PeerRejection, by_age};
use crate::core::slices::{SliceClaim, SlicePolicy};

/// Annotation on a Peer naming the slice its cluster asks for (a CIDR); absent: any slice.
pub const REQUESTED_SLICE_ANNOTATION: &str = "nauti.io/requested-cidr";

/// What `spec.clusterCIDRs` holds while a Peer has no slice (the field may not be empty).
/// It lies outside every global CIDR worth the name, so no cluster routes it.
pub const NO_SLICE: IpNet = IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::UNSPECIFIED, 32));

/// Reason of `Valid=False` when the requested-slice annotation is not a CIDR.
pub const REASON_INVALID_REQUEST: &str = "InvalidRequest";

/// Why a Peer gets no slice.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceRefusal {
    /// The Peer itself, its cluster or its slice is refused.
    #[error(transparent)]
    Peer(#[from] PeerRejection),
    /// The annotation is not a CIDR.
    #[error("annotation {REQUESTED_SLICE_ANNOTATION} {value:?} is not a CIDR")]
    BadRequest {
        /// The annotation's value.
        value: String,
    },
}

impl SliceRefusal {
    /// The reason of the `Valid=False` condition.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            Self::Peer(rejection) => rejection.condition_reason(),
            Self::BadRequest { .. } => REASON_INVALID_REQUEST,
        }
    }
}

/// The hub's decision about one Peer.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceDecision {
    /// `metadata.name` of the Peer.
    pub name: String,
    /// The slice it holds, or why it holds none.
    pub outcome: Result<IpNet, SliceRefusal>,
}

impl SliceDecision {
    /// What `spec.clusterCIDRs` should hold.
    pub fn wanted_cidrs(&self) -> Vec<IpNet> {
        vec![*self.outcome.as_ref().unwrap_or(&NO_SLICE)]
    }

    /// The `Valid` condition as (status, reason, message).
    pub fn valid_condition(&self) -> (bool, &'static str, String) {
        match &self.outcome {
            Ok(slice) => (
                true,
                condition::REASON_VALID,
                format!("cluster slice {slice} assigned"),
            ),
            Err(refusal) => (false, refusal.condition_reason(), refusal.to_string()),
        }
    }
}

/// The slice a Peer holds according to the hub: its first CIDR when `Valid=True` was set for
/// its current generation and the CIDR is not [`NO_SLICE`].
pub fn assigned_slice(peer: &Peer) -> Option<IpNet> {
    let valid = peer.status.as_ref()?.condition(condition::VALID)?;
    let current = valid.observed_generation.is_some()
        && valid.observed_generation == peer.metadata.generation;
    if valid.status != "True" || !current {
        return None;
    }
    peer.spec
        .cluster_cidrs
        .first()
        .copied()
        .filter(|s| *s != NO_SLICE)
}

/// The request a Peer carries, if any.
fn requested(peer: &Peer) -> Result<Option<IpNet>, SliceRefusal> {
    let Some(value) = peer
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(REQUESTED_SLICE_ANNOTATION))
    else {
        return Ok(None);
    };
    value
        .trim()
        .parse::<IpNet>()
        .map(Some)
        .map_err(|_| SliceRefusal::BadRequest {
            value: value.clone(),
        })
}

fn holds_none(peer: &Peer) -> bool {
    peer.spec.cluster_cidrs.iter().all(|c| *c == NO_SLICE)
}

struct Held {
    cluster_id: String,
    slice: IpNet,
    public_key: PublicKey,
    is_hub: bool,
}

/// Decides every live Peer (those being deleted hold nothing). `joined` holds the cluster IDs
/// that may have a Peer: the joined members and the hub itself. Decisions come back in order
/// of precedence.
pub fn decide_slices(
    peers: &[Peer],
    policy: &SlicePolicy,
    joined: &BTreeSet<String>,
) -> Vec<SliceDecision> {
    let mut ordered: Vec<&Peer> = peers
        .iter()
        .filter(|p| p.metadata.deletion_timestamp.is_none())
        .collect();
    // Holders before newcomers: a Peer that already holds a slice keeps it even when a Peer
    // created in the same second sorts before it and has none yet.
    ordered.sort_by(|a, b| holds_none(a).cmp(&holds_none(b)).then_with(|| by_age(a, b)));
    let mut held: Vec<Held> = Vec::new();
    ordered
        .into_iter()
        .map(|peer| {
            let outcome = decide_one(peer, policy, joined, &held);
            if let Ok((slice, public_key)) = &outcome {
                held.push(Held {
                    cluster_id: peer.spec.cluster_id.clone(),
                    slice: *slice,
                    public_key: *public_key,
                    is_hub: peer.spec.is_hub,
                });
            }
            SliceDecision {
                name: peer.metadata.name.clone().unwrap_or_default(),
                outcome: outcome.map(|(slice, _)| slice),
            }
        })
        .collect()
}

fn decide_one(
    peer: &Peer,
    policy: &SlicePolicy,
    joined: &BTreeSet<String>,
    held: &[Held],
) -> Result<(IpNet, PublicKey), SliceRefusal> {
    // Everything but the slice: the CIDRs are the hub's to fill in, so judge the rest with a
    // placeholder that always passes the shape checks.
    let mut rest = peer.clone();
    rest.spec.cluster_cidrs = vec![NO_SLICE];
    rest.validate().map_err(PeerRejection::Spec)?;
    let spec = &peer.spec;
    if !joined.contains(&spec.cluster_id) {
        return Err(PeerRejection::UnknownCluster {
            cluster_id: spec.cluster_id.clone(),
        }
        .into());
    }
    let public_key = PublicKey(spec.public_key_bytes().map_err(PeerRejection::Spec)?);
    if let Some(other) = held.iter().find(|h| h.public_key == public_key) {
        return Err(PeerRejection::DuplicateKey {
            other_cluster: other.cluster_id.clone(),
        }
        .into());
    }
    if spec.is_hub
        && let Some(hub) = held.iter().find(|h| h.is_hub)
    {
        return Err(PeerRejection::SecondHub {
            other_cluster: hub.cluster_id.clone(),
        }
        .into());
    }
    let request = requested(peer)?;
    let mut claims: Vec<SliceClaim> = held
        .iter()
        .map(|h| SliceClaim {
            cluster_id: h.cluster_id.clone(),
            cidrs: vec![h.slice],
        })
        .collect();
    claims.push(SliceClaim {
        cluster_id: spec.cluster_id.clone(),
        cidrs: spec
            .cluster_cidrs
            .iter()
            .copied()
            .filter(|c| *c != NO_SLICE)
            .collect(),
    });
    let slice = policy
        .assign(&spec.cluster_id, request, &claims)
        .map_err(PeerRejection::Slice)?;
    Ok((slice, public_key))
}

#[cfg(test)]
#[path = "assign_tests.rs"]
mod tests;
