//! A peer's tunnel status from what the WireGuard device counts: the last handshake, bytes in
//! and out, and the `Ready` condition the hub writes into the member's `Peer` status.
//!
//! WireGuard starts a new handshake every 2 minutes while traffic flows (`REKEY_AFTER_TIME`),
//! and a peer with a 25 s persistent keepalive keeps traffic flowing, so a live tunnel never
//! goes [`HANDSHAKE_FRESH`] (3 minutes) without one. Past that the peer stopped answering.
//!
//! The device has no round-trip figure of its own: the hub pings each member's gateway
//! through the tunnel ([`super::icmp`]) and adds the median to the status
//! ([`TunnelStatus::latency_ms`]). A latency that only wobbles is not worth a write of its own
//! ([`LatencyThreshold`]).

use std::net::SocketAddr;
use std::time::{Duration, SystemTime};

pub use super::icmp::LatencyThreshold;
use super::icmp::latency_moved;

/// How long after a handshake a tunnel still counts as up: WireGuard rekeys every 2 minutes
/// on a live tunnel, so one missed rekey plus slack.
pub const HANDSHAKE_FRESH: Duration = Duration::from_secs(180);

/// Reasons of the `Ready` condition the hub sets from the tunnel (the Peer contract of
/// `nauti_api::peer::condition`).
pub mod reason {
    use nauti_api::peer::condition;

    /// A handshake within [`HANDSHAKE_FRESH`](super::HANDSHAKE_FRESH).
    pub const CONNECTED: &str = condition::REASON_CONNECTED;
    /// The device never completed a handshake with the peer.
    pub const NEVER_CONNECTED: &str = condition::REASON_NEVER_CONNECTED;
    /// There was a handshake, but none for longer than [`HANDSHAKE_FRESH`](super::HANDSHAKE_FRESH).
    pub const NOT_ANSWERING: &str = condition::REASON_NOT_ANSWERING;
}

/// What the device says about one peer at one moment.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub struct TunnelSample {
    /// The last completed handshake, if any.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from the peer since the device started.
    pub rx_bytes: u64,
    /// Bytes sent to the peer since the device started.
    pub tx_bytes: u64,
    /// Where the device sends to the peer: configured (a public peer) or learned from its
    /// last handshake; `None` while a peer behind NAT has never dialled in.
    pub endpoint: Option<SocketAddr>,
}

/// A peer's tunnel as the hub reports it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TunnelStatus {
    /// The last handshake known, from this sample or an earlier one.
    pub last_handshake: Option<SystemTime>,
    /// Bytes received from the peer (device counter).
    pub rx_bytes: u64,
    /// Bytes sent to the peer (device counter).
    pub tx_bytes: u64,
    /// `Ready`: true only with a fresh handshake.
    pub ready: bool,
    /// One of [`reason`].
    pub reason: &'static str,
    /// Human-readable, naming the handshake's age.
    pub message: String,
    /// The median round trip through the tunnel to the peer's gateway, in ms; `None` when
    /// not measured or nothing answered.
    pub latency_ms: Option<u64>,
}

/// The status of one peer from the `current` sample, the `previous` one (an earlier look, or
/// what was recorded before a restart: a device that restarted forgets the handshake, the
/// peer has still connected once) and the time `now`.
pub fn tunnel_status(
    current: &TunnelSample,
    previous: Option<&TunnelSample>,
    now: SystemTime,
) -> TunnelStatus {
    let last_handshake = match (
        current.last_handshake,
        previous.and_then(|p| p.last_handshake),
    ) {
        (Some(a), Some(b)) => Some(a.max(b)),
        (a, b) => a.or(b),
    };
    let bytes = format!(
        "{} received, {} sent",
        human_bytes(current.rx_bytes),
        human_bytes(current.tx_bytes)
    );
    // Which side must act: the device dials an endpoint it has; without one it waits.
    let dialled = match current.endpoint {
        Some(endpoint) => format!("{endpoint} has not answered"),
        None => "no endpoint to dial, waiting for the peer to dial in".to_owned(),
    };
    let (ready, reason, message) = match last_handshake {
        None => (
            false,
            reason::NEVER_CONNECTED,
            format!("no WireGuard handshake with the peer yet: {dialled}; {bytes}"),
        ),
        Some(at) => {
            // A handshake stamped in the future (clock step) counts as just now.
            let age = now.duration_since(at).unwrap_or_default();
            if age <= HANDSHAKE_FRESH {
                (
                    true,
                    reason::CONNECTED,
                    format!("last handshake {} ago; {bytes}", human_age(age)),
                )
            } else {
                (
                    false,
                    reason::NOT_ANSWERING,
                    format!(
                        "last handshake {} ago, longer than {}: the peer stopped answering \
                         ({dialled}); {bytes}",
                        human_age(age),
                        human_age(HANDSHAKE_FRESH)
                    ),
                )
            }
        }
    };
    TunnelStatus {
        last_handshake,
        rx_bytes: current.rx_bytes,
        tx_bytes: current.tx_bytes,
        ready,
        reason,
        message,
        latency_ms: None,
    }
}

