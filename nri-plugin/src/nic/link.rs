//! rtnetlink operations on the veth pair, in domain verbs.

use std::fs::File;
use std::net::IpAddr;
use std::os::fd::AsRawFd;
use std::path::Path;

use futures::TryStreamExt;
use ipnet::IpNet;
use nauti_api::MacAddr;
use netlink_packet_route::address::AddressAttribute;
use netlink_packet_route::link::{InfoData, InfoKind, InfoVeth};
use netlink_packet_route::link::{LinkAttribute, LinkFlags, LinkMessage};
use rtnetlink::{Handle, LinkMessageBuilder, LinkUnspec, LinkVeth, RouteMessageBuilder};

use super::{NicError, NicPlan, ethtool, netns};

/// What the pod end looks like, as read back from the kernel.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PodNicState {
    pub mac: Option<MacAddr>,
    pub addresses: Vec<IpNet>,
    pub mtu: Option<u32>,
    pub up: bool,
}

/// Creates the veth pair for `plan` and configures its pod end inside `pod_netns`: the two halves
/// [`create_pair`] and [`configure_pod_end`] one after the other. Idempotent.
pub async fn plumb(pod_netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
    create_pair(pod_netns, plan).await?;
    configure_pod_end(pod_netns, plan).await
}

/// Creates the veth pair: the host end in this namespace, up; the pod end directly in the pod's
/// namespace with its final name, MAC and MTU (moving a link between namespaces afterwards costs
/// a network-wide RCU grace period, which was most of a pod's plumbing time).
///
/// Idempotent: a pair left by an earlier attempt is deleted (deleting the host end takes the pod
/// end with it) and made again, so a retried sandbox gets a clean NIC. Once this returns, the
/// host end exists and can be plugged into OVS while the pod end is configured.
pub async fn create_pair(pod_netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
    let host = connect()?;
    let ns = File::open(pod_netns).map_err(|e| NicError::netns(pod_netns, e))?;
    let pod_end = LinkMessageBuilder::<LinkUnspec>::new()
        .name(plan.pod_ifname.clone())
        .address(plan.mac.octets().to_vec())
        .mtu(plan.mtu)
        .setns_by_fd(ns.as_raw_fd())
        .build();
    let pair = LinkMessageBuilder::<LinkVeth>::new_with_info_kind(InfoKind::Veth)
        .name(plan.host_ifname.clone())
        .mtu(plan.mtu)
        .up()
        .set_info_data(InfoData::Veth(InfoVeth::Peer(pod_end)))
        .build();
    // The common case is a new sandbox: try first, clear a leftover only when there is one.
    match host.link().add(pair.clone()).execute().await {
        Ok(()) => Ok(()),
        Err(e) if is_errno(&e, libc::EEXIST) => {
            delete_if_exists(&host, &plan.host_ifname).await?;
            host.link()
                .add(pair)
                .execute()
                .await
                .map_err(|source| netlink("add veth", &plan.host_ifname, source))
        }
        Err(source) => Err(netlink("add veth", &plan.host_ifname, source)),
    }
}

/// Configures the pod end made by [`create_pair`] inside `pod_netns`; on failure the pair is
/// deleted, leaving nothing half-made behind (the caller reports the first error).
pub async fn configure_pod_end(pod_netns: &Path, plan: &NicPlan) -> Result<(), NicError> {
    let plan_in_pod = plan.clone();
    let result = netns::run_in(pod_netns, move |pod| async move {
        configure_in_pod(&pod, &plan_in_pod).await
    })
    .await;
    if result.is_err() {
        let _ = unplumb(&plan.host_ifname).await;
    }
    result
}

/// Inside the pod: offloads, gratuitous ARP on up, address, up, routes.
async fn configure_in_pod(pod: &Handle, plan: &NicPlan) -> Result<(), NicError> {
    let index = index_of(pod, &plan.pod_ifname).await?;
    if !plan.tx_checksum_offload {
        ethtool::set_tx_checksum(&plan.pod_ifname, false).map_err(|source| NicError::Ethtool {
            link: plan.pod_ifname.clone(),
            source,
        })?;
    }
    if plan.address.addr().is_ipv4() {
        // The kernel then announces the address (gratuitous ARP) when the link comes up, so
        // neighbours with a stale entry for a reused address learn the new MAC at once.
        let key = format!("net/ipv4/conf/{}/arp_notify", plan.pod_ifname);
        std::fs::write(format!("/proc/sys/{key}"), "1")
            .map_err(|source| NicError::Sysctl { key, source })?;
    }
    pod.address()
        .add(index, plan.address.addr(), plan.address.prefix_len())
        .execute()
        .await
        .map_err(|source| netlink("add address", &plan.pod_ifname, source))?;
    pod.link()
        .set(LinkUnspec::new_with_index(index).up().build())
        .execute()
        .await
        .map_err(|source| netlink("set up", &plan.pod_ifname, source))?;
    for (dst, gw) in &plan.routes {
        let bad = |reason: String| NicError::BadRoute {
            dst: *dst,
            gw: *gw,
            reason,
        };
        let route = RouteMessageBuilder::<IpAddr>::new()
            .destination_prefix(dst.addr(), dst.prefix_len())
            .map_err(|e| bad(e.to_string()))?
            .gateway(*gw)
            .map_err(|e| bad(e.to_string()))?
            .output_interface(index)
            .build();
        match pod.route().add(route).execute().await {
            Ok(()) => {}
            Err(e) if is_errno(&e, libc::EEXIST) => {}
            Err(source) => return Err(netlink("add route", &plan.pod_ifname, source)),
        }
    }
    Ok(())
}

