//! `ServiceImport`: a service exported somewhere in the cluster set, as seen by a consumer.
//! Nauti's octopus writes these in every member; users only read them.
//!
//! One deliberate difference from upstream: `spec` is required here (the derive makes it so),
//! where upstream marks it optional. A ServiceImport without ports and type means nothing, and
//! only Nauti writes them, so no valid object is refused.

use k8s_openapi::api::core::v1::SessionAffinityConfig;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Condition;
use kube::CustomResource;
use schemars::JsonSchema;
use serde::{Deserialize, Serialize};

/// Condition types and reasons on `ServiceImport.status.conditions`, as defined upstream.
pub mod import_condition {
    /// The import is usable.
    pub const READY: &str = "Ready";
    /// `Ready=True`.
    pub const REASON_READY: &str = "Ready";
    /// `Ready=False`/`Unknown` while being created or updated.
    pub const REASON_PENDING: &str = "Pending";
    /// `Ready=False`: the IP families of the exporting clusters do not fit this one.
    pub const REASON_IP_FAMILY_NOT_SUPPORTED: &str = "IPFamilyNotSupported";
}

/// How consumers reach the service.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum ServiceImportType {
    /// Through a cluster-set VIP (`ips`).
    ClusterSetIP,
    /// Directly at the backend pods' addresses; Nauti's crossdns answers with the pods'
    /// global IPs.
    Headless,
}

/// Whether imported EndpointSlices exist for the import.
#[derive(Serialize, Deserialize, Clone, Copy, Debug, PartialEq, Eq, Hash, JsonSchema)]
pub enum EndpointSliceObjects {
    /// Imported EndpointSlices are present.
    Present,
    /// They are not (e.g. the implementation programs the data plane directly).
    Absent,
}

/// A port of the multi-cluster service.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServicePort {
    /// The port's name (a DNS label); must match the EndpointSlice port name. Optional when the
    /// service has a single port.
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub name: String,
    /// `TCP`, `UDP` or `SCTP`.
    #[serde(default = "default_protocol")]
    pub protocol: String,
    /// Application protocol hint (IANA service name or a prefixed name such as
    /// `kubernetes.io/h2c`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub app_protocol: Option<String>,
    /// The port exposed by the service.
    #[schemars(range(min = 1, max = 65535))]
    pub port: i32,
}

fn default_protocol() -> String {
    "TCP".to_owned()
}

/// Describes an imported service and what is needed to consume it.
#[allow(
    clippy::duplicated_attributes,
    reason = "each printcolumn(..) repeats `type_`; clippy reads them as duplicates"
)]
#[derive(CustomResource, Serialize, Deserialize, Clone, Debug, PartialEq, JsonSchema)]
#[kube(
    group = "multicluster.x-k8s.io",
    version = "v1beta1",
    kind = "ServiceImport",
    plural = "serviceimports",
    namespaced,
    status = "ServiceImportStatus",
    derive = "PartialEq",
    shortname = "svcim",
    shortname = "svcimport",
    category = "multicluster",
    doc = "ServiceImport describes a service imported from clusters in a ClusterSet.",
    printcolumn(
        name = "Type",
        type_ = "string",
        description = "The type of this ServiceImport",
        json_path = ".spec.type"
    ),
    printcolumn(
        name = "IP",
        type_ = "string",
        description = "The VIP for this ServiceImport",
        json_path = ".spec.ips"
    ),
    printcolumn(
        name = "Age",
        type_ = "date",
        json_path = ".metadata.creationTimestamp"
    )
)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportSpec {
    /// The service's ports, merged from every exporting cluster.
    #[schemars(extend("x-kubernetes-list-type" = "atomic"))]
    pub ports: Vec<ServicePort>,
    /// The cluster-set VIP(s) when `type` is `ClusterSetIP`; at most one per family.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub ips: Vec<String>,
    /// `ClusterSetIP` or `Headless`.
    #[serde(rename = "type")]
    pub type_: ServiceImportType,
    /// `ClientIP` or `None` (the default); ignored for `Headless`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity: Option<String>,
    /// Session affinity settings.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// `IPv4` and/or `IPv6`: the families of the imported service.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(length(max = 2))]
    pub ip_families: Vec<String>,
    /// `Cluster` or `Local`, as on a Service.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub internal_traffic_policy: Option<String>,
    /// Routing preference hint, e.g. `PreferClose`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub traffic_distribution: Option<String>,
}

/// An exporting cluster.
#[derive(Serialize, Deserialize, Clone, Debug, PartialEq, Eq, JsonSchema)]
pub struct ClusterStatus {
    /// The exporting cluster's ID (a DNS-1123 label).
    pub cluster: String,
}

/// Derived state of an imported service.
#[derive(Serialize, Deserialize, Clone, Debug, Default, PartialEq, JsonSchema)]
#[serde(rename_all = "camelCase")]
pub struct ServiceImportStatus {
    /// Whether imported EndpointSlices exist; Nauti always creates them.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub endpoint_slice_objects: Option<EndpointSliceObjects>,
    /// The clusters the service is exported from, keyed by `cluster`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(extend("x-kubernetes-list-type" = "map", "x-kubernetes-list-map-keys" = ["cluster"]))]
    pub clusters: Vec<ClusterStatus>,
    /// The `Ready` condition of the import.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    #[schemars(schema_with = "crate::schema::conditions")]
    pub conditions: Vec<Condition>,
}
