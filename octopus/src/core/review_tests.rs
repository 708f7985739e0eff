use std::collections::BTreeSet;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use nauti_api::testutil::{mk_hub_peer, mk_peer};

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

fn key(byte: u8) -> String {
    PublicKey([byte; 32]).to_string()
}

fn peer(id: &str, cidr: &str, key_byte: u8) -> Peer {
    let mut p = mk_peer(id, [net(cidr)]);
    p.spec.public_key = key(key_byte);
    p
}

fn created(mut p: Peer, secs: i64) -> Peer {
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).unwrap();
    p.metadata.creation_timestamp = Some(Time(ts));
    p
}

fn rejection(verdicts: &[PeerVerdict], name: &str) -> PeerRejection {
    verdicts
        .iter()
        .find(|v| v.name == name)
        .unwrap()
        .result
        .clone()
        .unwrap_err()
}

#[test]
fn valid_peers_come_back_with_decoded_keys_and_endpoints() {
    let mut hub = mk_hub_peer("hub", [net("10.112.0.0/16")], "198.18.0.1");
    hub.spec.public_key = key(1);
    let verdicts = review_peers(
        &[hub, peer("a", "10.113.0.0/16", 2)],
        &SlicePolicy::default(),
        None,
    );
    let hub = verdicts
        .iter()
        .find(|v| v.name == "hub")
        .unwrap()
        .result
        .as_ref()
        .unwrap();
    assert_eq!(hub.public_key, PublicKey([1; 32]));
    assert_eq!(
        hub.endpoint,
        Some(Endpoint {
            host: EndpointHost::Ip("198.18.0.1".parse().unwrap()),
            port: 51820
        })
    );
    assert!(verdicts.iter().all(|v| v.result.is_ok()));
}

#[test]
fn the_older_peer_keeps_an_overlapping_slice() {
    let newer = created(peer("a", "10.112.0.0/16", 2), 2000);
    let older = created(peer("b", "10.112.0.0/17", 3), 1000);
    let verdicts = review_peers(&[newer, older], &SlicePolicy::default(), None);
    assert_eq!(verdicts[0].name, "b");
    assert!(verdicts[0].result.is_ok());
    let why = rejection(&verdicts, "a");
    assert_eq!(why.condition_reason(), condition::REASON_CIDR_CONFLICT);
    assert!(why.to_string().contains("held by cluster \"b\""), "{why}");
}

#[test]
fn a_malformed_public_key_is_named() {
    let mut bad = peer("a", "10.112.0.0/16", 2);
    bad.spec.public_key = "not-a-key".into();
    let verdicts = review_peers(&[bad], &SlicePolicy::default(), None);
    let why = rejection(&verdicts, "a");
    assert_eq!(why.condition_reason(), condition::REASON_INVALID_SPEC);
    assert!(
        why.to_string().starts_with("spec.publicKey \"not-a-key\""),
        "{why}"
    );
}

#[test]
fn an_out_of_range_slice_is_refused() {
    let verdicts = review_peers(
        &[peer("a", "192.168.0.0/16", 2)],
        &SlicePolicy::default(),
        None,
    );
    let why = rejection(&verdicts, "a");
    assert!(
        matches!(why, PeerRejection::Slice(SliceError::OutsideGlobal { .. })),
        "{why}"
    );
}

#[test]
fn a_peer_for_a_cluster_that_never_joined_is_refused() {
    let joined: BTreeSet<String> = ["a".to_owned()].into();
    let verdicts = review_peers(
        &[peer("a", "10.112.0.0/16", 2), peer("x", "10.113.0.0/16", 3)],
        &SlicePolicy::default(),
        Some(&joined),
    );
    assert!(verdicts[0].result.is_ok());
    let why = rejection(&verdicts, "x");
    assert_eq!(why.condition_reason(), REASON_UNKNOWN_CLUSTER);
}

#[test]
fn a_reused_key_and_a_second_hub_are_refused() {
    let first = created(mk_hub_peer("hub", [net("10.112.0.0/16")], "198.18.0.1"), 1);
    let mut second = created(mk_hub_peer("hub2", [net("10.113.0.0/16")], "198.18.0.2"), 2);
    second.spec.public_key = key(9);
    let copycat = created(mk_peer("a", [net("10.114.0.0/16")]), 3);
    let verdicts = review_peers(&[first, second, copycat], &SlicePolicy::default(), None);
    assert!(
        matches!(rejection(&verdicts, "hub2"), PeerRejection::SecondHub { other_cluster } if other_cluster == "hub")
    );
    assert!(
        matches!(rejection(&verdicts, "a"), PeerRejection::DuplicateKey { other_cluster } if other_cluster == "hub")
    );
}

#[test]
fn a_host_name_endpoint_is_kept_for_the_edge_to_resolve() {
    let p = mk_hub_peer("hub", [net("10.112.0.0/16")], "gw.example.org");
    let verdicts = review_peers(&[p], &SlicePolicy::default(), None);
    let hub = verdicts[0].result.as_ref().unwrap();
    assert_eq!(
        hub.endpoint.as_ref().map(|e| &e.host),
        Some(&EndpointHost::Name("gw.example.org".into()))
    );
}
