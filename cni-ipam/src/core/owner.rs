//! Who holds an address: a 64-bit digest of (container ID, interface name).
//!
//! The allocator keeps only this digest per allocation (8 bytes instead of a 64-character container
//! ID plus an interface name), which is what keeps a million allocations in a few MiB. The digest
//! is stable across processes and releases, so it can be recomputed from OVN or from the disk store
//! at any time. Two different owners share a digest with probability about n²/2⁶⁵ (about 3·10⁻⁸ for
//! a million allocations); the file store keeps full owners and refuses to hand out an address on
//! such a collision rather than give one address to two containers.

use std::fmt;

/// The compact identity of an allocation's owner.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct OwnerId(u64);

impl OwnerId {
    /// The owner of a CNI attachment: container ID plus interface name.
    pub fn new(container_id: &str, ifname: &str) -> Self {
        let mut h = Fnv::new();
        h.write(&(container_id.len() as u64).to_le_bytes());
        h.write(container_id.as_bytes());
        h.write(&(ifname.len() as u64).to_le_bytes());
        h.write(ifname.as_bytes());
        Self(mix(h.0))
    }

    /// An owner from a raw digest (for callers that key owners by their own stable 64-bit id).
    pub fn from_raw(raw: u64) -> Self {
        Self(raw)
    }

    /// The raw digest.
    pub fn raw(self) -> u64 {
        self.0
    }
}

impl fmt::Display for OwnerId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{:016x}", self.0)
    }
}

/// FNV-1a, 64 bit: tiny, stable, and followed by a finaliser so that the low bits (which a hash
/// table uses directly) are well mixed.
struct Fnv(u64);

impl Fnv {
    fn new() -> Self {
        Self(0xcbf2_9ce4_8422_2325)
    }

    fn write(&mut self, bytes: &[u8]) {
        for b in bytes {
            self.0 ^= u64::from(*b);
            self.0 = self.0.wrapping_mul(0x0000_0100_0000_01b3);
        }
    }
}

/// The splitmix64 finaliser.
fn mix(mut z: u64) -> u64 {
    z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
    z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
    z ^ (z >> 31)
}

/// A hasher for maps keyed by [`OwnerId`]: the key is already a well-mixed digest, so hashing it
/// again would only cost time.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct IdentityHasher(u64);

impl std::hash::Hasher for IdentityHasher {
    fn finish(&self) -> u64 {
        self.0
    }

    fn write(&mut self, bytes: &[u8]) {
        // Only `write_u64` is used by `OwnerId`'s derived `Hash`; fold anything else in anyway.
        for b in bytes {
            self.0 = self.0.rotate_left(8) ^ u64::from(*b);
        }
    }

    fn write_u64(&mut self, n: u64) {
        self.0 = n;
    }
}

pub(crate) type OwnerMap<V> =
    std::collections::HashMap<OwnerId, V, std::hash::BuildHasherDefault<IdentityHasher>>;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn same_attachment_gives_the_same_owner() {
        assert_eq!(OwnerId::new("abc", "eth0"), OwnerId::new("abc", "eth0"));
    }

    #[test]
    fn owner_is_stable_across_releases() {
        // Pinned so that a change of the digest (which would orphan nothing, but would change the
        // figures in stored diagnostics) is a conscious decision.
        assert_eq!(OwnerId::new("abc", "eth0").to_string(), "33203c54ede3a4c6");
    }

    #[test]
    fn interface_and_container_boundaries_are_not_ambiguous() {
        assert_ne!(OwnerId::new("ab", "ceth0"), OwnerId::new("abc", "eth0"));
        assert_ne!(OwnerId::new("abc", "eth0"), OwnerId::new("abc", "eth1"));
    }

    #[test]
    fn a_million_owners_do_not_collide() {
        let mut seen = std::collections::HashSet::new();
        for i in 0..1_000_000u32 {
            assert!(seen.insert(OwnerId::new(&format!("{i:064x}"), "eth0")));
        }
    }
}
