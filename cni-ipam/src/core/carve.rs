//! Subnet carving: the hub hands each member cluster a subnet of the global CIDR, and each cluster
//! hands each node a block of its subnet. Both are the same operation on different sizes.

use std::net::IpAddr;

use ipnet::IpNet;

use super::addr::{Family, from_bits, host_mask, net_bounds};
use super::error::CarveError;

/// The default global CIDR of the Nauti network.
pub const DEFAULT_GLOBAL_CIDR: IpNet = IpNet::V4(ipnet::Ipv4Net::new_assert(
    std::net::Ipv4Addr::new(10, 112, 0, 0),
    12,
));

/// The default prefix length of a cluster subnet (a /16 of the global /12: 16 clusters).
pub const DEFAULT_CLUSTER_PREFIX: u8 = 16;

/// The default prefix length of a node block (a /24 of a cluster /16: 256 nodes of 256 addresses).
pub const DEFAULT_NODE_PREFIX: u8 = 24;

/// Whether two subnets share an address.
pub fn overlaps(a: &IpNet, b: &IpNet) -> bool {
    a.contains(&b.network()) || b.contains(&a.network())
}

/// Every pair of overlapping subnets in `nets`, by index (`i < j`), in O(n log n + pairs).
pub fn find_overlaps(nets: &[IpNet]) -> Vec<(usize, usize)> {
    let mut order: Vec<(Family, u128, u128, usize)> = nets
        .iter()
        .enumerate()
        .map(|(i, n)| {
            let (lo, hi) = net_bounds(n);
            (Family::of_net(n), lo, hi, i)
        })
        .collect();
    order.sort_by_key(|&(f, lo, hi, _)| (f == Family::V6, lo, std::cmp::Reverse(hi)));
    let mut pairs = Vec::new();
    for (k, &(fam, _, hi, i)) in order.iter().enumerate() {
        for &(fam2, lo2, _, j) in &order[k + 1..] {
            if fam2 != fam || lo2 > hi {
                break;
            }
            pairs.push((i.min(j), i.max(j)));
        }
    }
    pairs.sort_unstable();
    pairs
}

/// A subnet of `parent` with prefix length `prefix_len` that overlaps nothing in `taken`.
///
/// With `requested`, that exact subnet is returned if it is inside `parent`, aligned and free
/// (its prefix length may differ from `prefix_len`: a member may ask for a larger or smaller
/// slice); otherwise the error says why. Without it, the lowest free aligned subnet is returned.
/// Entries of `taken` of the other family or outside `parent` are ignored.
pub fn carve(
    parent: IpNet,
    prefix_len: u8,
    taken: &[IpNet],
    requested: Option<IpNet>,
) -> Result<IpNet, CarveError> {
    let parent = parent.trunc();
    let family = Family::of_net(&parent);
    if let Some(req) = requested {
        if Family::of_net(&req) != family || !parent.contains(&req) {
            return Err(CarveError::RequestOutside {
                requested: req,
                parent,
            });
        }
        if req.network() != req.addr() {
            return Err(CarveError::RequestHostBitsSet {
                requested: req,
                network: req.trunc(),
            });
        }
        if let Some(t) = taken.iter().find(|t| overlaps(t, &req)) {
            return Err(CarveError::RequestOverlaps {
                requested: req,
                taken: *t,
            });
        }
        return Ok(req);
    }
    if prefix_len < parent.prefix_len() || prefix_len > family.bits() {
        return Err(CarveError::BadPrefix { parent, prefix_len });
    }
    let full = || CarveError::Full { parent, prefix_len };
    // Disjoint, sorted intervals of what is taken inside the parent.
    let (p_lo, p_hi) = net_bounds(&parent);
    let mut spans: Vec<(u128, u128)> = taken
        .iter()
        .filter(|t| Family::of_net(t) == family && overlaps(t, &parent))
        .map(|t| {
            let (lo, hi) = net_bounds(t);
            (lo.max(p_lo), hi.min(p_hi))
        })
        .collect();
    spans.sort_unstable();
    let mask = host_mask(family, prefix_len);
    let mut cursor = p_lo;
    let mut i = 0;
    loop {
        let candidate = cursor.checked_add(mask).ok_or_else(full)? & !mask;
        let last = candidate | mask;
        if candidate < p_lo || last > p_hi {
            return Err(full());
        }
        while spans.get(i).is_some_and(|&(_, hi)| hi < candidate) {
            i += 1;
        }
        match spans.get(i) {
            Some(&(lo, hi)) if lo <= last => {
                cursor = hi.checked_add(1).ok_or_else(full)?;
                if cursor > p_hi {
                    return Err(full());
                }
            }
            _ => {
                let addr: IpAddr = from_bits(family, candidate);
                return IpNet::new(addr, prefix_len).map_err(|_| full());
            }
        }
    }
}

/// A cluster subnet of the global CIDR (`carve` with the cluster's size).
pub fn carve_cluster_subnet(
    global: IpNet,
    prefix_len: u8,
    taken: &[IpNet],
    requested: Option<IpNet>,
) -> Result<IpNet, CarveError> {
    carve(global, prefix_len, taken, requested)
}

