//! What the cluster controller decides, as plain functions over plain data: no tokio, no kube
//! client, no sockets. Clocks come in as arguments ([`Instant`]s the adapter reads), so every
//! decision is reproducible in a unit test.
//!
//! ```text
//!   NetworkConfig ──► ClusterNetwork ──► desired switch, gateway router and its port rows
//!                                         (ovsdb adapter writes)
//!   Node annotations ──► plan_node_blocks ──► blocks to write             (kube adapter patches)
//!   ports + live pods + now ──► GcTracker ──► ports to remove            (ovsdb adapter deletes)
//! ```

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use ipnet::IpNet;
use nauti_api::{MacAddr, NetworkConfig};
use nauti_ipam::CarveError;
use nauti_ipam::core::carve_node_block;

use crate::core::nb::{LOGICAL_SWITCH_PORT, LogicalSwitch, LogicalSwitchPort, plan_remove_ports};
use crate::core::ops::{Condition, Operation};
use crate::core::router::RouterPort;
use crate::core::value::{Row, Uuid, Value};

use nauti_api::core::port::external_ids;

/// `external_ids` key that says which Nauti component owns a row (the port contract of
/// `nauti_api::core::port`).
pub const OWNER_KEY: &str = external_ids::OWNER;
/// [`OWNER_KEY`] value on pod ports (written by the NRI plugin).
pub const OWNER_POD: &str = external_ids::OWNER_POD;
/// [`OWNER_KEY`] value on the gateway port (written by this controller).
pub const OWNER_CNF: &str = external_ids::OWNER_CNF;
/// `external_ids` key naming the cluster a switch serves.
pub const CLUSTER_KEY: &str = external_ids::CLUSTER;
/// Pod port `external_ids`: the pod's name.
pub const POD_KEY: &str = external_ids::POD;
/// Pod port `external_ids`: the pod's namespace.
pub const NAMESPACE_KEY: &str = external_ids::NAMESPACE;
/// Pod port `external_ids`: the pod's UID, which tells a recreated pod of the same name apart.
pub const UID_KEY: &str = external_ids::UID;
/// Pod port `external_ids`: the node whose block holds the port's address.
pub const NODE_KEY: &str = external_ids::NODE;
/// The switch port of the gateway router (which holds the gateway address).
pub const CNF_PORT: &str = "nauti-cnf";

/// Settings that keep the controller from starting.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SetupError {
    /// The shared configuration breaks a rule.
    #[error("invalid network configuration: {0}")]
    Config(#[from] nauti_api::ConfigError),
    /// No cluster subnet: this controller serves one assigned subnet and cannot pick one.
    #[error(
        "no cluster subnet for cluster {cluster_id:?}; pass --cluster-subnet (the slice of the global CIDR the hub assigned)"
    )]
    NoClusterSubnet {
        /// The cluster.
        cluster_id: String,
    },
    /// The subnet is too small to hold a gateway and a pod.
    #[error("cluster subnet {0} is too small for a gateway address")]
    NoGateway(IpNet),
}

/// One cluster's slice of the global network as the controller serves it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClusterNetwork {
    /// The cluster ID (written into `external_ids` so rows can be traced to their cluster).
    pub cluster_id: String,
    /// The logical switch spanning the cluster's nodes.
    pub switch: String,
    /// The cluster subnet.
    pub subnet: IpNet,
    /// The first usable address, reserved for the CNF pod.
    pub gateway: IpAddr,
    /// Prefix length of each node's block.
    pub node_prefix: u8,
}

impl ClusterNetwork {
    /// Checks the configuration and works out names and the gateway. `switch` overrides the
    /// default name `nauti-<clusterID>`.
    pub fn new(config: &NetworkConfig, switch: Option<String>) -> Result<Self, SetupError> {
        config.validate()?;
        let subnet = config
            .cluster_subnet
            .ok_or_else(|| SetupError::NoClusterSubnet {
                cluster_id: config.cluster_id.clone(),
            })?;
        let gateway = NetworkConfig::gateway_of(&subnet).ok_or(SetupError::NoGateway(subnet))?;
        Ok(Self {
            cluster_id: config.cluster_id.clone(),
            switch: switch.unwrap_or_else(|| format!("nauti-{}", config.cluster_id)),
            subnet,
            gateway,
            node_prefix: config.node_block_prefix_len,
        })
    }

    /// The switch as wanted: OVN's subnet and the gateway excluded from its dynamic addresses.
    pub fn desired_switch(&self) -> LogicalSwitch {
        LogicalSwitch::new(&self.switch)
            .with_subnet(self.subnet.to_string())
            .with_exclude_ips([self.gateway.to_string()])
            .with_external_id(CLUSTER_KEY, &self.cluster_id)
    }

