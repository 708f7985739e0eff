//! A range set: several ranges of one family that together give an owner one address (host-local's
//! `ranges: [[{...}, {...}]]`). Ranges are tried in order, starting with the one the last
//! allocation came from.

use std::net::IpAddr;

use super::error::{AllocError, RangeError};
use super::owner::OwnerId;
use super::pool::{Lease, Pool, PoolStats};
use super::range::RangeSpec;

/// Allocation over the ranges of one range set.
#[derive(Debug, Clone)]
pub struct RangeSetPool {
    pools: Vec<Pool>,
    current: usize,
}

impl RangeSetPool {
    /// Validates that the ranges share a family and do not overlap.
    pub fn new(specs: Vec<RangeSpec>) -> Result<Self, RangeError> {
        let first = specs.first().ok_or(RangeError::EmptySet)?;
        for (i, a) in specs.iter().enumerate() {
            if a.family() != first.family() {
                return Err(RangeError::MixedFamilies {
                    a: first.to_string(),
                    b: a.to_string(),
                });
            }
            for b in &specs[i + 1..] {
                if a.overlaps(b) {
                    return Err(RangeError::Overlap {
                        a: a.to_string(),
                        b: b.to_string(),
                    });
                }
            }
        }
        Ok(Self {
            pools: specs.into_iter().map(Pool::new).collect(),
            current: 0,
        })
    }

    /// The ranges.
    pub fn pools(&self) -> &[Pool] {
        &self.pools
    }

    /// Whether any range of the set contains `ip`.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.pools.iter().any(|p| p.contains(ip))
    }

    /// Whether this set's ranges overlap any of `other`'s.
    pub fn overlaps(&self, other: &Self) -> bool {
        self.pools
            .iter()
            .any(|a| other.pools.iter().any(|b| a.spec().overlaps(b.spec())))
    }

    /// The owner's lease in this set, if any.
    pub fn lookup(&self, owner: OwnerId) -> Option<Lease> {
        self.pools.iter().find_map(|p| p.lookup(owner))
    }

    /// The owner's lease, allocating one if it has none.
    pub fn allocate(&mut self, owner: OwnerId) -> Result<Lease, AllocError> {
        if let Some(lease) = self.lookup(owner) {
            return Ok(lease);
        }
        let n = self.pools.len();
        for step in 0..n {
            let i = (self.current + step) % n;
            if let Some(pool) = self.pools.get_mut(i) {
                match pool.allocate(owner) {
                    Ok(lease) => {
                        self.current = i;
                        return Ok(lease);
                    }
                    Err(AllocError::Exhausted { .. }) => continue,
                    Err(e) => return Err(e),
                }
            }
        }
        Err(AllocError::Exhausted {
            range: self.to_string(),
        })
    }

    /// Gives `ip` to `owner` from whichever range contains it.
    pub fn allocate_addr(&mut self, owner: OwnerId, ip: IpAddr) -> Result<Lease, AllocError> {
        let range = self.to_string();
        if let Some(current) = self.lookup(owner) {
            if current.address == ip.to_canonical() {
                return Ok(current);
            }
            return Err(AllocError::OwnerHoldsOther {
                owner,
                current: current.address,
                requested: ip,
            });
        }
        let pool = self
            .pools
            .iter_mut()
            .find(|p| p.contains(ip))
            .ok_or(AllocError::OutOfRange { ip, range })?;
        pool.allocate_addr(owner, ip)
    }

    /// Marks `ip` used without an owner (see [`Pool::block`]).
    pub fn block(&mut self, ip: IpAddr) -> bool {
        self.pools
            .iter_mut()
            .find(|p| p.contains(ip))
            .is_some_and(|p| p.block(ip))
    }

    /// Frees every address the owner holds in this set.
    pub fn release(&mut self, owner: OwnerId) -> Vec<IpAddr> {
        self.pools
            .iter_mut()
            .filter_map(|p| p.release(owner))
            .collect()
    }

    /// Makes the next allocation start right after `ip`.
    pub fn resume_after(&mut self, ip: IpAddr) {
        if let Some(i) = self.pools.iter().position(|p| p.contains(ip)) {
            self.current = i;
            if let Some(p) = self.pools.get_mut(i) {
                p.resume_after(ip);
            }
        }
    }

    /// Whether no range of the set has a free address.
    pub fn is_exhausted(&self) -> bool {
        self.pools.iter().all(Pool::is_exhausted)
    }

    /// Counts summed over the ranges.
    pub fn stats(&self) -> PoolStats {
        self.pools.iter().map(Pool::stats).fold(
            PoolStats {
                size: 0,
                reserved: 0,
                allocated: 0,
                free: 0,
            },
            |a, b| PoolStats {
                size: a.size.saturating_add(b.size),
                reserved: a.reserved.saturating_add(b.reserved),
                allocated: a.allocated.saturating_add(b.allocated),
                free: a.free.saturating_add(b.free),
            },
        )
    }
}

impl std::fmt::Display for RangeSetPool {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        for (i, p) in self.pools.iter().enumerate() {
            if i > 0 {
                f.write_str(",")?;
            }
            write!(f, "{}", p.spec())?;
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use ipnet::IpNet;

    fn spec(subnet: &str, start: &str, end: &str) -> RangeSpec {
        RangeSpec::new(
            subnet.parse::<IpNet>().unwrap(),
            Some(start.parse().unwrap()),
            Some(end.parse().unwrap()),
            None,
        )
        .unwrap()
    }
    fn owner(i: u32) -> OwnerId {
        OwnerId::new(&format!("c{i}"), "eth0")
    }

    #[test]
    fn second_range_is_used_when_the_first_is_full() {
        let mut set = RangeSetPool::new(vec![
            spec("10.0.0.0/24", "10.0.0.10", "10.0.0.11"),
            spec("10.0.1.0/24", "10.0.1.10", "10.0.1.10"),
        ])
        .unwrap();
        let got: Vec<_> = (0..3)
            .map(|i| set.allocate(owner(i)).unwrap().address.to_string())
            .collect();
        assert_eq!(got, ["10.0.0.10", "10.0.0.11", "10.0.1.10"]);
        assert!(set.is_exhausted());
        assert!(matches!(
            set.allocate(owner(9)),
            Err(AllocError::Exhausted { .. })
        ));
        assert_eq!(
            set.release(owner(0)),
            vec!["10.0.0.10".parse::<IpAddr>().unwrap()]
        );
        assert!(!set.is_exhausted());
    }

    #[test]
    fn overlapping_or_mixed_ranges_are_rejected() {
        let e = RangeSetPool::new(vec![
            spec("10.0.0.0/24", "10.0.0.10", "10.0.0.20"),
            spec("10.0.0.0/24", "10.0.0.20", "10.0.0.30"),
        ])
        .unwrap_err();
        assert!(matches!(e, RangeError::Overlap { .. }));
        let e = RangeSetPool::new(vec![
            spec("10.0.0.0/24", "10.0.0.10", "10.0.0.20"),
            spec("fd00::/120", "fd00::10", "fd00::20"),
        ])
        .unwrap_err();
        assert!(matches!(e, RangeError::MixedFamilies { .. }));
        assert_eq!(RangeSetPool::new(vec![]).unwrap_err(), RangeError::EmptySet);
    }
}
