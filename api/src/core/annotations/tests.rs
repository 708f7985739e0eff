use std::net::{Ipv4Addr, Ipv6Addr};

use super::*;
use crate::testutil::{mk_pod_annotations, mk_pod_network};

fn with(key: &str, value: &str) -> BTreeMap<String, String> {
    let mut a = mk_pod_annotations();
    a.insert(key.to_owned(), value.to_owned());
    a
}

fn invalid_key(err: AnnotationError) -> (&'static str, String) {
    match err {
        AnnotationError::Invalid { key, value, .. } => (key, value),
        other => panic!("expected Invalid, got {other:?}"),
    }
}

#[test]
fn rendered_annotations_use_the_documented_formats() {
    let a = mk_pod_network().to_annotations();
    assert_eq!(a[keys::IP_ADDRESS], "10.112.1.5");
    assert_eq!(a[keys::MAC_ADDRESS], "0a:58:0a:70:01:05");
    assert_eq!(a[keys::CIDR], "10.112.0.0/16");
    assert_eq!(a[keys::GATEWAY], "10.112.0.1");
    assert_eq!(a[keys::LOGICAL_SWITCH], "nauti-member-1");
    assert_eq!(a[keys::POD_NIC_TYPE], "veth-pair");
    assert_eq!(
        a[keys::ROUTES],
        r#"[{"dst":"10.112.0.0/12","gw":"10.112.0.1"}]"#
    );
    assert_eq!(a[keys::ALLOCATED], "true");
    assert_eq!(a.len(), keys::POD_NETWORK.len());
}

/// Property: for many generated records of both families, parse(render(x)) == x.
#[test]
fn render_then_parse_round_trips_over_many_values() {
    let mut seed: u64 = 0x9e37_79b9_7f4a_7c15;
    let mut next = move || {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        seed
    };
    for i in 0..500 {
        let v6 = i % 3 == 0;
        let (cidr, ip, gateway, global): (IpNet, IpAddr, IpAddr, IpNet) = if v6 {
            let prefix = 48 + (next() % 65) as u8; // /48../112
            let base = Ipv6Addr::from(0xfd00_0112_u128 << 96 | (next() as u128) << 32);
            let cidr = IpNet::new(IpAddr::V6(base), prefix).unwrap().trunc();
            let host_bits = 128 - u32::from(prefix);
            let host = 2 + (u128::from(next()) % ((1u128 << host_bits.min(64)) - 2));
            let net = u128::from(match cidr.network() {
                IpAddr::V6(a) => a,
                IpAddr::V4(_) => unreachable!(),
            });
            let ip = IpAddr::V6(Ipv6Addr::from(net + host));
            let gw = IpAddr::V6(Ipv6Addr::from(net + 1));
            (cidr, ip, gw, "fd00:112::/32".parse().unwrap())
        } else {
            let prefix = 12 + (next() % 17) as u8; // /12../28
            let base = Ipv4Addr::from(0x0a70_0000 | (next() as u32 & 0x000f_ffff));
            let cidr = IpNet::new(IpAddr::V4(base), prefix).unwrap().trunc();
            let size = 1u32 << (32 - u32::from(prefix));
            let net = u32::from(match cidr.network() {
                IpAddr::V4(a) => a,
                IpAddr::V6(_) => unreachable!(),
            });
            let ip = IpAddr::V4(Ipv4Addr::from(net + 2 + (next() as u32 % (size - 3))));
            let gw = IpAddr::V4(Ipv4Addr::from(net + 1));
            (cidr, ip, gw, "10.112.0.0/12".parse().unwrap())
        };
        let pn = PodNetwork {
            ip_address: ip,
            mac_address: MacAddr::from_ip(ip),
            cidr,
            gateway,
            logical_switch: format!("nauti-c{i}"),
            pod_nic_type: PodNicType::VethPair,
            routes: (0..(i % 3))
                .map(|_| Route {
                    dst: global,
                    gw: gateway,
                })
                .collect(),
            allocated: i % 2 == 0,
        };
        let parsed = PodNetwork::from_annotations(&pn.to_annotations())
            .unwrap_or_else(|e| panic!("case {i} {pn:?}: {e}"));
        assert_eq!(parsed, pn, "case {i}");
    }
}

#[test]
fn render_into_replaces_own_keys_and_keeps_foreign_ones() {
    let mut a = BTreeMap::from([
        ("app".to_owned(), "web".to_owned()),
        (keys::IP_ADDRESS.to_owned(), "10.112.9.9".to_owned()),
    ]);
    mk_pod_network().render_into(&mut a);
    assert_eq!(a["app"], "web");
    assert_eq!(a[keys::IP_ADDRESS], "10.112.1.5");
}

#[test]
fn a_bad_ip_is_reported_with_key_and_value() {
    let err = PodNetwork::from_annotations(&with(keys::IP_ADDRESS, "10.112.1.500")).unwrap_err();
    assert_eq!(
        invalid_key(err.clone()),
        (keys::IP_ADDRESS, "10.112.1.500".to_owned())
    );
    let msg = err.to_string();
    assert!(
        msg.contains("nauti.io/ip_address") && msg.contains("10.112.1.500"),
        "{msg}"
    );
    // An IP with a prefix is not a bare IP either.
    let err = PodNetwork::from_annotations(&with(keys::GATEWAY, "10.112.0.1/16")).unwrap_err();
    assert_eq!(invalid_key(err).0, keys::GATEWAY);
}

#[test]
fn a_cidr_with_host_bits_or_a_too_long_prefix_is_refused() {
    let err = PodNetwork::from_annotations(&with(keys::CIDR, "10.112.0.1/16")).unwrap_err();
    assert!(
        err.to_string().contains("canonical form is 10.112.0.0/16"),
        "{err}"
    );
    assert_eq!(invalid_key(err).0, keys::CIDR);
    let err = PodNetwork::from_annotations(&with(keys::CIDR, "10.112.0.0/33")).unwrap_err();
    assert_eq!(invalid_key(err), (keys::CIDR, "10.112.0.0/33".to_owned()));
}

