//! Everything about NRI that needs no I/O: framing, events, synchronisation assembly, identity,
//! the backoff (shared, from `nauti-api`) and the plain pod types. The adapters around it (`mux`, `service`, `session`) do the
//! talking.

pub mod event;
pub mod frame;
pub mod identity;
pub mod pod;
pub mod sync;

pub use event::{Event, EventMask, SANDBOX_EVENTS};
pub use identity::{IdentityError, PluginIdentity};
pub use nauti_api::core::backoff::Backoff;
pub use pod::{Container, ContainerState, PodSandbox, RuntimeInfo};
pub use sync::{SyncAssembly, SyncStep};
