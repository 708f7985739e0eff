//! The two directions of the data path and the timer thread.

use std::io::IoSliceMut;
use std::net::{IpAddr, SocketAddr, UdpSocket};
use std::os::fd::{AsFd, AsRawFd};
use std::sync::Arc;

use boringtun::noise::handshake::parse_handshake_anon;
use boringtun::noise::{Packet, Tunn, TunnResult};
use nix::poll::{PollFd, PollFlags, PollTimeout, poll};
use nix::sys::socket::{ControlMessageOwned, MsgFlags, MultiHeaders, SockaddrStorage, recvmmsg};
use quinn_udp::Transmit;
use tun_rs::{GROTable, IDEAL_BATCH_SIZE, SyncDevice, VIRTIO_NET_HDR_LEN};

use super::peers::Peer;
use super::{Shared, TIMER_TICK};
use crate::core::PublicKey;

/// Largest datagram or TUN read: a 64 KiB GSO/GRO batch.
const BATCH_BYTES: usize = 65_535;
/// Room for a coalesced TCP segment written to the TUN device, with the virtio header.
const COALESCE_ROOM: usize = 2 * VIRTIO_NET_HDR_LEN + BATCH_BYTES;
/// Room for one encrypted packet: 64 KiB of inner packet, WireGuard's 32 bytes, padding.
const PACKET_ROOM: usize = BATCH_BYTES + 64;

pub(crate) fn spawn(shared: Arc<Shared>, tun: Arc<SyncDevice>) -> std::io::Result<()> {
    let (s, t) = (shared.clone(), tun.clone());
    std::thread::Builder::new()
        .name("wg-tun-to-udp".into())
        .spawn(move || tun_to_udp(&s, &t))?;
    let (s, t) = (shared.clone(), tun);
    std::thread::Builder::new()
        .name("wg-udp-to-tun".into())
        .spawn(move || udp_to_tun(&s, &t))?;
    std::thread::Builder::new()
        .name("wg-timers".into())
        .spawn(move || timers(&shared))?;
    Ok(())
}

/// Datagrams waiting to go out as one GSO send: same destination, same size but the last.
struct GsoBatch {
    buf: Vec<u8>,
    destination: Option<SocketAddr>,
    segment: usize,
    count: usize,
    max_segments: usize,
}

impl GsoBatch {
    fn push(&mut self, shared: &Shared, to: SocketAddr, datagram: &[u8]) {
        let fits = self.destination == Some(to)
            && datagram.len() <= self.segment
            && self.buf.len().is_multiple_of(self.segment.max(1))
            && self.count < self.max_segments
            && self.buf.len() + datagram.len() <= BATCH_BYTES;
        if !fits {
            self.flush(shared);
            self.destination = Some(to);
            self.segment = datagram.len();
        }
        self.buf.extend_from_slice(datagram);
        self.count += 1;
    }

    fn flush(&mut self, shared: &Shared) {
        if let Some(destination) = self.destination.take()
            && !self.buf.is_empty()
        {
            let transmit = Transmit {
                destination,
                ecn: None,
                contents: &self.buf,
                segment_size: (self.count > 1).then_some(self.segment),
                src_ip: None,
            };
            if let Err(error) = shared.udp_state.try_send((&shared.udp).into(), &transmit) {
                tracing::debug!(%destination, %error, "UDP send failed");
            }
        }
        self.buf.clear();
        self.count = 0;
    }
}

pub(crate) fn send_one(shared: &Shared, to: SocketAddr, datagram: &[u8]) {
    let transmit = Transmit {
        destination: to,
        ecn: None,
        contents: datagram,
        segment_size: None,
        src_ip: None,
    };
    if let Err(error) = shared.udp_state.try_send((&shared.udp).into(), &transmit) {
        tracing::debug!(destination = %to, %error, "UDP send failed");
    }
}

/// TUN reads gathered into one round of GSO sends at most: a full batch of one peer is 64 KiB,
/// about 45 packets of a 1440-byte MTU, so one round fills it several times over.
const READS_PER_ROUND: usize = 128;

