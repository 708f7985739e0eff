//! Generic netlink messages of the kernel's WireGuard family, as plain functions: the
//! `WG_CMD_SET_DEVICE` messages that configure a device, split over several messages the way
//! wireguard-tools splits them, and the reading of a `WG_CMD_GET_DEVICE` dump into a
//! [`DeviceState`]. No I/O here; the adapter sends and receives.

use std::net::{IpAddr, SocketAddr};
use std::time::{Duration, SystemTime};

use ipnet::IpNet;
use netlink_packet_core::{Emitable, NLA_TYPE_MASK, NlaBuffer, NlasIterator};
use netlink_packet_wireguard::{
    WireguardAddressFamily, WireguardAllowedIp, WireguardAllowedIpAttr, WireguardAttribute,
    WireguardCmd, WireguardDeviceFlags, WireguardMessage, WireguardPeer, WireguardPeerAttribute,
    WireguardPeerFlags, WireguardTimeSpec,
};

use crate::core::{DevicePeer, PeerChange, PublicKey};
use crate::wg::{DeviceState, PeerState};

/// Largest netlink message wireguard-tools sends (`MNL_SOCKET_BUFFER_SIZE`: a page, at most
/// 8 KiB); the kernel accepts larger ones, but staying under a page is what its own tool does.
pub const MESSAGE_BUDGET: usize = 4096;

/// `struct nlmsghdr` plus `struct genlmsghdr`, before the first attribute.
const HEADERS_LEN: usize = 16 + 4;
/// One attribute header (`struct nlattr`), also the cost of an empty nest.
const NLA_HEADER_LEN: usize = 4;
/// `IFNAMSIZ` less the terminating NUL.
const MAX_IFNAME_LEN: usize = 15;

// Attribute numbers of include/uapi/linux/wireguard.h, checked against the crate's encoding
// byte by byte in the tests.
const WGDEVICE_A_PEERS: u16 = 8;
const WGPEER_A_ALLOWEDIPS: u16 = 9;
const WGALLOWEDIP_A_CIDR_MASK: u16 = 3;

/// What one `WG_CMD_SET_DEVICE` request asks of a device; `None` leaves a setting as it is.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetDevice {
    /// The interface.
    pub ifname: String,
    /// A new private key.
    pub private_key: Option<[u8; 32]>,
    /// A new UDP port (0 lets the kernel pick one).
    pub listen_port: Option<u16>,
    /// A firewall mark on the device's UDP packets (0 clears it).
    pub fwmark: Option<u32>,
    /// Drop every peer not named in `peers` (`WGDEVICE_F_REPLACE_PEERS`).
    pub replace_peers: bool,
    /// Peer changes, applied by the kernel in this order.
    pub peers: Vec<SetPeer>,
}

/// One peer in a [`SetDevice`].
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct SetPeer {
    /// The peer's public key.
    pub public_key: [u8; 32],
    /// Remove the peer (`WGPEER_F_REMOVE_ME`); the other fields are then ignored.
    pub remove: bool,
    /// Change the peer only if it exists, never create it (`WGPEER_F_UPDATE_ONLY`).
    pub update_only: bool,
    /// A preshared key (all zeros clears it).
    pub preshared_key: Option<[u8; 32]>,
    /// An endpoint to dial.
    pub endpoint: Option<SocketAddr>,
    /// Persistent keepalive in seconds (0 turns it off).
    pub persistent_keepalive: Option<u16>,
    /// Replace the peer's allowed IPs with `allowed_ips` instead of adding to them
    /// (`WGPEER_F_REPLACE_ALLOWEDIPS`).
    pub replace_allowed_ips: bool,
    /// Allowed IPs to add (or to set, with `replace_allowed_ips`).
    pub allowed_ips: Vec<IpNet>,
}

/// A request that cannot be put into messages.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BuildError {
    /// The kernel would refuse the name.
    #[error("interface name {0:?} is not 1 to 15 bytes without NUL")]
    InterfaceName(String),
    /// Not even one peer with one allowed IP fits the budget.
    #[error("a message budget of {budget} bytes cannot hold peer {peer}")]
    BudgetTooSmall {
        /// The budget asked for.
        budget: usize,
        /// The peer that did not fit.
        peer: PublicKey,
    },
}

