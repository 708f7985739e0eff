//! The second NIC plumbed by rtnetlink into real network namespaces.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::net::Ipv4Addr;

use nauti_api::MacAddr;
use nauti_nri::nic::{NicPlan, host_ifname, inspect, plumb, unplumb};
use nauti_testbed::{Netns, require_root};

fn plan(sandbox: &str, ip: Ipv4Addr) -> NicPlan {
    NicPlan {
        host_ifname: host_ifname(sandbox),
        pod_ifname: "eth-nauti".into(),
        mac: MacAddr::from_ipv4(ip),
        address: format!("{ip}/16").parse().unwrap(),
        routes: vec![(
            "10.112.0.0/12".parse().unwrap(),
            "10.112.0.1".parse().unwrap(),
        )],
        mtu: 1382,
        tx_checksum_offload: false,
    }
}

/// Runs `f` on a runtime whose thread sits in `node`, as the plugin sits in the node's namespace.
fn in_node<T: Send + 'static>(
    node: &Netns,
    f: impl FnOnce() -> std::pin::Pin<Box<dyn std::future::Future<Output = T>>> + Send + 'static,
) -> T {
    node.run_in(move || {
        tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
            .unwrap()
            .block_on(f())
    })
    .unwrap()
}

#[test]
fn a_plumbed_nic_carries_the_planned_mac_address_mtu_and_route() {
    require_root!();
    let node = Netns::new("nnn").unwrap();
    let pod = Netns::new("nnp").unwrap();
    let sandbox = format!("{:0>64}", pod.name());
    let wanted = plan(&sandbox, Ipv4Addr::new(10, 112, 3, 7));
    let (path, p) = (pod.path(), wanted.clone());
    in_node(&node, move || {
        Box::pin(async move { plumb(&path, &p).await })
    })
    .unwrap();

    let path = pod.path();
    let state = in_node(&node, move || {
        Box::pin(async move { inspect(&path, "eth-nauti").await })
    })
    .unwrap()
    .expect("no eth-nauti in the pod");
    assert_eq!(state.mac, Some(wanted.mac));
    let v4: Vec<_> = state
        .addresses
        .iter()
        .filter(|a| a.addr().is_ipv4())
        .collect();
    assert_eq!(v4, vec![&wanted.address]);
    assert_eq!(state.mtu, Some(1382));
    assert!(state.up);
    let routes = pod.ip(&["route", "show", "10.112.0.0/12"]).unwrap();
    assert!(routes.contains("via 10.112.0.1 dev eth-nauti"), "{routes}");
    let features = pod.exec("ethtool", &["-k", "eth-nauti"]).unwrap();
    assert!(features.contains("tx-checksumming: off"), "{features}");

    // The host end answers as the gateway would: the pair really carries packets.
    node.add_addr(&wanted.host_ifname, "10.112.0.1/16").unwrap();
    assert!(pod.ping("10.112.0.1", 3));
}

#[test]
fn plumbing_twice_leaves_one_nic_and_unplumbing_removes_both_ends() {
    require_root!();
    let node = Netns::new("nnn").unwrap();
    let pod = Netns::new("nnp").unwrap();
    let sandbox = format!("{:0>64}", pod.name());
    let wanted = plan(&sandbox, Ipv4Addr::new(10, 112, 3, 8));
    for _ in 0..2 {
        let (path, p) = (pod.path(), wanted.clone());
        in_node(&node, move || {
            Box::pin(async move { plumb(&path, &p).await })
        })
        .unwrap();
    }
    let links = pod.ip(&["-o", "link", "show"]).unwrap();
    assert_eq!(links.matches("eth-nauti").count(), 1, "{links}");

    let host = wanted.host_ifname.clone();
    let removed = in_node(&node, move || Box::pin(async move { unplumb(&host).await })).unwrap();
    assert!(removed);
    assert!(
        !pod.ip(&["-o", "link", "show"])
            .unwrap()
            .contains("eth-nauti")
    );
    assert!(
        !node
            .ip(&["-o", "link", "show"])
            .unwrap()
            .contains(&wanted.host_ifname)
    );
    let host = wanted.host_ifname.clone();
    let again = in_node(&node, move || Box::pin(async move { unplumb(&host).await })).unwrap();
    assert!(
        !again,
        "unplumbing an absent NIC must report that nothing changed"
    );
}

#[test]
fn a_missing_pod_namespace_is_an_error_naming_it_and_leaves_no_veth() {
    require_root!();
    let node = Netns::new("nnn").unwrap();
    let wanted = plan(&"f".repeat(64), Ipv4Addr::new(10, 112, 3, 9));
    let p = wanted.clone();
    let err = in_node(&node, move || {
        Box::pin(async move { plumb(std::path::Path::new("/run/netns/nauti-absent"), &p).await })
    })
    .unwrap_err();
    assert!(err.to_string().contains("/run/netns/nauti-absent"), "{err}");
    assert!(
        !node
            .ip(&["-o", "link", "show"])
            .unwrap()
            .contains(&wanted.host_ifname)
    );
}
