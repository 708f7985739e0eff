//! Configuration every Nauti component shares, validated once here so that the hub, the
//! members' controllers and the NRI plugin refuse the same mistakes with the same words.
//!
//! The binaries fill these structs from flags (with environment twins) or Helm values, then
//! call [`NetworkConfig::validate`] before doing anything.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::{IpNet, Ipv4Net};

use super::names::{LabelError, validate_dns1123_label};
use super::net::{CidrError, IpFamily, ensure_canonical};

/// The global network when nothing else is configured: 10.112.0.0/12, a block of RFC 1918
/// space rarely used for pod or service CIDRs, large enough for sixteen /16 clusters.
pub const DEFAULT_GLOBAL_CIDR: IpNet =
    IpNet::V4(Ipv4Net::new_assert(Ipv4Addr::new(10, 112, 0, 0), 12));

/// Size of the subnet the hub hands to each member when it does not ask for one.
pub const DEFAULT_CLUSTER_PREFIX_LEN: u8 = 16;

/// Size of each node's address block inside a cluster subnet: 254 pods per node, like kubelet's
/// default pod CIDR.
pub const DEFAULT_NODE_BLOCK_PREFIX_LEN: u8 = 24;

/// The common Ethernet MTU, assumed for the underlay unless told otherwise.
pub const DEFAULT_UNDERLAY_MTU: u16 = 1500;

/// Bytes the Geneve encapsulation between nodes adds (outer IPv4 + UDP + Geneve with OVN's
/// option), as OVN-Kubernetes budgets it.
pub const GENEVE_OVERHEAD: u16 = 58;

/// WireGuard's overhead over an IPv4 underlay: 20 IP + 8 UDP + 32 WireGuard header and tag.
pub const WIREGUARD_OVERHEAD_V4: u16 = 60;

/// WireGuard's overhead over an IPv6 underlay: 40 IP + 8 UDP + 32 WireGuard header and tag.
pub const WIREGUARD_OVERHEAD_V6: u16 = 80;

/// Smallest MTU an IPv4 pod link may have: every IPv4 host must accept 576-byte datagrams
/// (RFC 791), so below that traffic breaks in ways PMTU discovery cannot repair.
pub const MIN_MTU_V4: u16 = 576;

/// Smallest MTU an IPv6 link may have (RFC 8200 section 5).
pub const MIN_MTU_V6: u16 = 1280;

/// The per-family minimum, see [`MIN_MTU_V4`] and [`MIN_MTU_V6`].
pub const fn min_mtu(family: IpFamily) -> u16 {
    match family {
        IpFamily::V4 => MIN_MTU_V4,
        IpFamily::V6 => MIN_MTU_V6,
    }
}

/// WireGuard's overhead for a tunnel carried over `underlay` addresses.
pub const fn wireguard_overhead(underlay: IpFamily) -> u16 {
    match underlay {
        IpFamily::V4 => WIREGUARD_OVERHEAD_V4,
        IpFamily::V6 => WIREGUARD_OVERHEAD_V6,
    }
}

/// An MTU that would break the pod network.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum MtuError {
    /// The MTU derived from the underlay is too small for the pods' address family.
    #[error(
        "pod MTU derived from underlay_mtu {underlay}: {underlay} - {GENEVE_OVERHEAD} (geneve) - \
         {wireguard} (WireGuard over {tunnel}) = {derived}, below the {pod} minimum of {minimum}; \
         raise underlay_mtu or set pod_mtu explicitly"
    )]
    DerivedTooSmall {
        /// The configured underlay MTU.
        underlay: u16,
        /// WireGuard's share, which depends on the tunnel's family.
        wireguard: u16,
        /// The tunnel's (underlay's) family.
        tunnel: IpFamily,
        /// What was left (saturating at 0).
        derived: u16,
        /// The pods' family, which sets the minimum.
        pod: IpFamily,
        /// The minimum for that family.
        minimum: u16,
    },
    /// An explicit `pod_mtu` below the family's minimum.
    #[error("pod_mtu {value} is below the {pod} minimum of {minimum}")]
    ExplicitTooSmall {
        /// The configured value.
        value: u16,
        /// The pods' family.
        pod: IpFamily,
        /// The minimum for that family.
        minimum: u16,
    },
}

/// The pod NIC MTU left after Geneve between nodes and WireGuard between clusters, checked
/// against the minimum for the pods' family.
pub fn derive_pod_mtu(underlay_mtu: u16, tunnel: IpFamily, pod: IpFamily) -> Result<u16, MtuError> {
    let wireguard = wireguard_overhead(tunnel);
    let derived = underlay_mtu
        .saturating_sub(GENEVE_OVERHEAD)
        .saturating_sub(wireguard);
    let minimum = min_mtu(pod);
    if derived < minimum {
        return Err(MtuError::DerivedTooSmall {
            underlay: underlay_mtu,
            wireguard,
            tunnel,
            derived,
            pod,
            minimum,
        });
    }
    Ok(derived)
}

