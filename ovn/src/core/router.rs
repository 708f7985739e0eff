//! Typed `Logical_Router`, `Logical_Router_Port` and `Logical_Router_Static_Route` rows of
//! `OVN_Northbound` and the operations that make them so.
//!
//! The cluster's gateway address lives on a distributed logical router attached to the cluster's
//! switch; the router's one static route sends the rest of the global network to the active CNF
//! pod. Moving that route is the whole of a gateway failover: one guarded transaction, no port
//! binding to migrate and no ARP cache to refresh in the pods (the gateway's MAC never changes).
//!
//! As in [`super::nb`], every write is planned from a read and guarded by `wait` operations; a
//! plan for rows already as wanted has no writes. The router's other columns (load balancers,
//! policies, NAT) are never touched.

use std::collections::BTreeMap;

use super::nb::uuid_of;
use super::nb::{PlanError, guard_absent, guard_unchanged, map_col, rows_of, set_col, str_col};
use super::ops::{Condition, Mutation, Operation, OperationResult};
use super::value::{Atom, Row, Uuid, Value};

/// `Logical_Router` table.
pub const LOGICAL_ROUTER: &str = "Logical_Router";
/// `Logical_Router_Port` table.
pub const LOGICAL_ROUTER_PORT: &str = "Logical_Router_Port";
/// `Logical_Router_Static_Route` table.
pub const LOGICAL_ROUTER_STATIC_ROUTE: &str = "Logical_Router_Static_Route";

/// A router port as wanted. `networks` and `external_ids` are owned as a whole.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouterPort {
    /// Unique name; a switch port of type `router` names it in `options:router-port`.
    pub name: String,
    /// The port's MAC address.
    pub mac: String,
    /// Its addresses with prefix, e.g. `["10.112.0.1/16"]` (sorted on read).
    pub networks: Vec<String>,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

impl RouterPort {
    /// A port with a MAC and one network.
    pub fn new(
        name: impl Into<String>,
        mac: impl Into<String>,
        network: impl Into<String>,
    ) -> Self {
        Self {
            name: name.into(),
            mac: mac.into(),
            networks: vec![network.into()],
            external_ids: BTreeMap::new(),
        }
    }

    /// Adds an `external_ids` entry.
    pub fn with_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    /// The row's writable columns.
    pub fn to_row(&self) -> Row {
        Row::from([
            ("name".to_owned(), Value::from(self.name.as_str())),
            ("mac".to_owned(), Value::from(self.mac.as_str())),
            (
                "networks".to_owned(),
                Value::string_set(self.networks.iter().cloned()),
            ),
            (
                "external_ids".to_owned(),
                Value::string_map(self.external_ids.clone()),
            ),
        ])
    }

    /// From a row as read.
    pub fn from_row(row: &Row) -> Self {
        Self {
            name: str_col(row, "name"),
            mac: str_col(row, "mac"),
            networks: set_col(row, "networks"),
            external_ids: map_col(row, "external_ids"),
        }
    }

    fn normalized(&self) -> Self {
        let mut port = self.clone();
        port.networks.sort();
        port
    }
}

/// A static route. Compared by prefix, next hop and `external_ids`.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct StaticRoute {
    /// Destination, e.g. `10.112.0.0/12`.
    pub ip_prefix: String,
    /// Next hop address.
    pub nexthop: String,
    /// `external_ids` (who set the route).
    pub external_ids: BTreeMap<String, String>,
}

impl StaticRoute {
    /// A route to `ip_prefix` through `nexthop`.
    pub fn new(ip_prefix: impl Into<String>, nexthop: impl Into<String>) -> Self {
        Self {
            ip_prefix: ip_prefix.into(),
            nexthop: nexthop.into(),
            external_ids: BTreeMap::new(),
        }
    }

    /// Adds an `external_ids` entry.
    pub fn with_external_id(mut self, key: impl Into<String>, value: impl Into<String>) -> Self {
        self.external_ids.insert(key.into(), value.into());
        self
    }

    /// The row's writable columns.
    pub fn to_row(&self) -> Row {
        Row::from([
            ("ip_prefix".to_owned(), Value::from(self.ip_prefix.as_str())),
            ("nexthop".to_owned(), Value::from(self.nexthop.as_str())),
            (
                "external_ids".to_owned(),
                Value::string_map(self.external_ids.clone()),
            ),
        ])
    }

    /// From a row as read.
    pub fn from_row(row: &Row) -> Self {
        Self {
            ip_prefix: str_col(row, "ip_prefix"),
            nexthop: str_col(row, "nexthop"),
            external_ids: map_col(row, "external_ids"),
        }
    }
}

