use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn wanted(key: u8, ep: Option<&str>, ips: &[&str], keepalive: Option<u16>) -> WantedPeer {
    WantedPeer {
        public_key: PublicKey([key; 32]),
        endpoint: ep.map(|e| e.parse().unwrap()),
        allowed_ips: ips.iter().map(|i| net(i)).collect(),
        keepalive,
    }
}

fn device(key: u8, ep: Option<&str>, ips: &[&str], keepalive: Option<u16>) -> DevicePeer {
    DevicePeer {
        public_key: PublicKey([key; 32]),
        endpoint: ep.map(|e| e.parse().unwrap()),
        allowed_ips: ips.iter().map(|i| net(i)).collect(),
        keepalive,
    }
}

#[test]
fn a_device_that_matches_needs_no_change() {
    let want = [wanted(
        1,
        Some("198.18.0.1:51820"),
        &["10.112.0.0/16", "10.113.0.0/16"],
        Some(25),
    )];
    let have = [device(
        1,
        Some("198.18.0.1:51820"),
        &["10.113.0.0/16", "10.112.0.0/16"],
        Some(25),
    )];
    assert!(diff_peers(&want, &have).is_empty());
}

#[test]
fn a_learned_endpoint_is_left_alone_and_keepalive_zero_is_off() {
    let want = [wanted(1, None, &["10.112.0.0/16"], None)];
    let have = [device(
        1,
        Some("203.0.113.9:40000"),
        &["10.112.0.0/16"],
        Some(0),
    )];
    assert!(diff_peers(&want, &have).is_empty());
}

#[test]
fn only_the_fields_that_differ_are_changed() {
    let want = [wanted(
        1,
        Some("198.18.0.2:51820"),
        &["10.112.0.0/16", "10.114.0.0/16"],
        Some(25),
    )];
    let have = [device(
        1,
        Some("198.18.0.1:51820"),
        &["10.112.0.0/16"],
        Some(25),
    )];
    assert_eq!(
        diff_peers(&want, &have),
        [PeerChange::Update(PeerUpdate {
            public_key: PublicKey([1; 32]),
            endpoint: Some("198.18.0.2:51820".parse().unwrap()),
            allowed_ips: Some(vec![net("10.112.0.0/16"), net("10.114.0.0/16")]),
            keepalive: None,
        })]
    );
    let want = [wanted(1, None, &["10.112.0.0/16"], None)];
    let have = [device(1, None, &["10.112.0.0/16"], Some(25))];
    assert_eq!(
        diff_peers(&want, &have),
        [PeerChange::Update(PeerUpdate {
            public_key: PublicKey([1; 32]),
            endpoint: None,
            allowed_ips: None,
            keepalive: Some(None),
        })]
    );
}

#[test]
fn removals_come_before_updates_and_additions() {
    let want = [
        wanted(3, None, &["10.113.0.0/16"], None),
        wanted(2, None, &["10.112.0.0/16"], None),
    ];
    let have = [
        device(1, None, &["10.113.0.0/16"], None),
        device(2, None, &[], None),
    ];
    let changes = diff_peers(&want, &have);
    assert_eq!(changes.len(), 3);
    assert_eq!(changes[0], PeerChange::Remove(PublicKey([1; 32])));
    assert!(matches!(&changes[1], PeerChange::Update(u) if u.public_key == PublicKey([2; 32])));
    assert_eq!(changes[2], PeerChange::Add(want[0].clone()));
}

#[test]
fn routes_diff_both_ways() {
    let diff = diff_routes(
        &[net("10.112.0.0/16"), net("10.113.0.0/16")],
        &[net("10.113.0.0/16"), net("10.120.0.0/16")],
    );
    assert_eq!(diff.add, [net("10.112.0.0/16")]);
    assert_eq!(diff.remove, [net("10.120.0.0/16")]);
    assert!(diff_routes(&[net("10.112.0.0/16")], &[net("10.112.0.0/16")]).is_empty());
}
