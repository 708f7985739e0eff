//! The handler over the recording fake: plumb, undo, reconcile and the failure policy, without
//! root. The same paths run against real peers in `tests/pods`.

use std::sync::Mutex as StdMutex;

use nauti_api::daemon::Health as _;

use super::*;
use crate::metrics::Instrumented;
use crate::plumbing::PlumbingArgs;
use crate::plumbing::annotator::{PatchError, PodPatcher};
use crate::plumbing::events::RecordedEvents;
use crate::plumbing::fake::{FakeNode, Op, Peer};

#[derive(Default)]
struct Patched(StdMutex<Vec<String>>);

#[async_trait]
impl PodPatcher for Patched {
    async fn patch(&self, ns: &str, name: &str, _: &serde_json::Value) -> Result<(), PatchError> {
        lock(&self.0).push(format!("{ns}/{name}"));
        Ok(())
    }
}

struct Bed {
    handler: NautiHandler,
    node: Arc<FakeNode>,
    blocks: watch::Sender<BlockState>,
    events: Arc<RecordedEvents>,
    patched: Arc<Patched>,
    metrics: Arc<Metrics>,
}

fn mk_bed(flags: &[&str], block: Option<&str>) -> Bed {
    let mut all = vec!["--node-name", "node-1", "--cluster-id", "east"];
    all.extend_from_slice(flags);
    let settings = PlumbingArgs::parse_settings(&all);
    let node = FakeNode::new("nauti-east", "10.112.0.0/16");
    let blocks = watch::Sender::new(match block {
        Some(b) => BlockState::Block(b.parse().unwrap()),
        None => BlockState::Missing,
    });
    let metrics = Arc::new(Metrics::new());
    let patched = Arc::new(Patched::default());
    let events = Arc::new(RecordedEvents::default());
    let handler = NautiHandler::start(Parts {
        settings,
        backends: node.backends(),
        blocks: blocks.subscribe(),
        annotator: Annotator::start(patched.clone(), Duration::from_millis(1), metrics.clone()),
        events: events.clone(),
        metrics: metrics.clone(),
    });
    Bed {
        handler,
        node,
        blocks,
        events,
        patched,
        metrics,
    }
}

fn mk_pod(n: u32, name: &str) -> PodSandbox {
    PodSandbox {
        // Distinct in the first 12 digits, which name the host end.
        id: format!("{n:012x}{}", "e".repeat(52)),
        name: name.into(),
        namespace: "default".into(),
        uid: format!("uid-{name}"),
        netns_path: Some(format!("/var/run/netns/{name}")),
        ..PodSandbox::default()
    }
}

async fn eventually(what: &str, mut check: impl FnMut() -> bool) {
    for _ in 0..500 {
        if check() {
            return;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    panic!("never: {what}");
}

async fn with_timeout(bed: &Bed, ms: u64) {
    let runtime = RuntimeInfo {
        request_timeout: Duration::from_millis(ms),
        ..RuntimeInfo::default()
    };
    bed.handler.configure(&runtime, "").await.unwrap();
}

fn chain(err: &HandlerError) -> String {
    crate::handler::error_chain(err)
}

#[tokio::test]
async fn a_pod_gets_its_port_pair_and_ovs_port_then_its_annotations() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    let pod = mk_pod(1, "web");
    bed.handler.run_pod_sandbox(pod.clone()).await.unwrap();
    let host = host_ifname(&pod.id);
    let ops = bed.node.take_ops();
    for op in [
        Op::EnsureLsp("default_web".into()),
        Op::CreatePair(host.clone()),
        Op::ConfigurePodEnd(host.clone()),
        Op::EnsureOvs(host.clone()),
    ] {
        assert!(ops.contains(&op), "{op:?} missing in {ops:?}");
    }
    let pair = ops.iter().position(|o| *o == Op::CreatePair(host.clone()));
    let plug = ops.iter().position(|o| *o == Op::EnsureOvs(host.clone()));
    assert!(pair < plug, "the OVS port follows the pair: {ops:?}");
    let port = &bed.node.lsps()["default_web"];
    assert_eq!(port.addresses, vec!["0a:58:0a:70:01:01 10.112.1.1"]);
    eventually("annotated", || {
        lock(&bed.patched.0).contains(&"default/web".to_owned())
    })
    .await;
}

#[tokio::test]
async fn removing_a_sandbox_frees_port_nic_and_address() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    let pod = mk_pod(1, "web");
    bed.handler.run_pod_sandbox(pod.clone()).await.unwrap();
    assert_eq!(bed.metrics.addresses_allocated.get(), 1);
    bed.handler.remove_pod_sandbox(pod).await.unwrap();
    assert!(bed.node.lsps().is_empty());
    assert!(bed.node.ovs_ports().is_empty());
    assert!(bed.node.links().is_empty());
    assert_eq!(bed.metrics.addresses_allocated.get(), 0);
}

