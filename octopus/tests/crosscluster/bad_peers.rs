//! Issue test 5, the Peers' part, on the bed: while east's client pings west's server, the hub
//! is given a Peer with a malformed public key (the API server refuses it, naming the field)
//! and a Peer for a cluster that never joined, asking for east's slice as a second hub (the
//! hub's octopus marks it `Valid=False/UnknownCluster`). The pings keep being answered, east
//! keeps its slice, and the hub's gateway does not restart.

use std::time::Duration;

use nauti_testbed::cluster_bed::Cluster;
use serde_json::json;

use crate::cluster::{Member, NAMESPACE};
use crate::garbage::hub_restarts;

/// A well-formed key nobody holds (32 bytes of 0x42, base64).
const STRANGER_KEY: &str = "QkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkJCQkI=";

fn peer(name: &str, public_key: &str) -> serde_json::Value {
    json!({
        "apiVersion": "nauti.io/v1alpha1",
        "kind": "Peer",
        "metadata": {
            "name": name,
            "namespace": NAMESPACE,
            "annotations": {"nauti.io/requested-cidr": "10.113.0.0/16"},
        },
        "spec": {
            "clusterID": name,
            "clusterCIDRs": ["0.0.0.0/32"],
            "publicKey": public_key,
            "endpoint": "198.18.0.99",
            "isHub": true,
            "isPublic": true,
        },
    })
}

fn valid_reason(hub: &Cluster, name: &str) -> String {
    hub.kubectl(&[
        "get",
        "peer",
        name,
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.status.conditions[?(@.type==\"Valid\")].reason}",
    ])
    .unwrap_or_default()
    .trim()
    .to_owned()
}

pub fn peers_nobody_may_hold_stop_nothing(hub: &Cluster, east: &Member<'_>, server_ip: &str) {
    let before = hub_restarts(hub);
    let east_slice = |hub: &Cluster| {
        hub.kubectl(&[
            "get",
            "peer",
            "east",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.clusterCIDRs[0]}",
        ])
        .unwrap_or_default()
    };
    assert_eq!(east_slice(hub).trim(), "10.113.0.0/16");
    std::thread::scope(|scope| {
        let pings = scope.spawn(|| {
            east.exec(
                "client",
                &[
                    "busybox", "ping", "-c", "16", "-i", "0.5", "-W", "2", server_ip,
                ],
            )
            .unwrap_or_else(|e| e)
        });
        let refused = hub
            .apply(&peer("malformed", "not-a-wireguard-key"))
            .expect_err("the API server took a malformed public key");
        assert!(
            refused.to_string().contains("publicKey"),
            "the refusal does not name the field: {refused}"
        );
        hub.apply(&peer("intruder", STRANGER_KEY))
            .unwrap_or_else(|e| panic!("the hub's API server refused the Peer: {e}"));
        let mut reason = String::new();
        for _ in 0..40 {
            reason = valid_reason(hub, "intruder");
            if !reason.is_empty() {
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(
            reason, "UnknownCluster",
            "the Peer of a cluster that never joined"
        );
        let pings = pings.join().unwrap();
        assert!(
            pings.contains(" 0% packet loss"),
            "pings across the clusters were lost while the bad Peers came:\n{pings}\n{}",
            east.diagnostics()
        );
    });
    assert_eq!(
        east_slice(hub).trim(),
        "10.113.0.0/16",
        "east lost its slice"
    );
    assert_eq!(
        hub_restarts(hub),
        before,
        "the hub's gateway restarted over the bad Peers"
    );
    hub.kubectl(&["delete", "peer", "intruder", "-n", NAMESPACE, "--wait=true"])
        .unwrap_or_else(|e| panic!("delete the intruder's Peer: {e}"));
}
