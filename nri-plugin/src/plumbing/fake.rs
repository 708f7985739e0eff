//! A recording fake of the three backends: one node's OVN ports, OVS interfaces and links in
//! memory. Each call is recorded as an [`Op`]; a backend can be taken down (every call fails as
//! an unreachable peer would) or held (calls wait until it is let go, as a stopped
//! `ovsdb-server` would make them).

use std::collections::{BTreeMap, BTreeSet};
use std::path::Path;
use std::sync::{Arc, Mutex, PoisonError};

use async_trait::async_trait;
use nauti_ovn::{LogicalSwitch, LogicalSwitchPort, OvsPort};
use tokio::sync::watch;

use super::backends::{Backends, Links, NorthboundDb, OvsdbError, VswitchDb};
use crate::nic::{NicError, NicPlan};

/// A call the handler made.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Op {
    EnsureLsp(String),
    RemoveLsp(String),
    EnsureOvs(String),
    RemoveOvs(String),
    CreatePair(String),
    ConfigurePodEnd(String),
    RemoveLink(String),
}

/// Which backend.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub enum Peer {
    Nb,
    Ovs,
    Links,
}

#[derive(Default)]
struct State {
    switch: Option<LogicalSwitch>,
    lsps: BTreeMap<String, LogicalSwitchPort>,
    ovs: BTreeMap<String, OvsPort>,
    links: BTreeSet<String>,
    ops: Vec<Op>,
    down: BTreeSet<Peer>,
}

/// One node's backends in memory.
pub struct FakeNode {
    state: Mutex<State>,
    held: watch::Sender<BTreeSet<Peer>>,
}

impl FakeNode {
    /// A node whose cluster switch `switch` has `other_config:subnet=subnet`.
    pub fn new(switch: &str, subnet: &str) -> Arc<Self> {
        let mut ls = LogicalSwitch::new(switch);
        ls.other_config.insert("subnet".into(), subnet.into());
        Arc::new(Self {
            state: Mutex::new(State {
                switch: Some(ls),
                ..State::default()
            }),
            held: watch::Sender::new(BTreeSet::new()),
        })
    }

    /// The backends, all three served by this node.
    pub fn backends(self: &Arc<Self>) -> Backends {
        Backends {
            nb: self.clone(),
            ovs: self.clone(),
            links: self.clone(),
        }
    }

    fn state(&self) -> std::sync::MutexGuard<'_, State> {
        self.state.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// Every call so far, and forgets them.
    pub fn take_ops(&self) -> Vec<Op> {
        std::mem::take(&mut self.state().ops)
    }

    /// Takes a backend down (`true`) or brings it back.
    pub fn set_down(&self, peer: Peer, down: bool) {
        let mut state = self.state();
        if down {
            state.down.insert(peer);
        } else {
            state.down.remove(&peer);
        }
    }

    /// Makes the calls to `peer` wait (`true`) until let go (`false`).
    pub fn hold(&self, peer: Peer, held: bool) {
        self.held.send_modify(|set| {
            if held {
                set.insert(peer);
            } else {
                set.remove(&peer);
            }
        });
    }

    pub fn lsps(&self) -> BTreeMap<String, LogicalSwitchPort> {
        self.state().lsps.clone()
    }

    pub fn ovs_ports(&self) -> BTreeSet<String> {
        self.state().ovs.keys().cloned().collect()
    }

    pub fn links(&self) -> BTreeSet<String> {
        self.state().links.clone()
    }

    pub fn insert_lsp(&self, port: LogicalSwitchPort) {
        self.state().lsps.insert(port.name.clone(), port);
    }

    pub fn insert_ovs(&self, port: OvsPort) {
        self.state().ovs.insert(port.name.clone(), port);
    }

    pub fn insert_link(&self, host: &str) {
        self.state().links.insert(host.to_owned());
    }

    /// Waits while `peer` is held, then fails if it is down; records `op`.
    async fn call(&self, peer: Peer, op: Option<Op>) -> Result<(), ()> {
        let mut held = self.held.subscribe();
        // The sender lives as long as `self`.
        let _ = held.wait_for(|set| !set.contains(&peer)).await;
        let mut state = self.state();
        if state.down.contains(&peer) {
            return Err(());
        }
        state.ops.extend(op);
        Ok(())
    }
}

