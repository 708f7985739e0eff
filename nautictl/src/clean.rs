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
use nauti_ovn::core::lb::LOAD_BALANCER;
use nauti_ovn::core::lb::{OWNER_KEY as LB_OWNER_KEY, plan_remove_load_balancers};
use nauti_ovn::core::nb::{LOGICAL_SWITCH, LOGICAL_SWITCH_PORT, plan_remove_ports};
use nauti_ovn::{Condition, Operation, OperationResult, Row, Uuid, Value};

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

/// A logical switch and the ports it holds.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NbSwitch {
    /// The switch row.
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
}

impl Removal {
    /// Whether the OVN northbound database holds it.
    pub fn is_northbound(&self) -> bool {
        matches!(
            self,
            Self::LogicalSwitchPort { .. } | Self::LoadBalancer { .. } | Self::LogicalSwitch { .. }
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

fn plan_northbound(nb: &NbSnapshot) -> Vec<Removal> {
    let nauti_switches: Vec<&NbSwitch> = nb
        .switches
        .iter()
        .filter(|s| is_nauti_row(&s.row.external_ids))
        .collect();
    // Which switch holds a port, for the listing and to take every port of Nauti's switches.
    let mut holder: BTreeMap<&Uuid, &NbSwitch> = BTreeMap::new();
    for switch in &nb.switches {
        for port in &switch.ports {
            holder.insert(port, switch);
        }
    }
    let mut removals = Vec::new();
    let mut ports: Vec<&NbRow> = nb
        .ports
        .iter()
        .filter(|port| {
            is_nauti_row(&port.external_ids)
                || holder
                    .get(&port.uuid)
                    .is_some_and(|s| is_nauti_row(&s.row.external_ids))
        })
        .collect();
    ports.sort_by(|a, b| a.name.cmp(&b.name).then(a.uuid.cmp(&b.uuid)));
    for port in ports {
        removals.push(Removal::LogicalSwitchPort {
            name: port.name.clone(),
            uuid: port.uuid.clone(),
            switch: holder.get(&port.uuid).map(|s| s.row.name.clone()),
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
    let mut switches = nauti_switches;
    switches.sort_by(|a, b| a.row.name.cmp(&b.row.name));
    for switch in switches {
        removals.push(Removal::LogicalSwitch {
            name: switch.row.name.clone(),
            uuid: switch.row.uuid.clone(),
        });
    }
    removals
}

/// The read `clean` makes of the northbound database, in one transaction: switches, ports and
/// load balancers, with only the columns [`parse_northbound`] needs.
pub fn read_northbound() -> Vec<Operation> {
    vec![
        Operation::select(
            LOGICAL_SWITCH,
            vec![],
            &["_uuid", "name", "external_ids", "ports"],
        ),
        Operation::select(
            LOGICAL_SWITCH_PORT,
            vec![],
            &["_uuid", "name", "external_ids"],
        ),
        Operation::select(LOAD_BALANCER, vec![], &["_uuid", "name", "external_ids"]),
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
    Ok(snapshot)
}

/// One transaction deleting the northbound rows among `removals`: ports and load balancers are
/// detached from every switch that holds them before they go, switches last. Rows already gone
/// match nothing, so the transaction is safe to repeat.
pub fn northbound_ops(removals: &[Removal]) -> Vec<Operation> {
    let mut ports = Vec::new();
    let mut load_balancers = Vec::new();
    let mut switches = Vec::new();
    for removal in removals {
        match removal {
            Removal::LogicalSwitchPort { uuid, .. } => ports.push(uuid.clone()),
            Removal::LoadBalancer { uuid, .. } => load_balancers.push(uuid.clone()),
            Removal::LogicalSwitch { uuid, .. } => switches.push(uuid.clone()),
            Removal::PodAnnotations { .. }
            | Removal::NodeAnnotations { .. }
            | Removal::CorednsBlock { .. } => {}
        }
    }
    let mut ops = plan_remove_ports(&ports);
    ops.extend(plan_remove_load_balancers(&load_balancers));
    ops.extend(
        switches
            .iter()
            .map(|uuid| Operation::delete(LOGICAL_SWITCH, vec![Condition::uuid(uuid)])),
    );
    ops
}

#[cfg(test)]
mod tests;
