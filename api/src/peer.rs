//! The `Peer` custom resource (`peers.nauti.io`, `v1alpha1`): one per cluster of the cluster
//! set, stored on the hub. Octopus on each member publishes its own `Peer` and reads the others
//! to configure WireGuard and routes.
//!
//! # Why namespaced
//!
//! Peers are cluster-set-wide facts, which would suggest a cluster-scoped resource, but the
//! design's registration model says a member's credential may write only its own `Peer` and
//! read the rest. With Peers in one namespace on the hub ([`DEFAULT_PEER_NAMESPACE`]), that is a
//! plain namespaced `Role` (`get`/`list`/`watch` on `peers`, `update`/`patch` restricted by
//! `resourceNames` to the member's cluster ID) bound in that namespace: a member credential
//! then carries no cluster-scoped permission at all, and uninstalling the hub removes the
//! namespace and every Peer with it. This is the same choice Submariner makes for its broker.
//! The Peer's name is its cluster ID, which is what makes `resourceNames` work; see
//! [`Peer::validate`].

use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

use crate::core::names::{LabelError, validate_dns1123_label, validate_dns1123_subdomain};
use crate::core::net::{CidrError, ensure_canonical, find_overlap};
use crate::core::wgkey::{KeyError, parse_wireguard_key};

/// API group of Nauti's own resources.
pub const GROUP: &str = "nauti.io";

/// The namespace on the hub that holds every `Peer` (see the module docs for why).
pub const DEFAULT_PEER_NAMESPACE: &str = "nauti-system";

/// WireGuard's well-known port, used when a Peer does not say otherwise.
pub const DEFAULT_WIREGUARD_PORT: u16 = 51820;

/// Condition types and reasons set on `Peer.status.conditions`.
pub mod condition {
    /// The hub has a tunnel to the cluster and saw a recent handshake.
    pub const READY: &str = "Ready";
    /// The spec passed [`PeerSpec::validate`](super::PeerSpec::validate) on the hub.
    pub const VALID: &str = "Valid";
    /// Reason for `Ready=True`: a handshake within the last 3 minutes (WireGuard rekeys every 2
    /// minutes on a live tunnel).
    pub const REASON_CONNECTED: &str = "Connected";
    /// Reason for `Ready=False` when the hub's gateway never completed a handshake with the peer.
    pub const REASON_NEVER_CONNECTED: &str = "NeverConnected";
    /// Reason for `Ready=False` when there was a handshake, but none for longer than that.
    pub const REASON_NOT_ANSWERING: &str = "NotAnswering";
    /// Reason for `Valid=True`.
    pub const REASON_VALID: &str = "Valid";
    /// Reason for `Valid=False`; the message carries the [`PeerError`](super::PeerError) text.
    pub const REASON_INVALID_SPEC: &str = "InvalidSpec";
    /// Reason for `Valid=False` when another Peer already claims an overlapping CIDR.
    pub const REASON_CIDR_CONFLICT: &str = "CIDRConflict";
}

/// What a cluster tells the others about itself.
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(..) repeats `type_`; clippy reads them as duplicates"
)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "nauti.io",
    version = "v1alpha1",
    kind = "Peer",
    plural = "peers",
    namespaced,
    status = "PeerStatus",
    derive = "PartialEq",
    category = "nauti",
    doc = "A member (or the hub) of a Nauti cluster set: its global-network CIDRs and how to reach its WireGuard gateway. Named after its cluster ID.",
    printcolumn(name = "Cluster", type_ = "string", json_path = ".spec.clusterID"),
    printcolumn(name = "CIDRs", type_ = "string", json_path = ".spec.clusterCIDRs"),
    printcolumn(name = "Endpoint", type_ = "string", json_path = ".spec.endpoint"),
    printcolumn(name = "Hub", type_ = "boolean", json_path = ".spec.isHub"),
    printcolumn(name = "Public", type_ = "boolean", json_path = ".spec.isPublic"),
    printcolumn(
        name = "Ready",
        type_ = "string",
        json_path = r#".status.conditions[?(@.type=="Ready")].status"#
    ),
    printcolumn(
        name = "Handshake",
        type_ = "date",
        json_path = ".status.lastHandshake"
    ),
    printcolumn(
        name = "Latency",
        type_ = "integer",
        json_path = ".status.latencyMs",
        priority = 1
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
#[schemars(extend("x-kubernetes-validations" = [{
    "rule": "!((has(self.isHub) && self.isHub) || (has(self.isPublic) && self.isPublic)) || has(self.endpoint)",
    "message": "endpoint is required when isHub or isPublic is true",
}]))]
pub struct PeerSpec {
    /// The cluster's ID: a DNS-1123 label, unique in the cluster set; the Peer's name equals it.
    #[serde(rename = "clusterID")]
    #[schemars(schema_with = "crate::schema::cluster_id")]
    pub cluster_id: String,

