//! The pure core: address arithmetic, subnet carving and allocation. No I/O.
//!
//! The NRI plugin uses this directly, with OVN as the source of truth:
//! [`Pool::rebuild`] from the (owner, address) pairs found in OVN, then [`Pool::allocate`] and
//! [`Pool::release`] per pod. The CNI plugin wraps the same types with a file store.

pub mod addr;
pub mod bitmap;
pub mod carve;
pub mod error;
pub mod owner;
pub mod pool;
pub mod range;
pub mod range_set;

pub use addr::{Family, MacAddr, mac_from_ip};
pub use carve::{
    DEFAULT_CLUSTER_PREFIX, DEFAULT_GLOBAL_CIDR, DEFAULT_NODE_PREFIX, carve, carve_cluster_subnet,
    carve_node_block, find_overlaps, overlaps,
};
pub use error::{AllocError, CarveError, RangeError};
pub use owner::OwnerId;
pub use pool::{Lease, Pool, PoolStats, RestoreConflict, StateBytes};
pub use range::{MAX_RANGE_LEN, RangeSpec};
pub use range_set::RangeSetPool;
