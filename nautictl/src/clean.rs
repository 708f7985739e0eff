//! What `nautictl clean` removes from one cluster, as plain functions over what was read: the
//! adapters in the binary list pods, nodes, the CoreDNS ConfigMap and the northbound rows into an
//! [`Observed`], [`plan`] turns that into [`Removal`]s (printed by a dry run, applied otherwise),
//! and [`northbound_ops`] turns the OVN ones into one OVSDB transaction.
//!
//! Node-local traces (OVS ports, veths, routes inside pods) are not here: only the node's own
//! agent can reach them, and it takes them out when its pods go.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use nauti_api::core::port::external_ids;
use nauti_api::keys;
use nauti_crossdns::coredns::corefile::{self, BEGIN_MARKER, CorefileError, END_MARKER};
use nauti_ovn::core::lb::{LOAD_BALANCER, OWNER_KEY as LB_OWNER_KEY};
use nauti_ovn::core::nb::{LOGICAL_SWITCH, LOGICAL_SWITCH_PORT, plan_remove_ports};
use nauti_ovn::core::router::{LOGICAL_ROUTER, LOGICAL_ROUTER_PORT};
use nauti_ovn::{Atom, Condition, Mutation, Operation, OperationResult, Row, Uuid, Value};

/// An object with annotations, as listed from the API server.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Annotated {
    /// Namespace; `None` for a cluster-scoped object (a Node).
    pub namespace: Option<String>,
    /// Name.
    pub name: String,
    /// Its annotations.
    pub annotations: BTreeMap<String, String>,
}

/// The CoreDNS Corefile as read from its ConfigMap.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CorefileSeen {
    /// Where it was read from, for the listing (`ConfigMap kube-system/coredns key Corefile`).
    pub location: String,
    /// Its text.
    pub text: String,
}

/// One northbound row, with what the plan needs of it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbRow {
    /// `_uuid`.
    pub uuid: Uuid,
    /// `name`.
    pub name: String,
    /// `external_ids`.
    pub external_ids: BTreeMap<String, String>,
}

/// A logical switch or router and the ports it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbSwitch {
    /// The switch's (or router's) row.
    pub row: NbRow,
    /// `ports`.
    pub ports: Vec<Uuid>,
}

/// The northbound tables `clean` looks at.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct NbSnapshot {
    /// `Logical_Switch`.
    pub switches: Vec<NbSwitch>,
    /// `Logical_Switch_Port`.
    pub ports: Vec<NbRow>,
    /// `Load_Balancer`.
    pub load_balancers: Vec<NbRow>,
    /// `Logical_Router` (the cluster's gateway router).
    pub routers: Vec<NbSwitch>,
    /// `Logical_Router_Port`.
    pub router_ports: Vec<NbRow>,
}

/// Everything `clean` read from one cluster.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Observed {
    /// Every pod of every namespace.
    pub pods: Vec<Annotated>,
    /// Every Node.
    pub nodes: Vec<Annotated>,
    /// The CoreDNS Corefile; `None` when the cluster has no such ConfigMap or key.
    pub corefile: Option<CorefileSeen>,
    /// The northbound database; `None` when it was not asked for.
    pub northbound: Option<NbSnapshot>,
}

/// One trace of Nauti to remove.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Removal {
    /// Nauti's annotations on a pod.
    PodAnnotations {
        namespace: String,
        name: String,
        keys: Vec<String>,
    },
    /// Nauti's annotations on a Node.
    NodeAnnotations { name: String, keys: Vec<String> },
    /// The server block `crossdns wire-coredns` added to the Corefile.
    CorednsBlock { location: String },
    /// A port on a logical switch: Nauti's own, or any port of a switch that is Nauti's.
    LogicalSwitchPort {
        name: String,
        uuid: Uuid,
        switch: Option<String>,
    },
    /// A load balancer Nauti owns.
    LoadBalancer { name: String, uuid: Uuid },
    /// A logical switch Nauti made for its cluster.
    LogicalSwitch { name: String, uuid: Uuid },
    /// A port on a logical router: Nauti's own, or any port of a router that is Nauti's.
    LogicalRouterPort {
        name: String,
        uuid: Uuid,
        router: Option<String>,
    },
    /// The gateway router Nauti made for its cluster (its static routes go with it).
    LogicalRouter { name: String, uuid: Uuid },
}

impl Removal {
    /// Whether the OVN northbound database holds it.
    pub fn is_northbound(&self) -> bool {
        matches!(
            self,
            Self::LogicalSwitchPort { .. }
                | Self::LoadBalancer { .. }
                | Self::LogicalSwitch { .. }
                | Self::LogicalRouterPort { .. }
                | Self::LogicalRouter { .. }
        )
    }
}

