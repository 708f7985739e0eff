//! Node blocks, the switch and the gateway port.

use std::collections::BTreeSet;
use std::time::Duration;

use ipnet::IpNet;
use k8s_openapi::api::core::v1::Node;
use k8s_openapi::api::events::v1::Event;
use kube::api::{Api, Patch, PatchParams};
use nauti_testbed::require_root;

use crate::{Bed, NODE_CIDR, SUBNET, SWITCH, eventually};

fn parse_blocks(blocks: &[String]) -> Vec<IpNet> {
    blocks.iter().map(|b| b.parse().unwrap()).collect()
}

fn assert_disjoint_inside_subnet(blocks: &[IpNet]) {
    let subnet: IpNet = SUBNET.parse().unwrap();
    for (i, a) in blocks.iter().enumerate() {
        assert!(subnet.contains(a), "{a} outside {subnet}");
        assert_eq!(a.prefix_len(), 24, "{a}");
        for b in &blocks[i + 1..] {
            assert!(
                !a.contains(&b.network()) && !b.contains(&a.network()),
                "{a} overlaps {b}"
            );
        }
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn nodes_get_disjoint_blocks_and_the_switch_reserves_the_gateway() {
    require_root!();
    let bed = Bed::start("master-blocks").await;
    for node in ["node-a", "node-b", "node-c"] {
        bed.create_node(node, None).await;
    }
    bed.create_node("node-d", Some("not-a-cidr")).await;
    let master = bed.master("a", &[]);

    let blocks = eventually("four annotated nodes", Duration::from_secs(60), || async {
        let all = bed.node_blocks().await;
        let blocks: Vec<String> = all.values().cloned().collect::<Option<_>>()?;
        (blocks.len() == 4 && !blocks.contains(&"not-a-cidr".to_owned())).then_some(blocks)
    })
    .await;
    let nets = parse_blocks(&blocks);
    assert_disjoint_inside_subnet(&nets);
    // Lowest free blocks, the gateway's /24 included.
    let set: BTreeSet<String> = blocks.iter().cloned().collect();
    let want: BTreeSet<String> = (0..4).map(|i| format!("10.113.{i}.0/24")).collect();
    assert_eq!(set, want);

    // The switch and the gateway port.
    let nb = bed.nb().await;
    let switch = eventually("the logical switch", Duration::from_secs(20), || async {
        nb.get_logical_switch(SWITCH).await.unwrap()
    })
    .await;
    assert_eq!(switch.subnet(), Some(SUBNET));
    assert_eq!(switch.exclude_ips(), vec!["10.113.0.1"]);
    let cnf = nb
        .get_logical_switch_port("nauti-cnf")
        .await
        .unwrap()
        .unwrap();
    assert_eq!(cnf.kind, "router");
    assert_eq!(cnf.addresses, vec!["router"]);
    // The gateway address is the router port's, with its derived MAC.
    let router_port = cnf.options.get("router-port").cloned().unwrap();
    let rows = nb
        .client()
        .transact(
            nauti_ovn::core::nb::DB,
            vec![nauti_ovn::Operation::select(
                "Logical_Router_Port",
                vec![nauti_ovn::Condition::eq("name", router_port.as_str())],
                &[],
            )],
        )
        .await
        .unwrap();
    let row = nauti_ovn::core::router::RouterPort::from_row(&rows[0].rows.as_ref().unwrap()[0]);
    assert_eq!(row.mac, "0a:58:0a:71:00:01");
    assert_eq!(row.networks, vec!["10.113.0.1/16"]);
    assert!(
        nb.list_static_routes(&format!("{SWITCH}-gw"))
            .await
            .unwrap()
            .is_empty(),
        "no route before a CNF pod sets one"
    );
    assert_eq!(
        cnf.external_ids.get("nauti.io/owner").map(String::as_str),
        Some("cnf")
    );
    let ports = nb.list_logical_switch_ports(SWITCH).await.unwrap();
    assert!(ports.iter().any(|p| p.name == "nauti-cnf"));

    // The malformed value was reported on the node, naming it and the bad value.
    let events: Api<Event> = Api::namespaced(bed.admin.clone(), "default");
    let warning = eventually(
        "an InvalidNodeCIDR event",
        Duration::from_secs(20),
        || async {
            events
                .list(&Default::default())
                .await
                .unwrap()
                .items
                .into_iter()
                .find(|e| e.reason.as_deref() == Some("InvalidNodeCIDR"))
        },
    )
    .await;
    assert_eq!(
        warning.regarding.and_then(|r| r.name).as_deref(),
        Some("node-d")
    );
    assert!(warning.note.unwrap().contains("not-a-cidr"));
    assert!(master.log_text().contains("not-a-cidr"));

    // A node that copies another's block: the later name loses it and gets a fresh one.
    let nodes: Api<Node> = Api::all(bed.admin.clone());
    let a_block = bed.node_blocks().await["node-a"].clone().unwrap();
    let patch = serde_json::json!({"metadata": {"annotations": {NODE_CIDR: a_block}}});
    nodes
        .patch("node-c", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    let blocks = eventually(
        "node-c moved off node-a's block",
        Duration::from_secs(30),
        || async {
            let all = bed.node_blocks().await;
            let c = all["node-c"].clone()?;
            (c != a_block).then(|| all.values().cloned().collect::<Option<Vec<_>>>())?
        },
    )
    .await;
    assert_eq!(
        bed.node_blocks().await["node-a"].as_deref(),
        Some(a_block.as_str())
    );
    assert_disjoint_inside_subnet(&parse_blocks(&blocks));

    // A deleted node's block is free again once the node is gone.
    let b_block = bed.node_blocks().await["node-b"].clone().unwrap();
    nodes.delete("node-b", &Default::default()).await.unwrap();
    bed.create_node("node-e", None).await;
    let e_block = eventually("node-e annotated", Duration::from_secs(30), || async {
        bed.node_blocks().await["node-e"].clone()
    })
    .await;
    assert_eq!(e_block, b_block);
    let blocks: Vec<String> = bed
        .node_blocks()
        .await
        .into_values()
        .map(Option::unwrap)
        .collect();
    assert_disjoint_inside_subnet(&parse_blocks(&blocks));

    // Metrics and health.
    let leader = eventually("leader gauge 1", Duration::from_secs(10), || async {
        master
            .metric("nauti_ovnmaster_leader")
            .await
            .filter(|v| *v == 1.0)
    })
    .await;
    assert_eq!(leader, 1.0);
    assert!(
        master
            .metric("nauti_ovnmaster_blocks_assigned_total")
            .await
            .unwrap()
            >= 5.0
    );
    assert!(
        master
            .metric("nauti_ovnmaster_bad_node_annotations_total")
            .await
            .unwrap()
            >= 2.0
    );
    let (code, body) = master.get("/metrics").await.unwrap();
    assert_eq!(code, 200);
    assert!(
        body.contains("nauti_ovnmaster_reconciles_total{result=\"ok\"}"),
        "{body}"
    );
    assert_eq!(master.get("/healthz").await.unwrap().0, 200);
    assert_eq!(master.get("/readyz").await.unwrap().0, 200);
    assert_eq!(master.get("/nope").await.unwrap().0, 404);
}

/// Issue 11, item 4: a Node deleted and recreated while its pods run, with another node joining
/// meanwhile. The block its pods' ports sit in is not handed to the newcomer, the node gets it
/// back, and it frees only once those ports are gone.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_block_with_live_ports_is_not_freed_when_its_node_goes() {
    require_root!();
    let bed = Bed::start("master-held-block").await;
    bed.kube.create_namespace("apps").await.unwrap();
    bed.create_node("node-a", None).await;
    let _master = bed.master("a", &[]);
    let a_block: IpNet = eventually("node-a annotated", Duration::from_secs(60), || async {
        bed.node_blocks().await["node-a"].clone()
    })
    .await
    .parse()
    .unwrap();

    // A pod of node-a runs with an address of its block.
    let uid = bed.create_pod("apps", "web").await;
    let ip = a_block.hosts().nth(9).unwrap().to_string();
    let nb = bed.nb().await;
    nb.ensure_logical_switch_ports(SWITCH, &[crate::gc::mk_pod_port("apps", "web", &uid, &ip)])
        .await
        .unwrap();

    let nodes: Api<Node> = Api::all(bed.admin.clone());
    nodes.delete("node-a", &Default::default()).await.unwrap();
    bed.create_node("node-c", None).await;
    let c_block = eventually("node-c annotated", Duration::from_secs(30), || async {
        bed.node_blocks().await.get("node-c").cloned().flatten()
    })
    .await;
    assert_ne!(
        c_block,
        a_block.to_string(),
        "node-c got the block of node-a's running pod {ip}"
    );

    // node-a comes back without its annotation: it gets the block its pod sits in.
    bed.create_node("node-a", None).await;
    let back = eventually(
        "node-a annotated again",
        Duration::from_secs(30),
        || async { bed.node_blocks().await.get("node-a").cloned().flatten() },
    )
    .await;
    assert_eq!(back, a_block.to_string());

    // Once the pod is gone and its port collected, the block is free for anyone.
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(bed.admin.clone(), "apps");
    pods.delete("web", &kube::api::DeleteParams::default().grace_period(0))
        .await
        .unwrap();
    eventually(
        "the pod's port collected",
        Duration::from_secs(30),
        || async {
            let ports = nb.list_logical_switch_ports(SWITCH).await.unwrap();
            (!ports.iter().any(|p| p.name == "apps_web")).then_some(())
        },
    )
    .await;
    nodes.delete("node-a", &Default::default()).await.unwrap();
    bed.create_node("node-d", None).await;
    let d_block = eventually("node-d annotated", Duration::from_secs(30), || async {
        bed.node_blocks().await.get("node-d").cloned().flatten()
    })
    .await;
    assert_eq!(d_block, a_block.to_string());
}
