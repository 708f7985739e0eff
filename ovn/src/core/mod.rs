//! The pure part of the OVSDB client: no sockets, no tokio, no clocks.
//!
//! Everything here works on bytes and plain data so that it can be tested (and fuzzed) without a
//! server. The tokio adapter in [`crate::client`] only moves bytes and calls into this module.

pub mod cache;
pub mod error;
pub mod framing;
pub mod lb;
pub mod nb;
pub mod ops;
pub mod router;
pub mod rpc;
pub mod schema;
pub mod value;
pub mod vswitch;