/// One line per object: its kind, its name, what goes.
impl fmt::Display for Removal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::PodAnnotations {
                namespace,
                name,
                keys,
            } => write!(f, "Pod {namespace}/{name} annotations {}", keys.join(",")),
            Self::NodeAnnotations { name, keys } => {
                write!(f, "Node {name} annotations {}", keys.join(","))
            }
            Self::CorednsBlock { location } => {
                write!(f, "{location} block {BEGIN_MARKER} .. {END_MARKER}")
            }
            Self::LogicalSwitchPort {
                name,
                switch: Some(switch),
                ..
            } => write!(f, "Logical_Switch_Port {name} (on switch {switch})"),
            Self::LogicalSwitchPort { name, .. } => write!(f, "Logical_Switch_Port {name}"),
            Self::LoadBalancer { name, .. } => write!(f, "Load_Balancer {name}"),
            Self::LogicalSwitch { name, .. } => write!(f, "Logical_Switch {name}"),
            Self::LogicalRouterPort {
                name,
                router: Some(router),
                ..
            } => write!(f, "Logical_Router_Port {name} (on router {router})"),
            Self::LogicalRouterPort { name, .. } => write!(f, "Logical_Router_Port {name}"),
            Self::LogicalRouter { name, .. } => write!(f, "Logical_Router {name}"),
        }
    }
}

/// Why no plan could be made.
#[derive(Debug, thiserror::Error)]
pub enum PlanError {
    /// The northbound read came back in a shape it cannot have.
    #[error("unexpected northbound read: {0}")]
    BadRead(String),
    /// The Corefile holds crossdns's markers but cannot be edited safely.
    #[error("{location}: the crossdns block cannot be taken out: {source}")]
    Corefile {
        /// Where.
        location: String,
        /// What is wrong with it.
        #[source]
        source: CorefileError,
    },
}

/// The annotation keys Nauti wrote on an object, sorted. `nauti.io/enabled` is the user's opt-out
/// and is never among them.
pub fn nauti_keys(annotations: &BTreeMap<String, String>) -> Vec<String> {
    keys::ALL
        .iter()
        .filter(|key| annotations.contains_key(**key))
        .map(|key| (*key).to_owned())
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The JSON merge patch that removes these annotations and touches nothing else.
pub fn strip_annotations_patch(keys: &[String]) -> serde_json::Value {
    let nulls: serde_json::Map<String, serde_json::Value> = keys
        .iter()
        .map(|key| (key.clone(), serde_json::Value::Null))
        .collect();
    serde_json::json!({ "metadata": { "annotations": nulls } })
}

/// Whether a northbound row carries Nauti's `external_ids`: an owner (pod and gateway ports,
/// load balancers) or a cluster (the cluster's switch).
pub fn is_nauti_row(ids: &BTreeMap<String, String>) -> bool {
    ids.contains_key(external_ids::OWNER)
        || ids.contains_key(LB_OWNER_KEY)
        || ids.contains_key(external_ids::CLUSTER)
}

/// Everything of Nauti in `observed`, in the order it is removed: annotations first (the pods
/// keep running, only the record of Nauti's NIC goes), then the CoreDNS block, then ports, load
/// balancers and switches, so that no row is deleted while another still points at it.
pub fn plan(observed: &Observed) -> Result<Vec<Removal>, PlanError> {
    let mut removals = Vec::new();
    let mut pods: Vec<&Annotated> = observed.pods.iter().collect();
    pods.sort_by(|a, b| (&a.namespace, &a.name).cmp(&(&b.namespace, &b.name)));
    for pod in pods {
        let keys = nauti_keys(&pod.annotations);
        if !keys.is_empty() {
            removals.push(Removal::PodAnnotations {
                namespace: pod.namespace.clone().unwrap_or_default(),
                name: pod.name.clone(),
                keys,
            });
        }
    }
    let mut nodes: Vec<&Annotated> = observed.nodes.iter().collect();
    nodes.sort_by(|a, b| a.name.cmp(&b.name));
    for node in nodes {
        let keys = nauti_keys(&node.annotations);
        if !keys.is_empty() {
            removals.push(Removal::NodeAnnotations {
                name: node.name.clone(),
                keys,
            });
        }
    }
    if let Some(seen) = &observed.corefile
        && corefile_is_wired(seen)?
    {
        removals.push(Removal::CorednsBlock {
            location: seen.location.clone(),
        });
    }
    if let Some(nb) = &observed.northbound {
        removals.extend(plan_northbound(nb));
    }
    Ok(removals)
}

/// Whether the Corefile holds crossdns's block. A Corefile without the marker is not parsed at
/// all: a cluster never wired is clean whatever its Corefile looks like.
fn corefile_is_wired(seen: &CorefileSeen) -> Result<bool, PlanError> {
    if !seen.text.contains(BEGIN_MARKER) {
        return Ok(false);
    }
    corefile::unwire(&seen.text)
        .map(|edited| edited.is_some())
        .map_err(|source| PlanError::Corefile {
            location: seen.location.clone(),
            source,
        })
}

/// Nauti's ports, and every port of one of Nauti's switches or routers, sorted by name, with the
/// name of whatever holds them.
fn ports_to_remove<'a>(
    holders: &'a [NbSwitch],
    ports: &'a [NbRow],
) -> Vec<(&'a NbRow, Option<String>)> {
    let mut holder: BTreeMap<&Uuid, &NbSwitch> = BTreeMap::new();
    for switch in holders {
        for port in &switch.ports {
            holder.insert(port, switch);
        }
    }
    let mut chosen: Vec<(&NbRow, Option<String>)> = ports
        .iter()
        .filter(|port| {
            is_nauti_row(&port.external_ids)
                || holder
                    .get(&port.uuid)
                    .is_some_and(|s| is_nauti_row(&s.row.external_ids))
        })
        .map(|port| (port, holder.get(&port.uuid).map(|s| s.row.name.clone())))
        .collect();
    chosen.sort_by(|a, b| a.0.name.cmp(&b.0.name).then(a.0.uuid.cmp(&b.0.uuid)));
    chosen
}

