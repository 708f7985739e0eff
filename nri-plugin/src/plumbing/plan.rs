//! What to do for a pod sandbox, worked out from plain data: no netlink, no OVSDB, no kube.

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use ipnet::IpNet;
use nauti_api::core::annotations::pod_enabled;
use nauti_api::{MacAddr, PodNetwork, PodNicType, Route};
use nauti_ipam::OwnerId;
use nauti_ovn::{LogicalSwitchPort, OvsPort};

use crate::core::PodSandbox;
use crate::nic::{NicPlan, host_ifname};

/// `external_ids` keys Nauti writes on each pod's logical switch port.
pub mod external_ids {
    /// The pod's name.
    pub const POD: &str = "pod";
    /// The pod's namespace.
    pub const NAMESPACE: &str = "namespace";
    /// The pod's UID.
    pub const UID: &str = "uid";
    /// The node whose plugin owns the port.
    pub const NODE: &str = "node";
    /// The runtime's sandbox ID: the allocation owner, and how a restarted plugin recognises
    /// the ports of sandboxes it plumbed before.
    pub const SANDBOX: &str = "sandbox";
    /// Marks the port as Nauti's.
    pub const OWNER: &str = "nauti.io/owner";
    /// The value of [`OWNER`] on pod ports.
    pub const OWNER_POD: &str = "pod";
}

/// The node-level facts every plan needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NodeNetwork {
    /// This node's name (the Node object).
    pub node: String,
    /// The cluster's logical switch.
    pub logical_switch: String,
    /// The cluster's slice of the global network (all pods of the cluster share this L2 subnet).
    pub cluster_subnet: IpNet,
    /// The CNF's address, first usable of the cluster subnet.
    pub gateway: IpAddr,
    /// The whole global network, routed through the gateway.
    pub global_cidr: IpNet,
    /// This node's block of the cluster subnet, from the Node annotation `nauti.io/node-cidr`.
    pub node_block: IpNet,
    /// The pod NIC's name.
    pub pod_ifname: String,
    /// The pod NIC's MTU (derived from the underlay and the encapsulations).
    pub mtu: u32,
    /// Leave TX checksum offload on (kernel datapath) or turn it off (userspace datapath).
    pub tx_checksum_offload: bool,
    /// The OVS integration bridge.
    pub integration_bridge: String,
}

/// Which pods get no second NIC, besides host-network ones.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct OptOut {
    /// Namespaces whose pods are skipped.
    pub namespaces: BTreeSet<String>,
}

/// Why a sandbox gets no second NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Skip {
    /// `hostNetwork: true`: the pod has no network namespace of its own.
    HostNetwork,
    /// The pod says `nauti.io/enabled: "false"`.
    OptedOut,
    /// The pod's namespace is in the opt-out list.
    NamespaceOptedOut,
}

/// Decides whether a sandbox gets a second NIC. A malformed `nauti.io/enabled` is an error.
pub fn skip_reason(pod: &PodSandbox, opt_out: &OptOut) -> Result<Option<Skip>, String> {
    if pod.netns_path.as_deref().is_none_or(str::is_empty) {
        return Ok(Some(Skip::HostNetwork));
    }
    if !pod_enabled(&pod.annotations).map_err(|e| e.to_string())? {
        return Ok(Some(Skip::OptedOut));
    }
    if opt_out.namespaces.contains(&pod.namespace) {
        return Ok(Some(Skip::NamespaceOptedOut));
    }
    Ok(None)
}

/// The logical switch port of a pod: `<namespace>_<pod>` (DESIGN.md, step 4).
pub fn lsp_name(namespace: &str, pod: &str) -> String {
    format!("{namespace}_{pod}")
}

/// The allocation owner of a sandbox's NIC.
pub fn owner(sandbox_id: &str, pod_ifname: &str) -> OwnerId {
    OwnerId::new(sandbox_id, pod_ifname)
}

/// Everything to write for one pod, in the order the handler writes it.
#[derive(Debug, Clone, PartialEq)]
pub struct PodPlan {
    pub lsp: LogicalSwitchPort,
    pub nic: NicPlan,
    pub ovs_port: OvsPort,
    pub network: PodNetwork,
}