    /// The cluster's slices of the global network: canonical CIDRs that do not overlap.
    #[serde(rename = "clusterCIDRs")]
    #[schemars(schema_with = "crate::schema::cluster_cidrs")]
    pub cluster_cidrs: Vec<IpNet>,

    /// Host name or IP of the WireGuard gateway; absent for members behind NAT, which then
    /// only dial out.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::endpoint")]
    pub endpoint: Option<String>,

    /// UDP port of the WireGuard gateway.
    #[serde(default = "default_port")]
    #[schemars(schema_with = "crate::schema::port")]
    pub port: u16,

    /// The gateway's WireGuard public key: standard base64 of exactly 32 bytes, as `wg pubkey`
    /// prints it.
    #[schemars(schema_with = "crate::schema::public_key")]
    pub public_key: String,

    /// True for the hub, the one cluster every member peers with.
    #[serde(default)]
    pub is_hub: bool,

    /// True when the endpoint is reachable from every other cluster, so members peer with it
    /// directly instead of going through the hub.
    #[serde(default)]
    pub is_public: bool,
}

const fn default_port() -> u16 {
    DEFAULT_WIREGUARD_PORT
}

/// What the hub observes about a cluster.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct PeerStatus {
    /// The `Ready` and `Valid` conditions, one per type.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,

    /// Time of the last WireGuard handshake with the cluster (RFC 3339).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub last_handshake: Option<Time>,

    /// Round-trip time to the cluster's gateway, in milliseconds.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "crate::schema::latency_ms")]
    pub latency_ms: Option<u64>,

    /// Bytes the hub's gateway received from the cluster through the tunnel (the device's
    /// counter: it starts again at 0 when the gateway restarts).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "byte_count")]
    pub rx_bytes: Option<u64>,

    /// Bytes the hub's gateway sent to the cluster through the tunnel (the device's counter).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    #[schemars(schema_with = "byte_count")]
    pub tx_bytes: Option<u64>,
}

fn byte_count(_: &mut schemars::SchemaGenerator) -> schemars::Schema {
    schemars::json_schema!({
        "description": "A WireGuard device byte counter, as last read by the hub.",
        "type": "integer",
        "format": "int64",
        "minimum": 0,
        "nullable": true,
    })
}

impl PeerStatus {
    /// The condition of the given type, if set.
    pub fn condition(&self, type_: &str) -> Option<&Condition> {
        self.conditions.iter().find(|c| c.type_ == type_)
    }
}

