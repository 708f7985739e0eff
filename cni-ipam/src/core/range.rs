//! A validated allocation range: the on-link subnet, the first and last address to hand out, the
//! gateway and the addresses never to hand out.

use std::fmt;
use std::net::IpAddr;

use ipnet::IpNet;

use super::addr::{Family, canonical, from_bits, net_bounds, to_bits};
use super::error::RangeError;

/// The most addresses one range allocates from: 2^24 (16 Mi, a 2 MiB bitmap).
///
/// IPv4 ranges never come near it in practice (a /8); an IPv6 /64 would need 2^64 bits, so a
/// larger range hands out only its first `MAX_RANGE_LEN` addresses from `rangeStart` and says so
/// through [`RangeSpec::is_clamped`].
pub const MAX_RANGE_LEN: u32 = 1 << 24;

/// Where addresses come from, validated: every address between `start` and `end` (inclusive) of
/// `subnet`, except the network address, the IPv4 broadcast address, the gateway and `exclude`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RangeSpec {
    subnet: IpNet,
    start: IpAddr,
    end: IpAddr,
    gateway: Option<IpAddr>,
    exclude: Vec<IpNet>,
    clamped: bool,
}

impl RangeSpec {
    /// Validates a range the way host-local does: `start` defaults to the first address after the
    /// network address, `end` to the last address before the IPv4 broadcast (the last address for
    /// IPv6), and both must lie inside `subnet` with `start <= end`. A gateway, if given, must be a
    /// usable address of `subnet`; when it falls between `start` and `end` it is simply never
    /// handed out (host-local compatible).
    pub fn new(
        subnet: IpNet,
        start: Option<IpAddr>,
        end: Option<IpAddr>,
        gateway: Option<IpAddr>,
    ) -> Result<Self, RangeError> {
        let family = Family::of_net(&subnet);
        let min_host_bits = 2;
        if subnet.prefix_len() > family.bits() - min_host_bits {
            return Err(RangeError::TooSmall { subnet });
        }
        if subnet.network() != subnet.addr() {
            return Err(RangeError::HostBitsSet {
                subnet,
                network: subnet.trunc(),
            });
        }
        let (net_lo, net_hi) = net_bounds(&subnet);
        let check = |field: &'static str, ip: IpAddr| -> Result<u128, RangeError> {
            let ip = canonical(ip);
            if Family::of(ip) != family {
                return Err(RangeError::FamilyMismatch { field, ip, subnet });
            }
            let bits = to_bits(ip);
            if bits < net_lo || bits > net_hi {
                return Err(RangeError::OutsideSubnet { field, ip, subnet });
            }
            Ok(bits)
        };
        let start_bits = match start {
            Some(ip) => check("rangeStart", ip)?,
            None => net_lo + 1,
        };
        let end_bits = match end {
            Some(ip) => check("rangeEnd", ip)?,
            None if family == Family::V4 => net_hi - 1,
            None => net_hi,
        };
        if end_bits < start_bits {
            return Err(RangeError::EndBeforeStart {
                start: from_bits(family, start_bits),
                end: from_bits(family, end_bits),
            });
        }
        let gateway = match gateway {
            Some(ip) => {
                let bits = check("gateway", ip)?;
                if bits == net_lo || (family == Family::V4 && bits == net_hi) {
                    return Err(RangeError::GatewayNotUsable {
                        gateway: canonical(ip),
                        subnet,
                    });
                }
                Some(canonical(ip))
            }
            None => None,
        };
        let span = end_bits - start_bits;
        let clamped = span >= u128::from(MAX_RANGE_LEN);
        let end_bits = if clamped {
            start_bits + u128::from(MAX_RANGE_LEN) - 1
        } else {
            end_bits
        };
        Ok(Self {
            subnet,
            start: from_bits(family, start_bits),
            end: from_bits(family, end_bits),
            gateway,
            exclude: Vec::new(),
            clamped,
        })
    }

    /// The range for one node's block of a cluster subnet: addresses come from `block`, but the
    /// prefix handed to pods is the cluster subnet's (pods of all nodes share one L2 segment) and
    /// the gateway is the cluster's (the CNF pod).
    pub fn for_node_block(
        cluster_subnet: IpNet,
        block: IpNet,
        gateway: Option<IpAddr>,
    ) -> Result<Self, RangeError> {
        if !cluster_subnet.contains(&block) {
            return Err(RangeError::BlockOutsideSubnet {
                block,
                subnet: cluster_subnet,
            });
        }
        let family = Family::of_net(&block);
        let (lo, hi) = net_bounds(&block);
        Self::new(
            cluster_subnet,
            Some(from_bits(family, lo)),
            Some(from_bits(family, hi)),
            gateway,
        )
    }

    /// Adds addresses that must never be handed out. Each must be of the range's family.
    pub fn with_exclusions(
        mut self,
        exclude: impl IntoIterator<Item = IpNet>,
    ) -> Result<Self, RangeError> {
        for net in exclude {
            if Family::of_net(&net) != self.family() {
                return Err(RangeError::ExcludeFamilyMismatch {
                    exclude: net,
                    subnet: self.subnet,
                });
            }
            self.exclude.push(net.trunc());
        }
        Ok(self)
    }

    /// The on-link subnet; its prefix length is the one handed out with each address.
    pub fn subnet(&self) -> IpNet {
        self.subnet
    }

    /// First address of the range (inclusive).
    pub fn start(&self) -> IpAddr {
        self.start
    }

    /// Last address of the range (inclusive), after clamping to [`MAX_RANGE_LEN`].
    pub fn end(&self) -> IpAddr {
        self.end
    }

    /// The gateway reported with each address.
    pub fn gateway(&self) -> Option<IpAddr> {
        self.gateway
    }

    /// Explicitly excluded addresses.
    pub fn exclusions(&self) -> &[IpNet] {
        &self.exclude
    }

    /// The address family.
    pub fn family(&self) -> Family {
        Family::of_net(&self.subnet)
    }

    /// True when the configured range was larger than [`MAX_RANGE_LEN`] and was cut down.
    pub fn is_clamped(&self) -> bool {
        self.clamped
    }

    /// Number of addresses between start and end, inclusive (reserved ones included).
    pub fn len(&self) -> u32 {
        // Bounded by MAX_RANGE_LEN in `new`.
        (to_bits(self.end) - to_bits(self.start) + 1) as u32
    }

    /// Never true: a validated range holds at least one address.
    pub fn is_empty(&self) -> bool {
        false
    }

    /// Whether `ip` lies between start and end.
    pub fn contains(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        Family::of(ip) == self.family() && {
            let b = to_bits(ip);
            b >= to_bits(self.start) && b <= to_bits(self.end)
        }
    }

    /// Whether `ip` is in the range but may never be handed out: network or broadcast address,
    /// gateway, or excluded.
    pub fn is_reserved(&self, ip: IpAddr) -> bool {
        let ip = canonical(ip);
        let (lo, hi) = net_bounds(&self.subnet);
        let b = to_bits(ip);
        b == lo
            || (self.family() == Family::V4 && b == hi)
            || self.gateway == Some(ip)
            || self.exclude.iter().any(|n| n.contains(&ip))
    }

    /// Whether two ranges share an address (different families never do).
    pub fn overlaps(&self, other: &Self) -> bool {
        self.family() == other.family()
            && to_bits(self.start) <= to_bits(other.end)
            && to_bits(other.start) <= to_bits(self.end)
    }
}

