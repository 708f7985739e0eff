//! The plugin on a bad day: peers that are down, hung or slow, a node without its block, a
//! plugin killed or away, a pod name taken on another node. Each test is named after the
//! property it shows.

use nauti_testbed::require_root;

use crate::support::{NODE_BLOCK, WAIT};

/// The `nauti_nri_*` metric line `line` is in the plugin's metrics.
fn metric(bed: &crate::support::Bed, line: &str) -> bool {
    bed.plugin_endpoint("/metrics")
        .is_ok_and(|(_, text)| text.lines().any(|l| l == line))
}

/// Item 1: sandboxes that fail while NB is away leave no address behind, even though the runtime
/// sends no RemovePodSandbox for them.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn no_address_lost_when_nb_down_during_failed_sandboxes() {
    require_root!();
    let mut bed = crate::support::start_without_plugin("nri-no-loss").await;
    // Six usable addresses: ten lost ones would exhaust the block.
    bed.set_node_block("node-1", Some("10.112.1.0/29"))
        .await
        .unwrap();
    bed.start_plugin().unwrap();
    bed.central.nb_server().stop();
    for n in 0..10 {
        let spec = bed
            .create_pod_object(&format!("fail-{n}"), &[])
            .await
            .unwrap();
        let err = bed.ctrd.run_pod(&spec).unwrap_err().to_string();
        assert!(err.contains("second NIC not plumbed"), "{err}");
    }
    bed.central.nb_server().resume().unwrap();
    // Until the plugin's NB client is back, a pod fails like those above; then it is served.
    let deadline = std::time::Instant::now() + WAIT;
    let mut attempt = 0;
    let pod = loop {
        attempt += 1;
        let name = format!("after-{attempt}");
        match bed.run_pod(&name, &[]).await {
            Ok(pod) => break pod,
            Err(e) if std::time::Instant::now() < deadline => {
                tokio::time::sleep(std::time::Duration::from_millis(500)).await;
                let _ = e;
            }
            Err(e) => panic!("no pod served after NB came back: {e}"),
        }
    };
    let net = crate::support::annotated(&bed, &format!("after-{attempt}")).await;
    assert!(
        bed.eventually(async || metric(&bed, "nauti_nri_addresses_allocated 1"))
            .await,
        "{:?}",
        bed.plugin_endpoint("/metrics")
    );
    let block: ipnet::IpNet = "10.112.1.0/29".parse().unwrap();
    assert!(block.contains(&net.ip_address), "{}", net.ip_address);
    assert!(bed.ctrd.pod_ids().unwrap().contains(&pod.id));
    assert!(bed.plugin.as_mut().unwrap().is_running());
}

/// Item 2: a hung `ovsdb-server` on the node does not hold the answer past the runtime's
/// timeout: the pod fails naming it, the plugin stays connected, and what the late plumbing made
/// is undone once the server answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn every_event_answered_within_the_runtime_timeout_when_ovs_hangs() {
    require_root!();
    let mut bed = crate::support::start("nri-ovs-hung", &[]).await;
    let ports_before = bed.ovs_ports().unwrap().len();
    bed.ovn_node.ovsdb_server().freeze().unwrap();
    let spec = bed.create_pod_object("frozen", &[]).await.unwrap();
    let result = bed.ctrd.run_pod(&spec);
    bed.ovn_node.ovsdb_server().unfreeze().unwrap();
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("Open vSwitch") && err.contains("no answer within"),
        "{err}"
    );
    assert!(bed.plugin.as_mut().unwrap().is_running());
    // Still the first connection: the runtime did not drop the plugin.
    assert!(
        metric(&bed, "nauti_nri_runtime_connections_total 1"),
        "{:?}",
        bed.plugin_endpoint("/metrics")
    );
    assert!(
        bed.eventually(async || bed.ovs_ports().unwrap().len() == ports_before
            && !bed.lsps().unwrap().contains(&"default_frozen".to_owned()))
            .await,
        "the late plumbing of the failed sandbox was not undone: {:?} {:?}",
        bed.ovs_ports(),
        bed.lsps()
    );
    bed.run_pod("thawed", &[]).await.unwrap();
    crate::support::annotated(&bed, "thawed").await;
}

