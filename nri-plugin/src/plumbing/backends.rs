//! What pod plumbing writes to, each behind a small trait: OVN's northbound database, the node's
//! Open vSwitch database and the kernel's links. The real adapters are thin wrappers of
//! `nauti_ovn` and [`crate::nic`]; `super::fake` records the same calls for unit tests, so plumb,
//! undo, reconcile and the failure policy are tested without root.

use std::path::Path;
use std::sync::Arc;

use async_trait::async_trait;
use nauti_ovn::{LogicalSwitch, LogicalSwitchPort, OpenVswitch, OvsPort};

use crate::nic::{self, NicError, NicPlan};

/// OVSDB errors, as the client reports them.
pub type OvsdbError = nauti_ovn::Error;

/// The cluster's logical switch in OVN's northbound database.
#[async_trait]
pub trait NorthboundDb: Send + Sync + 'static {
    /// The switch, if it exists.
    async fn get_switch(&self, name: &str) -> Result<Option<LogicalSwitch>, OvsdbError>;
    /// Every port of the switch.
    async fn list_ports(&self, switch: &str) -> Result<Vec<LogicalSwitchPort>, OvsdbError>;
    /// One port by name.
    async fn get_port(&self, name: &str) -> Result<Option<LogicalSwitchPort>, OvsdbError>;
    /// Makes the port exist in the switch as wanted.
    async fn ensure_port(&self, switch: &str, port: &LogicalSwitchPort) -> Result<(), OvsdbError>;
    /// Removes a port; `false` when it did not exist.
    async fn remove_port(&self, name: &str) -> Result<bool, OvsdbError>;
}

/// The node's Open vSwitch database.
#[async_trait]
pub trait VswitchDb: Send + Sync + 'static {
    /// Makes the port exist on the bridge as wanted.
    async fn ensure_port(&self, bridge: &str, port: &OvsPort) -> Result<(), OvsdbError>;
    /// Removes a port; `false` when it did not exist.
    async fn remove_port(&self, name: &str) -> Result<bool, OvsdbError>;
    /// Every interface.
    async fn list_interfaces(&self) -> Result<Vec<OvsPort>, OvsdbError>;
}

/// The kernel's links: the veth pair of each pod.
#[async_trait]
pub trait Links: Send + Sync + 'static {
    /// Creates the pair, its pod end in `netns`.
    async fn create_pair(&self, netns: &Path, plan: &NicPlan) -> Result<(), NicError>;
    /// Names, addresses and routes the pod end.
    async fn configure_pod_end(&self, netns: &Path, plan: &NicPlan) -> Result<(), NicError>;
    /// Deletes the pair by its host end; `false` when it did not exist.
    async fn remove(&self, host_ifname: &str) -> Result<bool, NicError>;
    /// Host ends present in the node's namespace.
    async fn host_ends(&self) -> Result<Vec<String>, NicError>;
}

/// The three, as the handler holds them.
#[derive(Clone)]
pub struct Backends {
    pub nb: Arc<dyn NorthboundDb>,
    pub ovs: Arc<dyn VswitchDb>,
    pub links: Arc<dyn Links>,
}

impl Backends {
    /// The real ones: OVSDB clients and rtnetlink.
    pub fn real(nb: nauti_ovn::Northbound, ovs: OpenVswitch) -> Self {
        Self {
            nb: Arc::new(nb),
            ovs: Arc::new(ovs),
            links: Arc::new(Rtnetlink),
        }
    }
}

// === impl NorthboundDb ===

#[async_trait]
impl NorthboundDb for nauti_ovn::Northbound {
    async fn get_switch(&self, name: &str) -> Result<Option<LogicalSwitch>, OvsdbError> {
        self.get_logical_switch(name).await
    }

    async fn list_ports(&self, switch: &str) -> Result<Vec<LogicalSwitchPort>, OvsdbError> {
        self.list_logical_switch_ports(switch).await
    }

    async fn get_port(&self, name: &str) -> Result<Option<LogicalSwitchPort>, OvsdbError> {
        self.get_logical_switch_port(name).await
    }

    async fn ensure_port(&self, switch: &str, port: &LogicalSwitchPort) -> Result<(), OvsdbError> {
        self.ensure_logical_switch_port(switch, port).await
    }

    async fn remove_port(&self, name: &str) -> Result<bool, OvsdbError> {
        self.remove_logical_switch_port(name).await
    }
}

// === impl VswitchDb ===

#[async_trait]
impl VswitchDb for OpenVswitch {
    async fn ensure_port(&self, bridge: &str, port: &OvsPort) -> Result<(), OvsdbError> {
        OpenVswitch::ensure_port(self, bridge, port).await
    }

    async fn remove_port(&self, name: &str) -> Result<bool, OvsdbError> {
        OpenVswitch::remove_port(self, name).await
    }

    async fn list_interfaces(&self) -> Result<Vec<OvsPort>, OvsdbError> {
        OpenVswitch::list_interfaces(self).await
    }
}

// === impl Links ===

/// [`Links`] over rtnetlink ([`crate::nic`]).
#[derive(Debug, Clone, Copy)]
pub struct Rtnetlink;

#[async_trait]
impl Links for Rtnetlink {
    async fn create_pair(&self, netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
        nic::create_pair(netns, plan).await
    }

    async fn configure_pod_end(&self, netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
        nic::configure_pod_end(netns, plan).await
    }

    async fn remove(&self, host_ifname: &str) -> Result<bool, NicError> {
        nic::unplumb(host_ifname).await
    }

    async fn host_ends(&self) -> Result<Vec<String>, NicError> {
        nic::host_ends(nic::HOST_IFNAME_PREFIX).await
    }
}
