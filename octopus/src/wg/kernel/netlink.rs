//! A blocking netlink socket for the kernel backend: the WireGuard trait is synchronous, and
//! one request at a time is all configuration needs. Same netlink crates as rtnetlink
//! (netlink-sys, netlink-packet-core), so the process keeps one netlink stack.

use std::io;

use netlink_packet_core::{
    NLM_F_ACK, NLM_F_CREATE, NLM_F_DUMP, NLM_F_EXCL, NLM_F_MULTIPART, NLM_F_REQUEST,
    NetlinkDeserializable, NetlinkHeader, NetlinkMessage, NetlinkPayload, NetlinkSerializable,
};
use netlink_packet_generic::GenlMessage;
use netlink_packet_generic::ctrl::nlas::GenlCtrlAttrs;
use netlink_packet_generic::ctrl::{GenlCtrl, GenlCtrlCmd};
use netlink_packet_route::RouteNetlinkMessage;
use netlink_packet_route::link::{InfoKind, LinkAttribute, LinkInfo, LinkMessage};
use netlink_packet_wireguard::WireguardMessage;
use netlink_sys::{Socket, SocketAddr, protocols};

use super::message::check_attributes;

/// Replies read for one request at most: a dump of a device with many thousands of peers is
/// still far below it, and a kernel that never ends a dump does not hang the caller.
const MAX_REPLIES: usize = 1 << 20;
/// The generic netlink header in front of a family's attributes.
const GENL_HEADER_LEN: usize = 4;
/// `struct nlmsghdr`.
const NETLINK_HEADER_LEN: usize = 16;

/// A bound netlink socket of one protocol.
pub struct NetlinkSocket {
    socket: Socket,
    sequence: u32,
}

impl NetlinkSocket {
    /// A socket of `protocol` in the calling thread's network namespace.
    pub fn open(protocol: isize) -> io::Result<Self> {
        let mut socket = Socket::new(protocol)?;
        socket.bind_auto()?;
        socket.connect(&SocketAddr::new(0, 0))?;
        Ok(Self {
            socket,
            sequence: 0,
        })
    }

    /// A generic netlink socket.
    pub fn generic() -> io::Result<Self> {
        Self::open(protocols::NETLINK_GENERIC)
    }

    /// An rtnetlink socket.
    pub fn route() -> io::Result<Self> {
        Self::open(protocols::NETLINK_ROUTE)
    }

    /// Sends `message` with `flags` (`NLM_F_REQUEST` added) and collects the replies until the
    /// kernel's acknowledgement or the end of a dump. `check` sees each reply's bytes before
    /// they are parsed, to refuse what the parser would not survive.
    pub fn request<I>(
        &mut self,
        message: I,
        flags: u16,
        check: fn(&[u8]) -> io::Result<()>,
    ) -> io::Result<Vec<I>>
    where
        I: NetlinkSerializable + NetlinkDeserializable,
        <I as NetlinkDeserializable>::Error: std::fmt::Display,
    {
        self.sequence = self.sequence.wrapping_add(1);
        let mut header = NetlinkHeader::default();
        header.flags = flags | NLM_F_REQUEST;
        header.sequence_number = self.sequence;
        let mut packet = NetlinkMessage::new(header, NetlinkPayload::InnerMessage(message));
        packet.finalize();
        let mut bytes = vec![0; packet.buffer_len()];
        packet.serialize(&mut bytes);
        self.socket.send(&bytes, 0)?;

        let dump = flags & NLM_F_DUMP == NLM_F_DUMP;
        let mut replies = Vec::new();
        for _ in 0..MAX_REPLIES {
            let (buffer, _) = self.socket.recv_from_full()?;
            let mut rest: &[u8] = &buffer;
            while rest.len() >= NETLINK_HEADER_LEN {
                let length = u32::from_ne_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
                if length < NETLINK_HEADER_LEN || length > rest.len() {
                    return Err(invalid(format!("netlink message of length {length}")));
                }
                let (one, after) = rest.split_at(length);
                rest = after.get(aligned(length) - length..).unwrap_or(&[]);
                check(one)?;
                let reply =
                    NetlinkMessage::<I>::deserialize(one).map_err(|e| invalid(e.to_string()))?;
                if reply.header.sequence_number != self.sequence {
                    continue;
                }
                let multipart = reply.header.flags & NLM_F_MULTIPART != 0;
                match reply.payload {
                    NetlinkPayload::Error(error) if error.code.is_some() => {
                        return Err(error.to_io());
                    }
                    NetlinkPayload::Error(_) | NetlinkPayload::Done(_) => return Ok(replies),
                    NetlinkPayload::InnerMessage(inner) => {
                        replies.push(inner);
                        if !dump && !multipart && flags & NLM_F_ACK == 0 {
                            return Ok(replies);
                        }
                    }
                    NetlinkPayload::Noop | NetlinkPayload::Overrun(_) => {}
                    _ => {}
                }
            }
        }
        Err(invalid(format!("no end after {MAX_REPLIES} replies")))
    }
}

