//! The `nauti-nri` command line: flags (each with an environment twin), logging, signals.

use std::net::SocketAddr;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use clap::Parser;
use nauti_api::daemon::{LogArgs, LogError, LogSink, shutdown_on_signals, start_endpoints};
use tracing::info;

use crate::core::{Backoff, IdentityError, PluginIdentity, identity};
use crate::handler::LoggingHandler;
use crate::launched::RuntimeConfigured;
use crate::metrics::{Instrumented, Metrics};
use crate::plugin::{self, PluginConfig, PluginError};
use crate::plumbing::{PlumbingArgs, SettingsError};
use crate::socket::{self, NriSocket, SocketError};
use crate::wiring::{WiringError, plumbing_handler};

/// The Nauti NRI plugin: connects to containerd's NRI socket and handles pod sandbox events.
#[derive(Clone, Debug, Parser)]
// A later flag replaces an earlier one: the runtime's plugin configuration is appended to the
// command line of a launched plugin (`crate::launched`).
#[command(name = "nauti-nri", version, about, args_override_self = true)]
pub struct Args {
    /// containerd's NRI socket. Ignored when containerd launched the plugin itself
    /// (NRI_PLUGIN_SOCKET set).
    #[arg(long, env = "NAUTI_NRI_SOCKET", default_value = socket::DEFAULT_SOCKET_PATH)]
    pub nri_socket: PathBuf,

    /// Name to register under (NRI_PLUGIN_NAME wins when containerd launched the plugin).
    #[arg(long, env = "NAUTI_NRI_PLUGIN_NAME", default_value = identity::DEFAULT_NAME)]
    pub plugin_name: String,

    /// Two-digit index to register under; plugins are called in ascending order
    /// (NRI_PLUGIN_IDX wins when containerd launched the plugin).
    #[arg(long, env = "NAUTI_NRI_PLUGIN_INDEX", default_value = identity::DEFAULT_INDEX)]
    pub plugin_index: String,

    /// Longest delay between attempts to reach containerd, in milliseconds.
    #[arg(long, env = "NAUTI_NRI_RECONNECT_MAX_MS", default_value_t = 10_000)]
    pub reconnect_max_ms: u64,