/// A dump the device state cannot be read from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ParseError {
    /// Bytes that are not a well-formed netlink message of the family.
    #[error("malformed WireGuard netlink message: {0}")]
    Malformed(String),
    /// A reply of another command.
    #[error("expected a WG_CMD_GET_DEVICE reply, got command {0}")]
    Command(u8),
    /// The dump had no message.
    #[error("empty WG_CMD_GET_DEVICE dump")]
    Empty,
    /// A required attribute was absent.
    #[error("missing {0}")]
    Missing(&'static str),
    /// An allowed IP whose parts disagree (family against address, prefix too long).
    #[error("allowed IP {address}/{cidr} of family {family:?}: {reason}")]
    AllowedIp {
        /// The address family attribute.
        family: Option<u16>,
        /// The address.
        address: String,
        /// The prefix length.
        cidr: u8,
        /// What is wrong.
        reason: String,
    },
    /// A handshake time before the epoch or out of range.
    #[error("last handshake time {seconds}.{nanoseconds:09} is not a valid time")]
    HandshakeTime {
        /// Seconds.
        seconds: i64,
        /// Nanoseconds.
        nanoseconds: i64,
    },
}

/// The request the peer changes make, in order: a removal removes, an update changes only an
/// existing peer (its allowed IPs replaced when given), an addition creates the peer with
/// exactly its allowed IPs.
pub fn set_from_changes(ifname: &str, changes: &[PeerChange]) -> SetDevice {
    let peers = changes
        .iter()
        .map(|change| match change {
            PeerChange::Remove(key) => SetPeer {
                public_key: key.0,
                remove: true,
                ..SetPeer::default()
            },
            PeerChange::Update(update) => SetPeer {
                public_key: update.public_key.0,
                update_only: true,
                endpoint: update.endpoint,
                persistent_keepalive: update.keepalive.map(|k| k.unwrap_or(0)),
                replace_allowed_ips: update.allowed_ips.is_some(),
                allowed_ips: update.allowed_ips.clone().unwrap_or_default(),
                ..SetPeer::default()
            },
            PeerChange::Add(wanted) => SetPeer {
                public_key: wanted.public_key.0,
                endpoint: wanted.endpoint,
                persistent_keepalive: wanted.keepalive.filter(|k| *k > 0),
                replace_allowed_ips: true,
                allowed_ips: wanted.allowed_ips.clone(),
                ..SetPeer::default()
            },
        })
        .collect();
    SetDevice {
        ifname: ifname.to_owned(),
        peers,
        ..SetDevice::default()
    }
}