/// Deletes the host end of a sandbox's pair (and with it the pod end). `Ok(false)` when absent.
pub async fn unplumb(host_ifname: &str) -> Result<bool, NicError> {
    let host = connect()?;
    delete_if_exists(&host, host_ifname).await
}

/// Names of the links in the node's namespace that start with `prefix` (the host ends of pod
/// NICs), for finding those a sandbox left behind.
pub async fn host_ends(prefix: &str) -> Result<Vec<String>, NicError> {
    let host = connect()?;
    let mut links = host.link().get().execute();
    let mut names = Vec::new();
    while let Some(link) = links
        .try_next()
        .await
        .map_err(|source| netlink("list", prefix, source))?
    {
        for attr in link.attributes {
            if let LinkAttribute::IfName(name) = attr
                && name.starts_with(prefix)
            {
                names.push(name);
            }
        }
    }
    Ok(names)
}

/// Reads the pod end `ifname` inside `pod_netns`; `Ok(None)` when the pod has no such link.
pub async fn inspect(pod_netns: &Path, ifname: &str) -> Result<Option<PodNicState>, NicError> {
    let ifname = ifname.to_owned();
    netns::run_in(pod_netns, move |pod| async move {
        let Some(link) = try_find(&pod, &ifname).await? else {
            return Ok(None);
        };
        let index = link.header.index;
        let mut state = PodNicState {
            mac: None,
            addresses: Vec::new(),
            mtu: None,
            up: link.header.flags.contains(LinkFlags::Up),
        };
        for attr in &link.attributes {
            match attr {
                LinkAttribute::Address(bytes) => {
                    state.mac = <[u8; 6]>::try_from(bytes.as_slice()).ok().map(MacAddr::new);
                }
                LinkAttribute::Mtu(mtu) => state.mtu = Some(*mtu),
                _ => {}
            }
        }
        let mut addrs = pod.address().get().set_link_index_filter(index).execute();
        while let Some(msg) = addrs
            .try_next()
            .await
            .map_err(|source| netlink("list addresses", &ifname, source))?
        {
            let prefix = msg.header.prefix_len;
            for attr in msg.attributes {
                if let AddressAttribute::Address(ip) = attr
                    && let Ok(net) = IpNet::new(ip, prefix)
                {
                    state.addresses.push(net);
                }
            }
        }
        Ok(Some(state))
    })
    .await
}

fn connect() -> Result<Handle, NicError> {
    let (connection, handle, _) = rtnetlink::new_connection().map_err(NicError::Connection)?;
    tokio::spawn(connection);
    Ok(handle)
}

async fn try_find(handle: &Handle, name: &str) -> Result<Option<LinkMessage>, NicError> {
    let mut links = handle.link().get().match_name(name.to_owned()).execute();
    match links.try_next().await {
        Ok(link) => Ok(link),
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(None),
        Err(source) => Err(netlink("find", name, source)),
    }
}

async fn index_of(handle: &Handle, name: &str) -> Result<u32, NicError> {
    try_find(handle, name)
        .await?
        .map(|link| link.header.index)
        .ok_or_else(|| NicError::LinkNotFound(name.to_owned()))
}

async fn delete_if_exists(handle: &Handle, name: &str) -> Result<bool, NicError> {
    let Some(link) = try_find(handle, name).await? else {
        return Ok(false);
    };
    match handle.link().del(link.header.index).execute().await {
        Ok(()) => Ok(true),
        // Gone meanwhile (its peer was deleted): the goal is reached.
        Err(e) if is_errno(&e, libc::ENODEV) => Ok(false),
        Err(source) => Err(netlink("delete", name, source)),
    }
}

fn is_errno(error: &rtnetlink::Error, errno: i32) -> bool {
    match error {
        rtnetlink::Error::NetlinkError(msg) => msg.raw_code().abs() == errno,
        _ => false,
    }
}

fn netlink(op: &'static str, link: &str, source: rtnetlink::Error) -> NicError {
    NicError::Netlink {
        op,
        link: link.to_owned(),
        source,
    }
}
