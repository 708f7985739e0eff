//! The plan of a reconciliation: what the node holds for pods, compared with the runtime's
//! sandboxes, as a list of plain actions the executor carries out. Pure: no netlink, no OVSDB.
//!
//! ```text
//!   runtime's sandboxes ─┐
//!   node's pod ports  ───┼─► reconcile_plan ─► [Plumb | Replumb | Reannotate | Release | Unplug]
//!   OVS interfaces    ───┤
//!   host ends (nti*)  ───┘
//! ```

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;

use nauti_ovn::{LogicalSwitchPort, OvsPort};

use super::plan::{OptOut, port_address, skip_reason};
use crate::core::PodSandbox;
use crate::nic::host_ifname;

/// What the node holds for pods at one moment.
#[derive(Debug, Default, Clone)]
pub struct NodeSnapshot {
    /// Nauti's pod ports of this node, by sandbox.
    pub ports: BTreeMap<String, LogicalSwitchPort>,
    /// OVS interfaces that name a sandbox (`external_ids:nauti.io/sandbox`), by interface name.
    pub interfaces: BTreeMap<String, String>,
    /// Host ends of pod NICs in the node's namespace.
    pub host_ends: BTreeSet<String>,
}

impl NodeSnapshot {
    /// The interfaces of `all` that name a sandbox.
    pub fn sandbox_interfaces(all: &[OvsPort]) -> BTreeMap<String, String> {
        all.iter()
            .filter_map(|iface| {
                let sandbox = iface.external_ids.get(nauti_api::core::port::OVS_SANDBOX)?;
                Some((iface.name.clone(), sandbox.clone()))
            })
            .collect()
    }
}

/// One thing to do for one sandbox (or what a gone sandbox left).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Action {
    /// Gone sandbox's port: unplug it and remove the port, then free its address.
    Release { sandbox: String, lsp: String },
    /// An OVS interface or host end of a sandbox that is gone and has no port.
    Unplug { host_ifname: String },
    /// A sandbox that needs a NIC and has no port.
    Plumb { sandbox: String },
    /// A sandbox with its port whose host end or OVS interface is missing: plumb it again on
    /// the address its port holds.
    Replumb { sandbox: String, address: IpAddr },
    /// A sandbox with everything in place: make sure its annotations say so.
    Reannotate { sandbox: String, address: IpAddr },
}

