//! Issue test 3: a member runs two CNF replicas; killing the active one hands the gateway to the
//! standby (the Lease, then the gateway router's route), and traffic flows again.

use std::time::{Duration, Instant};

use crate::cluster::{Member, NAMESPACE};

fn lease_holder(east: &Member<'_>) -> String {
    east.cluster()
        .kubectl(&[
            "get",
            "lease",
            "octopus-member",
            "-n",
            NAMESPACE,
            "-o",
            "jsonpath={.spec.holderIdentity}",
        ])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// The pod whose name the holder identity starts with (`<pod>_<suffix>`).
fn holder_pod(east: &Member<'_>) -> Option<String> {
    let holder = lease_holder(east);
    let (pod, _) = holder.rsplit_once('_')?;
    Some(pod.to_owned())
}

fn pings(east: &Member<'_>, server_ip: &str) -> bool {
    east.exec(
        "client",
        &["busybox", "ping", "-c", "1", "-W", "1", server_ip],
    )
    .is_ok_and(|out| out.contains(" 0% packet loss"))
}

pub fn the_standby_cnf_takes_over(east: &Member<'_>, server_ip: &str) {
    let cluster = east.cluster();
    cluster
        .kubectl(&[
            "set",
            "env",
            "-n",
            NAMESPACE,
            "deployment/octopus-member",
            "OCTOPUS_LEASE_DURATION=4s",
            "OCTOPUS_LEASE_RENEW_INTERVAL=1s",
        ])
        .unwrap();
    cluster
        .kubectl(&[
            "scale",
            "-n",
            NAMESPACE,
            "deployment/octopus-member",
            "--replicas=2",
        ])
        .unwrap();
    east.wait_gateway_ready(2);
    let mut leader = None;
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        leader = holder_pod(east).filter(|pod| {
            cluster
                .kubectl(&["get", "pod", "-n", NAMESPACE, pod])
                .is_ok()
        });
        if leader.is_some() && pings(east, server_ip) {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    let leader = leader.unwrap_or_else(|| panic!("no CNF leads\n{}", east.diagnostics()));
    let route_before = east.gateway_next_hop();

    // Killed, not stopped: the lease is not handed back, the standby waits for its expiry.
    cluster
        .kubectl(&[
            "delete",
            "pod",
            "-n",
            NAMESPACE,
            &leader,
            "--grace-period=0",
            "--force",
            "--wait=false",
        ])
        .unwrap();
    let killed = Instant::now();
    let mut gap = None;
    while killed.elapsed() < Duration::from_secs(60) {
        if pings(east, server_ip) && holder_pod(east).is_some_and(|p| p != leader) {
            gap = Some(killed.elapsed());
            break;
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    let gap = gap.unwrap_or_else(|| {
        panic!(
            "traffic did not come back after the active CNF {leader} was killed\n{}",
            east.diagnostics()
        )
    });
    let route_after = east.gateway_next_hop();
    assert_ne!(
        route_before, route_after,
        "the gateway router still sends to the dead CNF"
    );
    eprintln!("CNF failover: traffic flowed again {gap:?} after the kill");
}
