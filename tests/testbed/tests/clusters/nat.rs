//! The underlay between clusters: the hub is public, members are behind NAT.

use std::net::{SocketAddr, TcpStream};
use std::process::Command;
use std::time::Duration;

use nauti_testbed::cluster_bed::ClusterBed;
use nauti_testbed::cluster_bed::plan::APISERVER_PORT;
use nauti_testbed::netns::Netns;

/// kubelet's port: every node listens there, so a TCP connect tells whether the node is reachable.
const KUBELET_PORT: u16 = 10250;

fn connects(from: &Netns, to: &str, port: u16) -> bool {
    let addr: SocketAddr = format!("{to}:{port}").parse().unwrap();
    from.run_in(move || TcpStream::connect_timeout(&addr, Duration::from_secs(2)).is_ok())
        .unwrap()
}

/// A member node and a member's pod reach the hub's public address (the API answers through the
/// hub's router), the node reaches the hub's nodes; from the hub, neither a member's node nor its router's address takes a
/// connection.
pub fn member_reaches_the_hub_and_the_hub_reaches_no_member(bed: &ClusterBed) {
    let hub = bed.cluster("hub").unwrap();
    let east = bed.cluster("east").unwrap();
    let east_node = &east.nodes[0];
    let public = hub.plan.router_wan_ip();
    let livez = format!("https://{public}:{APISERVER_PORT}/livez");
    let answer = Command::new("nsenter")
        .arg(format!("--net={}", east_node.netns.path().display()))
        .args(["curl", "-s", "-m", "5", "--cacert"])
        .arg(hub.control_plane.creds.path("ca.crt"))
        .arg(&livez)
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&answer.stdout).trim(),
        "ok",
        "{livez} from {}: {}",
        east_node.name,
        String::from_utf8_lossy(&answer.stderr)
    );
    // A pod behind the member's NAT too (what a member's agent does): the `client` pod of the
    // workload checks.
    let from_pod = east
        .kubectl(&["exec", "client", "--", "curl", "-sk", "-m", "5", &livez])
        .unwrap_or_else(|e| panic!("{livez} from east's client pod: {e}"));
    assert_eq!(from_pod.trim(), "ok", "{livez} from east's client pod");
    assert!(
        connects(&east_node.netns, &hub.nodes[0].ip, KUBELET_PORT),
        "{} does not reach the hub's node {}",
        east_node.name,
        hub.nodes[0].ip
    );

    let hub_node = &hub.nodes[0];
    for (target, port) in [
        (east_node.ip.clone(), KUBELET_PORT),
        (east.plan.control_plane_ip(), APISERVER_PORT),
        (east.plan.router_wan_ip(), APISERVER_PORT),
        (east.plan.router_wan_ip(), KUBELET_PORT),
    ] {
        assert!(
            !connects(&hub_node.netns, &target, port),
            "the hub's {} opened a connection to {target}:{port} behind east's NAT",
            hub_node.name
        );
    }
    assert!(
        !hub_node.netns.ping(&east_node.ip, 1),
        "the hub pings east's node {}",
        east_node.ip
    );
}

/// east cannot reach west's node until west is marked public; then it can, and its API answers on
/// west's public address.
pub fn members_meet_only_once_one_is_public(bed: &mut ClusterBed) {
    let (east_ns, west_ip) = {
        let east = bed.cluster("east").unwrap();
        let west = bed.cluster("west").unwrap();
        (east.nodes[0].netns.path(), west.nodes[0].ip.clone())
    };
    let from_east = |bed: &ClusterBed| {
        let east = bed.cluster("east").unwrap();
        connects(&east.nodes[0].netns, &west_ip, KUBELET_PORT)
    };
    assert!(
        !from_east(bed),
        "east reached west's node {west_ip} behind NAT"
    );
    bed.mark_public("west").unwrap();
    assert!(
        from_east(bed),
        "east does not reach west's node {west_ip} once west is public ({})",
        east_ns.display()
    );
    let west = bed.cluster("west").unwrap();
    let east = bed.cluster("east").unwrap();
    assert!(
        connects(
            &east.nodes[0].netns,
            &west.plan.router_wan_ip(),
            APISERVER_PORT
        ),
        "west's API does not answer on its public address"
    );
}
