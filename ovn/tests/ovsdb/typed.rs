use nauti_ovn::core::vswitch::DB as OVS_DB;
use nauti_ovn::{
    Atom, Error, LogicalSwitch, LogicalSwitchPort, MonitorRequest, Northbound, OpenVswitch,
    Operation, OvsPort, Row, Value,
};

use crate::{mk_client, mk_nb, mk_vswitch};

fn mk_port(i: u32) -> LogicalSwitchPort {
    let ip = format!("10.112.{}.{}", i / 250, i % 250 + 2);
    let mac = format!("0a:58:0a:70:{:02x}:{:02x}", i / 250, i % 250 + 2);
    LogicalSwitchPort::new(format!("default_pod-{i}"))
        .with_address(&mac, &[&ip])
        .with_external_id("pod", format!("pod-{i}"))
        .with_external_id("namespace", "default")
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ensuring_a_switch_twice_writes_once_and_reads_back_as_wanted() {
    let f = mk_nb("ovsdb-typed-ls");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    let mut mon = client
        .monitor(
            nauti_ovn::core::nb::DB,
            vec![MonitorRequest::table("Logical_Switch")],
        )
        .await
        .unwrap();
    let want = LogicalSwitch::new("nauti-east")
        .with_subnet("10.112.0.0/16")
        .with_exclude_ips(["10.112.0.1", "10.112.0.2..10.112.0.9"])
        .with_external_id("cluster", "east");
    let uuid = nb.ensure_logical_switch(&want).await.unwrap();
    assert!(
        mon.wait_until(std::time::Duration::from_secs(5), |c| c
            .len("Logical_Switch")
            == 1)
            .await
    );
    let generation = mon.generation();
    assert_eq!(nb.ensure_logical_switch(&want).await.unwrap(), uuid);
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    assert_eq!(
        mon.generation(),
        generation,
        "an ensure without change wrote something"
    );
    let got = nb.get_logical_switch("nauti-east").await.unwrap().unwrap();
    assert_eq!(got, want);
    assert_eq!(got.subnet(), Some("10.112.0.0/16"));
    assert_eq!(
        got.exclude_ips(),
        vec!["10.112.0.1", "10.112.0.2..10.112.0.9"]
    );

    let changed = want.clone().with_subnet("10.113.0.0/16");
    assert_eq!(nb.ensure_logical_switch(&changed).await.unwrap(), uuid);
    assert_eq!(
        nb.get_logical_switch("nauti-east").await.unwrap().unwrap(),
        changed
    );
    assert!(nb.remove_logical_switch("nauti-east").await.unwrap());
    assert!(!nb.remove_logical_switch("nauti-east").await.unwrap());
    assert_eq!(nb.get_logical_switch("nauti-east").await.unwrap(), None);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_are_ensured_in_batches_idempotently_and_removed_idempotently() {
    let f = mk_nb("ovsdb-typed-lsp");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client);
    nb.ensure_logical_switch(&LogicalSwitch::new("ls"))
        .await
        .unwrap();
    let ports: Vec<_> = (0..50).map(mk_port).collect();
    nb.ensure_logical_switch_ports("ls", &ports).await.unwrap();
    nb.ensure_logical_switch_ports("ls", &ports).await.unwrap();
    let listed = nb.list_logical_switch_ports("ls").await.unwrap();
    assert_eq!(listed.len(), 50);
    assert!(listed.contains(&ports[7]));

    let changed = ports[3].clone().with_kind("localport");
    nb.ensure_logical_switch_port("ls", &changed).await.unwrap();
    assert_eq!(
        nb.get_logical_switch_port(&changed.name).await.unwrap(),
        Some(changed)
    );

    let names: Vec<&str> = ports.iter().map(|p| p.name.as_str()).collect();
    assert_eq!(
        nb.remove_logical_switch_ports(&names[..10]).await.unwrap(),
        10
    );
    assert_eq!(
        nb.remove_logical_switch_ports(&names[..10]).await.unwrap(),
        0
    );
    assert!(!nb.remove_logical_switch_port(names[0]).await.unwrap());
    assert_eq!(nb.list_logical_switch_ports("ls").await.unwrap().len(), 40);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_port_ensured_into_another_switch_moves_there() {
    let f = mk_nb("ovsdb-typed-move");
    let nb = Northbound::new(mk_client(&f.server.remote()).await);
    for ls in ["a", "b"] {
        nb.ensure_logical_switch(&LogicalSwitch::new(ls))
            .await
            .unwrap();
    }
    nb.ensure_logical_switch_port("a", &mk_port(1))
        .await
        .unwrap();
    nb.ensure_logical_switch_port("b", &mk_port(1))
        .await
        .unwrap();
    assert!(nb.list_logical_switch_ports("a").await.unwrap().is_empty());
    assert_eq!(
        nb.list_logical_switch_ports("b").await.unwrap(),
        vec![mk_port(1)]
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn ports_of_a_missing_switch_are_refused_with_its_name() {
    let f = mk_nb("ovsdb-typed-noswitch");
    let nb = Northbound::new(mk_client(&f.server.remote()).await);
    let err = nb
        .ensure_logical_switch_port("ghost", &mk_port(1))
        .await
        .unwrap_err();
    assert!(matches!(err, Error::Plan(_)), "{err}");
    assert!(err.to_string().contains("ghost"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn concurrent_ensures_of_the_same_ports_converge_without_duplicates() {
    let f = mk_nb("ovsdb-typed-race");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    nb.ensure_logical_switch(&LogicalSwitch::new("ls"))
        .await
        .unwrap();
    let ports: Vec<_> = (0..20).map(mk_port).collect();
    let mut tasks = Vec::new();
    for _ in 0..4 {
        let nb = Northbound::new(mk_client(&f.server.remote()).await);
        let ports = ports.clone();
        tasks.push(tokio::spawn(async move {
            nb.ensure_logical_switch_ports("ls", &ports).await
        }));
    }
    for t in tasks {
        t.await.unwrap().unwrap();
    }
    assert_eq!(nb.list_logical_switch_ports("ls").await.unwrap().len(), 20);
    let all = client
        .transact(
            nauti_ovn::core::nb::DB,
            vec![Operation::select("Logical_Switch_Port", vec![], &["name"])],
        )
        .await
        .unwrap();
    assert_eq!(all[0].rows.as_ref().unwrap().len(), 20);
}

/// An Open_vSwitch database with the root row and `br-int`, as ovs-vsctl init + add-br leave it.
async fn mk_bridge(client: &nauti_ovn::Client) {
    client
        .transact(
            OVS_DB,
            vec![
                Operation::insert_named(
                    "Bridge",
                    Row::from([("name".to_owned(), Value::from("br-int"))]),
                    "br",
                ),
                Operation::insert(
                    "Open_vSwitch",
                    Row::from([(
                        "bridges".to_owned(),
                        Value::Set(vec![Atom::NamedUuid("br".into())]),
                    )]),
                ),
            ],
        )
        .await
        .unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_ovs_port_with_its_iface_id_is_ensured_updated_and_removed_idempotently() {
    let f = mk_vswitch("ovsdb-typed-ovs");
    let client = mk_client(&f.server.remote()).await;
    mk_bridge(&client).await;
    let ovs = OpenVswitch::new(client);
    let want = OvsPort::new("veth-pod1").with_iface_id("default_pod-1");
    ovs.ensure_port("br-int", &want).await.unwrap();
    ovs.ensure_port("br-int", &want).await.unwrap();
    assert_eq!(
        ovs.get_port("br-int", "veth-pod1").await.unwrap(),
        Some(want.clone())
    );

    let changed = OvsPort::new("veth-pod1").with_iface_id("default_pod-2");
    ovs.ensure_port("br-int", &changed).await.unwrap();
    assert_eq!(
        ovs.get_port("br-int", "veth-pod1")
            .await
            .unwrap()
            .unwrap()
            .iface_id(),
        Some("default_pod-2")
    );

    assert!(ovs.remove_port("veth-pod1").await.unwrap());
    assert!(!ovs.remove_port("veth-pod1").await.unwrap());
    assert_eq!(ovs.get_port("br-int", "veth-pod1").await.unwrap(), None);
    let err = ovs.ensure_port("br-nope", &want).await.unwrap_err();
    assert!(err.to_string().contains("br-nope"), "{err}");
}
