//! Bad input and broken peers: each gives the failure policy's outcome and a clear message.

use k8s_openapi::api::core::v1::{Event, Node};
use kube::api::{Api, ListParams, ObjectMeta, PostParams};
use nauti_testbed::require_root;

use crate::support::WAIT;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_ovn_unreachable_a_pod_fails_to_start_and_says_why() {
    require_root!();
    let mut bed = crate::support::start("nri-nb-down", &[]).await;
    bed.central.nb_server().stop();
    let spec = bed.create_pod_object("stranded", &[]).await.unwrap();
    let err = bed.ctrd.run_pod(&spec).unwrap_err().to_string();
    assert!(err.contains("second NIC not plumbed"), "{err}");
    assert!(err.contains("default/stranded"), "{err}");
    assert!(bed.plugin.as_mut().unwrap().is_running(), "the plugin died");
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn with_the_ignore_policy_the_pod_starts_without_a_nic_and_an_event_says_why() {
    require_root!();
    let mut bed = crate::support::start("nri-ignore", &["--failure-policy", "ignore"]).await;
    bed.central.nb_server().stop();
    let pod = bed.run_pod("lenient", &[]).await.unwrap();
    assert!(bed.ctrd.pod_ids().unwrap().contains(&pod.id));
    assert!(crate::support::network_now(&bed, "lenient").await.is_none());
    let events: Api<Event> = Api::namespaced(bed.kube.client().await.unwrap(), "default");
    assert!(
        bed.eventually(async || {
            events
                .list(&ListParams::default())
                .await
                .unwrap()
                .items
                .iter()
                .any(|e| {
                    e.involved_object.name.as_deref() == Some("lenient")
                        && e.reason.as_deref() == Some("NautiNicFailed")
                })
        })
        .await,
        "a warning event on the pod"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_exhausted_node_block_fails_the_next_pod_naming_the_block() {
    require_root!();
    let bed = crate::support::start("nri-exhausted", &[]).await;
    // A node whose block is a /30: two usable addresses.
    let nodes: Api<Node> = Api::all(bed.kube.client().await.unwrap());
    let small = Node {
        metadata: ObjectMeta {
            name: Some("node-small".into()),
            annotations: Some(
                [("nauti.io/node-cidr".to_owned(), "10.112.7.0/30".to_owned())].into(),
            ),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes.create(&PostParams::default(), &small).await.unwrap();
    let mut bed = bed;
    bed.kill_plugin();
    let log = bed.dir.log("nauti-nri-small");
    let cmd = bed.plugin_command("node-small");
    let mut plugin = nauti_testbed::Daemon::spawn("nauti-nri small", cmd, &log).unwrap();
    plugin.wait_ready(WAIT, || bed.plugin_ready()).unwrap();
    bed.run_pod("one", &[]).await.unwrap();
    bed.run_pod("two", &[]).await.unwrap();
    let spec = bed.create_pod_object("three", &[]).await.unwrap();
    let err = bed.ctrd.run_pod(&spec).unwrap_err().to_string();
    assert!(err.contains("10.112.7.0/30"), "{err}");
    assert!(plugin.is_running());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn on_a_node_without_a_block_the_plugin_runs_and_pods_fail_naming_the_annotation() {
    require_root!();
    let mut bed = crate::support::start("nri-no-block", &[]).await;
    let nodes: Api<Node> = Api::all(bed.kube.client().await.unwrap());
    let bare = Node {
        metadata: ObjectMeta {
            name: Some("node-bare".into()),
            ..Default::default()
        },
        ..Default::default()
    };
    nodes.create(&PostParams::default(), &bare).await.unwrap();
    bed.kill_plugin();
    let log = bed.dir.log("nauti-nri-bare");
    let cmd = bed.plugin_command("node-bare");
    let mut plugin = nauti_testbed::Daemon::spawn("nauti-nri bare", cmd, &log).unwrap();
    plugin.wait_ready(WAIT, || bed.plugin_ready()).unwrap();
    let spec = bed.create_pod_object("blockless", &[]).await.unwrap();
    let err = bed.ctrd.run_pod(&spec).unwrap_err().to_string();
    assert!(
        err.contains("node-bare") || err.contains("nauti.io/node-cidr"),
        "{err}"
    );
    assert!(err.contains("nauti.io/node-cidr"), "{err}");
    assert!(plugin.is_running(), "the plugin stopped");
}
