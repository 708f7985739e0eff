//! The gateway: applies a [`TopologyPlan`] to a WireGuard device and to the network namespace
//! it runs in.
//!
//! One [`Gateway::apply`] takes the namespace from whatever it has to what the plan wants:
//! 1. the WireGuard interface up, at the MTU [`plan_mtu`](crate::core::plan_mtu) chose;
//! 2. the device's peers, by the peer diff against what the device reports, in one call to
//!    the device; a peer whose cluster changed its key is removed and added again under the
//!    new key, keeping the endpoint the old one had learned ([`carry_endpoints`]);
//! 3. routes to the other clusters' slices (and any extra ranges, e.g. the clusterset block)
//!    onto the interface, by the route diff against the routes the interface has;
//! 4. forwarding on for each family routed, since the gateway forwards pods' packets.
//!
//! Every step is idempotent, so applying on every pass also repairs drift (a route deleted by
//! hand comes back). Routes this module adds carry protocol `static` in the main table; only
//! those on the WireGuard interface are ever removed.

pub mod file;
pub mod netlink;

use std::collections::{BTreeMap, BTreeSet};
use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use nauti_api::IpFamily;
use nauti_api::core::config::MtuConfig;

use crate::core::review::{Endpoint, EndpointHost};
use crate::core::{
    DevicePeer, MtuPlan, MtuPlanError, PeerChange, PeerVerdict, RouteDiff, SlicePolicy,
    TopologyPlan, ValidPeer, diff_peers, diff_routes, plan_mtu,
};
use crate::wg::kernel::{ChosenBackend, KernelDevice, KernelDeviceConfig};
use crate::wg::userspace::{Device, DeviceConfig};
use crate::wg::{AnyDevice, DeviceState, WgError, WireGuard};
pub use netlink::route_on_interface;

/// Sysctl that turns IPv4 forwarding on in the calling thread's network namespace.
pub const IPV4_FORWARDING: &str = "/proc/sys/net/ipv4/ip_forward";
/// Sysctl that turns IPv6 forwarding on in the calling thread's network namespace.
pub const IPV6_FORWARDING: &str = "/proc/sys/net/ipv6/conf/all/forwarding";

/// What the gateway is told besides the plan.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct GatewayConfig {
    /// The WireGuard interface's name.
    pub ifname: String,
    /// Its MTU (the tunnel MTU of [`plan_mtu`](crate::core::plan_mtu)).
    pub mtu: u16,
    /// Ranges routed into the tunnel besides the plan's (the clusterset block: its addresses
    /// must never leave by the default route).
    pub extra_routes: Vec<IpNet>,
    /// Which WireGuard implementation [`Gateway::start`] runs.
    pub backend: ChosenBackend,
}

impl GatewayConfig {
    /// The gateway of interface `ifname` over an underlay of `underlay_mtu` (WireGuard over
    /// IPv4, the family the userspace device listens on) for the slices of `policy`; the
    /// clusterset block is routed into the tunnel too.
    pub fn derive(
        ifname: &str,
        underlay_mtu: u16,
        policy: &SlicePolicy,
    ) -> Result<(Self, MtuPlan), MtuPlanError> {
        let pods = match policy.global() {
            IpNet::V4(_) => IpFamily::V4,
            IpNet::V6(_) => IpFamily::V6,
        };
        let mtu = plan_mtu(
            &MtuConfig {
                underlay_mtu,
                tunnel_family: IpFamily::V4,
                pod_mtu: None,
            },
            pods,
        )?;
        let config = Self {
            ifname: ifname.to_owned(),
            mtu: mtu.tunnel_mtu,
            extra_routes: vec![policy.clusterset()],
            backend: ChosenBackend::Userspace,
        };
        Ok((config, mtu))
    }
}