fn aligned(length: usize) -> usize {
    (length + 3) & !3
}

fn invalid(what: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, what)
}

/// Accepts any reply.
pub fn no_check(_: &[u8]) -> io::Result<()> {
    Ok(())
}

/// Refuses a WireGuard reply that the crate's parser would index out of bounds.
pub fn check_wireguard(bytes: &[u8]) -> io::Result<()> {
    match bytes.get(NETLINK_HEADER_LEN + GENL_HEADER_LEN..) {
        Some(attributes) => check_attributes(attributes).map_err(|e| invalid(e.to_string())),
        None => Ok(()),
    }
}

/// The generic netlink family id of `wireguard`; `ENOENT` when the kernel has no such family
/// (no module).
pub fn wireguard_family(socket: &mut NetlinkSocket) -> io::Result<u16> {
    let request = GenlMessage::from_payload(GenlCtrl {
        cmd: GenlCtrlCmd::GetFamily,
        nlas: vec![GenlCtrlAttrs::FamilyName("wireguard".to_owned())],
    });
    let replies = socket.request(request, NLM_F_ACK, no_check)?;
    replies
        .iter()
        .flat_map(|reply| reply.payload.nlas.iter())
        .find_map(|attr| match attr {
            GenlCtrlAttrs::FamilyId(id) => Some(*id),
            _ => None,
        })
        .ok_or_else(|| invalid("CTRL_CMD_GETFAMILY reply without a family id".to_owned()))
}

/// Sends one WireGuard message to family `family` and waits for its acknowledgement.
pub fn wireguard_set(
    socket: &mut NetlinkSocket,
    family: u16,
    message: WireguardMessage,
) -> io::Result<()> {
    let mut request = GenlMessage::from_payload(message);
    request.set_resolved_family_id(family);
    socket.request(request, NLM_F_ACK, check_wireguard)?;
    Ok(())
}

/// Dumps a device: every message of the `WG_CMD_GET_DEVICE` reply.
pub fn wireguard_get(
    socket: &mut NetlinkSocket,
    family: u16,
    message: WireguardMessage,
) -> io::Result<Vec<WireguardMessage>> {
    let mut request = GenlMessage::from_payload(message);
    request.set_resolved_family_id(family);
    let replies = socket.request(request, NLM_F_DUMP, check_wireguard)?;
    Ok(replies.into_iter().map(|reply| reply.payload).collect())
}

/// `ip link add <ifname> type wireguard`.
pub fn add_wireguard_link(socket: &mut NetlinkSocket, ifname: &str) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.attributes = vec![
        LinkAttribute::IfName(ifname.to_owned()),
        LinkAttribute::LinkInfo(vec![LinkInfo::Kind(InfoKind::Wireguard)]),
    ];
    socket.request(
        RouteNetlinkMessage::NewLink(link),
        NLM_F_ACK | NLM_F_CREATE | NLM_F_EXCL,
        no_check,
    )?;
    Ok(())
}

/// `ip link del <ifname>`.
pub fn delete_link(socket: &mut NetlinkSocket, ifname: &str) -> io::Result<()> {
    let mut link = LinkMessage::default();
    link.attributes = vec![LinkAttribute::IfName(ifname.to_owned())];
    socket.request(RouteNetlinkMessage::DelLink(link), NLM_F_ACK, no_check)?;
    Ok(())
}