/// Nauti's switches or routers, sorted by name.
fn nauti_rows(holders: &[NbSwitch]) -> Vec<&NbRow> {
    let mut rows: Vec<&NbRow> = holders
        .iter()
        .map(|s| &s.row)
        .filter(|row| is_nauti_row(&row.external_ids))
        .collect();
    rows.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
    rows
}

fn plan_northbound(nb: &NbSnapshot) -> Vec<Removal> {
    let mut removals = Vec::new();
    for (port, switch) in ports_to_remove(&nb.switches, &nb.ports) {
        removals.push(Removal::LogicalSwitchPort {
            name: port.name.clone(),
            uuid: port.uuid.clone(),
            switch,
        });
    }
    for (port, router) in ports_to_remove(&nb.routers, &nb.router_ports) {
        removals.push(Removal::LogicalRouterPort {
            name: port.name.clone(),
            uuid: port.uuid.clone(),
            router,
        });
    }
    let mut load_balancers: Vec<&NbRow> = nb
        .load_balancers
        .iter()
        .filter(|lb| is_nauti_row(&lb.external_ids))
        .collect();
    load_balancers.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
    for lb in load_balancers {
        removals.push(Removal::LoadBalancer {
            name: lb.name.clone(),
            uuid: lb.uuid.clone(),
        });
    }
    for switch in nauti_rows(&nb.switches) {
        removals.push(Removal::LogicalSwitch {
            name: switch.name.clone(),
            uuid: switch.uuid.clone(),
        });
    }
    for router in nauti_rows(&nb.routers) {
        removals.push(Removal::LogicalRouter {
            name: router.name.clone(),
            uuid: router.uuid.clone(),
        });
    }
    removals
}

/// The read `clean` makes of the northbound database, in one transaction: switches, routers,
/// their ports and load balancers, with only the columns [`parse_northbound`] needs.
pub fn read_northbound() -> Vec<Operation> {
    let holders = ["_uuid", "name", "external_ids", "ports"];
    let rows = ["_uuid", "name", "external_ids"];
    vec![
        Operation::select(LOGICAL_SWITCH, vec![], &holders),
        Operation::select(LOGICAL_SWITCH_PORT, vec![], &rows),
        Operation::select(LOAD_BALANCER, vec![], &rows),
        Operation::select(LOGICAL_ROUTER, vec![], &holders),
        Operation::select(LOGICAL_ROUTER_PORT, vec![], &rows),
    ]
}

