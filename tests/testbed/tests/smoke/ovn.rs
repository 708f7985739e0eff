//! OVN/OVS guards: a central and two chassis in namespaces, pods plugged with the CLI tools.

use std::net::IpAddr;
use std::time::Duration;

use nauti_testbed::ovn::{OvnCentral, OvnNode, plumb_pod_nic};
use nauti_testbed::{Netns, TestDir, require_root};

#[test]
fn two_netns_on_one_ovn_logical_switch_pass_ping_and_a_tcp_transfer() {
    require_root!();
    let dir = TestDir::new("ovn-smoke").unwrap();
    let central = OvnCentral::start(&dir).unwrap();
    let n1 = Netns::new("ovn1").unwrap();
    let n2 = Netns::new("ovn2").unwrap();
    n1.veth_to("ul", &n2, "ul").unwrap();
    let node1 = OvnNode::start(&dir, &n1, "node1", "ul", "198.18.0.1/24", &central).unwrap();
    let node2 = OvnNode::start(&dir, &n2, "node2", "ul", "198.18.0.2/24", &central).unwrap();

    central.nbctl(&["ls-add", "ls1"]).unwrap();
    let pods = [Netns::new("ovp1").unwrap(), Netns::new("ovp2").unwrap()];
    for (i, (node, node_ns)) in [(&node1, &n1), (&node2, &n2)].into_iter().enumerate() {
        let lsp = format!("p{i}");
        let mac = format!("0a:58:0a:70:00:{:02x}", i + 2);
        let ip = format!("10.112.0.{}", i + 2);
        central.nbctl(&["lsp-add", "ls1", &lsp]).unwrap();
        central
            .nbctl(&["lsp-set-addresses", &lsp, &format!("{mac} {ip}")])
            .unwrap();
        plumb_pod_nic(node_ns, &pods[i], "hp", &mac, &format!("{ip}/16")).unwrap();
        node.vsctl(&[
            "add-port",
            "br-int",
            "hp",
            "--",
            "set",
            "interface",
            "hp",
            &format!("external_ids:iface-id={lsp}"),
        ])
        .unwrap();
    }
    for lsp in ["p0", "p1"] {
        central.wait_port_up(lsp, Duration::from_secs(30)).unwrap();
    }
    assert!(
        pods[0].ping("10.112.0.3", 10),
        "pod on node1 cannot ping the pod on node2"
    );
    let bytes = 4 * 1024 * 1024;
    let got = nauti_testbed::traffic::tcp_transfer(
        &pods[1],
        &pods[0],
        "10.112.0.3".parse::<IpAddr>().unwrap(),
        5201,
        bytes,
        Duration::from_secs(20),
    )
    .unwrap();
    assert_eq!(got, bytes);
}

#[test]
fn an_ovsdb_server_restarts_on_its_file_and_the_central_goes_away_on_drop() {
    require_root!();
    let dir = TestDir::new("ovn-restart").unwrap();
    let run_dir;
    {
        let mut central = OvnCentral::start(&dir).unwrap();
        run_dir = central.run_dir().to_owned();
        central.nbctl(&["ls-add", "kept"]).unwrap();
        central.nb_server().restart().unwrap();
        assert_eq!(
            central
                .nbctl(&["--bare", "--columns=name", "list", "Logical_Switch"])
                .unwrap()
                .trim(),
            "kept"
        );
        central.nb_server().stop();
        assert!(
            !central.nb_socket().exists() || central.nbctl(&["--timeout=1", "ls-list"]).is_err()
        );
    }
    assert!(!run_dir.exists(), "{} left behind", run_dir.display());
}