/// Item 3: containerd launches the plugin on a node the controller has not given a block yet:
/// Configure is answered, pods fail naming the annotation, and once it appears pods are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_launched_plugin_waits_for_the_node_block_and_serves_pods_once_it_appears() {
    require_root!();
    let mut bed = crate::support::start_without_plugin("nri-launched-no-block").await;
    bed.set_node_block("node-1", None).await.unwrap();
    bed.install_launched_plugin().unwrap();
    let spec = bed.create_pod_object("early", &[]).await.unwrap();
    let err = bed.ctrd.run_pod(&spec).unwrap_err().to_string();
    assert!(err.contains("nauti.io/node-cidr"), "{err}");
    bed.set_node_block("node-1", Some(NODE_BLOCK))
        .await
        .unwrap();
    let mut served = false;
    let deadline = std::time::Instant::now() + WAIT;
    let mut n = 0;
    while !served && std::time::Instant::now() < deadline {
        n += 1;
        served = bed.run_pod(&format!("later-{n}"), &[]).await.is_ok();
    }
    assert!(served, "no pod served after the block appeared");
    let net = crate::support::annotated(&bed, &format!("later-{n}")).await;
    let block: ipnet::IpNet = NODE_BLOCK.parse().unwrap();
    assert!(block.contains(&net.ip_address));
}

/// Item 5: a sandbox removed while the plugin was away, whose port the controller collected
/// meanwhile, leaves its OVS interface row behind; the next start removes it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nothing_leaks_while_the_plugin_is_down_past_the_gc_grace() {
    require_root!();
    let mut bed = crate::support::start("nri-away", &[]).await;
    let gone = bed.run_pod("gone", &[]).await.unwrap();
    crate::support::annotated(&bed, "gone").await;
    let host = nauti_nri::nic::host_ifname(&gone.id);
    assert!(bed.ovs_ports().unwrap().contains(&host));
    bed.kill_plugin();
    bed.ctrd.remove_pod(&gone).unwrap();
    // What nauti-ovnmaster's GC does once the grace is over.
    bed.central.nbctl(&["lsp-del", "default_gone"]).unwrap();
    assert!(bed.ovs_ports().unwrap().contains(&host), "the row is left");
    bed.start_plugin().unwrap();
    assert!(
        bed.eventually(async || !bed.ovs_ports().unwrap().contains(&host))
            .await,
        "OVS interface row of a deleted sandbox kept: {:?}",
        bed.ovs_ports()
    );
}

/// Item 6: a pod of the same name on another node (a StatefulSet pod after a force delete) keeps
/// its port; this node's sandbox gets a port of its own, and removing it leaves theirs alone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_name_is_not_taken_over_by_a_pod_of_the_same_name_on_another_node() {
    require_root!();
    let bed = crate::support::start("nri-same-name", &[]).await;
    let theirs = "f".repeat(64);
    bed.central
        .nbctl(&[
            "lsp-add",
            "nauti-east",
            "default_web-0",
            "--",
            "lsp-set-addresses",
            "default_web-0",
            "0a:58:0a:70:02:05 10.112.2.5",
            "--",
            "set",
            "logical_switch_port",
            "default_web-0",
            "external_ids:nauti.io/owner=pod",
            "external_ids:node=node-2",
            "external_ids:namespace=default",
            "external_ids:pod=web-0",
            &format!("external_ids:sandbox={theirs}"),
        ])
        .unwrap();
    let read_theirs = || {
        bed.central
            .nbctl(&[
                "--bare",
                "--columns=addresses,external_ids",
                "list",
                "logical_switch_port",
                "default_web-0",
            ])
            .unwrap()
    };
    let before = read_theirs();
    let pod = bed.run_pod("web-0", &[]).await.unwrap();
    let net = crate::support::annotated(&bed, "web-0").await;
    assert_ne!(net.ip_address.to_string(), "10.112.2.5");
    assert_eq!(read_theirs(), before, "their port was rewritten");
    let ours = format!("default_web-0_{}", &pod.id[..12]);
    assert!(bed.lsps().unwrap().contains(&ours), "{:?}", bed.lsps());
    bed.ctrd.remove_pod(&pod).unwrap();
    assert_eq!(
        read_theirs(),
        before,
        "their port was touched by our removal"
    );
    assert!(!bed.lsps().unwrap().contains(&ours));
}

/// Sends `signal` (`-STOP`, `-CONT`) to a process of the bed.
fn signal(pid: u32, signal: &str) {
    let status = std::process::Command::new("kill")
        .args([signal, &pid.to_string()])
        .status()
        .unwrap();
    assert!(status.success(), "kill {signal} {pid}");
}

/// Item 2: a hung API server does not hold the answer: the pod starts with its NIC within the
/// runtime's timeout, and its annotations are written once the server answers again.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_hung_api_server_does_not_hold_the_answer_and_the_annotations_follow() {
    require_root!();
    let mut bed = crate::support::start("nri-api-hung", &[]).await;
    let spec = bed.create_pod_object("patient", &[]).await.unwrap();
    let apiserver = bed.kube.pids()[0];
    signal(apiserver, "-STOP");
    let result = bed.ctrd.run_pod(&spec);
    signal(apiserver, "-CONT");
    let pod = result.unwrap();
    assert!(bed.ctrd.pod_ids().unwrap().contains(&pod.id));
    let net = crate::support::annotated(&bed, "patient").await;
    let block: ipnet::IpNet = NODE_BLOCK.parse().unwrap();
    assert!(block.contains(&net.ip_address), "{}", net.ip_address);
    assert!(bed.plugin.as_mut().unwrap().is_running());
    assert!(
        metric(&bed, "nauti_nri_runtime_connections_total 1"),
        "{:?}",
        bed.plugin_endpoint("/metrics")
    );
}

