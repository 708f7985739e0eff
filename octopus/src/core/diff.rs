//! The peer diff: the fewest changes that take a WireGuard device from what it reports to what
//! the topology wants (the idea of innernet's `PeerDiff`), and the same for routes.
//!
//! Changes are ordered removals, then updates, then additions, each by key, so that applying
//! them never leaves one allowed IP claimed by two peers for longer than one step, and two runs
//! over the same input produce the same changes.

use std::collections::{BTreeMap, BTreeSet};
use std::net::SocketAddr;

use ipnet::IpNet;

use super::key::PublicKey;
use super::topology::WantedPeer;

/// A peer as the device reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DevicePeer {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// The endpoint it is configured with or learned from the last authenticated packet.
    pub endpoint: Option<SocketAddr>,
    /// Its allowed IPs, in any order.
    pub allowed_ips: Vec<IpNet>,
    /// Persistent keepalive in seconds; `None` (or 0) is off.
    pub keepalive: Option<u16>,
}

/// What to change on one existing peer; `None` fields stay as they are.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerUpdate {
    /// The peer.
    pub public_key: PublicKey,
    /// A new endpoint to dial.
    pub endpoint: Option<SocketAddr>,
    /// The complete new list of allowed IPs (replacing the old one).
    pub allowed_ips: Option<Vec<IpNet>>,
    /// The new keepalive; `Some(None)` turns it off.
    pub keepalive: Option<Option<u16>>,
}

/// One change to a device.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum PeerChange {
    /// Remove the peer and its allowed IPs.
    Remove(PublicKey),
    /// Change some of a peer's settings.
    Update(PeerUpdate),
    /// Add a new peer.
    Add(WantedPeer),
}

/// The changes from `current` to `wanted`. A wanted peer without an endpoint keeps the one the
/// device has (learned from handshakes); a keepalive of 0 counts as off.
pub fn diff_peers(wanted: &[WantedPeer], current: &[DevicePeer]) -> Vec<PeerChange> {
    let wanted: BTreeMap<PublicKey, &WantedPeer> =
        wanted.iter().map(|p| (p.public_key, p)).collect();
    let current: BTreeMap<PublicKey, &DevicePeer> =
        current.iter().map(|p| (p.public_key, p)).collect();
    let removals = current
        .keys()
        .filter(|k| !wanted.contains_key(k))
        .map(|k| PeerChange::Remove(*k));
    let updates = wanted.iter().filter_map(|(key, want)| {
        let have = current.get(key)?;
        let endpoint = want.endpoint.filter(|ep| have.endpoint != Some(*ep));
        let allowed_ips = (as_set(&want.allowed_ips) != as_set(&have.allowed_ips))
            .then(|| as_set(&want.allowed_ips).into_iter().collect());
        let keepalive = (normalize(want.keepalive) != normalize(have.keepalive))
            .then(|| normalize(want.keepalive));
        let changed = endpoint.is_some() || allowed_ips.is_some() || keepalive.is_some();
        changed.then_some({
            PeerChange::Update(PeerUpdate {
                public_key: *key,
                endpoint,
                allowed_ips,
                keepalive,
            })
        })
    });
    let additions = wanted
        .iter()
        .filter(|(k, _)| !current.contains_key(k))
        .map(|(_, want)| PeerChange::Add((*want).clone()));
    removals.chain(updates).chain(additions).collect()
}

/// Routes to add and remove.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RouteDiff {
    /// Wanted but missing, sorted.
    pub add: Vec<IpNet>,
    /// Present but not wanted, sorted.
    pub remove: Vec<IpNet>,
}

impl RouteDiff {
    /// True when nothing needs to change.
    pub fn is_empty(&self) -> bool {
        self.add.is_empty() && self.remove.is_empty()
    }
}

/// The route changes from `current` (the routes through the WireGuard interface) to `wanted`.
pub fn diff_routes(wanted: &[IpNet], current: &[IpNet]) -> RouteDiff {
    let wanted = as_set(wanted);
    let current = as_set(current);
    RouteDiff {
        add: wanted.difference(&current).copied().collect(),
        remove: current.difference(&wanted).copied().collect(),
    }
}

fn as_set(nets: &[IpNet]) -> BTreeSet<IpNet> {
    nets.iter().copied().collect()
}

fn normalize(keepalive: Option<u16>) -> Option<u16> {
    keepalive.filter(|k| *k != 0)
}

#[cfg(test)]
#[path = "diff_tests.rs"]
mod tests;
