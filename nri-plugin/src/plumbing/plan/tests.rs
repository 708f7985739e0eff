use std::collections::BTreeMap;

use super::*;

const SANDBOX_A: &str = "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa";
const SANDBOX_B: &str = "bbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbbb";

fn mk_node() -> NodeNetwork {
    NodeNetwork {
        node: "node-1".into(),
        logical_switch: "nauti-east".into(),
        cluster_subnet: "10.112.0.0/16".parse().unwrap(),
        gateway: "10.112.0.1".parse().unwrap(),
        global_cidr: "10.112.0.0/12".parse().unwrap(),
        node_block: "10.112.1.0/24".parse().unwrap(),
        pod_ifname: "eth-nauti".into(),
        mtu: 1382,
        tx_checksum_offload: false,
        integration_bridge: "br-int".into(),
        forwarder_namespaces: ["nauti-system".to_owned()].into(),
    }
}

fn mk_pod(id: &str, namespace: &str, name: &str) -> PodSandbox {
    PodSandbox {
        id: id.into(),
        name: name.into(),
        namespace: namespace.into(),
        uid: format!("uid-{name}"),
        netns_path: Some(format!("/var/run/netns/cni-{name}")),
        ..PodSandbox::default()
    }
}

#[test]
fn host_network_pods_are_skipped() {
    let mut pod = mk_pod(SANDBOX_A, "default", "web");
    pod.netns_path = None;
    assert_eq!(
        skip_reason(&pod, &OptOut::default()),
        Ok(Some(Skip::HostNetwork))
    );
    pod.netns_path = Some(String::new());
    assert_eq!(
        skip_reason(&pod, &OptOut::default()),
        Ok(Some(Skip::HostNetwork))
    );
}

#[test]
fn pods_opt_out_by_annotation_or_namespace() {
    let mut pod = mk_pod(SANDBOX_A, "kube-system", "dns");
    assert_eq!(skip_reason(&pod, &OptOut::default()), Ok(None));
    let opt_out = OptOut {
        namespaces: ["kube-system".to_owned()].into(),
    };
    assert_eq!(
        skip_reason(&pod, &opt_out),
        Ok(Some(Skip::NamespaceOptedOut))
    );
    pod.namespace = "default".into();
    pod.annotations
        .insert("nauti.io/enabled".into(), "false".into());
    assert_eq!(skip_reason(&pod, &opt_out), Ok(Some(Skip::OptedOut)));
}

#[test]
fn a_malformed_opt_out_annotation_is_an_error_naming_it() {
    let mut pod = mk_pod(SANDBOX_A, "default", "web");
    pod.annotations
        .insert("nauti.io/enabled".into(), "nope".into());
    let err = skip_reason(&pod, &OptOut::default()).unwrap_err();
    assert!(
        err.contains("nauti.io/enabled") && err.contains("nope"),
        "{err}"
    );
}

#[test]
fn the_plan_follows_the_design_names_and_formats() {
    let pod = mk_pod(SANDBOX_A, "default", "web");
    let plan = pod_plan(
        &pod,
        "10.112.1.5".parse().unwrap(),
        &lsp_name(&pod.namespace, &pod.name),
        &mk_node(),
    );
    assert_eq!(plan.lsp.name, "default_web");
    assert_eq!(plan.lsp.addresses, vec!["0a:58:0a:70:01:05 10.112.1.5"]);
    assert_eq!(plan.lsp.port_security, plan.lsp.addresses);
    for (key, value) in [
        ("pod", "web"),
        ("namespace", "default"),
        ("uid", "uid-web"),
        ("node", "node-1"),
        ("sandbox", SANDBOX_A),
    ] {
        assert_eq!(
            plan.lsp.external_ids.get(key).map(String::as_str),
            Some(value),
            "{key}"
        );
    }
    assert_eq!(plan.nic.address.to_string(), "10.112.1.5/16");
    assert_eq!(
        plan.nic.routes,
        vec![(mk_node().global_cidr, mk_node().gateway)]
    );
    assert_eq!(plan.ovs_port.name, plan.nic.host_ifname);
    assert_eq!(plan.ovs_port.iface_id(), Some("default_web"));

    let annotations = plan.network.to_annotations();
    let expect: BTreeMap<&str, &str> = [
        ("nauti.io/ip_address", "10.112.1.5"),
        ("nauti.io/mac_address", "0a:58:0a:70:01:05"),
        ("nauti.io/cidr", "10.112.0.0/16"),
        ("nauti.io/gateway", "10.112.0.1"),
        ("nauti.io/logical_switch", "nauti-east"),
        ("nauti.io/pod_nic_type", "veth-pair"),
        (
            "nauti.io/routes",
            r#"[{"dst":"10.112.0.0/12","gw":"10.112.0.1"}]"#,
        ),
        ("nauti.io/allocated", "true"),
    ]
    .into();
    let got: BTreeMap<&str, &str> = annotations
        .iter()
        .map(|(k, v)| (k.as_str(), v.as_str()))
        .collect();
    assert_eq!(got, expect);
}

