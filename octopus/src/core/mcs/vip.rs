//! The clusterset IP of an exported name: one address of the block set aside for clusterset
//! IPs. Each member picks it for its own import (see [`super::import`]); the pick depends only
//! on the name and the addresses already taken, so members that see the same exports agree.
//!
//! The pick starts at a hash of the name, so that a name exported again after it went away
//! usually gets its old address back, and moves to the next free address on a collision.

use std::collections::BTreeSet;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;

use super::ServiceKey;

/// No clusterset IP can be given.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum VipError {
    /// Every usable address of the block is taken.
    #[error("every address of the clusterset block {block} is taken")]
    Exhausted {
        /// The clusterset block.
        block: IpNet,
    },
}

/// Picks a free clusterset IP for `key` in `block`, avoiding `taken`. The network address (and
/// for IPv4 the broadcast address) is never given.
pub fn allocate_vip(
    key: &ServiceKey,
    block: IpNet,
    taken: &BTreeSet<IpAddr>,
) -> Result<IpAddr, VipError> {
    let host_bits = u32::from(block.max_prefix_len() - block.prefix_len());
    // Offsets 1..=usable; IPv4 also keeps the all-ones address out.
    let span: u128 = if host_bits >= 128 {
        u128::MAX
    } else {
        (1u128 << host_bits) - 1
    };
    let usable = match block {
        IpNet::V4(_) => span.saturating_sub(1),
        IpNet::V6(_) => span,
    };
    if usable == 0 {
        return Err(VipError::Exhausted { block });
    }
    let base = to_u128(block.network());
    let start = u128::from(fnv1a(key)) % usable;
    // Only taken addresses can push the search on, so it ends within taken.len() + 1 steps.
    let attempts = usable.min(taken.len() as u128 + 1);
    for step in 0..attempts {
        let offset = 1 + (start + step) % usable;
        let address = from_u128(block, base + offset);
        if !taken.contains(&address) {
            return Ok(address);
        }
    }
    Err(VipError::Exhausted { block })
}

/// FNV-1a over `namespace/name`: stable across versions and platforms, unlike std's hasher.
fn fnv1a(key: &ServiceKey) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in key
        .namespace
        .bytes()
        .chain(std::iter::once(b'/'))
        .chain(key.name.bytes())
    {
        hash ^= u64::from(byte);
        hash = hash.wrapping_mul(0x0000_0100_0000_01b3);
    }
    hash
}

fn to_u128(address: IpAddr) -> u128 {
    match address {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

fn from_u128(block: IpNet, value: u128) -> IpAddr {
    match block {
        // The offset stays below the block's size, so the value fits the family.
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(value as u32)),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(value)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn block(text: &str) -> IpNet {
        text.parse().unwrap()
    }

    #[test]
    fn the_same_name_gets_the_same_address_inside_the_block() {
        let key = ServiceKey::new("default", "nginx-svc");
        let a = allocate_vip(&key, block("10.127.0.0/16"), &BTreeSet::new()).unwrap();
        let b = allocate_vip(&key, block("10.127.0.0/16"), &BTreeSet::new()).unwrap();
        assert_eq!(a, b);
        assert!(block("10.127.0.0/16").contains(&a));
        assert_ne!(a, "10.127.0.0".parse::<IpAddr>().unwrap());
        assert_ne!(a, "10.127.255.255".parse::<IpAddr>().unwrap());
    }

    #[test]
    fn a_taken_address_moves_the_pick_to_a_free_one() {
        let key = ServiceKey::new("default", "nginx-svc");
        let first = allocate_vip(&key, block("10.127.0.0/16"), &BTreeSet::new()).unwrap();
        let taken = BTreeSet::from([first]);
        let second = allocate_vip(&key, block("10.127.0.0/16"), &taken).unwrap();
        assert_ne!(first, second);
    }

    #[test]
    fn a_full_block_is_exhausted_and_every_address_was_given_once() {
        // A /29 has six usable addresses: .1 to .6.
        let net = block("10.127.0.0/29");
        let mut taken = BTreeSet::new();
        for i in 0..6 {
            let key = ServiceKey::new("ns", format!("svc-{i}"));
            let vip = allocate_vip(&key, net, &taken).unwrap();
            assert!(taken.insert(vip), "{vip} given twice");
        }
        let expected: BTreeSet<IpAddr> = (1..=6)
            .map(|i| IpAddr::V4(Ipv4Addr::new(10, 127, 0, i)))
            .collect();
        assert_eq!(taken, expected);
        let err = allocate_vip(&ServiceKey::new("ns", "one-more"), net, &taken).unwrap_err();
        assert_eq!(err, VipError::Exhausted { block: net });
    }

    #[test]
    fn single_address_blocks_have_nothing_to_give() {
        for net in ["10.127.0.0/32", "10.127.0.0/31", "fd00::/128"] {
            let err = allocate_vip(&ServiceKey::new("a", "b"), block(net), &BTreeSet::new());
            assert!(err.is_err(), "{net}");
        }
    }

    #[test]
    fn ipv6_blocks_work_up_to_a_full_128_bits_of_hosts() {
        let key = ServiceKey::new("default", "web");
        for net in ["fd00:1::/112", "::/0"] {
            let vip = allocate_vip(&key, block(net), &BTreeSet::new()).unwrap();
            assert!(block(net).contains(&vip));
            assert!(vip.is_ipv6());
        }
    }
}
