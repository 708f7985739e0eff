//! Cluster slices: the part of the global CIDR each cluster's pods take their addresses from.
//!
//! The hub decides, from the Peers it already has, and decides the same way every time: a
//! cluster that holds a valid slice keeps it (so a restart of the hub moves nobody), a request
//! for a specific slice is granted only if it is free, and otherwise the lowest free slice of the
//! default size is taken. One block at the top of the global CIDR is set aside for clusterset IPs
//! (one virtual IP per exported service, the same in every cluster) and never handed out.

use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};

use ipnet::IpNet;
use nauti_api::IpFamily;
use nauti_api::core::config::{DEFAULT_CLUSTER_PREFIX_LEN, DEFAULT_GLOBAL_CIDR};
use nauti_api::core::net::{CidrError, ensure_canonical, overlaps};
use nauti_api::peer::condition;

/// A slice the hub cannot hand out, or a policy that cannot work. Each variant names the
/// networks involved, so the text can go straight into a `Valid=False` condition message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SliceError {
    /// The slice has host bits set.
    #[error("slice {cidr}: {source}")]
    NotCanonical {
        /// The slice as given.
        cidr: IpNet,
        /// What is wrong with it.
        #[source]
        source: CidrError,
    },
    /// The slice is not of the global CIDR's family.
    #[error("slice {cidr} is not of the global CIDR {global}'s family")]
    FamilyMismatch {
        /// The slice.
        cidr: IpNet,
        /// The global CIDR.
        global: IpNet,
    },
    /// The slice is not inside the global CIDR.
    #[error("slice {cidr} lies outside the global CIDR {global}")]
    OutsideGlobal {
        /// The slice.
        cidr: IpNet,
        /// The global CIDR.
        global: IpNet,
    },
    /// The slice is as large as the global CIDR, which would leave nothing to anyone else.
    #[error("slice {cidr} is the whole global CIDR; ask for a longer prefix")]
    WholeGlobal {
        /// The slice.
        cidr: IpNet,
    },
    /// The slice overlaps the block set aside for clusterset IPs.
    #[error("slice {cidr} overlaps {clusterset}, set aside for clusterset IPs")]
    ClustersetRange {
        /// The slice.
        cidr: IpNet,
        /// The clusterset block.
        clusterset: IpNet,
    },
    /// Another cluster already holds an overlapping slice.
    #[error("slice {cidr} overlaps {other_cidr} held by cluster {other_cluster:?}")]
    Conflict {
        /// The slice.
        cidr: IpNet,
        /// The cluster that holds the overlapping slice.
        other_cluster: String,
        /// Its slice.
        other_cidr: IpNet,
    },
    /// No free slice of the default size is left.
    #[error("no free /{prefix_len} left in the global CIDR {global}")]
    Exhausted {
        /// The global CIDR.
        global: IpNet,
        /// The size asked for.
        prefix_len: u8,
    },
    /// The policy's slice size does not fit inside the global CIDR.
    #[error(
        "slice size /{prefix_len} must be longer than the global CIDR {global} and at most /{max}"
    )]
    PolicyPrefixLen {
        /// The global CIDR.
        global: IpNet,
        /// The configured slice size.
        prefix_len: u8,
        /// The family's longest prefix.
        max: u8,
    },
}

impl SliceError {
    /// The reason of the `Valid=False` condition this error puts on a Peer.
    pub fn condition_reason(&self) -> &'static str {
        match self {
            Self::ClustersetRange { .. } | Self::Conflict { .. } => condition::REASON_CIDR_CONFLICT,
            Self::NotCanonical { .. }
            | Self::FamilyMismatch { .. }
            | Self::OutsideGlobal { .. }
            | Self::WholeGlobal { .. }
            | Self::Exhausted { .. }
            | Self::PolicyPrefixLen { .. } => condition::REASON_INVALID_SPEC,
        }
    }
}

/// The slices one cluster holds (from its `Peer`), as the allocator sees them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SliceClaim {
    /// The cluster's ID.
    pub cluster_id: String,
    /// Its slices.
    pub cidrs: Vec<IpNet>,
}

