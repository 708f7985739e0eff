//! One connection to the runtime, from registration to disconnection.
//!
//! On a connected socket: start the multiplexer, serve the `Plugin` service on connection 1,
//! become a client of the `Runtime` service on connection 2, call `RegisterPlugin`, then let the
//! runtime drive (`Configure`, `Synchronize`, events) until the socket closes.
//!
//! ttrpc-rust's server takes a *listener*, and has no call to serve one connected stream. It gets
//! a listener that yields the connection-1 stream once and then never yields again: an accept loop
//! whose listener ends stops, and the server's shutdown then panics on the missing loop, so the
//! listener must stay open until the server shuts down.

use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use tokio::io::{AsyncRead, AsyncWrite};
use tokio::sync::watch;
use tokio_util::sync::CancellationToken;
use tracing::{debug, info, warn};
use ttrpc::r#async::transport::{Listener, Socket};
use ttrpc::r#async::{Client, Server};

use crate::core::PluginIdentity;
use crate::handler::SandboxHandler;
use crate::mux::{Mux, MuxEnd};
use crate::proto::{api, api_ttrpc};
use crate::service::{PluginService, Progress};

/// The NRI version this plugin reports at registration (the upstream module version whose API
/// `proto/api.proto` follows).
pub const NRI_VERSION: &str = "v0.12.2";

/// A connection that could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum SessionError {
    /// The ttrpc server did not start.
    #[error("cannot start the ttrpc server for the plugin service")]
    Serve(#[source] ttrpc::Error),
    /// `RegisterPlugin` failed or was refused.
    #[error("the runtime refused to register plugin {plugin}")]
    Register {
        /// `<index>-<name>`.
        plugin: String,
        /// The runtime's answer.
        #[source]
        source: ttrpc::Error,
    },
    /// `RegisterPlugin` got no answer in time.
    #[error("the runtime did not answer RegisterPlugin within {0:?}")]
    RegisterTimeout(Duration),
    /// The connection ended before registration completed.
    #[error("the connection ended during registration")]
    EndedDuringRegistration(#[source] MuxEnd),
}

/// How a connection that was set up ended.
#[derive(Debug)]
pub struct SessionOutcome {
    /// How far the runtime got: a connection that reached `Synchronized` worked.
    pub progress: Progress,
    /// Why it ended.
    pub end: MuxEnd,
}

/// Runs one connection on `trunk` until it ends or `cancel` fires.
pub async fn run_session<S, H>(
    trunk: S,
    identity: &PluginIdentity,
    handler: Arc<H>,
    registration_timeout: Duration,
    cancel: &CancellationToken,
) -> Result<SessionOutcome, SessionError>
where
    S: AsyncRead + AsyncWrite + Send + 'static,
    H: SandboxHandler,
{
    let (mut mux, streams) = Mux::start(trunk);
    let service = PluginService::new(handler);
    let progress = service.progress();
    let mut server = Server::new()
        .register_service(api_ttrpc::create_plugin(Arc::new(service)))
        .add_listener(single_stream_listener(streams.plugin_service));
    server.start().await.map_err(SessionError::Serve)?;
    let runtime = api_ttrpc::RuntimeClient::new(Client::new(Socket::new(streams.runtime_service)));

    let result = async {
        let request = api::RegisterPluginRequest {
            plugin_name: identity.name().to_owned(),
            plugin_idx: identity.index().to_owned(),
            NRI_version: NRI_VERSION.to_owned(),
            ..Default::default()
        };
        let context = ttrpc::context::with_duration(registration_timeout);
        tokio::select! {
            registered = tokio::time::timeout(
                registration_timeout,
                runtime.register_plugin(context, &request),
            ) => match registered {
                Ok(Ok(_)) => {}
                Ok(Err(source)) => {
                    return Err(SessionError::Register { plugin: identity.to_string(), source })
                }
                Err(_) => return Err(SessionError::RegisterTimeout(registration_timeout)),
            },
            end = mux.ended() => return Err(SessionError::EndedDuringRegistration(end)),
            () = cancel.cancelled() => {
                return Ok(SessionOutcome { progress: *progress.borrow(), end: MuxEnd::Closed })
            }
        }
        info!(plugin = %identity, "registered with the runtime");
        let mut synchronized = false;
        let end = loop {
            tokio::select! {
                end = mux.ended() => break end,
                () = cancel.cancelled() => break MuxEnd::Closed,
                () = log_progress(progress.clone()), if !synchronized => synchronized = true,
            }
        };
        Ok(SessionOutcome {
            progress: *progress.borrow(),
            end,
        })
    }
    .await;

    mux.close();
    drop(runtime);
    if let Err(err) = server.shutdown().await {
        debug!(error = %err, "ttrpc server shutdown");
    }
    result
}

/// Logs each step of the runtime's progress; returns once synchronized.
async fn log_progress(mut progress: watch::Receiver<Progress>) {
    loop {
        let now = *progress.borrow_and_update();
        match now {
            Progress::Connected => {}
            Progress::Configured => debug!("configured; waiting for Synchronize"),
            Progress::Synchronized => {
                info!("synchronized; receiving pod sandbox events");
                return;
            }
        }
        if progress.changed().await.is_err() {
            warn!("plugin service gone");
            return futures::future::pending().await;
        }
    }
}

/// A listener that yields `stream` once and then waits for ever (see the module documentation).
fn single_stream_listener<T>(stream: T) -> Listener
where
    T: AsyncRead + AsyncWrite + Send + Sync + 'static,
{
    Listener::new(futures::stream::once(async { Ok(stream) }).chain(futures::stream::pending()))
}
