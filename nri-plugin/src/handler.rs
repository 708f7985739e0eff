//! The seam between the NRI protocol and what Nauti does with pods.
//!
//! The protocol layer (this crate's `service`, `session` and `plugin` modules) calls a
//! [`SandboxHandler`]; the pod-plumbing layer implements it. [`LoggingHandler`] only logs, for
//! `--log-only`: a plugin that is connected to the runtime and plumbs nothing.

use std::error::Error as StdError;

use async_trait::async_trait;
use tracing::info;

use crate::core::{Container, PodSandbox, RuntimeInfo};

/// Any error of the layer below, kept for its `Display` chain.
pub type BoxError = Box<dyn StdError + Send + Sync + 'static>;

/// What Nauti does on the pod sandbox events of the runtime.
///
/// Calls come from the runtime one at a time per connection, but a reconnection may overlap the
/// tail of an old call, so implementations must be safe to call concurrently and every method must
/// be idempotent (the runtime may repeat an event after a restart, and `synchronize` replays the
/// whole state after every (re)connection).
///
/// The runtime waits for each answer at most `RuntimeInfo::request_timeout` (containerd: 2 s by
/// default) and drops the plugin's connection when an answer is late.
#[async_trait]
pub trait SandboxHandler: Send + Sync + 'static {
    /// The runtime configured the plugin: `config` is the plugin's drop-in configuration (often
    /// empty). An error refuses the registration; the plugin reconnects later.
    async fn configure(&self, runtime: &RuntimeInfo, config: &str) -> Result<(), HandlerError> {
        let _ = (runtime, config);
        Ok(())
    }

    /// The runtime's whole current state, after every (re)connection: plumb what is missing,
    /// release what leaked while the plugin was away.
    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<(), HandlerError>;

    /// A pod sandbox was created (its primary network is up). An error fails the sandbox.
    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError>;

    /// A pod sandbox is being stopped.
    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError>;

    /// A pod sandbox is being removed.
    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError>;

    /// The runtime is shutting down; the connection closes next.
    async fn shutdown(&self) {}

    /// The connection to the runtime ended (events stop until the next `synchronize`).
    async fn disconnected(&self) {}
}

/// Why a handler could not handle an event. The variant picks the ttrpc status code the runtime
/// sees (`crate::service`); the message, with its whole source chain, tells the operator why the
/// sandbox failed.
#[derive(Debug, thiserror::Error)]
pub enum HandlerError {
    /// The pod itself is unusable (e.g. a malformed `nauti.io/*` annotation). `INVALID_ARGUMENT`.
    #[error("pod {pod}: {reason}")]
    InvalidPod {
        /// `namespace/name`.
        pod: String,
        /// What is wrong with it.
        reason: String,
    },
    /// Something the handler needs is not reachable now (OVN, the API server). `UNAVAILABLE`.
    #[error("{what} is unavailable")]
    Unavailable {
        /// What could not be reached.
        what: String,
        /// Why.
        #[source]
        source: BoxError,
    },
    /// Anything else. `INTERNAL`.
    #[error("{context}")]
    Failed {
        /// What the handler was doing.
        context: String,
        /// Why it failed.
        #[source]
        source: BoxError,
    },
}

impl HandlerError {
    /// A [`HandlerError::Failed`] with `context` and its cause.
    pub fn failed(context: impl Into<String>, source: impl Into<BoxError>) -> Self {
        Self::Failed {
            context: context.into(),
            source: source.into(),
        }
    }
}

/// `err` and each of its sources, joined with `": "`.
pub fn error_chain(err: &(dyn StdError + 'static)) -> String {
    let mut text = err.to_string();
    let mut source = err.source();
    while let Some(cause) = source {
        text.push_str(": ");
        text.push_str(&cause.to_string());
        source = cause.source();
    }
    text
}

/// A handler that logs every event and does nothing else.
#[derive(Clone, Copy, Debug, Default)]
pub struct LoggingHandler;

fn log_pod(event: &'static str, pod: &PodSandbox) {
    info!(
        event,
        pod.ns = %pod.namespace,
        pod.name = %pod.name,
        pod.uid = %pod.uid,
        sandbox = %pod.id,
        netns = pod.netns_path.as_deref().unwrap_or("-"),
        "pod sandbox event"
    );
}

#[async_trait]
impl SandboxHandler for LoggingHandler {
    async fn configure(&self, runtime: &RuntimeInfo, config: &str) -> Result<(), HandlerError> {
        info!(
            runtime = %runtime.name,
            version = %runtime.version,
            nri_version = %runtime.nri_version,
            request_timeout_ms = runtime.request_timeout.as_millis(),
            config_bytes = config.len(),
            "configured by the runtime"
        );
        Ok(())
    }

    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<(), HandlerError> {
        info!(
            pods = pods.len(),
            containers = containers.len(),
            "synchronized"
        );
        for pod in &pods {
            log_pod("Synchronize", pod);
        }
        Ok(())
    }

    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        log_pod("RunPodSandbox", &pod);
        Ok(())
    }

    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        log_pod("StopPodSandbox", &pod);
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        log_pod("RemovePodSandbox", &pod);
        Ok(())
    }

    async fn shutdown(&self) {
        info!("runtime is shutting down");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_chain_names_every_cause() {
        let io = std::io::Error::other("ovsdb connection refused");
        let err = HandlerError::Unavailable {
            what: "OVN northbound database".into(),
            source: io.into(),
        };
        assert_eq!(
            error_chain(&err),
            "OVN northbound database is unavailable: ovsdb connection refused"
        );
        let invalid = HandlerError::InvalidPod {
            pod: "default/nginx".into(),
            reason: "annotation nauti.io/enabled is not a boolean".into(),
        };
        assert_eq!(
            error_chain(&invalid),
            "pod default/nginx: annotation nauti.io/enabled is not a boolean"
        );
    }
}
