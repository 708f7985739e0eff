use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn mk_network(subnet: &str, node_prefix: u8) -> ClusterNetwork {
    let mut config = NetworkConfig::new("member-1");
    config.cluster_subnet = Some(net(subnet));
    config.node_block_prefix_len = node_prefix;
    ClusterNetwork::new(&config, None).unwrap()
}

fn mk_node(name: &str, annotation: Option<&str>) -> NodeView {
    NodeView {
        name: name.to_owned(),
        annotation: annotation.map(str::to_owned),
    }
}

fn mk_pod_port(ns: &str, pod: &str, uid: &str) -> LogicalSwitchPort {
    LogicalSwitchPort::new(format!("{ns}_{pod}"))
        .with_external_id(OWNER_KEY, OWNER_POD)
        .with_external_id(NAMESPACE_KEY, ns)
        .with_external_id(POD_KEY, pod)
        .with_external_id(UID_KEY, uid)
        .with_external_id("node", "node-a")
}

fn live(pods: &[(&str, &str, &str)]) -> HashMap<PodKey, String> {
    pods.iter()
        .map(|(ns, name, uid)| (((*ns).to_owned(), (*name).to_owned()), (*uid).to_owned()))
        .collect()
}

fn blocks_of(plan: &BlockPlan) -> Vec<(String, String)> {
    plan.assign
        .iter()
        .map(|a| (a.node.clone(), a.block.to_string()))
        .collect()
}

// === switch and CNF port ===

#[test]
fn the_switch_carries_the_subnet_and_excludes_the_gateway() {
    let network = mk_network("10.113.0.0/16", 24);
    let switch = network.desired_switch();
    assert_eq!(switch.name, "nauti-member-1");
    assert_eq!(switch.subnet(), Some("10.113.0.0/16"));
    assert_eq!(switch.exclude_ips(), vec!["10.113.0.1"]);
    assert_eq!(
        switch.external_ids.get(CLUSTER_KEY).map(String::as_str),
        Some("member-1")
    );
}

#[test]
fn the_gateway_address_is_on_a_router_port_with_its_derived_mac_behind_a_router_type_switch_port() {
    let network = mk_network("10.113.0.0/16", 24);
    let router_port = network.desired_router_port();
    assert_eq!(router_port.mac, "0a:58:0a:71:00:01");
    assert_eq!(router_port.networks, vec!["10.113.0.1/16"]);
    let port = network.desired_cnf_port();
    assert_eq!(port.name, CNF_PORT);
    assert_eq!(port.kind, "router");
    assert_eq!(port.addresses, vec!["router"]);
    assert_eq!(
        port.options.get("router-port"),
        Some(&router_port.name),
        "the switch port must name the router port"
    );
    assert!(port.port_security.is_empty());
    assert_eq!(
        port.external_ids.get(OWNER_KEY).map(String::as_str),
        Some(OWNER_CNF)
    );
    assert_eq!(network.router(), format!("{}-gw", network.switch));
}

#[test]
fn a_switch_name_flag_overrides_the_default_name() {
    let mut config = NetworkConfig::new("member-1");
    config.cluster_subnet = Some(net("10.113.0.0/16"));
    let network = ClusterNetwork::new(&config, Some("ls-custom".into())).unwrap();
    assert_eq!(network.desired_switch().name, "ls-custom");
}

#[test]
fn a_missing_cluster_subnet_is_a_clear_setup_error() {
    let err = ClusterNetwork::new(&NetworkConfig::new("member-1"), None).unwrap_err();
    assert!(matches!(err, SetupError::NoClusterSubnet { .. }));
    assert!(err.to_string().contains("--cluster-subnet"), "{err}");
}

#[test]
fn an_invalid_configuration_is_refused_before_anything_runs() {
    let mut config = NetworkConfig::new("member-1");
    config.cluster_subnet = Some(net("10.200.0.0/16"));
    let err = ClusterNetwork::new(&config, None).unwrap_err();
    assert!(err.to_string().contains("outside global_cidr"), "{err}");
}

// === node blocks ===

#[test]
fn nodes_without_blocks_get_disjoint_lowest_free_blocks_including_the_gateways() {
    let network = mk_network("10.113.0.0/16", 24);
    let nodes = [mk_node("a", None), mk_node("b", None), mk_node("c", None)];
    let plan = plan_node_blocks(&network, &nodes, &[]);
    assert_eq!(
        blocks_of(&plan),
        vec![
            ("a".into(), "10.113.0.0/24".into()),
            ("b".into(), "10.113.1.0/24".into()),
            ("c".into(), "10.113.2.0/24".into()),
        ]
    );
    assert!(plan.errors.is_empty());
    assert!(plan.assign.iter().all(|a| a.replaces.is_none()));
}

