//! The OVN load balancers that make a `ClusterSetIP` import's address work on a member's
//! logical switch: one per protocol, each balancing `clusterset-IP:port` over the ready
//! endpoints of every exporting cluster (the imported EndpointSlices).
//!
//! A service port is served by the EndpointSlice ports of the same name and protocol (the MCS
//! API makes the names match); the backend port is the slice port's number. Only IPv4 is
//! balanced: OVN's switch load balancers here serve the IPv4 clusterset block. A port with no
//! ready endpoint gets no VIP (OVN would drop its traffic silently), and a protocol with no
//! VIP gets no load balancer, so that unready services refuse fast instead of hanging.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;

use k8s_openapi::api::discovery::v1::EndpointSlice;
use nauti_api::mcs::{ServiceImportSpec, ServiceImportType};
use nauti_ovn::LbProtocol;
use nauti_ovn::LoadBalancer;
use nauti_ovn::core::lb::SERVICE_KEY;

use super::ServiceKey;

/// The `nauti.io/owner` of the load balancers octopus writes.
pub const LB_OWNER: &str = "octopus";

/// Every protocol a load balancer can have, for removing all of a name's.
const PROTOCOLS: [LbProtocol; 3] = [LbProtocol::Tcp, LbProtocol::Udp, LbProtocol::Sctp];

/// The name of the load balancer of `key` for `protocol`. Namespaces and names are DNS labels,
/// which have no `_`, so the name is unique per key and protocol.
pub fn load_balancer_name(key: &ServiceKey, protocol: LbProtocol) -> String {
    format!(
        "nauti-mcs_{}_{}_{}",
        key.namespace,
        key.name,
        protocol.as_str()
    )
}

/// The names of every load balancer `key` can have, whatever its protocols.
pub fn load_balancer_names(key: &ServiceKey) -> Vec<String> {
    PROTOCOLS
        .iter()
        .map(|p| load_balancer_name(key, *p))
        .collect()
}

/// The load balancers the import of `key` wants, from its spec and its imported EndpointSlices;
/// sorted by name. Empty for a headless import, an import without an IPv4 clusterset IP, or
/// one without ready IPv4 endpoints.
pub fn plan_load_balancers(
    key: &ServiceKey,
    spec: &ServiceImportSpec,
    slices: &[EndpointSlice],
) -> Vec<LoadBalancer> {
    if spec.type_ != ServiceImportType::ClusterSetIP {
        return Vec::new();
    }
    let Some(vip) = spec.ips.iter().find_map(|ip| ip.parse::<Ipv4Addr>().ok()) else {
        return Vec::new();
    };
    let mut by_protocol: BTreeMap<LbProtocol, LoadBalancer> = BTreeMap::new();
    for port in &spec.ports {
        let Some(protocol) = LbProtocol::parse(&port.protocol) else {
            continue;
        };
        let Ok(service_port) = u16::try_from(port.port) else {
            continue;
        };
        let backends = ready_backends(slices, &port.name, protocol);
        if backends.is_empty() || service_port == 0 {
            continue;
        }
        by_protocol
            .entry(protocol)
            .or_insert_with(|| {
                LoadBalancer::new(load_balancer_name(key, protocol), protocol, LB_OWNER)
                    .with_external_id(SERVICE_KEY, key.to_string())
            })
            .vips
            .insert(
                format!("{vip}:{service_port}"),
                backends.into_iter().collect::<Vec<_>>().join(","),
            );
    }
    by_protocol.into_values().collect()
}

