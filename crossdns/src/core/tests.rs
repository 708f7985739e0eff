use std::net::IpAddr;

use super::*;

const NS: &str = "shop";

fn ip(text: &str) -> IpAddr {
    text.parse().unwrap()
}

fn mk_import(kind: ImportKind, ports: &[(&str, &str, u16)]) -> ImportView {
    ImportView {
        kind,
        ports: ports
            .iter()
            .map(|(name, proto, port)| PortView::new(name, proto, *port))
            .collect(),
    }
}

fn mk_endpoint(addresses: &[&str], hostname: Option<&str>, ready: bool) -> EndpointView {
    EndpointView {
        addresses: addresses.iter().map(|a| ip(a)).collect(),
        hostname: hostname.map(str::to_owned),
        ready,
    }
}

fn mk_slice(service: &str, cluster: &str, endpoints: Vec<EndpointView>) -> SliceView {
    SliceView {
        service: ServiceKey::new(NS, service),
        cluster: cluster.to_owned(),
        ports: vec![PortView::new("http", "TCP", 8080)],
        endpoints,
    }
}

/// A synced index with a ClusterSetIP service `web` (two clusters, one endpoint not ready)
/// and a headless service `db` (hostnames in one cluster, none in the other).
fn mk_index() -> Index {
    let mut index = Index::new();
    index.reset_imports([
        (
            ServiceKey::new(NS, "web"),
            mk_import(
                ImportKind::ClusterSetIp(vec![ip("10.127.0.10"), ip("fd00:7f::10")]),
                &[("http", "TCP", 80), ("", "UDP", 53)],
            ),
        ),
        (
            ServiceKey::new(NS, "db"),
            mk_import(ImportKind::Headless, &[("http", "TCP", 80)]),
        ),
    ]);
    index.reset_slices([
        (
            SliceKey::new(NS, "web-east"),
            mk_slice(
                "web",
                "east",
                vec![
                    mk_endpoint(&["10.113.0.5"], None, true),
                    mk_endpoint(&["10.113.0.6"], None, false),
                ],
            ),
        ),
        (
            SliceKey::new(NS, "web-west"),
            mk_slice(
                "web",
                "west",
                vec![mk_endpoint(&["10.114.0.7", "fd00:72::7"], None, true)],
            ),
        ),
        (
            SliceKey::new(NS, "db-east"),
            mk_slice(
                "db",
                "east",
                vec![
                    mk_endpoint(&["10.113.1.1"], Some("db-0"), true),
                    mk_endpoint(&["10.113.1.2"], Some("db-1"), true),
                ],
            ),
        ),
        (
            SliceKey::new(NS, "db-west"),
            mk_slice("db", "west", vec![mk_endpoint(&["10.114.1.1"], None, true)]),
        ),
    ]);
    index
}

fn ask<'a>(index: &'a Index, name: &str, qtype: QueryType) -> Answer<'a> {
    index.lookup(QueryName::parse(name).as_ref(), qtype)
}

fn records(index: &Index, name: &str, qtype: QueryType) -> Vec<RecordData> {
    match ask(index, name, qtype) {
        Answer::Records(records) => records.into_owned(),
        other => panic!("{name} {qtype:?}: expected records, got {other:?}"),
    }
}

fn addresses(index: &Index, name: &str, qtype: QueryType) -> Vec<String> {
    records(index, name, qtype)
        .into_iter()
        .map(|r| match r {
            RecordData::A(a) => a.to_string(),
            RecordData::Aaaa(a) => a.to_string(),
            other => panic!("not an address: {other:?}"),
        })
        .collect()
}

fn srv_targets(index: &Index, name: &str) -> Vec<(u16, String)> {
    records(index, name, QueryType::Srv)
        .into_iter()
        .map(|r| match r {
            RecordData::Srv { port, target, .. } => (port, target),
            other => panic!("not SRV: {other:?}"),
        })
        .collect()
}

fn is_nxdomain(answer: &Answer<'_>) -> bool {
    matches!(answer, Answer::NxDomain(soa) if soa.minimum == TTL)
}

fn is_nodata(answer: &Answer<'_>) -> bool {
    matches!(answer, Answer::NoData(_))
}

