use std::collections::BTreeMap;

use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, Time};
use nauti_api::PeerStatus;
use nauti_api::testutil::{mk_hub_peer, mk_peer};

use super::*;

fn net(s: &str) -> IpNet {
    s.parse().unwrap()
}

/// A member Peer as a member creates it: no slice, key from `key_byte`, created at `secs`.
fn fresh(id: &str, key_byte: u8, secs: i64) -> Peer {
    let mut p = mk_peer(id, [NO_SLICE]);
    p.spec.public_key = PublicKey([key_byte; 32]).to_string();
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).unwrap();
    p.metadata.creation_timestamp = Some(Time(ts));
    p
}

fn asking(mut p: Peer, cidr: &str) -> Peer {
    p.metadata.annotations = Some(BTreeMap::from([(
        REQUESTED_SLICE_ANNOTATION.to_owned(),
        cidr.to_owned(),
    )]));
    p
}

fn holding(mut p: Peer, cidr: &str) -> Peer {
    p.spec.cluster_cidrs = vec![net(cidr)];
    p
}

fn joined(ids: &[&str]) -> BTreeSet<String> {
    ids.iter().map(|s| (*s).to_owned()).collect()
}

fn outcome<'a>(decisions: &'a [SliceDecision], name: &str) -> &'a Result<IpNet, SliceRefusal> {
    &decisions.iter().find(|d| d.name == name).unwrap().outcome
}

#[test]
fn members_without_a_request_get_distinct_lowest_free_slices_in_age_order() {
    let peers = [fresh("b", 2, 20), fresh("a", 1, 10)];
    let d = decide_slices(&peers, &SlicePolicy::default(), &joined(&["a", "b"]));
    assert_eq!(d[0].name, "a");
    assert_eq!(outcome(&d, "a"), &Ok(net("10.112.0.0/16")));
    assert_eq!(outcome(&d, "b"), &Ok(net("10.113.0.0/16")));
    assert_eq!(d[1].wanted_cidrs(), vec![net("10.113.0.0/16")]);
    assert!(d[1].valid_condition().0);
}

#[test]
fn a_held_slice_is_kept_and_a_free_request_is_granted() {
    let peers = [
        holding(fresh("a", 1, 10), "10.120.0.0/16"),
        asking(fresh("b", 2, 20), "10.121.0.0/16"),
        fresh("c", 3, 30),
    ];
    let d = decide_slices(&peers, &SlicePolicy::default(), &joined(&["a", "b", "c"]));
    assert_eq!(outcome(&d, "a"), &Ok(net("10.120.0.0/16")));
    assert_eq!(outcome(&d, "b"), &Ok(net("10.121.0.0/16")));
    assert_eq!(outcome(&d, "c"), &Ok(net("10.112.0.0/16")));
}

#[test]
fn an_overlapping_request_is_refused_naming_the_holder_and_gets_no_slice() {
    let peers = [
        holding(fresh("a", 1, 10), "10.112.0.0/16"),
        asking(fresh("b", 2, 20), "10.112.128.0/17"),
    ];
    let d = decide_slices(&peers, &SlicePolicy::default(), &joined(&["a", "b"]));
    let decision = d.iter().find(|d| d.name == "b").unwrap();
    let (valid, reason, message) = decision.valid_condition();
    assert!(!valid);
    assert_eq!(reason, condition::REASON_CIDR_CONFLICT);
    assert!(message.contains("\"a\""), "{message}");
    assert_eq!(decision.wanted_cidrs(), vec![NO_SLICE]);
}

#[test]
fn a_request_for_the_clusterset_block_or_outside_the_global_cidr_is_refused() {
    let policy = SlicePolicy::default();
    for (cidr, reason) in [
        ("10.127.0.0/16", condition::REASON_CIDR_CONFLICT),
        ("192.168.0.0/16", condition::REASON_INVALID_SPEC),
        ("10.113.0.1/16", condition::REASON_INVALID_SPEC),
        ("not-a-cidr", REASON_INVALID_REQUEST),
    ] {
        let d = decide_slices(&[asking(fresh("a", 1, 10), cidr)], &policy, &joined(&["a"]));
        assert_eq!(d[0].valid_condition().1, reason, "{cidr}");
        assert_eq!(d[0].wanted_cidrs(), vec![NO_SLICE], "{cidr}");
    }
}

#[test]
fn a_younger_peer_holding_an_older_ones_slice_without_a_request_moves() {
    // Two members that both wrote the same slice by hand: the older keeps it.
    let peers = [
        holding(fresh("a", 1, 10), "10.112.0.0/16"),
        holding(fresh("b", 2, 20), "10.112.0.0/16"),
    ];
    let d = decide_slices(&peers, &SlicePolicy::default(), &joined(&["a", "b"]));
    assert_eq!(outcome(&d, "a"), &Ok(net("10.112.0.0/16")));
    assert_eq!(outcome(&d, "b"), &Ok(net("10.113.0.0/16")));
}

fn hub_created_at(secs: i64) -> Peer {
    let mut hub = mk_hub_peer("hub", [NO_SLICE], "198.18.0.1");
    hub.spec.public_key = PublicKey([9; 32]).to_string();
    let ts = k8s_openapi::jiff::Timestamp::from_second(secs).unwrap();
    hub.metadata.creation_timestamp = Some(Time(ts));
    hub
}