    /// The distributed router that holds the gateway address: named after the switch.
    pub fn router(&self) -> String {
        gateway_router(&self.switch)
    }

    /// The router's `external_ids`.
    pub fn router_external_ids(&self) -> BTreeMap<String, String> {
        BTreeMap::from([
            (OWNER_KEY.to_owned(), OWNER_CNF.to_owned()),
            (CLUSTER_KEY.to_owned(), self.cluster_id.clone()),
        ])
    }

    /// The router's port on the switch: the gateway address with its derived MAC, so the pods'
    /// neighbour entries for the gateway stay right whichever CNF pod is active.
    pub fn desired_router_port(&self) -> RouterPort {
        let prefix = self.subnet.prefix_len();
        RouterPort::new(
            gateway_router_port(&self.switch),
            MacAddr::from_ip(self.gateway).to_string(),
            format!("{}/{prefix}", self.gateway),
        )
        .with_external_id(OWNER_KEY, OWNER_CNF)
        .with_external_id(CLUSTER_KEY, &self.cluster_id)
    }

    /// The switch's side of the router port. The active CNF pod sets the router's route to the
    /// global network through its own address (see `nauti_ovn::core::router`).
    pub fn desired_cnf_port(&self) -> LogicalSwitchPort {
        let mut port = LogicalSwitchPort::new(CNF_PORT)
            .with_kind("router")
            .with_option("router-port", gateway_router_port(&self.switch))
            .with_external_id(OWNER_KEY, OWNER_CNF)
            .with_external_id(CLUSTER_KEY, &self.cluster_id);
        port.addresses = vec!["router".to_owned()];
        port
    }
}

/// The name of the gateway router of the switch `switch`.
pub fn gateway_router(switch: &str) -> String {
    format!("{switch}-gw")
}

/// The name of the gateway router's port on the switch `switch`.
pub fn gateway_router_port(switch: &str) -> String {
    format!("{switch}-gw-port")
}

// === node blocks ===

/// A Node as block assignment sees it: its name and the value of its `nauti.io/node-cidr`
/// annotation. The order of the input is the priority when two nodes claim overlapping
/// blocks (the adapter sorts oldest first, so the node that most likely has pods keeps its
/// block).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeView {
    /// Node name.
    pub name: String,
    /// The annotation's value, if present.
    pub annotation: Option<String>,
}

/// Why an existing annotation cannot stand.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BadBlock {
    /// Not a CIDR, or one with host bits set.
    #[error("{value:?} is not a network in CIDR notation: {reason}")]
    Malformed {
        /// The value found.
        value: String,
        /// What is wrong.
        reason: String,
    },
    /// Not inside the cluster subnet (or of the other family, or as large as the subnet).
    #[error("{block} is not a block inside cluster subnet {subnet}")]
    Outside {
        /// The block found.
        block: IpNet,
        /// The cluster subnet.
        subnet: IpNet,
    },
    /// Too small to hold a pod address.
    #[error("{block} is too small to hold a pod address")]
    TooSmall {
        /// The block found.
        block: IpNet,
    },
    /// Shares addresses with a block an earlier node keeps.
    #[error("{block} overlaps {other_block} of node {other}")]
    Overlaps {
        /// The block found.
        block: IpNet,
        /// The node that keeps the overlapping block.
        other: String,
        /// That node's block.
        other_block: IpNet,
    },
}

/// A block to write onto a node.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct BlockAssignment {
    /// Node name.
    pub node: String,
    /// The block.
    pub block: IpNet,
    /// The annotation it replaces and why, when there was one.
    pub replaces: Option<BadBlock>,
}

/// A node that could not get a block.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BlockError {
    /// Every block of the subnet is in use.
    #[error(
        "no free /{prefix_len} block left in cluster subnet {subnet} for node {node} ({in_use} blocks in use)"
    )]
    Exhausted {
        /// The node left without a block.
        node: String,
        /// The cluster subnet.
        subnet: IpNet,
        /// Block size.
        prefix_len: u8,
        /// How many blocks are taken.
        in_use: usize,
    },
    /// The carving itself refused (a bad prefix length; validated config prevents it).
    #[error("cannot carve a block for node {node}: {source}")]
    Carve {
        /// The node.
        node: String,
        /// Why.
        #[source]
        source: CarveError,
    },
}

/// What [`plan_node_blocks`] decided.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct BlockPlan {
    /// Nodes whose annotation stands, with their block.
    pub keep: BTreeMap<String, IpNet>,
    /// Blocks to write, in input order.
    pub assign: Vec<BlockAssignment>,
    /// Nodes left without a block.
    pub errors: Vec<BlockError>,
}

impl BlockPlan {
    /// True when nothing has to be written.
    pub fn is_settled(&self) -> bool {
        self.assign.is_empty() && self.errors.is_empty()
    }
}

