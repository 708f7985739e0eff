use super::*;
use nauti_api::mcs::ServiceImportType;

fn port(name: &str, number: i32, protocol: &str) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol: protocol.into(),
        app_protocol: None,
        port: number,
    }
}

fn properties(ports: Vec<ServicePort>) -> ServiceProperties {
    ServiceProperties {
        type_: ServiceImportType::ClusterSetIP,
        ports,
        session_affinity: None,
        session_affinity_config: None,
        internal_traffic_policy: None,
        traffic_distribution: None,
    }
}

fn export(cluster: &str, at: i64, properties: ServiceProperties) -> ClusterExport {
    ClusterExport {
        cluster: cluster.into(),
        exported_at: at,
        properties,
    }
}

#[test]
fn no_export_means_no_import() {
    assert_eq!(merge_exports(&[]), None);
}

#[test]
fn identical_exports_merge_without_conflict() {
    let p = properties(vec![port("http", 80, "TCP")]);
    let merged =
        merge_exports(&[export("west", 20, p.clone()), export("east", 10, p.clone())]).unwrap();
    assert_eq!(merged.properties, p);
    assert_eq!(merged.clusters, ["east", "west"]);
    assert!(merged.conflicts.is_empty());
}

#[test]
fn ports_are_the_union_across_clusters() {
    let merged = merge_exports(&[
        export("east", 10, properties(vec![port("http", 80, "TCP")])),
        export("west", 20, properties(vec![port("dns", 53, "UDP")])),
    ])
    .unwrap();
    assert_eq!(
        merged.properties.ports,
        vec![port("http", 80, "TCP"), port("dns", 53, "UDP")]
    );
    assert!(merged.conflicts.is_empty());
}

#[test]
fn a_port_name_reused_with_other_values_keeps_the_oldest_and_is_a_conflict() {
    let merged = merge_exports(&[
        export("west", 20, properties(vec![port("http", 8080, "TCP")])),
        export("east", 10, properties(vec![port("http", 80, "TCP")])),
    ])
    .unwrap();
    assert_eq!(merged.properties.ports, vec![port("http", 80, "TCP")]);
    assert_eq!(merged.conflicts.len(), 1);
    assert_eq!(merged.conflicts[0].reason, "PortConflict");
    assert!(merged.conflicts[0].message.contains("\"west\""));
    assert!(merged.conflicts[0].message.contains("80/TCP"));
}

#[test]
fn the_oldest_export_decides_the_type_and_both_learn_of_the_conflict() {
    let mut headless = properties(vec![port("http", 80, "TCP")]);
    headless.type_ = ServiceImportType::Headless;
    let merged = merge_exports(&[
        export("east", 30, properties(vec![port("http", 80, "TCP")])),
        export("west", 5, headless),
    ])
    .unwrap();
    assert_eq!(merged.properties.type_, ServiceImportType::Headless);
    let reasons: Vec<&str> = merged.conflicts.iter().map(|c| c.reason).collect();
    assert_eq!(reasons, ["TypeConflict"]);
}

#[test]
fn equal_timestamps_go_to_the_lower_cluster_id_whatever_the_order() {
    let mut a = properties(vec![port("http", 80, "TCP")]);
    a.session_affinity = Some("ClientIP".into());
    let b = properties(vec![port("http", 80, "TCP")]);
    let one = merge_exports(&[export("b", 7, b.clone()), export("a", 7, a.clone())]).unwrap();
    let two = merge_exports(&[export("a", 7, a), export("b", 7, b)]).unwrap();
    assert_eq!(one, two);
    assert_eq!(one.properties.session_affinity.as_deref(), Some("ClientIP"));
    assert_eq!(one.conflicts[0].reason, "SessionAffinityConflict");
}

#[test]
fn each_differing_global_property_is_named() {
    let base = properties(vec![]);
    let mut other = base.clone();
    other.internal_traffic_policy = Some("Local".into());
    other.traffic_distribution = Some("PreferClose".into());
    let merged = merge_exports(&[export("east", 1, base), export("west", 2, other)]).unwrap();
    let reasons: Vec<&str> = merged.conflicts.iter().map(|c| c.reason).collect();
    assert_eq!(
        reasons,
        [
            "InternalTrafficPolicyConflict",
            "TrafficDistributionConflict"
        ]
    );
    assert_eq!(merged.properties.internal_traffic_policy, None);
}