#[test]
fn existing_blocks_are_kept_and_holes_are_reused() {
    let network = mk_network("10.113.0.0/16", 24);
    let nodes = [
        mk_node("a", Some("10.113.0.0/24")),
        mk_node("b", None),
        mk_node("c", Some("10.113.2.0/24")),
    ];
    let plan = plan_node_blocks(&network, &nodes, &[]);
    assert_eq!(blocks_of(&plan), vec![("b".into(), "10.113.1.0/24".into())]);
    assert_eq!(plan.keep.len(), 2);
}

#[test]
fn planning_again_after_writing_the_plan_changes_nothing() {
    let network = mk_network("10.113.0.0/16", 24);
    let mut nodes = vec![mk_node("a", None), mk_node("b", Some("junk"))];
    let plan = plan_node_blocks(&network, &nodes, &[]);
    for a in &plan.assign {
        let n = nodes.iter_mut().find(|n| n.name == a.node).unwrap();
        n.annotation = Some(a.block.to_string());
    }
    let again = plan_node_blocks(&network, &nodes, &[]);
    assert!(again.is_settled(), "{again:?}");
    assert_eq!(again.keep.len(), 2);
}

#[test]
fn bad_annotations_are_replaced_and_the_reason_names_the_value() {
    let network = mk_network("10.113.0.0/16", 24);
    let cases = [
        ("not-a-cidr", "\"not-a-cidr\" is not a network"),
        ("10.113.5.7/24", "host bits set"),
        (
            "10.114.0.0/24",
            "not a block inside cluster subnet 10.113.0.0/16",
        ),
        ("10.113.0.0/16", "not a block inside"),
        ("10.112.0.0/12", "not a block inside"),
        ("fd00::/64", "not a block inside"),
        ("10.113.9.0/31", "too small"),
        ("", "is not a network"),
    ];
    for (value, words) in cases {
        let plan = plan_node_blocks(&network, &[mk_node("a", Some(value))], &[]);
        assert_eq!(plan.assign.len(), 1, "{value}");
        let bad = plan.assign[0].replaces.clone().expect(value);
        assert!(bad.to_string().contains(words), "{value}: {bad}");
        assert_eq!(plan.assign[0].block, net("10.113.0.0/24"), "{value}");
    }
}

#[test]
fn the_later_of_two_overlapping_nodes_gets_a_fresh_block() {
    let network = mk_network("10.113.0.0/16", 24);
    let nodes = [
        mk_node("old", Some("10.113.4.0/24")),
        mk_node("new", Some("10.113.4.0/25")),
    ];
    let plan = plan_node_blocks(&network, &nodes, &[]);
    assert_eq!(plan.keep.get("old"), Some(&net("10.113.4.0/24")));
    assert_eq!(plan.assign.len(), 1);
    assert_eq!(plan.assign[0].node, "new");
    assert_eq!(plan.assign[0].block, net("10.113.0.0/24"));
    assert_eq!(
        plan.assign[0].replaces,
        Some(BadBlock::Overlaps {
            block: net("10.113.4.0/25"),
            other: "old".into(),
            other_block: net("10.113.4.0/24"),
        })
    );
}

#[test]
fn blocks_of_another_valid_size_are_kept() {
    let network = mk_network("10.113.0.0/16", 24);
    let nodes = [mk_node("a", Some("10.113.0.0/23")), mk_node("b", None)];
    let plan = plan_node_blocks(&network, &nodes, &[]);
    assert_eq!(blocks_of(&plan), vec![("b".into(), "10.113.2.0/24".into())]);
}

fn held(ip: &str, node: &str) -> HeldAddress {
    HeldAddress {
        ip: ip.parse().unwrap(),
        node: Some(node.to_owned()),
    }
}

#[test]
fn a_block_whose_pods_outlive_their_nodes_annotation_is_not_handed_to_another_node() {
    let network = mk_network("10.113.0.0/16", 24);
    // Node "gone" had 10.113.0.0/24 and was deleted while two of its pods run.
    let held = [held("10.113.0.5", "gone"), held("10.113.0.9", "gone")];
    let plan = plan_node_blocks(&network, &[mk_node("new", None)], &held);
    assert_eq!(
        blocks_of(&plan),
        vec![("new".into(), "10.113.1.0/24".into())]
    );
}

