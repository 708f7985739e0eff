//! The kernel WireGuard backend: a `wireguard` link configured over generic netlink, and the
//! choice between it and the userspace device (`--wireguard-backend auto|kernel|userspace`).
//!
//! The messages ([`message`]) are pure functions over `netlink-packet-wireguard`'s types and
//! are unit-tested byte for byte: built, emitted, parsed back, split over several messages
//! as wireguard-tools splits them. The adapter ([`KernelDevice`]) sends them on a blocking
//! netlink socket of the same netlink crates rtnetlink uses.
//!
//! **Untested against a kernel here.** This machine's kernel has no WireGuard module
//! (`/sys/module/wireguard` is absent and creating a `wireguard` link fails), so `auto`
//! picks the userspace device and the tests exercise that one; [`KernelDevice`] has never
//! talked to a kernel module on this machine. Where the module exists it is tested the way
//! the userspace device is: in a fresh network namespace, [`KernelDevice::create`] two
//! devices with each other as peers, compare [`WireGuard::state`] with what `wg show`
//! prints, ping across, and check the rx/tx counters and the last handshake moved; then
//! apply a key rotation and a peer removal and read them back.

pub mod message;
mod netlink;

use std::io;
use std::path::Path;
use std::sync::Mutex;

use netlink_packet_wireguard::WireguardMessage;

use self::message::{MESSAGE_BUDGET, SetDevice, parse_device_dump, set_device_messages};
use self::netlink::NetlinkSocket;
use super::{DeviceState, WgError, WireGuard};
use crate::core::PeerChange;

/// Where the kernel lists a loaded (or built-in) WireGuard module.
pub const WIREGUARD_MODULE_SYSFS: &str = "/sys/module/wireguard";

/// Which WireGuard implementation runs the tunnel.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum WireGuardBackend {
    /// The kernel module when the node has it, else the userspace device.
    #[default]
    Auto,
    /// The kernel module; an error when the node has none.
    Kernel,
    /// The in-process userspace device on a TUN interface.
    Userspace,
}

/// The implementation [`choose_backend`] settled on.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChosenBackend {
    /// The kernel module.
    Kernel,
    /// The userspace device.
    Userspace,
}

/// Why the kernel module cannot be used.
#[derive(Debug, thiserror::Error)]
#[error(
    "the kernel has no WireGuard module (`wireguard`): {WIREGUARD_MODULE_SYSFS} is absent and \
     creating a wireguard link failed"
)]
pub struct KernelUnavailable {
    /// The kernel's answer to the throwaway link.
    #[source]
    pub source: io::Error,
}

/// Why the wanted backend cannot run.
#[derive(Debug, thiserror::Error)]
pub enum BackendError {
    /// `kernel` was asked for on a node without the module.
    #[error("the kernel backend cannot run here (use userspace or auto)")]
    ModuleMissing(#[source] KernelUnavailable),
    /// `kernel` was asked for where only the userspace device can be started.
    #[error("this command starts only the userspace device (use userspace or auto)")]
    KernelNotSupportedHere,
}

/// The backend to run: `userspace` as asked; `kernel` only where the module is present
/// (`probe` says so) and the caller can start it; `auto` the kernel where both hold, else
/// userspace. `probe` runs only when the answer depends on it.
pub fn choose_backend(
    wanted: WireGuardBackend,
    probe: impl FnOnce() -> Result<(), KernelUnavailable>,
    caller_runs_kernel: bool,
) -> Result<ChosenBackend, BackendError> {
    match wanted {
        WireGuardBackend::Userspace => Ok(ChosenBackend::Userspace),
        WireGuardBackend::Auto => Ok(if caller_runs_kernel && probe().is_ok() {
            ChosenBackend::Kernel
        } else {
            ChosenBackend::Userspace
        }),
        WireGuardBackend::Kernel => {
            probe().map_err(BackendError::ModuleMissing)?;
            if caller_runs_kernel {
                Ok(ChosenBackend::Kernel)
            } else {
                Err(BackendError::KernelNotSupportedHere)
            }
        }
    }
}

/// Whether the node can run kernel WireGuard in the calling thread's network namespace:
/// the module is loaded, or creating a throwaway `wireguard` link works (which also loads
/// it where it is installed but not loaded). Creating a link needs `CAP_NET_ADMIN`.
pub fn probe_kernel() -> Result<(), KernelUnavailable> {
    if Path::new(WIREGUARD_MODULE_SYSFS).exists() {
        return Ok(());
    }
    let probe = || -> io::Result<()> {
        let mut socket = NetlinkSocket::route()?;
        // Unique per process; 15 bytes at most.
        let ifname = format!("wgprobe{}", std::process::id() % 100_000_000);
        netlink::add_wireguard_link(&mut socket, &ifname)?;
        if let Err(error) = netlink::delete_link(&mut socket, &ifname) {
            tracing::warn!(ifname, %error, "could not delete the throwaway wireguard link");
        }
        Ok(())
    };
    probe().map_err(|source| KernelUnavailable { source })
}

/// True when [`probe_kernel`] finds the module.
pub fn kernel_available() -> bool {
    probe_kernel().is_ok()
}

/// Settings a kernel device starts with.
#[derive(Debug, Clone)]
pub struct KernelDeviceConfig {
    /// Interface name.
    pub ifname: String,
    /// The device's private key.
    pub private_key: [u8; 32],
    /// UDP port; 0 lets the kernel pick one.
    pub listen_port: u16,
    /// Firewall mark on the device's UDP packets, if any.
    pub fwmark: Option<u32>,
}

/// A kernel WireGuard device: a `wireguard` link in the namespace it was created in,
/// configured over generic netlink. The link outlives the process unless deleted.
pub struct KernelDevice {
    ifname: String,
    family: u16,
    socket: Mutex<NetlinkSocket>,
}

impl KernelDevice {
    /// Creates the `wireguard` link (or takes the existing one of that name) in the calling
    /// thread's network namespace and gives it the key and port.
    pub fn create(config: &KernelDeviceConfig) -> Result<Self, WgError> {
        let mut route = NetlinkSocket::route().map_err(io_error("open an rtnetlink socket"))?;
        match netlink::add_wireguard_link(&mut route, &config.ifname) {
            Ok(()) => {}
            Err(error) if error.raw_os_error() == Some(libc::EEXIST) => {}
            Err(error) => return Err(io_error("create the wireguard link")(error)),
        }
        let device = Self::open(&config.ifname)?;
        device.send(&SetDevice {
            ifname: config.ifname.clone(),
            private_key: Some(config.private_key),
            listen_port: Some(config.listen_port),
            fwmark: config.fwmark,
            ..SetDevice::default()
        })?;
        Ok(device)
    }

