//! The `crossdns` command line: flags, each with an environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::Parser;
use nauti_api::daemon::LogArgs;

/// DNS for services exported across clusters: answers `hyperos.local` and `clusterset.local`
/// from the ServiceImports and imported EndpointSlices of the cluster it runs in.
#[derive(Clone, Debug, Parser)]
#[command(name = "crossdns", version, about)]
// hickory-server logs every request at info; that belongs in metrics, not in the log.
#[command(mut_arg("log", |a| a.default_value("info,hickory_server=warn")))]
pub struct Args {
    /// Kubeconfig file; without it the in-cluster service account or $KUBECONFIG is used.
    #[arg(long, env = "NAUTI_KUBECONFIG")]
    pub kubeconfig: Option<PathBuf>,

    /// Address to answer DNS on, over UDP and TCP.
    #[arg(long, env = "NAUTI_DNS_ADDR", default_value = "0.0.0.0:53")]
    pub dns_addr: SocketAddr,

    /// Largest UDP answer in bytes, whatever buffer a client advertises (RFC 6891; 1232 is
    /// the DNS flag day 2020 value that avoids IP fragmentation).
    #[arg(long, env = "NAUTI_MAX_UDP_PAYLOAD", default_value_t = 1232)]
    pub max_udp_payload: u16,

    /// A TCP connection that sends no query for this many seconds is closed.
    #[arg(long, env = "NAUTI_TCP_IDLE_SECONDS", default_value_t = 5)]
    pub tcp_idle_seconds: u64,

    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "NAUTI_METRICS_ADDR", default_value = "0.0.0.0:9465")]
    pub metrics_addr: SocketAddr,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_environment_twin() {
        use clap::CommandFactory as _;
        for arg in Args::command().get_arguments() {
            let id = arg.get_id().as_str();
            if matches!(id, "help" | "version") {
                continue;
            }
            let env = arg.get_env().map(|e| e.to_string_lossy().into_owned());
            assert!(
                env.as_deref().is_some_and(|e| e.starts_with("NAUTI_")),
                "--{id}: {env:?}"
            );
        }
    }

    #[test]
    fn hickory_request_logs_are_off_by_default() {
        let args = Args::try_parse_from(["crossdns"]).unwrap();
        assert_eq!(args.log.log, "info,hickory_server=warn");
        assert_eq!(args.dns_addr.port(), 53);
        assert_eq!(args.max_udp_payload, 1232);
    }
}
