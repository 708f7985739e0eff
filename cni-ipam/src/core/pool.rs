//! The allocator of one range: a hierarchical bitmap of used addresses plus an owner index.
//!
//! State per range: one bit per address (128 KiB for a /12) plus a small summary, and one
//! `(OwnerId, u32)` entry per allocation in the owner index. Allocation walks from a round-robin
//! cursor (as host-local does, so a crash-looping pod does not get the address its previous
//! incarnation had until the range has been walked through) and finds the next free bit in
//! O(levels) word operations whatever the fill level; release is a map removal and a bit clear.

use std::net::IpAddr;

use ipnet::IpNet;

use super::addr::{Family, MacAddr, canonical, from_bits, mac_from_ip, net_bounds, to_bits};
use super::bitmap::Bitmap;
use super::error::AllocError;
use super::owner::{OwnerId, OwnerIndex};
use super::range::RangeSpec;

/// An address handed to an owner, with what the pod needs to configure it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Lease {
    /// The address.
    pub address: IpAddr,
    /// The on-link prefix length (the range's subnet's).
    pub prefix_len: u8,
    /// The gateway of the range, if any.
    pub gateway: Option<IpAddr>,
}

impl Lease {
    /// The address with its prefix length (`10.112.1.5/24`).
    pub fn ipnet(&self) -> IpNet {
        // The prefix length comes from a validated subnet of the same family.
        IpNet::new(self.address, self.prefix_len).unwrap_or_else(|_| IpNet::from(self.address))
    }

    /// The deterministic MAC for this address (see [`mac_from_ip`]).
    pub fn mac(&self) -> MacAddr {
        mac_from_ip(self.address)
    }
}

/// Counts of a pool.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PoolStats {
    /// Addresses between start and end.
    pub size: u32,
    /// Of those, never handed out (network, broadcast, gateway, exclusions).
    pub reserved: u32,
    /// Held by an owner.
    pub allocated: u32,
    /// Available now.
    pub free: u32,
}

/// Heap bytes of a pool's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct StateBytes {
    /// The used-address bitmap with its summary levels; fixed by the range size.
    pub bitmap: usize,
    /// The owner index; grows with the number of allocations (12 bytes per slot, 64–80% full).
    pub owner_index: usize,
}

impl StateBytes {
    /// Both together.
    pub fn total(&self) -> usize {
        self.bitmap + self.owner_index
    }
}

/// A release that could not be restored when rebuilding a pool from a list of allocations.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RestoreConflict {
    /// Who claimed the address.
    pub owner: OwnerId,
    /// The address.
    pub address: IpAddr,
    /// Why it was refused.
    pub error: AllocError,
}

/// The allocator of one range.
#[derive(Debug, Clone)]
pub struct Pool {
    spec: RangeSpec,
    family: Family,
    base: u128,
    used: Bitmap,
    reserved: u32,
    owners: OwnerIndex,
    cursor: u32,
}

impl Pool {
    /// An empty pool for `spec`, with its reserved addresses already marked.
    pub fn new(spec: RangeSpec) -> Self {
        let family = spec.family();
        let base = to_bits(spec.start());
        let len = spec.len();
        let mut used = Bitmap::new(len);
        // `len >= 1`, and `base + (len - 1)` is the range's end, which fits: `base + len` may not.
        let last = base + (u128::from(len) - 1);
        let mut reserve = |bits: u128| {
            if bits >= base && bits <= last {
                used.set((bits - base) as u32);
            }
        };
        let (net_lo, net_hi) = net_bounds(&spec.subnet());
        reserve(net_lo);
        if family == Family::V4 {
            reserve(net_hi);
        }
        if let Some(gw) = spec.gateway() {
            reserve(to_bits(gw));
        }
        for ex in spec.exclusions() {
            let (lo, hi) = net_bounds(ex);
            // An inclusive range: stepping past `hi` would overflow when `hi` is the last
            // address of the space.
            for b in lo.max(base)..=hi.min(last) {
                reserve(b);
            }
        }
        let reserved = used.count_used();
        Self {
            spec,
            family,
            base,
            used,
            reserved,
            owners: OwnerIndex::default(),
            cursor: 0,
        }
    }

