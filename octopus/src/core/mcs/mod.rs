//! Multi-cluster services (KEP-1645), the decisions only.
//!
//! - [`export`]: from a member's `ServiceExport`, its Service and the Service's endpoints, what the
//!   member publishes to the hub: the service's properties, or why the export is not valid, and
//!   its ready pods' **global** addresses, each checked against the cluster's slice and the OVN
//!   port that owns it (a pod's own annotations are never trusted).
//! - [`merge`]: from every cluster's export of one name, the `ServiceImport` every member keeps
//!   and the `Conflict` each export carries (the oldest export wins).
//! - [`vip`]: the clusterset IP of a name, the same in every member.
//! - [`slices`]: the exported endpoints cut into EndpointSlices with stable names.
//! - [`local`]: the member's Service, EndpointSlices and OVN ports as the export plan reads them.
//! - [`hub`]: how exports are laid out on the hub and read back, trusting only the namespace
//!   for the exporting cluster.
//! - [`import`]: every member's imports from all exports: merged, with clusterset IPs.
//! - [`lb`]: the OVN load balancers that make an import's clusterset IP reach its endpoints.

pub mod export;
pub mod hub;
pub mod import;
pub mod lb;
pub mod local;
pub mod merge;
pub mod slices;
pub mod vip;

pub use export::{
    ExportPlan, ExportedEndpoint, Invalid, LocalEndpoint, LocalService, LocalServiceType, PodRef,
    ServiceProperties, SkipReason, VerifiedPorts, plan_export,
};
pub use import::{PlannedImport, admitted, plan_imports};
pub use lb::{LB_OWNER, load_balancer_name, load_balancer_names, plan_load_balancers};
pub use merge::{ClusterExport, Conflict, MergedImport, merge_exports};
pub use slices::{ExportedSlice, MAX_ENDPOINTS_PER_SLICE, cut_slices, slice_name};
pub use vip::{VipError, allocate_vip};

/// A service of the cluster set: the namespace and name it has in every cluster.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct ServiceKey {
    /// The namespace, the same in every cluster (namespace sameness).
    pub namespace: String,
    /// The Service's (and the ServiceExport's) name.
    pub name: String,
}

impl ServiceKey {
    /// The key of `namespace/name`.
    pub fn new(namespace: impl Into<String>, name: impl Into<String>) -> Self {
        Self {
            namespace: namespace.into(),
            name: name.into(),
        }
    }
}

impl std::fmt::Display for ServiceKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}
