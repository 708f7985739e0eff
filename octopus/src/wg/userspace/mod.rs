//! The userspace WireGuard device: boringtun's `noise::Tunn` for the protocol, and our own I/O.
//!
//! Throughput comes from doing what wireguard-go does on Linux: the TUN device is opened with
//! `IFF_VNET_HDR` offloads, so the kernel hands over whole TCP segments of up to 64 KiB (split
//! here into MTU-sized packets) and takes coalesced ones back; UDP goes out with GSO (one
//! `sendmsg` per run of same-sized datagrams to one peer) and comes in with GRO. Packets that
//! arrive one at a time, as on a gateway forwarding a pod's traffic, are batched all the same:
//! the TUN device is read until empty before the GSO send, and `recvmmsg` takes up to 32
//! datagrams per call so their packets reach the TUN device coalesced. A packet from one peer
//! to another (the hub between two members) is relayed inside the device instead of crossing
//! the kernel's TUN device twice. Two threads carry the two directions, which is what two cores
//! can use; a third wakes every 250 ms for WireGuard's timers. Configuration goes through
//! [`Device`]'s typed API or the UAPI socket.

mod datapath;
mod peers;
pub mod uapi;

use std::net::{Ipv4Addr, SocketAddr, UdpSocket};
use std::sync::{Arc, RwLock, RwLockReadGuard};
use std::time::Duration;

use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519::{PublicKey as XPublicKey, StaticSecret};

use super::{DeviceState, WgError, WireGuard};
use crate::core::{PeerChange, PublicKey};
pub use peers::PeerTable;

/// Handshakes per second accepted before the device answers with cookies (boringtun's figure).
const HANDSHAKE_RATE_LIMIT: u64 = 100;

/// Settings a device starts with.
#[derive(Clone)]
pub struct DeviceConfig {
    /// Interface name (also names the UAPI socket, so unique on the machine).
    pub ifname: String,
    /// The device's private key.
    pub private_key: [u8; 32],
    /// UDP port; 0 picks a free one.
    pub listen_port: u16,
    /// MTU of the TUN interface.
    pub mtu: u16,
}

/// A running device. Its threads live as long as the process.
pub struct Device {
    shared: Arc<Shared>,
}

/// The device's own key pair and the handshake rate limiter keyed to it (its cookies' MACs
/// are over the public key): replaced together when the key changes.
pub(crate) struct Identity {
    pub(crate) static_private: StaticSecret,
    pub(crate) static_public: XPublicKey,
    pub(crate) rate_limiter: Arc<RateLimiter>,
}

impl Identity {
    fn new(private_key: [u8; 32]) -> Self {
        let static_private = StaticSecret::from(private_key);
        let static_public = XPublicKey::from(&static_private);
        Self {
            rate_limiter: Arc::new(RateLimiter::new(&static_public, HANDSHAKE_RATE_LIMIT)),
            static_private,
            static_public,
        }
    }
}

/// What the data path, the timers and the configuration share.
pub(crate) struct Shared {
    /// Read by the data path for each handshake; written only by a key change, which holds it
    /// while every peer's tunnel takes the new key (so no peer is added with the old one).
    identity: RwLock<Identity>,
    pub(crate) listen_port: u16,
    pub(crate) peers: PeerTable,
    pub(crate) udp: UdpSocket,
    pub(crate) udp_state: quinn_udp::UdpSocketState,
}

impl Device {
    /// Creates the TUN interface and the UDP socket in the calling thread's network namespace
    /// and starts the data path.
    pub fn start(config: &DeviceConfig) -> Result<Self, WgError> {
        let io = |what: &str| {
            let what = format!("{what} for {}", config.ifname);
            move |source| WgError::Io { what, source }
        };
        let tun = tun_rs::DeviceBuilder::new()
            .name(&config.ifname)
            .mtu(config.mtu)
            .offload(true)
            .build_sync()
            .map_err(io("create TUN device"))?;
        let udp = UdpSocket::bind(SocketAddr::from((
            Ipv4Addr::UNSPECIFIED,
            config.listen_port,
        )))
        .map_err(io("bind UDP port"))?;
        let listen_port = udp.local_addr().map_err(io("read UDP port"))?.port();
        let udp_state =
            quinn_udp::UdpSocketState::new((&udp).into()).map_err(io("set up UDP offloads"))?;
        // quinn-udp leaves the socket non-blocking for an event loop; our threads block on it
        // instead (one datagram or GRO batch per receive, sends wait for buffer room).
        udp.set_nonblocking(false)
            .map_err(io("make UDP socket blocking"))?;
        // Room for a full GRO batch each way; the kernel caps it at its own maximum.
        let _ = udp_state.set_recv_buffer_size((&udp).into(), 4 << 20);
        let _ = udp_state.set_send_buffer_size((&udp).into(), 4 << 20);
        let shared = Arc::new(Shared {
            identity: RwLock::new(Identity::new(config.private_key)),
            listen_port,
            peers: PeerTable::default(),
            udp,
            udp_state,
        });
        tracing::info!(
            ifname = %config.ifname,
            listen_port,
            mtu = config.mtu,
            tcp_gso = tun.tcp_gso(),
            udp_gso_segments = shared.udp_state.max_gso_segments(),
            udp_gro_segments = shared.udp_state.gro_segments(),
            "WireGuard device up"
        );
        datapath::spawn(shared.clone(), Arc::new(tun)).map_err(io("start data path threads"))?;
        Ok(Self { shared })
    }