    /// A pool holding exactly `allocations` (e.g. read back from OVN, the source of truth).
    /// Pairs that cannot be honoured (outside the range, reserved, a second claim on one address,
    /// a second address for one owner) are returned, not silently dropped.
    pub fn rebuild(
        spec: RangeSpec,
        allocations: impl IntoIterator<Item = (OwnerId, IpAddr)>,
    ) -> (Self, Vec<RestoreConflict>) {
        let mut pool = Self::new(spec);
        let mut conflicts = Vec::new();
        for (owner, address) in allocations {
            if let Err(error) = pool.allocate_addr(owner, address) {
                conflicts.push(RestoreConflict {
                    owner,
                    address,
                    error,
                });
            }
        }
        (pool, conflicts)
    }

    /// The range this pool allocates from.
    pub fn spec(&self) -> &RangeSpec {
        &self.spec
    }

    fn lease(&self, offset: u32) -> Lease {
        Lease {
            address: from_bits(self.family, self.base + u128::from(offset)),
            prefix_len: self.spec.subnet().prefix_len(),
            gateway: self.spec.gateway(),
        }
    }

    fn offset_of(&self, ip: IpAddr) -> Option<u32> {
        self.spec
            .contains(ip)
            .then(|| (to_bits(canonical(ip)) - self.base) as u32)
    }

    /// The owner's address, allocating the next free one if it has none. Asking again returns the
    /// same lease, so a repeated CNI `ADD` is idempotent.
    pub fn allocate(&mut self, owner: OwnerId) -> Result<Lease, AllocError> {
        if let Some(off) = self.owners.get(owner) {
            return Ok(self.lease(off));
        }
        let off = self
            .used
            .next_free(self.cursor)
            .ok_or_else(|| AllocError::Exhausted {
                range: self.spec.to_string(),
            })?;
        self.used.set(off);
        self.owners.insert(owner, off);
        self.cursor = if off + 1 >= self.used.len() {
            0
        } else {
            off + 1
        };
        Ok(self.lease(off))
    }

    /// Gives `ip` to `owner` (a requested address, or one restored from the source of truth).
    /// Succeeds without change if the owner already holds exactly this address.
    pub fn allocate_addr(&mut self, owner: OwnerId, ip: IpAddr) -> Result<Lease, AllocError> {
        let ip = canonical(ip);
        let off = self.offset_of(ip).ok_or_else(|| AllocError::OutOfRange {
            ip,
            range: self.spec.to_string(),
        })?;
        if let Some(current) = self.owners.get(owner) {
            if current == off {
                return Ok(self.lease(off));
            }
            return Err(AllocError::OwnerHoldsOther {
                owner,
                current: self.lease(current).address,
                requested: ip,
            });
        }
        if self.used.is_used(off) {
            if self.spec.is_reserved(ip) {
                return Err(AllocError::Reserved { ip });
            }
            let holder = self
                .owners
                .iter()
                .find_map(|(o, v)| (v == off).then_some(o))
                .unwrap_or(OwnerId::from_raw(0));
            return Err(AllocError::Taken { ip, holder });
        }
        self.used.set(off);
        self.owners.insert(owner, off);
        Ok(self.lease(off))
    }

    /// Marks `ip` used without an owner, so it is never handed out (for a stored allocation that
    /// cannot be attributed, e.g. a second address claimed by one owner). Returns false if `ip` is
    /// outside the range or already used. Only a rebuild frees it again.
    pub fn block(&mut self, ip: IpAddr) -> bool {
        match self.offset_of(ip) {
            Some(off) if self.used.set(off) => {
                self.reserved += 1;
                true
            }
            _ => false,
        }
    }

