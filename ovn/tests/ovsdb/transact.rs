use nauti_ovn::core::nb::DB;
use nauti_ovn::core::ops::TransactError;
use nauti_ovn::{Atom, Condition, Error, ErrorKind, Mutation, Operation, Row, Value};
use serde_json::json;

use crate::{mk_client, mk_nb};

fn row(pairs: &[(&str, Value)]) -> Row {
    pairs
        .iter()
        .map(|(k, v)| ((*k).to_owned(), v.clone()))
        .collect()
}

fn names(rows: &[Row]) -> Vec<String> {
    let mut v: Vec<String> = rows
        .iter()
        .filter_map(|r| r["name"].as_str().map(str::to_owned))
        .collect();
    v.sort();
    v
}

async fn switch_names(client: &nauti_ovn::Client) -> Vec<String> {
    let r = client
        .transact(
            DB,
            vec![Operation::select("Logical_Switch", vec![], &["name"])],
        )
        .await
        .unwrap();
    names(r[0].rows.as_ref().unwrap())
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn list_dbs_get_schema_and_echo_answer_from_a_real_server() {
    let f = mk_nb("ovsdb-basics");
    let client = mk_client(&f.server.remote()).await;
    assert!(
        client
            .list_dbs()
            .await
            .unwrap()
            .contains(&"OVN_Northbound".to_owned())
    );
    let schema = client.get_schema(DB).await.unwrap();
    assert!(schema.tables.contains_key("Logical_Switch_Port"));
    client.echo().await.unwrap();
    let err = client.get_schema("Nope").await.unwrap_err();
    assert_eq!(
        err.server_kind(),
        Some(&ErrorKind::UnknownDatabase),
        "{err}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn insert_with_named_uuids_select_update_mutate_delete_wait_and_comment_work_together() {
    let f = mk_nb("ovsdb-ops");
    let client = mk_client(&f.server.remote()).await;
    let results = client
        .transact(
            DB,
            vec![
                Operation::Comment("nauti test".into()),
                Operation::insert_named(
                    "Logical_Switch_Port",
                    row(&[
                        ("name", "p1".into()),
                        (
                            "addresses",
                            Value::string_set(["0a:58:0a:70:00:02 10.112.0.2"]),
                        ),
                    ]),
                    "p1",
                ),
                Operation::insert(
                    "Logical_Switch",
                    row(&[
                        ("name", "ls1".into()),
                        ("ports", Value::Set(vec![Atom::NamedUuid("p1".into())])),
                        (
                            "other_config",
                            Value::string_map([("subnet", "10.112.0.0/16")]),
                        ),
                    ]),
                ),
            ],
        )
        .await
        .unwrap();
    let ls_uuid = results[2].uuid.clone().unwrap();
    let port_uuid = results[1].uuid.clone().unwrap();

    let r = client
        .transact(
            DB,
            vec![
                Operation::Wait {
                    table: "Logical_Switch".into(),
                    conditions: vec![Condition::uuid(&ls_uuid)],
                    columns: vec!["name".into()],
                    until_equal: true,
                    rows: vec![row(&[("name", "ls1".into())])],
                    timeout_ms: Some(0),
                },
                Operation::update(
                    "Logical_Switch",
                    vec![Condition::eq("name", "ls1")],
                    row(&[("external_ids", Value::string_map([("owner", "nauti")]))]),
                ),
                Operation::mutate(
                    "Logical_Switch",
                    vec![Condition::uuid(&ls_uuid)],
                    vec![Mutation::insert(
                        "other_config",
                        Value::string_map([("exclude_ips", "10.112.0.1")]),
                    )],
                ),
                Operation::select(
                    "Logical_Switch",
                    vec![Condition::includes(
                        "ports",
                        Value::Atom(Atom::Uuid(port_uuid.clone())),
                    )],
                    &[],
                ),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r[1].count, Some(1));
    assert_eq!(r[2].count, Some(1));
    let ls = &r[3].rows.as_ref().unwrap()[0];
    assert_eq!(ls["external_ids"].string_map_entries()["owner"], "nauti");
    assert_eq!(
        ls["other_config"].string_map_entries()["exclude_ips"],
        "10.112.0.1"
    );
    assert_eq!(ls["ports"], Value::uuid_set([port_uuid.clone()]));

    let r = client
        .transact(
            DB,
            vec![
                Operation::mutate(
                    "Logical_Switch",
                    vec![Condition::uuid(&ls_uuid)],
                    vec![Mutation::delete(
                        "ports",
                        Value::Atom(Atom::Uuid(port_uuid)),
                    )],
                ),
                Operation::delete("Logical_Switch", vec![Condition::eq("name", "ls1")]),
            ],
        )
        .await
        .unwrap();
    assert_eq!(r[1].count, Some(1));
    let ports = client
        .transact(
            DB,
            vec![Operation::select("Logical_Switch_Port", vec![], &[])],
        )
        .await
        .unwrap();
    assert!(
        ports[0].rows.as_ref().unwrap().is_empty(),
        "unreferenced port not collected"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_transaction_whose_commit_violates_an_index_fails_as_a_whole() {
    let f = mk_nb("ovsdb-atomic-index");
    let client = mk_client(&f.server.remote()).await;
    let lsp = |n: &str| row(&[("name", "dup".into()), ("type", n.into())]);
    let err = client
        .transact(
            DB,
            vec![
                Operation::insert_named("Logical_Switch_Port", lsp(""), "a"),
                Operation::insert_named("Logical_Switch_Port", lsp("localport"), "b"),
                Operation::insert(
                    "Logical_Switch",
                    row(&[
                        ("name", "atomic".into()),
                        (
                            "ports",
                            Value::Set(vec![
                                Atom::NamedUuid("a".into()),
                                Atom::NamedUuid("b".into()),
                            ]),
                        ),
                    ]),
                ),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(err, Error::Transact(TransactError::Commit(_))),
        "{err}"
    );
    assert_eq!(err.server_kind(), Some(&ErrorKind::ConstraintViolation));
    let details = err
        .server_error()
        .unwrap()
        .details
        .clone()
        .unwrap_or_default();
    assert!(
        details.contains("dup"),
        "details name the duplicate: {err:?}"
    );
    assert!(
        switch_names(&client).await.is_empty(),
        "the switch of the failed transaction exists"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_failing_operation_in_the_middle_undoes_the_operations_before_it() {
    let f = mk_nb("ovsdb-atomic-op");
    let client = mk_client(&f.server.remote()).await;
    let err = client
        .transact(
            DB,
            vec![
                Operation::insert("Logical_Switch", row(&[("name", "first".into())])),
                Operation::Wait {
                    table: "Logical_Switch".into(),
                    conditions: vec![Condition::eq("name", "never")],
                    columns: vec!["name".into()],
                    until_equal: true,
                    rows: vec![row(&[("name", "never".into())])],
                    timeout_ms: Some(0),
                },
                Operation::insert("Logical_Switch", row(&[("name", "second".into())])),
            ],
        )
        .await
        .unwrap_err();
    assert!(
        matches!(
            err,
            Error::Transact(TransactError::Operation { index: 1, .. })
        ),
        "{err}"
    );
    assert_eq!(err.server_kind(), Some(&ErrorKind::TimedOut));
    assert!(switch_names(&client).await.is_empty());
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_dangling_strong_reference_is_a_typed_referential_integrity_error() {
    let f = mk_nb("ovsdb-refint");
    let client = mk_client(&f.server.remote()).await;
    let ghost = nauti_ovn::Uuid::parse("0badc0de-0000-4000-8000-000000000001").unwrap();
    let err = client
        .transact(
            DB,
            vec![Operation::insert(
                "Logical_Switch",
                row(&[("name", "ls".into()), ("ports", Value::uuid_set([ghost]))]),
            )],
        )
        .await
        .unwrap_err();
    assert_eq!(
        err.server_kind(),
        Some(&ErrorKind::ReferentialIntegrityViolation),
        "{err}"
    );
    assert!(err.to_string().contains("referential integrity violation"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_blocking_wait_is_canceled_by_cancel() {
    let f = mk_nb("ovsdb-cancel");
    let client = mk_client(&f.server.remote()).await;
    let pending = client
        .start_transact(
            DB,
            vec![Operation::Wait {
                table: "Logical_Switch".into(),
                conditions: vec![Condition::eq("name", "never")],
                columns: vec!["name".into()],
                until_equal: true,
                rows: vec![row(&[("name", "never".into())])],
                timeout_ms: None,
            }],
        )
        .await
        .unwrap();
    tokio::time::sleep(std::time::Duration::from_millis(200)).await;
    pending.cancel().unwrap();
    let err = pending.result().await.unwrap_err();
    assert!(
        matches!(err, Error::Canceled { .. }) || err.server_kind() == Some(&ErrorKind::Canceled),
        "{err}"
    );
    // The connection is still usable.
    client.echo().await.unwrap();
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unknown_tables_columns_and_wrong_types_are_refused_locally_and_by_the_server() {
    let f = mk_nb("ovsdb-bad-ops");
    let client = mk_client(&f.server.remote()).await;
    let bad = [
        Operation::insert("Nope", Row::new()),
        Operation::insert("Logical_Switch", row(&[("nope", "x".into())])),
        Operation::insert("Logical_Switch", row(&[("name", 7.into())])),
        Operation::insert(
            "Logical_Switch_Port",
            row(&[
                ("name", "p".into()),
                ("tag_request", Value::Set(vec![Atom::Integer(5000)])),
            ]),
        ),
    ];
    for op in bad {
        let local = client.transact(DB, vec![op.clone()]).await.unwrap_err();
        assert!(matches!(local, Error::Schema(_)), "{local}");
        let remote = client.transact_unchecked(DB, vec![op]).await.unwrap_err();
        assert!(
            remote.server_error().is_some(),
            "server accepted a bad operation: {remote}"
        );
    }
    // A raw request with a malformed operation gets the server's syntax error, typed.
    let err = client
        .request("transact", vec![json!(DB), json!({"op": "explode"})])
        .await
        .unwrap();
    assert_eq!(err[0]["error"], json!("syntax error"));
}