/// Interprets the results of [`read_northbound`].
pub fn parse_northbound(results: &[OperationResult]) -> Result<NbSnapshot, PlanError> {
    let rows = |index: usize, table: &str| {
        results
            .get(index)
            .and_then(|r| r.rows.as_deref())
            .ok_or_else(|| PlanError::BadRead(format!("no rows of {table}")))
    };
    let nb_row = |row: &Row, table: &str| -> Result<NbRow, PlanError> {
        let uuid = row
            .get("_uuid")
            .and_then(Value::as_uuid)
            .cloned()
            .ok_or_else(|| PlanError::BadRead(format!("a row of {table} without _uuid")))?;
        Ok(NbRow {
            uuid,
            name: row
                .get("name")
                .and_then(Value::as_str)
                .unwrap_or_default()
                .to_owned(),
            external_ids: row
                .get("external_ids")
                .map(Value::string_map_entries)
                .unwrap_or_default(),
        })
    };
    let mut snapshot = NbSnapshot::default();
    for row in rows(0, LOGICAL_SWITCH)? {
        snapshot.switches.push(NbSwitch {
            row: nb_row(row, LOGICAL_SWITCH)?,
            ports: row.get("ports").map(Value::uuids).unwrap_or_default(),
        });
    }
    for row in rows(1, LOGICAL_SWITCH_PORT)? {
        snapshot.ports.push(nb_row(row, LOGICAL_SWITCH_PORT)?);
    }
    for row in rows(2, LOAD_BALANCER)? {
        snapshot.load_balancers.push(nb_row(row, LOAD_BALANCER)?);
    }
    for row in rows(3, LOGICAL_ROUTER)? {
        snapshot.routers.push(NbSwitch {
            row: nb_row(row, LOGICAL_ROUTER)?,
            ports: row.get("ports").map(Value::uuids).unwrap_or_default(),
        });
    }
    for row in rows(4, LOGICAL_ROUTER_PORT)? {
        snapshot
            .router_ports
            .push(nb_row(row, LOGICAL_ROUTER_PORT)?);
    }
    Ok(snapshot)
}

/// One transaction deleting the northbound rows among `removals`: ports and load balancers are
/// detached from every switch and router that holds them before they go, switches and routers
/// last. Rows already gone match nothing, so the transaction is safe to repeat.
pub fn northbound_ops(removals: &[Removal]) -> Vec<Operation> {
    let mut ops = Vec::new();
    let mut holders = Vec::new();
    for removal in removals {
        match removal {
            Removal::LogicalSwitchPort { uuid, .. } => {
                ops.extend(plan_remove_ports(std::slice::from_ref(uuid)));
            }
            Removal::LogicalRouterPort { uuid, .. } => ops.extend(detach_and_delete(
                LOGICAL_ROUTER_PORT,
                uuid,
                &[(LOGICAL_ROUTER, "ports")],
            )),
            Removal::LoadBalancer { uuid, .. } => ops.extend(detach_and_delete(
                LOAD_BALANCER,
                uuid,
                &[
                    (LOGICAL_SWITCH, "load_balancer"),
                    (LOGICAL_ROUTER, "load_balancer"),
                ],
            )),
            Removal::LogicalSwitch { uuid, .. } => holders.push((LOGICAL_SWITCH, uuid)),
            Removal::LogicalRouter { uuid, .. } => holders.push((LOGICAL_ROUTER, uuid)),
            Removal::PodAnnotations { .. }
            | Removal::NodeAnnotations { .. }
            | Removal::CorednsBlock { .. } => {}
        }
    }
    ops.extend(
        holders
            .into_iter()
            .map(|(table, uuid)| Operation::delete(table, vec![Condition::uuid(uuid)])),
    );
    ops
}

/// Takes `uuid` out of `column` of every row of each `(table, column)` that holds it, then
/// deletes it from `table`: a strong reference left behind would fail the transaction.
fn detach_and_delete(table: &str, uuid: &Uuid, holders: &[(&str, &str)]) -> Vec<Operation> {
    let atom = Value::Atom(Atom::Uuid(uuid.clone()));
    let mut ops: Vec<Operation> = holders
        .iter()
        .map(|(holder, column)| {
            Operation::mutate(
                holder,
                vec![Condition::includes(column, atom.clone())],
                vec![Mutation::delete(column, atom.clone())],
            )
        })
        .collect();
    ops.push(Operation::delete(table, vec![Condition::uuid(uuid)]));
    ops
}

/// What every host end of a pod's veth is named after (nauti-nri's `HOST_IFNAME_PREFIX`).
pub const HOST_IFNAME_PREFIX: &str = "nti";

/// The Open vSwitch interfaces nauti-nri made on a node: the ones carrying its sandbox key.
/// Others' ports (the bridge's own, tunnels, an operator's) carry none and stay.
pub fn nauti_ovs_ports(interfaces: &[nauti_ovn::OvsPort]) -> Vec<String> {
    let mut names: Vec<String> = interfaces
        .iter()
        .filter(|i| {
            i.external_ids
                .contains_key(nauti_api::core::port::OVS_SANDBOX)
        })
        .map(|i| i.name.clone())
        .collect();
    names.sort();
    names.dedup();
    names
}

/// The links of `ip -o link` output (iproute2's or busybox's) that are host ends of Nauti's
/// veths, without their `@peer` suffix.
pub fn host_veths(ip_link: &str) -> Vec<String> {
    let mut names: Vec<String> = ip_link
        .lines()
        .filter_map(|line| line.split(": ").nth(1))
        .map(|name| name.split('@').next().unwrap_or(name).to_owned())
        .filter(|name| name.starts_with(HOST_IFNAME_PREFIX))
        .collect();
    names.sort();
    names.dedup();
    names
}

#[cfg(test)]
mod tests;
