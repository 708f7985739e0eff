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

/// Waits (at most 60 s) until five pings 0.2 s apart are all answered: east's CNF was just
/// rolled to two replicas, and the flood must meet a path that carries traffic steadily.
fn steady(east: &Member<'_>, server_ip: &str) {
    let start = std::time::Instant::now();
    let mut last = String::new();
    while start.elapsed() < std::time::Duration::from_secs(60) {
        let round = [
            "busybox", "ping", "-c", "5", "-i", "0.2", "-W", "1", server_ip,
        ];
        last = east.exec("client", &round).unwrap_or_else(|e| e);
        if last.contains(" 0% packet loss") {
            return;
        }
    }
    panic!(
        "the path from east is not steady after 60 s:\n{last}\n{}",
        east.diagnostics()
    );
}

pub fn garbage_at_the_hubs_port_stops_nothing(hub: &Cluster, east: &Member<'_>, server_ip: &str) {
    steady(east, server_ip);
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