/// What was last written into a Peer's status, to decide whether to write again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WrittenStatus {
    /// When it was written.
    pub at: SystemTime,
    /// `Ready` as written.
    pub ready: bool,
    /// Its reason.
    pub reason: String,
    /// Its message.
    pub message: String,
    /// `lastHandshake` as written, whole seconds since the epoch (what the API keeps).
    pub last_handshake_secs: Option<u64>,
    /// `latencyMs` as written.
    pub latency_ms: Option<u64>,
}

/// How often the status writer may write one Peer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct WritePacing {
    /// No two writes of one Peer closer than this, whatever changed.
    pub min_interval: Duration,
    /// A change of the message alone (the handshake's age, the byte counts) is written only
    /// when the last write is this old.
    pub refresh: Duration,
    /// A latency change beyond this is written as soon as [`Self::min_interval`] allows; a
    /// smaller one waits for [`Self::refresh`] like the message.
    pub latency: LatencyThreshold,
}

impl Default for WritePacing {
    fn default() -> Self {
        Self {
            min_interval: Duration::from_secs(10),
            refresh: Duration::from_secs(60),
            latency: LatencyThreshold::default(),
        }
    }
}

/// Whether `wanted` should be written now, given what was `written` last (`None`: nothing yet
/// or unknown). A change of `Ready`, its reason, the handshake or (beyond its threshold) the
/// latency is written as soon as the pacing allows; a message that merely ages, or a latency
/// that merely wobbles, is refreshed less often.
pub fn should_write(
    wanted: &TunnelStatus,
    written: Option<&WrittenStatus>,
    now: SystemTime,
    pacing: WritePacing,
) -> bool {
    let Some(written) = written else {
        return true;
    };
    let since = now.duration_since(written.at).unwrap_or_default();
    if since < pacing.min_interval {
        return false;
    }
    let significant = written.ready != wanted.ready
        || written.reason != wanted.reason
        || written.last_handshake_secs != epoch_secs(wanted.last_handshake)
        || latency_moved(written.latency_ms, wanted.latency_ms, pacing.latency);
    if significant {
        return true;
    }
    let changed = written.message != wanted.message || written.latency_ms != wanted.latency_ms;
    changed && since >= pacing.refresh
}

/// Whole seconds since the epoch, as a Kubernetes `Time` keeps them.
pub fn epoch_secs(at: Option<SystemTime>) -> Option<u64> {
    at.and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
        .map(|d| d.as_secs())
}

fn human_age(age: Duration) -> String {
    let secs = age.as_secs();
    match secs {
        0..60 => format!("{secs}s"),
        60..3600 => format!("{}m{}s", secs / 60, secs % 60),
        _ => format!("{}h{}m", secs / 3600, (secs % 3600) / 60),
    }
}

fn human_bytes(bytes: u64) -> String {
    const UNITS: [&str; 4] = ["KiB", "MiB", "GiB", "TiB"];
    if bytes < 1024 {
        return format!("{bytes} B");
    }
    #[allow(
        clippy::cast_precision_loss,
        reason = "a display figure with one decimal"
    )]
    let mut value = bytes as f64 / 1024.0;
    let mut unit = UNITS[0];
    for next in &UNITS[1..] {
        if value < 1024.0 {
            break;
        }
        value /= 1024.0;
        unit = next;
    }
    format!("{value:.1} {unit}")
}

#[cfg(test)]
#[path = "tunnel_tests.rs"]
mod tests;