#[test]
fn a_malformed_mac_is_refused() {
    let err = PodNetwork::from_annotations(&with(keys::MAC_ADDRESS, "0a:58:0a:70:01")).unwrap_err();
    assert_eq!(
        invalid_key(err),
        (keys::MAC_ADDRESS, "0a:58:0a:70:01".to_owned())
    );
}

#[test]
fn routes_that_are_not_json_or_lack_gw_are_refused() {
    for bad in [
        "dst=10.112.0.0/12 gw=10.112.0.1",
        r#"[{"dst":"10.112.0.0/12"}]"#,
        r#"{"dst":"10.112.0.0/12","gw":"10.112.0.1"}"#,
        r#"[{"dst":"10.112.0.0/12","gw":"nope"}]"#,
        r#"[{"dst":"10.112.0.1/12","gw":"10.112.0.1"}]"#,
    ] {
        let err = PodNetwork::from_annotations(&with(keys::ROUTES, bad)).unwrap_err();
        assert_eq!(
            invalid_key(err.clone()),
            (keys::ROUTES, bad.to_owned()),
            "{err}"
        );
    }
    let err = PodNetwork::from_annotations(&with(keys::ROUTES, r#"[{"dst":"10.112.0.0/12"}]"#))
        .unwrap_err();
    assert!(err.to_string().contains("gw"), "{err}");
}

#[test]
fn allocated_must_be_true_or_false() {
    for bad in ["yes", "True", "1", ""] {
        let err = PodNetwork::from_annotations(&with(keys::ALLOCATED, bad)).unwrap_err();
        assert_eq!(invalid_key(err), (keys::ALLOCATED, bad.to_owned()));
    }
    let pn = PodNetwork::from_annotations(&with(keys::ALLOCATED, "false")).unwrap();
    assert!(!pn.allocated);
}

#[test]
fn unknown_nic_type_and_empty_switch_are_refused() {
    let err = PodNetwork::from_annotations(&with(keys::POD_NIC_TYPE, "macvlan")).unwrap_err();
    assert_eq!(invalid_key(err).0, keys::POD_NIC_TYPE);
    let err = PodNetwork::from_annotations(&with(keys::LOGICAL_SWITCH, "")).unwrap_err();
    assert_eq!(invalid_key(err).0, keys::LOGICAL_SWITCH);
}

#[test]
fn an_ip_outside_the_cidr_is_inconsistent() {
    let err = PodNetwork::from_annotations(&with(keys::IP_ADDRESS, "10.113.0.5")).unwrap_err();
    assert!(
        err.to_string()
            .contains("not inside nauti.io/cidr=10.112.0.0/16"),
        "{err}"
    );
    let err = PodNetwork::from_annotations(&with(keys::GATEWAY, "10.112.1.5")).unwrap_err();
    assert_eq!(invalid_key(err).0, keys::GATEWAY);
}

#[test]
fn a_missing_key_is_named() {
    let mut a = mk_pod_annotations();
    a.remove(keys::ROUTES);
    assert_eq!(
        PodNetwork::from_annotations(&a),
        Err(AnnotationError::Missing { key: keys::ROUTES })
    );
    assert_eq!(
        PodNetwork::try_from_annotations(&a),
        Err(AnnotationError::Missing { key: keys::ROUTES })
    );
}

#[test]
fn a_pod_without_nauti_keys_has_no_pod_network() {
    let a = BTreeMap::from([("app".to_owned(), "web".to_owned())]);
    assert_eq!(PodNetwork::try_from_annotations(&a), Ok(None));
    assert!(
        PodNetwork::try_from_annotations(&mk_pod_annotations())
            .unwrap()
            .is_some()
    );
}

#[test]
fn the_interface_address_carries_the_subnet_prefix() {
    assert_eq!(
        mk_pod_network().interface_address().to_string(),
        "10.112.1.5/16"
    );
}

#[test]
fn pods_are_enabled_unless_they_opt_out_explicitly() {
    let mut a = BTreeMap::new();
    assert_eq!(pod_enabled(&a), Ok(true));
    a.insert(keys::ENABLED.to_owned(), "false".to_owned());
    assert_eq!(pod_enabled(&a), Ok(false));
    a.insert(keys::ENABLED.to_owned(), "no".to_owned());
    assert_eq!(
        invalid_key(pod_enabled(&a).unwrap_err()),
        (keys::ENABLED, "no".to_owned())
    );
}

#[test]
fn node_cidr_is_absent_until_assigned_and_must_be_canonical() {
    let mut a = BTreeMap::new();
    assert_eq!(node_cidr(&a), Ok(None));
    a.insert(keys::NODE_CIDR.to_owned(), "10.112.3.0/24".to_owned());
    assert_eq!(node_cidr(&a), Ok(Some("10.112.3.0/24".parse().unwrap())));
    a.insert(keys::NODE_CIDR.to_owned(), "10.112.3.1/24".to_owned());
    assert_eq!(invalid_key(node_cidr(&a).unwrap_err()).0, keys::NODE_CIDR);
}

#[test]
fn the_clean_list_covers_every_written_key_but_not_the_opt_out() {
    for k in keys::POD_NETWORK {
        assert!(keys::ALL.contains(&k));
    }
    assert!(keys::ALL.contains(&keys::NODE_CIDR));
    assert!(!keys::ALL.contains(&keys::ENABLED));
    assert!(keys::ALL.iter().all(|k| k.starts_with(keys::PREFIX)));
}