/// Something the gateway could not do; each names what failed.
#[derive(Debug, thiserror::Error)]
pub enum GatewayError {
    /// No rtnetlink socket.
    #[error("open an rtnetlink socket: {0}")]
    Connection(#[source] std::io::Error),
    /// The WireGuard interface is not in this namespace.
    #[error("WireGuard interface {0} not found in this network namespace")]
    LinkNotFound(String),
    /// An rtnetlink request failed.
    #[error("{op} {target}: {source}")]
    Netlink {
        /// What was asked (e.g. "add route").
        op: &'static str,
        /// On what (a link or a route).
        target: String,
        /// The kernel's answer.
        #[source]
        source: rtnetlink::Error,
    },
    /// A route the kernel cannot be asked for (e.g. a prefix longer than its family).
    #[error("route {route} onto {ifname}: {reason}")]
    BadRoute {
        /// The route.
        route: IpNet,
        /// The interface.
        ifname: String,
        /// Why it cannot be built.
        reason: String,
    },
    /// Reading or writing a sysctl failed.
    #[error("sysctl {key}: {source}")]
    Sysctl {
        /// The file under `/proc/sys`.
        key: &'static str,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The device refused its state or the peer changes.
    #[error("WireGuard device {ifname}: {what}: {source}")]
    Device {
        /// The interface.
        ifname: String,
        /// What was being done.
        what: &'static str,
        /// The device's error.
        #[source]
        source: WgError,
    },
}

/// What one [`Gateway::apply`] changed.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Applied {
    /// Peer changes made on the device, in order.
    pub peers: Vec<PeerChange>,
    /// Routes added and removed.
    pub routes: RouteDiff,
    /// The interface's MTU before, when it was changed.
    pub mtu_was: Option<u32>,
    /// True when the interface was brought up.
    pub brought_up: bool,
    /// Forwarding sysctls turned on.
    pub forwarding: Vec<&'static str>,
}

impl Applied {
    /// True when the namespace already was as planned.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
            && self.routes.is_empty()
            && self.mtu_was.is_none()
            && !self.brought_up
            && self.forwarding.is_empty()
    }
}

/// The routes onto the WireGuard interface: the plan's and the extra ranges, sorted, each once.
pub fn wanted_routes(plan: &TopologyPlan, extra: &[IpNet]) -> Vec<IpNet> {
    plan.routes
        .iter()
        .chain(extra)
        .map(IpNet::trunc)
        .collect::<BTreeSet<_>>()
        .into_iter()
        .collect()
}

/// The forwarding sysctls the routes need: one per family routed.
pub fn forwarding_sysctls(routes: &[IpNet]) -> Vec<&'static str> {
    let mut keys = Vec::new();
    if routes.iter().any(|r| matches!(r, IpNet::V4(_))) {
        keys.push(IPV4_FORWARDING);
    }
    if routes.iter().any(|r| matches!(r, IpNet::V6(_))) {
        keys.push(IPV6_FORWARDING);
    }
    keys
}

/// The device's peers in the shape the peer diff compares.
pub fn device_peers(state: &DeviceState) -> Vec<DevicePeer> {
    state.peers.iter().map(|p| p.config.clone()).collect()
}

/// The peer changes with each replaced peer's endpoint carried over: a cluster that rotated
/// its key shows up in the diff as the old key removed and the new one added. When the new
/// peer has no endpoint of its own (a member behind NAT, whose endpoint the device learned
/// from its handshakes) it takes the one the removed peer with the same allowed IPs had, so
/// this side can start the handshake with the new key at once instead of waiting for the
/// other side to speak.
pub fn carry_endpoints(mut changes: Vec<PeerChange>, current: &[DevicePeer]) -> Vec<PeerChange> {
    let removed: Vec<&DevicePeer> = changes
        .iter()
        .filter_map(|c| match c {
            PeerChange::Remove(key) => current.iter().find(|p| p.public_key == *key),
            _ => None,
        })
        .collect();
    let carried: Vec<Option<std::net::SocketAddr>> = changes
        .iter()
        .map(|c| match c {
            PeerChange::Add(wanted) if wanted.endpoint.is_none() => removed
                .iter()
                .find(|old| {
                    old.allowed_ips
                        .iter()
                        .any(|n| wanted.allowed_ips.contains(n))
                })
                .and_then(|old| old.endpoint),
            _ => None,
        })
        .collect();
    for (change, endpoint) in changes.iter_mut().zip(carried) {
        if let (PeerChange::Add(wanted), Some(endpoint)) = (change, endpoint) {
            wanted.endpoint = Some(endpoint);
        }
    }
    changes
}

/// The usable Peers of `verdicts`; each refused one is logged with its reason, so an operator
/// sees why a cluster gets no tunnel.
pub fn usable_peers(verdicts: Vec<PeerVerdict>) -> Vec<ValidPeer> {
    verdicts
        .into_iter()
        .filter_map(|v| match v.result {
            Ok(valid) => Some(valid),
            Err(rejection) => {
                tracing::warn!(
                    peer = %v.name,
                    reason = rejection.condition_reason(),
                    %rejection,
                    "Peer refused: no WireGuard peer and no routes for it"
                );
                None
            }
        })
        .collect()
}