#[test]
fn a_node_that_comes_back_gets_the_block_its_own_pods_sit_in() {
    let network = mk_network("10.113.0.0/16", 24);
    let held = [
        held("10.113.3.7", "back"),
        held("10.113.3.8", "back"),
        held("10.113.0.4", "kept"),
    ];
    let nodes = [
        mk_node("kept", Some("10.113.0.0/24")),
        mk_node("other", None),
        mk_node("back", None),
    ];
    let plan = plan_node_blocks(&network, &nodes, &held);
    assert_eq!(
        blocks_of(&plan),
        vec![
            ("other".into(), "10.113.1.0/24".into()),
            ("back".into(), "10.113.3.0/24".into()),
        ]
    );
}

#[test]
fn own_ports_spread_over_two_blocks_or_in_a_taken_one_get_a_free_block_instead() {
    let network = mk_network("10.113.0.0/16", 24);
    // Written under a larger block size: no single /24 holds them.
    let spread = [held("10.113.4.1", "a"), held("10.113.5.1", "a")];
    let plan = plan_node_blocks(&network, &[mk_node("a", None)], &spread);
    assert_eq!(blocks_of(&plan), vec![("a".into(), "10.113.0.0/24".into())]);
    // Another node's stranded address sits in the same /24: neither gets it.
    let shared = [held("10.113.2.1", "a"), held("10.113.2.2", "b")];
    let plan = plan_node_blocks(&network, &[mk_node("a", None)], &shared);
    assert_eq!(blocks_of(&plan), vec![("a".into(), "10.113.0.0/24".into())]);
}

#[test]
fn addresses_inside_kept_blocks_or_outside_the_subnet_change_nothing() {
    let network = mk_network("10.113.0.0/16", 24);
    let held = [held("10.113.0.5", "x"), held("10.200.0.5", "y")];
    let nodes = [mk_node("a", Some("10.113.0.0/24")), mk_node("b", None)];
    let plan = plan_node_blocks(&network, &nodes, &held);
    assert_eq!(blocks_of(&plan), vec![("b".into(), "10.113.1.0/24".into())]);
}

#[test]
fn held_addresses_are_read_from_pod_ports_only() {
    let pod = LogicalSwitchPort::new("apps_web")
        .with_address("0a:58:0a:71:00:05", &["10.113.0.5"])
        .with_external_id(OWNER_KEY, OWNER_POD)
        .with_external_id(NODE_KEY, "n1");
    let gateway = LogicalSwitchPort::new(CNF_PORT)
        .with_address("0a:58:0a:71:00:01", &["10.113.0.1"])
        .with_external_id(OWNER_KEY, OWNER_CNF);
    assert_eq!(
        HeldAddress::of_pod_ports(&[pod, gateway]),
        vec![held("10.113.0.5", "n1")]
    );
}

#[test]
fn exhaustion_is_an_error_naming_the_cluster_subnet_and_the_node() {
    let network = mk_network("10.113.0.0/22", 24);
    let nodes: Vec<NodeView> = ["a", "b", "c", "d", "e", "f"]
        .iter()
        .map(|n| mk_node(n, None))
        .collect();
    let plan = plan_node_blocks(&network, &nodes, &[]);
    assert_eq!(plan.assign.len(), 4);
    assert_eq!(plan.errors.len(), 2);
    let text = plan.errors[0].to_string();
    assert!(text.contains("10.113.0.0/22"), "{text}");
    assert!(text.contains("node e"), "{text}");
    assert!(!plan.is_settled());
}

#[test]
fn ipv6_nodes_get_disjoint_blocks_too() {
    let mut config = NetworkConfig::new("member-6");
    config.global_cidr = net("fd00:112::/48");
    config.cluster_prefix_len = 56;
    config.cluster_subnet = Some(net("fd00:112:0:100::/56"));
    config.node_block_prefix_len = 64;
    let network = ClusterNetwork::new(&config, None).unwrap();
    assert_eq!(network.gateway.to_string(), "fd00:112:0:100::1");
    let plan = plan_node_blocks(&network, &[mk_node("a", None), mk_node("b", None)], &[]);
    assert_eq!(
        blocks_of(&plan),
        vec![
            ("a".into(), "fd00:112:0:100::/64".into()),
            ("b".into(), "fd00:112:0:101::/64".into()),
        ]
    );
}

// === garbage collection ===

#[test]
fn ports_without_the_pod_owner_are_never_collected() {
    let foreign = LogicalSwitchPort::new("operator-port").with_external_id(POD_KEY, "x");
    let cnf = mk_network("10.113.0.0/16", 24).desired_cnf_port();
    let mut gc = GcTracker::new();
    let t0 = Instant::now();
    let ports = [foreign, cnf];
    assert!(
        gc.observe(t0, Duration::ZERO, &ports, &live(&[]))
            .is_empty()
    );
    assert_eq!(gc.pending(), 0);
}