/// MTU settings: the underlay's MTU, the tunnel family, and an optional explicit pod MTU.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct MtuConfig {
    /// MTU of the nodes' uplink (the network Geneve and WireGuard ride on).
    pub underlay_mtu: u16,
    /// Family of the WireGuard endpoints, which decides WireGuard's overhead.
    pub tunnel_family: IpFamily,
    /// Use this pod MTU instead of deriving one (e.g. jumbo frames known end to end).
    pub pod_mtu: Option<u16>,
}

impl Default for MtuConfig {
    fn default() -> Self {
        Self {
            underlay_mtu: DEFAULT_UNDERLAY_MTU,
            tunnel_family: IpFamily::V4,
            pod_mtu: None,
        }
    }
}

impl MtuConfig {
    /// The MTU to set on `eth-nauti` for pods of `pod` family: the explicit value if given
    /// (still checked against the minimum), else derived from the underlay.
    pub fn pod_mtu(&self, pod: IpFamily) -> Result<u16, MtuError> {
        match self.pod_mtu {
            Some(value) if value < min_mtu(pod) => Err(MtuError::ExplicitTooSmall {
                value,
                pod,
                minimum: min_mtu(pod),
            }),
            Some(value) => Ok(value),
            None => derive_pod_mtu(self.underlay_mtu, self.tunnel_family, pod),
        }
    }
}

/// A configuration value that cannot be used.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum ConfigError {
    /// A CIDR with host bits set.
    #[error("{field} {value}: {source}")]
    Cidr {
        /// Which setting.
        field: &'static str,
        /// The configured value.
        value: IpNet,
        /// What is wrong with it.
        #[source]
        source: CidrError,
    },
    /// The cluster ID is not a DNS-1123 label.
    #[error("cluster_id {value:?} {source}")]
    ClusterId {
        /// The configured value.
        value: String,
        /// Which rule it breaks.
        #[source]
        source: LabelError,
    },
    /// The cluster subnet is not inside the global CIDR.
    #[error("cluster_subnet {subnet} lies outside global_cidr {global}")]
    SubnetOutsideGlobal {
        /// The configured subnet.
        subnet: IpNet,
        /// The global CIDR it must lie in.
        global: IpNet,
    },
    /// A prefix length that does not fit.
    #[error("{field} /{value}: {reason}")]
    PrefixLen {
        /// Which setting.
        field: &'static str,
        /// The configured value.
        value: u8,
        /// Which bound it breaks.
        reason: String,
    },
    /// The MTU settings leave too little room.
    #[error(transparent)]
    Mtu(#[from] MtuError),
}

/// The network settings of one cluster's Nauti installation.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct NetworkConfig {
    /// The whole multi-cluster network every cluster subnet is carved from.
    pub global_cidr: IpNet,
    /// This cluster's ID (a DNS-1123 label, equal to its `Peer`'s name).
    pub cluster_id: String,
    /// This cluster's slice of the global CIDR; `None` until the hub assigns one (or when the
    /// member lets the hub choose).
    pub cluster_subnet: Option<IpNet>,
    /// Size of the subnets the hub hands out when none is requested.
    pub cluster_prefix_len: u8,
    /// Size of each node's block inside the cluster subnet.
    pub node_block_prefix_len: u8,
    /// MTU settings for the pod NIC.
    pub mtu: MtuConfig,
}

impl NetworkConfig {
    /// Defaults for everything but the cluster ID, which has no sensible default.
    pub fn new(cluster_id: impl Into<String>) -> Self {
        Self {
            global_cidr: DEFAULT_GLOBAL_CIDR,
            cluster_id: cluster_id.into(),
            cluster_subnet: None,
            cluster_prefix_len: DEFAULT_CLUSTER_PREFIX_LEN,
            node_block_prefix_len: DEFAULT_NODE_BLOCK_PREFIX_LEN,
            mtu: MtuConfig::default(),
        }
    }

    /// The family of the global network, and so of every pod address.
    pub fn family(&self) -> IpFamily {
        IpFamily::of_net(&self.global_cidr)
    }

    /// The prefix length node blocks are carved from: the assigned subnet's, else the default
    /// cluster prefix.
    pub fn effective_cluster_prefix_len(&self) -> u8 {
        self.cluster_subnet
            .map_or(self.cluster_prefix_len, |s| s.prefix_len())
    }

