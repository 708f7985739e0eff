//! The member cluster's own objects as the export plan sees them: a Service, the endpoints of
//! its EndpointSlices, and the pods' ports in OVN. Nothing here reads a pod's annotations.

use std::collections::BTreeMap;
use std::net::IpAddr;

use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::{EndpointPort, EndpointSlice};
use nauti_api::core::port::external_ids;
use nauti_api::mcs::ServicePort;

use super::export::{LocalEndpoint, LocalService, LocalServiceType, PodRef, VerifiedPorts};

/// The label the built-in controller puts on a Service's EndpointSlices.
pub const LABEL_KUBERNETES_SERVICE_NAME: &str = "kubernetes.io/service-name";

/// The parts of `service` an export carries.
pub fn local_service(service: &Service) -> LocalService {
    let spec = service.spec.clone().unwrap_or_default();
    let type_ = match spec.type_.as_deref() {
        Some("ExternalName") => LocalServiceType::ExternalName,
        Some("NodePort") => LocalServiceType::NodePort,
        Some("LoadBalancer") => LocalServiceType::LoadBalancer,
        _ => LocalServiceType::ClusterIp,
    };
    LocalService {
        type_,
        headless: spec.cluster_ip.as_deref() == Some("None"),
        ports: spec
            .ports
            .iter()
            .flatten()
            .map(|p| ServicePort {
                name: p.name.clone().unwrap_or_default(),
                protocol: p.protocol.clone().unwrap_or_else(|| "TCP".to_owned()),
                app_protocol: p.app_protocol.clone(),
                port: p.port,
            })
            .collect(),
        session_affinity: spec.session_affinity,
        session_affinity_config: spec.session_affinity_config,
        internal_traffic_policy: spec.internal_traffic_policy,
        traffic_distribution: spec.traffic_distribution,
    }
}

/// The endpoints of a Service's EndpointSlices; an endpoint whose `targetRef` is not a Pod
/// names no pod.
pub fn local_endpoints<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Vec<LocalEndpoint> {
    slices
        .into_iter()
        .flat_map(|slice| slice.endpoints.iter().flatten())
        .map(|endpoint| {
            let pod = endpoint
                .target_ref
                .as_ref()
                .filter(|r| r.kind.as_deref() == Some("Pod"))
                .and_then(|r| {
                    Some(PodRef {
                        namespace: r.namespace.clone()?,
                        name: r.name.clone()?,
                        uid: r.uid.clone()?,
                    })
                });
            let conditions = endpoint.conditions.clone().unwrap_or_default();
            LocalEndpoint {
                pod,
                ready: conditions.ready,
                serving: conditions.serving,
                terminating: conditions.terminating,
                hostname: endpoint.hostname.clone(),
            }
        })
        .collect()
}

/// The ports endpoints are reached on: those of the Service's own EndpointSlices (the pods'
/// target ports), the first slice that names any.
pub fn endpoint_ports<'a>(
    slices: impl IntoIterator<Item = &'a EndpointSlice>,
) -> Option<Vec<EndpointPort>> {
    slices
        .into_iter()
        .filter_map(|slice| slice.ports.clone())
        .find(|ports| !ports.is_empty())
}