/// Item 1: a failed rollback keeps retrying and frees the address only once OVN confirms.
#[tokio::test]
async fn no_address_is_lost_when_nb_is_down_during_failed_sandboxes() {
    let bed = mk_bed(&[], Some("10.112.1.0/29"));
    eventually("block served", || bed.handler.node_network().is_some()).await;
    bed.node.set_down(Peer::Nb, true);
    for n in 0..10 {
        let err = bed
            .handler
            .run_pod_sandbox(mk_pod(n, &format!("p{n}")))
            .await
            .unwrap_err();
        let text = chain(&err);
        assert!(
            text.contains("OVN northbound") || text.contains("no free address"),
            "{text}"
        );
    }
    bed.node.set_down(Peer::Nb, false);
    eventually("every address back", || {
        bed.metrics.addresses_allocated.get() == 0
    })
    .await;
    bed.handler
        .run_pod_sandbox(mk_pod(99, "after"))
        .await
        .unwrap();
    assert!(bed.node.ovs_ports().len() == 1 && bed.node.lsps().len() == 1);
}

/// Item 2: a hung OVS database does not hold the answer past the deadline.
#[tokio::test]
async fn a_hung_ovs_fails_the_pod_within_the_deadline_naming_it_and_is_undone_after() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    with_timeout(&bed, 500).await;
    bed.node.hold(Peer::Ovs, true);
    let started = Instant::now();
    let err = bed
        .handler
        .run_pod_sandbox(mk_pod(1, "stuck"))
        .await
        .unwrap_err();
    assert!(
        started.elapsed() < Duration::from_millis(450),
        "{:?}",
        started.elapsed()
    );
    let text = chain(&err);
    assert!(
        text.contains("Open vSwitch") && text.contains("no answer within"),
        "{text}"
    );
    assert!(matches!(err, HandlerError::Unavailable { .. }));
    bed.node.hold(Peer::Ovs, false);
    eventually("undone after the late finish", || {
        bed.node.lsps().is_empty()
            && bed.node.ovs_ports().is_empty()
            && bed.metrics.addresses_allocated.get() == 0
    })
    .await;
}

#[tokio::test]
async fn under_ignore_a_hung_ovs_starts_the_pod_with_an_event_and_keeps_the_late_nic() {
    let bed = mk_bed(&["--failure-policy", "ignore"], Some("10.112.1.0/24"));
    with_timeout(&bed, 500).await;
    bed.node.hold(Peer::Ovs, true);
    bed.handler
        .run_pod_sandbox(mk_pod(1, "lenient"))
        .await
        .unwrap();
    let events = bed.events.events();
    assert_eq!(events.len(), 1);
    assert!(
        events[0].0 == "default/lenient" && events[0].1.contains("Open vSwitch"),
        "{events:?}"
    );
    bed.node.hold(Peer::Ovs, false);
    eventually("late NIC kept and annotated", || {
        bed.node.ovs_ports().len() == 1
            && lock(&bed.patched.0).contains(&"default/lenient".to_owned())
    })
    .await;
}