/// A node block of a cluster subnet (`carve` with the block size).
pub fn carve_node_block(
    cluster_subnet: IpNet,
    prefix_len: u8,
    taken: &[IpNet],
    requested: Option<IpNet>,
) -> Result<IpNet, CarveError> {
    carve(cluster_subnet, prefix_len, taken, requested)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn default_global_cidr_is_10_112_slash_12() {
        assert_eq!(DEFAULT_GLOBAL_CIDR, net("10.112.0.0/12"));
    }

    #[test]
    fn clusters_get_consecutive_slash_16s_until_the_global_cidr_is_full() {
        let mut taken = Vec::new();
        for i in 0..16u8 {
            let s = carve_cluster_subnet(DEFAULT_GLOBAL_CIDR, 16, &taken, None).unwrap();
            assert_eq!(s, net(&format!("10.{}.0.0/16", 112 + i)));
            taken.push(s);
        }
        assert!(matches!(
            carve_cluster_subnet(DEFAULT_GLOBAL_CIDR, 16, &taken, None),
            Err(CarveError::Full { .. })
        ));
    }

    #[test]
    fn cluster_size_is_configurable() {
        let s = carve(DEFAULT_GLOBAL_CIDR, 20, &[net("10.112.0.0/16")], None).unwrap();
        assert_eq!(s, net("10.113.0.0/20"));
    }

    #[test]
    fn holes_between_taken_subnets_are_reused() {
        let taken = [net("10.112.0.0/16"), net("10.114.0.0/16")];
        assert_eq!(
            carve(DEFAULT_GLOBAL_CIDR, 16, &taken, None).unwrap(),
            net("10.113.0.0/16")
        );
        // A small taken subnet blocks the whole aligned candidate that contains it.
        let taken = [net("10.112.0.0/16"), net("10.113.5.0/24")];
        assert_eq!(
            carve(DEFAULT_GLOBAL_CIDR, 16, &taken, None).unwrap(),
            net("10.114.0.0/16")
        );
    }

    #[test]
    fn requested_subnet_is_honoured_when_inside_and_free() {
        let taken = [net("10.112.0.0/16")];
        let r = carve(DEFAULT_GLOBAL_CIDR, 16, &taken, Some(net("10.120.0.0/16"))).unwrap();
        assert_eq!(r, net("10.120.0.0/16"));
        assert!(matches!(
            carve(
                DEFAULT_GLOBAL_CIDR,
                16,
                &taken,
                Some(net("10.112.128.0/17"))
            ),
            Err(CarveError::RequestOverlaps { .. })
        ));
        assert!(matches!(
            carve(DEFAULT_GLOBAL_CIDR, 16, &taken, Some(net("10.200.0.0/16"))),
            Err(CarveError::RequestOutside { .. })
        ));
        assert!(matches!(
            carve(DEFAULT_GLOBAL_CIDR, 16, &taken, Some(net("10.120.3.0/16"))),
            Err(CarveError::RequestHostBitsSet { .. })
        ));
        assert!(matches!(
            carve(DEFAULT_GLOBAL_CIDR, 16, &taken, Some(net("fd00::/64"))),
            Err(CarveError::RequestOutside { .. })
        ));
    }

    #[test]
    fn node_blocks_are_carved_from_a_cluster_subnet() {
        let cluster = net("10.112.0.0/16");
        let mut taken = Vec::new();
        for _ in 0..256 {
            taken.push(carve_node_block(cluster, 24, &taken, None).unwrap());
        }
        assert_eq!(taken[255], net("10.112.255.0/24"));
        assert!(carve_node_block(cluster, 24, &taken, None).is_err());
    }

    #[test]
    fn bad_prefix_lengths_are_rejected() {
        assert!(matches!(
            carve(DEFAULT_GLOBAL_CIDR, 8, &[], None),
            Err(CarveError::BadPrefix { .. })
        ));
        assert!(matches!(
            carve(DEFAULT_GLOBAL_CIDR, 33, &[], None),
            Err(CarveError::BadPrefix { .. })
        ));
        assert_eq!(
            carve(DEFAULT_GLOBAL_CIDR, 12, &[], None).unwrap(),
            DEFAULT_GLOBAL_CIDR
        );
        assert_eq!(
            carve(net("0.0.0.0/0"), 0, &[], None).unwrap(),
            net("0.0.0.0/0")
        );
    }

    #[test]
    fn ipv6_uses_the_same_carving() {
        let global = net("fd00:112::/48");
        let a = carve(global, 64, &[], None).unwrap();
        let b = carve(global, 64, &[a], None).unwrap();
        assert_eq!(a, net("fd00:112::/64"));
        assert_eq!(b, net("fd00:112:0:1::/64"));
        assert_eq!(carve(net("::/0"), 0, &[], None).unwrap(), net("::/0"));
        assert!(carve(net("::/0"), 0, &[net("::/0")], None).is_err());
        let last = net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ff00/120");
        assert!(carve(last, 128, &[last], None).is_err());
    }

    #[test]
    fn overlaps_are_detected_in_any_order() {
        let nets = [
            net("10.112.0.0/16"),
            net("10.113.0.0/16"),
            net("10.112.4.0/24"),
            net("fd00::/8"),
        ];
        assert_eq!(find_overlaps(&nets), vec![(0, 2)]);
        assert!(overlaps(&nets[0], &nets[2]));
        assert!(!overlaps(&nets[0], &nets[3]));
        let nested = [
            net("10.0.0.0/8"),
            net("10.1.0.0/16"),
            net("10.1.1.0/24"),
            net("10.2.0.0/16"),
        ];
        assert_eq!(find_overlaps(&nested), vec![(0, 1), (0, 2), (0, 3), (1, 2)]);
    }
}
