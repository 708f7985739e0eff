//! The hub's latency probe: ICMP echo through the tunnel to a member's gateway address, on a
//! raw socket (the hub's gateway runs as root, with `CAP_NET_RAW`). The packets are
//! [`crate::core::icmp`]'s; this module only sends, waits and reads.

use std::net::{IpAddr, SocketAddr};
use std::os::fd::{AsRawFd, OwnedFd};
use std::time::Duration;

use nix::errno::Errno;
use nix::sys::socket::{
    AddressFamily, MsgFlags, SockFlag, SockProtocol, SockType, SockaddrStorage, bind, recvfrom,
    sendto, socket,
};
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use crate::core::icmp::{self, Family};

/// How a target is probed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct ProbeSettings {
    /// Echo requests per target and pass; the median of the answered ones is the latency.
    pub count: u16,
    /// How long one request waits for its reply before it counts as lost.
    pub timeout: Duration,
}

impl Default for ProbeSettings {
    fn default() -> Self {
        Self {
            count: 3,
            timeout: Duration::from_secs(1),
        }
    }
}

/// Why a target could not be probed at all (as opposed to not answering).
#[derive(Debug, thiserror::Error)]
pub enum ProbeError {
    /// The raw socket cannot be opened (no `CAP_NET_RAW`) or registered with the runtime.
    #[error("open a raw ICMP socket: {0}")]
    Socket(#[source] std::io::Error),
    /// The source address is not (yet) local.
    #[error("bind the probe to {source_address}: {source}")]
    Bind {
        /// The address.
        source_address: IpAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// An echo request cannot be sent (no route, ...).
    #[error("send an echo request to {target}: {source}")]
    Send {
        /// The target.
        target: IpAddr,
        /// The error.
        #[source]
        source: std::io::Error,
    },
}

/// What the echo requests carry: marks them in a capture.
const PAYLOAD: &[u8] = b"nauti-octopus-latency";

/// The median round trip to `target` over `settings.count` echo requests sent from `source`
/// (a local address; the kernel's choice when `None`), each waiting at most `settings.timeout`;
/// `Ok(None)` when none was answered.
pub async fn round_trip(
    source: Option<IpAddr>,
    target: IpAddr,
    settings: ProbeSettings,
) -> Result<Option<Duration>, ProbeError> {
    let family = Family::of(target);
    let (domain, protocol) = match family {
        Family::V4 => (AddressFamily::Inet, SockProtocol::Icmp),
        Family::V6 => (AddressFamily::Inet6, SockProtocol::IcmpV6),
    };
    let fd = socket(
        domain,
        SockType::Raw,
        SockFlag::SOCK_NONBLOCK | SockFlag::SOCK_CLOEXEC,
        protocol,
    )
    .map_err(|errno| ProbeError::Socket(errno.into()))?;
    if let Some(source) = source {
        bind(
            fd.as_raw_fd(),
            &SockaddrStorage::from(SocketAddr::new(source, 0)),
        )
        .map_err(|errno| ProbeError::Bind {
            source_address: source,
            source: errno.into(),
        })?;
    }
    #[allow(
        deprecated,
        reason = "the safe constructor is deprecated for inner types whose descriptor may close \
                  or change under it; an OwnedFd holds its descriptor open and unchanged until \
                  the AsyncFd drops it, which is the contract the unsafe `register` asks for"
    )]
    let fd = AsyncFd::new(fd).map_err(ProbeError::Socket)?;
    // A raw socket sees every ICMP packet of the namespace: a random identifier tells this
    // probe's replies from another's (or a ping's).
    let identifier = random_identifier();
    let destination = SockaddrStorage::from(SocketAddr::new(target, 0));
    let mut samples = Vec::new();
    for sequence in 1..=settings.count {
        let request = icmp::echo_request(family, identifier, sequence, PAYLOAD);
        let sent = Instant::now();
        sendto(
            fd.get_ref().as_raw_fd(),
            &request,
            &destination,
            MsgFlags::empty(),
        )
        .map_err(|errno| ProbeError::Send {
            target,
            source: errno.into(),
        })?;
        let deadline = sent + settings.timeout;
        let answered = tokio::time::timeout_at(
            deadline,
            await_reply(&fd, family, target, identifier, sequence),
        )
        .await;
        match answered {
            Ok(Ok(())) => samples.push(sent.elapsed()),
            Ok(Err(error)) => {
                tracing::debug!(%target, %error, "cannot read the echo reply");
            }
            Err(_elapsed) => tracing::debug!(%target, sequence, "no echo reply in time"),
        }
    }
    Ok(icmp::median(&samples))
}

/// Reads ICMP packets until the echo reply from `target` to (`identifier`, `sequence`).
async fn await_reply(
    fd: &AsyncFd<OwnedFd>,
    family: Family,
    target: IpAddr,
    identifier: u16,
    sequence: u16,
) -> std::io::Result<()> {
    let mut buf = [0u8; 1500];
    loop {
        let mut ready = fd.readable().await?;
        let received = ready.try_io(|inner| {
            recvfrom::<SockaddrStorage>(inner.get_ref().as_raw_fd(), &mut buf)
                .map_err(std::io::Error::from)
        });
        let (len, from) = match received {
            Ok(Ok(got)) => got,
            Ok(Err(error)) if error.raw_os_error() == Some(Errno::EINTR as i32) => continue,
            Ok(Err(error)) => return Err(error),
            // Spurious readiness: wait again.
            Err(_would_block) => continue,
        };
        if from.as_ref().and_then(source_ip) != Some(target) {
            continue;
        }
        let Some(packet) = buf.get(..len) else {
            continue;
        };
        if let Ok(reply) = icmp::parse_echo_reply(family, packet)
            && reply.identifier == identifier
            && reply.sequence == sequence
        {
            return Ok(());
        }
    }
}

fn source_ip(addr: &SockaddrStorage) -> Option<IpAddr> {
    if let Some(v4) = addr.as_sockaddr_in() {
        return Some(IpAddr::V4(v4.ip()));
    }
    addr.as_sockaddr_in6().map(|v6| IpAddr::V6(v6.ip()))
}

fn random_identifier() -> u16 {
    let mut bytes = [0u8; 2];
    if getrandom::fill(&mut bytes).is_err() {
        // Without randomness the process ID still tells this hub's probes from a ping's.
        return u16::try_from(std::process::id() & 0xffff).unwrap_or_default();
    }
    u16::from_ne_bytes(bytes)
}