/// Checks one annotation value against the subnet, without looking at other nodes.
pub fn parse_block(value: &str, subnet: &IpNet) -> Result<IpNet, BadBlock> {
    let block: IpNet = value.trim().parse().map_err(|e| BadBlock::Malformed {
        value: value.to_owned(),
        reason: format!("{e}"),
    })?;
    if block.trunc() != block {
        return Err(BadBlock::Malformed {
            value: value.to_owned(),
            reason: format!("host bits set; the network is {}", block.trunc()),
        });
    }
    if !subnet.contains(&block) || block.prefix_len() <= subnet.prefix_len() {
        return Err(BadBlock::Outside {
            block,
            subnet: *subnet,
        });
    }
    if block.prefix_len() + 2 > block.max_prefix_len() {
        return Err(BadBlock::TooSmall { block });
    }
    Ok(block)
}

/// Decides every node's block from the current annotations.
///
/// Valid annotations stand, whatever their size (a block written under an older
/// `--node-block-prefix` keeps serving its pods). Nodes without one, or with one that is
/// malformed, outside the subnet or overlapping an earlier node's, get the lowest free block of
/// `network.node_prefix`. The block holding the gateway is handed out like any other: the node
/// allocator skips the gateway address itself. Pure and idempotent: once the assignments are
/// written, planning again yields nothing to do.
///
/// `held` are the addresses of pod ports on the switch. An address outside every kept block
/// belongs to pods of a node whose annotation vanished (the Node deleted, or recreated without
/// it) while they run: no other node gets a block holding it, and a node that comes back gets
/// the block its own ports sit in, so its pods keep addresses of their node's block.
pub fn plan_node_blocks(
    network: &ClusterNetwork,
    nodes: &[NodeView],
    held: &[HeldAddress],
) -> BlockPlan {
    let mut plan = BlockPlan::default();
    let mut kept: Vec<(IpNet, &str)> = Vec::new();
    let mut needy: Vec<(&str, Option<BadBlock>)> = Vec::new();
    for node in nodes {
        let Some(value) = &node.annotation else {
            needy.push((&node.name, None));
            continue;
        };
        let checked = parse_block(value, &network.subnet).and_then(|block| {
            match kept
                .iter()
                .find(|(b, _)| nauti_ipam::core::overlaps(b, &block))
            {
                Some((other_block, other)) => Err(BadBlock::Overlaps {
                    block,
                    other: (*other).to_owned(),
                    other_block: *other_block,
                }),
                None => Ok(block),
            }
        });
        match checked {
            Ok(block) => {
                kept.push((block, &node.name));
                plan.keep.insert(node.name.clone(), block);
            }
            Err(bad) => needy.push((&node.name, Some(bad))),
        }
    }
    let mut taken: Vec<IpNet> = kept.iter().map(|(b, _)| *b).collect();
    let stranded: Vec<&HeldAddress> = held
        .iter()
        .filter(|h| network.subnet.contains(&h.ip) && !taken.iter().any(|b| b.contains(&h.ip)))
        .collect();
    for (node, replaces) in needy {
        let others_hold = stranded
            .iter()
            .filter(|h| h.node.as_deref() != Some(node))
            .map(|h| IpNet::from(h.ip));
        let unavailable: Vec<IpNet> = taken.iter().copied().chain(others_hold).collect();
        let carved = own_block(network, node, &stranded)
            .and_then(|own| {
                carve_node_block(network.subnet, network.node_prefix, &unavailable, Some(own)).ok()
            })
            .map_or_else(
                || carve_node_block(network.subnet, network.node_prefix, &unavailable, None),
                Ok,
            );
        match carved {
            Ok(block) => {
                taken.push(block);
                plan.assign.push(BlockAssignment {
                    node: node.to_owned(),
                    block,
                    replaces,
                });
            }
            Err(CarveError::Full { .. }) => plan.errors.push(BlockError::Exhausted {
                node: node.to_owned(),
                subnet: network.subnet,
                prefix_len: network.node_prefix,
                in_use: taken.len() + stranded.len(),
            }),
            Err(source) => plan.errors.push(BlockError::Carve {
                node: node.to_owned(),
                source,
            }),
        }
    }
    plan
}

/// The address of a pod port on the switch and the node whose plugin wrote it (`node` in its
/// `external_ids`; absent on ports written before the key existed).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HeldAddress {
    /// The port's address.
    pub ip: IpAddr,
    /// The node that owns the port.
    pub node: Option<String>,
}

impl HeldAddress {
    /// The addresses of the pod ports among `ports` (other ports, such as the gateway's, hold
    /// addresses the node allocators never hand out).
    pub fn of_pod_ports(ports: &[LogicalSwitchPort]) -> Vec<Self> {
        ports
            .iter()
            .filter(|p| p.external_ids.get(OWNER_KEY).map(String::as_str) == Some(OWNER_POD))
            .flat_map(|p| {
                let node = p.external_ids.get(NODE_KEY).cloned();
                p.ips().into_iter().map(move |ip| Self {
                    ip,
                    node: node.clone(),
                })
            })
            .collect()
    }
}