/// The `WG_CMD_SET_DEVICE` messages of `set`, each at most `budget` bytes on the wire. As
/// wireguard-tools does: the device settings go in the first message only; a peer that does
/// not fit starts the next message; a peer whose allowed IPs overflow continues in the next
/// message under its public key alone, adding the rest (so replace-allowed-IPs is sent once).
pub fn set_device_messages(
    set: &SetDevice,
    budget: usize,
) -> Result<Vec<WireguardMessage>, BuildError> {
    if set.ifname.is_empty() || set.ifname.len() > MAX_IFNAME_LEN || set.ifname.contains('\0') {
        return Err(BuildError::InterfaceName(set.ifname.clone()));
    }
    let mut first = vec![WireguardAttribute::IfName(set.ifname.clone())];
    if let Some(key) = set.private_key {
        first.push(WireguardAttribute::PrivateKey(key));
    }
    if let Some(port) = set.listen_port {
        first.push(WireguardAttribute::ListenPort(port));
    }
    if let Some(mark) = set.fwmark {
        first.push(WireguardAttribute::Fwmark(mark));
    }
    if set.replace_peers {
        first.push(WireguardAttribute::Flags(
            WireguardDeviceFlags::ReplacePeers,
        ));
    }

    let mut out = Vec::new();
    let mut batch = Batch::new(first);
    for peer in &set.peers {
        let mut head = peer_head(peer);
        // A removed peer takes its allowed IPs with it.
        let mut rest: &[IpNet] = if peer.remove { &[] } else { &peer.allowed_ips };
        loop {
            // How many of the remaining allowed IPs fit after this peer's head.
            let head_len = nla_len(head.iter().map(Emitable::buffer_len).sum());
            let mut room =
                budget
                    .saturating_sub(batch.len())
                    .saturating_sub(if batch.peers.is_empty() {
                        NLA_HEADER_LEN
                    } else {
                        0
                    });
            let fits_head = head_len <= room;
            room = room.saturating_sub(head_len);
            let mut taken = 0;
            if fits_head && !rest.is_empty() && room >= NLA_HEADER_LEN {
                room -= NLA_HEADER_LEN;
                for net in rest {
                    let len = allowed_ip(net).buffer_len();
                    if len > room {
                        break;
                    }
                    room -= len;
                    taken += 1;
                }
            }
            if !fits_head || (!rest.is_empty() && taken == 0) {
                if batch.peers.is_empty() {
                    return Err(BuildError::BudgetTooSmall {
                        budget,
                        peer: PublicKey(peer.public_key),
                    });
                }
                out.push(batch.into_message());
                batch = Batch::new(vec![WireguardAttribute::IfName(set.ifname.clone())]);
                continue;
            }
            let (now, later) = rest.split_at(taken);
            if !now.is_empty() {
                head.push(WireguardPeerAttribute::AllowedIps(
                    now.iter().map(allowed_ip).collect(),
                ));
            }
            batch.push(WireguardPeer(head));
            if later.is_empty() {
                break;
            }
            out.push(batch.into_message());
            batch = Batch::new(vec![WireguardAttribute::IfName(set.ifname.clone())]);
            head = vec![WireguardPeerAttribute::PublicKey(peer.public_key)];
            rest = later;
        }
    }
    out.push(batch.into_message());
    Ok(out)
}

/// The `WG_CMD_GET_DEVICE` dump request for `ifname`.
pub fn get_device_message(ifname: &str) -> WireguardMessage {
    WireguardMessage {
        cmd: WireguardCmd::GetDevice,
        attributes: vec![WireguardAttribute::IfName(ifname.to_owned())],
    }
}

/// One message under construction: its device attributes and its peers.
struct Batch {
    device: Vec<WireguardAttribute>,
    peers: Vec<WireguardPeer>,
}

impl Batch {
    fn new(device: Vec<WireguardAttribute>) -> Self {
        Self {
            device,
            peers: Vec::new(),
        }
    }

    /// Bytes on the wire so far, headers included.
    fn len(&self) -> usize {
        let device: usize = self.device.iter().map(Emitable::buffer_len).sum();
        let peers = if self.peers.is_empty() {
            0
        } else {
            nla_len(self.peers.iter().map(Emitable::buffer_len).sum())
        };
        HEADERS_LEN + device + peers
    }

    fn push(&mut self, peer: WireguardPeer) {
        self.peers.push(peer);
    }

    fn into_message(self) -> WireguardMessage {
        let mut attributes = self.device;
        if !self.peers.is_empty() {
            attributes.push(WireguardAttribute::Peers(self.peers));
        }
        WireguardMessage {
            cmd: WireguardCmd::SetDevice,
            attributes,
        }
    }
}

/// A nest's length on the wire around `inner` bytes of attributes (already 4-aligned).
fn nla_len(inner: usize) -> usize {
    NLA_HEADER_LEN + inner
}

/// The attributes of a peer before its allowed IPs.
fn peer_head(peer: &SetPeer) -> Vec<WireguardPeerAttribute> {
    let mut head = vec![WireguardPeerAttribute::PublicKey(peer.public_key)];
    let mut flags = WireguardPeerFlags::empty();
    if peer.remove {
        flags |= WireguardPeerFlags::RemoveMe;
    }
    if peer.update_only {
        flags |= WireguardPeerFlags::UpdateOnly;
    }
    if peer.replace_allowed_ips && !peer.remove {
        flags |= WireguardPeerFlags::ReplaceAllowedIps;
    }
    if !flags.is_empty() {
        head.push(WireguardPeerAttribute::Flags(flags));
    }
    if peer.remove {
        return head;
    }
    if let Some(key) = peer.preshared_key {
        head.push(WireguardPeerAttribute::PresharedKey(key));
    }
    if let Some(endpoint) = peer.endpoint {
        head.push(WireguardPeerAttribute::Endpoint(endpoint));
    }
    if let Some(keepalive) = peer.persistent_keepalive {
        head.push(WireguardPeerAttribute::PersistentKeepalive(keepalive));
    }
    head
}

