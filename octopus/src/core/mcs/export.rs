//! What a member publishes for one `ServiceExport`.
//!
//! The endpoints come from the Service's own EndpointSlices (the cluster's controller already
//! knows which pods back it and whether they are ready), but the addresses published are the
//! pods' global ones, taken from the OVN logical switch ports of this cluster, matched by pod UID
//! and checked against the cluster's slice. A pod that writes a `nauti.io/ip_address` of its own
//! choosing changes nothing here: its annotations are never read.

use std::collections::BTreeMap;
use std::net::IpAddr;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::SessionAffinityConfig;
use nauti_api::mcs::{ServiceImportType, ServicePort, export_condition};

/// The type of the Service being exported, as the Service says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LocalServiceType {
    /// `ClusterIP` (with `clusterIP: None` when headless).
    ClusterIp,
    /// `NodePort`: exported like a ClusterIP Service.
    NodePort,
    /// `LoadBalancer`: exported like a ClusterIP Service.
    LoadBalancer,
    /// `ExternalName`: has no endpoints and cannot be exported.
    ExternalName,
}

/// The parts of a Service that an export carries.
#[derive(Debug, Clone, PartialEq)]
pub struct LocalService {
    /// The Service's type.
    pub type_: LocalServiceType,
    /// `clusterIP: None`.
    pub headless: bool,
    /// The Service's ports.
    pub ports: Vec<ServicePort>,
    /// `ClientIP` or `None`.
    pub session_affinity: Option<String>,
    /// Session affinity settings.
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// `Cluster` or `Local`.
    pub internal_traffic_policy: Option<String>,
    /// Routing preference hint.
    pub traffic_distribution: Option<String>,
}

/// The properties of an exported service that every exporting cluster must agree on (or the
/// oldest export decides).
#[derive(Debug, Clone, PartialEq)]
pub struct ServiceProperties {
    /// `ClusterSetIP` unless the Service is headless.
    pub type_: ServiceImportType,
    /// The Service's ports.
    pub ports: Vec<ServicePort>,
    /// `ClientIP` or `None`; absent means `None`.
    pub session_affinity: Option<String>,
    /// Session affinity settings.
    pub session_affinity_config: Option<SessionAffinityConfig>,
    /// `Cluster` or `Local`.
    pub internal_traffic_policy: Option<String>,
    /// Routing preference hint.
    pub traffic_distribution: Option<String>,
}

impl ServiceProperties {
    /// The properties an export of `service` carries.
    pub fn of(service: &LocalService) -> Self {
        Self {
            type_: if service.headless {
                ServiceImportType::Headless
            } else {
                ServiceImportType::ClusterSetIP
            },
            ports: service.ports.clone(),
            // `None` is the default; writing it out would make two equal Services differ.
            session_affinity: service
                .session_affinity
                .clone()
                .filter(|affinity| affinity != "None"),
            session_affinity_config: service.session_affinity_config.clone(),
            internal_traffic_policy: service.internal_traffic_policy.clone(),
            traffic_distribution: service.traffic_distribution.clone(),
        }
    }
}

/// Why an export is not valid; goes into its `Valid=False` condition.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Invalid {
    /// No Service of the export's name in its namespace.
    NoService,
    /// The Service is of type `ExternalName`.
    ExternalName,
}

impl Invalid {
    /// The condition reason, as upstream names it.
    pub fn reason(&self) -> &'static str {
        match self {
            Self::NoService => export_condition::REASON_NO_SERVICE,
            Self::ExternalName => export_condition::REASON_INVALID_SERVICE_TYPE,
        }
    }

    /// The condition message.
    pub fn message(&self) -> &'static str {
        match self {
            Self::NoService => "no Service of this name exists in this namespace",
            Self::ExternalName => "a Service of type ExternalName has no endpoints to export",
        }
    }
}

/// The pod an endpoint of the Service points at (its `targetRef`).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct PodRef {
    /// The pod's namespace.
    pub namespace: String,
    /// The pod's name.
    pub name: String,
    /// The pod's UID.
    pub uid: String,
}

impl std::fmt::Display for PodRef {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{}/{}", self.namespace, self.name)
    }
}

/// One endpoint of the Service's own EndpointSlices.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalEndpoint {
    /// The pod behind it, if the endpoint names one.
    pub pod: Option<PodRef>,
    /// `conditions.ready`; absent means ready, as in an EndpointSlice.
    pub ready: Option<bool>,
    /// `conditions.serving`; absent means the value of `ready`.
    pub serving: Option<bool>,
    /// `conditions.terminating`; absent means not terminating.
    pub terminating: Option<bool>,
    /// The endpoint's hostname (headless Services with a matching pod subdomain).
    pub hostname: Option<String>,
}

/// The global addresses this cluster's OVN ports hold, by pod UID: the only source of a pod's
/// global address that a pod cannot forge.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct VerifiedPorts {
    by_uid: BTreeMap<String, (PodRef, IpAddr)>,
}

impl VerifiedPorts {
    /// Records the port of `pod`, which holds `address`.
    pub fn insert(&mut self, pod: PodRef, address: IpAddr) {
        self.by_uid.insert(pod.uid.clone(), (pod, address));
    }

