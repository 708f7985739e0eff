use super::*;
use serde_json::json;

const U1: &str = "11111111-1111-1111-1111-111111111111";
const U2: &str = "22222222-2222-2222-2222-222222222222";

fn mk_cache() -> Cache {
    let text = std::fs::read_to_string("/usr/share/ovn/ovn-nb.ovsschema").unwrap();
    let schema = DatabaseSchema::from_json(&serde_json::from_str(&text).unwrap()).unwrap();
    Cache::new(Arc::new(schema))
}

fn u(s: &str) -> Uuid {
    Uuid::parse(s).unwrap()
}

#[test]
fn initial_and_insert_rows_are_stored_with_absent_columns_defaulted() {
    let mut c = mk_cache();
    let s = c
        .apply_update2(&json!({"Logical_Switch_Port": {
            U1: {"initial": {"name": "p1", "addresses": "m i"}},
            U2: {"insert": {"name": "p2"}}
        }}))
        .unwrap();
    assert_eq!(s.inserted, 2);
    assert_eq!(c.len("Logical_Switch_Port"), 2);
    assert_eq!(
        c.row("Logical_Switch_Port", &u(U1)).unwrap()["addresses"],
        Value::string_set(["m i"])
    );
    assert_eq!(
        c.value("Logical_Switch_Port", &u(U2), "addresses"),
        Some(Value::empty_set())
    );
    assert_eq!(
        c.value("Logical_Switch_Port", &u(U2), "type"),
        Some(Value::from(""))
    );
    assert_eq!(
        c.find_by("Logical_Switch_Port", "name", "p2").unwrap().0,
        &u(U2)
    );
}

#[test]
fn modify_toggles_set_elements_and_merges_map_entries() {
    let mut c = mk_cache();
    c.apply_update2(&json!({"Logical_Switch_Port": {U1: {"insert": {
        "name": "p1",
        "addresses": ["set", ["a", "b"]],
        "external_ids": ["map", [["keep", "1"], ["drop", "2"], ["change", "3"]]]
    }}}}))
    .unwrap();
    c.apply_update2(&json!({"Logical_Switch_Port": {U1: {"modify": {
        "name": "p1-renamed",
        "addresses": ["set", ["b", "c"]],
        "external_ids": ["map", [["drop", "2"], ["change", "4"], ["new", "5"]]],
        "up": true
    }}}}))
    .unwrap();
    let row = c.row("Logical_Switch_Port", &u(U1)).unwrap();
    assert_eq!(row["name"], Value::from("p1-renamed"));
    assert_eq!(row["addresses"], Value::string_set(["a", "c"]));
    assert_eq!(
        row["external_ids"].string_map_entries(),
        [("keep", "1"), ("change", "4"), ("new", "5")]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect()
    );
    assert_eq!(row["up"], Value::Set(vec![Atom::Boolean(true)]));
}

#[test]
fn an_optional_column_diff_carries_the_new_value() {
    let mut c = mk_cache();
    c.apply_update2(&json!({"Logical_Switch_Port": {U1: {"insert": {"name": "p", "up": false}}}}))
        .unwrap();
    c.apply_update2(&json!({"Logical_Switch_Port": {U1: {"modify": {"up": true}}}}))
        .unwrap();
    assert_eq!(
        c.value("Logical_Switch_Port", &u(U1), "up"),
        Some(Value::Set(vec![Atom::Boolean(true)]))
    );
    c.apply_update2(&json!({"Logical_Switch_Port": {U1: {"modify": {"up": ["set", []]}}}}))
        .unwrap();
    assert_eq!(
        c.value("Logical_Switch_Port", &u(U1), "up"),
        Some(Value::empty_set())
    );
}

#[test]
fn delete_removes_the_row() {
    let mut c = mk_cache();
    c.apply_update2(&json!({"Logical_Switch": {U1: {"insert": {"name": "ls"}}}}))
        .unwrap();
    let s = c
        .apply_update2(&json!({"Logical_Switch": {U1: {"delete": null}}}))
        .unwrap();
    assert_eq!(s.deleted, 1);
    assert!(c.is_empty());
}

