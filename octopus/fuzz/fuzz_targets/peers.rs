//! The Peers a hub lists, as members write them (each member's credential writes its own Peer,
//! so their content crosses a trust boundary): raw bytes parsed as a JSON list of Peers, then
//! what the hub and every gateway decide from them.
//!
//! Beyond "no panic":
//! - the hub's decisions give no two Peers overlapping slices, and every slice lies in the
//!   global CIDR, outside the clusterset range;
//! - once the hub's slices are written back, the review every gateway makes accepts no two
//!   Peers with overlapping CIDRs or the same key, and at most one hub;
//! - the WireGuard plan of each accepted cluster gives no two peers overlapping allowed IPs
//!   (cryptokey routing would move a range from one to the other) and routes only what some
//!   peer is allowed.

#![no_main]

use std::collections::{BTreeMap, BTreeSet};

use ipnet::IpNet;
use libfuzzer_sys::fuzz_target;
use nauti_api::Peer;
use nauti_octopus::core::{LocalRole, SlicePolicy, plan_topology, review_peers};
use nauti_octopus::hub::assign::decide_slices;

/// The cluster that never joined: its Peers take the refusal path.
const STRANGER: &str = "stranger";

fn overlap(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

fn assert_disjoint(what: &str, nets: &[(String, IpNet)]) {
    for (i, (owner_a, a)) in nets.iter().enumerate() {
        for (owner_b, b) in &nets[i + 1..] {
            assert!(
                !overlap(a, b),
                "{what}: {a} of {owner_a} overlaps {b} of {owner_b}"
            );
        }
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(mut peers) = serde_json::from_slice::<Vec<Peer>>(data) else {
        return;
    };
    // The hub lists one namespace, where names are unique: the first of each name stays.
    let mut names = BTreeSet::new();
    peers.retain(|p| names.insert(p.metadata.name.clone()));
    let policy = SlicePolicy::default();
    let joined: BTreeSet<String> = peers
        .iter()
        .map(|p| p.spec.cluster_id.clone())
        .filter(|id| id != STRANGER)
        .collect();

    let decisions = decide_slices(&peers, &policy, &joined);
    let slices: Vec<(String, IpNet)> = decisions
        .iter()
        .filter_map(|d| Some((d.name.clone(), *d.outcome.as_ref().ok()?)))
        .collect();
    for (name, slice) in &slices {
        assert!(
            policy.global().contains(slice),
            "{name} got {slice}, outside {}",
            policy.global()
        );
        assert!(
            !overlap(slice, &policy.clusterset()),
            "{name} got {slice}, in the clusterset range"
        );
    }
    assert_disjoint("slices the hub assigned", &slices);

    // The hub writes each decision into its Peer.
    let by_name: BTreeMap<&str, _> = decisions.iter().map(|d| (d.name.as_str(), d)).collect();
    for peer in &mut peers {
        if let Some(decision) = peer.metadata.name.as_deref().and_then(|n| by_name.get(n)) {
            peer.spec.cluster_cidrs = decision.wanted_cidrs();
        }
    }

    let valid: Vec<_> = review_peers(&peers, &policy, None)
        .into_iter()
        .filter_map(|v| v.result.ok())
        .collect();
    let cidrs: Vec<(String, IpNet)> = valid
        .iter()
        .flat_map(|p| p.slices.iter().map(|s| (p.cluster_id.clone(), *s)))
        .collect();
    assert_disjoint("CIDRs of accepted Peers", &cidrs);
    let keys: BTreeSet<_> = valid.iter().map(|p| p.public_key).collect();
    assert_eq!(keys.len(), valid.len(), "two accepted Peers share a key");
    assert!(valid.iter().filter(|p| p.is_hub).count() <= 1, "two hubs");

    for local in &valid {
        let role = LocalRole {
            cluster_id: local.cluster_id.clone(),
            is_hub: local.is_hub,
            is_public: local.is_public,
        };
        let plan = plan_topology(&role, &valid, |_| None);
        let allowed: Vec<(String, IpNet)> = plan
            .peers
            .iter()
            .flat_map(|p| {
                p.allowed_ips
                    .iter()
                    .map(|ip| (format!("{:?}", p.public_key), *ip))
            })
            .collect();
        assert_disjoint(&format!("allowed IPs on {}", local.cluster_id), &allowed);
        for route in &plan.routes {
            assert!(
                allowed.iter().any(|(_, ip)| ip.contains(route)),
                "{} routes {route} that no peer is allowed",
                local.cluster_id
            );
        }
    }
});