/// Item 3: no block yet: answers at once, serves pods once it appears.
#[tokio::test]
async fn a_node_without_a_block_names_it_and_serves_pods_once_it_appears() {
    let bed = mk_bed(&[], None);
    with_timeout(&bed, 400).await;
    let err = bed
        .handler
        .run_pod_sandbox(mk_pod(1, "early"))
        .await
        .unwrap_err();
    assert!(
        chain(&err).contains("nauti.io/node-cidr"),
        "{}",
        chain(&err)
    );
    bed.blocks
        .send_replace(BlockState::Block("10.112.1.0/24".parse().unwrap()));
    bed.handler
        .run_pod_sandbox(mk_pod(2, "later"))
        .await
        .unwrap();
    assert!(bed.node.lsps().contains_key("default_later"));
}

fn mk_forwarder(n: u32, name: &str, namespace: &str) -> PodSandbox {
    let mut pod = mk_pod(n, name);
    pod.namespace = namespace.into();
    pod.annotations.insert(
        nauti_api::core::annotations::keys::FORWARDER.into(),
        "true".into(),
    );
    pod
}

/// The CNF brings the network the node's block waits for (its cluster's slice comes through
/// it), so under `fail` it starts without its NIC while the node has no block, and gets it
/// once the block appears. Nothing else is let through.
#[tokio::test]
async fn under_fail_a_trusted_forwarder_starts_before_the_block_and_gets_its_nic_after() {
    let bed = mk_bed(&["--failure-policy", "fail"], None);
    with_timeout(&bed, 300).await;
    bed.handler
        .run_pod_sandbox(mk_forwarder(1, "gateway", "nauti-system"))
        .await
        .unwrap();
    let events = bed.events.events();
    assert_eq!(events.len(), 1, "{events:?}");
    assert!(
        events[0].0 == "nauti-system/gateway" && events[0].1.contains("once the node has a block"),
        "{events:?}"
    );
    // An ordinary pod beside it, and a forwarder in an untrusted namespace, still fail.
    for pod in [mk_pod(2, "plain"), mk_forwarder(3, "pretender", "default")] {
        let err = bed.handler.run_pod_sandbox(pod).await.unwrap_err();
        assert!(
            chain(&err).contains("waiting for the node's network"),
            "{}",
            chain(&err)
        );
    }
    assert!(bed.node.lsps().is_empty());
    bed.blocks
        .send_replace(BlockState::Block("10.112.1.0/24".parse().unwrap()));
    eventually("the forwarder's late NIC kept and annotated", || {
        bed.node.ovs_ports().len() == 1
            && lock(&bed.patched.0).contains(&"nauti-system/gateway".to_owned())
    })
    .await;
    // The failed sandboxes' tasks may plumb late too; what they made is released.
    eventually("only the forwarder keeps a port", || {
        bed.node.lsps().keys().collect::<Vec<_>>() == vec!["nauti-system_gateway"]
            && bed.node.ovs_ports().len() == 1
    })
    .await;
    assert!(
        bed.node.lsps()["nauti-system_gateway"]
            .port_security
            .is_empty()
    );
}

/// The block's arrival wakes both the forwarder's waiting task and a reconciliation, which may
/// find the forwarder without a port: it leaves it to the task, or the pod would be plumbed
/// twice, with two addresses and its OVS port made again under ovn-controller.
#[tokio::test]
async fn a_pod_waiting_for_the_network_is_plumbed_once_when_the_block_arrives() {
    let bed = mk_bed(&["--failure-policy", "fail"], None);
    with_timeout(&bed, 300).await;
    bed.handler.synchronize(vec![], vec![]).await.unwrap();
    bed.handler
        .run_pod_sandbox(mk_forwarder(1, "gateway", "nauti-system"))
        .await
        .unwrap();
    bed.node.take_ops();
    bed.blocks
        .send_replace(BlockState::Block("10.112.1.0/24".parse().unwrap()));
    eventually("the forwarder plumbed and annotated", || {
        lock(&bed.patched.0).contains(&"nauti-system/gateway".to_owned())
    })
    .await;
    // Give a second plumbing, if any, the time to show.
    tokio::time::sleep(Duration::from_millis(300)).await;
    bed.handler.reconcile(None).await.unwrap();
    let ops = bed.node.take_ops();
    let pairs = ops
        .iter()
        .filter(|op| matches!(op, Op::CreatePair(_)))
        .count();
    let ports = ops
        .iter()
        .filter(|op| matches!(op, Op::EnsureLsp(_)))
        .count();
    assert_eq!((pairs, ports), (1, 1), "{ops:?}");
    assert_eq!(lock(&bed.patched.0).len(), 1);
}

