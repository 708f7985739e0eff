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
