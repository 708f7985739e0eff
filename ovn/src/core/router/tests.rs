use super::*;

fn uuid(n: u8) -> Uuid {
    Uuid::parse(&format!("{n:08x}-0000-0000-0000-000000000000")).unwrap()
}

fn gateway_port() -> RouterPort {
    RouterPort::new("nauti-east-gw", "0a:58:0a:70:00:01", "10.112.0.1/16")
        .with_external_id("nauti.io/owner", "cnf")
}

fn ids() -> BTreeMap<String, String> {
    BTreeMap::from([("nauti.io/cluster".to_owned(), "east".to_owned())])
}

fn tables(ops: &[Operation]) -> Vec<String> {
    ops.iter()
        .map(|op| op.to_json()["op"].as_str().unwrap().to_owned())
        .collect()
}

#[test]
fn a_missing_router_is_created_with_its_port_in_one_plan() {
    let snapshot = RouterSnapshot {
        router: None,
        ports: vec![None],
    };
    let ops = plan_ensure_router("nauti-east", &ids(), &snapshot, &[gateway_port()]).unwrap();
    assert_eq!(tables(&ops), ["wait", "insert", "wait", "insert"]);
    let router = ops[3].to_json();
    assert_eq!(router["table"], LOGICAL_ROUTER);
    assert_eq!(router["row"]["name"], "nauti-east");
    assert_eq!(
        router["row"]["ports"],
        serde_json::json!(["set", [["named-uuid", "lrp0"]]])
    );
}

#[test]
fn a_router_as_wanted_gets_no_writes_and_a_changed_port_one_guarded_update() {
    let mut snapshot = RouterSnapshot {
        router: Some((uuid(1), vec![uuid(2)], ids())),
        ports: vec![Some((uuid(2), gateway_port()))],
    };
    assert!(
        plan_ensure_router("nauti-east", &ids(), &snapshot, &[gateway_port()])
            .unwrap()
            .is_empty()
    );
    snapshot.ports[0].as_mut().unwrap().1.mac = "0a:58:0a:70:00:09".into();
    let ops = plan_ensure_router("nauti-east", &ids(), &snapshot, &[gateway_port()]).unwrap();
    assert_eq!(tables(&ops), ["wait", "update"]);
}

#[test]
fn a_port_of_another_router_moves_to_this_one() {
    let snapshot = RouterSnapshot {
        router: Some((uuid(1), vec![], ids())),
        ports: vec![Some((uuid(2), gateway_port()))],
    };
    let ops = plan_ensure_router("nauti-east", &ids(), &snapshot, &[gateway_port()]).unwrap();
    assert_eq!(tables(&ops), ["mutate", "wait", "mutate"]);
}

fn routes(own: &[(u8, &str, &str)], foreign: &[(u8, &str, &str)]) -> RoutesSnapshot {
    let row = |(n, prefix, hop): &(u8, &str, &str)| (uuid(*n), StaticRoute::new(*prefix, *hop));
    RoutesSnapshot {
        router: Some((uuid(1), own.iter().map(|(n, ..)| uuid(*n)).collect())),
        routes: own.iter().chain(foreign).map(row).collect(),
    }
}

#[test]
fn the_route_as_wanted_needs_no_write() {
    let snapshot = routes(&[(2, "10.112.0.0/12", "10.112.0.7")], &[]);
    let want = StaticRoute::new("10.112.0.0/12", "10.112.0.7");
    assert!(plan_route("r", &snapshot, &want).unwrap().is_empty());
}

#[test]
fn a_new_next_hop_replaces_every_route_of_the_prefix_under_a_guard() {
    let snapshot = routes(
        &[
            (2, "10.112.0.0/12", "10.112.0.7"),
            (3, "10.112.0.0/12", "10.112.0.8"),
            (4, "192.0.2.0/24", "10.112.0.9"),
        ],
        &[(5, "10.112.0.0/12", "10.112.0.7")],
    );
    let want = StaticRoute::new("10.112.0.0/12", "10.112.1.4");
    let ops = plan_route("r", &snapshot, &want).unwrap();
    assert_eq!(tables(&ops), ["wait", "mutate", "insert", "mutate"]);
    let delete = ops[1].to_json();
    let removed = delete["mutations"][0][2][1].as_array().unwrap().len();
    assert_eq!(
        removed, 2,
        "only this router's routes of the prefix go: {delete}"
    );
}

#[test]
fn a_route_on_a_missing_router_is_an_error_naming_it() {
    let snapshot = RoutesSnapshot {
        router: None,
        routes: vec![],
    };
    let err = plan_route(
        "nauti-east",
        &snapshot,
        &StaticRoute::new("10.112.0.0/12", "10.112.0.7"),
    )
    .unwrap_err();
    assert_eq!(
        err.to_string(),
        "logical router \"nauti-east\" does not exist"
    );
}
