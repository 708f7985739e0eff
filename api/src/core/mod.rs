//! The pure part of the API: formats and rules over plain data, no kube, no I/O.
//!
//! Everything that decides whether a value is acceptable lives here, so the CRD types, the
//! binaries' flag parsing and the tests share one implementation of each rule.

pub mod annotations;
pub mod backoff;
pub mod config;
pub mod mac;
pub mod names;
pub mod net;
pub mod port;
pub mod wgkey;
