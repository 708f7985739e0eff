//! The node the tests run on (the test-bed's [`NodeBed`] with this crate's binary) and what the
//! tests read back from it.

use nauti_api::PodNetwork;
pub use nauti_testbed::node_bed::{NODE_BLOCK, NodeBed as Bed, WAIT, settle};

/// A node running this crate's `nauti-nri` with `extra_args`.
pub async fn start(name: &str, extra_args: &[&str]) -> Bed {
    Bed::start(name, env!("CARGO_BIN_EXE_nauti-nri").into(), extra_args)
        .await
        .unwrap()
}

/// A node with every peer and nothing started in place of the plugin.
pub async fn start_without_plugin(name: &str) -> Bed {
    Bed::start_without_plugin(name, env!("CARGO_BIN_EXE_nauti-nri").into(), &[])
        .await
        .unwrap()
}

/// The pod's `nauti.io/*` annotations as the API server has them now.
pub async fn network_now(bed: &Bed, name: &str) -> Option<PodNetwork> {
    PodNetwork::try_from_annotations(&bed.annotations_of(name).await.unwrap()).unwrap()
}

/// The pod's `nauti.io/*` annotations once the plugin has written them (they follow the sandbox's
/// answer); panics if they do not appear within [`WAIT`].
pub async fn annotated(bed: &Bed, name: &str) -> PodNetwork {
    let mut found = None;
    bed.eventually(async || {
        found = network_now(bed, name).await;
        found.is_some()
    })
    .await;
    found.unwrap_or_else(|| panic!("pod {name}: no nauti.io annotations after {WAIT:?}"))
}

/// The `inet` line and the MAC of `eth-nauti` inside a container.
pub fn nic_in(bed: &Bed, container: &str) -> (String, String) {
    nauti_testbed::node_bed::nic_in(&bed.ctrd, container).unwrap()
}
