use nauti_testbed::traffic::tcp_transfer_between;
use nauti_testbed::{PodSpec, require_root};

use crate::support::{NODE_BLOCK, nic_in, settle};

const SLEEP: &[&str] = &["/bin/sh", "-c", "sleep 3600"];

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pods_get_their_nic_reach_each_other_over_ovn_and_are_annotated_truthfully() {
    require_root!();
    let bed = crate::support::start("nri-two-pods", &[]).await;
    let a = bed.run_pod("alpha", &[]).await.unwrap();
    let b = bed.run_pod("beta", &[]).await.unwrap();
    let ca = bed.ctrd.run_container(&a, "sh", SLEEP).unwrap();
    let cb = bed.ctrd.run_container(&b, "sh", SLEEP).unwrap();

    let block: ipnet::IpNet = NODE_BLOCK.parse().unwrap();
    let mut addresses = Vec::new();
    for (name, container) in [("alpha", &ca), ("beta", &cb)] {
        let net = crate::support::annotated(&bed, name).await;
        assert!(
            block.contains(&net.ip_address),
            "{} outside {block}",
            net.ip_address
        );
        let (addr, mac) = nic_in(&bed, container);
        assert!(
            addr.contains(&format!("inet {}/16", net.ip_address)),
            "{name}: eth-nauti has `{addr}`, annotation says {}",
            net.ip_address
        );
        assert_eq!(mac, net.mac_address.to_string(), "{name}");
        assert_eq!(net.gateway.to_string(), "10.112.0.1");
        assert_eq!(net.logical_switch, "nauti-east");
        addresses.push(net.ip_address);
    }
    assert_ne!(addresses[0], addresses[1]);
    bed.central
        .wait_port_up("default_alpha", crate::support::WAIT)
        .unwrap();
    bed.central
        .wait_port_up("default_beta", crate::support::WAIT)
        .unwrap();

    let target = addresses[1].to_string();
    let pinged = settle(|| {
        bed.ctrd
            .exec(&ca, &["ping", "-c", "1", "-W", "1", &target])
            .is_ok()
    });
    assert!(pinged, "alpha cannot ping beta at {target}");

    // 8 MiB over TCP through the logical switch: checksums and MTU are right, not just ICMP.
    let ns_a = bed.ctrd.pod_netns(&a).unwrap().unwrap();
    let ns_b = bed.ctrd.pod_netns(&b).unwrap().unwrap();
    let bytes = 8 * 1024 * 1024;
    let received = tcp_transfer_between(
        &ns_b,
        &ns_a,
        addresses[1],
        5001,
        bytes,
        std::time::Duration::from_secs(30),
    )
    .unwrap();
    assert_eq!(received, bytes);

    // Each pod event has its span, and the plumbing task spawned for it logs inside it.
    let log = std::fs::read_to_string(bed.plugin_log()).unwrap();
    let in_span = |pod: &str, sandbox: &str| {
        log.lines().any(|l| {
            l.contains("pod_event{")
                && l.contains(&format!("pod.name={pod}"))
                && l.contains(&format!("sandbox={sandbox}"))
                && l.contains("plumbing step")
        })
    };
    assert!(
        in_span("alpha", &a.id),
        "no plumbing step of alpha in its span"
    );
    assert!(
        in_span("beta", &b.id),
        "no plumbing step of beta in its span"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deleting_a_pod_frees_its_address_port_ovs_port_and_veth() {
    require_root!();
    let bed = crate::support::start("nri-delete", &[]).await;
    let before = (
        bed.lsps().unwrap().len(),
        bed.ovs_ports().unwrap().len(),
        bed.host_veths().unwrap().len(),
    );
    let pod = bed.run_pod("gamma", &[]).await.unwrap();
    let ip = crate::support::annotated(&bed, "gamma").await.ip_address;
    assert_eq!(bed.lsps().unwrap().len(), before.0 + 1);
    assert_eq!(bed.ovs_ports().unwrap().len(), before.1 + 1);
    assert_eq!(bed.host_veths().unwrap().len(), before.2 + 1);
    assert_eq!(bed.plugin_endpoint("/readyz").unwrap().0, 200);
    let (status, metrics) = bed.plugin_endpoint("/metrics").unwrap();
    assert_eq!(status, 200);
    for line in [
        "nauti_nri_sandbox_events_total{event=\"run_pod_sandbox\",result=\"ok\"} 1",
        "nauti_nri_addresses_allocated 1",
        "nauti_nri_annotations_total{result=\"written\"} 1",
        "nauti_nri_runtime_connected 1",
    ] {
        assert!(metrics.contains(line), "{line} missing in\n{metrics}");
    }

    bed.ctrd.remove_pod(&pod).unwrap();
    let (_, metrics) = bed.plugin_endpoint("/metrics").unwrap();
    assert!(
        metrics.contains("nauti_nri_addresses_allocated 0"),
        "{metrics}"
    );
    assert_eq!(
        bed.lsps().unwrap().len(),
        before.0,
        "{:?}",
        bed.lsps().unwrap()
    );
    assert_eq!(
        bed.ovs_ports().unwrap().len(),
        before.1,
        "{:?}",
        bed.ovs_ports().unwrap()
    );
    assert_eq!(
        bed.host_veths().unwrap().len(),
        before.2,
        "{:?}",
        bed.host_veths().unwrap()
    );

    // OVN is the allocator's source of truth: no port holds the address any more.
    let addresses = bed
        .central
        .nbctl(&[
            "--bare",
            "--columns=addresses",
            "list",
            "Logical_Switch_Port",
        ])
        .unwrap();
    assert!(
        !addresses.contains(&format!(" {ip}")),
        "{ip} still held: {addresses}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn host_network_and_opted_out_pods_are_left_alone() {
    require_root!();
    let bed = crate::support::start("nri-skip", &[]).await;
    let before = bed.lsps().unwrap().len();
    let mut spec: PodSpec = bed.create_pod_object("hostnet", &[]).await.unwrap();
    spec.host_network = true;
    bed.ctrd.run_pod(&spec).unwrap();
    let opted = bed
        .run_pod("optout", &[("nauti.io/enabled", "false")])
        .await
        .unwrap();
    let c = bed.ctrd.run_container(&opted, "sh", SLEEP).unwrap();
    assert_eq!(bed.lsps().unwrap().len(), before);
    // A pod plumbed after them is annotated: theirs would have been written by then.
    bed.run_pod("control", &[]).await.unwrap();
    crate::support::annotated(&bed, "control").await;
    assert!(crate::support::network_now(&bed, "hostnet").await.is_none());
    assert!(crate::support::network_now(&bed, "optout").await.is_none());
    assert!(
        bed.ctrd
            .exec(&c, &["ip", "link", "show", "eth-nauti"])
            .is_err()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn forged_annotations_are_overwritten_with_the_real_allocation() {
    require_root!();
    let bed = crate::support::start("nri-forged", &[]).await;
    let forged = [
        ("nauti.io/ip_address", "10.112.9.9"),
        ("nauti.io/mac_address", "0a:58:0a:70:09:09"),
        ("nauti.io/allocated", "true"),
    ];
    let pod = bed.run_pod("forger", &forged).await.unwrap();
    let c = bed.ctrd.run_container(&pod, "sh", SLEEP).unwrap();
    let net = crate::support::annotated(&bed, "forger").await;
    assert_ne!(net.ip_address.to_string(), "10.112.9.9");
    let (addr, _) = nic_in(&bed, &c);
    assert!(
        addr.contains(&format!("inet {}/16", net.ip_address)),
        "{addr}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_restarted_plugin_plumbs_what_it_missed_and_releases_what_leaked() {
    require_root!();
    let mut bed = crate::support::start("nri-restart", &[]).await;
    let kept = bed.run_pod("kept", &[]).await.unwrap();
    let doomed = bed.run_pod("doomed", &[]).await.unwrap();
    let kept_ip = crate::support::annotated(&bed, "kept").await.ip_address;

    bed.kill_plugin();
    bed.ctrd.remove_pod(&doomed).unwrap();
    let missed = bed.run_pod("missed", &[]).await.unwrap();
    assert!(crate::support::network_now(&bed, "missed").await.is_none());
    assert!(bed.lsps().unwrap().contains(&"default_doomed".to_owned()));

    bed.start_plugin().unwrap();
    assert!(
        bed.eventually(async || { crate::support::network_now(&bed, "missed").await.is_some() })
            .await,
        "the missed pod gets its NIC"
    );
    let lsps = bed.lsps().unwrap();
    assert!(!lsps.contains(&"default_doomed".to_owned()), "{lsps:?}");
    assert!(lsps.contains(&"default_missed".to_owned()), "{lsps:?}");
    let missed_ip = crate::support::annotated(&bed, "missed").await.ip_address;
    assert_ne!(missed_ip, kept_ip, "one address held twice");
    assert_eq!(
        crate::support::annotated(&bed, "kept").await.ip_address,
        kept_ip
    );
    let c = bed.ctrd.run_container(&missed, "sh", SLEEP).unwrap();
    let (addr, _) = nic_in(&bed, &c);
    assert!(addr.contains(&missed_ip.to_string()), "{addr}");
    let _ = kept;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_containerd_restarts_the_plugin_reconnects_and_keeps_plumbing() {
    require_root!();
    let mut bed = crate::support::start("nri-ctrd-restart", &[]).await;
    bed.run_pod("before", &[]).await.unwrap();
    bed.ctrd.restart().unwrap();
    let plugin_log = bed.dir.log("nauti-nri-1");
    let reconnected = settle(|| {
        std::fs::read_to_string(&plugin_log)
            .is_ok_and(|t| t.matches("synchronized with the runtime").count() >= 2)
    });
    assert!(reconnected, "the plugin did not synchronize again");
    bed.run_pod("after", &[]).await.unwrap();
    crate::support::annotated(&bed, "after").await;
    crate::support::annotated(&bed, "before").await;
}
