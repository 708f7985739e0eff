//! Address-family and CIDR rules shared by annotations, the `Peer` CRD and configuration.
//!
//! One rule matters everywhere: a CIDR is accepted only in canonical form (no host bits).
//! `10.112.0.1/16` almost always means somebody pasted an address where a network was meant;
//! silently truncating it would hide that mistake and let two members believe different things
//! about who owns which addresses.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

/// IPv4 or IPv6. Several rules (MTU minimum, WireGuard overhead) differ per family.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum IpFamily {
    /// IPv4.
    V4,
    /// IPv6.
    V6,
}

impl IpFamily {
    /// The family of an address.
    pub const fn of_addr(ip: &IpAddr) -> Self {
        match ip {
            IpAddr::V4(_) => Self::V4,
            IpAddr::V6(_) => Self::V6,
        }
    }

    /// The family of a network.
    pub const fn of_net(net: &IpNet) -> Self {
        match net {
            IpNet::V4(_) => Self::V4,
            IpNet::V6(_) => Self::V6,
        }
    }

    /// The longest prefix length of the family (32 or 128).
    pub const fn max_prefix_len(self) -> u8 {
        match self {
            Self::V4 => 32,
            Self::V6 => 128,
        }
    }
}

impl fmt::Display for IpFamily {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Self::V4 => "IPv4",
            Self::V6 => "IPv6",
        })
    }
}

/// Why a string is not an acceptable CIDR.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CidrError {
    /// Not `address/prefix`, or the prefix is longer than the family allows (e.g. `/33`).
    #[error("not a CIDR (want address/prefix, prefix at most 32 for IPv4 and 128 for IPv6)")]
    Malformed,
    /// Host bits are set below the prefix.
    #[error("host bits are set; the canonical form is {canonical}")]
    HostBits {
        /// What the value would be with the host bits cleared, to put in the message.
        canonical: IpNet,
    },
}

/// Parses `address/prefix` and insists on the canonical form.
pub fn parse_canonical_cidr(s: &str) -> Result<IpNet, CidrError> {
    let net: IpNet = s.parse().map_err(|_| CidrError::Malformed)?;
    ensure_canonical(net)
}

/// Checks an already-parsed network (from a flag or a typed field) for host bits.
pub fn ensure_canonical(net: IpNet) -> Result<IpNet, CidrError> {
    let canonical = net.trunc();
    if canonical == net {
        Ok(net)
    } else {
        Err(CidrError::HostBits { canonical })
    }
}

/// True when the two networks share at least one address. Networks of different families never
/// overlap.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// The first pair (in input order) of networks that overlap, if any.
pub fn find_overlap(nets: &[IpNet]) -> Option<(IpNet, IpNet)> {
    nets.iter().enumerate().find_map(|(i, a)| {
        nets[i + 1..]
            .iter()
            .find(|b| overlaps(a, b))
            .map(|b| (*a, *b))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn canonical_cidrs_of_both_families_parse() {
        assert_eq!(
            parse_canonical_cidr("10.112.0.0/12"),
            Ok(net("10.112.0.0/12"))
        );
        assert_eq!(
            parse_canonical_cidr("fd00:112::/48"),
            Ok(net("fd00:112::/48"))
        );
        assert_eq!(parse_canonical_cidr("0.0.0.0/0"), Ok(net("0.0.0.0/0")));
    }

    #[test]
    fn cidr_with_host_bits_names_the_canonical_form() {
        let err = parse_canonical_cidr("10.112.0.1/16").unwrap_err();
        assert_eq!(
            err,
            CidrError::HostBits {
                canonical: net("10.112.0.0/16")
            }
        );
        assert!(err.to_string().contains("10.112.0.0/16"));
    }

    #[test]
    fn cidr_with_too_long_prefix_or_garbage_is_malformed() {
        for bad in [
            "10.0.0.0/33",
            "fd00::/129",
            "10.0.0.0",
            "10.0.0.0/",
            "/8",
            "x/8",
            " 10.0.0.0/8",
        ] {
            assert_eq!(
                parse_canonical_cidr(bad),
                Err(CidrError::Malformed),
                "{bad}"
            );
        }
    }

    #[test]
    fn overlap_is_symmetric_and_family_aware() {
        let a = net("10.112.0.0/16");
        let b = net("10.112.128.0/17");
        let c = net("10.113.0.0/16");
        let v6 = net("::/0");
        assert!(overlaps(&a, &b) && overlaps(&b, &a));
        assert!(!overlaps(&a, &c));
        assert!(!overlaps(&a, &v6));
        assert_eq!(find_overlap(&[a, c, b]), Some((a, b)));
        assert_eq!(find_overlap(&[a, c, v6]), None);
    }
}
