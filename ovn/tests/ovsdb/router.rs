//! The gateway router: ensured idempotently, and its route to the global network moved between
//! gateways, also by two writers racing, always leaving exactly one route.

use std::collections::BTreeMap;

use nauti_ovn::Northbound;
use nauti_ovn::core::router::{RouterPort, StaticRoute};

use crate::{mk_client, mk_nb};

const ROUTER: &str = "nauti-east-gw";
const GLOBAL: &str = "10.112.0.0/12";

fn port() -> RouterPort {
    RouterPort::new("nauti-east-gw-port", "0a:58:0a:70:00:01", "10.112.0.1/16")
}

fn ids() -> BTreeMap<String, String> {
    BTreeMap::from([("nauti.io/cluster".to_owned(), "east".to_owned())])
}

async fn count_rows(nb: &Northbound, table: &str) -> usize {
    let results = nb
        .client()
        .transact(
            nauti_ovn::core::nb::DB,
            vec![nauti_ovn::Operation::select(table, vec![], &["_uuid"])],
        )
        .await
        .unwrap();
    results[0].rows.as_ref().unwrap().len()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn the_gateway_router_is_ensured_once_and_its_route_follows_the_active_gateway() {
    let f = mk_nb("ovsdb-router");
    let nb = Northbound::new(mk_client(&f.server.remote()).await);
    for _ in 0..2 {
        nb.ensure_logical_router(ROUTER, &ids(), &[port()])
            .await
            .unwrap();
    }
    assert_eq!(count_rows(&nb, "Logical_Router").await, 1);
    assert_eq!(count_rows(&nb, "Logical_Router_Port").await, 1);

    // Another route the operator added stays through every move.
    let other = StaticRoute::new("192.0.2.0/24", "10.112.0.9");
    assert!(nb.set_static_route(ROUTER, &other).await.unwrap());
    let first = StaticRoute::new(GLOBAL, "10.112.0.7").with_external_id("nauti.io/owner", "cnf");
    assert!(nb.set_static_route(ROUTER, &first).await.unwrap());
    assert!(
        !nb.set_static_route(ROUTER, &first).await.unwrap(),
        "a route already as wanted was written again"
    );
    let second = StaticRoute::new(GLOBAL, "10.112.3.4").with_external_id("nauti.io/owner", "cnf");
    assert!(nb.set_static_route(ROUTER, &second).await.unwrap());
    let mut routes = nb.list_static_routes(ROUTER).await.unwrap();
    routes.sort_by(|a, b| a.ip_prefix.cmp(&b.ip_prefix));
    assert_eq!(routes, vec![second.clone(), other.clone()]);
    assert_eq!(
        count_rows(&nb, "Logical_Router_Static_Route").await,
        2,
        "the replaced route row was left behind"
    );

    // Two gateways claiming at once: one route survives, and it is one of theirs.
    let racer = Northbound::new(mk_client(&f.server.remote()).await);
    let a = StaticRoute::new(GLOBAL, "10.112.5.5");
    let b = StaticRoute::new(GLOBAL, "10.112.6.6");
    for _ in 0..20 {
        let (ra, rb) = tokio::join!(
            nb.set_static_route(ROUTER, &a),
            racer.set_static_route(ROUTER, &b)
        );
        ra.unwrap();
        rb.unwrap();
        let global: Vec<StaticRoute> = nb
            .list_static_routes(ROUTER)
            .await
            .unwrap()
            .into_iter()
            .filter(|r| r.ip_prefix == GLOBAL)
            .collect();
        assert_eq!(global.len(), 1, "{global:?}");
        assert!(global[0] == a || global[0] == b, "{global:?}");
    }

    // A route on a router that does not exist is an error naming the router.
    let err = nb
        .set_static_route("nauti-west-gw", &first)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("nauti-west-gw"), "{err}");
}