/// A router and its ports as the ensure plan needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct RouterSnapshot {
    /// The router's UUID, `ports` and `external_ids`, when it exists.
    pub router: Option<(Uuid, Vec<Uuid>, BTreeMap<String, String>)>,
    /// Per wanted port name, in order: the port of that name, if any.
    pub ports: Vec<Option<(Uuid, RouterPort)>>,
}

/// Reads the router `name` and the ports named `ports`.
pub fn read_router(name: &str, ports: &[&str]) -> Vec<Operation> {
    let mut ops = vec![Operation::select(
        LOGICAL_ROUTER,
        vec![Condition::eq("name", name)],
        &["_uuid", "ports", "external_ids"],
    )];
    ops.extend(ports.iter().map(|port| {
        Operation::select(LOGICAL_ROUTER_PORT, vec![Condition::eq("name", *port)], &[])
    }));
    ops
}

fn one_router<'a>(name: &str, rows: &'a [Row]) -> Result<Option<&'a Row>, PlanError> {
    match rows {
        [] => Ok(None),
        [row] => Ok(Some(row)),
        rows => Err(PlanError::DuplicateRouter {
            name: name.to_owned(),
            count: rows.len(),
        }),
    }
}

/// Interprets the results of [`read_router`].
pub fn parse_router(name: &str, results: &[OperationResult]) -> Result<RouterSnapshot, PlanError> {
    let router = match one_router(name, rows_of(results.first())?)? {
        None => None,
        Some(row) => Some((
            uuid_of(row)?,
            row.get("ports").map(Value::uuids).unwrap_or_default(),
            map_col(row, "external_ids"),
        )),
    };
    let mut ports = Vec::with_capacity(results.len().saturating_sub(1));
    for result in results.iter().skip(1) {
        ports.push(match rows_of(Some(result))? {
            [] => None,
            [row, ..] => Some((uuid_of(row)?, RouterPort::from_row(row))),
        });
    }
    Ok(RouterSnapshot { router, ports })
}

/// Operations that make the router exist with `external_ids` and every wanted port as wanted
/// and attached. Ports the router has besides these are left alone. Empty when all already are.
pub fn plan_ensure_router(
    name: &str,
    external_ids: &BTreeMap<String, String>,
    snapshot: &RouterSnapshot,
    want: &[RouterPort],
) -> Result<Vec<Operation>, PlanError> {
    if snapshot.ports.len() != want.len() {
        return Err(PlanError::BadRead(format!(
            "{} router port reads for {} ports",
            snapshot.ports.len(),
            want.len()
        )));
    }
    let mut ops = Vec::new();
    let mut attach = Vec::new();
    for (i, (w, current)) in want.iter().zip(&snapshot.ports).enumerate() {
        let w = w.normalized();
        match current {
            None => {
                let named = format!("lrp{i}");
                ops.push(guard_absent(LOGICAL_ROUTER_PORT, "name", &w.name));
                ops.push(Operation::insert_named(
                    LOGICAL_ROUTER_PORT,
                    w.to_row(),
                    &named,
                ));
                attach.push(Atom::NamedUuid(named));
            }
            Some((uuid, port)) => {
                if *port != w {
                    ops.push(guard_unchanged(
                        LOGICAL_ROUTER_PORT,
                        uuid,
                        "name",
                        Value::from(w.name.as_str()),
                    ));
                    ops.push(Operation::update(
                        LOGICAL_ROUTER_PORT,
                        vec![Condition::uuid(uuid)],
                        w.to_row(),
                    ));
                }
                let attached = snapshot
                    .router
                    .as_ref()
                    .is_some_and(|(_, ports, _)| ports.contains(uuid));
                if !attached {
                    // A port of another router moves here.
                    ops.push(Operation::mutate(
                        LOGICAL_ROUTER,
                        vec![Condition::includes(
                            "ports",
                            Value::Atom(uuid.clone().into()),
                        )],
                        vec![Mutation::delete("ports", Value::Atom(uuid.clone().into()))],
                    ));
                    attach.push(Atom::Uuid(uuid.clone()));
                }
            }
        }
    }
    match &snapshot.router {
        None => {
            ops.push(guard_absent(LOGICAL_ROUTER, "name", name));
            ops.push(Operation::insert(
                LOGICAL_ROUTER,
                Row::from([
                    ("name".to_owned(), Value::from(name)),
                    ("ports".to_owned(), Value::Set(attach)),
                    (
                        "external_ids".to_owned(),
                        Value::string_map(external_ids.clone()),
                    ),
                ]),
            ));
        }
        Some((uuid, _, current_ids)) => {
            if current_ids != external_ids {
                ops.push(Operation::update(
                    LOGICAL_ROUTER,
                    vec![Condition::uuid(uuid)],
                    Row::from([(
                        "external_ids".to_owned(),
                        Value::string_map(external_ids.clone()),
                    )]),
                ));
            }
            if !attach.is_empty() {
                ops.push(guard_unchanged(
                    LOGICAL_ROUTER,
                    uuid,
                    "name",
                    Value::from(name),
                ));
                ops.push(Operation::mutate(
                    LOGICAL_ROUTER,
                    vec![Condition::uuid(uuid)],
                    vec![Mutation::insert("ports", Value::Set(attach))],
                ));
            }
        }
    }
    Ok(ops)
}

