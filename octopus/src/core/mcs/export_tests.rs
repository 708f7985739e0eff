use super::*;

fn pod(name: &str) -> PodRef {
    PodRef {
        namespace: "default".into(),
        name: name.into(),
        uid: format!("uid-{name}"),
    }
}

fn port(name: &str, number: i32) -> ServicePort {
    ServicePort {
        name: name.into(),
        protocol: "TCP".into(),
        app_protocol: None,
        port: number,
    }
}

fn service() -> LocalService {
    LocalService {
        type_: LocalServiceType::ClusterIp,
        headless: false,
        ports: vec![port("http", 80)],
        session_affinity: Some("None".into()),
        session_affinity_config: None,
        internal_traffic_policy: Some("Cluster".into()),
        traffic_distribution: None,
    }
}

fn ready(pod: PodRef) -> LocalEndpoint {
    LocalEndpoint {
        pod: Some(pod),
        ready: Some(true),
        serving: Some(true),
        terminating: Some(false),
        hostname: None,
    }
}

fn slice() -> Vec<IpNet> {
    vec!["10.112.0.0/16".parse().unwrap()]
}

fn ports(entries: &[(&str, &str)]) -> VerifiedPorts {
    let mut ports = VerifiedPorts::default();
    for (name, address) in entries {
        ports.insert(pod(name), address.parse().unwrap());
    }
    ports
}

fn addresses(plan: &ExportPlan) -> Vec<String> {
    plan.endpoints
        .iter()
        .map(|e| e.address.to_string())
        .collect()
}

#[test]
fn ready_pods_are_exported_with_the_address_of_their_ovn_port() {
    let plan = plan_export(
        Some(&service()),
        &[ready(pod("b")), ready(pod("a"))],
        &ports(&[("a", "10.112.0.20"), ("b", "10.112.0.10")]),
        &slice(),
    );
    assert_eq!(addresses(&plan), ["10.112.0.10", "10.112.0.20"]);
    let properties = plan.properties.unwrap();
    assert_eq!(properties.type_, ServiceImportType::ClusterSetIP);
    assert_eq!(properties.ports, vec![port("http", 80)]);
    // `None` is the default and is not carried, so it never conflicts with an absent value.
    assert_eq!(properties.session_affinity, None);
    assert!(plan.skipped.is_empty());
}

#[test]
fn a_pod_without_a_port_of_this_cluster_is_left_out_with_the_reason() {
    let plan = plan_export(
        Some(&service()),
        &[ready(pod("a")), ready(pod("forger"))],
        &ports(&[("a", "10.112.0.20")]),
        &slice(),
    );
    assert_eq!(addresses(&plan), ["10.112.0.20"]);
    assert_eq!(plan.skipped, vec![SkipReason::NoPort(pod("forger"))]);
    assert!(plan.skipped[0].to_string().contains("default/forger"));
}

#[test]
fn a_port_written_for_another_pod_name_is_not_trusted() {
    let mut verified = VerifiedPorts::default();
    let mut other = pod("other");
    other.uid = "uid-a".into();
    verified.insert(other.clone(), "10.112.0.9".parse().unwrap());
    let plan = plan_export(Some(&service()), &[ready(pod("a"))], &verified, &slice());
    assert!(plan.endpoints.is_empty());
    assert_eq!(
        plan.skipped,
        vec![SkipReason::PortOfAnotherPod {
            pod: pod("a"),
            port_owner: other
        }]
    );
}

#[test]
fn an_address_outside_the_cluster_slice_is_not_exported() {
    let plan = plan_export(
        Some(&service()),
        &[ready(pod("a"))],
        &ports(&[("a", "10.113.0.5")]),
        &slice(),
    );
    assert!(plan.endpoints.is_empty());
    assert!(matches!(plan.skipped[0], SkipReason::OutsideSlice { .. }));
}

#[test]
fn endpoints_without_a_pod_are_skipped() {
    let endpoint = LocalEndpoint {
        pod: None,
        ..ready(pod("a"))
    };
    let plan = plan_export(
        Some(&service()),
        &[endpoint],
        &ports(&[("a", "10.112.0.5")]),
        &slice(),
    );
    assert!(plan.endpoints.is_empty());
    assert_eq!(plan.skipped, vec![SkipReason::NoPod]);
}

#[test]
fn conditions_follow_endpointslice_defaults_and_terminating_pods_stay_listed() {
    let defaults = LocalEndpoint {
        pod: Some(pod("a")),
        ready: None,
        serving: None,
        terminating: None,
        hostname: Some("web-0".into()),
    };
    let leaving = LocalEndpoint {
        pod: Some(pod("b")),
        ready: Some(false),
        serving: Some(true),
        terminating: Some(true),
        hostname: None,
    };
    let plan = plan_export(
        Some(&service()),
        &[defaults, leaving],
        &ports(&[("a", "10.112.0.1"), ("b", "10.112.0.2")]),
        &slice(),
    );
    let a = &plan.endpoints[0];
    assert!(a.ready && a.serving && !a.terminating);
    assert_eq!(a.hostname.as_deref(), Some("web-0"));
    let b = &plan.endpoints[1];
    assert!(!b.ready && b.serving && b.terminating);
}

#[test]
fn a_pod_listed_twice_is_exported_once_with_its_best_conditions() {
    let stale = LocalEndpoint {
        ready: Some(false),
        ..ready(pod("a"))
    };
    let plan = plan_export(
        Some(&service()),
        &[stale, ready(pod("a"))],
        &ports(&[("a", "10.112.0.1")]),
        &slice(),
    );
    assert_eq!(plan.endpoints.len(), 1);
    assert!(plan.endpoints[0].ready);
}

#[test]
fn missing_and_external_name_services_are_invalid_and_export_nothing() {
    let verified = ports(&[("a", "10.112.0.1")]);
    let missing = plan_export(None, &[ready(pod("a"))], &verified, &slice());
    assert_eq!(missing.properties, Err(Invalid::NoService));
    assert_eq!(missing.properties.unwrap_err().reason(), "NoService");
    assert!(missing.endpoints.is_empty());

    let external = LocalService {
        type_: LocalServiceType::ExternalName,
        ..service()
    };
    let plan = plan_export(Some(&external), &[ready(pod("a"))], &verified, &slice());
    assert_eq!(plan.properties, Err(Invalid::ExternalName));
    assert_eq!(Invalid::ExternalName.reason(), "InvalidServiceType");
    assert!(plan.endpoints.is_empty());
}

#[test]
fn headless_node_port_and_load_balancer_services_export_their_kind() {
    let headless = LocalService {
        headless: true,
        ..service()
    };
    let plan = plan_export(Some(&headless), &[], &VerifiedPorts::default(), &slice());
    assert_eq!(plan.properties.unwrap().type_, ServiceImportType::Headless);
    for type_ in [LocalServiceType::NodePort, LocalServiceType::LoadBalancer] {
        let svc = LocalService { type_, ..service() };
        let plan = plan_export(Some(&svc), &[], &VerifiedPorts::default(), &slice());
        assert_eq!(
            plan.properties.unwrap().type_,
            ServiceImportType::ClusterSetIP
        );
    }
}
