//! Smoke tests of the test-bed itself: each peer starts, does its job, and leaves nothing behind.

mod cleanup;
mod kube;
mod netns;
mod wireguard;