    /// How long to wait for containerd to answer the registration, in milliseconds.
    #[arg(
        long,
        env = "NAUTI_NRI_REGISTRATION_TIMEOUT_MS",
        default_value_t = 5_000
    )]
    pub registration_timeout_ms: u64,

    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`. The plugin runs
    /// in the node's network namespace, so the default is loopback: set the node's own address
    /// (e.g. from the downward API's `status.hostIP`) to let a scraper off the node reach it, and
    /// keep it off ports the node uses.
    #[arg(long, env = "NAUTI_METRICS_ADDR", default_value = "127.0.0.1:9465")]
    pub metrics_addr: SocketAddr,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,

    /// Only log sandbox events and plumb nothing (to try the connection to the runtime).
    #[arg(long, env = "NAUTI_NRI_LOG_ONLY")]
    pub log_only: bool,

    /// How pods get their second NIC.
    #[command(flatten)]
    pub plumbing: PlumbingArgs,
}

/// Bad settings, or a plugin that stopped with an error.
#[derive(Debug, thiserror::Error)]
pub enum CliError {
    /// The name or index would be refused by the runtime.
    #[error("invalid plugin identity")]
    Identity(#[from] IdentityError),
    /// The inherited socket variable is unusable.
    #[error(transparent)]
    Socket(#[from] SocketError),
    /// The log filter does not parse.
    #[error(transparent)]
    Log(#[from] LogError),
    /// The metrics address cannot be bound.
    #[error("cannot listen on --metrics-addr {addr}")]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// The plugin stopped.
    #[error(transparent)]
    Plugin(#[from] PluginError),
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// A plumbing setting cannot work.
    #[error(transparent)]
    Settings(#[from] SettingsError),
    /// The plumbing could not start (API server configuration, OVN, OVS).
    #[error("pod plumbing cannot start")]
    Plumbing(#[from] WiringError),
}

impl Args {
    /// The plugin configuration, with the variables a launching runtime sets
    /// (`NRI_PLUGIN_SOCKET`, `NRI_PLUGIN_NAME`, `NRI_PLUGIN_IDX`) taking precedence.
    pub fn plugin_config(&self) -> Result<PluginConfig, CliError> {
        self.plugin_config_with(|name| std::env::var(name).ok().filter(|v| !v.is_empty()))
    }

    /// [`Args::plugin_config`] with the environment given as a lookup function.
    pub fn plugin_config_with(
        &self,
        env: impl Fn(&str) -> Option<String>,
    ) -> Result<PluginConfig, CliError> {
        let socket = match env(socket::PLUGIN_SOCKET_ENV) {
            Some(value) => NriSocket::Inherited(socket::parse_inherited(&value)?),
            None => NriSocket::Path(self.nri_socket.clone()),
        };
        let launched = matches!(socket, NriSocket::Inherited(_));
        let pick = |var: &str, flag: &str| match env(var) {
            Some(value) if launched => value,
            _ => flag.to_owned(),
        };
        let identity = PluginIdentity::new(
            pick(socket::PLUGIN_NAME_ENV, &self.plugin_name),
            pick(socket::PLUGIN_IDX_ENV, &self.plugin_index),
        )?;
        let max = Duration::from_millis(self.reconnect_max_ms);
        Ok(PluginConfig {
            identity,
            socket,
            backoff: Backoff::new(Duration::from_millis(200).min(max), max),
            registration_timeout: Duration::from_millis(self.registration_timeout_ms),
        })
    }

    /// Installs the global tracing subscriber (text or JSON, to stderr or `--log-file`).
    pub fn init_tracing(&self) -> Result<LogSink, CliError> {
        Ok(self.log.init()?)
    }
}

/// Runs `nauti-nri` until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), CliError> {
    let log_sink = args.init_tracing()?;
    let config = args.plugin_config()?;
    let shutdown = shutdown_on_signals().map_err(CliError::Signals)?;
    info!(plugin = %config.identity, socket = ?config.socket, "starting");
    let metrics = Arc::new(Metrics::new());
    let _endpoints = start_endpoints(args.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .map_err(|source| CliError::MetricsBind {
            addr: args.metrics_addr,
            source,
        })?;
    if args.log_only {
        // Nothing to reconcile: ready once synchronised.
        metrics.set_reconciled(true);
        let handler = Instrumented::new(LoggingHandler, metrics);
        plugin::run(config, Arc::new(handler), shutdown).await?;
        return Ok(());
    }
    if matches!(config.socket, NriSocket::Inherited(_)) {
        // Launched by the runtime: the settings arrive with its configuration, in Configure.
        let handler =
            RuntimeConfigured::new(std::env::args_os().collect(), metrics.clone(), log_sink);
        plugin::run(
            config,
            Arc::new(Instrumented::new(handler, metrics)),
            shutdown,
        )
        .await?;
        return Ok(());
    }
    let settings = args.plumbing.clone().settings()?;
    let handler = plumbing_handler(settings, metrics.clone()).await?;
    plugin::run(
        config,
        Arc::new(Instrumented::new(handler, metrics)),
        shutdown,
    )
    .await?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::collections::HashMap;

    use super::*;

    fn args(extra: &[&str]) -> Args {
        Args::try_parse_from(["nauti-nri", "--log-only"].iter().chain(extra)).unwrap()
    }

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let map: HashMap<String, String> = vars
            .iter()
            .map(|(k, v)| ((*k).to_owned(), (*v).to_owned()))
            .collect();
        move |name| map.get(name).cloned()
    }

    #[test]
    fn defaults_connect_to_the_standard_socket_as_10_nauti() {
        let config = args(&[]).plugin_config_with(env_of(&[])).unwrap();
        assert_eq!(
            config.socket,
            NriSocket::Path("/var/run/nri/nri.sock".into())
        );
        assert_eq!(config.identity.to_string(), "10-nauti");
    }

    #[test]
    fn the_endpoint_listens_on_loopback_unless_told_otherwise() {
        // In the host's network namespace, 0.0.0.0 would expose it on every node address.
        assert_eq!(
            args(&[]).metrics_addr,
            "127.0.0.1:9465".parse::<SocketAddr>().unwrap()
        );
        assert_eq!(
            args(&["--metrics-addr", "198.18.0.1:9465"]).metrics_addr,
            "198.18.0.1:9465".parse::<SocketAddr>().unwrap()
        );
    }

    #[test]
    fn flags_set_socket_name_and_index() {
        let config = args(&[
            "--nri-socket",
            "/tmp/x.sock",
            "--plugin-name",
            "nauti-dev",
            "--plugin-index",
            "42",
        ])
        .plugin_config_with(env_of(&[]))
        .unwrap();
        assert_eq!(config.socket, NriSocket::Path("/tmp/x.sock".into()));
        assert_eq!(config.identity.to_string(), "42-nauti-dev");
    }

    #[test]
    fn a_launching_runtime_sets_socket_name_and_index() {
        let env = env_of(&[
            ("NRI_PLUGIN_SOCKET", "3"),
            ("NRI_PLUGIN_NAME", "nauti"),
            ("NRI_PLUGIN_IDX", "05"),
        ]);
        let config = args(&["--plugin-index", "42"])
            .plugin_config_with(env)
            .unwrap();
        assert_eq!(config.socket, NriSocket::Inherited(3));
        assert_eq!(config.identity.to_string(), "05-nauti");
    }

    #[test]
    fn runtime_names_without_its_socket_are_ignored() {
        let env = env_of(&[("NRI_PLUGIN_IDX", "05")]);
        let config = args(&[]).plugin_config_with(env).unwrap();
        assert_eq!(config.identity.index(), "10");
    }

    #[test]
    fn bad_index_and_bad_descriptor_are_refused() {
        assert!(matches!(
            args(&["--plugin-index", "7"]).plugin_config_with(env_of(&[])),
            Err(CliError::Identity(IdentityError::BadIndex(_)))
        ));
        assert!(matches!(
            args(&[]).plugin_config_with(env_of(&[("NRI_PLUGIN_SOCKET", "x")])),
            Err(CliError::Socket(SocketError::BadDescriptor { .. }))
        ));
    }

    #[test]
    fn json_logs_on_request() {
        assert_eq!(
            args(&["--log-format", "json"]).log.log_format,
            nauti_api::daemon::LogFormat::Json
        );
        assert!(Args::try_parse_from(["nauti-nri", "--log-only", "--log-format", "xml"]).is_err());
    }

    #[test]
    fn plumbing_needs_a_node_and_a_cluster() {
        // Parsing succeeds (a launched plugin gets them later, in Configure); the settings do not.
        let bare = Args::try_parse_from(["nauti-nri"]).unwrap();
        let err = bare.plumbing.settings().unwrap_err().to_string();
        assert!(err.contains("--cluster-id is required"), "{err}");
        let no_node = Args::try_parse_from(["nauti-nri", "--cluster-id", "east"]).unwrap();
        let err = no_node.plumbing.settings().unwrap_err().to_string();
        assert!(err.contains("--node-name is required"), "{err}");
        let full =
            Args::try_parse_from(["nauti-nri", "--node-name", "node-1", "--cluster-id", "east"])
                .unwrap();
        let settings = full.plumbing.settings().unwrap();
        assert_eq!(settings.logical_switch, "nauti-east");
        // 1500 underlay - 58 geneve - 60 WireGuard.
        assert_eq!(settings.mtu, 1382);
    }

    #[test]
    fn ovsdb_tls_takes_all_three_files_or_none() {
        let base = ["nauti-nri", "--node-name", "n", "--cluster-id", "east"];
        let parse = |extra: &[&str]| {
            Args::try_parse_from(base.iter().chain(extra))
                .unwrap()
                .plumbing
                .settings()
        };
        assert_eq!(parse(&[]).unwrap().ovsdb_tls, None);
        let files = parse(&[
            "--ovn-nb",
            "ssl:ovn-central.example:6641",
            "--ovsdb-private-key",
            "/etc/ovn/key.pem",
            "--ovsdb-certificate",
            "/etc/ovn/cert.pem",
            "--ovsdb-ca-cert",
            "/etc/ovn/ca.pem",
        ])
        .unwrap()
        .ovsdb_tls
        .unwrap();
        assert_eq!(files.ca_cert, PathBuf::from("/etc/ovn/ca.pem"));
        let err = parse(&["--ovsdb-certificate", "/etc/ovn/cert.pem"]).unwrap_err();
        let text = err.to_string();
        assert!(
            text.contains("--ovsdb-private-key") && text.contains("--ovsdb-ca-cert"),
            "{text}"
        );
    }

    #[test]
    fn bad_plumbing_settings_are_named() {
        let parse = |extra: &[&str]| {
            let base = ["nauti-nri", "--node-name", "n", "--cluster-id"];
            Args::try_parse_from(base.iter().chain(extra))
                .unwrap()
                .plumbing
                .settings()
        };
        let err = parse(&["East"]).unwrap_err().to_string();
        assert!(
            err.contains("--cluster-id") && err.contains("East"),
            "{err}"
        );
        let err = parse(&["east", "--pod-ifname", "a-very-long-interface"]).unwrap_err();
        assert!(err.to_string().contains("--pod-ifname"), "{err}");
        let err = parse(&["east", "--global-cidr", "10.112.0.1/12"]).unwrap_err();
        assert!(err.to_string().contains("10.112.0.0/12"), "{err}");
        let err = parse(&["east", "--underlay-mtu", "600"]).unwrap_err();
        assert!(err.to_string().contains("MTU"), "{err}");
    }
}
