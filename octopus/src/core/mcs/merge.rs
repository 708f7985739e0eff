//! One `ServiceImport` from every cluster's export of a name (KEP-1645, "Constraints and
//! Conflict Resolution").
//!
//! Properties that cannot be combined (type, session affinity, traffic policies) are taken from
//! the oldest export; ports are the union across exports, and a port name used with different
//! values is taken from the oldest export that has it. Every conflict found is reported on every
//! exporting cluster's `ServiceExport`, so each owner sees what the others disagree on.

use std::collections::BTreeMap;

use nauti_api::mcs::{ServicePort, export_condition};

use super::export::ServiceProperties;

/// One cluster's export of a name, as published on the hub.
#[derive(Debug, Clone, PartialEq)]
pub struct ClusterExport {
    /// The exporting cluster's ID.
    pub cluster: String,
    /// When the `ServiceExport` was created in that cluster (Unix seconds); the oldest wins.
    pub exported_at: i64,
    /// What it exports.
    pub properties: ServiceProperties,
}

/// A property on which exporting clusters disagree.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Conflict {
    /// The upstream `Conflict=True` reason.
    pub reason: &'static str,
    /// Which clusters disagree on what, and whose value is used.
    pub message: String,
}

/// The service as every member imports it.
#[derive(Debug, Clone, PartialEq)]
pub struct MergedImport {
    /// The derived properties.
    pub properties: ServiceProperties,
    /// The exporting clusters, sorted.
    pub clusters: Vec<String>,
    /// Every conflict found; empty means `Conflict=False`.
    pub conflicts: Vec<Conflict>,
}

/// Merges the exports of one name. `None` when no cluster exports it (the import goes away).
pub fn merge_exports(exports: &[ClusterExport]) -> Option<MergedImport> {
    let mut ordered: Vec<&ClusterExport> = exports.iter().collect();
    // Ties on the timestamp (second precision) go to the lower cluster ID, so every member
    // picks the same winner.
    ordered.sort_by(|a, b| {
        (a.exported_at, a.cluster.as_str()).cmp(&(b.exported_at, b.cluster.as_str()))
    });
    let (oldest, others) = ordered.split_first()?;

    let mut conflicts = Vec::new();
    let winner = &oldest.properties;
    for other in others {
        let theirs = &other.properties;
        let mut differs = |reason: &'static str, what: &str, differ: bool| {
            if differ {
                conflicts.push(Conflict {
                    reason,
                    message: format!(
                        "{what} of cluster {:?} differs from cluster {:?}, whose export is the oldest and is used",
                        other.cluster, oldest.cluster
                    ),
                });
            }
        };
        differs(
            export_condition::REASON_TYPE_CONFLICT,
            "the type",
            theirs.type_ != winner.type_,
        );
        differs(
            export_condition::REASON_SESSION_AFFINITY_CONFLICT,
            "the session affinity",
            theirs.session_affinity != winner.session_affinity,
        );
        differs(
            export_condition::REASON_SESSION_AFFINITY_CONFIG_CONFLICT,
            "the session affinity config",
            theirs.session_affinity_config != winner.session_affinity_config,
        );
        differs(
            export_condition::REASON_INTERNAL_TRAFFIC_POLICY_CONFLICT,
            "the internal traffic policy",
            theirs.internal_traffic_policy != winner.internal_traffic_policy,
        );
        differs(
            export_condition::REASON_TRAFFIC_DISTRIBUTION_CONFLICT,
            "the traffic distribution",
            theirs.traffic_distribution != winner.traffic_distribution,
        );
    }

    let ports = union_of_ports(&ordered, &mut conflicts);
    let mut clusters: Vec<String> = exports.iter().map(|e| e.cluster.clone()).collect();
    clusters.sort();
    clusters.dedup();
    Some(MergedImport {
        properties: ServiceProperties {
            ports,
            ..winner.clone()
        },
        clusters,
        conflicts,
    })
}

/// The union of the exports' ports, oldest first; a name reused with other values is a conflict.
fn union_of_ports(ordered: &[&ClusterExport], conflicts: &mut Vec<Conflict>) -> Vec<ServicePort> {
    let mut by_name: BTreeMap<&str, (&ServicePort, &str)> = BTreeMap::new();
    let mut ports = Vec::new();
    for export in ordered {
        for port in &export.properties.ports {
            match by_name.get(port.name.as_str()) {
                None => {
                    by_name.insert(&port.name, (port, &export.cluster));
                    ports.push(port.clone());
                }
                Some((kept, _)) if same_port(kept, port) => {}
                Some((kept, owner)) => conflicts.push(Conflict {
                    reason: export_condition::REASON_PORT_CONFLICT,
                    message: format!(
                        "port {:?} of cluster {:?} is {}, cluster {:?} (older) has {}; {} is used",
                        port.name,
                        export.cluster,
                        describe(port),
                        owner,
                        describe(kept),
                        describe(kept)
                    ),
                }),
            }
        }
    }
    ports
}

fn same_port(a: &ServicePort, b: &ServicePort) -> bool {
    a.port == b.port && a.protocol == b.protocol && a.app_protocol == b.app_protocol
}

fn describe(port: &ServicePort) -> String {
    match &port.app_protocol {
        Some(app) => format!("{}/{} ({app})", port.port, port.protocol),
        None => format!("{}/{}", port.port, port.protocol),
    }
}

#[cfg(test)]
#[path = "merge_tests.rs"]
mod tests;