/// Looks up the endpoints given as host names (first address of each, 2 s each at most).
pub async fn resolve_endpoints(peers: &[ValidPeer]) -> BTreeMap<String, IpAddr> {
    let mut out = BTreeMap::new();
    for peer in peers {
        if let Some(Endpoint {
            host: EndpointHost::Name(name),
            port,
        }) = &peer.endpoint
        {
            let lookup = tokio::time::timeout(
                Duration::from_secs(2),
                tokio::net::lookup_host((name.as_str(), *port)),
            )
            .await;
            if let Ok(Ok(mut addrs)) = lookup
                && let Some(addr) = addrs.next()
            {
                out.insert(name.clone(), addr.ip());
            }
        }
    }
    out
}

/// Logs what a pass changed (nothing when it changed nothing).
pub fn log_applied(ifname: &str, applied: &Applied) {
    if applied.is_empty() {
        return;
    }
    let peers: Vec<String> = applied
        .peers
        .iter()
        .map(|c| match c {
            PeerChange::Remove(key) => format!("remove {key}"),
            PeerChange::Update(u) => format!("update {}", u.public_key),
            PeerChange::Add(p) => format!("add {} {:?}", p.public_key, p.allowed_ips),
        })
        .collect();
    tracing::info!(
        ifname,
        ?peers,
        routes_added = ?applied.routes.add,
        routes_removed = ?applied.routes.remove,
        mtu_was = ?applied.mtu_was,
        brought_up = applied.brought_up,
        forwarding = ?applied.forwarding,
        "gateway applied the WireGuard plan"
    );
}

/// A WireGuard device and the namespace it routes in.
pub struct Gateway<W> {
    device: W,
    config: GatewayConfig,
    links: netlink::Links,
}

impl Gateway<Device> {
    /// Starts the userspace device in the calling thread's namespace, serves its UAPI socket
    /// (so `wg show` reads it) and wraps it. Needs a Tokio runtime (for rtnetlink).
    pub fn start_userspace(
        config: GatewayConfig,
        private_key: [u8; 32],
        listen_port: u16,
    ) -> Result<Self, GatewayError> {
        let device_error = |what| {
            let ifname = config.ifname.clone();
            move |source| GatewayError::Device {
                ifname,
                what,
                source,
            }
        };
        let device = Device::start(&DeviceConfig {
            ifname: config.ifname.clone(),
            private_key,
            listen_port,
            mtu: config.mtu,
        })
        .map_err(device_error("start"))?;
        device
            .serve_uapi(&config.ifname)
            .map_err(device_error("serve UAPI"))?;
        Self::new(device, config)
    }
}

impl Gateway<AnyDevice> {
    /// Starts the device `config.backend` names in the calling thread's namespace: a kernel
    /// `wireguard` link, or the userspace device with its UAPI socket. Needs a Tokio runtime.
    pub fn start(
        config: GatewayConfig,
        private_key: [u8; 32],
        listen_port: u16,
    ) -> Result<Self, GatewayError> {
        match config.backend {
            ChosenBackend::Userspace => {
                let gateway = Gateway::start_userspace(config, private_key, listen_port)?;
                Ok(Gateway {
                    device: AnyDevice::Userspace(gateway.device),
                    links: gateway.links,
                    config: gateway.config,
                })
            }
            ChosenBackend::Kernel => {
                let device = KernelDevice::create(&KernelDeviceConfig {
                    ifname: config.ifname.clone(),
                    private_key,
                    listen_port,
                    fwmark: None,
                })
                .map_err(|source| GatewayError::Device {
                    ifname: config.ifname.clone(),
                    what: "start",
                    source,
                })?;
                Self::new(AnyDevice::Kernel(device), config)
            }
        }
    }
}

impl<W: WireGuard> Gateway<W> {
    /// Wraps a running device whose interface is `config.ifname`. Needs a Tokio runtime.
    pub fn new(device: W, config: GatewayConfig) -> Result<Self, GatewayError> {
        Ok(Self {
            device,
            config,
            links: netlink::Links::connect()?,
        })
    }

    /// The WireGuard interface's name.
    pub fn ifname(&self) -> &str {
        &self.config.ifname
    }

    /// The device.
    pub fn device(&self) -> &W {
        &self.device
    }

    /// The device's state with its counters.
    pub fn state(&self) -> Result<DeviceState, GatewayError> {
        self.device.state().map_err(|source| GatewayError::Device {
            ifname: self.config.ifname.clone(),
            what: "read state",
            source,
        })
    }

    /// Switches the running device to `private_key` in place (its peers stay and handshake
    /// again); true when the key changed.
    pub fn set_private_key(&self, private_key: &[u8; 32]) -> Result<bool, GatewayError> {
        self.device
            .set_private_key(private_key)
            .map_err(|source| GatewayError::Device {
                ifname: self.config.ifname.clone(),
                what: "set the private key",
                source,
            })
    }

