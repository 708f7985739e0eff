//! Two member clusters behind NAT and a hub, each a real Kubernetes cluster (ClusterBed): the
//! members join with a token the hub issued, and a pod in one member reaches a pod in the
//! other by its `nauti.io/ip_address`, through both members' CNF pods and the hub's. Then
//! garbage reaches the hub's WireGuard port, Peers nobody may hold reach its API server, a
//! joined member asks for slices it may not have and never answers, the hub's API server goes
//! away under a running stream, the active CNF of a member dies once its tunnel has been
//! rekeyed, and a member leaves and joins again.
//!
//! In each member `nauti-ovnmaster` and `nauti-nri` (one per node) run as processes beside the
//! cluster, as their DaemonSet and Deployment would; octopus runs as pods (the hub's gateway and
//! each member's CNF), from this build's binary mounted into the bed's tools image. One bed,
//! phases in order: each leaves the clusters as the next expects them.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_peers;
mod bench;
mod cluster;
mod failover;
mod garbage;
mod leave;
mod outage;

use std::time::Duration;

use nauti_testbed::require_root;

use cluster::{Member, install, pod_address, start_bed, tunnel_bytes};

/// 64 MiB, the transfer.
const TRANSFER: u64 = 64 << 20;

#[test]
fn members_behind_nat_carry_pod_traffic_through_an_api_outage_a_cnf_failover_and_a_rejoin() {
    require_root!();
    let bed = start_bed("xc", 1);
    let hub = bed.cluster("hub").unwrap();
    let (east, west) = install(&bed);

    // A server in west that counts what it receives, a client in east.
    west.run_pod(
        "server",
        &[
            "sh",
            "-c",
            "/usr/bin/nc.openbsd -l 5001 | wc -c > /tmp/received; \
             /usr/bin/nc.openbsd -l 5002 > /tmp/stream; sleep 3600",
        ],
    );
    east.run_pod("client", &["sleep", "3600"]);
    let server_ip = pod_address(west.cluster(), "server");
    let client_ip = pod_address(east.cluster(), "client");
    assert!(
        server_ip.starts_with("10.114.") && client_ip.starts_with("10.113."),
        "addresses outside the slices: client {client_ip}, server {server_ip}"
    );

    through_both_gateways_and_the_hub(hub, &east, &west, &server_ip);
    // East's CNF in two replicas from here: its leader's tunnel ages through the next phases
    // until a rekey, then it is killed.
    failover::two_replicas_on_a_short_lease(&east);
    garbage::garbage_at_the_hubs_port_stops_nothing(hub, &east, &server_ip);
    bad_peers::peers_nobody_may_hold_stop_nothing(hub, &east, &server_ip);
    bad_peers::a_member_asking_wrongly_then_never_answering_stops_nothing(hub, &east, &server_ip);
    outage::a_stream_outlives_the_hubs_api_server(&bed, &east, &west, &server_ip);
    failover::the_standby_cnf_takes_over_after_a_rekey(hub, &east, &server_ip);
    leave::a_member_leaves_and_joins_again(hub, &east, &west, &server_ip);
    the_hub_reports_each_tunnel(hub);
}

/// Issue test 1: ping, then 64 MiB of TCP; the hub's tunnels carried it.
fn through_both_gateways_and_the_hub(
    hub: &nauti_testbed::cluster_bed::Cluster,
    east: &Member<'_>,
    west: &Member<'_>,
    server_ip: &str,
) {
    let before = (
        tunnel_bytes(hub, "east", "received"),
        tunnel_bytes(hub, "west", "sent"),
    );
    // The tunnels come up with the first packets (members dial out): a bounded wait.
    let mut pinged = String::new();
    for _ in 0..30 {
        match east.exec(
            "client",
            &["busybox", "ping", "-c", "3", "-W", "2", server_ip],
        ) {
            Ok(out) if out.contains(" 0% packet loss") => {
                pinged = out;
                break;
            }
            Ok(out) | Err(out) => pinged = out,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert!(
        pinged.contains(" 0% packet loss"),
        "east's client cannot ping west's server at {server_ip}:\n{pinged}\n{}",
        east.diagnostics()
    );

    east.exec(
        "client",
        &[
            "sh",
            "-c",
            &format!("head -c {TRANSFER} /dev/zero | /usr/bin/nc.openbsd -N {server_ip} 5001"),
        ],
    )
    .unwrap_or_else(|e| panic!("the transfer failed: {e}"));
    let mut received = String::new();
    for _ in 0..30 {
        received = west
            .exec("server", &["cat", "/tmp/received"])
            .unwrap_or_default();
        if !received.trim().is_empty() {
            break;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    assert_eq!(
        received.trim(),
        TRANSFER.to_string(),
        "west's server did not receive the whole stream"
    );

    // Through the hub: its tunnel from east and its tunnel to west both carried the stream
    // (the hub reads its device's counters on every pass: a bounded wait).
    let mut after = before;
    for _ in 0..60 {
        after = (
            tunnel_bytes(hub, "east", "received"),
            tunnel_bytes(hub, "west", "sent"),
        );
        if after.0.saturating_sub(before.0) >= TRANSFER
            && after.1.saturating_sub(before.1) >= TRANSFER
        {
            return;
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "the hub's tunnels did not carry the stream: from east {} -> {}, to west {} -> {}",
        before.0, after.0, before.1, after.1
    );
}

/// The hub writes each member's tunnel into its Peer: Ready, the byte counters and the round
/// trip of its probes through the tunnel to the member's gateway address (sent from the hub's
/// own tunnel address, which the member routes back).
fn the_hub_reports_each_tunnel(hub: &nauti_testbed::cluster_bed::Cluster) {
    for member in ["east", "west"] {
        let mut status = String::new();
        let mut reported = false;
        for _ in 0..90 {
            status = hub
                .kubectl(&[
                    "get",
                    "peers.nauti.io",
                    member,
                    "-n",
                    "nauti-system",
                    "-o",
                    "jsonpath={.status.conditions[?(@.type==\"Ready\")].status} {.status.rxBytes} {.status.latencyMs}",
                ])
                .unwrap_or_default();
            let fields: Vec<&str> = status.split_whitespace().collect();
            if let ["True", rx, latency] = fields.as_slice()
                && rx.parse::<u64>().is_ok_and(|rx| rx > 0)
                // Two WireGuard hops and a NAT on one machine: more than nothing, far below 1 s.
                && latency.parse::<u64>().is_ok_and(|ms| ms > 0 && ms < 1000)
            {
                reported = true;
                break;
            }
            std::thread::sleep(Duration::from_secs(1));
        }
        assert!(
            reported,
            "{member}'s Peer on the hub lacks Ready, rxBytes or a plausible latencyMs: {status:?}\n{}",
            failover::hub_diagnostics(hub)
        );
        eprintln!("{member}'s Peer on the hub: Ready rxBytes latencyMs = {status}");
    }
}
