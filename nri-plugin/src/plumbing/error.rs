//! Why a pod could not be plumbed.

use std::time::Duration;

use crate::core::PodSandbox;
use crate::handler::HandlerError;
use crate::nic;

use super::plan::NetworkError;

/// Why a pod could not be plumbed (or released).
#[derive(Debug, thiserror::Error)]
pub enum PlumbError {
    #[error("node {node} has no `nauti.io/node-cidr` annotation yet (is nauti-ovnmaster running?)")]
    NoNodeBlock { node: String },
    #[error("node {node}: {reason}")]
    BadNode { node: String, reason: String },
    #[error("logical switch {0} not found in OVN (is nauti-ovnmaster running?)")]
    NoLogicalSwitch(String),
    #[error(transparent)]
    Network(#[from] NetworkError),
    #[error("OVN northbound database, {what}: {source}")]
    Northbound {
        what: String,
        #[source]
        source: Box<nauti_ovn::Error>,
    },
    #[error("the node's Open vSwitch database, {what}: {source}")]
    Vswitch {
        what: String,
        #[source]
        source: Box<nauti_ovn::Error>,
    },
    #[error("node block: {0}")]
    Range(#[from] nauti_ipam::RangeError),
    #[error("no free address in node block {block}: {source}")]
    Exhausted {
        block: ipnet::IpNet,
        #[source]
        source: nauti_ipam::AllocError,
    },
    #[error("pod NIC: {0}")]
    Nic(#[from] nic::NicError),
    #[error("pod has no network namespace path")]
    NoNetns,
    #[error("no answer within {after:?}, still {steps}")]
    Timeout { after: Duration, steps: String },
    /// A forwarder brings the cluster's network, so it never waits for it: it starts without
    /// its NIC, which follows once the node has a block.
    #[error(
        "a forwarder starts before the node's network: its NIC is plumbed once the node has a block (waited {after:?})"
    )]
    ForwarderBeforeNetwork { after: Duration },
    #[error("the plumbing task ended abnormally: {0}")]
    Task(String),
}

impl PlumbError {
    pub(super) fn northbound(what: impl Into<String>) -> impl FnOnce(nauti_ovn::Error) -> Self {
        let what = what.into();
        move |source| Self::Northbound {
            what,
            source: Box::new(source),
        }
    }

    pub(super) fn vswitch(what: impl Into<String>) -> impl FnOnce(nauti_ovn::Error) -> Self {
        let what = what.into();
        move |source| Self::Vswitch {
            what,
            source: Box::new(source),
        }
    }

    /// The NRI status the runtime sees: a peer away or too slow is `Unavailable`.
    pub(super) fn into_handler_error(self, pod: &PodSandbox) -> HandlerError {
        let context = format!("pod {}: second NIC not plumbed", pod.key());
        match self {
            Self::Northbound { .. }
            | Self::Vswitch { .. }
            | Self::Timeout { .. }
            | Self::ForwarderBeforeNetwork { .. }
            | Self::NoNodeBlock { .. } => HandlerError::Unavailable {
                what: context,
                source: Box::new(self),
            },
            other => HandlerError::Failed {
                context,
                source: Box::new(other),
            },
        }
    }
}