    /// Takes the device and the namespace to `plan`; see the module documentation.
    pub async fn apply(&self, plan: &TopologyPlan) -> Result<Applied, GatewayError> {
        let ifname = &self.config.ifname;
        let link = self.links.find(ifname).await?;
        let mut applied = Applied::default();
        let mtu = u32::from(self.config.mtu);
        if link.mtu != Some(mtu) || !link.up {
            self.links.set_mtu_up(&link, mtu).await?;
            applied.mtu_was = link.mtu.filter(|was| *was != mtu);
            applied.brought_up = !link.up;
        }

        let state = self.state()?;
        let current = device_peers(&state);
        applied.peers = carry_endpoints(diff_peers(&plan.peers, &current), &current);
        self.device
            .apply(&applied.peers)
            .map_err(|source| GatewayError::Device {
                ifname: ifname.clone(),
                what: "apply peer changes",
                source,
            })?;

        let wanted = wanted_routes(plan, &self.config.extra_routes);
        let current = self.links.routes(&link).await?;
        applied.routes = diff_routes(&wanted, &current);
        for route in &applied.routes.add {
            self.links.add_route(&link, *route).await?;
        }
        for route in &applied.routes.remove {
            self.links.del_route(&link, *route).await?;
        }

        for key in forwarding_sysctls(&wanted) {
            if turn_on(key)? {
                applied.forwarding.push(key);
            }
        }
        Ok(applied)
    }
}

impl<D: WireGuard> Gateway<D> {
    /// Gives the WireGuard interface the address of [`tunnel_address`] for `slice` (the hub's
    /// own slice): what the hub sends from into the tunnel (its latency probes) then comes from
    /// the global network, which every member routes back into its tunnel. True when added.
    pub async fn ensure_tunnel_address(&self, slice: IpNet) -> Result<bool, GatewayError> {
        let Some(address) = tunnel_address(slice) else {
            return Ok(false);
        };
        let link = self.links.find(&self.config.ifname).await?;
        let removed = self
            .links
            .remove_other_host_addresses(&link, address)
            .await?;
        Ok(self.links.add_address(&link, address).await? || removed > 0)
    }
}

/// The first usable address of `slice` as a host route (`/32`, `/128`).
pub fn tunnel_address(slice: IpNet) -> Option<IpNet> {
    let address = nauti_api::NetworkConfig::gateway_of(&slice)?;
    let host = match address {
        IpAddr::V4(_) => 32,
        IpAddr::V6(_) => 128,
    };
    IpNet::new(address, host).ok()
}