/// The global addresses of the pods' OVN ports, from each port's `external_ids` and
/// addresses. Only ports Nauti wrote for a pod count; an operator's own ports on the switch,
/// or ports without a pod UID, are left out.
pub fn verified_ports<'a>(
    ports: impl IntoIterator<Item = (&'a BTreeMap<String, String>, Vec<IpAddr>)>,
) -> VerifiedPorts {
    let mut verified = VerifiedPorts::default();
    for (ids, addresses) in ports {
        if ids.get(external_ids::OWNER).map(String::as_str) != Some(external_ids::OWNER_POD) {
            continue;
        }
        let (Some(namespace), Some(name), Some(uid)) = (
            ids.get(external_ids::NAMESPACE),
            ids.get(external_ids::POD),
            ids.get(external_ids::UID),
        ) else {
            continue;
        };
        // A pod port carries one address per family; the first is the one its NIC got.
        if let Some(address) = addresses.first() {
            verified.insert(
                PodRef {
                    namespace: namespace.clone(),
                    name: name.clone(),
                    uid: uid.clone(),
                },
                *address,
            );
        }
    }
    verified
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::mcs::plan_export;
    use k8s_openapi::api::core::v1::{ObjectReference, ServiceSpec};
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions};

    fn ids(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect()
    }

    fn pod_ids(name: &str) -> BTreeMap<String, String> {
        ids(&[
            ("nauti.io/owner", "pod"),
            ("namespace", "default"),
            ("pod", name),
            ("uid", &format!("uid-{name}")),
        ])
    }

    fn endpoint(pod: &str, ip: &str, ready: bool) -> Endpoint {
        Endpoint {
            addresses: vec![ip.to_owned()],
            conditions: Some(EndpointConditions {
                ready: Some(ready),
                serving: Some(ready),
                terminating: Some(false),
            }),
            target_ref: Some(ObjectReference {
                kind: Some("Pod".into()),
                namespace: Some("default".into()),
                name: Some(pod.into()),
                uid: Some(format!("uid-{pod}")),
                ..Default::default()
            }),
            ..Default::default()
        }
    }

    #[test]
    fn exported_addresses_come_from_ovn_not_from_the_endpoints() {
        let a = pod_ids("web-a");
        let operator = ids(&[
            ("pod", "web-b"),
            ("namespace", "default"),
            ("uid", "uid-web-b"),
        ]);
        let ports = verified_ports([
            (&a, vec!["10.113.0.10".parse().unwrap()]),
            (&operator, vec!["10.113.0.66".parse().unwrap()]),
        ]);
        let slice = EndpointSlice {
            address_type: "IPv4".into(),
            endpoints: Some(vec![
                endpoint("web-a", "10.88.0.5", true),
                endpoint("web-b", "10.88.0.6", true),
            ]),
            ..Default::default()
        };
        let service = local_service(&Service {
            spec: Some(ServiceSpec {
                ports: Some(vec![k8s_openapi::api::core::v1::ServicePort {
                    name: Some("http".into()),
                    port: 80,
                    ..Default::default()
                }]),
                ..Default::default()
            }),
            ..Default::default()
        });
        assert_eq!(service.ports[0].protocol, "TCP");
        let plan = plan_export(
            Some(&service),
            &local_endpoints([&slice]),
            &ports,
            &["10.113.0.0/16".parse().unwrap()],
        );
        let addresses: Vec<String> = plan
            .endpoints
            .iter()
            .map(|e| e.address.to_string())
            .collect();
        assert_eq!(addresses, ["10.113.0.10"], "web-b's port is not Nauti's");
        assert_eq!(plan.skipped.len(), 1);
    }

    #[test]
    fn service_types_and_headless_are_read() {
        let of = |type_: Option<&str>, cluster_ip: Option<&str>| {
            local_service(&Service {
                spec: Some(ServiceSpec {
                    type_: type_.map(str::to_owned),
                    cluster_ip: cluster_ip.map(str::to_owned),
                    ..Default::default()
                }),
                ..Default::default()
            })
        };
        assert_eq!(
            of(Some("ExternalName"), None).type_,
            LocalServiceType::ExternalName
        );
        assert_eq!(
            of(None, Some("10.0.0.1")).type_,
            LocalServiceType::ClusterIp
        );
        assert!(of(None, Some("None")).headless);
        assert!(!of(Some("NodePort"), Some("10.0.0.1")).headless);
    }

    #[test]
    fn an_endpoint_pointing_at_a_non_pod_names_no_pod() {
        let mut other = endpoint("web-a", "10.88.0.5", true);
        other.target_ref.as_mut().unwrap().kind = Some("Node".into());
        let slice = EndpointSlice {
            endpoints: Some(vec![other]),
            ..Default::default()
        };
        assert_eq!(local_endpoints([&slice])[0].pod, None);
    }
}