/// One allowed IP as the kernel takes it: family, network address, prefix length.
fn allowed_ip(net: &IpNet) -> WireguardAllowedIp {
    let family = match net {
        IpNet::V4(_) => WireguardAddressFamily::Ipv4,
        IpNet::V6(_) => WireguardAddressFamily::Ipv6,
    };
    WireguardAllowedIp(vec![
        WireguardAllowedIpAttr::Family(family),
        WireguardAllowedIpAttr::IpAddr(net.network()),
        WireguardAllowedIpAttr::Cidr(net.prefix_len()),
    ])
}

/// Checks the attributes of one WireGuard message (the bytes after the generic netlink
/// header) for what the crate's parser would index without checking: an allowed IP's prefix
/// length attribute without a byte. Everything else it checks itself.
pub fn check_attributes(attributes: &[u8]) -> Result<(), ParseError> {
    let malformed = |e: netlink_packet_core::DecodeError| ParseError::Malformed(e.to_string());
    for device_attr in NlasIterator::new(attributes) {
        let device_attr = device_attr.map_err(malformed)?;
        if device_attr.kind() & NLA_TYPE_MASK != WGDEVICE_A_PEERS {
            continue;
        }
        for peer in NlasIterator::new(device_attr.value()) {
            let peer = peer.map_err(malformed)?;
            for peer_attr in NlasIterator::new(peer.value()) {
                let peer_attr = peer_attr.map_err(malformed)?;
                if peer_attr.kind() & NLA_TYPE_MASK != WGPEER_A_ALLOWEDIPS {
                    continue;
                }
                check_allowed_ips(&peer_attr)?;
            }
        }
    }
    Ok(())
}

fn check_allowed_ips(list: &NlaBuffer<&[u8]>) -> Result<(), ParseError> {
    let malformed = |e: netlink_packet_core::DecodeError| ParseError::Malformed(e.to_string());
    for ip in NlasIterator::new(list.value()) {
        let ip = ip.map_err(malformed)?;
        for attr in NlasIterator::new(ip.value()) {
            let attr = attr.map_err(malformed)?;
            if attr.kind() & NLA_TYPE_MASK == WGALLOWEDIP_A_CIDR_MASK && attr.value().is_empty() {
                return Err(ParseError::Malformed(
                    "WGALLOWEDIP_A_CIDR_MASK without a value".to_owned(),
                ));
            }
        }
    }
    Ok(())
}

/// The device state of a `WG_CMD_GET_DEVICE` dump: the device's attributes from its messages,
/// and its peers, a peer continued over several messages (same public key, one after the
/// other) read as one.
pub fn parse_device_dump(messages: &[WireguardMessage]) -> Result<DeviceState, ParseError> {
    if messages.is_empty() {
        return Err(ParseError::Empty);
    }
    let mut public_key = None;
    let mut listen_port = None;
    let mut peers: Vec<PeerState> = Vec::new();
    for message in messages {
        if message.cmd != WireguardCmd::GetDevice {
            return Err(ParseError::Command(message.cmd.into()));
        }
        for attribute in &message.attributes {
            match attribute {
                WireguardAttribute::PublicKey(key) => public_key = Some(PublicKey(*key)),
                WireguardAttribute::ListenPort(port) => listen_port = Some(*port),
                WireguardAttribute::Peers(list) => {
                    for peer in list {
                        let parsed = parse_peer(peer)?;
                        match peers.last_mut() {
                            Some(last) if last.config.public_key == parsed.config.public_key => {
                                last.config.allowed_ips.extend(parsed.config.allowed_ips);
                            }
                            _ => peers.push(parsed),
                        }
                    }
                }
                _ => {}
            }
        }
    }
    Ok(DeviceState {
        public_key: public_key.ok_or(ParseError::Missing(
            "WGDEVICE_A_PUBLIC_KEY (the device has no private key)",
        ))?,
        listen_port: listen_port.ok_or(ParseError::Missing("WGDEVICE_A_LISTEN_PORT"))?,
        peers,
    })
}

