//! TX checksum offload through the `SIOCETHTOOL` ioctl.
//!
//! The ethtool netlink family can read features but the crates that speak it cannot yet set them,
//! so this one setting goes through the classic ioctl on a datagram socket.
#![allow(unsafe_code)]

use std::os::fd::AsRawFd;

use nix::sys::socket::{AddressFamily, SockFlag, SockType, socket};

const SIOCETHTOOL: libc::c_ulong = 0x8946;
const ETHTOOL_STXCSUM: u32 = 0x0000_0017;

#[repr(C)]
struct EthtoolValue {
    cmd: u32,
    data: u32,
}

#[repr(C)]
struct IfReq {
    name: [libc::c_char; libc::IFNAMSIZ],
    data: *mut EthtoolValue,
    // struct ifreq is 40 bytes on 64-bit Linux: pad the union.
    _pad: [u8; 16],
}

/// Turns TX checksum offload of `ifname` on or off (in the calling thread's namespace).
pub(super) fn set_tx_checksum(ifname: &str, enabled: bool) -> std::io::Result<()> {
    let bytes = ifname.as_bytes();
    if bytes.is_empty() || bytes.len() >= libc::IFNAMSIZ {
        return Err(std::io::Error::new(
            std::io::ErrorKind::InvalidInput,
            format!("bad interface name `{ifname}`"),
        ));
    }
    let sock = socket(
        AddressFamily::Inet,
        SockType::Datagram,
        SockFlag::SOCK_CLOEXEC,
        None,
    )?;
    let mut value = EthtoolValue {
        cmd: ETHTOOL_STXCSUM,
        data: u32::from(enabled),
    };
    let mut req = IfReq {
        name: [0; libc::IFNAMSIZ],
        data: &mut value,
        _pad: [0; 16],
    };
    for (dst, src) in req.name.iter_mut().zip(bytes) {
        *dst = *src as libc::c_char;
    }
    // SAFETY: `req` is a properly initialised `struct ifreq` whose name is NUL-terminated (checked
    // length above, zero-filled) and whose data pointer refers to `value`, which outlives the call;
    // SIOCETHTOOL with ETHTOOL_STXCSUM reads the struct and writes nothing back beyond it.
    let rc = unsafe { libc::ioctl(sock.as_raw_fd(), SIOCETHTOOL, &mut req as *mut IfReq) };
    if rc < 0 {
        return Err(std::io::Error::last_os_error());
    }
    Ok(())
}