/// Item 4: a block that vanishes stops allocation; running pods keep their ports.
#[tokio::test]
async fn a_vanished_block_stops_allocation_and_running_pods_keep_their_ports() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    with_timeout(&bed, 400).await;
    bed.handler.run_pod_sandbox(mk_pod(1, "a")).await.unwrap();
    bed.blocks.send_replace(BlockState::Missing);
    eventually("withdrawn", || bed.handler.node_network().is_none()).await;
    let err = bed
        .handler
        .run_pod_sandbox(mk_pod(2, "b"))
        .await
        .unwrap_err();
    assert!(
        chain(&err).contains("nauti.io/node-cidr"),
        "{}",
        chain(&err)
    );
    assert!(bed.node.lsps().contains_key("default_a"));
    // A new block: new pods come from it, the old pod's port stays.
    bed.blocks
        .send_replace(BlockState::Block("10.112.9.0/24".parse().unwrap()));
    bed.handler.run_pod_sandbox(mk_pod(3, "c")).await.unwrap();
    let lsps = bed.node.lsps();
    assert!(
        lsps["default_c"].addresses[0].ends_with("10.112.9.1"),
        "{lsps:?}"
    );
    assert!(lsps["default_a"].addresses[0].ends_with("10.112.1.1"));
}

/// Item 5: what gone sandboxes left is removed by the reconciliation after Synchronize, and
/// readiness follows it.
#[tokio::test]
async fn synchronize_removes_what_gone_sandboxes_left_then_the_handler_is_ready() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    let kept = mk_pod(1, "kept");
    let gone = mk_pod(2, "gone");
    bed.handler.run_pod_sandbox(kept.clone()).await.unwrap();
    bed.handler.run_pod_sandbox(gone.clone()).await.unwrap();
    // A sandbox whose port the controller collected while the plugin was down: OVS row and link.
    let orphan = mk_pod(3, "orphan");
    let host = host_ifname(&orphan.id);
    bed.node.insert_ovs(
        nauti_ovn::OvsPort::new(&host)
            .with_external_id(nauti_api::core::port::OVS_SANDBOX, &orphan.id),
    );
    bed.node.insert_link(&host);
    let instrumented = Instrumented::new(bed.handler.clone(), bed.metrics.clone());
    assert!(bed.metrics.not_ready().is_some());
    instrumented
        .synchronize(vec![kept.clone()], vec![])
        .await
        .unwrap();
    eventually("leftovers gone and ready", || {
        bed.node.ovs_ports() == [host_ifname(&kept.id)].into()
            && bed.node.links() == [host_ifname(&kept.id)].into()
            && bed.node.lsps().keys().collect::<Vec<_>>() == ["default_kept"]
            && bed.metrics.not_ready().is_none()
    })
    .await;
    assert_eq!(bed.metrics.addresses_allocated.get(), 1);
}