#[test]
fn hyperos_names_carry_the_ready_endpoints_of_every_cluster() {
    let index = mk_index();
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local", QueryType::A),
        ["10.113.0.5", "10.114.0.7"]
    );
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local.", QueryType::Aaaa),
        ["fd00:72::7"]
    );
    assert_eq!(
        addresses(&index, "db.shop.svc.hyperos.local", QueryType::A),
        ["10.113.1.1", "10.113.1.2", "10.114.1.1"]
    );
}

#[test]
fn a_clusterset_ip_service_answers_its_ips_not_its_endpoints() {
    let index = mk_index();
    assert_eq!(
        addresses(&index, "web.shop.svc.clusterset.local", QueryType::A),
        ["10.127.0.10"]
    );
    assert_eq!(
        addresses(&index, "web.shop.svc.clusterset.local", QueryType::Aaaa),
        ["fd00:7f::10"]
    );
}

#[test]
fn a_clusterset_ip_service_has_srv_by_port_and_by_bare_name() {
    let index = mk_index();
    let target = "web.shop.svc.clusterset.local".to_owned();
    assert_eq!(
        srv_targets(&index, "_http._tcp.web.shop.svc.clusterset.local"),
        [(80, target.clone())]
    );
    // The bare name lists every port, the unnamed one too.
    assert_eq!(
        srv_targets(&index, "web.shop.svc.clusterset.local"),
        [(80, target.clone()), (53, target)]
    );
    // Unnamed ports have no `_<port>._<proto>` name.
    assert!(is_nxdomain(&ask(
        &index,
        "_._udp.web.shop.svc.clusterset.local",
        QueryType::Srv
    )));
}

#[test]
fn a_clusterset_ip_service_has_no_per_cluster_names() {
    let index = mk_index();
    let answer = ask(&index, "east.web.shop.svc.clusterset.local", QueryType::A);
    assert!(is_nxdomain(&answer), "{answer:?}");
}

#[test]
fn a_headless_service_answers_ready_endpoints_and_per_host_names() {
    let index = mk_index();
    assert_eq!(
        addresses(&index, "db.shop.svc.clusterset.local", QueryType::A),
        ["10.113.1.1", "10.113.1.2", "10.114.1.1"]
    );
    assert_eq!(
        addresses(
            &index,
            "db-1.east.db.shop.svc.clusterset.local",
            QueryType::A
        ),
        ["10.113.1.2"]
    );
    // Without a hostname, the endpoint is named after its address.
    assert_eq!(
        addresses(
            &index,
            "10-114-1-1.west.db.shop.svc.clusterset.local",
            QueryType::A
        ),
        ["10.114.1.1"]
    );
    // `db-0` lives in east only.
    assert!(is_nxdomain(&ask(
        &index,
        "db-0.west.db.shop.svc.clusterset.local",
        QueryType::A
    )));
    // The cluster label alone is an empty non-terminal.
    assert!(is_nodata(&ask(
        &index,
        "east.db.shop.svc.clusterset.local",
        QueryType::A
    )));
}

#[test]
fn headless_srv_targets_each_ready_host_at_the_pods_port() {
    let index = mk_index();
    let expected = [
        (8080, "db-0.east.db.shop.svc.clusterset.local".to_owned()),
        (8080, "db-1.east.db.shop.svc.clusterset.local".to_owned()),
        (
            8080,
            "10-114-1-1.west.db.shop.svc.clusterset.local".to_owned(),
        ),
    ];
    assert_eq!(
        srv_targets(&index, "_http._tcp.db.shop.svc.clusterset.local"),
        expected
    );
    assert_eq!(
        srv_targets(&index, "db.shop.svc.clusterset.local"),
        expected
    );
}

#[test]
fn the_schema_version_is_a_txt_record() {
    let index = mk_index();
    assert_eq!(
        records(&index, "dns-version.clusterset.local", QueryType::Txt),
        [RecordData::Txt("1.0.0".into())]
    );
    assert!(is_nodata(&ask(
        &index,
        "dns-version.clusterset.local",
        QueryType::A
    )));
    assert!(is_nxdomain(&ask(
        &index,
        "dns-version.hyperos.local",
        QueryType::Txt
    )));
}

