//! The names one multi-cluster service owns in each zone, worked out from its import and its
//! slices whenever one of them changes.

use std::collections::{BTreeSet, HashMap};
use std::net::IpAddr;

use super::model::{EndpointView, ImportKind, ImportView, PortView, ServiceKey, SliceView};
use super::name::Zone;
use super::records::{RecordData, RecordSet};

/// Priority and weight of every SRV record: the specification leaves them to us, and every
/// target is as good as another.
const SRV_PRIORITY: u16 = 0;
const SRV_WEIGHT: u16 = 100;

/// Everything a service answers, in both zones.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ServiceNames {
    /// `<svc>.<ns>.svc.hyperos.local`: the ready endpoints of every cluster.
    pub hyperos: RecordSet,
    /// `<svc>.<ns>.svc.clusterset.local`, when the name exists there (a headless service
    /// without a ready endpoint does not: the specification asks for NXDOMAIN).
    pub clusterset: Option<ClustersetNames>,
}

/// The names of a service in `clusterset.local`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct ClustersetNames {
    /// The service name: A/AAAA (clusterset IPs or ready endpoints) and the bare-name SRV.
    pub service: RecordSet,
    /// `_<port>._<proto>.<svc>...`, by protocol label (`_tcp`) then port label (`_http`).
    pub ports: HashMap<String, HashMap<String, RecordSet>>,
    /// `<hostname>.<clusterid>.<svc>...` of a headless service, by cluster then hostname.
    pub hosts: HashMap<String, HashMap<String, RecordSet>>,
}

impl ServiceNames {
    /// Works out the names of `key` from its import and the slices that carry its endpoints.
    pub fn build<'a>(
        key: &ServiceKey,
        import: &ImportView,
        slices: impl IntoIterator<Item = &'a SliceView>,
    ) -> Self {
        let endpoints = ReadyEndpoints::collect(slices);
        let mut hyperos = RecordSet::default();
        for address in endpoints.addresses() {
            hyperos.push_address(address);
        }
        let clusterset = match &import.kind {
            ImportKind::ClusterSetIp(ips) => Some(clusterset_ip_names(key, ips, &import.ports)),
            ImportKind::Headless if endpoints.is_empty() => None,
            ImportKind::Headless => Some(headless_names(key, &endpoints, &import.ports)),
        };
        Self {
            hyperos,
            clusterset,
        }
    }

    /// The number of records held.
    pub fn record_count(&self) -> usize {
        let clusterset = self.clusterset.as_ref().map_or(0, |names| {
            let nested = |map: &HashMap<String, HashMap<String, RecordSet>>| -> usize {
                map.values()
                    .flat_map(HashMap::values)
                    .map(RecordSet::len)
                    .sum()
            };
            names.service.len() + nested(&names.ports) + nested(&names.hosts)
        });
        self.hyperos.len() + clusterset
    }

    /// Whether the service's name exists in `zone`.
    pub fn exists_in(&self, zone: Zone) -> bool {
        match zone {
            // The name lives as long as the import, endpoints or not (NODATA without any).
            Zone::Hyperos => true,
            Zone::Clusterset => self.clusterset.is_some(),
        }
    }
}

/// The `<svc>.<ns>.svc.clusterset.local` name in presentation form, without the final dot.
fn service_fqdn(key: &ServiceKey) -> String {
    format!(
        "{}.{}.svc.{}",
        key.name,
        key.namespace,
        Zone::Clusterset.apex()
    )
}

fn srv(port: u16, target: String) -> RecordData {
    RecordData::Srv {
        priority: SRV_PRIORITY,
        weight: SRV_WEIGHT,
        port,
        target,
    }
}

fn port_set<'m>(
    ports: &'m mut HashMap<String, HashMap<String, RecordSet>>,
    port: &PortView,
) -> &'m mut RecordSet {
    ports
        .entry(format!("_{}", port.protocol))
        .or_default()
        .entry(format!("_{}", port.name))
        .or_default()
}

