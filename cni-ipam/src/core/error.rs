//! Errors of the pure core. Each names the input that is wrong.

use std::net::IpAddr;

use ipnet::IpNet;

use super::owner::OwnerId;

/// A range definition that cannot be allocated from.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RangeError {
    /// Fewer than two host bits: nothing left after network and broadcast.
    #[error("subnet {subnet} is too small to allocate from")]
    TooSmall {
        /// The subnet.
        subnet: IpNet,
    },
    /// `10.0.0.1/24` where `10.0.0.0/24` was meant.
    #[error("subnet {subnet} has host bits set; the network address is {network}")]
    HostBitsSet {
        /// The subnet as written.
        subnet: IpNet,
        /// What it should have been.
        network: IpNet,
    },
    /// An address of the other family.
    #[error("{field} {ip} is not of the same address family as subnet {subnet}")]
    FamilyMismatch {
        /// Which field (`rangeStart`, `rangeEnd`, `gateway`).
        field: &'static str,
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// `rangeStart`, `rangeEnd` or `gateway` outside the subnet.
    #[error("{field} {ip} is not in subnet {subnet}")]
    OutsideSubnet {
        /// Which field.
        field: &'static str,
        /// The address.
        ip: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// `rangeEnd` below `rangeStart`.
    #[error("rangeEnd {end} is before rangeStart {start}")]
    EndBeforeStart {
        /// First address.
        start: IpAddr,
        /// Last address.
        end: IpAddr,
    },
    /// The gateway is the network or broadcast address.
    #[error("gateway {gateway} is the network or broadcast address of {subnet}")]
    GatewayNotUsable {
        /// The gateway.
        gateway: IpAddr,
        /// The subnet.
        subnet: IpNet,
    },
    /// A node block outside its cluster subnet.
    #[error("node block {block} is not inside cluster subnet {subnet}")]
    BlockOutsideSubnet {
        /// The block.
        block: IpNet,
        /// The cluster subnet.
        subnet: IpNet,
    },
    /// An exclusion of the other family.
    #[error("exclude {exclude} is not of the same address family as subnet {subnet}")]
    ExcludeFamilyMismatch {
        /// The exclusion.
        exclude: IpNet,
        /// The subnet.
        subnet: IpNet,
    },
    /// Two ranges of one range set share addresses.
    #[error("ranges {a} and {b} overlap")]
    Overlap {
        /// First range (`start-end`).
        a: String,
        /// Second range.
        b: String,
    },
    /// A range set mixes IPv4 and IPv6.
    #[error("range set mixes address families ({a} and {b})")]
    MixedFamilies {
        /// First range.
        a: String,
        /// Second range.
        b: String,
    },
    /// A range set with no range in it.
    #[error("range set is empty")]
    EmptySet,
}

/// An allocation request that cannot be served.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum AllocError {
    /// Every address of the range is in use or reserved.
    #[error("no free address in range {range}")]
    Exhausted {
        /// The range (`start-end`, comma-separated for a range set).
        range: String,
    },
    /// The address is not in the range.
    #[error("address {ip} is not in range {range}")]
    OutOfRange {
        /// The address.
        ip: IpAddr,
        /// The range.
        range: String,
    },
    /// The address is the network, broadcast or gateway address, or excluded.
    #[error("address {ip} is reserved (network, broadcast, gateway or excluded)")]
    Reserved {
        /// The address.
        ip: IpAddr,
    },
    /// Another owner holds the address.
    #[error("address {ip} is already allocated to another owner ({holder})")]
    Taken {
        /// The address.
        ip: IpAddr,
        /// Who holds it.
        holder: OwnerId,
    },
    /// The owner already holds a different address of this range.
    #[error("owner {owner} already holds {current}, not {requested}")]
    OwnerHoldsOther {
        /// The owner.
        owner: OwnerId,
        /// Its address.
        current: IpAddr,
        /// The address asked for.
        requested: IpAddr,
    },
}

/// A subnet that cannot be carved.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CarveError {
    /// The child prefix is shorter than the parent's or longer than the family allows.
    #[error("prefix length /{prefix_len} cannot be carved from {parent}")]
    BadPrefix {
        /// The parent.
        parent: IpNet,
        /// The asked-for length.
        prefix_len: u8,
    },
    /// A requested subnet that is not inside the parent (or of the other family).
    #[error("requested subnet {requested} is not inside {parent}")]
    RequestOutside {
        /// The request.
        requested: IpNet,
        /// The parent.
        parent: IpNet,
    },
    /// `10.112.3.0/16` where `10.112.0.0/16` was meant.
    #[error("requested subnet {requested} has host bits set; the network address is {network}")]
    RequestHostBitsSet {
        /// The request.
        requested: IpNet,
        /// What it should have been.
        network: IpNet,
    },
    /// A requested subnet that overlaps one already handed out.
    #[error("requested subnet {requested} overlaps {taken}, which is already in use")]
    RequestOverlaps {
        /// The request.
        requested: IpNet,
        /// What it overlaps.
        taken: IpNet,
    },
    /// No free subnet of that size is left.
    #[error("no free /{prefix_len} left in {parent}")]
    Full {
        /// The parent.
        parent: IpNet,
        /// The asked-for length.
        prefix_len: u8,
    },
}