/// Item 2: a plugin that starts while the northbound database hangs answers Synchronize and
/// stays connected; pods fail naming the database until it answers, then are served.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_synchronize_against_a_hung_database_is_answered_and_the_plugin_stays_connected() {
    require_root!();
    let mut bed = crate::support::start("nri-sync-hung", &[]).await;
    bed.run_pod("before", &[]).await.unwrap();
    crate::support::annotated(&bed, "before").await;
    bed.kill_plugin();
    bed.central.nb_server().freeze().unwrap();
    let log = bed.dir.log("nauti-nri-frozen-nb");
    let cmd = bed.plugin_command("node-1");
    let mut plugin = nauti_testbed::Daemon::spawn("nauti-nri frozen nb", cmd, &log).unwrap();
    let registered = bed
        .eventually(async || metric(&bed, "nauti_nri_runtime_connections_total 1"))
        .await;
    let spec = bed.create_pod_object("during", &[]).await.unwrap();
    let result = bed.ctrd.run_pod(&spec);
    bed.central.nb_server().unfreeze().unwrap();
    assert!(registered, "{:?}", bed.plugin_endpoint("/metrics"));
    let err = result.unwrap_err().to_string();
    assert!(
        err.contains("reading the logical switch from the OVN northbound database"),
        "{err}"
    );
    assert!(plugin.is_running(), "the plugin stopped");
    let mut served = false;
    let deadline = std::time::Instant::now() + WAIT;
    let mut n = 0;
    while !served && std::time::Instant::now() < deadline {
        n += 1;
        served = bed.run_pod(&format!("after-{n}"), &[]).await.is_ok();
    }
    assert!(served, "no pod served after the database answered");
    crate::support::annotated(&bed, &format!("after-{n}")).await;
    assert!(
        metric(&bed, "nauti_nri_runtime_connections_total 1"),
        "the runtime dropped the plugin: {:?}",
        bed.plugin_endpoint("/metrics")
    );
}

/// Item 4: the node's block changes under a running plugin: once the change is seen, new pods
/// get addresses of the new block while running pods keep theirs; once the annotation vanishes
/// nothing more is handed out and pods fail naming it.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_moved_node_block_is_followed_and_a_vanished_one_hands_out_nothing() {
    require_root!();
    let bed = crate::support::start("nri-block-moves", &[]).await;
    let old: ipnet::IpNet = NODE_BLOCK.parse().unwrap();
    let new: ipnet::IpNet = "10.112.7.0/24".parse().unwrap();
    let first = bed.run_pod("first", &[]).await.unwrap();
    assert!(old.contains(&crate::support::annotated(&bed, "first").await.ip_address));

    bed.set_node_block("node-1", Some(&new.to_string()))
        .await
        .unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut n = 0;
    loop {
        n += 1;
        let name = format!("moved-{n}");
        bed.run_pod(&name, &[]).await.unwrap();
        let ip = crate::support::annotated(&bed, &name).await.ip_address;
        if new.contains(&ip) {
            break;
        }
        assert!(old.contains(&ip), "{ip} is in neither block");
        assert!(
            std::time::Instant::now() < deadline,
            "the new block was never served"
        );
    }
    // From then on, only the new block.
    bed.run_pod("settled", &[]).await.unwrap();
    let settled = crate::support::annotated(&bed, "settled").await.ip_address;
    assert!(new.contains(&settled), "{settled}");
    assert!(bed.ctrd.pod_ids().unwrap().contains(&first.id));
    assert!(bed.lsps().unwrap().contains(&"default_first".to_owned()));

    bed.set_node_block("node-1", None).await.unwrap();
    let deadline = std::time::Instant::now() + WAIT;
    let mut n = 0;
    let err = loop {
        n += 1;
        let spec = bed
            .create_pod_object(&format!("blockless-{n}"), &[])
            .await
            .unwrap();
        match bed.ctrd.run_pod(&spec) {
            Err(e) => break e.to_string(),
            Ok(_) => assert!(
                std::time::Instant::now() < deadline,
                "pods kept getting addresses after the block vanished"
            ),
        }
    };
    assert!(err.contains("nauti.io/node-cidr"), "{err}");
    assert!(bed.ctrd.pod_ids().unwrap().contains(&first.id));
}
