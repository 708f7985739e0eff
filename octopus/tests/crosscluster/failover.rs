//! Issue test 3: a member runs two CNF replicas; killing the active one hands the gateway to the
//! standby (the Lease, then the gateway router's route), and traffic flows again. The kill comes
//! after the active one's tunnel has been renewed (a WireGuard rekey), as in a long-lived gateway.

use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::Cluster;

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

/// The PID of the octopus process of gateway pod `pod`, found by its `POD_NAME` in the machine's
/// process table (the bed's pods share it).
pub fn octopus_pid(pod: &str) -> u32 {
    let wanted = format!("POD_NAME={pod}");
    let mut found = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<u32>() else {
            continue;
        };
        let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
        if !cmdline.starts_with(b"/nauti/octopus\0") {
            continue;
        }
        let environ = std::fs::read(format!("/proc/{pid}/environ")).unwrap_or_default();
        if environ
            .split(|b| *b == 0)
            .any(|var| var == wanted.as_bytes())
        {
            found.push(pid);
        }
    }
    assert_eq!(found.len(), 1, "octopus of {pod}: processes {found:?}");
    found[0]
}

/// SIGKILLs the octopus process of pod `pod`; returns when.
pub fn kill_octopus_of(pod: &str) -> Instant {
    let status = std::process::Command::new("kill")
        .args(["-KILL", &octopus_pid(pod).to_string()])
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

/// The hub gateway's last handshake with `member` (seconds since the epoch), from the tunnel
/// metrics its pod exports (refreshed every 10 s); with the metrics text for a failure report.
fn hub_handshake_with(hub: &Cluster, member: &str) -> (Option<u64>, String) {
    let ip = hub
        .kubectl(&[
            "get",
            "pods",
            "-n",
            NAMESPACE,
            "-l",
            "app=octopus-hub",
            "-o",
            "jsonpath={.items[0].status.podIP}",
        ])
        .unwrap_or_default();
    let Ok(out) = hub.nodes[0]
        .netns
        .command("curl")
        .args([
            "-sf",
            "-m",
            "3",
            &format!("http://{}:9466/metrics", ip.trim()),
        ])
        .output()
    else {
        return (None, String::new());
    };
    let text = String::from_utf8_lossy(&out.stdout).into_owned();
    let prefix = format!("tunnel_last_handshake_timestamp_seconds{{peer=\"{member}\"}} ");
    let at = text.lines().find_map(|l| {
        l.split_once(&prefix)
            .and_then(|(_, v)| v.trim().parse::<f64>().ok())
            .map(|v| v as u64)
    });
    let handshakes = text
        .lines()
        .filter(|l| l.contains("last_handshake"))
        .collect::<Vec<_>>()
        .join("\n");
    (at, handshakes)
}

/// Waits (bounded) for a CNF that leads and carries pings; its pod and when it was first seen.
fn a_leader_carrying_pings(hub: &Cluster, east: &Member<'_>, server_ip: &str) -> (String, Instant) {
    let cluster = east.cluster();
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(90) {
        let leader = holder_pod(east).filter(|pod| {
            cluster
                .kubectl(&["get", "pod", "-n", NAMESPACE, pod])
                .is_ok()
        });
        if let Some(leader) = leader
            && pings(east, server_ip)
        {
            return (leader, Instant::now());
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "no CNF leads and carries pings\n{}\n--- hub\n{}",
        east.diagnostics(),
        hub_diagnostics(hub)
    );
}

/// A Service like the charts' gateway Service: the CNF pods labelled active.
fn apply_gateway_service(east: &Member<'_>) {
    east.cluster()
        .apply(&serde_json::json!({
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": "octopus-gateway", "namespace": NAMESPACE},
            "spec": {
                "selector": {"app": "octopus-member", "nauti.io/gateway-active": "true"},
                "ports": [{"name": "wireguard", "protocol": "UDP", "port": 51820, "targetPort": 51820}],
            },
        }))
        .unwrap();
}

/// The ready addresses behind the gateway Service.
fn gateway_service_addresses(east: &Member<'_>) -> String {
    east.cluster()
        .kubectl(&[
            "get",
            "endpointslices",
            "-n",
            NAMESPACE,
            "-l",
            "kubernetes.io/service-name=octopus-gateway",
            "-o",
            "jsonpath={.items[*].endpoints[?(@.conditions.ready==true)].addresses[*]}",
        ])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

fn pod_ip(east: &Member<'_>, pod: &str) -> String {
    east.cluster()
        .kubectl(&[
            "get",
            "pod",
            "-n",
            NAMESPACE,
            pod,
            "-o",
            "jsonpath={.status.podIP}",
        ])
        .unwrap_or_default()
        .trim()
        .to_owned()
}

/// Waits (bounded) until the gateway Service reaches `pod` alone.
fn the_service_reaches_only(east: &Member<'_>, pod: &str) {
    let want = pod_ip(east, pod);
    let start = Instant::now();
    let mut got = String::new();
    while start.elapsed() < Duration::from_secs(60) {
        got = gateway_service_addresses(east);
        if !want.is_empty() && got == want {
            return;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    panic!(
        "the gateway Service reaches {got:?}, not the leader {pod} ({want}) alone; labelled: {:?}\n{}",
        crate::cluster::active_pods(east.cluster(), "octopus-member"),
        east.diagnostics()
    );
}

/// Issue test 3, once the active CNF's tunnel has lived past a rekey: WireGuard renews a
/// session after 120 s (REKEY_AFTER_TIME) and drops it after 180 s, so the hub holds the
/// leader's renewed session and the standby's handshake for the same key replaces that one.
/// Pings keep going through the rekey; then the leader is killed and traffic must come back.
pub fn the_standby_cnf_takes_over_after_a_rekey(hub: &Cluster, east: &Member<'_>, server_ip: &str) {
    let (leader, since) = a_leader_carrying_pings(hub, east, server_ip);
    apply_gateway_service(east);
    the_service_reaches_only(east, &leader);
    // The leader's handshake as the hub records it, then a newer one: the renewal (WireGuard's
    // initiator renews 120 s after a handshake; the hub's metrics follow within 10 s).
    let mut first = None;
    let mut seen = String::new();
    while first.is_none() && since.elapsed() < Duration::from_secs(30) {
        (first, seen) = hub_handshake_with(hub, "east");
        std::thread::sleep(Duration::from_secs(1));
    }
    let first =
        first.unwrap_or_else(|| panic!("the hub's metrics name no handshake with east: {seen}"));
    let watching = Instant::now();
    let (mut lost, mut sent) = (0u32, 0u32);
    let mut renewed = None;
    while watching.elapsed() < Duration::from_secs(200) {
        sent += 1;
        if !pings(east, server_ip) {
            lost += 1;
        }
        let (at, text) = hub_handshake_with(hub, "east");
        seen = text;
        if let Some(at) = at.filter(|at| *at > first) {
            renewed = Some(at - first);
            break;
        }
        std::thread::sleep(Duration::from_secs(2));
    }
    let renewed = renewed.unwrap_or_else(|| {
        panic!(
            "{leader} made no handshake with the hub after the one at {first} within {:?} (the \
             hub's metrics: {seen})\n{}\n--- hub\n{}",
            watching.elapsed(),
            east.diagnostics(),
            hub_diagnostics(hub)
        )
    });
    assert!(
        lost <= 2,
        "{lost} of {sent} pings lost while {leader}'s session was renewed\n{}",
        hub_diagnostics(hub)
    );
    eprintln!(
        "{leader}'s session renewed {renewed} s after its previous handshake, {:?} after it was \
         seen leading ({lost}/{sent} pings lost)",
        since.elapsed()
    );
    let successor = kill_and_recover(hub, east, server_ip, &leader);
    // The killed leader's pod comes back as a ready standby without the label: the Service
    // follows the Lease.
    the_service_reaches_only(east, &successor);
    let start = Instant::now();
    while start.elapsed() < Duration::from_secs(60) {
        let ready = east
            .cluster()
            .kubectl(&[
                "get",
                "pod",
                "-n",
                NAMESPACE,
                &leader,
                "-o",
                "jsonpath={.status.conditions[?(@.type==\"Ready\")].status}",
            ])
            .unwrap_or_default();
        if ready.trim() == "True" {
            break;
        }
        std::thread::sleep(Duration::from_millis(500));
    }
    the_service_reaches_only(east, &successor);
    eprintln!("the gateway Service followed the Lease from {leader} to {successor}");
    the_cnf_account_changes_only_the_label(east, &leader);
}

/// The CNF's account may patch any pod of its namespace (RBAC cannot name generated pods):
/// the admission policy lets it set and remove the active label, and nothing else.
fn the_cnf_account_changes_only_the_label(east: &Member<'_>, pod: &str) {
    let as_cnf = "--as=system:serviceaccount:nauti-system:octopus-member";
    let label = |change: &str| {
        east.cluster().kubectl(&[
            as_cnf,
            "label",
            "--overwrite",
            "pod",
            "-n",
            NAMESPACE,
            pod,
            change,
        ])
    };
    for forbidden in ["app=elsewhere", "nauti.io/gateway-active=false", "extra=1"] {
        match label(forbidden) {
            Err(e)
                if e.to_string()
                    .contains("may change a pod only by its nauti.io/gateway-active label") => {}
            other => panic!("the CNF's account set {forbidden} on {pod}: {other:?}"),
        }
    }
    for allowed in ["nauti.io/gateway-active=true", "nauti.io/gateway-active-"] {
        if let Err(e) = label(allowed) {
            panic!("the CNF's account cannot apply {allowed} to {pod}: {e}");
        }
    }
}

/// Kills `leader`'s octopus (not stopped: the lease is not handed back, the standby waits for
/// its expiry) and waits for pings through the standby and the gateway router's route to it.
/// The new leader's pod.
fn kill_and_recover(hub: &Cluster, east: &Member<'_>, server_ip: &str, leader: &str) -> String {
    let route_before = east.gateway_next_hop();
    let killed = kill_octopus_of(leader);
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
            "traffic did not come back after the active CNF {leader} was killed\n{}\n--- hub\n{}",
            east.diagnostics(),
            hub_diagnostics(hub)
        )
    });
    let route_after = east.gateway_next_hop();
    assert_ne!(
        route_before, route_after,
        "the gateway router still sends to the dead CNF"
    );
    eprintln!("CNF failover: traffic flowed again {gap:?} after the kill");
    holder_pod(east).expect("a new leader holds the lease")
}

/// The hub gateway's recent log and its Peers' status, for a failure message.
pub fn hub_diagnostics(hub: &Cluster) -> String {
    let logs = hub
        .kubectl(&[
            "logs",
            "-n",
            NAMESPACE,
            "deployment/octopus-hub",
            "--tail=80",
        ])
        .unwrap_or_else(|e| e.to_string());
    let peers = hub
        .kubectl(&["get", "peers.nauti.io", "-n", NAMESPACE, "-o", "yaml"])
        .unwrap_or_else(|e| e.to_string());
    format!("{logs}\n--- Peers on the hub\n{peers}")
}