#[test]
fn a_missing_name_is_nxdomain_and_a_missing_type_is_nodata() {
    let index = mk_index();
    for name in [
        "nope.shop.svc.clusterset.local",
        "web.other.svc.clusterset.local",
        "web.shop.pod.clusterset.local",
        "x.web.shop.svc.hyperos.local",
        "a.b.c.east.db.shop.svc.clusterset.local",
    ] {
        let answer = ask(&index, name, QueryType::A);
        assert!(is_nxdomain(&answer), "{name}: {answer:?}");
    }
    for (name, qtype) in [
        ("web.shop.svc.clusterset.local", QueryType::Txt),
        ("web.shop.svc.hyperos.local", QueryType::Srv),
        ("_http._tcp.web.shop.svc.clusterset.local", QueryType::A),
        ("web.shop.svc.clusterset.local", QueryType::Other),
        // Empty non-terminals exist.
        ("shop.svc.clusterset.local", QueryType::A),
        ("svc.hyperos.local", QueryType::A),
        ("_tcp.web.shop.svc.clusterset.local", QueryType::Srv),
        ("clusterset.local", QueryType::A),
    ] {
        let answer = ask(&index, name, qtype);
        assert!(is_nodata(&answer), "{name} {qtype:?}: {answer:?}");
    }
}

#[test]
fn the_apex_answers_its_soa() {
    let index = mk_index();
    let answer = records(&index, "hyperos.local", QueryType::Soa);
    let [RecordData::Soa(soa)] = answer.as_slice() else {
        panic!("not one SOA: {answer:?}")
    };
    assert_eq!(soa.mname, "ns.dns.hyperos.local");
    assert_eq!(soa.minimum, TTL);
}

#[test]
fn names_are_matched_case_insensitively() {
    let index = mk_index();
    assert_eq!(
        addresses(&index, "WEB.Shop.SVC.ClusterSet.LOCAL", QueryType::A),
        ["10.127.0.10"]
    );
    assert_eq!(
        addresses(
            &index,
            "DB-1.EAST.db.shop.svc.clusterset.local",
            QueryType::A
        ),
        ["10.113.1.2"]
    );
    let labels: [&[u8]; 6] = [b"Web", b"SHOP", b"svc", b"Hyperos", b"Local", b""];
    let name = QueryName::from_labels(labels[..5].iter().copied()).unwrap();
    assert_eq!(name.zone, Zone::Hyperos);
    assert!(matches!(
        index.lookup(Some(&name), QueryType::A),
        Answer::Records(_)
    ));
}

#[test]
fn other_zones_are_not_ours() {
    let index = mk_index();
    for name in [
        "example.com",
        "local",
        "web.shop.svc.cluster.local",
        "clusterset.local.evil",
    ] {
        assert_eq!(QueryName::parse(name), None, "{name}");
        assert_eq!(
            ask(&index, name, QueryType::A),
            Answer::NotOurZone,
            "{name}"
        );
    }
}

#[test]
fn labels_no_kubernetes_name_could_have_match_nothing() {
    let index = mk_index();
    let labels: [&[u8]; 5] = [b"we.b", b"shop", b"svc", b"clusterset", b"local"];
    let name = QueryName::from_labels(labels).unwrap();
    assert!(is_nxdomain(&index.lookup(Some(&name), QueryType::A)));
    let labels: [&[u8]; 5] = [b"w\xffb", b"shop", b"svc", b"clusterset", b"local"];
    let name = QueryName::from_labels(labels).unwrap();
    assert!(is_nxdomain(&index.lookup(Some(&name), QueryType::A)));
}

#[test]
fn nothing_is_answered_before_both_lists_arrived() {
    let mut index = Index::new();
    assert_eq!(
        ask(&index, "web.shop.svc.clusterset.local", QueryType::A),
        Answer::NotSynced
    );
    index.reset_imports([]);
    assert_eq!(
        ask(&index, "dns-version.clusterset.local", QueryType::Txt),
        Answer::NotSynced
    );
    // Other zones are refused even before.
    assert_eq!(ask(&index, "example.com", QueryType::A), Answer::NotOurZone);
    index.reset_slices([]);
    assert!(index.is_synced());
    assert!(is_nxdomain(&ask(
        &index,
        "web.shop.svc.clusterset.local",
        QueryType::A
    )));
}