    /// Checks every rule, reporting the first broken one.
    ///
    /// Node blocks must keep at least four addresses (prefix at most /30 for IPv4, /126 for
    /// IPv6) so a block holds at least one usable pod address whatever the family conventions.
    pub fn validate(&self) -> Result<(), ConfigError> {
        validate_dns1123_label(&self.cluster_id).map_err(|source| ConfigError::ClusterId {
            value: self.cluster_id.clone(),
            source,
        })?;
        ensure_canonical(self.global_cidr).map_err(|source| ConfigError::Cidr {
            field: "global_cidr",
            value: self.global_cidr,
            source,
        })?;

        let family = self.family();
        let max = family.max_prefix_len();
        let global_len = self.global_cidr.prefix_len();
        if self.cluster_prefix_len < global_len || self.cluster_prefix_len > max {
            return Err(ConfigError::PrefixLen {
                field: "cluster_prefix_len",
                value: self.cluster_prefix_len,
                reason: format!(
                    "must be between /{global_len} (global_cidr {}) and /{max}",
                    self.global_cidr
                ),
            });
        }
        if let Some(subnet) = self.cluster_subnet {
            ensure_canonical(subnet).map_err(|source| ConfigError::Cidr {
                field: "cluster_subnet",
                value: subnet,
                source,
            })?;
            if !self.global_cidr.contains(&subnet) {
                return Err(ConfigError::SubnetOutsideGlobal {
                    subnet,
                    global: self.global_cidr,
                });
            }
        }
        let cluster_len = self.effective_cluster_prefix_len();
        if self.node_block_prefix_len <= cluster_len {
            return Err(ConfigError::PrefixLen {
                field: "node_block_prefix_len",
                value: self.node_block_prefix_len,
                reason: format!("must be longer than the cluster subnet prefix /{cluster_len}"),
            });
        }
        if self.node_block_prefix_len > max - 2 {
            return Err(ConfigError::PrefixLen {
                field: "node_block_prefix_len",
                value: self.node_block_prefix_len,
                reason: format!(
                    "must be at most /{} so a block holds at least four {family} addresses",
                    max - 2
                ),
            });
        }
        self.mtu.pod_mtu(family)?;
        Ok(())
    }

