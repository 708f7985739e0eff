//! The WireGuard peers and routes a gateway wants, from its role and the valid Peers.
//!
//! Hub and spoke, direct where possible: every member peers with the hub, which forwards between
//! members; two members that are both public also peer directly. A member's hub peer carries
//! every slice it does not reach directly, so traffic to any other cluster has exactly one way
//! out. Members that are not public keep their NAT mapping open with a persistent keepalive and
//! leave their endpoint to the hub to learn from handshakes.

use std::collections::BTreeSet;
use std::net::{IpAddr, SocketAddr};

use ipnet::IpNet;

use super::key::PublicKey;
use super::review::{EndpointHost, ValidPeer};

/// Keepalive a member behind NAT sends towards the hub, in seconds (what innernet and Kilo use:
/// under the 30 s many NATs keep an idle UDP mapping).
pub const NAT_KEEPALIVE_SECS: u16 = 25;

/// Who this gateway is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalRole {
    /// This cluster's ID; its own Peer is skipped.
    pub cluster_id: String,
    /// True on the hub.
    pub is_hub: bool,
    /// True when this member is reachable from every other cluster.
    pub is_public: bool,
}

/// One WireGuard peer as the device should have it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WantedPeer {
    /// The peer's public key.
    pub public_key: PublicKey,
    /// Where to send to; `None` leaves the device's learned endpoint alone.
    pub endpoint: Option<SocketAddr>,
    /// Destinations routed to this peer, sorted.
    pub allowed_ips: Vec<IpNet>,
    /// Persistent keepalive in seconds; `None` is off.
    pub keepalive: Option<u16>,
}

/// Everything the gateway should have.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct TopologyPlan {
    /// WireGuard peers, sorted by key.
    pub peers: Vec<WantedPeer>,
    /// Networks to route into the WireGuard interface, sorted.
    pub routes: Vec<IpNet>,
    /// Peers whose endpoint host name did not resolve: (cluster ID, host). They are still
    /// peered (a hub learns endpoints from handshakes), but a member cannot dial them.
    pub unresolved: Vec<(String, String)>,
    /// True on a member when no valid hub Peer exists: only direct peers are reachable.
    pub missing_hub: bool,
}

/// Works out the plan. `resolve` turns an endpoint host name into an address (the adapter does
/// the DNS lookup beforehand and passes a lookup in its results).
pub fn plan_topology(
    local: &LocalRole,
    peers: &[ValidPeer],
    resolve: impl Fn(&str) -> Option<IpAddr>,
) -> TopologyPlan {
    let others: Vec<&ValidPeer> = peers
        .iter()
        .filter(|p| p.cluster_id != local.cluster_id)
        .collect();
    let mut unresolved = Vec::new();
    let mut missing_hub = false;
    let mut endpoint_of = |p: &ValidPeer| -> Option<SocketAddr> {
        let ep = p.endpoint.as_ref()?;
        match &ep.host {
            EndpointHost::Ip(ip) => Some(SocketAddr::new(*ip, ep.port)),
            EndpointHost::Name(name) => {
                let ip = resolve(name);
                if ip.is_none() {
                    unresolved.push((p.cluster_id.clone(), name.clone()));
                }
                ip.map(|ip| SocketAddr::new(ip, ep.port))
            }
        }
    };
    let mut wanted = Vec::new();
    if local.is_hub {
        for p in others.iter().filter(|p| !p.is_hub) {
            wanted.push(WantedPeer {
                public_key: p.public_key,
                endpoint: endpoint_of(p),
                allowed_ips: sorted(p.slices.iter().copied()),
                keepalive: None,
            });
        }
    } else {
        let direct: Vec<&ValidPeer> = others
            .iter()
            .copied()
            .filter(|p| !p.is_hub && local.is_public && p.is_public)
            .collect();
        for p in &direct {
            wanted.push(WantedPeer {
                public_key: p.public_key,
                endpoint: endpoint_of(p),
                allowed_ips: sorted(p.slices.iter().copied()),
                keepalive: None,
            });
        }
        match others.iter().find(|p| p.is_hub) {
            Some(hub) => {
                let via_hub = others
                    .iter()
                    .filter(|p| !direct.iter().any(|d| d.cluster_id == p.cluster_id))
                    .flat_map(|p| p.slices.iter().copied());
                wanted.push(WantedPeer {
                    public_key: hub.public_key,
                    endpoint: endpoint_of(hub),
                    allowed_ips: sorted(via_hub),
                    keepalive: (!local.is_public).then_some(NAT_KEEPALIVE_SECS),
                });
            }
            None => missing_hub = true,
        }
    }
    wanted.sort_by_key(|p| p.public_key);
    TopologyPlan {
        routes: sorted(wanted.iter().flat_map(|p| p.allowed_ips.iter().copied())),
        peers: wanted,
        unresolved,
        missing_hub,
    }
}

fn sorted(nets: impl Iterator<Item = IpNet>) -> Vec<IpNet> {
    nets.collect::<BTreeSet<_>>().into_iter().collect()
}

#[cfg(test)]
#[path = "topology_tests.rs"]
mod tests;
