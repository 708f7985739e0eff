//! What a member imports: one `ServiceImport` per name some cluster exports, with its merged
//! properties and its clusterset IP, and which published endpoints it may copy.
//!
//! Clusterset IPs already held by a member's imports are kept, so an address never moves
//! while the name stays exported; new names get theirs in the order of their keys, so members
//! that see the same exports in the same order pick the same addresses.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use nauti_api::mcs::ServiceImportType;

use super::ServiceKey;
use super::merge::{ClusterExport, MergedImport, merge_exports};
use super::vip::{VipError, allocate_vip};

/// The import of one name.
#[derive(Debug, Clone, PartialEq)]
pub struct PlannedImport {
    /// The merged properties, the exporting clusters and the conflicts.
    pub merged: MergedImport,
    /// The clusterset IPs: one for `ClusterSetIP`, none for `Headless` (or when the block is
    /// full, then see `vip_error`).
    pub ips: Vec<IpAddr>,
    /// Why a `ClusterSetIP` import has no address.
    pub vip_error: Option<VipError>,
}

/// Plans every import from every cluster's exports. `held` are the clusterset IPs of the
/// imports the member already has; `block` is the clusterset block.
pub fn plan_imports(
    exports: Vec<(ServiceKey, ClusterExport)>,
    held: &BTreeMap<ServiceKey, IpAddr>,
    block: IpNet,
) -> BTreeMap<ServiceKey, PlannedImport> {
    let mut by_key: BTreeMap<ServiceKey, Vec<ClusterExport>> = BTreeMap::new();
    for (key, export) in exports {
        by_key.entry(key).or_default().push(export);
    }
    let merged: BTreeMap<ServiceKey, MergedImport> = by_key
        .into_iter()
        .filter_map(|(key, exports)| Some((key, merge_exports(&exports)?)))
        .collect();

    let mut taken = BTreeSet::new();
    let mut kept = BTreeMap::new();
    for (key, import) in &merged {
        if import.properties.type_ != ServiceImportType::ClusterSetIP {
            continue;
        }
        if let Some(ip) = held.get(key)
            && block.contains(ip)
            && taken.insert(*ip)
        {
            kept.insert(key.clone(), *ip);
        }
    }
    merged
        .into_iter()
        .map(|(key, merged)| {
            let (ips, vip_error) = if merged.properties.type_ == ServiceImportType::Headless {
                (Vec::new(), None)
            } else if let Some(ip) = kept.get(&key) {
                (vec![*ip], None)
            } else {
                match allocate_vip(&key, block, &taken) {
                    Ok(ip) => {
                        taken.insert(ip);
                        (vec![ip], None)
                    }
                    Err(error) => (Vec::new(), Some(error)),
                }
            };
            (
                key,
                PlannedImport {
                    merged,
                    ips,
                    vip_error,
                },
            )
        })
        .collect()
}

