//! The exported endpoints of one cluster, cut into EndpointSlices with stable names.
//!
//! An EndpointSlice holds one address family and, by the built-in controller's habit, at most
//! 100 endpoints; the names are derived from the service, the cluster and the family so that a
//! re-run of the plan updates the same objects instead of adding new ones.

use super::ServiceKey;
use super::export::ExportedEndpoint;

/// The most endpoints one exported EndpointSlice carries (the built-in controller's default).
pub const MAX_ENDPOINTS_PER_SLICE: usize = 100;

/// Longest name given: an object name is a DNS subdomain (253 characters), and on the hub the
/// name is prefixed with the namespace and a dot (a DNS label: 63 characters and one more).
const MAX_NAME_LEN: usize = 253 - 64;

/// One EndpointSlice to publish.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExportedSlice {
    /// The object's name.
    pub name: String,
    /// `IPv4` or `IPv6`, as the EndpointSlice's `addressType`.
    pub address_type: &'static str,
    /// Its endpoints, sorted by address.
    pub endpoints: Vec<ExportedEndpoint>,
}

/// Cuts `endpoints` (sorted by address, as the export plan gives them) into slices. A service
/// with no endpoints still gets one empty IPv4 slice, so consumers see the cluster exports it.
pub fn cut_slices(
    key: &ServiceKey,
    cluster: &str,
    endpoints: &[ExportedEndpoint],
) -> Vec<ExportedSlice> {
    let (v4, v6): (Vec<_>, Vec<_>) = endpoints.iter().cloned().partition(|e| e.address.is_ipv4());
    let mut slices = Vec::new();
    for (family, group) in [("IPv4", v4), ("IPv6", v6)] {
        if group.is_empty() && !(family == "IPv4" && endpoints.is_empty()) {
            continue;
        }
        let chunks: Vec<Vec<ExportedEndpoint>> = if group.is_empty() {
            vec![Vec::new()]
        } else {
            group
                .chunks(MAX_ENDPOINTS_PER_SLICE)
                .map(<[ExportedEndpoint]>::to_vec)
                .collect()
        };
        for (index, chunk) in chunks.into_iter().enumerate() {
            slices.push(ExportedSlice {
                name: slice_name(key, cluster, family, index),
                address_type: family,
                endpoints: chunk,
            });
        }
    }
    slices
}

/// `<name>-<cluster>-<ipv4|ipv6>[-<n>]`, shortened with a hash when it would be too long.
pub fn slice_name(key: &ServiceKey, cluster: &str, family: &str, index: usize) -> String {
    let suffix = if index == 0 {
        family.to_ascii_lowercase()
    } else {
        format!("{}-{index}", family.to_ascii_lowercase())
    };
    let name = format!("{}-{cluster}-{suffix}", key.name);
    if name.len() <= MAX_NAME_LEN {
        return name;
    }
    let hash = fnv32(&name);
    let room = MAX_NAME_LEN - suffix.len() - 10;
    let prefix: String = format!("{}-{cluster}", key.name)
        .chars()
        .take(room)
        .collect();
    format!(
        "{}-{hash:08x}-{suffix}",
        prefix.trim_end_matches(['-', '.'])
    )
}

/// Whether `name` is one that [`slice_name`] gives for `key` and `cluster`: what a member
/// publishes is copied only under such a name, never over another object's.
pub fn is_slice_name_of(name: &str, key: &ServiceKey, cluster: &str) -> bool {
    ["IPv4", "IPv6"].into_iter().any(|family| {
        let suffix = format!("-{}", family.to_ascii_lowercase());
        let index = match name.rsplit_once(&suffix) {
            Some((_, "")) => Some(0),
            Some((_, rest)) => rest
                .strip_prefix('-')
                .filter(|n| !n.starts_with('0'))
                .and_then(|n| n.parse::<usize>().ok()),
            None => None,
        };
        index.is_some_and(|index| slice_name(key, cluster, family, index) == name)
    })
}

fn fnv32(text: &str) -> u32 {
    text.bytes().fold(0x811c_9dc5u32, |hash, byte| {
        (hash ^ u32::from(byte)).wrapping_mul(0x0100_0193)
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::net::IpAddr;

    fn endpoint(address: &str) -> ExportedEndpoint {
        ExportedEndpoint {
            address: address.parse::<IpAddr>().unwrap(),
            ready: true,
            serving: true,
            terminating: false,
            hostname: None,
        }
    }

    #[test]
    fn families_go_to_their_own_slices_and_large_groups_are_cut() {
        let key = ServiceKey::new("default", "web");
        let mut endpoints: Vec<ExportedEndpoint> = (0..250)
            .map(|i| endpoint(&format!("10.112.{}.{}", i / 200, i % 200 + 1)))
            .collect();
        endpoints.push(endpoint("fd00::5"));
        let slices = cut_slices(&key, "east", &endpoints);
        let names: Vec<&str> = slices.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(
            names,
            [
                "web-east-ipv4",
                "web-east-ipv4-1",
                "web-east-ipv4-2",
                "web-east-ipv6"
            ]
        );
        let sizes: Vec<usize> = slices.iter().map(|s| s.endpoints.len()).collect();
        assert_eq!(sizes, [100, 100, 50, 1]);
        assert_eq!(slices[3].address_type, "IPv6");
    }

    #[test]
    fn a_service_without_endpoints_still_publishes_one_empty_slice() {
        let slices = cut_slices(&ServiceKey::new("default", "web"), "east", &[]);
        assert_eq!(slices.len(), 1);
        assert_eq!(slices[0].name, "web-east-ipv4");
        assert!(slices[0].endpoints.is_empty());
    }

    #[test]
    fn only_the_names_slice_name_gives_are_recognised() {
        let key = ServiceKey::new("default", "web");
        for (family, index) in [("IPv4", 0), ("IPv4", 2), ("IPv6", 0), ("IPv6", 11)] {
            let name = slice_name(&key, "east", family, index);
            assert!(is_slice_name_of(&name, &key, "east"), "{name}");
            assert!(!is_slice_name_of(&name, &key, "west"), "{name}");
        }
        for other in [
            "kubernetes",
            "web-east",
            "web-east-ipv4-01",
            "web-east-ipv4-x",
            "db-east-ipv4",
        ] {
            assert!(!is_slice_name_of(other, &key, "east"), "{other}");
        }
        let long = ServiceKey::new("default", "a".repeat(63));
        let cluster = "c".repeat(200);
        let shortened = slice_name(&long, &cluster, "IPv6", 7);
        assert!(is_slice_name_of(&shortened, &long, &cluster));
    }

    #[test]
    fn long_names_are_shortened_to_a_valid_stable_name() {
        let key = ServiceKey::new("default", "a".repeat(63));
        let cluster = "c".repeat(200);
        let first = slice_name(&key, &cluster, "IPv4", 3);
        assert!(first.len() <= MAX_NAME_LEN, "{}", first.len());
        assert!(first.ends_with("-ipv4-3"));
        assert_eq!(first, slice_name(&key, &cluster, "IPv4", 3));
        assert_ne!(first, slice_name(&key, &cluster, "IPv4", 4));
    }
}