/// Packets the kernel routed into the interface: encrypt for the peer owning the destination.
///
/// Packets that reach the interface one by one (forwarded from a NIC without GRO, as on a
/// gateway) are read while the device has more, and go out together: one `sendmsg` with GSO
/// per run of datagrams to one peer instead of one per packet. The peer's UDP stack then
/// receives them as one GRO batch, which it writes into its TUN device coalesced. The read
/// that finds the interface empty sends what was gathered, so a lone packet waits for nothing.
fn tun_to_udp(shared: &Shared, tun: &SyncDevice) {
    let mut original = vec![0u8; VIRTIO_NET_HDR_LEN + BATCH_BYTES];
    let mut bufs = vec![vec![0u8; BATCH_BYTES]; IDEAL_BATCH_SIZE];
    let mut sizes = vec![0usize; IDEAL_BATCH_SIZE];
    let mut out = vec![0u8; PACKET_ROOM];
    let mut batch = GsoBatch {
        buf: Vec::with_capacity(BATCH_BYTES),
        destination: None,
        segment: 0,
        count: 0,
        max_segments: shared.udp_state.max_gso_segments().max(1),
    };
    let drain = match tun.set_nonblocking(true) {
        Ok(()) => true,
        Err(error) => {
            tracing::warn!(%error, "TUN device stays blocking: one send per read");
            false
        }
    };
    let mut reads = 0usize;
    loop {
        let n = match tun.recv_multiple(&mut original, &mut bufs, &mut sizes, 0) {
            Ok(n) => n,
            Err(error) if error.kind() == std::io::ErrorKind::WouldBlock => {
                batch.flush(shared);
                reads = 0;
                wait_readable(tun);
                continue;
            }
            Err(error) => {
                tracing::warn!(%error, "TUN read failed");
                continue;
            }
        };
        let mut last: Option<(Arc<Peer>, IpAddr)> = None;
        for (buf, size) in bufs.iter().zip(&sizes).take(n) {
            let packet = &buf[..*size];
            let Some(dst) = Tunn::dst_address(packet) else {
                continue;
            };
            let peer = match &last {
                Some((peer, ip)) if *ip == dst => peer.clone(),
                _ => match shared.peers.route(dst) {
                    Some(peer) => {
                        last = Some((peer.clone(), dst));
                        peer
                    }
                    None => continue,
                },
            };
            let Some(endpoint) = peer.endpoint() else {
                continue;
            };
            match peer.tunn().encapsulate(packet, &mut out) {
                TunnResult::WriteToNetwork(datagram) => batch.push(shared, endpoint, datagram),
                TunnResult::Err(error) => tracing::debug!(?error, "encapsulate failed"),
                TunnResult::Done
                | TunnResult::WriteToTunnelV4(..)
                | TunnResult::WriteToTunnelV6(..) => {}
            }
        }
        reads += 1;
        if !drain || reads >= READS_PER_ROUND {
            batch.flush(shared);
            reads = 0;
        }
    }
}

/// Blocks until the TUN device has a packet to read (or poll fails, then the read says why).
fn wait_readable(tun: &SyncDevice) {
    let mut fds = [PollFd::new(tun.as_fd(), PollFlags::POLLIN)];
    if let Err(error) = poll(&mut fds, PollTimeout::NONE)
        && error != nix::errno::Errno::EINTR
    {
        tracing::warn!(%error, "poll on the TUN device failed");
    }
}