#[test]
fn only_this_nodes_pod_ports_count_and_their_addresses_rebuild_the_allocator() {
    let node = mk_node();
    let mine = pod_plan(
        &mk_pod(SANDBOX_A, "default", "a"),
        "10.112.1.5".parse().unwrap(),
        "default_a",
        &node,
    )
    .lsp;
    let mut other_node = node.clone();
    other_node.node = "node-2".into();
    let theirs = pod_plan(
        &mk_pod(SANDBOX_B, "default", "b"),
        "10.112.2.5".parse().unwrap(),
        "default_b",
        &other_node,
    )
    .lsp;
    let cnf = LogicalSwitchPort::new("nauti-cnf").with_external_id("node", "node-1");
    let ports = vec![mine, theirs, cnf];
    let owned = node_ports(&ports, "node-1");
    assert_eq!(owned.keys().copied().collect::<Vec<_>>(), vec![SANDBOX_A]);
    assert_eq!(
        allocations_from_ports(&owned, "eth-nauti"),
        vec![(owner(SANDBOX_A, "eth-nauti"), "10.112.1.5".parse().unwrap())]
    );
}

#[test]
fn a_name_held_by_another_nodes_pod_gives_this_sandbox_a_name_of_its_own() {
    let pod = mk_pod(SANDBOX_A, "default", "web-0");
    let mut elsewhere = mk_node();
    elsewhere.node = "node-2".into();
    let theirs = pod_plan(
        &mk_pod(SANDBOX_B, "default", "web-0"),
        "10.112.2.5".parse().unwrap(),
        "default_web-0",
        &elsewhere,
    )
    .lsp;
    assert_eq!(
        port_name_for(&pod, Some(&theirs), "node-1"),
        format!("default_web-0_{}", &SANDBOX_A[..12])
    );
    // Free, ours, or an earlier sandbox of this node: the plain name.
    assert_eq!(port_name_for(&pod, None, "node-1"), "default_web-0");
    assert_eq!(
        port_name_for(&pod, Some(&theirs), "node-2"),
        "default_web-0"
    );
    let operators = LogicalSwitchPort::new("default_web-0");
    assert_eq!(
        port_name_for(&pod, Some(&operators), "node-1"),
        "default_web-0"
    );
}

#[test]
fn the_node_network_needs_the_block_inside_the_switch_subnet() {
    let settings = crate::plumbing::PlumbingArgs::parse_settings(&[
        "--node-name",
        "node-1",
        "--cluster-id",
        "east",
    ]);
    let block = "10.112.1.0/24".parse().unwrap();
    let net = node_network(&settings, block, Some("10.112.0.0/16")).unwrap();
    assert_eq!(net.gateway.to_string(), "10.112.0.1");
    assert!(matches!(
        node_network(&settings, block, Some("10.113.0.0/16")),
        Err(NetworkError::BlockOutsideSubnet { .. })
    ));
    assert!(matches!(
        node_network(&settings, block, None),
        Err(NetworkError::BadSwitchSubnet { .. })
    ));
}

#[test]
fn a_port_without_a_parsable_address_gives_no_allocation() {
    let lsp = LogicalSwitchPort::new("x").with_address("0a:58:0a:70:01:05", &["not-an-ip"]);
    assert_eq!(port_address(&lsp), None);
    assert_eq!(port_address(&LogicalSwitchPort::new("y")), None);
}

#[test]
fn a_forwarder_in_a_trusted_namespace_gets_a_port_without_port_security_and_nowhere_else() {
    let node = mk_node();
    let ip = "10.112.1.9".parse().unwrap();
    let mut cnf = mk_pod(SANDBOX_A, "nauti-system", "octopus-member-x");
    cnf.annotations
        .insert("nauti.io/forwarder".into(), "true".into());
    let plan = pod_plan(&cnf, ip, "nauti-system_octopus-member-x", &node);
    assert!(plan.lsp.port_security.is_empty(), "{:?}", plan.lsp);
    assert_eq!(plan.lsp.addresses, vec!["0a:58:0a:70:01:09 10.112.1.9"]);

    // The same annotation in another namespace, or a value other than "true": port security.
    let mut forged = mk_pod(SANDBOX_B, "default", "sneaky");
    forged
        .annotations
        .insert("nauti.io/forwarder".into(), "true".into());
    let plan = pod_plan(&forged, ip, "default_sneaky", &node);
    assert_eq!(plan.lsp.port_security, vec!["0a:58:0a:70:01:09 10.112.1.9"]);
    cnf.annotations
        .insert("nauti.io/forwarder".into(), "yes".into());
    let plan = pod_plan(&cnf, ip, "nauti-system_octopus-member-x", &node);
    assert_eq!(plan.lsp.port_security.len(), 1);
}
