//! Smoke tests of the test-bed itself: each peer starts, does its job, and leaves nothing behind.

mod netns;
mod wireguard;
