//! Issue test 5, the Peers' part, on the bed. While east's client pings west's server:
//! - the hub is given a Peer with a malformed public key (the API server refuses it, naming the
//!   field) and a Peer for a cluster that never joined, asking for east's slice as a second hub
//!   (the hub's octopus marks it `Valid=False/UnknownCluster`);
//! - a member that joined (its namespace on the hub, as the join leaves it) but whose gateway
//!   never comes up asks for east's slice (`CIDRConflict`, naming east), then for a slice outside
//!   the global CIDR (`InvalidSpec`), then for a free one: it gets it, and its public endpoint,
//!   an address of the bed's WAN nobody holds, never answers the hub (`Ready=False/NeverConnected`).
//!
//! Every ping is answered, east keeps its slice, and the hub's gateway does not restart.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant};

use nauti_octopus::hub::assign::REQUESTED_SLICE_ANNOTATION as REQUESTED_CIDR;
use nauti_octopus::hub::grants;
use nauti_octopus::join::identity::member_namespace;
use nauti_testbed::cluster_bed::Cluster;
use serde_json::json;

use crate::cluster::{Member, NAMESPACE};
use crate::garbage::hub_restarts;

/// A well-formed key nobody holds (32 bytes of 0x42, base64).
const STRANGER_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

/// An address of the bed's WAN (198.18.0.0/24) that no router holds: what is sent there stays
/// unanswered inside the bed.
const SILENT_ENDPOINT: &str = "198.18.0.99";

/// East's slice, as `install` asks for it.
const EAST_SLICE: &str = "10.113.0.0/16";

fn peer(name: &str, public_key: &str, requested: &str, is_hub: bool) -> serde_json::Value {
    json!({
        "apiVersion": "nauti.io/v1alpha1",
        "kind": "Peer",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "annotations": {REQUESTED_CIDR: requested},
        },
        "spec": {
            "clusterID": name,
            "clusterCIDRs": ["0.0.0.0/32"],
            "publicKey": public_key,
            "endpoint": SILENT_ENDPOINT,
            "isHub": is_hub,
            "isPublic": true,
        },
    })
}

/// A JSONPath `path` of the Peer `name` on the hub (empty if it cannot be read).
fn peer_field(hub: &Cluster, name: &str, path: &str) -> String {
    hub.kubectl(&[
        "get",
        "peer",
        name,
        "-n",
        NAMESPACE,
        "-o",
        &format!("jsonpath={{{path}}}"),
    ])
    .unwrap_or_default()
    .trim()
    .to_owned()
}

/// `field` of the Peer's condition of type `kind`.
fn condition(hub: &Cluster, name: &str, kind: &str, field: &str) -> String {
    peer_field(
        hub,
        name,
        &format!(".status.conditions[?(@.type==\"{kind}\")].{field}"),
    )
}

/// Waits (at most 30 s) until the Peer's `kind` condition has `reason`; returns its message.
fn wait_reason(hub: &Cluster, name: &str, kind: &str, reason: &str) -> String {
    let start = Instant::now();
    loop {
        let seen = condition(hub, name, kind, "reason");
        if seen == reason {
            return condition(hub, name, kind, "message");
        }
        assert!(
            start.elapsed() < Duration::from_secs(30),
            "{name}'s {kind} condition has reason {seen:?}, not {reason:?}: {}",
            condition(hub, name, kind, "message")
        );
        std::thread::sleep(Duration::from_millis(250));
    }
}

fn first_slice(hub: &Cluster, name: &str) -> String {
    peer_field(hub, name, ".spec.clusterCIDRs[0]")
}

/// Runs `phase` while east's client pings west's server in rounds of 8 (every 0.5 s); each
/// round must have every ping answered. The hub's gateway must not restart and east must keep
/// its slice.
fn under_pings(hub: &Cluster, east: &Member<'_>, server_ip: &str, phase: impl FnOnce()) {
    let restarts = hub_restarts(hub);
    assert_eq!(first_slice(hub, "east"), EAST_SLICE);
    let done = AtomicBool::new(false);
    std::thread::scope(|scope| {
        let pings = scope.spawn(|| {
            let mut rounds = Vec::new();
            while rounds.is_empty() || !done.load(Ordering::Relaxed) {
                let round = [
                    "busybox", "ping", "-c", "8", "-i", "0.5", "-W", "2", server_ip,
                ];
                rounds.push(east.exec("client", &round).unwrap_or_else(|e| e));
            }
            rounds
        });
        phase();
        done.store(true, Ordering::Relaxed);
        for round in pings.join().unwrap() {
            assert!(
                round.contains(" 0% packet loss"),
                "pings across the clusters were lost while the bad Peers came:\n{round}\n{}",
                east.diagnostics()
            );
        }
    });
    assert_eq!(first_slice(hub, "east"), EAST_SLICE, "east lost its slice");
    assert_eq!(
        hub_restarts(hub),
        restarts,
        "the hub's gateway restarted over the bad Peers"
    );
}