    /// The device's public key.
    pub fn public_key(&self) -> PublicKey {
        PublicKey(self.shared.identity().static_public.to_bytes())
    }

    /// Serves the UAPI socket `/var/run/wireguard/<ifname>.sock` on a thread of its own.
    pub fn serve_uapi(&self, ifname: &str) -> Result<(), WgError> {
        uapi::serve(self.shared.clone(), ifname)
    }
}

impl WireGuard for Device {
    fn state(&self) -> Result<DeviceState, WgError> {
        Ok(DeviceState {
            public_key: self.public_key(),
            listen_port: self.shared.listen_port,
            peers: self.shared.peers.states(),
        })
    }

    fn apply(&self, changes: &[PeerChange]) -> Result<(), WgError> {
        self.shared.apply(changes)
    }

    fn set_private_key(&self, private_key: &[u8; 32]) -> Result<bool, WgError> {
        Ok(self.shared.set_private_key(private_key))
    }
}

impl Shared {
    /// The device's key pair and rate limiter, for as long as the guard lives.
    pub(crate) fn identity(&self) -> RwLockReadGuard<'_, Identity> {
        // A thread that panicked while holding it left a whole key pair (it is swapped in one
        // assignment): going on with it is safe.
        self.identity.read().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn apply(&self, changes: &[PeerChange]) -> Result<(), WgError> {
        {
            let identity = self.identity();
            for change in changes {
                self.peers
                    .apply(change, &identity.static_private, &identity.rate_limiter)?;
            }
        }
        for change in changes {
            match change {
                // A new peer with a known endpoint handshakes at once whether or not it keeps
                // alive: when it replaces a peer whose cluster changed its key (its learned
                // endpoint carried over), the other side is already sending into a session this
                // side dropped, and only a new handshake resumes the traffic.
                PeerChange::Add(wanted) => self.handshake_now(&wanted.public_key, true),
                PeerChange::Update(update) => self.handshake_now(&update.public_key, false),
                PeerChange::Remove(_) => {}
            }
        }
        Ok(())
    }

    /// Switches the running device to `private_key` in place (as `wg set <if> private-key`
    /// does): every peer's tunnel takes the new key and drops its sessions, so each peer
    /// handshakes again on its next packet with the new public key, while the interface, the
    /// UDP socket, the peers' endpoints and allowed IPs stay. False when the key is already
    /// the device's (nothing is dropped then).
    pub(crate) fn set_private_key(&self, private_key: &[u8; 32]) -> bool {
        let mut identity = self.identity.write().unwrap_or_else(|p| p.into_inner());
        if identity.static_private.to_bytes() == *private_key {
            return false;
        }
        *identity = Identity::new(*private_key);
        for peer in self.peers.all() {
            peer.tunn().set_static_private(
                identity.static_private.clone(),
                identity.static_public,
                Some(identity.rate_limiter.clone()),
            );
        }
        drop(identity);
        // Peers that dial out (persistent keepalive) handshake now rather than at their next
        // packet: a peer behind NAT is unreachable until it speaks.
        for peer in self.peers.all() {
            self.handshake_now(&peer.public_key, false);
        }
        true
    }

    /// As the kernel does when persistent keepalive is set: start the handshake at once
    /// instead of one keepalive interval later. A gateway behind NAT has nothing to send
    /// until a pod does, and until it speaks its peer cannot reach it. With `even_without_keepalive`
    /// any peer with an endpoint and no session does.
    fn handshake_now(&self, key: &PublicKey, even_without_keepalive: bool) {
        let Some(peer) = self.peers.by_key(key) else {
            return;
        };
        let Some(to) = peer.endpoint() else {
            return;
        };
        if peer.keepalive().is_none() && !even_without_keepalive {
            return;
        }
        let mut tunn = peer.tunn();
        if tunn.time_since_last_handshake().is_some() {
            return;
        }
        let mut out = vec![0u8; 256];
        if let boringtun::noise::TunnResult::WriteToNetwork(datagram) =
            tunn.format_handshake_initiation(&mut out, false)
        {
            datapath::send_one(self, to, datagram);
        }
    }
}

#[cfg(test)]
impl Shared {
    /// A device's shared state without its TUN interface or threads: the configuration side
    /// alone, on a UDP socket of the loopback.
    pub(crate) fn for_tests(private_key: [u8; 32]) -> Self {
        let udp = UdpSocket::bind((Ipv4Addr::LOCALHOST, 0)).unwrap();
        let udp_state = quinn_udp::UdpSocketState::new((&udp).into()).unwrap();
        Self {
            identity: RwLock::new(Identity::new(private_key)),
            listen_port: udp.local_addr().unwrap().port(),
            peers: PeerTable::default(),
            udp,
            udp_state,
        }
    }
}

/// How often WireGuard's timers (rekey, keepalive, handshake retry) are checked.
pub(crate) const TIMER_TICK: Duration = Duration::from_millis(250);
