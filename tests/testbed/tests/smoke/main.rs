//! Smoke tests of the test-bed itself: each peer starts, does its job, and leaves nothing behind.

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod cleanup;
mod containerd;
mod kube;
mod netns;
mod ovn;
mod wireguard;