/// Item 1: the node is compared with the runtime's sandboxes on a timer too, not only after a
/// `Synchronize`: what a gone sandbox left after the last one is removed with no event at all.
#[tokio::test]
async fn the_periodic_reconciliation_removes_what_a_gone_sandbox_left_without_a_synchronize() {
    let bed = mk_bed(&["--reconcile-interval-ms", "100"], Some("10.112.1.0/24"));
    let kept = mk_pod(1, "kept");
    bed.handler.run_pod_sandbox(kept.clone()).await.unwrap();
    Instrumented::new(bed.handler.clone(), bed.metrics.clone())
        .synchronize(vec![kept.clone()], vec![])
        .await
        .unwrap();
    eventually("ready", || bed.metrics.not_ready().is_none()).await;
    // Left behind after the Synchronize: the OVS row and host end of a sandbox the runtime no
    // longer has (no Remove will come for it).
    let orphan = mk_pod(3, "orphan");
    let host = host_ifname(&orphan.id);
    bed.node.insert_ovs(
        nauti_ovn::OvsPort::new(&host)
            .with_external_id(nauti_api::core::port::OVS_SANDBOX, &orphan.id),
    );
    bed.node.insert_link(&host);
    eventually("the leftovers removed by a periodic pass", || {
        bed.node.ovs_ports() == [host_ifname(&kept.id)].into()
            && bed.node.links() == [host_ifname(&kept.id)].into()
    })
    .await;
    assert!(bed.node.lsps().contains_key("default_kept"));
}

#[tokio::test]
async fn synchronize_plumbs_a_pod_missed_while_away_and_replumbs_a_lost_nic() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    let lost = mk_pod(1, "lost");
    bed.handler.run_pod_sandbox(lost.clone()).await.unwrap();
    let address = bed.node.lsps()["default_lost"].addresses.clone();
    bed.handler.disconnected().await;
    // The host end vanished; a pod came while the plugin was away.
    let host = host_ifname(&lost.id);
    crate::plumbing::backends::Links::remove(bed.node.as_ref(), &host)
        .await
        .unwrap();
    let missed = mk_pod(2, "missed");
    bed.handler
        .synchronize(vec![lost.clone(), missed.clone()], vec![])
        .await
        .unwrap();
    eventually("both plumbed", || {
        bed.node.links().len() == 2 && bed.node.lsps().contains_key("default_missed")
    })
    .await;
    assert_eq!(
        bed.node.lsps()["default_lost"].addresses,
        address,
        "same address"
    );
}

/// Item 6: a pod of the same name on another node keeps its port and its address.
#[tokio::test]
async fn a_port_name_held_on_another_node_is_not_taken_over() {
    let bed = mk_bed(&[], Some("10.112.1.0/24"));
    let theirs = nauti_ovn::LogicalSwitchPort::new("default_web-0")
        .with_address("0a:58:0a:70:02:05", &["10.112.2.5"])
        .with_external_id("nauti.io/owner", "pod")
        .with_external_id("node", "node-2")
        .with_external_id("sandbox", "f".repeat(64))
        .with_external_id("namespace", "default")
        .with_external_id("pod", "web-0");
    bed.node.insert_lsp(theirs.clone());
    let ours = mk_pod(1, "web-0");
    bed.handler.run_pod_sandbox(ours.clone()).await.unwrap();
    let lsps = bed.node.lsps();
    assert_eq!(lsps["default_web-0"], theirs, "their port untouched");
    let own_name = format!("default_web-0_{}", &ours.id[..12]);
    assert!(lsps.contains_key(&own_name), "{lsps:?}");
    bed.handler.remove_pod_sandbox(ours).await.unwrap();
    let lsps = bed.node.lsps();
    assert_eq!(lsps.len(), 1);
    assert_eq!(lsps["default_web-0"], theirs);
}

#[test]
fn the_answer_deadline_keeps_a_margin_of_the_request_timeout() {
    assert_eq!(
        answer_deadline(Duration::from_secs(2)),
        Duration::from_millis(1600)
    );
    assert_eq!(
        answer_deadline(Duration::from_millis(500)),
        Duration::from_millis(300)
    );
    assert_eq!(answer_deadline(Duration::ZERO), Duration::from_millis(1600));
    assert_eq!(
        answer_deadline(Duration::from_secs(10)),
        Duration::from_secs(8)
    );
}
