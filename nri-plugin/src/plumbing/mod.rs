//! Pod plumbing: what Nauti does on each sandbox event (DESIGN.md, "Pod creation, step by step").
//!
//! ```text
//!   plan (pure)                         handler (I/O)
//!   ───────────                         ─────────────
//!   skip_reason  host network, opt-out   RunPodSandbox: allocate → LSP → veth → OVS port; answer;
//!                                        then the annotations (annotator, retried)
//!   pod_plan     LSP, NIC, OVS port,     StopPodSandbox: veth and OVS port away
//!                annotations             RemovePodSandbox: + LSP and address released
//!   sync_plan    plumb / verify / release Synchronize: plumb what is missing, release what leaked
//! ```
//!
//! OVN is the source of truth for addresses: the node's allocator is rebuilt from the pod ports
//! of this node at start and at every `Synchronize`, so no address is held twice across restarts.

pub mod annotator;
mod handler;
pub mod plan;
mod settings;

pub use handler::{NautiHandler, PlumbError};
pub use settings::{
    FailurePolicy, PlumbingArgs, PlumbingSettings, SettingsError, runtime_config_flags,
};