/// How slices are carved: from which global CIDR, at which size, around which reserved block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SlicePolicy {
    global: IpNet,
    clusterset: IpNet,
    prefix_len: u8,
}

impl Default for SlicePolicy {
    /// `10.112.0.0/12` in /16 slices, `10.127.0.0/16` for clusterset IPs.
    fn default() -> Self {
        let clusterset = top_block(DEFAULT_GLOBAL_CIDR, DEFAULT_CLUSTER_PREFIX_LEN);
        Self {
            global: DEFAULT_GLOBAL_CIDR,
            clusterset,
            prefix_len: DEFAULT_CLUSTER_PREFIX_LEN,
        }
    }
}

impl SlicePolicy {
    /// A policy over `global` handing out `/prefix_len` slices; the clusterset block is
    /// `clusterset` if given, else the top `/prefix_len` of `global`.
    pub fn new(
        global: IpNet,
        prefix_len: u8,
        clusterset: Option<IpNet>,
    ) -> Result<Self, SliceError> {
        ensure_canonical(global).map_err(|source| SliceError::NotCanonical {
            cidr: global,
            source,
        })?;
        let max = IpFamily::of_net(&global).max_prefix_len();
        if prefix_len <= global.prefix_len() || prefix_len > max {
            return Err(SliceError::PolicyPrefixLen {
                global,
                prefix_len,
                max,
            });
        }
        let clusterset = clusterset.unwrap_or_else(|| top_block(global, prefix_len));
        let policy = Self {
            global,
            clusterset,
            prefix_len,
        };
        policy.check_shape(clusterset)?;
        Ok(policy)
    }

    /// The global CIDR.
    pub fn global(&self) -> IpNet {
        self.global
    }

    /// The block set aside for clusterset IPs.
    pub fn clusterset(&self) -> IpNet {
        self.clusterset
    }

    /// The size of a slice handed out without a request.
    pub fn prefix_len(&self) -> u8 {
        self.prefix_len
    }

    /// The slice for `cluster_id`, given every cluster's current claims (its own included).
    ///
    /// A `requested` slice is granted if it is free, else refused (never replaced by another).
    /// Without a request, the cluster keeps its first slice that is still valid, or gets the
    /// lowest free one.
    pub fn assign(
        &self,
        cluster_id: &str,
        requested: Option<IpNet>,
        claims: &[SliceClaim],
    ) -> Result<IpNet, SliceError> {
        let others: Vec<&SliceClaim> = claims
            .iter()
            .filter(|c| c.cluster_id != cluster_id)
            .collect();
        if let Some(cidr) = requested {
            self.check(cidr, others.iter().copied())?;
            return Ok(cidr);
        }
        let own = claims
            .iter()
            .filter(|c| c.cluster_id == cluster_id)
            .flat_map(|c| c.cidrs.iter().copied());
        for cidr in own {
            if self.check(cidr, others.iter().copied()).is_ok() {
                return Ok(cidr);
            }
        }
        self.lowest_free(&others)
    }

    /// Checks claims in order of precedence (oldest Peer first): each one is judged against the
    /// policy and the claims before it that were accepted. Returns one verdict per claim.
    pub fn review(&self, claims: &[SliceClaim]) -> Vec<Result<(), SliceError>> {
        let mut accepted: Vec<&SliceClaim> = Vec::new();
        claims
            .iter()
            .map(|claim| {
                let verdict = claim
                    .cidrs
                    .iter()
                    .try_for_each(|cidr| self.check(*cidr, accepted.iter().copied()));
                if verdict.is_ok() {
                    accepted.push(claim);
                }
                verdict
            })
            .collect()
    }

