//! What the index is built from: plain views of the objects octopus writes in a member
//! cluster (a `ServiceImport` per exported name and labelled EndpointSlices per exporting
//! cluster). The Kubernetes adapter ([`crate::kube`]) converts the watched objects into these.

use std::net::IpAddr;

/// A multi-cluster service, by namespace and name (the ServiceImport's).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ServiceKey {
    /// Namespace (namespace sameness: the same in every cluster).
    pub namespace: String,
    /// The exported Service's name.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`, lowercased: DNS compares names case-insensitively and
    /// Kubernetes names are lowercase anyway.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_ascii_lowercase(),
            name: name.to_ascii_lowercase(),
        }
    }
}

/// An EndpointSlice, by namespace and name.
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct SliceKey {
    /// Namespace.
    pub namespace: String,
    /// The slice's own name.
    pub name: String,
}

impl SliceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: &str, name: &str) -> Self {
        Self {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        }
    }
}

/// How consumers reach an imported service.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ImportKind {
    /// Through the clusterset IPs (at most one per family).
    ClusterSetIp(Vec<IpAddr>),
    /// Directly at the ready endpoints' global addresses.
    Headless,
}

/// A port of the service or of a slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct PortView {
    /// The port's name; empty for the single unnamed port of a service.
    pub name: String,
    /// `tcp`, `udp` or `sctp` (lowercase, as it appears in SRV names).
    pub protocol: String,
    /// The port number.
    pub port: u16,
}

impl PortView {
    /// A port; name and protocol are lowercased.
    pub fn new(name: &str, protocol: &str, port: u16) -> Self {
        Self {
            name: name.to_ascii_lowercase(),
            protocol: protocol.to_ascii_lowercase(),
            port,
        }
    }
}

/// The parts of a `ServiceImport` that DNS answers depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ImportView {
    /// `ClusterSetIP` (with its IPs) or `Headless`.
    pub kind: ImportKind,
    /// The service's ports, merged across clusters.
    pub ports: Vec<PortView>,
}

/// One endpoint of an imported slice.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct EndpointView {
    /// The pod's global addresses.
    pub addresses: Vec<IpAddr>,
    /// The endpoint's `hostname`, if set.
    pub hostname: Option<String>,
    /// The endpoint takes new traffic: `ready` not false and not terminating. Only these are
    /// answered, as the MCS DNS specification requires.
    pub ready: bool,
}

/// The parts of an imported EndpointSlice that DNS answers depend on.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct SliceView {
    /// The multi-cluster service the slice belongs to (label
    /// `multicluster.kubernetes.io/service-name`).
    pub service: ServiceKey,
    /// The cluster the endpoints live in (label `multicluster.kubernetes.io/source-cluster`),
    /// lowercased.
    pub cluster: String,
    /// The slice's ports (the pods' port numbers, by name).
    pub ports: Vec<PortView>,
    /// The endpoints.
    pub endpoints: Vec<EndpointView>,
}
