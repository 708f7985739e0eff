//! The active CNF pod becomes its cluster's gateway.
//!
//! The gateway address belongs to a distributed logical router on the cluster's switch
//! (`nauti-ovnmaster` makes it); its one route to the global network names the active CNF pod's
//! own address on that switch (the NIC `nauti-nri` plumbed, `eth-nauti`) as next hop. A leader
//! sets that route when it takes over and on every pass after, so a takeover moves the route in
//! one guarded transaction and a route changed by hand comes back.

use std::net::IpAddr;

use futures::TryStreamExt as _;
use ipnet::IpNet;
use nauti_ovn::core::router::StaticRoute;
use nauti_ovn::master::core::gateway_router;
use nauti_ovn::{Endpoint, Northbound, TlsFiles};
use netlink_packet_route::address::AddressAttribute;
use tokio_util::sync::CancellationToken;

use super::services::connect_nb;

/// `external_ids` key of the route: the pod that set it.
pub const POD_KEY: &str = "nauti.io/cnf-pod";
/// `external_ids` owner value of the route.
pub const OWNER: &str = "octopus";

/// Why the route could not be claimed.
#[derive(Debug, thiserror::Error)]
pub enum ClaimError {
    /// The pod NIC is missing or has no address in the global network (the pod was not
    /// plumbed, or opted out).
    #[error(
        "interface {ifname} has no address in the global network {global}: is the pod's NIC plumbed by nauti-nri (and the pod annotated nauti.io/forwarder)?"
    )]
    NoAddress { ifname: String, global: IpNet },
    /// No netlink socket.
    #[error("open a netlink socket: {0}")]
    Connection(#[source] std::io::Error),
    /// Netlink failed.
    #[error("read the addresses of {ifname}: {source}")]
    Netlink {
        ifname: String,
        #[source]
        source: rtnetlink::Error,
    },
    /// The northbound database refused or failed.
    #[error("set the route of logical router {router}: {source}")]
    Ovn {
        router: String,
        #[source]
        source: nauti_ovn::Error,
    },
}

/// What the claim needs to know.
#[derive(Debug, Clone)]
pub struct ClaimConfig {
    /// The cluster's northbound database.
    pub nb: Endpoint,
    /// Its TLS files for an `ssl:` remote.
    pub tls: Option<TlsFiles>,
    /// The cluster's logical switch (the router is named after it).
    pub logical_switch: String,
    /// The pod's NIC on that switch.
    pub pod_interface: String,
    /// The global network the route covers.
    pub global: IpNet,
    /// This pod's name, recorded on the route.
    pub pod_name: String,
}

/// The pod's address on the switch: the first of `addresses` inside `global`.
pub fn pick_address(addresses: &[IpNet], global: &IpNet) -> Option<IpAddr> {
    addresses
        .iter()
        .map(IpNet::addr)
        .find(|addr| global.contains(addr))
}

/// The route the active gateway at `address` wants.
pub fn wanted_route(global: &IpNet, address: IpAddr, pod_name: &str) -> StaticRoute {
    StaticRoute::new(global.to_string(), address.to_string())
        .with_external_id(nauti_api::core::port::external_ids::OWNER, OWNER)
        .with_external_id(POD_KEY, pod_name)
}

/// Keeps the claim's northbound connection between passes.
pub struct GatewayClaim {
    config: ClaimConfig,
    nb: Option<Northbound>,
}

impl GatewayClaim {
    /// A claim that connects on its first [`assert`](Self::assert).
    pub fn new(config: ClaimConfig) -> Self {
        Self { config, nb: None }
    }

    /// Sets the route through this pod; true when it was written (a takeover or a repair).
    /// `Ok(false)` also when `stop` came first.
    pub async fn assert(&mut self, stop: &CancellationToken) -> Result<bool, ClaimError> {
        let address = own_address(&self.config.pod_interface, &self.config.global).await?;
        if self.nb.is_none() {
            self.nb = connect_nb(self.config.nb.clone(), self.config.tls.clone(), stop).await;
        }
        let Some(nb) = &self.nb else {
            return Ok(false);
        };
        let router = gateway_router(&self.config.logical_switch);
        let want = wanted_route(&self.config.global, address, &self.config.pod_name);
        let written = nb
            .set_static_route(&router, &want)
            .await
            .map_err(|source| ClaimError::Ovn {
                router: router.clone(),
                source,
            })?;
        if written {
            tracing::info!(%router, next_hop = %address, global = %self.config.global, "this pod is now the cluster's gateway");
        }
        Ok(written)
    }
}

/// The address of `ifname` (in this network namespace) inside `global`.
async fn own_address(ifname: &str, global: &IpNet) -> Result<IpAddr, ClaimError> {
    let netlink = |source| ClaimError::Netlink {
        ifname: ifname.to_owned(),
        source,
    };
    let no_address = || ClaimError::NoAddress {
        ifname: ifname.to_owned(),
        global: *global,
    };
    let (connection, handle, _) = rtnetlink::new_connection().map_err(ClaimError::Connection)?;
    let connection = tokio::spawn(connection);
    let result = async {
        let Some(link) = handle
            .link()
            .get()
            .match_name(ifname.to_owned())
            .execute()
            .try_next()
            .await
            .ok()
            .flatten()
        else {
            return Err(no_address());
        };
        let mut found = Vec::new();
        let mut addresses = handle
            .address()
            .get()
            .set_link_index_filter(link.header.index)
            .execute();
        while let Some(msg) = addresses.try_next().await.map_err(netlink)? {
            let prefix = msg.header.prefix_len;
            for attr in &msg.attributes {
                if let AddressAttribute::Address(addr) = attr
                    && let Ok(net) = IpNet::new(*addr, prefix)
                {
                    found.push(net);
                }
            }
        }
        pick_address(&found, global).ok_or_else(no_address)
    }
    .await;
    connection.abort();
    result
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_address_in_the_global_network_is_picked_and_none_without_one() {
        let global = net("10.112.0.0/12");
        let addresses = [
            net("10.244.0.7/24"),
            net("10.113.1.5/16"),
            net("fe80::1/64"),
        ];
        assert_eq!(
            pick_address(&addresses, &global),
            Some("10.113.1.5".parse().unwrap())
        );
        assert_eq!(pick_address(&addresses[..1], &global), None);
    }

    #[test]
    fn the_route_names_its_pod_and_owner() {
        let route = wanted_route(
            &net("10.112.0.0/12"),
            "10.113.1.5".parse().unwrap(),
            "cnf-a",
        );
        assert_eq!(route.ip_prefix, "10.112.0.0/12");
        assert_eq!(route.nexthop, "10.113.1.5");
        assert_eq!(
            route.external_ids.get(POD_KEY).map(String::as_str),
            Some("cnf-a")
        );
        assert_eq!(
            route.external_ids.get("nauti.io/owner").map(String::as_str),
            Some("octopus")
        );
    }
}
