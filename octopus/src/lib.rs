//! Hub and member tunnels (WireGuard) and multi-cluster service sync.
//!
//! - [`core`]: the decisions (slices, Peer review, topology, peer diff, MTU), pure and
//!   unit-tested.

pub mod core;
