//! WireGuard devices behind one trait: the kernel module over generic netlink where the node
//! has it, else the userspace backend (boringtun's protocol core under an I/O loop of our own),
//! the one this machine runs. [`AnyDevice`] is whichever the gateway started.

pub mod kernel;
pub mod userspace;

use std::net::SocketAddr;

use crate::core::{DevicePeer, PeerChange, PublicKey};

/// What a WireGuard device reports about itself.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DeviceState {
    /// The device's public key.
    pub public_key: PublicKey,
    /// Its UDP port.
    pub listen_port: u16,
    /// Its peers with their live statistics.
    pub peers: Vec<PeerState>,
}

/// One peer with what the device measured.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PeerState {
    /// Configuration as the peer diff compares it.
    pub config: DevicePeer,
    /// Seconds since the Unix epoch of the last completed handshake.
    pub last_handshake: Option<std::time::SystemTime>,
    /// Bytes received from the peer.
    pub rx_bytes: u64,
    /// Bytes sent to the peer.
    pub tx_bytes: u64,
}

/// Errors a backend reports.
#[derive(Debug, thiserror::Error)]
pub enum WgError {
    /// A socket, TUN or netlink call failed.
    #[error("{what}: {source}")]
    Io {
        /// What was being done.
        what: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// A change names a peer the device does not have.
    #[error("no peer with public key {0}")]
    UnknownPeer(PublicKey),
    /// An endpoint of a family the device cannot send to.
    #[error("endpoint {0} is IPv6; the device listens on IPv4 only")]
    EndpointFamily(SocketAddr),
}

/// A WireGuard device that the peer diff can be applied to.
pub trait WireGuard {
    /// The device's keys, port and peers.
    fn state(&self) -> Result<DeviceState, WgError>;
    /// Applies changes in order.
    fn apply(&self, changes: &[PeerChange]) -> Result<(), WgError>;
    /// Switches the running device to a new private key, keeping its peers; true when it
    /// changed (the key was not already the device's). A backend that cannot says so.
    fn set_private_key(&self, _private_key: &[u8; 32]) -> Result<bool, WgError> {
        Err(WgError::Io {
            what: "switch the private key of a running device".to_owned(),
            source: std::io::ErrorKind::Unsupported.into(),
        })
    }
}

/// The device a gateway runs: the kernel's or the userspace one.
pub enum AnyDevice {
    /// The in-process userspace device.
    Userspace(userspace::Device),
    /// A kernel `wireguard` link.
    Kernel(kernel::KernelDevice),
}

impl WireGuard for AnyDevice {
    fn state(&self) -> Result<DeviceState, WgError> {
        match self {
            Self::Userspace(device) => device.state(),
            Self::Kernel(device) => device.state(),
        }
    }

    fn apply(&self, changes: &[PeerChange]) -> Result<(), WgError> {
        match self {
            Self::Userspace(device) => device.apply(changes),
            Self::Kernel(device) => device.apply(changes),
        }
    }

    fn set_private_key(&self, private_key: &[u8; 32]) -> Result<bool, WgError> {
        match self {
            Self::Userspace(device) => device.set_private_key(private_key),
            Self::Kernel(device) => device.set_private_key(private_key),
        }
    }
}