    /// The pod and address of the port with this UID.
    fn get(&self, uid: &str) -> Option<&(PodRef, IpAddr)> {
        self.by_uid.get(uid)
    }
}

/// An endpoint as exported: the pod's global address and its conditions.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub struct ExportedEndpoint {
    /// The pod's global address.
    pub address: IpAddr,
    /// Ready to receive new connections.
    pub ready: bool,
    /// Able to serve (also while terminating).
    pub serving: bool,
    /// Being terminated.
    pub terminating: bool,
    /// The endpoint's hostname, for headless per-host names.
    pub hostname: Option<String>,
}

/// Why an endpoint of the Service is left out of the export.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum SkipReason {
    /// The endpoint names no pod, so no global address can be checked for it.
    NoPod,
    /// No OVN port of this cluster belongs to the pod (it has no second NIC).
    NoPort(PodRef),
    /// The port with the pod's UID belongs to another pod name.
    PortOfAnotherPod {
        /// The pod the endpoint names.
        pod: PodRef,
        /// The pod the port was written for.
        port_owner: PodRef,
    },
    /// The port's address lies outside every slice of this cluster.
    OutsideSlice {
        /// The pod.
        pod: PodRef,
        /// Its port's address.
        address: IpAddr,
    },
}

impl std::fmt::Display for SkipReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::NoPod => write!(f, "endpoint names no pod"),
            Self::NoPort(pod) => write!(f, "pod {pod} has no port on the global network"),
            Self::PortOfAnotherPod { pod, port_owner } => write!(
                f,
                "pod {pod}: the port with its UID was written for {port_owner}"
            ),
            Self::OutsideSlice { pod, address } => write!(
                f,
                "pod {pod}: address {address} lies outside this cluster's slice"
            ),
        }
    }
}

/// What to publish for one export.
#[derive(Debug, Clone, PartialEq)]
pub struct ExportPlan {
    /// The properties to publish, or why the export is not valid (then nothing is published).
    pub properties: Result<ServiceProperties, Invalid>,
    /// The endpoints, sorted by address, one per address.
    pub endpoints: Vec<ExportedEndpoint>,
    /// The endpoints left out, with the reason.
    pub skipped: Vec<SkipReason>,
}

/// Plans the export of a Service. `service` is `None` when no Service of the export's name
/// exists; `endpoints` come from the Service's EndpointSlices; `ports` and `slices` describe
/// this cluster's global network.
pub fn plan_export(
    service: Option<&LocalService>,
    endpoints: &[LocalEndpoint],
    ports: &VerifiedPorts,
    slices: &[IpNet],
) -> ExportPlan {
    let properties = match service {
        None => Err(Invalid::NoService),
        Some(service) if service.type_ == LocalServiceType::ExternalName => {
            Err(Invalid::ExternalName)
        }
        Some(service) => Ok(ServiceProperties::of(service)),
    };
    if properties.is_err() {
        return ExportPlan {
            properties,
            endpoints: Vec::new(),
            skipped: Vec::new(),
        };
    }

    let mut by_address: BTreeMap<IpAddr, ExportedEndpoint> = BTreeMap::new();
    let mut skipped = Vec::new();
    for endpoint in endpoints {
        match global_endpoint(endpoint, ports, slices) {
            Ok(exported) => {
                // The same pod shows up in two slices while the controller moves it; keep the
                // entry that says the most about its readiness.
                by_address
                    .entry(exported.address)
                    .and_modify(|kept| {
                        if rank(&exported) > rank(kept) {
                            *kept = exported.clone();
                        }
                    })
                    .or_insert(exported);
            }
            Err(reason) => skipped.push(*reason),
        }
    }
    ExportPlan {
        properties,
        endpoints: by_address.into_values().collect(),
        skipped,
    }
}

fn rank(endpoint: &ExportedEndpoint) -> (bool, bool, bool) {
    (endpoint.ready, endpoint.serving, !endpoint.terminating)
}

fn global_endpoint(
    endpoint: &LocalEndpoint,
    ports: &VerifiedPorts,
    slices: &[IpNet],
) -> Result<ExportedEndpoint, Box<SkipReason>> {
    let pod = endpoint.pod.as_ref().ok_or(SkipReason::NoPod)?;
    let (port_owner, address) = ports
        .get(&pod.uid)
        .ok_or_else(|| SkipReason::NoPort(pod.clone()))?;
    if port_owner.namespace != pod.namespace || port_owner.name != pod.name {
        return Err(Box::new(SkipReason::PortOfAnotherPod {
            pod: pod.clone(),
            port_owner: port_owner.clone(),
        }));
    }
    if !slices.iter().any(|slice| slice.contains(address)) {
        return Err(Box::new(SkipReason::OutsideSlice {
            pod: pod.clone(),
            address: *address,
        }));
    }
    let ready = endpoint.ready.unwrap_or(true);
    Ok(ExportedEndpoint {
        address: *address,
        ready,
        serving: endpoint.serving.unwrap_or(ready),
        terminating: endpoint.terminating.unwrap_or(false),
        hostname: endpoint.hostname.clone(),
    })
}

#[cfg(test)]
#[path = "export_tests.rs"]
mod tests;
