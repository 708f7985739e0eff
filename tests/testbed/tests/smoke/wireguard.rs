use std::time::Duration;

use nauti_testbed::names::unique;
use nauti_testbed::traffic::tcp_transfer;
use nauti_testbed::wireguard::{UserspaceWg, WgKeys, WgPeer};
use nauti_testbed::{Netns, TestDir, require_root};

#[test]
fn a_userspace_wireguard_tunnel_between_two_namespaces_carries_ping_and_tcp() {
    require_root!();
    let dir = TestDir::new("wg-tunnel").unwrap();
    let a = Netns::new("nwa").unwrap();
    let b = Netns::new("nwb").unwrap();
    a.veth_to("u0", &b, "u1").unwrap();
    a.add_addr("u0", "198.18.20.1/30").unwrap();
    b.add_addr("u1", "198.18.20.2/30").unwrap();

    let (if_a, if_b) = (unique("wga"), unique("wgb"));
    let wg_a = UserspaceWg::start(&a, &if_a, &dir).unwrap();
    let wg_b = UserspaceWg::start(&b, &if_b, &dir).unwrap();
    let (keys_a, keys_b) = (WgKeys::generate().unwrap(), WgKeys::generate().unwrap());
    wg_a.configure(
        &keys_a,
        51820,
        &[WgPeer {
            public_key: keys_b.public.clone(),
            endpoint: Some("198.18.20.2:51820".into()),
            allowed_ips: vec!["10.112.0.2/32".into()],
            keepalive: Some(1),
        }],
    )
    .unwrap();
    wg_b.configure(
        &keys_b,
        51820,
        &[WgPeer {
            public_key: keys_a.public.clone(),
            endpoint: Some("198.18.20.1:51820".into()),
            allowed_ips: vec!["10.112.0.1/32".into()],
            keepalive: Some(1),
        }],
    )
    .unwrap();
    a.add_addr(&if_a, "10.112.0.1/30").unwrap();
    b.add_addr(&if_b, "10.112.0.2/30").unwrap();
    // WireGuard over IPv4 costs 60 bytes of the 1500-byte underlay.
    a.ip(&["link", "set", &if_a, "mtu", "1440"]).unwrap();
    b.ip(&["link", "set", &if_b, "mtu", "1440"]).unwrap();

    assert!(a.ping("10.112.0.2", 10), "no ping through the tunnel");
    let bytes = 8 * 1024 * 1024;
    let received = tcp_transfer(
        &b,
        &a,
        "10.112.0.2".parse().unwrap(),
        5001,
        bytes,
        Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(received, bytes);

    let shown = a.exec("wg", &["show", &if_a, "latest-handshakes"]).unwrap();
    assert!(
        shown.contains(&keys_b.public),
        "handshake not listed: {shown}"
    );
}