    /// The first usable address of a subnet, which Nauti reserves for the gateway (CNF pod).
    /// `None` for subnets too small to hold a gateway and a pod (/31, /32, /127, /128).
    pub fn gateway_of(subnet: &IpNet) -> Option<IpAddr> {
        let max = IpFamily::of_net(subnet).max_prefix_len();
        if subnet.prefix_len() + 1 >= max {
            return None;
        }
        Some(match subnet.network() {
            IpAddr::V4(n) => IpAddr::V4(Ipv4Addr::from(u32::from(n) + 1)),
            IpAddr::V6(n) => IpAddr::V6(Ipv6Addr::from(u128::from(n) + 1)),
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn net(s: &str) -> IpNet {
        s.parse().unwrap()
    }

    #[test]
    fn defaults_are_valid_and_match_the_design() {
        let c = NetworkConfig::new("member-1");
        assert_eq!(c.global_cidr.to_string(), "10.112.0.0/12");
        assert_eq!((c.cluster_prefix_len, c.node_block_prefix_len), (16, 24));
        assert_eq!(c.validate(), Ok(()));
        assert_eq!(c.mtu.pod_mtu(IpFamily::V4), Ok(1500 - 58 - 60));
    }

    #[test]
    fn a_cluster_subnet_outside_the_global_cidr_is_refused() {
        let mut c = NetworkConfig::new("member-1");
        c.cluster_subnet = Some(net("10.128.0.0/16"));
        let err = c.validate().unwrap_err();
        assert_eq!(
            err,
            ConfigError::SubnetOutsideGlobal {
                subnet: net("10.128.0.0/16"),
                global: DEFAULT_GLOBAL_CIDR
            }
        );
        assert_eq!(
            err.to_string(),
            "cluster_subnet 10.128.0.0/16 lies outside global_cidr 10.112.0.0/12"
        );
        // Larger than the global CIDR is outside too.
        c.cluster_subnet = Some(net("10.0.0.0/8"));
        assert!(matches!(
            c.validate(),
            Err(ConfigError::SubnetOutsideGlobal { .. })
        ));
        c.cluster_subnet = Some(net("10.127.0.0/16"));
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn non_canonical_cidrs_in_config_name_the_field() {
        let mut c = NetworkConfig::new("member-1");
        c.cluster_subnet = Some(net("10.112.0.1/16"));
        let err = c.validate().unwrap_err();
        assert!(
            err.to_string()
                .starts_with("cluster_subnet 10.112.0.1/16: host bits"),
            "{err}"
        );
        c.cluster_subnet = None;
        c.global_cidr = net("10.112.0.1/12");
        assert!(matches!(
            c.validate(),
            Err(ConfigError::Cidr {
                field: "global_cidr",
                ..
            })
        ));
    }

    #[test]
    fn node_blocks_must_be_smaller_than_the_cluster_subnet() {
        let mut c = NetworkConfig::new("member-1");
        c.node_block_prefix_len = 16;
        let err = c.validate().unwrap_err();
        assert!(
            matches!(
                err,
                ConfigError::PrefixLen {
                    field: "node_block_prefix_len",
                    value: 16,
                    ..
                }
            ),
            "{err}"
        );
        c.node_block_prefix_len = 31;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PrefixLen { value: 31, .. })
        ));
        // An assigned /20 subnet makes /20 blocks too large but /21 fine.
        c.cluster_subnet = Some(net("10.112.16.0/20"));
        c.node_block_prefix_len = 20;
        assert!(c.validate().is_err());
        c.node_block_prefix_len = 21;
        assert_eq!(c.validate(), Ok(()));
        c.cluster_prefix_len = 8;
        assert!(matches!(
            c.validate(),
            Err(ConfigError::PrefixLen {
                field: "cluster_prefix_len",
                ..
            })
        ));
    }

    #[test]
    fn a_bad_cluster_id_is_named_in_the_error() {
        let err = NetworkConfig::new("Member_1").validate().unwrap_err();
        assert_eq!(
            err.to_string(),
            "cluster_id \"Member_1\" contains 'M'; only lower-case letters, digits and '-' are allowed"
        );
    }

    #[test]
    fn pod_mtu_subtracts_geneve_and_wireguard_per_family() {
        assert_eq!(derive_pod_mtu(1500, IpFamily::V4, IpFamily::V4), Ok(1382));
        assert_eq!(derive_pod_mtu(1500, IpFamily::V6, IpFamily::V4), Ok(1362));
        assert_eq!(derive_pod_mtu(9000, IpFamily::V6, IpFamily::V6), Ok(8862));
        // Exactly at the minimum is fine, one below is not.
        assert_eq!(
            derive_pod_mtu(1280 + 58 + 80, IpFamily::V6, IpFamily::V6),
            Ok(1280)
        );
        let err = derive_pod_mtu(1280 + 58 + 79, IpFamily::V6, IpFamily::V6).unwrap_err();
        assert_eq!(
            err.to_string(),
            "pod MTU derived from underlay_mtu 1417: 1417 - 58 (geneve) - 80 (WireGuard over IPv6) = 1279, \
             below the IPv6 minimum of 1280; raise underlay_mtu or set pod_mtu explicitly"
        );
        assert!(matches!(
            derive_pod_mtu(100, IpFamily::V4, IpFamily::V4),
            Err(MtuError::DerivedTooSmall { derived: 0, .. })
        ));
    }

    #[test]
    fn an_explicit_pod_mtu_wins_but_is_still_checked() {
        let mut m = MtuConfig {
            pod_mtu: Some(8900),
            ..MtuConfig::default()
        };
        assert_eq!(m.pod_mtu(IpFamily::V6), Ok(8900));
        m.pod_mtu = Some(1200);
        assert_eq!(m.pod_mtu(IpFamily::V4), Ok(1200));
        assert_eq!(
            m.pod_mtu(IpFamily::V6),
            Err(MtuError::ExplicitTooSmall {
                value: 1200,
                pod: IpFamily::V6,
                minimum: 1280
            })
        );
        let mut c = NetworkConfig::new("member-1");
        c.global_cidr = net("fd00:112::/32");
        c.cluster_prefix_len = 48;
        c.node_block_prefix_len = 64;
        c.mtu = m;
        assert!(matches!(c.validate(), Err(ConfigError::Mtu(_))));
        c.mtu.pod_mtu = None;
        assert_eq!(c.validate(), Ok(()));
    }

    #[test]
    fn the_gateway_is_the_first_usable_address() {
        assert_eq!(
            NetworkConfig::gateway_of(&net("10.112.0.0/16")),
            Some("10.112.0.1".parse().unwrap())
        );
        assert_eq!(
            NetworkConfig::gateway_of(&net("fd00:112::/48")),
            Some("fd00:112::1".parse().unwrap())
        );
        assert_eq!(NetworkConfig::gateway_of(&net("10.112.0.5/32")), None);
    }
}
