//! Settings for a plugin that containerd launches itself.
//!
//! containerd starts such a plugin with no arguments and no environment beyond the NRI
//! variables, and passes it its configuration file (`<plugin_config_path>/<index>-<name>.conf`)
//! in `Configure`. So the pod plumbing is set up there: the file's keys are flags
//! ([`runtime_config_flags`]) that win over the process's own command line and environment, and
//! the connections to the API server, OVN and OVS are made before the plugin answers.
//!
//! The launched process's stderr leads nowhere, so `log-file` is honoured from the configuration
//! too (from then on); the log filter and format stay those of the command line and environment.

use std::ffi::OsString;
use std::sync::Arc;

use async_trait::async_trait;
use clap::Parser;
use tokio::sync::OnceCell;
use tracing::info;

use nauti_api::daemon::LogSink;

use crate::cli::Args;
use crate::core::{Container, PodSandbox, RuntimeInfo};
use crate::handler::{HandlerError, SandboxHandler};
use crate::metrics::Metrics;
use crate::plumbing::{NautiHandler, runtime_config_flags};
use crate::wiring::plumbing_handler;

/// A [`SandboxHandler`] that becomes a [`NautiHandler`] on `Configure`.
pub struct RuntimeConfigured {
    argv: Vec<OsString>,
    metrics: Arc<Metrics>,
    log_sink: LogSink,
    handler: OnceCell<NautiHandler>,
}

impl std::fmt::Debug for RuntimeConfigured {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RuntimeConfigured")
            .field("configured", &self.handler.initialized())
            .finish_non_exhaustive()
    }
}

impl RuntimeConfigured {
    /// `argv` is the process's command line (program name first).
    pub fn new(argv: Vec<OsString>, metrics: Arc<Metrics>, log_sink: LogSink) -> Self {
        Self {
            argv,
            metrics,
            log_sink,
            handler: OnceCell::new(),
        }
    }

    /// The command line with the configuration's flags appended (later flags win).
    fn args_with(&self, config: &str) -> Result<Args, HandlerError> {
        let invalid = |source: crate::handler::BoxError| HandlerError::Failed {
            context: "invalid plugin configuration".into(),
            source,
        };
        let flags = runtime_config_flags(config).map_err(|e| invalid(e.into()))?;
        let argv = self
            .argv
            .iter()
            .cloned()
            .chain(flags.into_iter().map(OsString::from));
        Args::try_parse_from(argv).map_err(|e| invalid(e.to_string().into()))
    }

    fn plumbing(&self) -> Result<&NautiHandler, HandlerError> {
        self.handler.get().ok_or_else(|| HandlerError::Unavailable {
            what: "pod plumbing".into(),
            source: "the runtime has not configured the plugin yet".into(),
        })
    }
}

#[async_trait]
impl SandboxHandler for RuntimeConfigured {
    async fn configure(&self, runtime: &RuntimeInfo, config: &str) -> Result<(), HandlerError> {
        if self.handler.initialized() {
            return Ok(());
        }
        let args = self.args_with(config)?;
        if let Some(path) = &args.log.log_file {
            self.log_sink
                .log_to_file(path)
                .map_err(|e| HandlerError::failed("invalid plugin configuration", e))?;
        }
        let settings = args
            .plumbing
            .settings()
            .map_err(|e| HandlerError::failed("invalid plugin configuration", e))?;
        info!(runtime = %runtime.name, node = %settings.node_name, "configured by the runtime");
        let handler = plumbing_handler(settings, self.metrics.clone())
            .await
            .map_err(|e| HandlerError::failed("pod plumbing cannot start", e))?;
        handler.configure(runtime, config).await?;
        // A concurrent configure that won the race set an equivalent handler.
        let _ = self.handler.set(handler);
        Ok(())
    }

    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<(), HandlerError> {
        self.plumbing()?.synchronize(pods, containers).await
    }

    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        self.plumbing()?.run_pod_sandbox(pod).await
    }

    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        self.plumbing()?.stop_pod_sandbox(pod).await
    }

    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        self.plumbing()?.remove_pod_sandbox(pod).await
    }

    async fn disconnected(&self) {
        if let Some(handler) = self.handler.get() {
            handler.disconnected().await;
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn launched(argv: &[&str]) -> RuntimeConfigured {
        RuntimeConfigured::new(
            argv.iter().map(OsString::from).collect(),
            Arc::new(Metrics::new()),
            LogSink::default(),
        )
    }

    #[test]
    fn the_configuration_completes_and_overrides_the_command_line() {
        let plugin = launched(&["nauti-nri", "--node-name", "from-flag", "--mtu", "1400"]);
        let args = plugin
            .args_with("node-name: from-config\ncluster-id: east\n")
            .unwrap();
        let settings = args.plumbing.settings().unwrap();
        assert_eq!(settings.node_name, "from-config");
        assert_eq!(settings.cluster_id, "east");
        assert_eq!(settings.mtu, 1400);
    }

    #[test]
    fn unknown_keys_and_bad_values_are_named() {
        let plugin = launched(&["nauti-nri"]);
        let err = crate::handler::error_chain(&plugin.args_with("node-nmae: x").unwrap_err());
        assert!(
            err.contains("invalid plugin configuration") && err.contains("--node-nmae"),
            "{err}"
        );
        let err = crate::handler::error_chain(&plugin.args_with("mtu: big").unwrap_err());
        assert!(err.contains("--mtu"), "{err}");
    }

    #[tokio::test]
    async fn missing_settings_refuse_the_configuration() {
        let plugin = launched(&["nauti-nri"]);
        let runtime = RuntimeInfo::default();
        let err = plugin
            .configure(&runtime, "cluster-id: east")
            .await
            .unwrap_err();
        let text = crate::handler::error_chain(&err);
        assert!(text.contains("--node-name is required"), "{text}");
        let err = plugin
            .run_pod_sandbox(PodSandbox::default())
            .await
            .unwrap_err();
        assert!(crate::handler::error_chain(&err).contains("not configured"));
    }
}
