//! Load balancers against a real northbound ovsdb-server: idempotent ensure, update, removal,
//! and rows of another owner left alone.

use nauti_ovn::core::lb::SERVICE_KEY;
use nauti_ovn::{LbProtocol, LoadBalancer, LogicalSwitch, MonitorRequest, Northbound};

use crate::{mk_client, mk_nb};

const OWNER: &str = "octopus";

fn web(backends: &[&str]) -> LoadBalancer {
    LoadBalancer::new("mcs_default_web_tcp", LbProtocol::Tcp, OWNER)
        .with_external_id(SERVICE_KEY, "default/web")
        .with_vip("10.127.0.10:80", backends.iter().copied())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_are_ensured_once_updated_and_removed_leaving_foreign_ones() {
    let f = mk_nb("ovsdb-lb");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    nb.ensure_logical_switch(&LogicalSwitch::new("ls"))
        .await
        .unwrap();

    // A load balancer someone else put on the switch, with the same name as ours.
    let foreign = LoadBalancer {
        name: "mcs_default_web_tcp".into(),
        external_ids: [("owner".to_owned(), "operator".to_owned())].into(),
        ..LoadBalancer::default()
    }
    .with_vip("10.127.0.99:53", ["10.112.0.99:53"]);
    let inserted = client
        .transact(
            nauti_ovn::core::nb::DB,
            vec![
                nauti_ovn::Operation::insert_named("Load_Balancer", foreign.to_row(), "f"),
                nauti_ovn::Operation::mutate(
                    "Logical_Switch",
                    vec![nauti_ovn::Condition::eq("name", "ls")],
                    vec![nauti_ovn::Mutation::insert(
                        "load_balancer",
                        nauti_ovn::Value::Set(vec![nauti_ovn::Atom::NamedUuid("f".into())]),
                    )],
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(inserted[1].count, Some(1));

    let mut mon = client
        .monitor(
            nauti_ovn::core::nb::DB,
            vec![MonitorRequest::table("Load_Balancer")],
        )
        .await
        .unwrap();
    let first = web(&["10.112.0.5:8080", "10.113.0.7:8080"]);
    nb.ensure_load_balancers("ls", std::slice::from_ref(&first))
        .await
        .unwrap();
    assert!(
        mon.wait_until(std::time::Duration::from_secs(5), |c| c
            .len("Load_Balancer")
            == 2)
            .await
    );
    let generation = mon.generation();
    nb.ensure_load_balancers("ls", std::slice::from_ref(&first))
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        mon.generation(),
        generation,
        "an ensure without change wrote something"
    );
    let named = nb
        .get_load_balancers_named("mcs_default_web_tcp")
        .await
        .unwrap();
    assert_eq!(named.len(), 2, "ours and the foreign one: {named:?}");
    assert_eq!(
        nb.list_switch_load_balancers("ls").await.unwrap().len(),
        2,
        "both attached"
    );
    assert!(
        nb.list_switch_load_balancers("ls")
            .await
            .unwrap()
            .contains(&first)
    );

    assert_eq!(
        nb.list_owned_load_balancers(OWNER).await.unwrap(),
        ["mcs_default_web_tcp"],
        "the foreign row of the same name is not ours"
    );
    assert!(
        nb.list_owned_load_balancers("someone-else")
            .await
            .unwrap()
            .is_empty()
    );

    // New backends: the same row, updated in place.
    let second = web(&["10.112.0.6:8080"]);
    nb.ensure_load_balancers("ls", std::slice::from_ref(&second))
        .await
        .unwrap();
    let attached = nb.list_switch_load_balancers("ls").await.unwrap();
    assert_eq!(attached.len(), 2);
    assert!(attached.contains(&second) && !attached.contains(&first));
    assert_eq!(
        second.vips["10.127.0.10:80"], "10.112.0.6:8080",
        "one backend, no separator"
    );

    assert_eq!(
        nb.remove_load_balancers(OWNER, &["mcs_default_web_tcp"])
            .await
            .unwrap(),
        1
    );
    assert_eq!(
        nb.remove_load_balancers(OWNER, &["mcs_default_web_tcp"])
            .await
            .unwrap(),
        0
    );
    assert_eq!(
        nb.list_switch_load_balancers("ls").await.unwrap(),
        vec![foreign.clone()],
        "ours detached and gone, the foreign one still attached"
    );
    assert_eq!(
        nb.get_load_balancers_named("mcs_default_web_tcp")
            .await
            .unwrap(),
        vec![foreign]
    );
    assert!(
        nb.list_owned_load_balancers(OWNER)
            .await
            .unwrap()
            .is_empty()
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn load_balancers_need_an_owner_and_an_existing_switch() {
    let f = mk_nb("ovsdb-lb-refused");
    let nb = Northbound::new(mk_client(&f.server.remote()).await);
    let err = nb
        .ensure_load_balancers("nope", &[web(&["10.112.0.5:80"])])
        .await;
    assert!(err.is_err(), "no switch: {err:?}");
    nb.ensure_logical_switch(&LogicalSwitch::new("ls"))
        .await
        .unwrap();
    let mut unowned = web(&["10.112.0.5:80"]);
    unowned.external_ids.clear();
    assert!(nb.ensure_load_balancers("ls", &[unowned]).await.is_err());
    assert!(
        nb.get_load_balancers_named("mcs_default_web_tcp")
            .await
            .unwrap()
            .is_empty()
    );
}

/// A client pod reaches a clusterset VIP through the switch's load balancer, and both backends
/// answer: two chassis, a client and a server on one, a server on the other, a distributed
/// router as the pods' gateway (the switch balances, the router delivers the rewritten packet).
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_client_on_the_switch_reaches_the_vip_and_both_backends_answer() {
    use std::time::Duration;

    use nauti_ovn::{Atom, LogicalSwitchPort, OpenVswitch, Operation, OvsPort, Value};
    use nauti_testbed::ovn::{OvnCentral, OvnNode, plumb_pod_nic};
    use std::io::{Read, Write};
    use std::net::{TcpListener, TcpStream};
    use std::sync::Arc;
    use std::sync::atomic::{AtomicBool, Ordering};

    /// Ends the server threads however the test ends.
    struct StopOnDrop(Arc<AtomicBool>);
    impl Drop for StopOnDrop {
        fn drop(&mut self) {
            self.0.store(true, Ordering::Relaxed);
        }
    }

    /// Connects from `pod` to `addr`, port 80, and reads what the server says.
    fn fetch(pod: &Netns, addr: &'static str) -> Result<String, String> {
        pod.run_in(move || {
            let target = format!("{addr}:80").parse().map_err(|e| format!("{e}"))?;
            let mut conn = TcpStream::connect_timeout(&target, Duration::from_secs(2))
                .map_err(|e| e.to_string())?;
            conn.set_read_timeout(Some(Duration::from_secs(2)))
                .map_err(|e| e.to_string())?;
            let mut body = String::new();
            conn.read_to_string(&mut body).map_err(|e| e.to_string())?;
            Ok(body)
        })
        .map_err(|e| e.to_string())?
    }
    use nauti_testbed::{Netns, TestDir, require_root};

    require_root!();
    let dir = TestDir::new("ovsdb-lb-datapath").unwrap();
    let central = OvnCentral::start(&dir).unwrap();
    let n1 = Netns::new("olb1").unwrap();
    let n2 = Netns::new("olb2").unwrap();
    n1.veth_to("ul", &n2, "ul").unwrap();
    let node1 = OvnNode::start(&dir, &n1, "lb-node1", "ul", "198.18.1.1/24", &central).unwrap();
    let node2 = OvnNode::start(&dir, &n2, "lb-node2", "ul", "198.18.1.2/24", &central).unwrap();
    // client, server a (node 1), server b (node 2).
    let pods = [
        Netns::new("olbc").unwrap(),
        Netns::new("olba").unwrap(),
        Netns::new("olbb").unwrap(),
    ];
    let placement = [(&node1, &n1), (&node1, &n1), (&node2, &n2)];

    let nb = Northbound::new(mk_client(&central.nb_remote()).await);
    nb.ensure_logical_switch(&LogicalSwitch::new("nauti").with_subnet("10.112.0.0/16"))
        .await
        .unwrap();
    // The gateway: a distributed router with one port on the switch.
    nb.client()
        .transact(
            nauti_ovn::core::nb::DB,
            vec![
                Operation::insert_named(
                    "Logical_Router_Port",
                    nauti_ovn::Row::from([
                        ("name".to_owned(), Value::from("rtos")),
                        ("mac".to_owned(), Value::from("0a:58:0a:70:00:01")),
                        ("networks".to_owned(), Value::string_set(["10.112.0.1/16"])),
                    ]),
                    "lrp",
                ),
                Operation::insert(
                    "Logical_Router",
                    nauti_ovn::Row::from([
                        ("name".to_owned(), Value::from("gw")),
                        (
                            "ports".to_owned(),
                            Value::Set(vec![Atom::NamedUuid("lrp".into())]),
                        ),
                    ]),
                ),
            ],
        )
        .await
        .unwrap();
    let mut router_port = LogicalSwitchPort::new("stor")
        .with_kind("router")
        .with_option("router-port", "rtos");
    router_port.addresses = vec!["router".into()];
    let mut lsps = vec![router_port];
    lsps.extend((0..3).map(|i| {
        LogicalSwitchPort::new(format!("default_lb{i}")).with_address(
            &format!("0a:58:0a:70:00:{:02x}", i + 2),
            &[&format!("10.112.0.{}", i + 2)],
        )
    }));
    nb.ensure_logical_switch_ports("nauti", &lsps)
        .await
        .unwrap();

    for (i, pod) in pods.iter().enumerate() {
        let (node, node_ns) = placement[i];
        let host_if = format!("hp{i}");
        plumb_pod_nic(
            node_ns,
            pod,
            &host_if,
            &format!("0a:58:0a:70:00:{:02x}", i + 2),
            &format!("10.112.0.{}/16", i + 2),
        )
        .unwrap();
        pod.ip(&["route", "add", "default", "via", "10.112.0.1"])
            .unwrap();
        let ovs = OpenVswitch::new(mk_client(&node.db_remote()).await);
        ovs.ensure_port(
            "br-int",
            &OvsPort::new(&host_if).with_iface_id(&lsps[i + 1].name),
        )
        .await
        .unwrap();
    }
    for lsp in &lsps[1..] {
        central
            .wait_port_up(&lsp.name, Duration::from_secs(30))
            .unwrap();
    }

    // Two servers, each answering every connection with its own name; sockets opened inside
    // the pods' namespaces, served from plain threads that stop with the test.
    let stop = StopOnDrop(Arc::new(AtomicBool::new(false)));
    for (pod, name) in [(&pods[1], "server-a"), (&pods[2], "server-b")] {
        let listener = pod
            .run_in(|| TcpListener::bind("0.0.0.0:80"))
            .unwrap()
            .unwrap();
        listener.set_nonblocking(true).unwrap();
        let stopped = stop.0.clone();
        std::thread::spawn(move || {
            while !stopped.load(Ordering::Relaxed) {
                match listener.accept() {
                    Ok((mut conn, _)) => {
                        let _ = conn.write_all(name.as_bytes());
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
    }

    nb.ensure_load_balancers("nauti", &[web(&["10.112.0.3:80", "10.112.0.4:80"])])
        .await
        .unwrap();

    let (answers, last_error) = tokio::task::block_in_place(|| {
        assert!(
            pods[0].ping("10.112.0.3", 10),
            "client cannot reach server a"
        );
        assert!(
            pods[0].ping("10.112.0.4", 10),
            "client cannot reach server b"
        );
        let direct = fetch(&pods[0], "10.112.0.4");
        assert_eq!(
            direct.as_deref().map(str::trim).ok(),
            Some("server-b"),
            "server b without the VIP: {direct:?}"
        );
        let mut seen = std::collections::BTreeMap::<String, u32>::new();
        let mut last_error = None;
        // Bounded: 60 requests at most; a new source port each, so the hash spreads them.
        for _ in 0..60 {
            let result = fetch(&pods[0], "10.127.0.10");
            if let Ok(body) = &result {
                *seen.entry(body.trim().to_owned()).or_default() += 1;
            } else if let Err(error) = result {
                last_error = Some(error);
            }
            if seen.len() >= 2 && seen.values().sum::<u32>() >= 10 {
                break;
            }
        }
        (seen, last_error)
    });
    eprintln!("answers through the VIP: {answers:?}");
    assert_eq!(
        answers.keys().map(String::as_str).collect::<Vec<_>>(),
        ["server-a", "server-b"],
        "answers through the VIP: {answers:?}, last error {last_error:?}"
    );

    // Without the load balancer the VIP answers no more.
    assert_eq!(
        nb.remove_load_balancers(OWNER, &["mcs_default_web_tcp"])
            .await
            .unwrap(),
        1
    );
    // Bounded: the controllers get 10 s to take the flows away.
    let still_answering = tokio::task::block_in_place(|| {
        !nauti_testbed::process::wait_until(Duration::from_secs(10), || {
            fetch(&pods[0], "10.127.0.10").is_err()
        })
    });
    assert!(
        !still_answering,
        "the VIP still answers without its load balancer"
    );
    // The servers were up all along: the silence is the load balancer's absence.
    assert_eq!(fetch(&pods[0], "10.112.0.3").as_deref(), Ok("server-a"));
    drop(stop);
}