/// A router's static routes as the route plan needs them.
#[derive(Debug, Clone, PartialEq)]
pub struct RoutesSnapshot {
    /// The router's UUID and `static_routes`, when it exists.
    pub router: Option<(Uuid, Vec<Uuid>)>,
    /// Every static route row of the database (a handful; rows of other routers are filtered
    /// out by the router's `static_routes`).
    pub routes: Vec<(Uuid, StaticRoute)>,
}

impl RoutesSnapshot {
    /// The router's own routes.
    pub fn of_router(&self) -> Vec<&(Uuid, StaticRoute)> {
        let Some((_, own)) = &self.router else {
            return Vec::new();
        };
        self.routes
            .iter()
            .filter(|(uuid, _)| own.contains(uuid))
            .collect()
    }
}

/// Reads the router `name`'s `static_routes` and the route rows.
pub fn read_routes(name: &str) -> Vec<Operation> {
    vec![
        Operation::select(
            LOGICAL_ROUTER,
            vec![Condition::eq("name", name)],
            &["_uuid", "static_routes"],
        ),
        Operation::select(LOGICAL_ROUTER_STATIC_ROUTE, vec![], &[]),
    ]
}

/// Interprets the results of [`read_routes`].
pub fn parse_routes(name: &str, results: &[OperationResult]) -> Result<RoutesSnapshot, PlanError> {
    let router = match one_router(name, rows_of(results.first())?)? {
        None => None,
        Some(row) => Some((
            uuid_of(row)?,
            row.get("static_routes")
                .map(Value::uuids)
                .unwrap_or_default(),
        )),
    };
    let mut routes = Vec::new();
    for row in rows_of(results.get(1))? {
        routes.push((uuid_of(row)?, StaticRoute::from_row(row)));
    }
    Ok(RoutesSnapshot { router, routes })
}

/// Operations that leave the router with exactly one route to `want.ip_prefix`, the wanted one.
/// Routes to other prefixes stay. The write is guarded on the router's `static_routes` as read,
/// so of two writers racing (an old and a new active gateway) one fails and reads again.
pub fn plan_route(
    name: &str,
    snapshot: &RoutesSnapshot,
    want: &StaticRoute,
) -> Result<Vec<Operation>, PlanError> {
    let (uuid, current) = snapshot
        .router
        .as_ref()
        .ok_or_else(|| PlanError::NoSuchRouter(name.to_owned()))?;
    let same_prefix: Vec<&(Uuid, StaticRoute)> = snapshot
        .of_router()
        .into_iter()
        .filter(|(_, route)| route.ip_prefix == want.ip_prefix)
        .collect();
    if let [(_, only)] = same_prefix.as_slice()
        && only == want
    {
        return Ok(Vec::new());
    }
    let mut ops = vec![guard_unchanged(
        LOGICAL_ROUTER,
        uuid,
        "static_routes",
        Value::uuid_set(current.iter().cloned()),
    )];
    if !same_prefix.is_empty() {
        // Unreferenced route rows are not root rows: the database drops them.
        ops.push(Operation::mutate(
            LOGICAL_ROUTER,
            vec![Condition::uuid(uuid)],
            vec![Mutation::delete(
                "static_routes",
                Value::uuid_set(same_prefix.iter().map(|(u, _)| u.clone())),
            )],
        ));
    }
    ops.push(Operation::insert_named(
        LOGICAL_ROUTER_STATIC_ROUTE,
        want.to_row(),
        "route",
    ));
    ops.push(Operation::mutate(
        LOGICAL_ROUTER,
        vec![Condition::uuid(uuid)],
        vec![Mutation::insert(
            "static_routes",
            Value::Set(vec![Atom::NamedUuid("route".into())]),
        )],
    ));
    Ok(ops)
}

#[cfg(test)]
mod tests;