/// The plan for `pod` with address `ip` (allocated from the node block).
pub fn pod_plan(pod: &PodSandbox, ip: IpAddr, node: &NodeNetwork) -> PodPlan {
    let mac = MacAddr::from_ip(ip);
    let lsp_name = lsp_name(&pod.namespace, &pod.name);
    let lsp = LogicalSwitchPort::new(&lsp_name)
        .with_address(&mac.to_string(), &[&ip.to_string()])
        .with_external_id(external_ids::POD, &pod.name)
        .with_external_id(external_ids::NAMESPACE, &pod.namespace)
        .with_external_id(external_ids::UID, &pod.uid)
        .with_external_id(external_ids::NODE, &node.node)
        .with_external_id(external_ids::SANDBOX, &pod.id)
        .with_external_id(external_ids::OWNER, external_ids::OWNER_POD);
    let host_ifname = host_ifname(&pod.id);
    // The prefix of the whole cluster subnet: every pod of the cluster is an on-link neighbour.
    let address =
        IpNet::new(ip, node.cluster_subnet.prefix_len()).unwrap_or_else(|_| IpNet::from(ip));
    let nic = NicPlan {
        host_ifname: host_ifname.clone(),
        pod_ifname: node.pod_ifname.clone(),
        mac,
        address,
        routes: vec![(node.global_cidr, node.gateway)],
        mtu: node.mtu,
        tx_checksum_offload: node.tx_checksum_offload,
    };
    let ovs_port = OvsPort::new(&host_ifname)
        .with_iface_id(&lsp_name)
        .with_external_id("attached-mac", mac.to_string())
        .with_external_id("nauti.io/sandbox", &pod.id);
    let network = PodNetwork {
        ip_address: ip,
        mac_address: mac,
        cidr: node.cluster_subnet,
        gateway: node.gateway,
        logical_switch: node.logical_switch.clone(),
        pod_nic_type: PodNicType::VethPair,
        routes: vec![Route {
            dst: node.global_cidr,
            gw: node.gateway,
        }],
        allocated: true,
    };
    PodPlan {
        lsp,
        nic,
        ovs_port,
        network,
    }
}

/// The address of a port written by [`pod_plan`]: the first IP of its `addresses`.
pub fn port_address(lsp: &LogicalSwitchPort) -> Option<IpAddr> {
    lsp.addresses
        .first()?
        .split_whitespace()
        .skip(1)
        .find_map(|word| word.parse().ok())
}

/// Nauti's pod ports of this node, keyed by sandbox ID.
pub fn node_ports<'a>(
    ports: &'a [LogicalSwitchPort],
    node: &str,
) -> BTreeMap<&'a str, &'a LogicalSwitchPort> {
    ports
        .iter()
        .filter(|p| p.external_ids.get(external_ids::NODE).map(String::as_str) == Some(node))
        .filter(|p| {
            p.external_ids.get(external_ids::OWNER).map(String::as_str)
                == Some(external_ids::OWNER_POD)
        })
        .filter_map(|p| Some((p.external_ids.get(external_ids::SANDBOX)?.as_str(), p)))
        .collect()
}

/// The (owner, address) pairs to rebuild the node's allocator from OVN, the source of truth.
pub fn allocations_from_ports(
    ports: &BTreeMap<&str, &LogicalSwitchPort>,
    pod_ifname: &str,
) -> Vec<(OwnerId, IpAddr)> {
    ports
        .iter()
        .filter_map(|(sandbox, port)| Some((owner(sandbox, pod_ifname), port_address(port)?)))
        .collect()
}

/// What `Synchronize` must do.
#[derive(Debug, Default, Clone, PartialEq, Eq)]
pub struct SyncPlan {
    /// Sandboxes that need a second NIC and have no port: plumb them.
    pub plumb: Vec<String>,
    /// Sandboxes that have a port: check their NIC, replumb when it is gone.
    pub verify: Vec<String>,
    /// Ports of sandboxes the runtime no longer has: release them.
    pub release: Vec<String>,
}

/// Compares the runtime's sandboxes with the node's ports.
pub fn sync_plan(
    pods: &[PodSandbox],
    ports: &BTreeMap<&str, &LogicalSwitchPort>,
    opt_out: &OptOut,
) -> SyncPlan {
    let mut plan = SyncPlan::default();
    let mut live = BTreeSet::new();
    for pod in pods {
        live.insert(pod.id.as_str());
        if !matches!(skip_reason(pod, opt_out), Ok(None)) {
            continue;
        }
        if ports.contains_key(pod.id.as_str()) {
            plan.verify.push(pod.id.clone());
        } else {
            plan.plumb.push(pod.id.clone());
        }
    }
    plan.release = ports
        .keys()
        .filter(|sandbox| !live.contains(*sandbox))
        .map(|s| (*s).to_owned())
        .collect();
    plan
}

#[cfg(test)]
mod tests;
