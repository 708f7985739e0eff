//! Two pods on two OVN chassis, plugged through nauti-ovn alone: the logical switch and its ports
//! through `Northbound`, the OVS ports through `OpenVswitch` on each node's database socket.

use std::net::IpAddr;
use std::time::Duration;

use nauti_ovn::core::nb::DB;
use nauti_ovn::{
    Atom, Condition, LogicalSwitch, LogicalSwitchPort, MonitorRequest, Northbound, OpenVswitch,
    OvsPort, Value,
};
use nauti_testbed::ovn::{OvnCentral, OvnNode, plumb_pod_nic};
use nauti_testbed::{Netns, TestDir, require_root};

use crate::mk_client;

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_netns_plugged_by_this_library_onto_one_logical_switch_pass_ping_and_tcp() {
    require_root!();
    let dir = TestDir::new("ovsdb-plumbing").unwrap();
    let central = OvnCentral::start(&dir).unwrap();
    let n1 = Netns::new("onp1").unwrap();
    let n2 = Netns::new("onp2").unwrap();
    n1.veth_to("ul", &n2, "ul").unwrap();
    let node1 = OvnNode::start(&dir, &n1, "lib-node1", "ul", "198.18.1.1/24", &central).unwrap();
    let node2 = OvnNode::start(&dir, &n2, "lib-node2", "ul", "198.18.1.2/24", &central).unwrap();
    let pods = [Netns::new("onq1").unwrap(), Netns::new("onq2").unwrap()];

    let nb = Northbound::new(mk_client(&central.nb_remote()).await);
    nb.ensure_logical_switch(
        &LogicalSwitch::new("nauti")
            .with_subnet("10.112.0.0/16")
            .with_exclude_ips(["10.112.0.1"]),
    )
    .await
    .unwrap();
    let lsps: Vec<LogicalSwitchPort> = (0..2)
        .map(|i| {
            LogicalSwitchPort::new(format!("default_pod{i}"))
                .with_address(
                    &format!("0a:58:0a:70:00:{:02x}", i + 2),
                    &[&format!("10.112.0.{}", i + 2)],
                )
                .with_external_id("namespace", "default")
                .with_external_id("pod", format!("pod{i}"))
        })
        .collect();
    nb.ensure_logical_switch_ports("nauti", &lsps)
        .await
        .unwrap();
    let mut up = nb
        .client()
        .monitor(
            DB,
            vec![
                MonitorRequest::table("Logical_Switch_Port")
                    .columns(&["name", "up"])
                    .filter(vec![Condition::includes(
                        "external_ids",
                        Value::string_map([("namespace", "default")]),
                    )]),
            ],
        )
        .await
        .unwrap();

    for (i, (node, node_ns)) in [(&node1, &n1), (&node2, &n2)].into_iter().enumerate() {
        let mac = format!("0a:58:0a:70:00:{:02x}", i + 2);
        plumb_pod_nic(
            node_ns,
            &pods[i],
            "hp",
            &mac,
            &format!("10.112.0.{}/16", i + 2),
        )
        .unwrap();
        let ovs = OpenVswitch::new(mk_client(&node.db_remote()).await);
        ovs.ensure_port("br-int", &OvsPort::new("hp").with_iface_id(&lsps[i].name))
            .await
            .unwrap();
    }
    let all_up = up
        .wait_until(Duration::from_secs(30), |c| {
            c.len("Logical_Switch_Port") == 2
                && c.rows("Logical_Switch_Port")
                    .all(|(_, r)| r.get("up") == Some(&Value::Set(vec![Atom::Boolean(true)])))
        })
        .await;
    assert!(
        all_up,
        "ports not up: {:?}",
        up.snapshot()
            .rows("Logical_Switch_Port")
            .collect::<Vec<_>>()
    );

    tokio::task::block_in_place(|| {
        assert!(pods[0].ping("10.112.0.3", 10), "pod0 cannot ping pod1");
        let bytes = 4 * 1024 * 1024;
        let got = nauti_testbed::traffic::tcp_transfer(
            &pods[1],
            &pods[0],
            "10.112.0.3".parse::<IpAddr>().unwrap(),
            5202,
            bytes,
            Duration::from_secs(20),
        )
        .unwrap();
        assert_eq!(got, bytes);
    });

    // Unplugging through the library takes the port down and the rows away.
    let ovs1 = OpenVswitch::new(mk_client(&node1.db_remote()).await);
    assert!(ovs1.remove_port("hp").await.unwrap());
    assert!(nb.remove_logical_switch_port(&lsps[0].name).await.unwrap());
    assert!(
        up.wait_until(Duration::from_secs(10), |c| c.len("Logical_Switch_Port")
            == 1)
            .await
    );
    let ports = node1.vsctl(&["list-ports", "br-int"]).unwrap();
    assert!(
        !ports.lines().any(|p| p == "hp"),
        "hp still on br-int: {ports}"
    );
}