/// Datagrams from peers: decrypt, check the inner source against the sender's allowed IPs,
/// and hand the packets to the kernel, coalesced; or, when another peer owns the destination
/// (the hub between two members), encrypt them for that peer at once.
///
/// Relaying in the device spares the hub two crossings of its TUN device per batch (write,
/// the kernel routing the packet back into the same interface, read) and the coalescing and
/// splitting on the way. It does what the kernel would do with such a packet, routing by the
/// same table the device's cryptokey routing already is: the TTL (hop limit) drops by one, and
/// a packet with none left goes to the kernel, which answers it with ICMP as before. A packet
/// whose destination belongs to the peer it came from goes to the kernel too, never back.
fn udp_to_tun(shared: &Shared, tun: &SyncDevice) {
    let mut rx = Received::new();
    let mut plain = vec![0u8; PACKET_ROOM];
    let mut out = vec![0u8; PACKET_ROOM];
    let mut to_tun: Vec<Vec<u8>> = Vec::with_capacity(IDEAL_BATCH_SIZE);
    let mut relay: Vec<(Arc<Peer>, Vec<u8>)> = Vec::new();
    let mut spare: Vec<Vec<u8>> = Vec::new();
    let mut gro = GROTable::default();
    let mut batch = GsoBatch {
        buf: Vec::with_capacity(BATCH_BYTES),
        destination: None,
        segment: 0,
        count: 0,
        max_segments: shared.udp_state.max_gso_segments().max(1),
    };
    loop {
        if let Err(error) = rx.receive(&shared.udp) {
            tracing::warn!(%error, "UDP receive failed");
            continue;
        }
        for (m, buf) in rx.meta.iter().zip(&rx.bufs) {
            for datagram in buf[..m.len].chunks(m.stride.max(1)) {
                let peer = match peer_for(shared, m.addr, datagram, &mut plain) {
                    Ok(peer) => peer,
                    Err(Some(cookie)) => {
                        send_one(shared, m.addr, cookie);
                        continue;
                    }
                    Err(None) => continue,
                };
                let mut tunn = peer.tunn();
                let mut result = tunn.decapsulate(Some(m.addr.ip()), datagram, &mut plain);
                loop {
                    let mut decrypted = None;
                    match result {
                        TunnResult::WriteToNetwork(reply) => {
                            peer.set_endpoint(m.addr);
                            send_one(shared, m.addr, reply);
                            // boringtun may have queued packets waiting for this handshake.
                            result = tunn.decapsulate(None, &[], &mut plain);
                            continue;
                        }
                        TunnResult::WriteToTunnelV4(packet, src) => {
                            decrypted = Some((packet, IpAddr::V4(src)));
                        }
                        TunnResult::WriteToTunnelV6(packet, src) => {
                            decrypted = Some((packet, IpAddr::V6(src)));
                        }
                        TunnResult::Done => {}
                        TunnResult::Err(error) => {
                            tracing::debug!(from = %m.addr, ?error, "datagram dropped");
                        }
                    }
                    if let Some((packet, src)) = decrypted {
                        peer.set_endpoint(m.addr);
                        let queues = Queues {
                            to_tun: &mut to_tun,
                            relay: &mut relay,
                            spare: &mut spare,
                        };
                        queue(shared, &peer, src, packet, queues);
                    }
                    break;
                }
            }
        }
        if !to_tun.is_empty() {
            if let Err(error) = tun.send_multiple(&mut gro, &mut to_tun, VIRTIO_NET_HDR_LEN) {
                tracing::debug!(%error, "TUN write failed");
            }
            spare.append(&mut to_tun);
        }
        // Encrypted only now, with no other peer's tunnel locked.
        for (next, packet) in relay.drain(..) {
            if let Some(endpoint) = next.endpoint() {
                match next.tunn().encapsulate(&packet, &mut out) {
                    TunnResult::WriteToNetwork(datagram) => {
                        batch.push(shared, endpoint, datagram);
                    }
                    TunnResult::Err(error) => tracing::debug!(?error, "relay encapsulate failed"),
                    TunnResult::Done
                    | TunnResult::WriteToTunnelV4(..)
                    | TunnResult::WriteToTunnelV6(..) => {}
                }
            }
            spare.push(packet);
        }
        batch.flush(shared);
    }
}

/// Datagrams (or GRO batches) one `recvmmsg` takes at most.
const RECV_BATCH: usize = 32;

/// One received datagram or GRO batch: its sender, length, and the size of its datagrams.
#[derive(Clone, Copy)]
struct ReceivedMeta {
    addr: SocketAddr,
    len: usize,
    stride: usize,
}

