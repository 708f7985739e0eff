//! MAC addresses of pod NICs.
//!
//! Nauti derives a pod's MAC from its IP so that the MAC written into the OVN
//! Logical_Switch_Port, the MAC set on the `eth-nauti` link and the one in the pod annotation
//! can be recomputed by anyone from the IP alone (ipam, nri and the ovn controller agree
//! without talking to each other).

use std::fmt;
use std::net::{IpAddr, Ipv4Addr};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// The first two octets of every derived MAC: `0x0a` has the locally-administered bit set and
/// the multicast bit clear, so it never collides with a vendor-assigned unicast MAC; `0x58` is
/// the same prefix OVN-Kubernetes uses, which keeps `ovn-trace` output familiar.
pub const DERIVED_MAC_PREFIX: [u8; 2] = [0x0a, 0x58];

/// An Ethernet MAC address, shown as six lower-case hex pairs separated by colons.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct MacAddr([u8; 6]);

/// A string that is not six colon-separated hex octets.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{value:?} is not a MAC address (want six hex octets like 0a:58:0a:70:00:05)")]
pub struct MacParseError {
    /// The rejected input, verbatim.
    pub value: String,
}

impl MacAddr {
    /// Wraps raw octets, e.g. read from netlink.
    pub const fn new(octets: [u8; 6]) -> Self {
        Self(octets)
    }

    /// The raw octets, e.g. to hand to netlink.
    pub const fn octets(&self) -> [u8; 6] {
        self.0
    }

    /// `0a:58:` followed by the four IPv4 octets, so the MAC is a pure function of the IP.
    pub const fn from_ipv4(ip: Ipv4Addr) -> Self {
        let o = ip.octets();
        Self([
            DERIVED_MAC_PREFIX[0],
            DERIVED_MAC_PREFIX[1],
            o[0],
            o[1],
            o[2],
            o[3],
        ])
    }

    /// Derives the MAC for either family. IPv6 uses the last four octets of the address (its
    /// host part within any prefix of /96 or longer), as OVN-Kubernetes does, so two pods of one
    /// node block never share a MAC.
    pub const fn from_ip(ip: IpAddr) -> Self {
        match ip {
            IpAddr::V4(v4) => Self::from_ipv4(v4),
            IpAddr::V6(v6) => {
                let o = v6.octets();
                Self([
                    DERIVED_MAC_PREFIX[0],
                    DERIVED_MAC_PREFIX[1],
                    o[12],
                    o[13],
                    o[14],
                    o[15],
                ])
            }
        }
    }

    /// True for addresses with the multicast bit clear; only those may be a NIC's own address.
    pub const fn is_unicast(&self) -> bool {
        self.0[0] & 0x01 == 0
    }
}

impl fmt::Display for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let [a, b, c, d, e, g] = self.0;
        write!(f, "{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{g:02x}")
    }
}

impl fmt::Debug for MacAddr {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "MacAddr({self})")
    }
}

impl FromStr for MacAddr {
    type Err = MacParseError;

    /// Accepts exactly six colon-separated pairs of hex digits, in either case. Single-digit
    /// octets and `-` separators are refused: the annotation and OVN formats never use them,
    /// so seeing one means the value was not written by Nauti.
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        let err = || MacParseError {
            value: s.to_owned(),
        };
        let mut out = [0u8; 6];
        let mut parts = s.split(':');
        for slot in &mut out {
            let part = parts.next().ok_or_else(err)?;
            if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
                return Err(err());
            }
            *slot = u8::from_str_radix(part, 16).map_err(|_| err())?;
        }
        if parts.next().is_some() {
            return Err(err());
        }
        Ok(Self(out))
    }
}

impl From<[u8; 6]> for MacAddr {
    fn from(octets: [u8; 6]) -> Self {
        Self(octets)
    }
}

impl Serialize for MacAddr {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        serializer.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for MacAddr {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let s = String::deserialize(deserializer)?;
        s.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn mac_is_derived_from_ipv4_octets_behind_0a_58() {
        let mac = MacAddr::from_ipv4(Ipv4Addr::new(10, 112, 3, 7));
        assert_eq!(mac.to_string(), "0a:58:0a:70:03:07");
        assert!(mac.is_unicast());
    }

    #[test]
    fn mac_for_ipv6_uses_the_last_four_octets() {
        let ip: IpAddr = "fd00:112::a:b0c".parse().unwrap();
        assert_eq!(MacAddr::from_ip(ip).to_string(), "0a:58:00:0a:0b:0c");
    }

    #[test]
    fn mac_display_and_parse_round_trip_in_any_case() {
        let mac: MacAddr = "0A:58:0a:70:FF:01".parse().unwrap();
        assert_eq!(mac.octets(), [0x0a, 0x58, 0x0a, 0x70, 0xff, 0x01]);
        assert_eq!(mac.to_string().parse::<MacAddr>().unwrap(), mac);
    }

    #[test]
    fn malformed_macs_are_refused_with_the_input_in_the_error() {
        for bad in [
            "",
            "0a:58:0a:70:00",
            "0a:58:0a:70:00:05:06",
            "0a-58-0a-70-00-05",
            "0a:58:0a:70:0:5",
            "0g:58:0a:70:00:05",
            "0a:58:0a:70:00:05:",
            "+a:58:0a:70:00:05",
        ] {
            let err = bad.parse::<MacAddr>().unwrap_err();
            assert_eq!(err.value, bad);
            assert!(err.to_string().contains(&format!("{bad:?}")), "{err}");
        }
    }

    #[test]
    fn mac_serializes_as_a_string() {
        let mac = MacAddr::new([0x0a, 0x58, 1, 2, 3, 4]);
        let json = serde_json::to_string(&mac).unwrap();
        assert_eq!(json, r#""0a:58:01:02:03:04""#);
        assert_eq!(serde_json::from_str::<MacAddr>(&json).unwrap(), mac);
        assert!(serde_json::from_str::<MacAddr>(r#""nope""#).is_err());
    }
}