#[test]
fn monitor_v1_updates_insert_modify_and_delete() {
    let mut c = mk_cache();
    c.apply_update(&json!({"Logical_Switch": {U1: {"new": {"name": "ls", "ports": ["set", []]}}}}))
        .unwrap();
    c.apply_update(&json!({"Logical_Switch": {U1: {
        "old": {"ports": ["set", []]},
        "new": {"name": "ls", "ports": ["uuid", U2]}
    }}}))
    .unwrap();
    assert_eq!(
        c.value("Logical_Switch", &u(U1), "ports").unwrap().uuids(),
        vec![u(U2)]
    );
    c.apply_update(&json!({"Logical_Switch": {U1: {"old": {"name": "ls"}}}}))
        .unwrap();
    assert_eq!(c.len("Logical_Switch"), 0);
}

#[test]
fn malformed_or_schema_violating_updates_are_rejected_without_panicking() {
    let mut c = mk_cache();
    for bad in [
        json!(null),
        json!({"Nope": {}}),
        json!({"Logical_Switch": []}),
        json!({"Logical_Switch": {"not-a-uuid": {"insert": {}}}}),
        json!({"Logical_Switch": {U1: {"explode": {}}}}),
        json!({"Logical_Switch": {U1: {"insert": {}, "delete": null}}}),
        json!({"Logical_Switch": {U1: {"insert": {"nope": 1}}}}),
        json!({"Logical_Switch": {U1: {"insert": {"name": 1}}}}),
        json!({"Logical_Switch": {U1: {"modify": {"ports": ["map", []]}}}}),
        json!({"Logical_Switch": {U1: {"modify": 3}}}),
    ] {
        assert!(c.apply_update2(&bad).is_err(), "{bad}");
    }
    assert!(
        c.apply_update(&json!({"Logical_Switch": {U1: {}}}))
            .is_err()
    );
}

/// A diff against a large set or map was applied with a linear search per element (quadratic:
/// seconds for these sizes); elements are now indexed, with the same result and order.
#[test]
fn large_set_and_map_diffs_apply_in_linear_time_keeping_order() {
    let schema = mk_cache();
    let ty = schema
        .schema()
        .column_type("Logical_Switch_Port", "external_ids")
        .unwrap();
    let n = 40_000;
    let started = std::time::Instant::now();
    let old = Value::string_map((0..n).map(|i| (format!("k{i}"), "v".to_owned())));
    // Removes the even keys (same value), changes the odd ones, adds as many new ones.
    let diff = Value::string_map(
        (0..n)
            .map(|i| {
                let value = if i % 2 == 0 { "v" } else { "w" };
                (format!("k{i}"), value.to_owned())
            })
            .chain((n..2 * n).map(|i| (format!("k{i}"), "x".to_owned()))),
    );
    let Value::Map(new) = apply_diff(&ty, old, diff).unwrap() else {
        panic!("not a map")
    };
    assert_eq!(new.len(), n / 2 + n);
    assert_eq!(new[0], (Atom::from("k1"), Atom::from("w")));
    assert_eq!(new[n / 2], (Atom::from(format!("k{n}")), Atom::from("x")));

    let ty = schema
        .schema()
        .column_type("Logical_Switch", "ports")
        .unwrap();
    let uuid = |i: usize| {
        Atom::Uuid(Uuid::parse(&format!("{i:08x}-0000-0000-0000-000000000000")).unwrap())
    };
    let old = Value::Set((0..n).map(uuid).collect());
    let toggles = Value::Set((0..n).step_by(2).chain(n..n + 10).map(uuid).collect());
    let Value::Set(new) = apply_diff(&ty, old, toggles).unwrap() else {
        panic!("not a set")
    };
    assert_eq!(new.len(), n / 2 + 10);
    assert_eq!(new[0], uuid(1));
    assert_eq!(new[n / 2], uuid(n));
    // Backstop only.
    assert!(started.elapsed() < std::time::Duration::from_secs(20));
}
