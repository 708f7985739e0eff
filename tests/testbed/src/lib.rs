//! The real-peer test-bed of Nauti.
//!
//! Every integration test of the product runs against the programs an operator runs: containerd with
//! NRI, kube-apiserver on etcd, OVN/OVS on the userspace datapath, WireGuard in userspace. This crate
//! starts them in network namespaces and per-test folders, and tears each down on drop, also when the
//! test panics. Every guard keeps its logs in the test's [`TestDir`]; a failing test prints them.
//!
//! The peers themselves are installed by `make peers` (`tests/peers/`); [`peers`] finds them.

mod error;
pub mod names;
pub mod netns;
pub mod peers;
pub mod process;
pub mod root;
pub mod testdir;

pub use error::{Error, Result};
pub use netns::Netns;
pub use process::Daemon;
pub use testdir::TestDir;
