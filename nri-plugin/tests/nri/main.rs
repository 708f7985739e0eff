//! Integration tests of the NRI protocol layer, one module per topic:
//!
//! * `service`: the ttrpc `Plugin` service over a socketpair, driven by a small runtime of our own
//!   (registration, subscription, events, `StateChange`, `UNIMPLEMENTED`, errors, split
//!   `Synchronize`);
//! * `reconnect`: the plugin loop against a listening socket that goes away and comes back;
//! * `containerd`: the plugin against real containerd with NRI (root only).

// Test helpers outside #[test] functions may fail loudly too.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod containerd;
mod reconnect;
mod service;
mod support;
