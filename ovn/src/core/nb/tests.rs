use super::*;
use crate::core::ops::Operation;

fn u(n: u8) -> Uuid {
    Uuid::parse(&format!("{n:08x}-0000-0000-0000-000000000000")).unwrap()
}

fn mk_port(name: &str) -> LogicalSwitchPort {
    LogicalSwitchPort::new(name)
        .with_address("0a:58:0a:70:00:05", &["10.112.0.5"])
        .with_external_id("pod", "nginx")
}

#[test]
fn a_missing_switch_is_inserted_behind_a_guard_against_a_concurrent_insert() {
    let want = LogicalSwitch::new("ls")
        .with_subnet("10.112.0.0/16")
        .with_exclude_ips(["10.112.0.1"]);
    let ops = plan_ensure_switch(None, &want);
    assert!(matches!(ops[0], Operation::Wait { ref rows, .. } if rows.is_empty()));
    assert!(matches!(ops[1], Operation::Insert { .. }));
    assert_eq!(want.exclude_ips(), vec!["10.112.0.1"]);
}

#[test]
fn a_switch_already_as_wanted_needs_no_write() {
    let want = LogicalSwitch::new("ls").with_subnet("10.112.0.0/16");
    let current = (u(1), want.to_row());
    assert!(plan_ensure_switch(Some(&current), &want).is_empty());
    let changed = want.clone().with_external_id("k", "v");
    assert!(matches!(
        plan_ensure_switch(Some(&current), &changed)[..],
        [Operation::Update { .. }]
    ));
}

#[test]
fn new_ports_are_inserted_and_added_to_the_switch_in_one_mutate() {
    let snap = PortsSnapshot {
        switch: Some((u(1), vec![])),
        ports: vec![None, None],
    };
    let ops = plan_ensure_ports("ls", &snap, &[mk_port("a"), mk_port("b")]).unwrap();
    assert_eq!(ops.len(), 4);
    let Operation::Mutate { mutations, .. } = &ops[3] else {
        panic!("{ops:?}")
    };
    assert_eq!(
        mutations[0].value,
        Value::Set(vec![
            Atom::NamedUuid("lsp0".into()),
            Atom::NamedUuid("lsp1".into())
        ])
    );
}

#[test]
fn ports_already_as_wanted_need_no_write() {
    let snap = PortsSnapshot {
        switch: Some((u(1), vec![u(2)])),
        ports: vec![Some((u(2), mk_port("a")))],
    };
    assert!(
        plan_ensure_ports("ls", &snap, &[mk_port("a")])
            .unwrap()
            .is_empty()
    );
}

#[test]
fn a_changed_port_is_updated_behind_a_guard() {
    let snap = PortsSnapshot {
        switch: Some((u(1), vec![u(2)])),
        ports: vec![Some((u(2), mk_port("a")))],
    };
    let want = mk_port("a").with_kind("localport");
    let ops = plan_ensure_ports("ls", &snap, &[want]).unwrap();
    assert!(matches!(
        ops[..],
        [Operation::Wait { .. }, Operation::Update { .. }]
    ));
}

#[test]
fn a_port_in_another_switch_is_moved() {
    let snap = PortsSnapshot {
        switch: Some((u(1), vec![])),
        ports: vec![Some((u(2), mk_port("a")))],
    };
    let ops = plan_ensure_ports("ls", &snap, &[mk_port("a")]).unwrap();
    assert!(matches!(
        ops[..],
        [
            Operation::Mutate { .. },
            Operation::Wait { .. },
            Operation::Mutate { .. }
        ]
    ));
}

#[test]
fn ports_of_a_missing_switch_are_refused() {
    let snap = PortsSnapshot {
        switch: None,
        ports: vec![None],
    };
    assert_eq!(
        plan_ensure_ports("ls", &snap, &[mk_port("a")]),
        Err(PlanError::NoSuchSwitch("ls".into()))
    );
}

#[test]
fn removing_ports_detaches_and_deletes_each_existing_one() {
    let ops = plan_remove_ports(&[u(2)]);
    assert!(matches!(
        ops[..],
        [Operation::Mutate { .. }, Operation::Delete { .. }]
    ));
    assert!(plan_remove_ports(&[]).is_empty());
}

#[test]
fn only_the_deletes_count_as_removed_rows() {
    let counted = |n| OperationResult {
        count: Some(n),
        ..Default::default()
    };
    // A mutate that detached from two switches, a delete that found its row, a mutate that
    // found nothing, a delete that lost the race.
    let results = [counted(2), counted(1), counted(0), counted(0)];
    assert_eq!(count_deleted(&results), 1);
    assert_eq!(count_deleted(&[]), 0);
}

#[test]
fn references_come_from_the_first_selected_row_only() {
    let mut row = Row::new();
    row.insert(
        "ports".into(),
        Value::Set(vec![Atom::Uuid(u(1)), Atom::Uuid(u(2))]),
    );
    let selected = OperationResult {
        rows: Some(vec![row]),
        ..Default::default()
    };
    assert_eq!(
        referenced_uuids(std::slice::from_ref(&selected), "ports"),
        vec![u(1), u(2)]
    );
    assert!(referenced_uuids(&[selected], "load_balancer").is_empty());
    let none = OperationResult {
        rows: Some(vec![]),
        ..Default::default()
    };
    assert!(referenced_uuids(&[none], "ports").is_empty());
}

#[test]
fn port_rows_read_back_into_the_same_port() {
    let p = mk_port("a").with_option("requested-chassis", "node1");
    assert_eq!(LogicalSwitchPort::from_row(&p.to_row()), p);
}
