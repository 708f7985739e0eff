//! Issue test 5, on the bed: garbage at the hub's public WireGuard port (random bytes from a pod
//! in east, through east's NAT, as any host on the internet could send) while east's client
//! pings west's server: the pings keep being answered and the hub's gateway does not restart.

use nauti_testbed::cluster_bed::Cluster;

use crate::cluster::{Member, NAMESPACE};

/// The restart counts of the hub's gateway pods.
pub fn hub_restarts(hub: &Cluster) -> String {
    hub.kubectl(&[
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app=octopus-hub",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[*].restartCount}",
    ])
    .unwrap_or_default()
}

pub fn garbage_at_the_hubs_port_stops_nothing(hub: &Cluster, east: &Member<'_>, server_ip: &str) {
    let before = hub_restarts(hub);
    let target = format!("{} 51820", hub.plan.router_wan_ip());
    // 32 MiB of random datagrams, bounded by size and by time.
    let flood =
        format!("head -c 33554432 /dev/urandom | timeout 20 /usr/bin/nc.openbsd -u -w 1 {target}");
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| east.exec("client", &["sh", "-c", &flood]));
        let pings = east
            .exec(
                "client",
                &[
                    "busybox", "ping", "-c", "10", "-i", "0.5", "-W", "2", server_ip,
                ],
            )
            .unwrap_or_else(|e| e);
        let _ = sender.join();
        assert!(
            pings.contains(" 0% packet loss"),
            "pings across the clusters were lost under the garbage flood:\n{pings}\n{}",
            east.diagnostics()
        );
    });
    assert_eq!(
        hub_restarts(hub),
        before,
        "the hub's gateway restarted under the garbage flood"
    );
}
