//! What every Nauti daemon shares: log setup ([`LogArgs`]), shutdown on SIGTERM/SIGINT
//! ([`shutdown_on_signals`]), the `/metrics`, `/healthz`, `/readyz` endpoint ([`serve`]) and
//! leader election on a Lease ([`election`]); caches of watched objects ([`watch`]); the
//! Deployment that owns what a daemon creates ([`owner`]).
//!
//! Only built with the `daemon` feature, so that crates using the shared types alone do not pull
//! in an HTTP server.

pub mod election;
mod endpoints;
mod logging;
pub mod owner;
mod signals;
pub mod watch;

pub use endpoints::{Health, ListenerLimits, serve, serve_with_limits, start_endpoints};
pub use logging::{LogArgs, LogError, LogFormat, LogSink, SinkWriter};
pub use signals::shutdown_on_signals;

/// Aborts a background task when dropped, so a daemon that returns early (an error during
/// start-up) does not leave, say, its endpoint listener behind in an embedding process.
#[derive(Debug)]
pub struct AbortOnDrop(pub tokio::task::JoinHandle<()>);

impl Drop for AbortOnDrop {
    fn drop(&mut self) {
        self.0.abort();
    }
}
