//! rtnetlink calls of the gateway: its WireGuard link and the routes onto it.

use std::net::IpAddr;

use futures::TryStreamExt as _;
use ipnet::IpNet;
use netlink_packet_route::AddressFamily;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{LinkAttribute, LinkFlags};
use netlink_packet_route::route::{
    RouteAddress, RouteAttribute, RouteHeader, RouteMessage, RouteProtocol, RouteScope,
};
use rtnetlink::{Handle, LinkUnspec, RouteMessageBuilder};

use super::GatewayError;

/// The WireGuard link as the kernel reports it.
pub struct Link {
    name: String,
    index: u32,
    pub(super) mtu: Option<u32>,
    pub(super) up: bool,
}

/// An rtnetlink connection in the namespace it was opened in.
pub struct Links {
    handle: Handle,
}

impl Links {
    pub fn connect() -> Result<Self, GatewayError> {
        let (connection, handle, _) =
            rtnetlink::new_connection().map_err(GatewayError::Connection)?;
        tokio::spawn(connection);
        Ok(Self { handle })
    }

    pub async fn find(&self, name: &str) -> Result<Link, GatewayError> {
        let mut links = self
            .handle
            .link()
            .get()
            .match_name(name.to_owned())
            .execute();
        let found = match links.try_next().await {
            Ok(found) => found,
            Err(e) if is_errno(&e, libc::ENODEV) => None,
            Err(source) => return Err(netlink("find link", name, source)),
        };
        let link = found.ok_or_else(|| GatewayError::LinkNotFound(name.to_owned()))?;
        let mtu = link.attributes.iter().find_map(|a| match a {
            LinkAttribute::Mtu(mtu) => Some(*mtu),
            _ => None,
        });
        Ok(Link {
            name: name.to_owned(),
            index: link.header.index,
            mtu,
            up: link.header.flags.contains(LinkFlags::Up),
        })
    }

    pub(super) async fn set_mtu_up(&self, link: &Link, mtu: u32) -> Result<(), GatewayError> {
        self.handle
            .link()
            .set(LinkUnspec::new_with_index(link.index).mtu(mtu).up().build())
            .execute()
            .await
            .map_err(|source| netlink("set MTU and up", &link.name, source))
    }

    /// The routes in the main table onto `link` that this module would have added.
    pub async fn routes(&self, link: &Link) -> Result<Vec<IpNet>, GatewayError> {
        let mut out = Vec::new();
        for query in [
            RouteMessageBuilder::<std::net::Ipv4Addr>::new().build(),
            RouteMessageBuilder::<std::net::Ipv6Addr>::new().build(),
        ] {
            let mut routes = self.handle.route().get(query).execute();
            while let Some(msg) = routes
                .try_next()
                .await
                .map_err(|source| netlink("list routes of", &link.name, source))?
            {
                out.extend(route_on_interface(&msg, link.index));
            }
        }
        Ok(out)
    }

    pub(super) async fn add_route(&self, link: &Link, route: IpNet) -> Result<(), GatewayError> {
        let msg = route_message(link, route)?;
        match self.handle.route().add(msg).execute().await {
            Ok(()) => Ok(()),
            // Added meanwhile: the goal is reached.
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(()),
            Err(source) => Err(netlink("add route", &describe(link, route), source)),
        }
    }

    /// Adds `address` to `link`; false when it was there already.
    pub(super) async fn add_address(
        &self,
        link: &Link,
        address: IpNet,
    ) -> Result<bool, GatewayError> {
        match self
            .handle
            .address()
            .add(link.index, address.addr(), address.prefix_len())
            .execute()
            .await
        {
            Ok(()) => Ok(true),
            Err(e) if is_errno(&e, libc::EEXIST) => Ok(false),
            Err(source) => Err(netlink("add address", &describe(link, address), source)),
        }
    }

    /// Removes every host address (`/32`, `/128`) of `link` but `keep`; how many went. A
    /// gateway address left from a slice the cluster no longer holds would make the kernel take
    /// that slice's first address for its own and never route it into the tunnel.
    pub(super) async fn remove_other_host_addresses(
        &self,
        link: &Link,
        keep: IpNet,
    ) -> Result<usize, GatewayError> {
        let mut stale = Vec::new();
        let mut addresses = self
            .handle
            .address()
            .get()
            .set_link_index_filter(link.index)
            .execute();
        while let Some(msg) = addresses
            .try_next()
            .await
            .map_err(|source| netlink("list addresses of", &link.name, source))?
        {
            let host = match msg.header.family {
                AddressFamily::Inet => 32,
                AddressFamily::Inet6 => 128,
                _ => continue,
            };
            let address = msg.attributes.iter().find_map(|a| match a {
                AddressAttribute::Address(ip) => Some(*ip),
                _ => None,
            });
            let Some(address) = address else { continue };
            if msg.header.prefix_len == host && IpNet::new(address, host).ok() != Some(keep) {
                stale.push((msg, address));
            }
        }
        let removed = stale.len();
        for (msg, address) in stale {
            match self.handle.address().del(msg).execute().await {
                Ok(()) => {}
                // Gone meanwhile: the goal is reached.
                Err(e) if is_errno(&e, libc::EADDRNOTAVAIL) => {}
                Err(source) => {
                    return Err(netlink(
                        "delete address",
                        &format!("{address} on {}", link.name),
                        source,
                    ));
                }
            }
        }
        Ok(removed)
    }

