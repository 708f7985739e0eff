//! Shared Nauti types: pod annotations, Peer and MCS CRDs, component configuration.
//!
//! - [`core`]: formats and validation rules over plain data (no kube): the `nauti.io/*`
//!   annotations ([`PodNetwork`]), MACs, CIDR rules, cluster IDs, WireGuard keys and the
//!   shared component configuration ([`NetworkConfig`]).
//! - [`peer`]: the `Peer` CRD (`nauti.io/v1alpha1`), one per member cluster, kept on the hub.
//! - [`mcs`]: the Multi-Cluster Services types (`multicluster.x-k8s.io/v1beta1`).
//! - [`conditions`]: building status conditions without churning `lastTransitionTime`.
//! - [`crd`]: the CustomResourceDefinitions generated from those types, as written to
//!   `deploy/crds/` by the `crdgen` binary.
//! - `daemon` (feature `daemon`): log flags, signals and the metrics/health endpoint shared by
//!   every Nauti daemon.

#![warn(missing_docs)]

pub mod conditions;
pub mod core;
pub mod crd;
#[cfg(feature = "daemon")]
pub mod daemon;
pub mod mcs;
pub mod peer;
mod schema;
#[cfg(any(test, feature = "testutil"))]
pub mod testutil;

pub use crate::core::annotations::{AnnotationError, PodNetwork, PodNicType, Route, keys};
pub use crate::core::config::{ConfigError, MtuConfig, MtuError, NetworkConfig};
pub use crate::core::mac::MacAddr;
pub use crate::core::net::IpFamily;
pub use crate::mcs::{ServiceExport, ServiceImport};
pub use crate::peer::{Peer, PeerError, PeerSpec, PeerStatus};