#[test]
fn endpoints_follow_slice_changes_and_a_deleted_import_is_nxdomain() {
    let mut index = mk_index();
    let serial = index.soa(Zone::Clusterset).serial;
    index.apply_slice(
        SliceKey::new(NS, "web-west"),
        mk_slice(
            "web",
            "west",
            vec![mk_endpoint(&["10.114.0.9"], None, true)],
        ),
    );
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local", QueryType::A),
        ["10.113.0.5", "10.114.0.9"]
    );
    assert!(index.soa(Zone::Clusterset).serial > serial);
    index.delete_slice(&SliceKey::new(NS, "web-east"));
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local", QueryType::A),
        ["10.114.0.9"]
    );
    index.delete_import(&ServiceKey::new(NS, "web"));
    for name in [
        "web.shop.svc.hyperos.local",
        "web.shop.svc.clusterset.local",
    ] {
        assert!(is_nxdomain(&ask(&index, name, QueryType::A)), "{name}");
    }
    // `db` still makes the namespace exist.
    assert!(is_nodata(&ask(
        &index,
        "shop.svc.clusterset.local",
        QueryType::A
    )));
    index.delete_import(&ServiceKey::new(NS, "db"));
    assert!(is_nxdomain(&ask(
        &index,
        "shop.svc.clusterset.local",
        QueryType::A
    )));
    assert!(is_nxdomain(&ask(&index, "svc.hyperos.local", QueryType::A)));
    assert_eq!(index.record_count(), 0);
}

#[test]
fn a_headless_service_without_ready_endpoints_is_nxdomain_in_the_clusterset_zone() {
    let mut index = mk_index();
    for slice in ["db-east", "db-west"] {
        index.apply_slice(
            SliceKey::new(NS, slice),
            mk_slice(
                "db",
                "east",
                vec![mk_endpoint(&["10.113.1.1"], None, false)],
            ),
        );
    }
    assert!(is_nxdomain(&ask(
        &index,
        "db.shop.svc.clusterset.local",
        QueryType::A
    )));
    // The seed's zone keeps the name while the import exists.
    assert!(is_nodata(&ask(
        &index,
        "db.shop.svc.hyperos.local",
        QueryType::A
    )));
}

#[test]
fn a_reset_drops_what_the_new_list_lacks() {
    let mut index = mk_index();
    index.reset_slices([(
        SliceKey::new(NS, "web-east"),
        mk_slice(
            "web",
            "east",
            vec![mk_endpoint(&["10.113.0.5"], None, true)],
        ),
    )]);
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local", QueryType::A),
        ["10.113.0.5"]
    );
    index.reset_imports([]);
    assert!(is_nxdomain(&ask(
        &index,
        "web.shop.svc.hyperos.local",
        QueryType::A
    )));
    assert_eq!(index.record_count(), 0);
}

#[test]
fn a_slice_moved_to_another_service_leaves_the_first() {
    let mut index = mk_index();
    index.apply_slice(
        SliceKey::new(NS, "web-east"),
        mk_slice(
            "db",
            "east",
            vec![mk_endpoint(&["10.113.9.9"], Some("db-9"), true)],
        ),
    );
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local", QueryType::A),
        ["10.114.0.7"]
    );
    assert_eq!(
        addresses(
            &index,
            "db-9.east.db.shop.svc.clusterset.local",
            QueryType::A
        ),
        ["10.113.9.9"]
    );
}

#[test]
fn the_same_address_in_two_slices_is_answered_once() {
    let mut index = mk_index();
    index.apply_slice(
        SliceKey::new(NS, "web-east-2"),
        mk_slice(
            "web",
            "east",
            vec![mk_endpoint(&["10.113.0.5"], None, true)],
        ),
    );
    assert_eq!(
        addresses(&index, "web.shop.svc.hyperos.local", QueryType::A),
        ["10.113.0.5", "10.114.0.7"]
    );
}

#[test]
fn any_returns_every_type_at_the_name() {
    let index = mk_index();
    let all = records(&index, "web.shop.svc.clusterset.local", QueryType::Any);
    assert_eq!(all.len(), 4, "{all:?}");
}

#[test]
fn the_record_count_follows_changes() {
    let mut index = mk_index();
    // web: 3 hyperos (two A, one AAAA) + 2 IPs + 2 bare SRV + 1 port SRV; db: 3 hyperos
    // + 3 A + 3 bare SRV + 3 port SRV + 3 host A.
    assert_eq!(index.record_count(), 8 + 15);
    index.delete_slice(&SliceKey::new(NS, "db-west"));
    assert_eq!(index.record_count(), 8 + 10);
}
