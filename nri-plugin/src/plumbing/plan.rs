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

pub use nauti_api::core::port::{external_ids, lsp_name};

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
    /// Namespaces whose pods may be forwarders (`nauti.io/forwarder: "true"`, the CNF pods).
    pub forwarder_namespaces: BTreeSet<String>,
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

/// Whether the pod's port goes without port security: it asks to forward (the CNF) and its
/// namespace is trusted with that. Elsewhere the annotation is ignored: any pod could otherwise
/// send with forged source addresses.
pub fn is_forwarder(pod: &PodSandbox, node: &NodeNetwork) -> bool {
    forwards_from_trusted(pod, &node.forwarder_namespaces)
}

/// Whether the pod asks to forward and `trusted` holds its namespace.
pub fn forwards_from_trusted(pod: &PodSandbox, trusted: &BTreeSet<String>) -> bool {
    nauti_api::core::annotations::pod_forwards(&pod.annotations) && trusted.contains(&pod.namespace)
}

/// The plan for `pod` with address `ip` (allocated from the node block) on the port `lsp_name`
/// (see [`port_name_for`]).
pub fn pod_plan(pod: &PodSandbox, ip: IpAddr, lsp_name: &str, node: &NodeNetwork) -> PodPlan {
    let mac = MacAddr::from_ip(ip);
    let lsp = LogicalSwitchPort::new(lsp_name)
        .with_address(&mac.to_string(), &[&ip.to_string()])
        .with_external_id(external_ids::POD, &pod.name)
        .with_external_id(external_ids::NAMESPACE, &pod.namespace)
        .with_external_id(external_ids::UID, &pod.uid)
        .with_external_id(external_ids::NODE, &node.node)
        .with_external_id(external_ids::SANDBOX, &pod.id)
        .with_external_id(external_ids::OWNER, external_ids::OWNER_POD);
    let mut lsp = lsp;
    if is_forwarder(pod, node) {
        lsp.port_security.clear();
    }
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
        .with_iface_id(lsp_name)
        .with_external_id("attached-mac", mac.to_string())
        .with_external_id(nauti_api::core::port::OVS_SANDBOX, &pod.id);
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

/// The port name for a sandbox, given the port that holds the plain name now (if any).
///
/// The plain `<namespace>_<pod>` unless a pod port of another node holds it: a pod of the same
/// name there (a StatefulSet pod after a force delete) keeps its port and its address, and this
/// sandbox gets a name of its own. A port of this node under the plain name is taken over: it is
/// an earlier sandbox of the same pod, whose release leaves the port alone once it is rewritten.
pub fn port_name_for(pod: &PodSandbox, holder: Option<&LogicalSwitchPort>, node: &str) -> String {
    let plain = lsp_name(&pod.namespace, &pod.name);
    let held_elsewhere = holder.is_some_and(|port| {
        let ids = &port.external_ids;
        ids.get(external_ids::OWNER).map(String::as_str) == Some(external_ids::OWNER_POD)
            && ids.get(external_ids::SANDBOX).map(String::as_str) != Some(pod.id.as_str())
            && ids.get(external_ids::NODE).map(String::as_str) != Some(node)
    });
    if held_elsewhere {
        nauti_api::core::port::lsp_name_of_sandbox(&pod.namespace, &pod.name, &pod.id)
    } else {
        plain
    }
}

/// Whether `port` is the one `sandbox` wrote.
pub fn is_port_of(port: &LogicalSwitchPort, sandbox: &str) -> bool {
    port.external_ids
        .get(external_ids::SANDBOX)
        .map(String::as_str)
        == Some(sandbox)
}

/// Why the node's network cannot be worked out from its block and the switch.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NetworkError {
    #[error("logical switch {switch}: other_config:subnet `{value}` is not a CIDR with a gateway")]
    BadSwitchSubnet { switch: String, value: String },
    #[error("node block {block} does not lie in the cluster subnet {subnet}")]
    BlockOutsideSubnet { block: IpNet, subnet: IpNet },
}

/// The node's facts once its block and the switch's subnet are known.
pub fn node_network(
    settings: &super::PlumbingSettings,
    node_block: IpNet,
    switch_subnet: Option<&str>,
) -> Result<NodeNetwork, NetworkError> {
    let bad = || NetworkError::BadSwitchSubnet {
        switch: settings.logical_switch.clone(),
        value: switch_subnet.unwrap_or_default().to_owned(),
    };
    let cluster_subnet: IpNet = switch_subnet
        .unwrap_or_default()
        .parse()
        .map_err(|_| bad())?;
    if !cluster_subnet.contains(&node_block) {
        return Err(NetworkError::BlockOutsideSubnet {
            block: node_block,
            subnet: cluster_subnet,
        });
    }
    let gateway = nauti_api::NetworkConfig::gateway_of(&cluster_subnet).ok_or_else(bad)?;
    Ok(NodeNetwork {
        node: settings.node_name.clone(),
        logical_switch: settings.logical_switch.clone(),
        cluster_subnet,
        gateway,
        global_cidr: settings.global_cidr,
        node_block,
        pod_ifname: settings.pod_ifname.clone(),
        mtu: settings.mtu,
        tx_checksum_offload: settings.tx_checksum_offload,
        integration_bridge: settings.integration_bridge.clone(),
        forwarder_namespaces: settings.forwarder_namespaces.clone(),
    })
}

/// The address of a port written by [`pod_plan`]: the first IP of its `addresses`.
pub fn port_address(lsp: &LogicalSwitchPort) -> Option<IpAddr> {
    lsp.ips().first().copied()
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

#[cfg(test)]
mod tests;