fn parse_peer(peer: &WireguardPeer) -> Result<PeerState, ParseError> {
    let mut public_key = None;
    let mut state = PeerState {
        config: DevicePeer {
            public_key: PublicKey([0; 32]),
            endpoint: None,
            allowed_ips: Vec::new(),
            keepalive: None,
        },
        last_handshake: None,
        rx_bytes: 0,
        tx_bytes: 0,
    };
    for attribute in peer.iter() {
        match attribute {
            WireguardPeerAttribute::PublicKey(key) => public_key = Some(PublicKey(*key)),
            WireguardPeerAttribute::Endpoint(endpoint) => state.config.endpoint = Some(*endpoint),
            WireguardPeerAttribute::PersistentKeepalive(seconds) => {
                state.config.keepalive = Some(*seconds).filter(|s| *s > 0);
            }
            WireguardPeerAttribute::LastHandshake(time) => {
                state.last_handshake = handshake_time(time)?;
            }
            WireguardPeerAttribute::RxBytes(bytes) => state.rx_bytes = *bytes,
            WireguardPeerAttribute::TxBytes(bytes) => state.tx_bytes = *bytes,
            WireguardPeerAttribute::AllowedIps(list) => {
                for ip in list {
                    state.config.allowed_ips.push(parse_allowed_ip(ip)?);
                }
            }
            _ => {}
        }
    }
    state.config.public_key = public_key.ok_or(ParseError::Missing("WGPEER_A_PUBLIC_KEY"))?;
    Ok(state)
}

/// The kernel reports "never" as zero.
fn handshake_time(time: &WireguardTimeSpec) -> Result<Option<SystemTime>, ParseError> {
    if time.seconds == 0 && time.nano_seconds == 0 {
        return Ok(None);
    }
    let invalid = ParseError::HandshakeTime {
        seconds: time.seconds,
        nanoseconds: time.nano_seconds,
    };
    let (Ok(seconds), Ok(nanos)) = (
        u64::try_from(time.seconds),
        u32::try_from(time.nano_seconds),
    ) else {
        return Err(invalid);
    };
    if nanos >= 1_000_000_000 {
        return Err(invalid);
    }
    SystemTime::UNIX_EPOCH
        .checked_add(Duration::new(seconds, nanos))
        .map(Some)
        .ok_or(invalid)
}

fn parse_allowed_ip(ip: &WireguardAllowedIp) -> Result<IpNet, ParseError> {
    let mut family = None;
    let mut address = None;
    let mut cidr = None;
    for attribute in ip.iter() {
        match attribute {
            WireguardAllowedIpAttr::Family(f) => family = Some(u16::from(*f)),
            WireguardAllowedIpAttr::IpAddr(a) => address = Some(*a),
            WireguardAllowedIpAttr::Cidr(c) => cidr = Some(*c),
            _ => {}
        }
    }
    let address: IpAddr = address.ok_or(ParseError::Missing("WGALLOWEDIP_A_IPADDR"))?;
    let cidr = cidr.ok_or(ParseError::Missing("WGALLOWEDIP_A_CIDR_MASK"))?;
    let error = |reason: &str| ParseError::AllowedIp {
        family,
        address: address.to_string(),
        cidr,
        reason: reason.to_owned(),
    };
    let expected = match address {
        IpAddr::V4(_) => u16::from(WireguardAddressFamily::Ipv4),
        IpAddr::V6(_) => u16::from(WireguardAddressFamily::Ipv6),
    };
    if family.is_some_and(|f| f != expected) {
        return Err(error("the family does not match the address"));
    }
    IpNet::new(address, cidr)
        .map(|net| net.trunc())
        .map_err(|_| error("prefix longer than the address"))
}

#[cfg(test)]
#[path = "message_tests.rs"]
mod tests;
