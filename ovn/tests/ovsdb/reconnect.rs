use std::time::Duration;

use nauti_ovn::core::nb::DB;
use nauti_ovn::{
    Condition, Error, LogicalSwitch, MonitorRequest, Northbound, Operation, Row, Value,
};

use crate::{mk_client, mk_nb};

const WAIT: Duration = Duration::from_secs(15);

fn names(c: &nauti_ovn::Cache) -> Vec<String> {
    let mut v: Vec<String> = c
        .rows("Logical_Switch")
        .filter_map(|(_, r)| r.get("name").and_then(Value::as_str).map(str::to_owned))
        .collect();
    v.sort();
    v
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn after_a_server_restart_the_client_reconnects_and_the_cache_resyncs_without_losing_updates()
{
    let mut f = mk_nb("ovsdb-restart");
    let client = mk_client(&f.server.remote()).await;
    let nb = Northbound::new(client.clone());
    let mut mon = client
        .monitor(DB, vec![MonitorRequest::table("Logical_Switch")])
        .await
        .unwrap();
    for i in 0..20 {
        nb.ensure_logical_switch(&LogicalSwitch::new(format!("before-{i:02}")))
            .await
            .unwrap();
    }
    assert!(
        mon.wait_until(WAIT, |c| c.len("Logical_Switch") == 20)
            .await
    );

    f.server.stop();
    let mut state = client.state();
    tokio::time::timeout(WAIT, state.wait_for(|s| !s.connected))
        .await
        .unwrap()
        .unwrap();
    let err = client.echo().await.unwrap_err();
    assert!(matches!(err, Error::NotConnected { .. }), "{err}");

    // Change the database behind the client's back: one switch deleted, one added, one renamed.
    f.server
        .offline_transact(
            r#"["OVN_Northbound",
                {"op":"delete","table":"Logical_Switch","where":[["name","==","before-00"]]},
                {"op":"insert","table":"Logical_Switch","row":{"name":"while-down"}},
                {"op":"update","table":"Logical_Switch","where":[["name","==","before-01"]],"row":{"name":"renamed"}}]"#,
        )
        .unwrap();
    f.server.resume().unwrap();
    client.wait_connected(WAIT).await.unwrap();

    assert!(
        mon.wait_until(WAIT, |c| {
            let n = names(c);
            n.len() == 20
                && n.contains(&"while-down".to_owned())
                && n.contains(&"renamed".to_owned())
                && !n.contains(&"before-00".to_owned())
        })
        .await,
        "cache did not resync: {:?}",
        names(&mon.snapshot())
    );
    // Updates keep flowing on the new connection, and the cache equals the server's contents.
    nb.ensure_logical_switch(&LogicalSwitch::new("after"))
        .await
        .unwrap();
    assert!(
        mon.wait_until(WAIT, |c| c
            .find_by("Logical_Switch", "name", "after")
            .is_some())
            .await
    );
    let server_rows = client
        .transact(
            DB,
            vec![Operation::select("Logical_Switch", vec![], &["name"])],
        )
        .await
        .unwrap();
    let mut server_names: Vec<String> = server_rows[0]
        .rows
        .as_ref()
        .unwrap()
        .iter()
        .map(|r| r["name"].as_str().unwrap().to_owned())
        .collect();
    server_names.sort();
    assert_eq!(names(&mon.snapshot()), server_names);
    assert!(client.state().borrow().epoch >= 2);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_request_in_flight_when_the_server_dies_fails_with_a_clear_error() {
    let mut f = mk_nb("ovsdb-inflight");
    let client = mk_client(&f.server.remote()).await;
    let pending = client
        .start_transact(
            DB,
            vec![Operation::Wait {
                table: "Logical_Switch".into(),
                conditions: vec![Condition::eq("name", "never")],
                columns: vec!["name".into()],
                until_equal: true,
                rows: vec![Row::from([("name".to_owned(), Value::from("never"))])],
                timeout_ms: None,
            }],
        )
        .await
        .unwrap();
    tokio::time::sleep(Duration::from_millis(200)).await;
    f.server.kill();
    let err = pending.result().await.unwrap_err();
    assert!(
        matches!(err, Error::Disconnected { ref method, .. } if method == "transact"),
        "{err}"
    );
    assert!(err.to_string().contains("may or may not have been applied"));
    f.server.resume().unwrap();
    client.wait_connected(WAIT).await.unwrap();
    client.echo().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn connecting_to_a_missing_server_fails_with_the_reason() {
    let mut config = crate::mk_config("unix:/nonexistent/nauti/db.sock");
    config.connect_timeout = Duration::from_millis(300);
    let err = nauti_ovn::Client::connect(config).await.unwrap_err();
    assert!(matches!(err, Error::Connect { .. }), "{err}");
    assert!(
        err.to_string().contains("/nonexistent/nauti/db.sock"),
        "{err}"
    );
}
