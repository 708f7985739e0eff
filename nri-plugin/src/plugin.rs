//! The plugin's life: connect, run a session, reconnect with backoff when the runtime goes away.

use std::sync::Arc;
use std::time::Duration;

use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

use crate::core::{Backoff, PluginIdentity};
use crate::handler::{SandboxHandler, error_chain};
use crate::mux::MuxEnd;
use crate::service::Progress;
use crate::session::{SessionError, run_session};
use crate::socket::{self, NriSocket, SocketError};

/// How the plugin reaches the runtime and presents itself.
#[derive(Clone, Debug)]
pub struct PluginConfig {
    /// Name and index to register under.
    pub identity: PluginIdentity,
    /// Where the runtime is.
    pub socket: NriSocket,
    /// Delays between connection attempts.
    pub backoff: Backoff,
    /// How long to wait for the runtime to answer `RegisterPlugin`.
    pub registration_timeout: Duration,
}

impl Default for PluginConfig {
    fn default() -> Self {
        Self {
            identity: PluginIdentity::default(),
            socket: NriSocket::Path(socket::DEFAULT_SOCKET_PATH.into()),
            backoff: Backoff::default(),
            registration_timeout: Duration::from_secs(5),
        }
    }
}

/// Why the plugin stopped (other than being asked to).
#[derive(Debug, thiserror::Error)]
pub enum PluginError {
    /// The inherited socket could not be used.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The single connection of a launched plugin failed to set up.
    #[error(transparent)]
    Session(#[from] SessionError),
}

/// Runs the plugin until `shutdown` fires.
///
/// With [`NriSocket::Path`], every disconnection (a containerd restart) is followed by a new
/// connection after a backoff delay; each new connection registers again, and the runtime
/// synchronises the plugin again. The backoff starts over after a connection that synchronised,
/// so a quick restart is followed quickly. With [`NriSocket::Inherited`] the plugin runs one
/// connection and returns when it ends, as the runtime that launched it expects.
pub async fn run<H: SandboxHandler>(
    config: PluginConfig,
    handler: Arc<H>,
    shutdown: CancellationToken,
) -> Result<(), PluginError> {
    match &config.socket {
        NriSocket::Inherited(fd) => {
            info!(plugin = %config.identity, fd, "using the socket the runtime handed over");
            let stream = socket::adopt_inherited(*fd)?;
            let outcome = run_session(
                stream,
                &config.identity,
                handler.clone(),
                config.registration_timeout,
                &shutdown,
            )
            .await;
            handler.disconnected().await;
            let outcome = outcome?;
            info!(reason = %outcome.end, "connection to the runtime ended; exiting");
            Ok(())
        }
        NriSocket::Path(path) => {
            let mut backoff = config.backoff.clone();
            let mut attempt: u64 = 0;
            while !shutdown.is_cancelled() {
                attempt += 1;
                match socket::connect(path).await {
                    Ok(stream) => {
                        info!(plugin = %config.identity, socket = %path.display(), attempt, "connected");
                        let session = run_session(
                            stream,
                            &config.identity,
                            handler.clone(),
                            config.registration_timeout,
                            &shutdown,
                        )
                        .await;
                        handler.disconnected().await;
                        match session {
                            Ok(outcome) => {
                                if outcome.progress == Progress::Synchronized {
                                    backoff.reset();
                                    attempt = 0;
                                }
                                if !matches!(outcome.end, MuxEnd::Closed) {
                                    warn!(reason = %outcome.end, progress = ?outcome.progress, "lost the runtime");
                                }
                            }
                            Err(err) => {
                                warn!(error = %error_chain(&err), attempt, "connection failed")
                            }
                        }
                    }
                    Err(err) => {
                        warn!(error = %error_chain(&err), attempt, "cannot reach the runtime")
                    }
                }
                if shutdown.is_cancelled() {
                    break;
                }
                let delay = backoff.next_delay();
                info!(
                    delay_ms = u64::try_from(delay.as_millis()).unwrap_or(u64::MAX),
                    "reconnecting after a delay"
                );
                tokio::select! {
                    () = tokio::time::sleep(delay) => {}
                    () = shutdown.cancelled() => break,
                }
            }
            info!("stopped");
            Ok(())
        }
    }
}