/// A `Peer` that would mislead the other clusters.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PeerError {
    /// `spec.clusterID` is not a DNS-1123 label.
    #[error("spec.clusterID {value:?} {source}")]
    ClusterId {
        /// The value as given.
        value: String,
        /// The rule it breaks.
        #[source]
        source: LabelError,
    },
    /// The object's name differs from its cluster ID.
    #[error("metadata.name {name:?} must equal spec.clusterID {cluster_id:?}")]
    NameMismatch {
        /// `metadata.name` (empty if unset).
        name: String,
        /// `spec.clusterID`.
        cluster_id: String,
    },
    /// `spec.clusterCIDRs` is empty.
    #[error("spec.clusterCIDRs must list at least one network")]
    NoClusterCidrs,
    /// An entry of `spec.clusterCIDRs` has host bits set.
    #[error("spec.clusterCIDRs[{index}] {value}: {source}")]
    ClusterCidr {
        /// Position in the list.
        index: usize,
        /// The entry.
        value: IpNet,
        /// What is wrong with it.
        #[source]
        source: CidrError,
    },
    /// Two entries of `spec.clusterCIDRs` overlap (including duplicates).
    #[error("spec.clusterCIDRs {first} and {second} overlap")]
    OverlappingCidrs {
        /// The earlier entry.
        first: IpNet,
        /// The later entry.
        second: IpNet,
    },
    /// `spec.endpoint` is neither an IP nor a host name.
    #[error("spec.endpoint {value:?} is neither an IP address nor a DNS host name ({source})")]
    Endpoint {
        /// The value as given.
        value: String,
        /// Why it is not a host name.
        #[source]
        source: LabelError,
    },
    /// A hub or public member without an endpoint.
    #[error("spec.endpoint is required when spec.{role} is true, so other clusters can dial it")]
    EndpointRequired {
        /// `isHub` or `isPublic`.
        role: &'static str,
    },
    /// `spec.port` is 0.
    #[error("spec.port 0 is not a usable UDP port")]
    Port,
    /// `spec.publicKey` is not a WireGuard key.
    #[error("spec.publicKey {value:?} {source}")]
    PublicKey {
        /// The value as given.
        value: String,
        /// What is wrong with it.
        #[source]
        source: KeyError,
    },
}

impl PeerSpec {
    /// Checks every rule the apiserver schema cannot fully express; reports the first failure.
    pub fn validate(&self) -> Result<(), PeerError> {
        validate_dns1123_label(&self.cluster_id).map_err(|source| PeerError::ClusterId {
            value: self.cluster_id.clone(),
            source,
        })?;
        if self.cluster_cidrs.is_empty() {
            return Err(PeerError::NoClusterCidrs);
        }
        for (index, net) in self.cluster_cidrs.iter().enumerate() {
            ensure_canonical(*net).map_err(|source| PeerError::ClusterCidr {
                index,
                value: *net,
                source,
            })?;
        }
        if let Some((first, second)) = find_overlap(&self.cluster_cidrs) {
            return Err(PeerError::OverlappingCidrs { first, second });
        }
        match &self.endpoint {
            Some(ep) => validate_endpoint(ep)?,
            None if self.is_hub => return Err(PeerError::EndpointRequired { role: "isHub" }),
            None if self.is_public => return Err(PeerError::EndpointRequired { role: "isPublic" }),
            None => {}
        }
        if self.port == 0 {
            return Err(PeerError::Port);
        }
        parse_wireguard_key(&self.public_key).map_err(|source| PeerError::PublicKey {
            value: self.public_key.clone(),
            source,
        })?;
        Ok(())
    }

    /// The decoded WireGuard public key, for callers that already validated the spec.
    pub fn public_key_bytes(&self) -> Result<[u8; 32], PeerError> {
        parse_wireguard_key(&self.public_key).map_err(|source| PeerError::PublicKey {
            value: self.public_key.clone(),
            source,
        })
    }
}

impl Peer {
    /// Validates the spec and that the object is named after its cluster ID (which the
    /// members' RBAC `resourceNames` rely on).
    pub fn validate(&self) -> Result<(), PeerError> {
        self.spec.validate()?;
        let name = self.metadata.name.as_deref().unwrap_or_default();
        if name != self.spec.cluster_id {
            return Err(PeerError::NameMismatch {
                name: name.to_owned(),
                cluster_id: self.spec.cluster_id.clone(),
            });
        }
        Ok(())
    }
}

fn validate_endpoint(ep: &str) -> Result<(), PeerError> {
    if ep.parse::<IpAddr>().is_ok() {
        return Ok(());
    }
    validate_dns1123_subdomain(ep).map_err(|source| PeerError::Endpoint {
        value: ep.to_owned(),
        source,
    })
}

#[cfg(test)]
mod tests;
