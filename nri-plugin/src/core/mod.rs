//! Everything about NRI that needs no I/O: framing, events, synchronisation assembly, identity,
//! backoff and the plain pod types. The adapters around it (`mux`, `service`, `session`) do the
//! talking.

pub mod backoff;
pub mod event;
pub mod frame;
pub mod identity;
pub mod pod;
pub mod sync;

pub use backoff::Backoff;
pub use event::{Event, EventMask, SANDBOX_EVENTS};
pub use identity::{IdentityError, PluginIdentity};
pub use pod::{Container, ContainerState, PodSandbox, RuntimeInfo};
pub use sync::{SyncAssembly, SyncStep};
