use super::*;
use crate::core::review::Endpoint;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn valid(
    id: &str,
    slice: &str,
    key: u8,
    endpoint: Option<&str>,
    hub: bool,
    public: bool,
) -> ValidPeer {
    ValidPeer {
        cluster_id: id.into(),
        slices: vec![net(slice)],
        endpoint: endpoint.map(|h| Endpoint {
            host: h
                .parse()
                .map_or_else(|_| EndpointHost::Name(h.into()), EndpointHost::Ip),
            port: 51820,
        }),
        public_key: PublicKey([key; 32]),
        is_hub: hub,
        is_public: public,
    }
}

fn set() -> Vec<ValidPeer> {
    vec![
        valid("hub", "10.112.0.0/16", 1, Some("198.18.0.1"), true, true),
        valid("a", "10.113.0.0/16", 2, None, false, false),
        valid("b", "10.114.0.0/16", 3, None, false, false),
        valid("p", "10.115.0.0/16", 4, Some("198.18.0.4"), false, true),
        valid(
            "q",
            "10.116.0.0/16",
            5,
            Some("gw-q.example.org"),
            false,
            true,
        ),
    ]
}

fn role(id: &str, hub: bool, public: bool) -> LocalRole {
    LocalRole {
        cluster_id: id.into(),
        is_hub: hub,
        is_public: public,
    }
}

fn no_dns(_: &str) -> Option<IpAddr> {
    None
}

#[test]
fn a_member_behind_nat_sends_everything_through_the_hub_with_a_keepalive() {
    let plan = plan_topology(&role("a", false, false), &set(), no_dns);
    assert_eq!(plan.peers.len(), 1);
    let hub = &plan.peers[0];
    assert_eq!(hub.public_key, PublicKey([1; 32]));
    assert_eq!(hub.endpoint, Some("198.18.0.1:51820".parse().unwrap()));
    assert_eq!(hub.keepalive, Some(NAT_KEEPALIVE_SECS));
    assert_eq!(
        hub.allowed_ips,
        [
            "10.112.0.0/16",
            "10.114.0.0/16",
            "10.115.0.0/16",
            "10.116.0.0/16"
        ]
        .map(net)
    );
    assert_eq!(plan.routes, hub.allowed_ips);
    assert!(!plan.missing_hub);
}

#[test]
fn the_hub_peers_every_member_and_learns_endpoints_it_is_not_told() {
    let plan = plan_topology(&role("hub", true, true), &set(), no_dns);
    let keys: Vec<u8> = plan.peers.iter().map(|p| p.public_key.0[0]).collect();
    assert_eq!(keys, [2, 3, 4, 5]);
    assert_eq!(plan.peers[0].endpoint, None);
    assert_eq!(plan.peers[0].keepalive, None);
    assert_eq!(
        plan.peers[2].endpoint,
        Some("198.18.0.4:51820".parse().unwrap())
    );
    assert_eq!(
        plan.routes,
        [
            "10.113.0.0/16",
            "10.114.0.0/16",
            "10.115.0.0/16",
            "10.116.0.0/16"
        ]
        .map(net)
    );
    assert_eq!(
        plan.unresolved,
        [("q".to_owned(), "gw-q.example.org".to_owned())]
    );
}

#[test]
fn two_public_members_talk_directly_and_the_hub_carries_the_rest() {
    let dns = |name: &str| (name == "gw-q.example.org").then(|| "198.18.0.5".parse().unwrap());
    let plan = plan_topology(&role("p", false, true), &set(), dns);
    let q = plan
        .peers
        .iter()
        .find(|p| p.public_key == PublicKey([5; 32]))
        .unwrap();
    assert_eq!(q.endpoint, Some("198.18.0.5:51820".parse().unwrap()));
    assert_eq!(q.allowed_ips, [net("10.116.0.0/16")]);
    let hub = plan
        .peers
        .iter()
        .find(|p| p.public_key == PublicKey([1; 32]))
        .unwrap();
    assert_eq!(hub.keepalive, None, "a public member needs no keepalive");
    assert_eq!(
        hub.allowed_ips,
        ["10.112.0.0/16", "10.113.0.0/16", "10.114.0.0/16"].map(net)
    );
    assert!(plan.unresolved.is_empty());
}

#[test]
fn a_member_without_a_hub_says_so() {
    let peers: Vec<ValidPeer> = set().into_iter().filter(|p| !p.is_hub).collect();
    let plan = plan_topology(&role("a", false, false), &peers, no_dns);
    assert!(plan.missing_hub);
    assert!(plan.peers.is_empty());
    assert!(plan.routes.is_empty());
}