/// Buffers for one `recvmmsg`, and what the last one received.
///
/// Datagrams that arrive one by one (a sender's GSO batch split on the way, as a NIC without
/// GRO does) are taken up to [`RECV_BATCH`] at a time, so that their packets reach the TUN
/// device coalesced and a relayed run goes out in one GSO send. `MSG_WAITFORONE` blocks for the
/// first datagram only: the socket stays blocking for the sending thread.
struct Received {
    bufs: Vec<Vec<u8>>,
    meta: Vec<ReceivedMeta>,
}

impl Received {
    fn new() -> Self {
        Self {
            bufs: vec![vec![0u8; BATCH_BYTES]; RECV_BATCH],
            meta: Vec::with_capacity(RECV_BATCH),
        }
    }

    fn receive(&mut self, udp: &UdpSocket) -> nix::Result<()> {
        self.meta.clear();
        // Headers made afresh for every call: the kernel writes the length of the control
        // messages it used back into each header, and nix resets only the buffers, so headers
        // reused would offer less and less room (cut control messages lose the GRO size).
        // Room for every control message the socket may carry (quinn-udp asks for the packet
        // info and ECN besides the GRO segment size).
        let mut headers =
            MultiHeaders::<SockaddrStorage>::preallocate(RECV_BATCH, Some(vec![0u8; 256]));
        let mut slices: Vec<[IoSliceMut<'_>; 1]> =
            self.bufs.iter_mut().map(|b| [IoSliceMut::new(b)]).collect();
        let results = recvmmsg(
            udp.as_raw_fd(),
            &mut headers,
            slices.iter_mut(),
            MsgFlags::MSG_WAITFORONE,
            None,
        )?;
        for message in results {
            let Some(addr) = message
                .address
                .and_then(|a| a.as_sockaddr_in().map(|v4| SocketAddr::V4((*v4).into())))
            else {
                continue;
            };
            // A GRO batch says its datagrams' size; without it the message is one datagram.
            let stride = match message.cmsgs() {
                Ok(mut cmsgs) => cmsgs
                    .find_map(|c| match c {
                        ControlMessageOwned::UdpGroSegments(size) => usize::try_from(size).ok(),
                        _ => None,
                    })
                    .unwrap_or(message.bytes),
                Err(error) => {
                    tracing::debug!(%error, "control messages cut; batch dropped");
                    continue;
                }
            };
            self.meta.push(ReceivedMeta {
                addr,
                len: message.bytes,
                stride,
            });
        }
        Ok(())
    }
}

/// The peer a datagram belongs to: by the sender's static key for a handshake initiation,
/// by our session index for everything else. Handshake messages pass the rate limiter first,
/// which checks their MAC before any Diffie-Hellman is spent on them and answers with a cookie
/// (`Err(Some(..))`) when under load; anything unparsable or unknown is `Err(None)`.
fn peer_for<'b>(
    shared: &Shared,
    from: SocketAddr,
    datagram: &[u8],
    scratch: &'b mut [u8],
) -> Result<Arc<Peer>, Option<&'b [u8]>> {
    let identity = shared.identity();
    let packet = match identity
        .rate_limiter
        .verify_packet(Some(from.ip()), datagram, scratch)
    {
        Ok(packet) => packet,
        Err(TunnResult::WriteToNetwork(cookie)) => return Err(Some(cookie)),
        Err(_) => return Err(None),
    };
    let peer = match packet {
        Packet::HandshakeInit(init) => {
            parse_handshake_anon(&identity.static_private, &identity.static_public, &init)
                .ok()
                .and_then(|half| shared.peers.by_key(&PublicKey(half.peer_static_public)))
        }
        Packet::HandshakeResponse(p) => shared.peers.by_index(p.receiver_idx),
        Packet::PacketCookieReply(p) => shared.peers.by_index(p.receiver_idx),
        Packet::PacketData(p) => shared.peers.by_index(p.receiver_idx),
    };
    peer.ok_or(None)
}

/// Where decrypted packets wait: for the TUN device, for another peer, and buffers to reuse.
struct Queues<'q> {
    to_tun: &'q mut Vec<Vec<u8>>,
    relay: &'q mut Vec<(Arc<Peer>, Vec<u8>)>,
    spare: &'q mut Vec<Vec<u8>>,
}

