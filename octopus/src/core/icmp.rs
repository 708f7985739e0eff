//! ICMP echo (ping) packets as the hub's latency prober sends and reads them on a raw socket,
//! and what it makes of the round trips: plain functions over bytes and durations.
//!
//! An IPv4 raw socket hands over each received packet with its IPv4 header and leaves the ICMP
//! checksum to the sender; an ICMPv6 raw socket hands over the ICMP message alone and the
//! kernel both fills and verifies its checksum (it covers a pseudo-header only the kernel
//! knows the source of).

use std::net::IpAddr;
use std::time::Duration;

/// Length of an echo message's header: type, code, checksum, identifier, sequence.
pub const ECHO_HEADER_LEN: usize = 8;

const ECHO_REQUEST_V4: u8 = 8;
const ECHO_REPLY_V4: u8 = 0;
const ECHO_REQUEST_V6: u8 = 128;
const ECHO_REPLY_V6: u8 = 129;
const PROTOCOL_ICMP: u8 = 1;
const IPV4_MIN_HEADER_LEN: usize = 20;

/// The address family a probe runs in.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Family {
    /// ICMP over IPv4.
    V4,
    /// ICMPv6.
    V6,
}

impl Family {
    /// The family of `addr`.
    pub fn of(addr: IpAddr) -> Self {
        match addr {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }
}

/// Why a received packet is not an echo reply the prober can use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IcmpError {
    /// Shorter than the headers it claims.
    #[error("truncated packet: {len} bytes")]
    Truncated {
        /// Bytes received.
        len: usize,
    },
    /// An IPv4 packet that is not IPv4, or not ICMP.
    #[error("not an IPv4 ICMP packet")]
    NotIcmp,
    /// An ICMP message other than an echo reply (another process's request, an error, ...).
    #[error("ICMP type {type_} code {code} is not an echo reply")]
    NotEchoReply {
        /// ICMP type.
        type_: u8,
        /// ICMP code.
        code: u8,
    },
    /// The IPv4 ICMP checksum does not add up.
    #[error("bad ICMP checksum")]
    Checksum,
}

/// What identifies an echo reply: the request's identifier and sequence number, echoed back.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct EchoReply {
    /// The identifier.
    pub identifier: u16,
    /// The sequence number.
    pub sequence: u16,
}

/// The Internet checksum (RFC 1071) of `data`: the one's complement of the one's complement
/// sum of its 16-bit big-endian words, an odd last byte padded with zero.
pub fn checksum(data: &[u8]) -> u16 {
    let mut sum: u32 = 0;
    let mut words = data.chunks_exact(2);
    for word in &mut words {
        sum += u32::from(u16::from_be_bytes([word[0], word[1]]));
    }
    if let [last] = words.remainder() {
        sum += u32::from(u16::from_be_bytes([*last, 0]));
    }
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    // The folding above leaves at most 16 bits.
    !u16::try_from(sum).unwrap_or(u16::MAX)
}

/// An echo request carrying `payload`. IPv4: with its checksum; ICMPv6: checksum left 0 for
/// the kernel.
pub fn echo_request(family: Family, identifier: u16, sequence: u16, payload: &[u8]) -> Vec<u8> {
    let type_ = match family {
        Family::V4 => ECHO_REQUEST_V4,
        Family::V6 => ECHO_REQUEST_V6,
    };
    let mut packet = Vec::with_capacity(ECHO_HEADER_LEN + payload.len());
    packet.extend_from_slice(&[type_, 0, 0, 0]);
    packet.extend_from_slice(&identifier.to_be_bytes());
    packet.extend_from_slice(&sequence.to_be_bytes());
    packet.extend_from_slice(payload);
    if family == Family::V4 {
        let sum = checksum(&packet);
        packet[2..4].copy_from_slice(&sum.to_be_bytes());
    }
    packet
}

