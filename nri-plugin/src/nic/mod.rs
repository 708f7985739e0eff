//! The pod's second NIC: a veth pair whose host end is plugged into `br-int` and whose pod end,
//! renamed `eth-nauti`, carries the pod's address on the global network.
//!
//! [`NicPlan`] is plain data worked out by the core; [`plumb`], [`unplumb`] and [`inspect`] carry
//! it out with rtnetlink, in the node's namespace for the host end and on a thread that entered the
//! pod's namespace for the pod end. No `ip`, no `nsenter`.

mod ethtool;
mod link;
mod netns;

use std::net::IpAddr;
use std::path::{Path, PathBuf};

use ipnet::IpNet;
use nauti_api::MacAddr;

pub use link::{PodNicState, configure_pod_end, create_pair, host_ends, inspect, plumb, unplumb};

/// Interface names are limited to 15 bytes by the kernel.
pub const IFNAME_MAX: usize = 15;

/// Everything needed to plumb one pod's NIC.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct NicPlan {
    /// Host end, plugged into `br-int` (see [`host_ifname`]).
    pub host_ifname: String,
    /// Name inside the pod, `eth-nauti` by default.
    pub pod_ifname: String,
    pub mac: MacAddr,
    /// The pod's address with the prefix length of the cluster subnet (on-link neighbours).
    pub address: IpNet,
    /// Routes through the gateway, e.g. the whole global CIDR.
    pub routes: Vec<(IpNet, IpAddr)>,
    pub mtu: u32,
    /// Whether to leave TX checksum offload on in the pod. A veth whose peer sits in an OVS
    /// bridge on the userspace datapath must turn it off, or TCP silently fails.
    pub tx_checksum_offload: bool,
}

/// What every host end's name starts with.
pub const HOST_IFNAME_PREFIX: &str = "nti";

/// The host end's name for a sandbox: `nti` + the first 12 hex digits of its ID (15 bytes).
///
/// Deterministic, so that a restarted plugin finds the veth of a sandbox it plumbed before.
pub fn host_ifname(sandbox_id: &str) -> String {
    let digits: String = sandbox_id
        .chars()
        .filter(char::is_ascii_alphanumeric)
        .take(IFNAME_MAX - 3)
        .collect();
    format!("{HOST_IFNAME_PREFIX}{digits}")
}

/// What went wrong while plumbing a NIC; each variant names the link or namespace.
#[derive(Debug, thiserror::Error)]
pub enum NicError {
    #[error("netlink {op} on `{link}` failed: {source}")]
    Netlink {
        op: &'static str,
        link: String,
        #[source]
        source: rtnetlink::Error,
    },
    #[error("netlink connection: {0}")]
    Connection(#[source] std::io::Error),
    #[error("link `{0}` not found")]
    LinkNotFound(String),
    #[error("network namespace {path}: {source}")]
    Netns {
        path: PathBuf,
        #[source]
        source: std::io::Error,
    },
    #[error("sysctl {key}: {source}")]
    Sysctl {
        key: String,
        #[source]
        source: std::io::Error,
    },
    #[error("ethtool on `{link}`: {source}")]
    Ethtool {
        link: String,
        #[source]
        source: std::io::Error,
    },
    #[error("route {dst} via {gw}: {reason}")]
    BadRoute {
        dst: IpNet,
        gw: IpAddr,
        reason: String,
    },
    #[error("the thread working in {0} ended without an answer")]
    ThreadLost(PathBuf),
}

impl NicError {
    fn netns(path: &Path, source: std::io::Error) -> Self {
        Self::Netns {
            path: path.to_owned(),
            source,
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn host_names_fit_the_kernel_limit_and_are_stable() {
        let id = "4f1c0d8e9a7b6c5d4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d";
        let name = host_ifname(id);
        assert_eq!(name, "nti4f1c0d8e9a7b");
        assert_eq!(name.len(), IFNAME_MAX);
        assert_eq!(host_ifname(id), name);
    }

    #[test]
    fn odd_sandbox_ids_still_give_valid_names() {
        assert_eq!(host_ifname("ab/../c"), "ntiabc");
        assert!(host_ifname("").len() <= IFNAME_MAX);
    }
}
