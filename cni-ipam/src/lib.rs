//! Global-CIDR address management for Nauti and a chained CNI IPAM plugin.
//!
//! - [`core`]: pure arithmetic and allocation (subnet carving, per-range pools, MAC from IP).
//! - [`store`]: the CNI plugin's file store (flock, two checksummed slots, state scoped to
//!   the boot).
//! - [`cni`]: the CNI 1.1.0 protocol edge (config, environment, results, errors).

pub mod cni;
pub mod core;
pub mod store;

pub use crate::core::{
    AllocError, CarveError, Lease, MacAddr, OwnerId, Pool, RangeError, RangeSetPool, RangeSpec,
    mac_from_ip,
};
