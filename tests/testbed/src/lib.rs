//! The real-peer test-bed of Nauti.
//!
//! Every integration test of the product runs against the programs an operator runs: containerd with
//! NRI, kube-apiserver on etcd, OVN/OVS on the userspace datapath, WireGuard in userspace. This crate
//! starts them in network namespaces and per-test folders, and tears each down on drop, also when the
//! test panics. Every guard keeps its logs in the test's [`TestDir`]; a failing test prints them.
//!
//! The peers themselves are installed by `make peers` (`tests/peers/`); [`peers`] finds them.

pub mod cluster_bed;
pub mod containerd;
mod error;
pub mod forward;
pub mod kube_api;
pub mod names;
pub mod netns;
pub mod node_bed;
pub mod ovn;
pub mod peers;
pub mod pki;
pub mod process;
pub mod root;
pub mod seed_demo;
pub mod testdir;
pub mod traffic;
pub mod wireguard;

pub use containerd::{Containerd, Pod, PodSpec};
pub use error::{Error, Result};
pub use kube_api::{KubeApi, KubeApiOptions};
pub use netns::Netns;
pub use process::Daemon;
pub use testdir::TestDir;

/// The repository's top folder (for `deploy/`, the built binaries, scripts).
pub fn repo_root() -> std::path::PathBuf {
    let here = std::path::Path::new(env!("CARGO_MANIFEST_DIR"));
    // This crate sits at `<repo>/tests/testbed`.
    here.ancestors()
        .nth(2)
        .map(std::path::Path::to_path_buf)
        .unwrap_or_else(|| here.to_path_buf())
}