/// Writes `1` to the sysctl unless it already is; true when it was written.
fn turn_on(key: &'static str) -> Result<bool, GatewayError> {
    let sysctl = |source| GatewayError::Sysctl { key, source };
    if std::fs::read_to_string(key).map_err(sysctl)?.trim() == "1" {
        return Ok(false);
    }
    std::fs::write(key, "1").map_err(sysctl)?;
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::core::WantedPeer;
    use crate::core::key::PublicKey;
    use crate::wg::PeerState;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_tunnel_address_is_the_slices_first_usable_as_a_host_route() {
        assert_eq!(
            tunnel_address(net("10.112.0.0/16")),
            Some(net("10.112.0.1/32"))
        );
        assert_eq!(
            tunnel_address(net("fd00:112::/48")),
            Some(net("fd00:112::1/128"))
        );
    }

    #[test]
    fn wanted_routes_add_the_extra_ranges_once_and_sorted() {
        let plan = TopologyPlan {
            routes: vec![net("10.114.0.0/16"), net("10.112.0.0/16")],
            ..TopologyPlan::default()
        };
        assert_eq!(
            wanted_routes(&plan, &[net("10.127.0.0/16"), net("10.112.0.0/16")]),
            vec![
                net("10.112.0.0/16"),
                net("10.114.0.0/16"),
                net("10.127.0.0/16")
            ]
        );
        // A range given with host bits is routed as its network.
        assert_eq!(
            wanted_routes(&TopologyPlan::default(), &[net("10.127.0.1/16")]),
            vec![net("10.127.0.0/16")]
        );
    }

    #[test]
    fn forwarding_is_turned_on_per_family_routed() {
        assert!(forwarding_sysctls(&[]).is_empty());
        assert_eq!(
            forwarding_sysctls(&[net("10.113.0.0/16")]),
            vec![IPV4_FORWARDING]
        );
        assert_eq!(
            forwarding_sysctls(&[net("fd00:113::/48"), net("10.113.0.0/16")]),
            vec![IPV4_FORWARDING, IPV6_FORWARDING]
        );
    }

    #[test]
    fn the_device_state_feeds_the_peer_diff() {
        let key = PublicKey([7; 32]);
        let config = DevicePeer {
            public_key: key,
            endpoint: None,
            allowed_ips: vec![net("10.113.0.0/16")],
            keepalive: None,
        };
        let state = DeviceState {
            public_key: PublicKey([1; 32]),
            listen_port: 51820,
            peers: vec![PeerState {
                config: config.clone(),
                last_handshake: None,
                rx_bytes: 5,
                tx_bytes: 6,
            }],
        };
        assert_eq!(device_peers(&state), vec![config]);
        let wanted = [WantedPeer {
            public_key: key,
            endpoint: None,
            allowed_ips: vec![net("10.113.0.0/16")],
            keepalive: None,
        }];
        assert!(diff_peers(&wanted, &device_peers(&state)).is_empty());
    }

    fn device_peer(key: u8, endpoint: Option<&str>, allowed: &[&str]) -> DevicePeer {
        DevicePeer {
            public_key: PublicKey([key; 32]),
            endpoint: endpoint.map(|e| e.parse().unwrap()),
            allowed_ips: allowed.iter().map(|n| net(n)).collect(),
            keepalive: None,
        }
    }

    fn wanted_peer(key: u8, endpoint: Option<&str>, allowed: &[&str]) -> WantedPeer {
        let p = device_peer(key, endpoint, allowed);
        WantedPeer {
            public_key: p.public_key,
            endpoint: p.endpoint,
            allowed_ips: p.allowed_ips,
            keepalive: p.keepalive,
        }
    }

    #[test]
    fn a_rotated_key_replaces_its_peer_in_one_change_set_keeping_the_learned_endpoint() {
        // The hub's view: east (behind NAT, endpoint learned) rotated from key 1 to key 3;
        // west (key 2) is unchanged.
        let current = [
            device_peer(1, Some("192.0.2.7:40001"), &["10.113.0.0/16"]),
            device_peer(2, Some("192.0.2.8:40002"), &["10.114.0.0/16"]),
        ];
        let wanted = [
            wanted_peer(3, None, &["10.113.0.0/16"]),
            wanted_peer(2, None, &["10.114.0.0/16"]),
        ];
        let changes = carry_endpoints(diff_peers(&wanted, &current), &current);
        assert_eq!(
            changes,
            vec![
                PeerChange::Remove(PublicKey([1; 32])),
                PeerChange::Add(wanted_peer(3, Some("192.0.2.7:40001"), &["10.113.0.0/16"])),
            ]
        );
    }

    #[test]
    fn a_planned_endpoint_wins_and_an_unrelated_addition_gets_none() {
        let current = [device_peer(1, Some("192.0.2.7:40001"), &["10.113.0.0/16"])];
        // The hub rotated: its new peer comes with the endpoint the plan names.
        let wanted = [wanted_peer(
            3,
            Some("198.51.100.1:51820"),
            &["10.113.0.0/16"],
        )];
        let changes = carry_endpoints(diff_peers(&wanted, &current), &current);
        assert_eq!(
            changes[1],
            PeerChange::Add(wanted_peer(
                3,
                Some("198.51.100.1:51820"),
                &["10.113.0.0/16"]
            ))
        );
        // A new cluster's peer shares nothing with the one leaving: no endpoint is made up.
        let wanted = [wanted_peer(4, None, &["10.115.0.0/16"])];
        let changes = carry_endpoints(diff_peers(&wanted, &current), &current);
        assert_eq!(
            changes,
            vec![
                PeerChange::Remove(PublicKey([1; 32])),
                PeerChange::Add(wanted_peer(4, None, &["10.115.0.0/16"])),
            ]
        );
    }

    #[test]
    fn the_interface_gets_the_underlay_minus_wireguard_and_routes_the_clusterset_block() {
        let (config, mtu) = GatewayConfig::derive("wg0", 1500, &SlicePolicy::default()).unwrap();
        assert_eq!(config.mtu, 1440);
        assert_eq!(mtu.pod_mtu, 1382);
        assert_eq!(config.extra_routes, vec![net("10.127.0.0/16")]);
        assert!(GatewayConfig::derive("wg0", 600, &SlicePolicy::default()).is_err());
    }

    #[test]
    fn an_applied_pass_that_changed_nothing_is_empty() {
        assert!(Applied::default().is_empty());
        let changed = Applied {
            forwarding: vec![IPV4_FORWARDING],
            ..Applied::default()
        };
        assert!(!changed.is_empty());
    }
}