    /// The existing kernel device `ifname`.
    pub fn open(ifname: &str) -> Result<Self, WgError> {
        let mut socket =
            NetlinkSocket::generic().map_err(io_error("open a generic netlink socket"))?;
        let family = netlink::wireguard_family(&mut socket)
            .map_err(io_error("resolve the generic netlink family `wireguard`"))?;
        Ok(Self {
            ifname: ifname.to_owned(),
            family,
            socket: Mutex::new(socket),
        })
    }

    /// The interface's name.
    pub fn ifname(&self) -> &str {
        &self.ifname
    }

    /// Switches the device to `private_key`, keeping its peers; true when it changed.
    pub fn set_private_key(&self, private_key: &[u8; 32]) -> Result<bool, WgError> {
        let wanted = crate::core::PublicKey(
            boringtun::x25519::PublicKey::from(&boringtun::x25519::StaticSecret::from(
                *private_key,
            ))
            .to_bytes(),
        );
        if self.state()?.public_key == wanted {
            return Ok(false);
        }
        self.send(&SetDevice {
            ifname: self.ifname.clone(),
            private_key: Some(*private_key),
            ..SetDevice::default()
        })?;
        Ok(true)
    }

    fn send(&self, set: &SetDevice) -> Result<(), WgError> {
        let messages = set_device_messages(set, MESSAGE_BUDGET)
            .map_err(|e| io_error("build WG_CMD_SET_DEVICE")(invalid_input(e)))?;
        let mut socket = self.lock();
        for message in messages {
            netlink::wireguard_set(&mut socket, self.family, message)
                .map_err(io_error("WG_CMD_SET_DEVICE"))?;
        }
        Ok(())
    }

    fn dump(&self) -> Result<Vec<WireguardMessage>, WgError> {
        let mut socket = self.lock();
        netlink::wireguard_get(
            &mut socket,
            self.family,
            message::get_device_message(&self.ifname),
        )
        .map_err(io_error("WG_CMD_GET_DEVICE"))
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, NetlinkSocket> {
        // A panic while holding the socket leaves it usable: each request stands alone.
        self.socket
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl WireGuard for KernelDevice {
    fn state(&self) -> Result<DeviceState, WgError> {
        parse_device_dump(&self.dump()?)
            .map_err(|e| io_error("read WG_CMD_GET_DEVICE")(invalid_data(e)))
    }

    fn apply(&self, changes: &[PeerChange]) -> Result<(), WgError> {
        if changes.is_empty() {
            return Ok(());
        }
        self.send(&message::set_from_changes(&self.ifname, changes))
    }
}

fn io_error(what: &'static str) -> impl Fn(io::Error) -> WgError {
    move |source| WgError::Io {
        what: what.to_owned(),
        source,
    }
}

fn invalid_input(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, error)
}

fn invalid_data(error: impl std::error::Error + Send + Sync + 'static) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, error)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The error and its sources, as the command line prints them.
    fn chain(error: &dyn std::error::Error) -> String {
        let mut text = error.to_string();
        let mut source = error.source();
        while let Some(cause) = source {
            text.push_str(&format!(": {cause}"));
            source = cause.source();
        }
        text
    }

    fn present() -> Result<(), KernelUnavailable> {
        Ok(())
    }

    fn missing() -> Result<(), KernelUnavailable> {
        Err(KernelUnavailable {
            source: io::Error::from_raw_os_error(libc::EOPNOTSUPP),
        })
    }

    #[test]
    fn auto_takes_the_kernel_only_where_the_module_is_and_the_caller_runs_it() {
        use ChosenBackend::{Kernel, Userspace};
        use WireGuardBackend::Auto;
        assert_eq!(choose_backend(Auto, present, true).unwrap(), Kernel);
        assert_eq!(choose_backend(Auto, present, false).unwrap(), Userspace);
        assert_eq!(choose_backend(Auto, missing, true).unwrap(), Userspace);
        assert_eq!(
            choose_backend(WireGuardBackend::Userspace, present, true).unwrap(),
            Userspace
        );
    }

    #[test]
    fn kernel_without_the_module_is_an_error_naming_it() {
        let error = choose_backend(WireGuardBackend::Kernel, missing, true).unwrap_err();
        assert!(matches!(error, BackendError::ModuleMissing(_)));
        let text = chain(&error);
        assert!(text.contains("no WireGuard module (`wireguard`)"), "{text}");
        assert!(text.contains(WIREGUARD_MODULE_SYSFS), "{text}");
        let error = choose_backend(WireGuardBackend::Kernel, present, false).unwrap_err();
        assert!(matches!(error, BackendError::KernelNotSupportedHere));
        assert_eq!(
            choose_backend(WireGuardBackend::Kernel, present, true).unwrap(),
            ChosenBackend::Kernel
        );
    }
}