#[test]
fn an_orphan_port_is_kept_until_its_grace_period_has_passed() {
    let grace = Duration::from_secs(60);
    let ports = [mk_pod_port("default", "gone", "u1")];
    let pods = live(&[]);
    let mut gc = GcTracker::new();
    let t0 = Instant::now();
    assert!(gc.observe(t0, grace, &ports, &pods).is_empty());
    let t59 = t0 + Duration::from_secs(59);
    assert!(gc.observe(t59, grace, &ports, &pods).is_empty());
    assert_eq!(gc.next_due(t59, grace), Some(Duration::from_secs(1)));
    let due = gc.observe(t0 + grace, grace, &ports, &pods);
    assert_eq!(due.len(), 1);
    assert_eq!(due[0].name, "default_gone");
}

#[test]
fn a_pod_that_reappears_cancels_the_collection() {
    let grace = Duration::from_secs(10);
    let ports = [mk_pod_port("default", "web", "u1")];
    let mut gc = GcTracker::new();
    let t0 = Instant::now();
    gc.observe(t0, grace, &ports, &live(&[]));
    assert_eq!(gc.pending(), 1);
    let back = live(&[("default", "web", "u1")]);
    assert!(
        gc.observe(t0 + Duration::from_secs(5), grace, &ports, &back)
            .is_empty()
    );
    assert_eq!(gc.pending(), 0);
    // Gone again: the grace starts over.
    let t1 = t0 + Duration::from_secs(12);
    assert!(gc.observe(t1, grace, &ports, &live(&[])).is_empty());
    assert_eq!(gc.observe(t1 + grace, grace, &ports, &live(&[])).len(), 1);
}

#[test]
fn a_live_pods_port_is_never_collected() {
    let ports = [mk_pod_port("default", "web", "u1")];
    let pods = live(&[("default", "web", "u1")]);
    let mut gc = GcTracker::new();
    let t0 = Instant::now();
    assert!(gc.observe(t0, Duration::ZERO, &ports, &pods).is_empty());
    assert!(
        gc.observe(
            t0 + Duration::from_secs(3600),
            Duration::ZERO,
            &ports,
            &pods
        )
        .is_empty()
    );
}

#[test]
fn a_port_of_a_replaced_pod_with_the_same_name_is_an_orphan() {
    let port = mk_pod_port("default", "db-0", "old-uid");
    assert_eq!(
        classify_port(&port, &live(&[("default", "db-0", "new-uid")])),
        PortKind::Orphan
    );
    assert_eq!(
        classify_port(&port, &live(&[("default", "db-0", "old-uid")])),
        PortKind::Live
    );
    // Same name in another namespace is another pod.
    assert_eq!(
        classify_port(&port, &live(&[("other", "db-0", "old-uid")])),
        PortKind::Orphan
    );
}

#[test]
fn a_pod_port_without_its_pod_name_is_kept() {
    let port = LogicalSwitchPort::new("x").with_external_id(OWNER_KEY, OWNER_POD);
    assert_eq!(classify_port(&port, &live(&[])), PortKind::Unidentified);
    let mut gc = GcTracker::new();
    assert!(
        gc.observe(Instant::now(), Duration::ZERO, &[port], &live(&[]))
            .is_empty()
    );
}

#[test]
fn a_port_that_disappeared_is_forgotten() {
    let grace = Duration::from_secs(10);
    let mut gc = GcTracker::new();
    let t0 = Instant::now();
    gc.observe(t0, grace, &[mk_pod_port("a", "b", "u")], &live(&[]));
    assert_eq!(gc.pending(), 1);
    gc.observe(t0 + Duration::from_secs(1), grace, &[], &live(&[]));
    assert_eq!(gc.pending(), 0);
}

#[test]
fn a_guarded_removal_waits_on_the_exact_external_ids_then_deletes() {
    let uuid = Uuid::parse("7f8d9c2e-1111-4222-8333-944455556666").unwrap();
    let port = mk_pod_port("default", "gone", "u1");
    let ops = plan_guarded_port_removal(&uuid, &port.external_ids);
    assert_eq!(ops.len(), 3);
    match &ops[0] {
        Operation::Wait {
            table,
            until_equal,
            rows,
            timeout_ms,
            ..
        } => {
            assert_eq!(table, LOGICAL_SWITCH_PORT);
            assert!(*until_equal);
            assert_eq!(*timeout_ms, Some(0));
            assert_eq!(
                rows[0].get("external_ids"),
                Some(&Value::from(&port.external_ids))
            );
        }
        other => panic!("expected a wait, got {other:?}"),
    }
    assert!(matches!(ops[2], Operation::Delete { .. }));
}
