//! Issue test 6: a member leaves (its CNF goes, then the uninstall hook's `octopus member
//! leave`): its Peer and credential are gone, the hub and the other member drop its routes; with
//! a new token it joins again and its pods reach the other member once more.

use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::Cluster;

use crate::cluster::{Member, NAMESPACE, issue_token};

fn routes_of(cluster: &Cluster, deployment: &str) -> String {
    cluster
        .kubectl(&[
            "exec",
            "-n",
            NAMESPACE,
            &format!("deployment/{deployment}"),
            "--",
            "ip",
            "route",
        ])
        .unwrap_or_default()
}

fn within(what: &str, timeout: Duration, mut done: impl FnMut() -> bool) {
    let start = Instant::now();
    while !done() {
        assert!(start.elapsed() < timeout, "after {timeout:?}: {what}");
        std::thread::sleep(Duration::from_millis(500));
    }
}

pub fn a_member_leaves_and_joins_again(
    hub: &Cluster,
    east: &Member<'_>,
    west: &Member<'_>,
    server_ip: &str,
) {
    let slice = "10.113.0.0/16";
    assert!(routes_of(west.cluster(), "octopus-member").contains(slice));
    east.scale_gateway(0);
    within("east's CNF pods are gone", Duration::from_secs(60), || {
        east.cluster()
            .pod_names(NAMESPACE, "app=octopus-member")
            .is_ok_and(|pods| pods.is_empty())
    });
    east.leave();

    let peer_gone = || {
        hub.kubectl(&["get", "peers.nauti.io", "-A", "-o", "name"])
            .is_ok_and(|out| !out.contains("/east"))
    };
    within(
        "east's Peer is deleted on the hub",
        Duration::from_secs(30),
        peer_gone,
    );
    assert!(
        east.cluster()
            .kubectl(&["get", "secret", "-n", NAMESPACE, "-o", "name"])
            .is_ok_and(|out| !out.contains("credential")),
        "east's credential Secret outlived the leave"
    );
    within(
        "the hub and west drop their routes to east's slice",
        Duration::from_secs(60),
        || {
            !routes_of(hub, "octopus-hub").contains(slice)
                && !routes_of(west.cluster(), "octopus-member").contains(slice)
        },
    );

    // Joining again takes a fresh token: the first was spent.
    east.set_token(&issue_token(hub));
    east.scale_gateway(1);
    east.wait_gateway_ready(1);
    within(
        "east's client reaches west's server again after joining anew",
        Duration::from_secs(90),
        || {
            east.exec(
                "client",
                &["busybox", "ping", "-c", "1", "-W", "1", server_ip],
            )
            .is_ok_and(|out| out.contains(" 0% packet loss"))
        },
    );
}
