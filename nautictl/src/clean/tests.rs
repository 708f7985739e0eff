use super::*;

use nauti_ovn::{Atom, Mutator};

const WIRED: &str = "\
.:53 {
    forward . /etc/resolv.conf
}
# BEGIN nauti-crossdns (added by `crossdns wire-coredns`, removed by `crossdns unwire-coredns`; edits between these lines are overwritten)
hyperos.local:53 clusterset.local:53 {
    errors
    forward . 10.96.0.53:53
}
# END nauti-crossdns
";

fn uuid(n: u8) -> Uuid {
    Uuid::parse(&format!("00000000-0000-0000-0000-0000000000{n:02x}")).unwrap()
}

fn annotated(namespace: Option<&str>, name: &str, pairs: &[(&str, &str)]) -> Annotated {
    Annotated {
        namespace: namespace.map(str::to_owned),
        name: name.to_owned(),
        annotations: pairs
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

fn row(n: u8, name: &str, ids: &[(&str, &str)]) -> NbRow {
    NbRow {
        uuid: uuid(n),
        name: name.to_owned(),
        external_ids: ids
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect(),
    }
}

/// Nauti's switch with a pod port, the gateway port and a port an operator added; a foreign
/// switch with a Nauti pod port (moved there by hand) and a port of its own; octopus's load
/// balancer and a foreign one; Nauti's gateway router with its port and an operator's router.
fn northbound() -> NbSnapshot {
    NbSnapshot {
        switches: vec![
            NbSwitch {
                row: row(1, "nauti-east", &[("nauti.io/cluster", "east")]),
                ports: vec![uuid(10), uuid(11), uuid(12)],
            },
            NbSwitch {
                row: row(2, "operator-ls", &[("team", "infra")]),
                ports: vec![uuid(13), uuid(14)],
            },
        ],
        ports: vec![
            row(10, "default_web-0", &[("nauti.io/owner", "pod")]),
            row(11, "nauti-cnf", &[("nauti.io/owner", "cnf")]),
            row(12, "by-hand", &[]),
            row(13, "default_moved", &[("nauti.io/owner", "pod")]),
            row(14, "operator-port", &[("team", "infra")]),
        ],
        load_balancers: vec![
            row(20, "mcs_shop_cart_tcp", &[("nauti.io/owner", "octopus")]),
            row(21, "operator-lb", &[]),
        ],
        routers: vec![
            NbSwitch {
                row: row(
                    30,
                    "nauti-east-gw",
                    &[("nauti.io/owner", "cnf"), ("nauti.io/cluster", "east")],
                ),
                ports: vec![uuid(31)],
            },
            NbSwitch {
                row: row(32, "operator-lr", &[]),
                ports: vec![uuid(33)],
            },
        ],
        router_ports: vec![
            row(31, "nauti-east-gw-port", &[("nauti.io/owner", "cnf")]),
            row(33, "operator-lrp", &[]),
        ],
    }
}

fn lines(removals: &[Removal]) -> Vec<String> {
    removals.iter().map(ToString::to_string).collect()
}

#[test]
fn nauti_keys_are_the_ones_nauti_writes_and_never_the_opt_out() {
    let pod = annotated(
        Some("default"),
        "web-0",
        &[
            ("nauti.io/ip_address", "10.112.0.5"),
            ("nauti.io/allocated", "true"),
            ("nauti.io/enabled", "true"),
            ("example.com/keep", "x"),
        ],
    );
    assert_eq!(
        nauti_keys(&pod.annotations),
        ["nauti.io/allocated", "nauti.io/ip_address"]
    );
    assert!(nauti_keys(&BTreeMap::new()).is_empty());
}

#[test]
fn the_patch_nulls_exactly_the_keys() {
    let patch = strip_annotations_patch(&["nauti.io/cidr".into(), "nauti.io/routes".into()]);
    assert_eq!(
        patch,
        serde_json::json!({"metadata": {"annotations": {"nauti.io/cidr": null, "nauti.io/routes": null}}})
    );
}

#[test]
fn the_plan_lists_every_trace_one_line_per_object_in_removal_order() {
    let observed = Observed {
        pods: vec![
            annotated(
                Some("shop"),
                "cart-1",
                &[("nauti.io/cidr", "10.112.0.0/16")],
            ),
            annotated(Some("default"), "plain", &[("app", "plain")]),
            annotated(
                Some("default"),
                "web-0",
                &[
                    ("nauti.io/ip_address", "10.112.0.5"),
                    ("nauti.io/routes", "[]"),
                ],
            ),
        ],
        nodes: vec![
            annotated(None, "n2", &[]),
            annotated(None, "n1", &[("nauti.io/node-cidr", "10.112.0.0/24")]),
        ],
        corefile: Some(CorefileSeen {
            location: "ConfigMap kube-system/coredns key Corefile".into(),
            text: WIRED.into(),
        }),
        northbound: Some(northbound()),
    };
    let removals = plan(&observed).unwrap();
    assert_eq!(
        lines(&removals),
        [
            "Pod default/web-0 annotations nauti.io/ip_address,nauti.io/routes",
            "Pod shop/cart-1 annotations nauti.io/cidr",
            "Node n1 annotations nauti.io/node-cidr",
            "ConfigMap kube-system/coredns key Corefile block # BEGIN nauti-crossdns .. # END nauti-crossdns",
            "Logical_Switch_Port by-hand (on switch nauti-east)",
            "Logical_Switch_Port default_moved (on switch operator-ls)",
            "Logical_Switch_Port default_web-0 (on switch nauti-east)",
            "Logical_Switch_Port nauti-cnf (on switch nauti-east)",
            "Logical_Router_Port nauti-east-gw-port (on router nauti-east-gw)",
            "Load_Balancer mcs_shop_cart_tcp",
            "Logical_Switch nauti-east",
            "Logical_Router nauti-east-gw",
        ]
    );
    let northbound: Vec<&Removal> = removals.iter().filter(|r| r.is_northbound()).collect();
    assert_eq!(northbound.len(), 8);
}

#[test]
fn a_clean_cluster_plans_nothing() {
    let observed = Observed {
        pods: vec![annotated(
            Some("default"),
            "web-0",
            &[("nauti.io/enabled", "false")],
        )],
        nodes: vec![annotated(None, "n1", &[("team", "infra")])],
        corefile: Some(CorefileSeen {
            location: "ConfigMap kube-system/coredns key Corefile".into(),
            text: ".:53 {\n    forward . /etc/resolv.conf\n}\n".into(),
        }),
        northbound: Some(NbSnapshot {
            switches: vec![NbSwitch {
                row: row(2, "operator-ls", &[]),
                ports: vec![uuid(14)],
            }],
            ports: vec![row(14, "operator-port", &[])],
            load_balancers: vec![row(21, "operator-lb", &[])],
            routers: vec![NbSwitch {
                row: row(32, "operator-lr", &[]),
                ports: vec![uuid(33)],
            }],
            router_ports: vec![row(33, "operator-lrp", &[])],
        }),
    };
    assert_eq!(plan(&observed).unwrap(), []);
    assert_eq!(plan(&Observed::default()).unwrap(), []);
}

#[test]
fn a_corefile_without_the_marker_is_not_parsed_and_a_broken_one_with_it_is_an_error() {
    let unparsable_but_never_wired = Observed {
        corefile: Some(CorefileSeen {
            location: "ConfigMap kube-system/coredns key Corefile".into(),
            text: ".:53 {\n".into(),
        }),
        ..Observed::default()
    };
    assert_eq!(plan(&unparsable_but_never_wired).unwrap(), []);
    let broken = Observed {
        corefile: Some(CorefileSeen {
            location: "ConfigMap kube-system/coredns key Corefile".into(),
            text: format!("{WIRED}.:5353 {{\n"),
        }),
        ..Observed::default()
    };
    let err = plan(&broken).unwrap_err().to_string();
    assert!(
        err.starts_with("ConfigMap kube-system/coredns key Corefile: the crossdns block"),
        "{err}"
    );
}

#[test]
fn northbound_ops_detach_before_they_delete_and_take_switches_last() {
    let removals = plan(&Observed {
        northbound: Some(northbound()),
        ..Observed::default()
    })
    .unwrap();
    let ops = northbound_ops(&removals);
    let tables: Vec<(&str, &str)> = ops
        .iter()
        .map(|op| {
            let kind = match op {
                Operation::Mutate { .. } => "mutate",
                Operation::Delete { .. } => "delete",
                _ => "other",
            };
            (kind, op.table().unwrap())
        })
        .collect();
    let mut want = Vec::new();
    for _ in 0..4 {
        want.extend([
            ("mutate", "Logical_Switch"),
            ("delete", "Logical_Switch_Port"),
        ]);
    }
    want.extend([
        ("mutate", "Logical_Router"),
        ("delete", "Logical_Router_Port"),
        ("mutate", "Logical_Switch"),
        ("mutate", "Logical_Router"),
        ("delete", "Load_Balancer"),
        ("delete", "Logical_Switch"),
        ("delete", "Logical_Router"),
    ]);
    assert_eq!(tables, want);
    // The load balancer is detached by its UUID, from whichever switch or router holds it.
    let Operation::Mutate { mutations, .. } = &ops[10] else {
        panic!("{:?}", ops[10]);
    };
    assert_eq!(mutations[0].column, "load_balancer");
    assert_eq!(mutations[0].mutator, Mutator::Delete);
    assert_eq!(mutations[0].value, Value::Atom(Atom::Uuid(uuid(20))));
    // Annotations and the Corefile are not the database's business.
    assert!(
        northbound_ops(&[Removal::CorednsBlock {
            location: "x".into()
        }])
        .is_empty()
    );
}

#[test]
fn the_northbound_read_parses_into_a_snapshot() {
    let result = |rows: Vec<Row>| OperationResult {
        count: None,
        uuid: None,
        rows: Some(rows),
    };
    let switch = Row::from([
        ("_uuid".to_owned(), Value::Atom(Atom::Uuid(uuid(1)))),
        ("name".to_owned(), Value::from("nauti-east")),
        (
            "external_ids".to_owned(),
            Value::string_map([("nauti.io/cluster", "east")]),
        ),
        ("ports".to_owned(), Value::uuid_set([uuid(10)])),
    ]);
    let port = Row::from([
        ("_uuid".to_owned(), Value::Atom(Atom::Uuid(uuid(10)))),
        ("name".to_owned(), Value::from("default_web-0")),
        (
            "external_ids".to_owned(),
            Value::string_map([("nauti.io/owner", "pod")]),
        ),
    ]);
    let router = Row::from([
        ("_uuid".to_owned(), Value::Atom(Atom::Uuid(uuid(30)))),
        ("name".to_owned(), Value::from("nauti-east-gw")),
        ("ports".to_owned(), Value::uuid_set([uuid(31), uuid(32)])),
    ]);
    let empty = || result(vec![]);
    let snapshot = parse_northbound(&[
        result(vec![switch]),
        result(vec![port]),
        empty(),
        result(vec![router]),
        empty(),
    ])
    .unwrap();
    assert_eq!(snapshot.routers[0].ports, [uuid(31), uuid(32)]);
    assert!(snapshot.routers[0].row.external_ids.is_empty());
    assert_eq!(snapshot.switches[0].row.name, "nauti-east");
    assert_eq!(snapshot.switches[0].ports, [uuid(10)]);
    assert_eq!(snapshot.ports[0].external_ids["nauti.io/owner"], "pod");
    assert!(snapshot.load_balancers.is_empty());
    assert_eq!(read_northbound().len(), 5);
    assert!(parse_northbound(&[result(vec![])]).is_err());
    let without_uuid = Row::from([("name".to_owned(), Value::from("x"))]);
    assert!(
        parse_northbound(&[
            result(vec![without_uuid]),
            empty(),
            empty(),
            empty(),
            empty()
        ])
        .is_err()
    );
}

#[test]
fn nautis_ovs_ports_carry_its_sandbox_key() {
    let ports = [
        nauti_ovn::OvsPort::new("ntiabc123def456")
            .with_iface_id("default_client")
            .with_external_id(nauti_api::core::port::OVS_SANDBOX, "abc123"),
        nauti_ovn::OvsPort::new("br-int"),
        // An operator's port with an iface-id of its own.
        nauti_ovn::OvsPort::new("vm1").with_iface_id("vm1"),
    ];
    assert_eq!(nauti_ovs_ports(&ports), ["ntiabc123def456"]);
}

#[test]
fn host_veths_are_the_nti_links() {
    let links = "1: lo: <LOOPBACK,UP,LOWER_UP> mtu 65536 qdisc noqueue\\    link/loopback 00:00:00:00:00:00\n\
                 7: ntiabc123def456@if3: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1400\\    link/ether 0a:58:01:02:03:04\n\
                 8: eth0@if9: <BROADCAST,MULTICAST,UP,LOWER_UP> mtu 1500\\    link/ether 0a:58:01:02:03:05\n\
                 9: ntiffff: <BROADCAST,MULTICAST> mtu 1400\\    link/ether 0a:58:01:02:03:06\n";
    assert_eq!(host_veths(links), ["ntiabc123def456", "ntiffff"]);
}