pub fn peers_nobody_may_hold_stop_nothing(hub: &Cluster, east: &Member<'_>, server_ip: &str) {
    under_pings(hub, east, server_ip, || {
        let refused = hub
            .apply(&peer("malformed", "not-a-wireguard-key", EAST_SLICE, true))
            .expect_err("the API server took a malformed public key");
        assert!(
            refused.to_string().contains("publicKey"),
            "the refusal does not name the field: {refused}"
        );
        hub.apply(&peer("intruder", STRANGER_KEY, EAST_SLICE, true))
            .unwrap_or_else(|e| panic!("the hub's API server refused the Peer: {e}"));
        wait_reason(hub, "intruder", "Valid", "UnknownCluster");
    });
    hub.kubectl(&["delete", "peer", "intruder", "-n", NAMESPACE, "--wait=true"])
        .unwrap_or_else(|e| panic!("delete the intruder's Peer: {e}"));
}

pub fn a_member_asking_wrongly_then_never_answering_stops_nothing(
    hub: &Cluster,
    east: &Member<'_>,
    server_ip: &str,
) {
    const NORTH: &str = "north";
    // What the hub records of a join: the member's namespace, labelled with its cluster ID.
    let joined = serde_json::to_value(grants::namespace(NORTH, None)).unwrap();
    hub.apply(&joined)
        .unwrap_or_else(|e| panic!("record north's join: {e}"));
    under_pings(hub, east, server_ip, || {
        hub.apply(&peer(NORTH, STRANGER_KEY, EAST_SLICE, false))
            .unwrap_or_else(|e| panic!("the hub's API server refused north's Peer: {e}"));
        let overlap = wait_reason(hub, NORTH, "Valid", "CIDRConflict");
        assert!(overlap.contains("\"east\""), "{overlap}");
        assert_eq!(
            first_slice(hub, NORTH),
            "0.0.0.0/32",
            "a refused request got a slice"
        );

        let ask = |cidr: &str| {
            hub.kubectl(&[
                "annotate",
                "--overwrite",
                "peer",
                NORTH,
                "-n",
                NAMESPACE,
                &format!("{REQUESTED_CIDR}={cidr}"),
            ])
            .unwrap_or_else(|e| panic!("north asks for {cidr}: {e}"));
        };
        ask("10.200.0.0/16");
        let outside = wait_reason(hub, NORTH, "Valid", "InvalidSpec");
        assert!(outside.contains("outside the global CIDR"), "{outside}");
        assert_eq!(first_slice(hub, NORTH), "0.0.0.0/32");

        ask("10.115.0.0/16");
        wait_reason(hub, NORTH, "Valid", "Valid");
        assert_eq!(first_slice(hub, NORTH), "10.115.0.0/16");
        // North is a valid peer of the hub's device now, at an endpoint where nobody answers.
        let silent = wait_reason(hub, NORTH, "Ready", "NeverConnected");
        assert_eq!(
            condition(hub, NORTH, "Ready", "status"),
            "False",
            "{silent}"
        );
        // The message says whom the hub waits for.
        assert!(
            silent.contains(&format!("{SILENT_ENDPOINT}:51820 has not answered")),
            "{silent}"
        );
        eprintln!("north: {overlap}; {outside}; then its slice, and Ready=False: {silent}");
    });
    hub.kubectl(&["delete", "peer", NORTH, "-n", NAMESPACE, "--wait=true"])
        .unwrap_or_else(|e| panic!("delete north's Peer: {e}"));
    let namespace = member_namespace(NORTH);
    hub.kubectl(&["delete", "namespace", &namespace, "--wait=false"])
        .unwrap_or_else(|e| panic!("delete north's namespace: {e}"));
}