fn ovsdb_down(peer: Peer) -> OvsdbError {
    OvsdbError::NotConnected {
        endpoint: format!("fake {peer:?}"),
    }
}

#[async_trait]
impl NorthboundDb for FakeNode {
    async fn get_switch(&self, name: &str) -> Result<Option<LogicalSwitch>, OvsdbError> {
        self.call(Peer::Nb, None)
            .await
            .map_err(|()| ovsdb_down(Peer::Nb))?;
        Ok(self.state().switch.clone().filter(|s| s.name == name))
    }

    async fn list_ports(&self, _switch: &str) -> Result<Vec<LogicalSwitchPort>, OvsdbError> {
        self.call(Peer::Nb, None)
            .await
            .map_err(|()| ovsdb_down(Peer::Nb))?;
        Ok(self.state().lsps.values().cloned().collect())
    }

    async fn get_port(&self, name: &str) -> Result<Option<LogicalSwitchPort>, OvsdbError> {
        self.call(Peer::Nb, None)
            .await
            .map_err(|()| ovsdb_down(Peer::Nb))?;
        Ok(self.state().lsps.get(name).cloned())
    }

    async fn ensure_port(&self, _switch: &str, port: &LogicalSwitchPort) -> Result<(), OvsdbError> {
        self.call(Peer::Nb, Some(Op::EnsureLsp(port.name.clone())))
            .await
            .map_err(|()| ovsdb_down(Peer::Nb))?;
        self.state().lsps.insert(port.name.clone(), port.clone());
        Ok(())
    }

    async fn remove_port(&self, name: &str) -> Result<bool, OvsdbError> {
        self.call(Peer::Nb, Some(Op::RemoveLsp(name.to_owned())))
            .await
            .map_err(|()| ovsdb_down(Peer::Nb))?;
        Ok(self.state().lsps.remove(name).is_some())
    }
}

#[async_trait]
impl VswitchDb for FakeNode {
    async fn ensure_port(&self, _bridge: &str, port: &OvsPort) -> Result<(), OvsdbError> {
        self.call(Peer::Ovs, Some(Op::EnsureOvs(port.name.clone())))
            .await
            .map_err(|()| ovsdb_down(Peer::Ovs))?;
        self.state().ovs.insert(port.name.clone(), port.clone());
        Ok(())
    }

    async fn remove_port(&self, name: &str) -> Result<bool, OvsdbError> {
        self.call(Peer::Ovs, Some(Op::RemoveOvs(name.to_owned())))
            .await
            .map_err(|()| ovsdb_down(Peer::Ovs))?;
        Ok(self.state().ovs.remove(name).is_some())
    }

    async fn list_interfaces(&self) -> Result<Vec<OvsPort>, OvsdbError> {
        self.call(Peer::Ovs, None)
            .await
            .map_err(|()| ovsdb_down(Peer::Ovs))?;
        Ok(self.state().ovs.values().cloned().collect())
    }
}

fn links_down() -> NicError {
    NicError::Connection(std::io::Error::other("fake netlink down"))
}

#[async_trait]
impl Links for FakeNode {
    async fn create_pair(&self, _netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
        self.call(Peer::Links, Some(Op::CreatePair(plan.host_ifname.clone())))
            .await
            .map_err(|()| links_down())?;
        self.state().links.insert(plan.host_ifname.clone());
        Ok(())
    }

    async fn configure_pod_end(&self, _netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
        self.call(
            Peer::Links,
            Some(Op::ConfigurePodEnd(plan.host_ifname.clone())),
        )
        .await
        .map_err(|()| links_down())
    }

    async fn remove(&self, host_ifname: &str) -> Result<bool, NicError> {
        self.call(Peer::Links, Some(Op::RemoveLink(host_ifname.to_owned())))
            .await
            .map_err(|()| links_down())?;
        Ok(self.state().links.remove(host_ifname))
    }

    async fn host_ends(&self) -> Result<Vec<String>, NicError> {
        self.call(Peer::Links, None)
            .await
            .map_err(|()| links_down())?;
        Ok(self.state().links.iter().cloned().collect())
    }
}