    pub(super) async fn del_route(&self, link: &Link, route: IpNet) -> Result<(), GatewayError> {
        let msg = route_message(link, route)?;
        match self.handle.route().del(msg).execute().await {
            Ok(()) => Ok(()),
            // Gone meanwhile (e.g. with the link): the goal is reached.
            Err(e) if is_errno(&e, libc::ESRCH) => Ok(()),
            Err(source) => Err(netlink("delete route", &describe(link, route), source)),
        }
    }
}

/// A device route onto `link` (scope link, protocol static, main table), as `ip route add
/// <route> dev <link> proto static` makes it.
fn route_message(link: &Link, route: IpNet) -> Result<RouteMessage, GatewayError> {
    let msg = RouteMessageBuilder::<IpAddr>::new()
        .destination_prefix(route.addr(), route.prefix_len())
        .map_err(|e| GatewayError::BadRoute {
            route,
            ifname: link.name.clone(),
            reason: e.to_string(),
        })?
        .output_interface(link.index)
        .scope(RouteScope::Link)
        .protocol(RouteProtocol::Static)
        .build();
    Ok(msg)
}

/// The destination of `msg` when it is a route the gateway manages: main table, protocol
/// static, leaving by interface `index`. Kernel routes (an address's own subnet) and routes of
/// other protocols are left alone.
pub fn route_on_interface(msg: &RouteMessage, index: u32) -> Option<IpNet> {
    let table = msg
        .attributes
        .iter()
        .find_map(|a| match a {
            RouteAttribute::Table(t) => Some(*t),
            _ => None,
        })
        .unwrap_or(u32::from(msg.header.table));
    let oif = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Oif(i) => Some(*i),
        _ => None,
    });
    if table != u32::from(RouteHeader::RT_TABLE_MAIN)
        || msg.header.protocol != RouteProtocol::Static
        || oif != Some(index)
    {
        return None;
    }
    let prefix = msg.header.destination_prefix_length;
    let dst = msg.attributes.iter().find_map(|a| match a {
        RouteAttribute::Destination(RouteAddress::Inet(ip)) => Some(IpAddr::V4(*ip)),
        RouteAttribute::Destination(RouteAddress::Inet6(ip)) => Some(IpAddr::V6(*ip)),
        _ => None,
    });
    match (dst, msg.header.address_family) {
        (Some(ip), _) => IpNet::new(ip, prefix).ok(),
        // A default route carries no destination attribute.
        (None, netlink_packet_route::AddressFamily::Inet) => {
            IpNet::new(IpAddr::V4(std::net::Ipv4Addr::UNSPECIFIED), 0).ok()
        }
        (None, netlink_packet_route::AddressFamily::Inet6) => {
            IpNet::new(IpAddr::V6(std::net::Ipv6Addr::UNSPECIFIED), 0).ok()
        }
        (None, _) => None,
    }
}

fn describe(link: &Link, route: IpNet) -> String {
    format!("{route} dev {}", link.name)
}

fn is_errno(error: &rtnetlink::Error, errno: i32) -> bool {
    match error {
        rtnetlink::Error::NetlinkError(msg) => msg.raw_code().abs() == errno,
        _ => false,
    }
}

fn netlink(op: &'static str, target: &str, source: rtnetlink::Error) -> GatewayError {
    GatewayError::Netlink {
        op,
        target: target.to_owned(),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn link() -> Link {
        Link {
            name: "wg0".into(),
            index: 7,
            mtu: None,
            up: true,
        }
    }

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn the_routes_we_add_are_the_routes_we_find() {
        for route in [net("10.114.0.0/16"), net("fd00:114::/48"), net("0.0.0.0/0")] {
            let mut msg = route_message(&link(), route).unwrap();
            if route.prefix_len() == 0 {
                // The kernel reports a default route without a destination.
                msg.attributes
                    .retain(|a| !matches!(a, RouteAttribute::Destination(_)));
            }
            assert_eq!(route_on_interface(&msg, 7), Some(route), "{route}");
            assert_eq!(route_on_interface(&msg, 8), None, "{route} on another link");
        }
    }

    #[test]
    fn kernel_routes_and_other_tables_are_not_ours() {
        let mut kernel = route_message(&link(), net("10.114.0.0/16")).unwrap();
        kernel.header.protocol = RouteProtocol::Kernel;
        assert_eq!(route_on_interface(&kernel, 7), None);
        let mut other_table = route_message(&link(), net("10.114.0.0/16")).unwrap();
        other_table.header.table = 100;
        assert_eq!(route_on_interface(&other_table, 7), None);
        other_table.attributes.push(RouteAttribute::Table(254));
        assert_eq!(
            route_on_interface(&other_table, 7),
            Some(net("10.114.0.0/16")),
            "the table attribute wins over the header's byte"
        );
    }
}