    /// Whether `cidr` may be held by one cluster while `others` hold theirs.
    pub fn check<'a>(
        &self,
        cidr: IpNet,
        others: impl IntoIterator<Item = &'a SliceClaim>,
    ) -> Result<(), SliceError> {
        self.check_shape(cidr)?;
        if overlaps(&cidr, &self.clusterset) {
            return Err(SliceError::ClustersetRange {
                cidr,
                clusterset: self.clusterset,
            });
        }
        for other in others {
            if let Some(held) = other.cidrs.iter().find(|held| overlaps(&cidr, held)) {
                return Err(SliceError::Conflict {
                    cidr,
                    other_cluster: other.cluster_id.clone(),
                    other_cidr: *held,
                });
            }
        }
        Ok(())
    }

    fn check_shape(&self, cidr: IpNet) -> Result<(), SliceError> {
        ensure_canonical(cidr).map_err(|source| SliceError::NotCanonical { cidr, source })?;
        if IpFamily::of_net(&cidr) != IpFamily::of_net(&self.global) {
            return Err(SliceError::FamilyMismatch {
                cidr,
                global: self.global,
            });
        }
        if !self.global.contains(&cidr) {
            return Err(SliceError::OutsideGlobal {
                cidr,
                global: self.global,
            });
        }
        if cidr.prefix_len() == self.global.prefix_len() {
            return Err(SliceError::WholeGlobal { cidr });
        }
        Ok(())
    }

    /// The lowest `/prefix_len` of the global CIDR that overlaps nothing taken. Each step either
    /// returns or jumps past one taken network, so the loop runs at most once per taken network
    /// plus once.
    fn lowest_free(&self, others: &[&SliceClaim]) -> Result<IpNet, SliceError> {
        let taken: Vec<IpNet> = others
            .iter()
            .flat_map(|c| c.cidrs.iter().copied())
            .chain(std::iter::once(self.clusterset))
            .collect();
        let step = block_size(self.global, self.prefix_len);
        let end = to_u128(self.global.broadcast());
        let mut start = to_u128(self.global.network());
        for _ in 0..=taken.len() {
            let candidate = net_at(self.global, start, self.prefix_len);
            match taken
                .iter()
                .filter(|t| overlaps(&candidate, t))
                .map(|t| to_u128(t.broadcast()))
                .max()
            {
                None => return Ok(candidate),
                Some(last_taken) => {
                    // Next aligned block after the taken network's last address.
                    let next = last_taken
                        .checked_add(1)
                        .and_then(|n| n.div_ceil(step).checked_mul(step));
                    match next {
                        Some(n) if n <= end => start = n,
                        _ => break,
                    }
                }
            }
        }
        Err(SliceError::Exhausted {
            global: self.global,
            prefix_len: self.prefix_len,
        })
    }
}

/// The last `/prefix_len` block of `global`.
fn top_block(global: IpNet, prefix_len: u8) -> IpNet {
    let start = to_u128(global.broadcast()) & !(block_size(global, prefix_len) - 1);
    net_at(global, start, prefix_len)
}

/// Number of addresses in a `/prefix_len` of `global`'s family (at least 1).
fn block_size(global: IpNet, prefix_len: u8) -> u128 {
    let bits = IpFamily::of_net(&global)
        .max_prefix_len()
        .saturating_sub(prefix_len);
    1u128.checked_shl(u32::from(bits)).unwrap_or(u128::MAX)
}

fn to_u128(ip: IpAddr) -> u128 {
    match ip {
        IpAddr::V4(v4) => u128::from(u32::from(v4)),
        IpAddr::V6(v6) => u128::from(v6),
    }
}

/// The `/prefix_len` network at `start` in `global`'s family (`start` comes from that family's
/// range, so the conversion to IPv4 keeps every bit).
fn net_at(global: IpNet, start: u128, prefix_len: u8) -> IpNet {
    let addr = match global {
        IpNet::V4(_) => IpAddr::V4(Ipv4Addr::from(u32::try_from(start).unwrap_or(u32::MAX))),
        IpNet::V6(_) => IpAddr::V6(Ipv6Addr::from(start)),
    };
    IpNet::new(addr, prefix_len).map_or(global, |n| n.trunc())
}

#[cfg(test)]
#[path = "slices_tests.rs"]
mod tests;