fn queue(shared: &Shared, peer: &Arc<Peer>, src: IpAddr, packet: &[u8], queues: Queues<'_>) {
    let Queues {
        to_tun,
        relay,
        spare,
    } = queues;
    if packet.is_empty() {
        return; // a keepalive
    }
    if peer.allows(src).is_none() {
        tracing::debug!(%src, "inner source outside the peer's allowed IPs; dropped");
        return;
    }
    if hop_limit(packet).is_some_and(|h| h > 1)
        && let Some(next) = Tunn::dst_address(packet).and_then(|dst| shared.peers.route(dst))
        && !Arc::ptr_eq(&next, peer)
    {
        let mut buf = spare
            .pop()
            .unwrap_or_else(|| Vec::with_capacity(COALESCE_ROOM));
        buf.clear();
        buf.extend_from_slice(packet);
        decrement_hop_limit(&mut buf);
        relay.push((next, buf));
        return;
    }
    // tun-rs coalesces segments of one TCP flow into the first one's buffer, and only when that
    // buffer already has room for a whole 64 KiB segment (it never reallocates): without it
    // every packet would cross the TUN device on its own.
    let mut buf = spare
        .pop()
        .unwrap_or_else(|| Vec::with_capacity(COALESCE_ROOM));
    buf.clear();
    buf.resize(VIRTIO_NET_HDR_LEN, 0);
    buf.extend_from_slice(packet);
    to_tun.push(buf);
}

/// The TTL of an IPv4 packet or the hop limit of an IPv6 one; None when too short to say.
fn hop_limit(packet: &[u8]) -> Option<u8> {
    match packet.first()? >> 4 {
        4 if packet.len() >= 20 => Some(packet[8]),
        6 if packet.len() >= 40 => Some(packet[7]),
        _ => None,
    }
}

/// Takes one from the TTL (IPv4, updating the header checksum as RFC 1624 does, like the
/// kernel's `ip_decrease_ttl`) or the hop limit (IPv6) of a packet [`hop_limit`] read above 1.
fn decrement_hop_limit(packet: &mut [u8]) {
    match packet.first().map(|b| b >> 4) {
        Some(4) if packet.len() >= 20 => {
            packet[8] -= 1;
            let check = u32::from(u16::from_be_bytes([packet[10], packet[11]])) + 0x0100;
            // The carry goes around (one's complement), as the kernel folds it.
            let folded = (check + u32::from(check >= 0xffff)) as u16;
            packet[10..12].copy_from_slice(&folded.to_be_bytes());
        }
        Some(6) if packet.len() >= 40 => packet[7] -= 1,
        _ => {}
    }
}