    /// Frees the owner's address; `None` if it held none (not an error: DEL is idempotent).
    pub fn release(&mut self, owner: OwnerId) -> Option<IpAddr> {
        let off = self.owners.remove(owner)?;
        self.used.clear(off);
        Some(self.lease(off).address)
    }

    /// The owner's current lease, if any.
    pub fn lookup(&self, owner: OwnerId) -> Option<Lease> {
        self.owners.get(owner).map(|off| self.lease(off))
    }

    /// Keeps only the allocations for which `keep` says true and returns the ones released
    /// (garbage collection against a list of live owners).
    pub fn retain(
        &mut self,
        mut keep: impl FnMut(OwnerId, IpAddr) -> bool,
    ) -> Vec<(OwnerId, IpAddr)> {
        let released: Vec<(OwnerId, IpAddr)> = self
            .allocations()
            .filter(|&(owner, ip)| !keep(owner, ip))
            .collect();
        for (owner, _) in &released {
            self.release(*owner);
        }
        released
    }

    /// Every allocation, in no particular order.
    pub fn allocations(&self) -> impl Iterator<Item = (OwnerId, IpAddr)> + '_ {
        self.owners
            .iter()
            .map(|(o, off)| (o, from_bits(self.family, self.base + u128::from(off))))
    }

    /// Whether `ip` lies in this pool's range.
    pub fn contains(&self, ip: IpAddr) -> bool {
        self.spec.contains(ip)
    }

    /// Makes the next search start right after `ip` (to resume round-robin from a stored
    /// position). Ignored when `ip` is not in the range.
    pub fn resume_after(&mut self, ip: IpAddr) {
        if let Some(off) = self.offset_of(ip) {
            self.cursor = if off + 1 >= self.used.len() {
                0
            } else {
                off + 1
            };
        }
    }

    /// The address the next search starts from.
    pub fn cursor(&self) -> IpAddr {
        self.lease(self.cursor).address
    }

    /// Whether no address is left to hand out.
    pub fn is_exhausted(&self) -> bool {
        self.used.count_used() >= self.used.len()
    }

    /// Sizes and counts.
    pub fn stats(&self) -> PoolStats {
        let size = self.used.len();
        let allocated = self.owners.len() as u32;
        PoolStats {
            size,
            reserved: self.reserved,
            allocated,
            free: size - self.used.count_used(),
        }
    }

    /// Heap bytes held by this pool's state.
    pub fn state_bytes(&self) -> StateBytes {
        StateBytes {
            bitmap: self.used.heap_bytes(),
            owner_index: self.owners.heap_bytes(),
        }
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
    fn owner(i: u32) -> OwnerId {
        OwnerId::new(&format!("c{i}"), "eth0")
    }
    fn pool(subnet: &str, gw: Option<&str>) -> Pool {
        Pool::new(RangeSpec::new(net(subnet), None, None, gw.map(ip)).unwrap())
    }

    /// A range that ends at the last address of the space, with an exclusion reaching it:
    /// no overflow computing the range's end, and the exclusion loop stops.
    #[test]
    fn a_range_at_the_top_of_the_address_space_allocates_up_to_the_last_address() {
        let top = ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff");
        let spec = RangeSpec::new(
            net("::/0"),
            Some(ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc")),
            None,
            None,
        )
        .unwrap()
        .with_exclusions([net("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127")])
        .unwrap();
        let mut p = Pool::new(spec);
        let got: Vec<_> = (0..2)
            .map(|i| p.allocate(owner(i)).unwrap().address)
            .collect();
        assert_eq!(
            got,
            [
                ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc"),
                ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd")
            ]
        );
        assert!(matches!(
            p.allocate(owner(9)),
            Err(AllocError::Exhausted { .. })
        ));
        assert!(!p.contains(top) || p.spec().is_reserved(top));

        let mut p = Pool::new(
            RangeSpec::new(net("0.0.0.0/0"), Some(ip("255.255.255.254")), None, None).unwrap(),
        );
        assert_eq!(p.allocate(owner(1)).unwrap().address, ip("255.255.255.254"));
        assert!(matches!(
            p.allocate(owner(2)),
            Err(AllocError::Exhausted { .. })
        ));
    }

    #[test]
    fn gateway_network_and_broadcast_are_never_handed_out() {
        let mut p = pool("10.0.0.0/29", Some("10.0.0.1"));
        let got: Vec<_> = (0..5)
            .map(|i| p.allocate(owner(i)).unwrap().address)
            .collect();
        assert_eq!(
            got,
            ["10.0.0.2", "10.0.0.3", "10.0.0.4", "10.0.0.5", "10.0.0.6"]
                .map(ip)
                .to_vec()
        );
        assert!(matches!(
            p.allocate(owner(9)),
            Err(AllocError::Exhausted { .. })
        ));
        assert!(p.is_exhausted());
    }

    #[test]
    fn repeated_allocation_for_one_owner_returns_the_same_address() {
        let mut p = pool("10.0.0.0/24", Some("10.0.0.1"));
        let a = p.allocate(owner(1)).unwrap();
        let b = p.allocate(owner(1)).unwrap();
        assert_eq!(a, b);
        assert_eq!(p.stats().allocated, 1);
    }

    #[test]
    fn release_frees_and_is_idempotent() {
        let mut p = pool("10.0.0.0/24", None);
        let a = p.allocate(owner(1)).unwrap().address;
        assert_eq!(p.release(owner(1)), Some(a));
        assert_eq!(p.release(owner(1)), None);
        assert_eq!(p.lookup(owner(1)), None);
    }

    #[test]
    fn allocation_is_round_robin_after_release() {
        let mut p = pool("10.0.0.0/24", Some("10.0.0.1"));
        let a = p.allocate(owner(1)).unwrap().address;
        p.release(owner(1));
        let b = p.allocate(owner(2)).unwrap().address;
        assert_ne!(
            a, b,
            "a just-released address is not handed out again at once"
        );
    }

    #[test]
    fn exclusions_are_skipped() {
        let spec = RangeSpec::new(net("10.0.0.0/24"), None, Some(ip("10.0.0.6")), None)
            .unwrap()
            .with_exclusions([net("10.0.0.2/31"), net("10.0.0.5/32")])
            .unwrap();
        let mut p = Pool::new(spec);
        let got: Vec<_> = (0..2)
            .map(|i| p.allocate(owner(i)).unwrap().address)
            .collect();
        assert_eq!(got, vec![ip("10.0.0.1"), ip("10.0.0.4")]);
        assert_eq!(p.allocate(owner(3)).unwrap().address, ip("10.0.0.6"));
        assert!(p.allocate(owner(4)).is_err());
        assert!(matches!(
            p.allocate_addr(owner(5), ip("10.0.0.5")),
            Err(AllocError::Reserved { .. })
        ));
    }

    #[test]
    fn requested_address_is_honoured_when_free() {
        let mut p = pool("10.0.0.0/24", Some("10.0.0.1"));
        assert_eq!(
            p.allocate_addr(owner(1), ip("10.0.0.77")).unwrap().address,
            ip("10.0.0.77")
        );
        assert!(matches!(
            p.allocate_addr(owner(2), ip("10.0.0.77")),
            Err(AllocError::Taken { holder, .. }) if holder == owner(1)
        ));
        assert!(matches!(
            p.allocate_addr(owner(2), ip("10.0.0.1")),
            Err(AllocError::Reserved { .. })
        ));
        assert!(matches!(
            p.allocate_addr(owner(2), ip("10.0.1.1")),
            Err(AllocError::OutOfRange { .. })
        ));
        assert!(matches!(
            p.allocate_addr(owner(1), ip("10.0.0.78")),
            Err(AllocError::OwnerHoldsOther { .. })
        ));
    }

    #[test]
    fn rebuild_restores_allocations_and_reports_conflicts() {
        let spec = RangeSpec::new(net("10.0.0.0/24"), None, None, Some(ip("10.0.0.1"))).unwrap();
        let (mut p, conflicts) = Pool::rebuild(
            spec,
            [
                (owner(1), ip("10.0.0.10")),
                (owner(2), ip("10.0.0.10")),
                (owner(3), ip("10.0.0.1")),
                (owner(4), ip("10.0.0.11")),
            ],
        );
        assert_eq!(conflicts.len(), 2);
        assert_eq!(p.lookup(owner(1)).unwrap().address, ip("10.0.0.10"));
        assert_eq!(p.allocate(owner(4)).unwrap().address, ip("10.0.0.11"));
        assert_eq!(p.stats().allocated, 2);
    }

    #[test]
    fn blocked_addresses_are_never_handed_out() {
        let mut p = pool("10.0.0.0/29", Some("10.0.0.1"));
        assert!(p.block(ip("10.0.0.2")));
        assert!(!p.block(ip("10.0.0.2")));
        assert!(!p.block(ip("10.0.1.2")));
        assert_eq!(p.allocate(owner(1)).unwrap().address, ip("10.0.0.3"));
    }

    #[test]
    fn retain_releases_owners_not_kept() {
        let mut p = pool("10.0.0.0/24", None);
        for i in 0..10 {
            p.allocate(owner(i)).unwrap();
        }
        let released = p.retain(|o, _| o == owner(3));
        assert_eq!(released.len(), 9);
        assert_eq!(p.stats().allocated, 1);
        assert!(p.lookup(owner(3)).is_some());
    }

    #[test]
    fn ipv6_ranges_use_the_same_allocator() {
        let mut p = pool("fd00:112::/120", Some("fd00:112::1"));
        let a = p.allocate(owner(1)).unwrap();
        assert_eq!(a.address, ip("fd00:112::2"));
        assert_eq!(a.ipnet().to_string(), "fd00:112::2/120");
        let mut big = pool("fd00:112::/64", None);
        assert_eq!(big.allocate(owner(1)).unwrap().address, ip("fd00:112::1"));
        assert_eq!(big.stats().size, super::super::range::MAX_RANGE_LEN);
    }

    #[test]
    fn a_full_slash_12_allocates_every_usable_address_once() {
        let mut p = pool("10.112.0.0/12", Some("10.112.0.1"));
        let usable = p.stats().free;
        assert_eq!(usable, (1 << 20) - 3);
        let mut seen = Bitmap::new(1 << 20);
        for i in 0..usable {
            let a = p
                .allocate(OwnerId::from_raw(u64::from(i) + 1))
                .unwrap()
                .address;
            assert!(seen.set((to_bits(a) - to_bits(ip("10.112.0.0"))) as u32));
        }
        assert!(p.is_exhausted());
        assert!(p.state_bytes().bitmap < 140 * 1024);
    }

    #[test]
    fn cursor_resumes_after_a_stored_address() {
        let mut p = pool("10.0.0.0/24", Some("10.0.0.1"));
        p.resume_after(ip("10.0.0.50"));
        assert_eq!(p.allocate(owner(1)).unwrap().address, ip("10.0.0.51"));
        p.resume_after(ip("10.0.0.254"));
        assert_eq!(p.allocate(owner(2)).unwrap().address, ip("10.0.0.2"));
    }

    #[test]
    fn lease_carries_prefix_gateway_and_mac() {
        let mut p = pool("10.112.7.0/24", Some("10.112.7.1"));
        let l = p.allocate(owner(1)).unwrap();
        assert_eq!(l.ipnet().to_string(), "10.112.7.2/24");
        assert_eq!(l.gateway, Some(ip("10.112.7.1")));
        assert_eq!(l.mac().to_string(), "0a:58:0a:70:07:02");
    }
}
