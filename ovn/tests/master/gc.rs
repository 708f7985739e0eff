//! Garbage collection of the ports of deleted pods.

use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, DeleteParams};
use nauti_ovn::LogicalSwitchPort;
use nauti_testbed::require_root;

use crate::{Bed, SWITCH, eventually};

/// A pod port as the NRI plugin of `node-a` writes it.
pub(crate) fn mk_pod_port(ns: &str, pod: &str, uid: &str, ip: &str) -> LogicalSwitchPort {
    let mac = nauti_api::MacAddr::from_ip(ip.parse().unwrap()).to_string();
    LogicalSwitchPort::new(format!("{ns}_{pod}"))
        .with_address(&mac, &[ip])
        .with_external_id("pod", pod)
        .with_external_id("namespace", ns)
        .with_external_id("uid", uid)
        .with_external_id("node", "node-a")
        .with_external_id("sandbox", format!("sandbox-{pod}"))
        .with_external_id("nauti.io/owner", "pod")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_deleted_pods_port_is_collected_after_the_grace_period_and_live_ones_stay() {
    require_root!();
    let bed = Bed::start("master-gc").await;
    bed.kube.create_namespace("apps").await.unwrap();
    let live_uid = bed.create_pod("apps", "live").await;
    let doomed_uid = bed.create_pod("apps", "doomed").await;
    let master = bed.master("a", &[]);

    let nb = bed.nb().await;
    eventually("the logical switch", Duration::from_secs(60), || async {
        nb.get_logical_switch(SWITCH).await.unwrap()
    })
    .await;
    let operator_port = LogicalSwitchPort::new("operator-port")
        .with_external_id("pod", "doomed")
        .with_external_id("namespace", "apps");
    let ports = [
        mk_pod_port("apps", "live", &live_uid, "10.113.0.10"),
        mk_pod_port("apps", "doomed", &doomed_uid, "10.113.0.11"),
        // A port whose pod is the same name with another UID: a replaced pod's leftover.
        mk_pod_port("apps", "replaced", "old-uid", "10.113.0.12"),
        operator_port,
    ];
    nb.ensure_logical_switch_ports(SWITCH, &ports)
        .await
        .unwrap();
    bed.create_pod("apps", "replaced").await;

    // Let the controller see everything for longer than the grace period: nothing live goes.
    tokio::time::sleep(Duration::from_secs(4)).await;
    let names = |ports: Vec<LogicalSwitchPort>| -> Vec<String> {
        ports.into_iter().map(|p| p.name).collect()
    };
    let now = names(nb.list_logical_switch_ports(SWITCH).await.unwrap());
    for kept in ["apps_live", "apps_doomed", "operator-port", "nauti-cnf"] {
        assert!(
            now.contains(&kept.to_owned()),
            "{kept} missing from {now:?}"
        );
    }

    let pods: Api<Pod> = Api::namespaced(bed.admin.clone(), "apps");
    pods.delete("doomed", &DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    let deleted_at = Instant::now();
    eventually("apps_doomed collected", Duration::from_secs(30), || async {
        let now = names(nb.list_logical_switch_ports(SWITCH).await.unwrap());
        (!now.contains(&"apps_doomed".to_owned())).then_some(())
    })
    .await;
    let took = deleted_at.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "collected after {took:?}, before the 2s grace"
    );

    let now = names(nb.list_logical_switch_ports(SWITCH).await.unwrap());
    for kept in ["apps_live", "operator-port", "nauti-cnf"] {
        assert!(
            now.contains(&kept.to_owned()),
            "{kept} missing from {now:?}"
        );
    }
    eventually(
        "apps_replaced collected",
        Duration::from_secs(30),
        || async {
            let now = names(nb.list_logical_switch_ports(SWITCH).await.unwrap());
            (!now.contains(&"apps_replaced".to_owned())).then_some(())
        },
    )
    .await;
    assert!(
        master
            .metric("nauti_ovnmaster_ports_collected_total")
            .await
            .unwrap()
            >= 2.0
    );
    assert!(
        master
            .log_text()
            .contains("removed the port of a deleted pod")
    );
}
