//! The device's peers: each one's tunnel state, endpoint and allowed IPs, found by public key,
//! by the receiver index in incoming packets, or by the destination of outgoing ones.

use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, MutexGuard, RwLock};
use std::time::SystemTime;

use boringtun::noise::Tunn;
use boringtun::noise::rate_limiter::RateLimiter;
use boringtun::x25519::{PublicKey as XPublicKey, StaticSecret};
use ipnet::IpNet;

use crate::core::{DevicePeer, PeerChange, PublicKey, WantedPeer};
use crate::wg::{PeerState, WgError};

/// One peer.
pub struct Peer {
    pub(crate) public_key: PublicKey,
    /// The top 24 bits of the session indices boringtun hands out for this peer.
    pub(crate) index: u32,
    pub(crate) tunn: Mutex<Tunn>,
    pub(crate) endpoint: Mutex<Option<SocketAddr>>,
    pub(crate) allowed_ips: RwLock<Vec<IpNet>>,
    keepalive: Option<u16>,
}

impl Peer {
    pub(crate) fn tunn(&self) -> MutexGuard<'_, Tunn> {
        // A thread that panicked while holding the lock left the tunnel state as it was; going
        // on with it is what WireGuard would do after a lost packet.
        self.tunn.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn endpoint(&self) -> Option<SocketAddr> {
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner())
    }

    pub(crate) fn set_endpoint(&self, ep: SocketAddr) {
        *self.endpoint.lock().unwrap_or_else(|p| p.into_inner()) = Some(ep);
    }

    /// Persistent keepalive in seconds, if on.
    pub(crate) fn keepalive(&self) -> Option<u16> {
        self.keepalive
    }

    pub(crate) fn allows(&self, ip: IpAddr) -> Option<u8> {
        let nets = self.allowed_ips.read().unwrap_or_else(|p| p.into_inner());
        nets.iter()
            .filter(|n| n.contains(&ip))
            .map(|n| n.prefix_len())
            .max()
    }

    fn allowed(&self) -> Vec<IpNet> {
        self.allowed_ips
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }
}

/// All peers; cloned `Arc`s are handed to the data path so the table lock is held only briefly.
#[derive(Default)]
pub struct PeerTable {
    peers: RwLock<Vec<Arc<Peer>>>,
    next_index: AtomicU32,
}

impl PeerTable {
    fn read(&self) -> std::sync::RwLockReadGuard<'_, Vec<Arc<Peer>>> {
        self.peers.read().unwrap_or_else(|p| p.into_inner())
    }

    fn write(&self) -> std::sync::RwLockWriteGuard<'_, Vec<Arc<Peer>>> {
        self.peers.write().unwrap_or_else(|p| p.into_inner())
    }

    /// Every peer.
    pub(crate) fn all(&self) -> Vec<Arc<Peer>> {
        self.read().clone()
    }

    /// The peer whose allowed IPs hold `dst` most specifically (cryptokey routing).
    pub(crate) fn route(&self, dst: IpAddr) -> Option<Arc<Peer>> {
        self.read()
            .iter()
            .filter_map(|p| p.allows(dst).map(|len| (len, p)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, p)| p.clone())
    }

    /// The peer owning session index `receiver_idx`.
    pub(crate) fn by_index(&self, receiver_idx: u32) -> Option<Arc<Peer>> {
        let index = receiver_idx >> 8;
        self.read().iter().find(|p| p.index == index).cloned()
    }

    /// The peer with `key`.
    pub(crate) fn by_key(&self, key: &PublicKey) -> Option<Arc<Peer>> {
        self.read().iter().find(|p| p.public_key == *key).cloned()
    }

    /// Applies one change from the peer diff.
    pub(crate) fn apply(
        &self,
        change: &PeerChange,
        private: &StaticSecret,
        limiter: &Arc<RateLimiter>,
    ) -> Result<(), WgError> {
        match change {
            PeerChange::Remove(key) => {
                self.write().retain(|p| p.public_key != *key);
            }
            PeerChange::Add(wanted) => {
                self.write().retain(|p| p.public_key != wanted.public_key);
                self.insert(wanted, private, limiter);
            }
            PeerChange::Update(update) => {
                let peer = self
                    .by_key(&update.public_key)
                    .ok_or(WgError::UnknownPeer(update.public_key))?;
                let keepalive = match update.keepalive {
                    Some(k) => k,
                    None => peer.keepalive,
                };
                if let Some(ep) = update.endpoint {
                    peer.set_endpoint(ep);
                }
                if let Some(ips) = &update.allowed_ips {
                    self.claim(ips);
                    *peer.allowed_ips.write().unwrap_or_else(|p| p.into_inner()) = ips.clone();
                }
                if keepalive != peer.keepalive {
                    // boringtun fixes the keepalive when the tunnel is made: a new one takes
                    // its place and handshakes again.
                    let wanted = WantedPeer {
                        public_key: peer.public_key,
                        endpoint: peer.endpoint(),
                        allowed_ips: peer.allowed(),
                        keepalive,
                    };
                    self.write().retain(|p| p.public_key != peer.public_key);
                    self.insert(&wanted, private, limiter);
                }
            }
        }
        Ok(())
    }

    /// An allowed IP belongs to one peer: giving it to one takes it from the others.
    fn claim(&self, ips: &[IpNet]) {
        for peer in self.read().iter() {
            peer.allowed_ips
                .write()
                .unwrap_or_else(|p| p.into_inner())
                .retain(|n| !ips.contains(n));
        }
    }

    fn insert(&self, wanted: &WantedPeer, private: &StaticSecret, limiter: &Arc<RateLimiter>) {
        self.claim(&wanted.allowed_ips);
        let index = self.next_index.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
        let tunn = Tunn::new(
            private.clone(),
            XPublicKey::from(*wanted.public_key.as_bytes()),
            None,
            wanted.keepalive.filter(|k| *k != 0),
            index,
            Some(limiter.clone()),
        );
        self.write().push(Arc::new(Peer {
            public_key: wanted.public_key,
            index,
            tunn: Mutex::new(tunn),
            endpoint: Mutex::new(wanted.endpoint),
            allowed_ips: RwLock::new(wanted.allowed_ips.clone()),
            keepalive: wanted.keepalive.filter(|k| *k != 0),
        }));
    }

    /// Each peer's configuration and counters.
    pub(crate) fn states(&self) -> Vec<PeerState> {
        self.all()
            .iter()
            .map(|p| {
                let (since, tx, rx, _, _) = p.tunn().stats();
                PeerState {
                    config: DevicePeer {
                        public_key: p.public_key,
                        endpoint: p.endpoint(),
                        allowed_ips: p.allowed(),
                        keepalive: p.keepalive,
                    },
                    last_handshake: since.and_then(|d| SystemTime::now().checked_sub(d)),
                    rx_bytes: rx as u64,
                    tx_bytes: tx as u64,
                }
            })
            .collect()
    }
}
