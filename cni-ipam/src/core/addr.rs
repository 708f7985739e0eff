//! Address arithmetic shared by carving and allocation.
//!
//! Both families are handled as `u128` integers so that one piece of code serves IPv4 and IPv6;
//! the family travels alongside and decides the width.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

/// The address family of an address or a subnet.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Family {
    /// IPv4, 32-bit addresses.
    V4,
    /// IPv6, 128-bit addresses.
    V6,
}

impl Family {
    /// The family of an address.
    pub fn of(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The family of a subnet.
    pub fn of_net(net: &IpNet) -> Self {
        Self::of(net.addr())
    }

    /// Address width in bits.
    pub fn bits(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

impl fmt::Display for Family {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// An address as an integer (IPv4 in the low 32 bits).
pub fn to_bits(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The address of `family` whose integer value is `bits` (truncated to the family's width).
pub fn from_bits(family: Family, bits: u128) -> IpAddr {
    match family {
        // Truncation is the documented behaviour: callers only pass values that fit.
        Family::V4 => IpAddr::V4(Ipv4Addr::from(bits as u32)),
        Family::V6 => IpAddr::V6(Ipv6Addr::from(bits)),
    }
}

/// The host part mask of a prefix length: `0xff` for a /24, all ones for a /0, zero for a full-length prefix.
pub fn host_mask(family: Family, prefix_len: u8) -> u128 {
    match family {
        Family::V4 => u128::from(u32::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0)),
        Family::V6 => u128::MAX.checked_shr(u32::from(prefix_len)).unwrap_or(0),
    }
}

/// First and last address of a subnet as integers (inclusive).
pub fn net_bounds(net: &IpNet) -> (u128, u128) {
    let family = Family::of_net(net);
    let mask = host_mask(family, net.prefix_len());
    let first = to_bits(net.addr()) & !mask;
    (first, first | mask)
}

/// Turns an IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) into the IPv4 address, as the reference
/// plugins do, so that one address has one spelling in the store.
pub fn canonical(ip: IpAddr) -> IpAddr {
    ip.to_canonical()
}

/// A MAC address (EUI-48).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr(pub [u8; 6]);

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

/// The deterministic MAC of a pod address: `0a:58:` followed by the four IPv4 bytes.
///
/// Deriving the MAC from the IP (the ovn-kubernetes convention) means a restarted component
/// recomputes the same MAC without storing it, and OVN port security (`"MAC IP"`) stays consistent.
/// `0a` has the locally-administered bit set and the multicast bit clear. For IPv6 the last four
/// bytes of the address are used, so a dual-stack pod should take its MAC from its IPv4 address.
pub fn mac_from_ip(ip: IpAddr) -> MacAddr {
    let tail = match canonical(ip) {
        IpAddr::V4(v4) => v4.octets(),
        IpAddr::V6(v6) => {
            let o = v6.octets();
            [o[12], o[13], o[14], o[15]]
        }
    };
    MacAddr([0x0a, 0x58, tail[0], tail[1], tail[2], tail[3]])
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_0a58_followed_by_the_ipv4_bytes() {
        let mac = mac_from_ip("10.112.3.7".parse().unwrap());
        assert_eq!(mac.to_string(), "0a:58:0a:70:03:07");
    }

    #[test]
    fn mac_of_ipv6_uses_the_last_four_bytes() {
        let mac = mac_from_ip("fd00::a70:307".parse().unwrap());
        assert_eq!(mac.to_string(), "0a:58:0a:70:03:07");
    }

    #[test]
    fn mapped_ipv6_is_treated_as_ipv4() {
        let ip: IpAddr = "::ffff:10.0.0.1".parse().unwrap();
        assert_eq!(canonical(ip), "10.0.0.1".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn bounds_of_a_subnet_cover_network_to_broadcast() {
        let net: IpNet = "10.112.0.0/12".parse().unwrap();
        let (lo, hi) = net_bounds(&net);
        assert_eq!(from_bits(Family::V4, lo).to_string(), "10.112.0.0");
        assert_eq!(from_bits(Family::V4, hi).to_string(), "10.127.255.255");
        let v6: IpNet = "fd00::/64".parse().unwrap();
        let (lo, hi) = net_bounds(&v6);
        assert_eq!(hi - lo, u128::from(u64::MAX));
    }

    #[test]
    fn host_mask_handles_zero_and_full_prefixes() {
        assert_eq!(host_mask(Family::V4, 0), u128::from(u32::MAX));
        assert_eq!(host_mask(Family::V4, 32), 0);
        assert_eq!(host_mask(Family::V6, 0), u128::MAX);
        assert_eq!(host_mask(Family::V6, 128), 0);
    }
}
