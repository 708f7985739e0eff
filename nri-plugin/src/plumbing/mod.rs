//! Pod plumbing: what Nauti does on each sandbox event (DESIGN.md, "Pod creation, step by step").
//!
//! ```text
//!   pure                                  I/O
//!   ────                                  ───
//!   plan      skip_reason, pod_plan,      handler    RunPodSandbox: allocate → port name →
//!             port_name_for, node_network            (LSP ‖ (veth pair → (pod end ‖ OVS port)));
//!   actions   reconcile_plan → Plumb,                answer; then the annotations (annotator)
//!             Replumb, Reannotate,                   StopPodSandbox: OVS port and veth away
//!             Release, Unplug                        RemovePodSandbox: + LSP, then the address
//!                                         reconcile  after Synchronize and periodically: the
//!                                                    plan's actions, each to completion
//!                                         backends   NB, OVS, netlink behind traits (fake.rs)
//! ```
//!
//! OVN is the source of truth for addresses: the node's allocator is rebuilt from the pod ports
//! of this node whenever the node block is (re)installed and at every reconciliation, so no
//! address is held twice across restarts; an address is freed only once OVN confirms its port
//! is gone.

mod actions;
pub mod annotator;
pub mod backends;
mod error;
pub mod events;
#[cfg(test)]
mod fake;
mod handler;
pub mod node_block;
pub mod plan;
mod reconcile;
mod settings;
mod steps;

pub use actions::{Action, NodeSnapshot, reconcile_plan};
pub use error::PlumbError;
pub use handler::{NautiHandler, Parts, answer_deadline};
pub use settings::{
    FailurePolicy, PlumbingArgs, PlumbingSettings, SettingsError, runtime_config_flags,
};