/// Compares the runtime's sandboxes with what the node holds. Releases and unplugs come first,
/// so their addresses are free before new pods are plumbed.
pub fn reconcile_plan(pods: &[PodSandbox], node: &NodeSnapshot, opt_out: &OptOut) -> Vec<Action> {
    let mut plan = Vec::new();
    let live: BTreeSet<&str> = pods.iter().map(|p| p.id.as_str()).collect();
    let live_hosts: BTreeSet<String> = pods.iter().map(|p| host_ifname(&p.id)).collect();
    for (sandbox, port) in &node.ports {
        if !live.contains(sandbox.as_str()) {
            plan.push(Action::Release {
                sandbox: sandbox.clone(),
                lsp: port.name.clone(),
            });
        }
    }
    // What a gone sandbox left without a port: a plugin killed between the OVS port and the
    // port write, or a port the controller collected while the plugin was down.
    let released: BTreeSet<String> = node
        .ports
        .keys()
        .filter(|s| !live.contains(s.as_str()))
        .map(|s| host_ifname(s))
        .collect();
    let leftovers: BTreeSet<&String> = node
        .interfaces
        .iter()
        .filter(|(_, sandbox)| !live.contains(sandbox.as_str()))
        .map(|(iface, _)| iface)
        .chain(node.host_ends.iter().filter(|h| !live_hosts.contains(*h)))
        .filter(|h| !released.contains(*h))
        .collect();
    plan.extend(leftovers.into_iter().map(|h| Action::Unplug {
        host_ifname: h.clone(),
    }));
    for pod in pods {
        if !matches!(skip_reason(pod, opt_out), Ok(None)) {
            continue;
        }
        let sandbox = pod.id.clone();
        let Some(port) = node.ports.get(&pod.id) else {
            plan.push(Action::Plumb { sandbox });
            continue;
        };
        let Some(address) = port_address(port) else {
            plan.push(Action::Plumb { sandbox });
            continue;
        };
        let host = host_ifname(&pod.id);
        if node.host_ends.contains(&host) && node.interfaces.contains_key(&host) {
            plan.push(Action::Reannotate { sandbox, address });
        } else {
            plan.push(Action::Replumb { sandbox, address });
        }
    }
    plan
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::plumbing::plan::{NodeNetwork, pod_plan};

    fn mk_node() -> NodeNetwork {
        NodeNetwork {
            node: "node-1".into(),
            logical_switch: "nauti-east".into(),
            cluster_subnet: "10.112.0.0/16".parse().unwrap(),
            gateway: "10.112.0.1".parse().unwrap(),
            global_cidr: "10.112.0.0/12".parse().unwrap(),
            node_block: "10.112.1.0/24".parse().unwrap(),
            pod_ifname: "eth-nauti".into(),
            mtu: 1382,
            tx_checksum_offload: false,
            integration_bridge: "br-int".into(),
            forwarder_namespaces: ["nauti-system".to_owned()].into(),
        }
    }

    fn mk_pod(id: char, name: &str) -> PodSandbox {
        PodSandbox {
            id: id.to_string().repeat(64),
            name: name.into(),
            namespace: "default".into(),
            uid: format!("uid-{name}"),
            netns_path: Some(format!("/var/run/netns/{name}")),
            ..PodSandbox::default()
        }
    }

    /// A node where `pods` are fully plumbed at 10.112.1.<n>.
    fn mk_snapshot(pods: &[&PodSandbox]) -> NodeSnapshot {
        let mut node = NodeSnapshot::default();
        for (n, pod) in pods.iter().enumerate() {
            let ip: IpAddr = format!("10.112.1.{}", n + 2).parse().unwrap();
            let plan = pod_plan(pod, ip, &format!("default_{}", pod.name), &mk_node());
            node.ports.insert(pod.id.clone(), plan.lsp);
            node.interfaces
                .insert(plan.ovs_port.name.clone(), pod.id.clone());
            node.host_ends.insert(plan.ovs_port.name);
        }
        node
    }

    #[test]
    fn a_node_in_step_with_the_runtime_only_reannotates() {
        let a = mk_pod('a', "a");
        let node = mk_snapshot(&[&a]);
        assert_eq!(
            reconcile_plan(std::slice::from_ref(&a), &node, &OptOut::default()),
            vec![Action::Reannotate {
                sandbox: a.id.clone(),
                address: "10.112.1.2".parse().unwrap()
            }]
        );
    }

    #[test]
    fn missing_pods_are_plumbed_and_gone_ones_released_first() {
        let (kept, gone, missed) = (
            mk_pod('a', "kept"),
            mk_pod('b', "gone"),
            mk_pod('c', "missed"),
        );
        let node = mk_snapshot(&[&kept, &gone]);
        let plan = reconcile_plan(&[kept.clone(), missed.clone()], &node, &OptOut::default());
        assert_eq!(
            plan,
            vec![
                Action::Release {
                    sandbox: gone.id.clone(),
                    lsp: "default_gone".into()
                },
                Action::Reannotate {
                    sandbox: kept.id.clone(),
                    address: "10.112.1.2".parse().unwrap()
                },
                Action::Plumb {
                    sandbox: missed.id.clone()
                },
            ]
        );
    }

    #[test]
    fn a_lost_host_end_or_ovs_interface_is_replumbed_on_the_same_address() {
        let (a, b) = (mk_pod('a', "a"), mk_pod('b', "b"));
        let mut node = mk_snapshot(&[&a, &b]);
        node.host_ends.remove(&host_ifname(&a.id));
        node.interfaces.remove(&host_ifname(&b.id));
        let plan = reconcile_plan(&[a.clone(), b.clone()], &node, &OptOut::default());
        assert_eq!(
            plan,
            vec![
                Action::Replumb {
                    sandbox: a.id.clone(),
                    address: "10.112.1.2".parse().unwrap()
                },
                Action::Replumb {
                    sandbox: b.id.clone(),
                    address: "10.112.1.3".parse().unwrap()
                },
            ]
        );
    }

    #[test]
    fn what_a_gone_sandbox_left_without_a_port_is_unplugged() {
        let (a, gone) = (mk_pod('a', "a"), mk_pod('d', "gone"));
        let mut node = mk_snapshot(&[&a]);
        let host = host_ifname(&gone.id);
        node.interfaces.insert(host.clone(), gone.id.clone());
        node.host_ends.insert("ntideadbeef0001".into());
        let plan = reconcile_plan(std::slice::from_ref(&a), &node, &OptOut::default());
        assert_eq!(
            &plan[..2],
            &[
                Action::Unplug { host_ifname: host },
                Action::Unplug {
                    host_ifname: "ntideadbeef0001".into()
                },
            ]
        );
        assert_eq!(plan.len(), 3);
    }

    #[test]
    fn host_network_and_opted_out_pods_get_nothing() {
        let mut hostnet = mk_pod('e', "proxy");
        hostnet.netns_path = None;
        let plan = reconcile_plan(&[hostnet], &NodeSnapshot::default(), &OptOut::default());
        assert!(plan.is_empty(), "{plan:?}");
    }
}
