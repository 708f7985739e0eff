//! The pure core: address arithmetic, subnet carving and allocation. No I/O.
//!
//! The NRI plugin uses this directly, with OVN as the source of truth:
//! [`Pool::rebuild`] from the (owner, address) pairs found in OVN, then [`Pool::allocate`] and
//! [`Pool::release`] per pod. The CNI plugin wraps the same types with a file store.
//!
//! ```
//! use nauti_ipam::core::{
//!     DEFAULT_GLOBAL_CIDR, OwnerId, Pool, RangeSpec, carve_cluster_subnet, carve_node_block,
//! };
//!
//! // The hub gives the cluster a /16; the cluster controller gives this node a /24 of it.
//! let cluster = carve_cluster_subnet(DEFAULT_GLOBAL_CIDR, 16, &[], None)?;
//! let block = carve_node_block(cluster, 24, &[], None)?;
//! let gateway = "10.112.0.1".parse()?; // first usable address: the CNF pod
//! let spec = RangeSpec::for_node_block(cluster, block, Some(gateway))?;
//!
//! // After a restart: rebuild from what OVN says is allocated, then serve new pods.
//! let known = [(OwnerId::new("pod-uid-1", "eth-nauti"), "10.112.0.7".parse()?)];
//! let (mut pool, conflicts) = Pool::rebuild(spec, known);
//! assert!(conflicts.is_empty());
//! let pod2 = OwnerId::new("pod-uid-2", "eth-nauti");
//! let lease = pool.allocate(pod2)?;
//! assert_eq!(lease.ipnet().to_string(), "10.112.0.2/16"); // .0 network, .1 gateway
//! assert_eq!(lease.mac().to_string(), "0a:58:0a:70:00:02");
//! assert_eq!(pool.allocate(pod2)?, lease); // idempotent
//! assert_eq!(pool.release(pod2), Some(lease.address));
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

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