impl fmt::Display for RangeSpec {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}-{}", self.start, self.end)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }
    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_span_the_subnet_without_network_and_broadcast() {
        let r = RangeSpec::new(net("10.112.1.0/24"), None, None, None).unwrap();
        assert_eq!(r.start(), ip("10.112.1.1"));
        assert_eq!(r.end(), ip("10.112.1.254"));
        let r6 = RangeSpec::new(net("fd00::/120"), None, None, None).unwrap();
        assert_eq!(r6.end(), ip("fd00::ff"));
    }

    #[test]
    fn bad_ranges_are_rejected_naming_the_field() {
        let s = net("10.0.0.0/24");
        let e = RangeSpec::new(s, Some(ip("10.0.1.1")), None, None).unwrap_err();
        assert!(e.to_string().contains("rangeStart"), "{e}");
        let e = RangeSpec::new(s, None, Some(ip("10.0.1.1")), None).unwrap_err();
        assert!(e.to_string().contains("rangeEnd"), "{e}");
        let e = RangeSpec::new(s, Some(ip("10.0.0.9")), Some(ip("10.0.0.5")), None).unwrap_err();
        assert!(matches!(e, RangeError::EndBeforeStart { .. }));
        let e = RangeSpec::new(s, None, None, Some(ip("10.0.1.1"))).unwrap_err();
        assert!(e.to_string().contains("gateway"), "{e}");
        let e = RangeSpec::new(s, None, None, Some(ip("10.0.0.255"))).unwrap_err();
        assert!(matches!(e, RangeError::GatewayNotUsable { .. }));
        let e = RangeSpec::new(net("10.0.0.1/24"), None, None, None).unwrap_err();
        assert!(matches!(e, RangeError::HostBitsSet { .. }));
        let e = RangeSpec::new(net("10.0.0.0/31"), None, None, None).unwrap_err();
        assert!(matches!(e, RangeError::TooSmall { .. }));
        let e = RangeSpec::new(s, Some(ip("fd00::1")), None, None).unwrap_err();
        assert!(matches!(e, RangeError::FamilyMismatch { .. }));
    }

    #[test]
    fn gateway_inside_the_range_is_reserved_not_rejected() {
        let r = RangeSpec::new(net("10.0.0.0/24"), None, None, Some(ip("10.0.0.5"))).unwrap();
        assert!(r.contains(ip("10.0.0.5")));
        assert!(r.is_reserved(ip("10.0.0.5")));
        assert!(!r.is_reserved(ip("10.0.0.6")));
    }

    #[test]
    fn huge_ipv6_ranges_are_clamped() {
        let r = RangeSpec::new(net("fd00::/64"), None, None, None).unwrap();
        assert!(r.is_clamped());
        assert_eq!(r.len(), MAX_RANGE_LEN);
    }

    #[test]
    fn node_block_uses_the_cluster_prefix() {
        let r = RangeSpec::for_node_block(
            net("10.112.0.0/16"),
            net("10.112.0.0/24"),
            Some(ip("10.112.0.1")),
        )
        .unwrap();
        assert_eq!(r.subnet().prefix_len(), 16);
        assert_eq!(r.start(), ip("10.112.0.0"));
        assert!(r.is_reserved(ip("10.112.0.0")));
        assert!(r.is_reserved(ip("10.112.0.1")));
        assert!(
            RangeSpec::for_node_block(net("10.112.0.0/16"), net("10.113.0.0/24"), None).is_err()
        );
    }

    #[test]
    fn ranges_overlap_only_within_a_family() {
        let a = RangeSpec::new(net("10.0.0.0/24"), None, Some(ip("10.0.0.100")), None).unwrap();
        let b = RangeSpec::new(net("10.0.0.0/24"), Some(ip("10.0.0.100")), None, None).unwrap();
        let c = RangeSpec::new(net("10.0.0.0/24"), Some(ip("10.0.0.101")), None, None).unwrap();
        assert!(a.overlaps(&b));
        assert!(!a.overlaps(&c));
        let v6 = RangeSpec::new(net("fd00::/120"), None, None, None).unwrap();
        assert!(!a.overlaps(&v6));
    }
}