/// The block of the configured size that holds every stranded address of `node`'s own ports,
/// when there is one.
fn own_block(network: &ClusterNetwork, node: &str, stranded: &[&HeldAddress]) -> Option<IpNet> {
    let mut own = stranded.iter().filter(|h| h.node.as_deref() == Some(node));
    let first = own.next()?;
    let block = IpNet::new(first.ip, network.node_prefix).ok()?.trunc();
    own.all(|h| block.contains(&h.ip)).then_some(block)
}

// === garbage collection ===

/// A pod by namespace and name.
pub type PodKey = (String, String);

/// What a logical switch port is to the garbage collector.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PortKind {
    /// Not a pod port (no `nauti.io/owner=pod`): never touched.
    NotOurs,
    /// A pod port whose pod (same UID) exists.
    Live,
    /// A pod port whose pod is gone or was replaced by another of the same name.
    Orphan,
    /// A pod port without the pod's name or namespace: kept, since nothing proves it is stale.
    Unidentified,
}

/// Classifies a port against the pods that exist (`live`: namespace/name → UID).
pub fn classify_port(port: &LogicalSwitchPort, live: &HashMap<PodKey, String>) -> PortKind {
    let ids = &port.external_ids;
    if ids.get(OWNER_KEY).map(String::as_str) != Some(OWNER_POD) {
        return PortKind::NotOurs;
    }
    let (Some(ns), Some(name)) = (ids.get(NAMESPACE_KEY), ids.get(POD_KEY)) else {
        return PortKind::Unidentified;
    };
    match live.get(&(ns.clone(), name.clone())) {
        None => PortKind::Orphan,
        Some(uid) => match ids.get(UID_KEY) {
            Some(port_uid) if !port_uid.is_empty() && port_uid != uid => PortKind::Orphan,
            _ => PortKind::Live,
        },
    }
}

/// Remembers since when each orphan port has been seen orphaned, so that a port is removed only
/// after it stayed orphaned for the whole grace period. The grace covers the window where the
/// NRI plugin has written the port but the pod is not yet visible to our watch (or was deleted
/// and recreated under the same name).
#[derive(Debug, Clone, Default)]
pub struct GcTracker {
    orphaned_since: HashMap<String, Instant>,
}

impl GcTracker {
    /// An empty tracker (after a leadership change the grace starts over).
    pub fn new() -> Self {
        Self::default()
    }

    /// Looks at the current ports and pods at `now`; returns the ports orphaned for at least
    /// `grace`. Ports no longer orphaned (their pod appeared) or gone are forgotten.
    pub fn observe(
        &mut self,
        now: Instant,
        grace: Duration,
        ports: &[LogicalSwitchPort],
        live: &HashMap<PodKey, String>,
    ) -> Vec<LogicalSwitchPort> {
        let mut seen = HashMap::with_capacity(self.orphaned_since.len());
        let mut due = Vec::new();
        for port in ports {
            if classify_port(port, live) != PortKind::Orphan {
                continue;
            }
            let since = self.orphaned_since.get(&port.name).copied().unwrap_or(now);
            seen.insert(port.name.clone(), since);
            if now.saturating_duration_since(since) >= grace {
                due.push(port.clone());
            }
        }
        self.orphaned_since = seen;
        due
    }

    /// How many ports are waiting out their grace period.
    pub fn pending(&self) -> usize {
        self.orphaned_since.len()
    }

    /// How long until the first waiting port is due, so the caller can look again then.
    pub fn next_due(&self, now: Instant, grace: Duration) -> Option<Duration> {
        self.orphaned_since
            .values()
            .map(|since| (*since + grace).saturating_duration_since(now))
            .min()
    }
}

/// Operations that remove one port, but only if its `external_ids` are still exactly those the
/// decision was made on: a pod recreated under the same name gets a port of the same name with
/// a new UID between our read and our write, and that port must survive.
pub fn plan_guarded_port_removal(
    uuid: &Uuid,
    external_ids: &BTreeMap<String, String>,
) -> Vec<Operation> {
    let mut ops = vec![Operation::Wait {
        table: LOGICAL_SWITCH_PORT.to_owned(),
        conditions: vec![Condition::uuid(uuid)],
        columns: vec!["external_ids".to_owned()],
        until_equal: true,
        rows: vec![Row::from([(
            "external_ids".to_owned(),
            Value::from(external_ids),
        )])],
        timeout_ms: Some(0),
    }];
    ops.extend(plan_remove_ports(std::slice::from_ref(uuid)));
    ops
}

#[cfg(test)]
mod tests;