#[test]
fn a_newcomer_created_in_the_same_second_never_moves_a_holder() {
    // The hub's Peer holds 10.112/16; a member's Peer created in the same second sorts before
    // it by name ("cluster1" < "hub") and holds nothing yet: the hub keeps its slice.
    let hub = holding(hub_created_at(10), "10.112.0.0/16");
    let peers = [fresh("cluster1", 1, 10), hub];
    let joined = joined(&["cluster1", "hub"]);
    let d = decide_slices(&peers, &SlicePolicy::default(), &joined);
    assert_eq!(outcome(&d, "hub"), &Ok(net("10.112.0.0/16")));
    assert_eq!(outcome(&d, "cluster1"), &Ok(net("10.113.0.0/16")));
    // The hub's decision stands on every later pass, in whatever order the Peers come.
    let hub = holding(hub_created_at(10), "10.112.0.0/16");
    let member = holding(fresh("cluster1", 1, 10), "10.113.0.0/16");
    for peers in [[hub.clone(), member.clone()], [member, hub]] {
        let again = decide_slices(&peers, &SlicePolicy::default(), &joined);
        assert_eq!(outcome(&again, "hub"), &Ok(net("10.112.0.0/16")));
        assert_eq!(outcome(&again, "cluster1"), &Ok(net("10.113.0.0/16")));
    }
}

#[test]
fn within_one_second_the_hub_takes_the_first_slice() {
    let peers = [fresh("cluster1", 1, 10), hub_created_at(10)];
    let d = decide_slices(
        &peers,
        &SlicePolicy::default(),
        &joined(&["cluster1", "hub"]),
    );
    assert_eq!(d[0].name, "hub");
    assert_eq!(outcome(&d, "hub"), &Ok(net("10.112.0.0/16")));
    assert_eq!(outcome(&d, "cluster1"), &Ok(net("10.113.0.0/16")));
}

#[test]
fn unknown_clusters_duplicate_keys_second_hubs_and_bad_specs_get_no_slice() {
    let mut bad_key = fresh("d", 4, 40);
    bad_key.spec.public_key = "not a key".into();
    let mut second_hub = fresh("e", 5, 50);
    second_hub.spec.is_hub = true;
    second_hub.spec.endpoint = Some("198.18.0.5".into());
    let mut hub = mk_hub_peer("hub", [NO_SLICE], "198.18.0.1");
    hub.spec.public_key = PublicKey([9; 32]).to_string();
    let peers = [
        hub,
        fresh("a", 1, 10),
        fresh("stranger", 2, 20),
        fresh("c", 1, 30),
        bad_key,
        second_hub,
    ];
    let d = decide_slices(
        &peers,
        &SlicePolicy::default(),
        &joined(&["hub", "a", "c", "d", "e"]),
    );
    assert!(outcome(&d, "hub").is_ok());
    assert!(outcome(&d, "a").is_ok());
    let reason = |name| d.iter().find(|d| d.name == name).unwrap().valid_condition();
    assert_eq!(
        reason("stranger").1,
        crate::core::review::REASON_UNKNOWN_CLUSTER
    );
    assert!(reason("c").2.contains("\"a\""), "{}", reason("c").2);
    assert_eq!(reason("d").1, condition::REASON_INVALID_SPEC);
    assert!(reason("e").2.contains("hub"), "{}", reason("e").2);
}

#[test]
fn peers_being_deleted_hold_nothing() {
    let mut leaving = holding(fresh("a", 1, 10), "10.112.0.0/16");
    leaving.metadata.deletion_timestamp = leaving.metadata.creation_timestamp.clone();
    let peers = [leaving, fresh("b", 2, 20)];
    let d = decide_slices(&peers, &SlicePolicy::default(), &joined(&["a", "b"]));
    assert_eq!(d.len(), 1);
    assert_eq!(outcome(&d, "b"), &Ok(net("10.112.0.0/16")));
}

#[test]
fn the_assigned_slice_is_read_only_from_a_current_valid_condition() {
    let mut p = holding(fresh("a", 1, 10), "10.113.0.0/16");
    p.metadata.generation = Some(3);
    assert_eq!(assigned_slice(&p), None);
    let cond = |status: &str, generation| Condition {
        type_: condition::VALID.into(),
        status: status.into(),
        reason: "r".into(),
        message: String::new(),
        observed_generation: Some(generation),
        last_transition_time: Time(k8s_openapi::jiff::Timestamp::UNIX_EPOCH),
    };
    p.status = Some(PeerStatus {
        conditions: vec![cond("True", 2)],
        ..Default::default()
    });
    assert_eq!(assigned_slice(&p), None, "stale condition");
    p.status.as_mut().unwrap().conditions = vec![cond("False", 3)];
    assert_eq!(assigned_slice(&p), None, "refused");
    p.status.as_mut().unwrap().conditions = vec![cond("True", 3)];
    assert_eq!(assigned_slice(&p), Some(net("10.113.0.0/16")));
    p.spec.cluster_cidrs = vec![NO_SLICE];
    assert_eq!(assigned_slice(&p), None, "placeholder");
}