fn clusterset_ip_names(key: &ServiceKey, ips: &[IpAddr], ports: &[PortView]) -> ClustersetNames {
    let mut names = ClustersetNames::default();
    for ip in ips {
        names.service.push_address(*ip);
    }
    let target = service_fqdn(key);
    for port in ports {
        names.service.srv.push(srv(port.port, target.clone()));
        // Unnamed ports have no `_<port>._<proto>` record.
        if !port.name.is_empty() {
            port_set(&mut names.ports, port)
                .srv
                .push(srv(port.port, target.clone()));
        }
    }
    names
}

fn headless_names(
    key: &ServiceKey,
    endpoints: &ReadyEndpoints,
    ports: &[PortView],
) -> ClustersetNames {
    let mut names = ClustersetNames::default();
    for address in endpoints.addresses() {
        names.service.push_address(address);
    }
    let service = service_fqdn(key);
    for ((cluster, host), host_endpoint) in &endpoints.hosts {
        let mut set = RecordSet::default();
        for address in &host_endpoint.addresses {
            set.push_address(*address);
        }
        names
            .hosts
            .entry(cluster.clone())
            .or_default()
            .insert(host.clone(), set);
        let target = format!("{host}.{cluster}.{service}");
        for port in ports {
            // The pods listen on the slice's port of that name; the import's number is the
            // Service's, which only a clusterset IP translates.
            let number = host_endpoint.port_numbers.get(&port.name).copied();
            let number = number.unwrap_or(port.port);
            names.service.srv.push(srv(number, target.clone()));
            if !port.name.is_empty() {
                port_set(&mut names.ports, port)
                    .srv
                    .push(srv(number, target.clone()));
            }
        }
    }
    names
}

/// One ready host of a headless service in one cluster.
#[derive(Debug, Default)]
struct HostEndpoint {
    addresses: BTreeSet<IpAddr>,
    /// Port numbers by port name, from the slice the endpoint came from.
    port_numbers: HashMap<String, u16>,
}

/// The ready endpoints of a service across clusters, merged and de-duplicated.
#[derive(Debug, Default)]
struct ReadyEndpoints {
    /// By (cluster, hostname); sorted, so answers come out in a stable order.
    hosts: std::collections::BTreeMap<(String, String), HostEndpoint>,
}

impl ReadyEndpoints {
    fn collect<'a>(slices: impl IntoIterator<Item = &'a SliceView>) -> Self {
        let mut this = Self::default();
        for slice in slices {
            let port_numbers: HashMap<String, u16> = slice
                .ports
                .iter()
                .map(|p| (p.name.clone(), p.port))
                .collect();
            let ready = slice
                .endpoints
                .iter()
                .filter(|e| e.ready && !e.addresses.is_empty());
            for endpoint in ready {
                let Some(host) = host_label(endpoint) else {
                    continue;
                };
                let entry = this.hosts.entry((slice.cluster.clone(), host)).or_default();
                entry.addresses.extend(endpoint.addresses.iter().copied());
                entry.port_numbers.extend(port_numbers.clone());
            }
        }
        this
    }

    fn is_empty(&self) -> bool {
        self.hosts.is_empty()
    }

    /// Every address once, v4 before v6, in order.
    fn addresses(&self) -> BTreeSet<IpAddr> {
        self.hosts
            .values()
            .flat_map(|h| h.addresses.iter().copied())
            .collect()
    }
}

/// The endpoint's hostname, or (as the cluster-local DNS specification allows) a name derived
/// from its first address, `10-112-0-5` or `fd00--5`, so that every headless endpoint has a
/// per-host name and an SRV target. `None` for an endpoint without an address.
fn host_label(endpoint: &EndpointView) -> Option<String> {
    if let Some(hostname) = endpoint.hostname.as_deref().filter(|h| !h.is_empty()) {
        return Some(hostname.to_ascii_lowercase());
    }
    let first = endpoint.addresses.iter().min()?;
    Some(first.to_string().replace(['.', ':'], "-"))
}
