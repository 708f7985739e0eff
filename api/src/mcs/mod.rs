//! Kubernetes Multi-Cluster Services API (KEP-1645), `multicluster.x-k8s.io/v1beta1`, with the
//! upstream field names, resource names and short names so that `kubectl`, other MCS tooling
//! and existing manifests work unchanged against Nauti.
//!
//! A user creates a [`ServiceExport`] next to a Service; Nauti publishes the service's
//! EndpointSlices (carrying the pods' global IPs) to the hub and creates a [`ServiceImport`]
//! plus labelled EndpointSlices in every other member.

mod export;
mod import;

pub use export::{ServiceExport, ServiceExportSpec, ServiceExportStatus, export_condition};
pub use import::{
    ClusterStatus, EndpointSliceObjects, ServiceImport, ServiceImportSpec, ServiceImportStatus,
    ServiceImportType, ServicePort, import_condition,
};

/// API group of the MCS resources.
pub const GROUP: &str = "multicluster.x-k8s.io";

/// API version of the MCS resources served by these types.
pub const VERSION: &str = "v1beta1";

/// Label on an imported EndpointSlice naming the multi-cluster service it belongs to (the
/// ServiceImport's name), as `kubernetes.io/service-name` does for a plain Service.
pub const LABEL_SERVICE_NAME: &str = "multicluster.kubernetes.io/service-name";

/// Label on an exported or imported EndpointSlice naming the cluster its endpoints live in.
pub const LABEL_SOURCE_CLUSTER: &str = "multicluster.kubernetes.io/source-cluster";

/// The standard `endpointslice.kubernetes.io/managed-by` label; the built-in EndpointSlice
/// controller only touches slices that carry its own value.
pub const LABEL_MANAGED_BY: &str = "endpointslice.kubernetes.io/managed-by";

/// Nauti's value of [`LABEL_MANAGED_BY`] on the EndpointSlices octopus writes.
///
/// The import contract crossdns reads in a member cluster: for each exported name a
/// [`ServiceImport`] (type `ClusterSetIP` with `spec.ips`, or `Headless`; `spec.ports`), and in
/// the same namespace EndpointSlices labelled [`LABEL_SERVICE_NAME`]`=<svc>`,
/// [`LABEL_SOURCE_CLUSTER`]`=<clusterid>` and [`LABEL_MANAGED_BY`]`=`this, carrying the exporting
/// pods' global addresses, the `ready`/`serving`/`terminating` conditions and optionally a
/// `hostname` per endpoint.
pub const MANAGED_BY_NAUTI: &str = "octopus.nauti.io";

#[cfg(test)]
mod tests;
