//! The containerd NRI plugin that gives every pod its Nauti NIC.
//!
//! This crate speaks NRI (containerd's Node Resource Interface) natively:
//!
//! * [`core`]: what needs no I/O — frame codec of the multiplexed socket, event masks, multi-part
//!   `Synchronize` assembly, plugin identity, backoff, and the plain [`PodSandbox`] and
//!   [`Container`] types;
//! * [`proto`] (generated from `proto/api.proto`) and [`convert`] (wire → plain types);
//! * [`mux`]: the multiplexed socket as two in-process byte streams;
//! * [`service`]: the ttrpc `Plugin` service over a [`SandboxHandler`];
//! * [`session`]: one connection (register, serve, end); [`plugin`]: reconnection with backoff;
//! * [`metrics`]: Prometheus metrics and readiness, fed by a wrapper around the handler;
//! * [`plumbing`]: the pod plumbing, a [`SandboxHandler`]; [`wiring`] builds it from settings;
//! * [`cli`]: the `nauti-nri` command; [`launched`]: a plugin containerd launches itself.

pub mod cli;
pub mod convert;
pub mod core;
pub mod handler;
pub mod launched;
pub mod metrics;
pub mod mux;
pub mod nic;
pub mod plugin;
pub mod plumbing;
pub mod proto;
pub mod service;
pub mod session;
pub mod socket;
pub mod wiring;

pub use crate::core::{Container, ContainerState, PodSandbox, RuntimeInfo};
pub use crate::handler::{HandlerError, LoggingHandler, SandboxHandler};
pub use crate::plugin::{PluginConfig, PluginError, run};
