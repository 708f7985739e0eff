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
pub fn holder_pod(east: &Member<'_>) -> Option<String> {
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

/// SIGKILLs the octopus process of pod `pod` (found by its `POD_NAME` in the machine's process
/// table: the bed's pods share it); returns when.
pub fn kill_octopus_of(pod: &str) -> Instant {
    let wanted = format!("POD_NAME={pod}");
    let mut killed = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/nauti/octopus\0member") {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes())
        {
            killed.push(pid);
        }
    }
    assert_eq!(killed.len(), 1, "octopus of {pod}: processes {killed:?}");
    let status = std::process::Command::new("kill")
        .args(["-KILL", &killed[0].to_string()])
        .status()
        .unwrap();
    assert!(status.success());
    Instant::now()
}

/// Runs the member's CNF in two replicas on a 3 s lease and waits for a leader.
pub fn two_replicas_on_a_short_lease(east: &Member<'_>) {
    let cluster = east.cluster();
    cluster
        .kubectl(&[
            "set",
            "env",
            "-n",
            NAMESPACE,
            "deployment/octopus-member",
            "OCTOPUS_LEASE_DURATION=3s",
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
}

pub fn the_standby_cnf_takes_over(east: &Member<'_>, server_ip: &str) {
    let cluster = east.cluster();
    two_replicas_on_a_short_lease(east);
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
    let killed = kill_octopus_of(&leader);
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
