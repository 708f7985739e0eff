use std::time::Duration;

use nauti_ovn::core::nb::DB;
use nauti_ovn::{Condition, LogicalSwitch, LogicalSwitchPort, MonitorRequest, Northbound, Value};

use crate::{mk_client, mk_nb};

const WAIT: Duration = Duration::from_secs(10);

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_cache_starts_with_the_existing_rows_and_follows_inserts_modifies_and_deletes() {
    let f = mk_nb("ovsdb-monitor");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    nb.ensure_logical_switch(&LogicalSwitch::new("before"))
        .await
        .unwrap();

    let mut mon = client
        .monitor(
            DB,
            vec![
                MonitorRequest::table("Logical_Switch"),
                MonitorRequest::table("Logical_Switch_Port"),
            ],
        )
        .await
        .unwrap();
    assert!(mon.read(|c| c.find_by("Logical_Switch", "name", "before").is_some()));

    let ls = LogicalSwitch::new("ls1").with_subnet("10.112.0.0/16");
    nb.ensure_logical_switch(&ls).await.unwrap();
    let port = LogicalSwitchPort::new("p1")
        .with_address("0a:58:0a:70:00:02", &["10.112.0.2"])
        .with_external_id("pod", "a");
    nb.ensure_logical_switch_port("ls1", &port).await.unwrap();
    assert!(
        mon.wait_until(WAIT, |c| {
            let Some((_, ls)) = c.find_by("Logical_Switch", "name", "ls1") else {
                return false;
            };
            let Some((uuid, _)) = c.find_by("Logical_Switch_Port", "name", "p1") else {
                return false;
            };
            ls.get("ports").is_some_and(|p| p.uuids().contains(uuid))
        })
        .await
    );

    // A modify of a map column (update2 diff) and of a set column.
    let changed = port
        .clone()
        .with_external_id("pod", "b")
        .with_external_id("node", "n1");
    nb.ensure_logical_switch_port("ls1", &changed)
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| {
            c.find_by("Logical_Switch_Port", "name", "p1")
                .is_some_and(|(_, r)| LogicalSwitchPort::from_row(r) == changed)
        })
        .await
    );

    nb.remove_logical_switch_port("p1").await.unwrap();
    nb.remove_logical_switch("before").await.unwrap();
    assert!(
        mon.wait_until(WAIT, |c| c.len("Logical_Switch_Port") == 0
            && c.len("Logical_Switch") == 1)
            .await
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_conditional_monitor_caches_only_matching_rows_and_chosen_columns() {
    let f = mk_nb("ovsdb-monitor-cond");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    for name in ["a", "b"] {
        nb.ensure_logical_switch(&LogicalSwitch::new(name).with_external_id("k", name))
            .await
            .unwrap();
    }
    let mon = client
        .monitor(
            DB,
            vec![
                MonitorRequest::table("Logical_Switch")
                    .columns(&["name"])
                    .filter(vec![Condition::eq("name", "a")]),
            ],
        )
        .await
        .unwrap();
    let rows: Vec<_> = mon.read(|c| c.rows("Logical_Switch").map(|(_, r)| r.clone()).collect());
    assert_eq!(rows.len(), 1);
    assert_eq!(rows[0]["name"], Value::from("a"));
    assert!(!rows[0].contains_key("external_ids"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_canceled_monitor_stops_following_the_database() {
    let f = mk_nb("ovsdb-monitor-cancel");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    nb.ensure_logical_switch(&LogicalSwitch::new("one"))
        .await
        .unwrap();
    let mut live = client
        .monitor(DB, vec![MonitorRequest::table("Logical_Switch")])
        .await
        .unwrap();
    let canceled = client
        .monitor(DB, vec![MonitorRequest::table("Logical_Switch")])
        .await
        .unwrap();
    canceled.cancel().await.unwrap();
    let generation = canceled.generation();

    nb.ensure_logical_switch(&LogicalSwitch::new("two"))
        .await
        .unwrap();
    assert!(
        live.wait_until(WAIT, |c| c.len("Logical_Switch") == 2)
            .await
    );
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert_eq!(canceled.generation(), generation);
    assert_eq!(canceled.snapshot().len("Logical_Switch"), 1);
}