/// `ip:port` of every ready IPv4 endpoint serving the port `name`/`protocol`, sorted and
/// without duplicates.
fn ready_backends(slices: &[EndpointSlice], name: &str, protocol: LbProtocol) -> BTreeSet<String> {
    let mut out = BTreeSet::new();
    for slice in slices.iter().filter(|s| s.address_type == "IPv4") {
        let target = slice.ports.iter().flatten().find_map(|p| {
            let same_name = p.name.as_deref().unwrap_or_default() == name;
            let same_protocol = LbProtocol::parse(p.protocol.as_deref().unwrap_or("TCP"))
                .is_some_and(|q| q == protocol);
            (same_name && same_protocol)
                .then_some(p.port)
                .flatten()
                .and_then(|n| u16::try_from(n).ok())
                .filter(|n| *n != 0)
        });
        let Some(target) = target else {
            continue;
        };
        for endpoint in slice.endpoints.iter().flatten() {
            // The EndpointSlice API reads an unset `ready` as ready.
            let ready = endpoint
                .conditions
                .as_ref()
                .and_then(|c| c.ready)
                .unwrap_or(true);
            if !ready {
                continue;
            }
            for address in &endpoint.addresses {
                if let Ok(ip) = address.parse::<Ipv4Addr>() {
                    out.insert(format!("{ip}:{target}"));
                }
            }
        }
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;
    use k8s_openapi::api::discovery::v1::{Endpoint, EndpointConditions, EndpointPort};
    use nauti_api::mcs::ServicePort;

    fn key() -> ServiceKey {
        ServiceKey::new("default", "web")
    }

    fn spec(ports: &[(&str, &str, i32)]) -> ServiceImportSpec {
        ServiceImportSpec {
            ports: ports
                .iter()
                .map(|(name, protocol, port)| ServicePort {
                    name: (*name).into(),
                    protocol: (*protocol).into(),
                    app_protocol: None,
                    port: *port,
                })
                .collect(),
            ips: vec!["10.127.0.10".into()],
            type_: ServiceImportType::ClusterSetIP,
            session_affinity: None,
            session_affinity_config: None,
            ip_families: vec![],
            internal_traffic_policy: None,
            traffic_distribution: None,
        }
    }

    fn endpoint(address: &str, ready: Option<bool>) -> Endpoint {
        Endpoint {
            addresses: vec![address.into()],
            conditions: Some(EndpointConditions {
                ready,
                ..EndpointConditions::default()
            }),
            ..Endpoint::default()
        }
    }

    fn slice(
        address_type: &str,
        ports: &[(&str, &str, i32)],
        endpoints: Vec<Endpoint>,
    ) -> EndpointSlice {
        EndpointSlice {
            address_type: address_type.into(),
            endpoints: Some(endpoints),
            ports: Some(
                ports
                    .iter()
                    .map(|(name, protocol, port)| EndpointPort {
                        name: Some((*name).into()),
                        protocol: Some((*protocol).into()),
                        port: Some(*port),
                        ..EndpointPort::default()
                    })
                    .collect(),
            ),
            ..EndpointSlice::default()
        }
    }

    #[test]
    fn one_load_balancer_per_protocol_with_the_target_ports_of_every_cluster() {
        let slices = [
            slice(
                "IPv4",
                &[("http", "TCP", 8080), ("dns", "UDP", 5353)],
                vec![endpoint("10.112.0.5", Some(true))],
            ),
            slice(
                "IPv4",
                &[("http", "TCP", 8081), ("dns", "UDP", 5353)],
                vec![endpoint("10.113.0.7", Some(true))],
            ),
        ];
        let lbs = plan_load_balancers(
            &key(),
            &spec(&[("http", "TCP", 80), ("dns", "UDP", 53)]),
            &slices,
        );
        assert_eq!(lbs.len(), 2);
        let tcp = &lbs[0];
        assert_eq!(tcp.name, "nauti-mcs_default_web_tcp");
        assert_eq!(tcp.protocol, LbProtocol::Tcp);
        assert_eq!(
            tcp.vips,
            BTreeMap::from([(
                "10.127.0.10:80".to_owned(),
                "10.112.0.5:8080,10.113.0.7:8081".to_owned()
            )])
        );
        assert_eq!(tcp.owner(), Some(LB_OWNER));
        assert_eq!(
            tcp.external_ids.get(SERVICE_KEY).map(String::as_str),
            Some("default/web")
        );
        let udp = &lbs[1];
        assert_eq!(udp.name, "nauti-mcs_default_web_udp");
        assert_eq!(
            udp.vips,
            BTreeMap::from([(
                "10.127.0.10:53".to_owned(),
                "10.112.0.5:5353,10.113.0.7:5353".to_owned()
            )])
        );
        assert!(load_balancer_names(&key()).contains(&udp.name));
    }

    #[test]
    fn only_ready_ipv4_endpoints_are_backends() {
        let slices = [
            slice(
                "IPv4",
                &[("", "TCP", 8080)],
                vec![
                    endpoint("10.112.0.5", Some(true)),
                    endpoint("10.112.0.6", Some(false)),
                    endpoint("10.112.0.7", None),
                ],
            ),
            slice(
                "IPv6",
                &[("", "TCP", 8080)],
                vec![endpoint("fd00::5", Some(true))],
            ),
        ];
        let lbs = plan_load_balancers(&key(), &spec(&[("", "TCP", 80)]), &slices);
        assert_eq!(
            lbs[0].vips["10.127.0.10:80"],
            "10.112.0.5:8080,10.112.0.7:8080"
        );
    }

    #[test]
    fn a_port_without_ready_endpoints_has_no_vip() {
        let slices = [slice(
            "IPv4",
            &[("http", "TCP", 8080), ("admin", "TCP", 9090)],
            vec![endpoint("10.112.0.5", Some(false))],
        )];
        let lbs = plan_load_balancers(&key(), &spec(&[("http", "TCP", 80)]), &slices);
        assert!(lbs.is_empty(), "{lbs:?}");
        let lbs = plan_load_balancers(&key(), &spec(&[("http", "TCP", 80)]), &[]);
        assert!(lbs.is_empty(), "{lbs:?}");
        // A slice port of another name or protocol does not serve the service port.
        let slices = [slice(
            "IPv4",
            &[("http", "UDP", 8080)],
            vec![endpoint("10.112.0.5", Some(true))],
        )];
        let lbs = plan_load_balancers(&key(), &spec(&[("http", "TCP", 80)]), &slices);
        assert!(lbs.is_empty(), "{lbs:?}");
    }

    #[test]
    fn headless_and_ipv6_only_imports_have_no_load_balancer() {
        let slices = [slice(
            "IPv4",
            &[("", "TCP", 8080)],
            vec![endpoint("10.112.0.5", Some(true))],
        )];
        let mut headless = spec(&[("", "TCP", 80)]);
        headless.type_ = ServiceImportType::Headless;
        headless.ips.clear();
        assert!(plan_load_balancers(&key(), &headless, &slices).is_empty());
        let mut v6 = spec(&[("", "TCP", 80)]);
        v6.ips = vec!["fd00:127::10".into()];
        assert!(plan_load_balancers(&key(), &v6, &slices).is_empty());
    }
}
