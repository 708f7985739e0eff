//! State for the CNI plugin: one folder per network under `dataDir`.
//!
//! The in-memory allocator for the NRI plugin needs no store of its own: it is
//! [`crate::core::Pool::rebuild`] from the allocations found in OVN, the source of truth.

mod file;
mod format;
pub mod host_local;

pub use file::{DEFAULT_DATA_DIR, DEFAULT_LOCK_TIMEOUT, FileStore};
pub use format::{Record, StoreState};

use std::path::PathBuf;

/// What can go wrong with the file store.
#[derive(Debug, thiserror::Error)]
pub enum StoreError {
    /// A file system operation failed.
    #[error("{op} {path}: {source}")]
    Io {
        /// What was being done (`create`, `lock`, `read`, `write`, `rename`, `sync`).
        op: &'static str,
        /// On which path.
        path: PathBuf,
        /// The OS error.
        #[source]
        source: std::io::Error,
    },
    /// Another process held the lock for longer than the timeout.
    #[error("store {path} is locked by another process (waited {waited_ms} ms)")]
    Busy {
        /// The lock file.
        path: PathBuf,
        /// How long we waited.
        waited_ms: u128,
    },
    /// The state file does not parse.
    #[error("state file {path} line {line}: {reason}")]
    Corrupt {
        /// The state file.
        path: PathBuf,
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
}