/// The echo reply in `packet` as a raw socket of `family` received it (IPv4: behind its IPv4
/// header). Anything else is refused, never a panic.
pub fn parse_echo_reply(family: Family, packet: &[u8]) -> Result<EchoReply, IcmpError> {
    let (icmp, reply_type) = match family {
        Family::V4 => (skip_ipv4_header(packet)?, ECHO_REPLY_V4),
        Family::V6 => (packet, ECHO_REPLY_V6),
    };
    if icmp.len() < ECHO_HEADER_LEN {
        return Err(IcmpError::Truncated { len: packet.len() });
    }
    let (type_, code) = (icmp[0], icmp[1]);
    if type_ != reply_type || code != 0 {
        return Err(IcmpError::NotEchoReply { type_, code });
    }
    // A correct checksum sums, over the whole message, to zero.
    if family == Family::V4 && checksum(icmp) != 0 {
        return Err(IcmpError::Checksum);
    }
    Ok(EchoReply {
        identifier: u16::from_be_bytes([icmp[4], icmp[5]]),
        sequence: u16::from_be_bytes([icmp[6], icmp[7]]),
    })
}

/// The ICMP message of an IPv4 packet: what follows its header (IHL words), bounded by its
/// total length.
fn skip_ipv4_header(packet: &[u8]) -> Result<&[u8], IcmpError> {
    if packet.len() < IPV4_MIN_HEADER_LEN {
        return Err(IcmpError::Truncated { len: packet.len() });
    }
    if packet[0] >> 4 != 4 || packet[9] != PROTOCOL_ICMP {
        return Err(IcmpError::NotIcmp);
    }
    let header_len = usize::from(packet[0] & 0x0f) * 4;
    if header_len < IPV4_MIN_HEADER_LEN {
        return Err(IcmpError::NotIcmp);
    }
    let total_len = usize::from(u16::from_be_bytes([packet[2], packet[3]]));
    let end = total_len.min(packet.len());
    packet
        .get(header_len..end)
        .ok_or(IcmpError::Truncated { len: packet.len() })
}

/// The median of `samples` (the mean of the middle two for an even count); `None` for none.
pub fn median(samples: &[Duration]) -> Option<Duration> {
    let mut sorted = samples.to_vec();
    sorted.sort_unstable();
    let mid = sorted.len() / 2;
    match sorted.len() {
        0 => None,
        n if n % 2 == 1 => Some(sorted[mid]),
        _ => Some((sorted[mid - 1] + sorted[mid]) / 2),
    }
}

/// A round trip in whole milliseconds, rounded to the nearest.
pub fn round_ms(rtt: Duration) -> u64 {
    let micros = rtt.as_micros().saturating_add(500) / 1000;
    u64::try_from(micros).unwrap_or(u64::MAX)
}

/// How much the latency written into a Peer must move before it alone is written again: by
/// more than [`Self::min_ms`] and by more than [`Self::ratio_percent`] of the written value.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LatencyThreshold {
    /// Absolute change, in ms, at or below which a change is noise.
    pub min_ms: u64,
    /// Relative change, in percent of the written value, at or below which it is noise.
    pub ratio_percent: u64,
}

impl Default for LatencyThreshold {
    fn default() -> Self {
        Self {
            min_ms: 1,
            ratio_percent: 20,
        }
    }
}

/// Whether the latency moved from `written` to `measured` enough to write it: a measure
/// appearing or going away always counts; otherwise it must pass both bounds of `threshold`.
pub fn latency_moved(
    written: Option<u64>,
    measured: Option<u64>,
    threshold: LatencyThreshold,
) -> bool {
    match (written, measured) {
        (None, None) => false,
        (Some(_), None) | (None, Some(_)) => true,
        (Some(old), Some(new)) => {
            let change = old.abs_diff(new);
            change > threshold.min_ms
                && u128::from(change) * 100 > u128::from(old) * u128::from(threshold.ratio_percent)
        }
    }
}

#[cfg(test)]
#[path = "icmp_tests.rs"]
mod tests;