/// WireGuard's timers: handshake retries, rekeys, keepalives; and the handshake rate window.
fn timers(shared: &Shared) {
    let mut out = vec![0u8; PACKET_ROOM];
    let mut ticks: u32 = 0;
    loop {
        std::thread::sleep(TIMER_TICK);
        ticks = ticks.wrapping_add(1);
        if ticks.is_multiple_of(4) {
            shared.identity().rate_limiter.reset_count();
        }
        for peer in shared.peers.all() {
            let endpoint = peer.endpoint();
            let mut tunn = peer.tunn();
            if let TunnResult::WriteToNetwork(datagram) = tunn.update_timers(&mut out)
                && let Some(to) = endpoint
            {
                send_one(shared, to, datagram);
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use std::net::Ipv4Addr;
    use std::time::Duration;

    use super::*;

    /// The IPv4 header checksum computed from scratch.
    fn checksum(header: &[u8]) -> u16 {
        let mut sum: u32 = header
            .chunks(2)
            .enumerate()
            .filter(|(i, _)| *i != 5)
            .map(|(_, w)| u32::from(u16::from_be_bytes([w[0], w[1]])))
            .sum();
        while sum > 0xffff {
            sum = (sum & 0xffff) + (sum >> 16);
        }
        !(sum as u16)
    }

    fn ipv4(ttl: u8, src: [u8; 4], dst: [u8; 4]) -> Vec<u8> {
        let mut p = vec![0x45, 0, 0, 28, 0x12, 0x34, 0x40, 0, ttl, 6, 0, 0];
        p.extend_from_slice(&src);
        p.extend_from_slice(&dst);
        p.extend_from_slice(&[0; 8]);
        let c = checksum(&p[..20]);
        p[10..12].copy_from_slice(&c.to_be_bytes());
        p
    }

    #[test]
    fn a_relayed_ipv4_packet_loses_one_ttl_and_keeps_a_valid_checksum() {
        for (ttl, src, dst) in [
            (64, [10, 113, 0, 5], [10, 114, 0, 9]),
            (2, [10, 113, 255, 255], [10, 114, 255, 255]),
            (255, [0, 0, 0, 0], [0, 0, 0, 0]),
            // Checksums near the 0xffff wrap.
            (128, [0xff, 0xff, 0xff, 0xff], [0xff, 0xff, 0xfe, 0xff]),
            (17, [0xfe, 0xff, 0, 0], [0, 0, 0xff, 0xff]),
        ] {
            let mut p = ipv4(ttl, src, dst);
            assert_eq!(hop_limit(&p), Some(ttl));
            decrement_hop_limit(&mut p);
            assert_eq!(hop_limit(&p), Some(ttl - 1));
            let stored = u16::from_be_bytes([p[10], p[11]]);
            assert_eq!(stored, checksum(&p[..20]), "ttl {ttl} {src:?} -> {dst:?}");
        }
    }

    #[test]
    fn an_ipv6_packet_loses_one_hop_and_short_packets_have_no_hop_limit() {
        let mut p = vec![0u8; 40];
        p[0] = 0x60;
        p[7] = 64;
        assert_eq!(hop_limit(&p), Some(64));
        decrement_hop_limit(&mut p);
        assert_eq!(p[7], 63);
        assert_eq!(hop_limit(&[0x45; 19]), None);
        assert_eq!(hop_limit(&[0x60; 39]), None);
        assert_eq!(hop_limit(&[]), None);
        assert_eq!(hop_limit(&[0x00; 60]), None);
    }

    /// Every datagram `rx` took, by size, with its sender.
    fn datagrams(rx: &Received) -> Vec<(SocketAddr, usize)> {
        rx.meta
            .iter()
            .zip(&rx.bufs)
            .flat_map(|(m, buf)| {
                buf[..m.len]
                    .chunks(m.stride.max(1))
                    .map(move |d| (m.addr, d.len()))
            })
            .collect()
    }

    #[test]
    fn recvmmsg_takes_single_datagrams_and_gro_batches_call_after_call() {
        let receiver = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        // As the device sets it up: quinn-udp turns GRO on, the socket blocks.
        let _gro = quinn_udp::UdpSocketState::new((&receiver).into()).unwrap();
        receiver.set_nonblocking(false).unwrap();
        receiver
            .set_read_timeout(Some(Duration::from_secs(2)))
            .unwrap();
        let sender = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let sender_state = quinn_udp::UdpSocketState::new((&sender).into()).unwrap();
        let to = receiver.local_addr().unwrap();
        let from = sender.local_addr().unwrap();
        let gso = sender_state.max_gso_segments() > 1;
        let mut rx = Received::new();
        // Several rounds: the headers must offer room for the GRO size every time.
        for round in 0..4 {
            let batch = vec![round as u8; 3 * 100];
            let transmit = Transmit {
                destination: to,
                ecn: None,
                contents: if gso { &batch } else { &batch[..100] },
                segment_size: gso.then_some(100),
                src_ip: None,
            };
            sender_state.try_send((&sender).into(), &transmit).unwrap();
            sender.send_to(&[round as u8; 40], to).unwrap();
            sender.send_to(&[round as u8; 40], to).unwrap();
            let want: Vec<(SocketAddr, usize)> = [100usize; 3]
                .into_iter()
                .take(if gso { 3 } else { 1 })
                .chain([40, 40])
                .map(|len| (from, len))
                .collect();
            let mut got = Vec::new();
            for _ in 0..want.len() {
                if got.len() >= want.len() {
                    break;
                }
                rx.receive(&receiver).unwrap();
                got.extend(datagrams(&rx));
            }
            assert_eq!(got, want, "round {round}");
        }
    }
}