/// Whether a published address may be imported for a cluster holding `slices`: a member can
/// publish only endpoints inside its own slice.
pub fn admitted(address: &str, slices: &[IpNet]) -> bool {
    address
        .parse::<IpAddr>()
        .is_ok_and(|ip| slices.iter().any(|slice| slice.contains(&ip)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::mcs::ServiceProperties;
    use nauti_api::mcs::ServicePort;

    fn block() -> IpNet {
        "10.127.0.0/16".parse().unwrap()
    }

    fn export(cluster: &str, at: i64, type_: ServiceImportType, port: i32) -> ClusterExport {
        ClusterExport {
            cluster: cluster.into(),
            exported_at: at,
            properties: ServiceProperties {
                type_,
                ports: vec![ServicePort {
                    name: format!("p{port}"),
                    protocol: "TCP".into(),
                    app_protocol: None,
                    port,
                }],
                session_affinity: None,
                session_affinity_config: None,
                internal_traffic_policy: None,
                traffic_distribution: None,
            },
        }
    }

    #[test]
    fn one_import_per_name_with_the_union_of_ports_and_an_address_in_the_block() {
        let web = ServiceKey::new("default", "web");
        let plan = plan_imports(
            vec![
                (
                    web.clone(),
                    export("a", 10, ServiceImportType::ClusterSetIP, 80),
                ),
                (
                    web.clone(),
                    export("b", 20, ServiceImportType::ClusterSetIP, 8080),
                ),
            ],
            &BTreeMap::new(),
            block(),
        );
        assert_eq!(plan.len(), 1);
        let import = &plan[&web];
        let ports: Vec<i32> = import
            .merged
            .properties
            .ports
            .iter()
            .map(|p| p.port)
            .collect();
        assert_eq!(ports, [80, 8080]);
        assert_eq!(import.merged.clusters, ["a", "b"]);
        assert_eq!(import.ips.len(), 1);
        assert!(block().contains(&import.ips[0]));
    }

    #[test]
    fn headless_imports_have_no_address_and_held_addresses_stay() {
        let db = ServiceKey::new("default", "db");
        let web = ServiceKey::new("default", "web");
        let held_ip: IpAddr = "10.127.9.9".parse().unwrap();
        let plan = plan_imports(
            vec![
                (
                    db.clone(),
                    export("a", 1, ServiceImportType::Headless, 5432),
                ),
                (
                    web.clone(),
                    export("a", 1, ServiceImportType::ClusterSetIP, 80),
                ),
            ],
            &BTreeMap::from([(web.clone(), held_ip), (db.clone(), held_ip)]),
            block(),
        );
        assert!(plan[&db].ips.is_empty());
        assert_eq!(plan[&web].ips, [held_ip]);
    }

    #[test]
    fn two_names_holding_the_same_address_keep_it_once() {
        let one = ServiceKey::new("default", "one");
        let two = ServiceKey::new("default", "two");
        let ip: IpAddr = "10.127.1.1".parse().unwrap();
        let plan = plan_imports(
            vec![
                (
                    one.clone(),
                    export("a", 1, ServiceImportType::ClusterSetIP, 80),
                ),
                (
                    two.clone(),
                    export("a", 1, ServiceImportType::ClusterSetIP, 80),
                ),
            ],
            &BTreeMap::from([(one.clone(), ip), (two.clone(), ip)]),
            block(),
        );
        assert_eq!(plan[&one].ips, [ip]);
        assert_ne!(plan[&two].ips, [ip]);
        assert_eq!(plan[&two].ips.len(), 1);
    }

    #[test]
    fn an_address_outside_the_block_is_replaced() {
        let web = ServiceKey::new("default", "web");
        let plan = plan_imports(
            vec![(
                web.clone(),
                export("a", 1, ServiceImportType::ClusterSetIP, 80),
            )],
            &BTreeMap::from([(web.clone(), "10.113.0.5".parse().unwrap())]),
            block(),
        );
        assert!(block().contains(&plan[&web].ips[0]));
    }

    #[test]
    fn a_full_block_leaves_the_import_without_an_address_and_says_why() {
        let tiny: IpNet = "10.127.0.0/30".parse().unwrap();
        let exports = (0..3)
            .map(|i| {
                (
                    ServiceKey::new("default", format!("svc-{i}")),
                    export("a", 1, ServiceImportType::ClusterSetIP, 80),
                )
            })
            .collect();
        let plan = plan_imports(exports, &BTreeMap::new(), tiny);
        let without: Vec<_> = plan.values().filter(|p| p.ips.is_empty()).collect();
        assert_eq!(without.len(), 1);
        assert!(without[0].vip_error.is_some());
    }

    #[test]
    fn only_addresses_inside_the_clusters_slice_are_admitted() {
        let slices: Vec<IpNet> = vec!["10.113.0.0/16".parse().unwrap()];
        assert!(admitted("10.113.4.5", &slices));
        assert!(!admitted("10.114.0.5", &slices));
        assert!(!admitted("not-an-ip", &slices));
    }
}
