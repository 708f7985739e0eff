//! The `crossdns` command line: flags, each with an environment twin.

use std::net::SocketAddr;
use std::path::PathBuf;

use clap::{Parser, Subcommand};
use nauti_api::daemon::LogArgs;

/// DNS for services exported across clusters: answers `hyperos.local` and `clusterset.local`
/// from the ServiceImports and imported EndpointSlices of the cluster it runs in.
#[derive(Clone, Debug, Parser)]
#[command(name = "crossdns", version, about)]
// hickory-server logs every request at info; that belongs in metrics, not in the log.
#[command(mut_arg("log", |a| a.default_value("info,hickory_server=warn")))]
pub struct Args {
    /// Kubeconfig file; without it the in-cluster service account or $KUBECONFIG is used.
    #[arg(long, env = "NAUTI_KUBECONFIG", global = true)]
    pub kubeconfig: Option<PathBuf>,

    /// Address to answer DNS on, over UDP and TCP.
    #[arg(long, env = "NAUTI_DNS_ADDR", default_value = "0.0.0.0:53")]
    pub dns_addr: SocketAddr,

    /// Largest UDP answer in bytes, whatever buffer a client advertises (RFC 6891; 1232 is
    /// the DNS flag day 2020 value that avoids IP fragmentation).
    #[arg(long, env = "NAUTI_MAX_UDP_PAYLOAD", default_value_t = 1232)]
    pub max_udp_payload: u16,

    /// UDP sockets bound to --dns-addr with SO_REUSEPORT, each received on by its own task
    /// (the kernel spreads clients across them); 0: one per CPU.
    #[arg(long, env = "NAUTI_UDP_SOCKETS", default_value_t = 0)]
    pub udp_sockets: usize,

    /// A TCP connection that sends no whole query for this many seconds (after the previous
    /// answer), or does not take an answer within it, is closed.
    #[arg(long, env = "NAUTI_TCP_IDLE_SECONDS", default_value_t = 5)]
    pub tcp_idle_seconds: u64,

    /// TCP connections held at once; one more is closed as soon as it is accepted. Each holds
    /// at most one query (4 KiB) and one answer in memory.
    #[arg(long, env = "NAUTI_MAX_TCP_CONNECTIONS", default_value_t = 256)]
    pub max_tcp_connections: usize,

    /// Address of the HTTP endpoint serving `/metrics`, `/healthz` and `/readyz`.
    #[arg(long, env = "NAUTI_METRICS_ADDR", default_value = "0.0.0.0:9465")]
    pub metrics_addr: SocketAddr,

    /// Logging.
    #[command(flatten)]
    pub log: LogArgs,

    /// Without a command, crossdns serves DNS.
    #[command(subcommand)]
    pub command: Option<Command>,
}

/// One-shot commands: edit the cluster's CoreDNS configuration and exit.
#[derive(Clone, Debug, Subcommand)]
pub enum Command {
    /// Adds a marked server block to the CoreDNS Corefile forwarding hyperos.local and
    /// clusterset.local to crossdns (idempotent; a block with another address is replaced).
    /// CoreDNS's `reload` plugin picks it up.
    WireCoredns {
        /// crossdns's address as CoreDNS reaches it: its Service's cluster IP, with the port
        /// (53 if omitted).
        #[arg(long, env = "NAUTI_FORWARD_TO", value_parser = parse_forward_to)]
        forward_to: SocketAddr,
        /// Where the Corefile is.
        #[command(flatten)]
        corefile: CorefileArgs,
    },
    /// Removes the block `wire-coredns` added; the rest of the Corefile is left as it is.
    UnwireCoredns {
        /// Where the Corefile is.
        #[command(flatten)]
        corefile: CorefileArgs,
    },
}

/// The ConfigMap holding the cluster's Corefile.
#[derive(Clone, Debug, clap::Args)]
pub struct CorefileArgs {
    /// Namespace of CoreDNS's ConfigMap.
    #[arg(long, env = "NAUTI_COREDNS_NAMESPACE", default_value = "kube-system")]
    pub coredns_namespace: String,
    /// Name of CoreDNS's ConfigMap (the RBAC of deploy/rbac/crossdns.yaml allows only
    /// `coredns`).
    #[arg(long, env = "NAUTI_COREDNS_CONFIGMAP", default_value = "coredns")]
    pub coredns_configmap: String,
    /// The ConfigMap key holding the Corefile.
    #[arg(long, env = "NAUTI_COREDNS_KEY", default_value = "Corefile")]
    pub coredns_key: String,
}

impl CorefileArgs {
    /// Where the Corefile is.
    pub fn location(&self) -> crate::coredns::CorefileLocation {
        crate::coredns::CorefileLocation {
            namespace: self.coredns_namespace.clone(),
            name: self.coredns_configmap.clone(),
            key: self.coredns_key.clone(),
        }
    }
}

/// `10.96.0.53`, `10.96.0.53:5353`, `fd00::53` or `[fd00::53]:53`.
fn parse_forward_to(text: &str) -> Result<SocketAddr, String> {
    if let Ok(address) = text.parse::<SocketAddr>() {
        return Ok(address);
    }
    text.parse::<std::net::IpAddr>()
        .map(|ip| SocketAddr::new(ip, 53))
        .map_err(|_| format!("{text:?} is not an IP address, with or without a port"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_flag_has_an_environment_twin() {
        use clap::CommandFactory as _;
        let command = Args::command();
        let args = command.get_arguments().chain(
            command
                .get_subcommands()
                .flat_map(clap::Command::get_arguments),
        );
        for arg in args {
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
        assert_eq!(args.max_tcp_connections, 256);
        assert_eq!(args.tcp_idle_seconds, 5);
    }

    #[test]
    fn wire_coredns_takes_an_address_with_or_without_port() {
        let args = Args::try_parse_from([
            "crossdns",
            "wire-coredns",
            "--forward-to",
            "10.96.0.53",
            "--kubeconfig",
            "/k",
        ])
        .unwrap();
        let Some(Command::WireCoredns {
            forward_to,
            corefile,
        }) = args.command
        else {
            panic!("not wire-coredns: {:?}", args.command);
        };
        assert_eq!(forward_to, "10.96.0.53:53".parse().unwrap());
        assert_eq!(args.kubeconfig.as_deref(), Some(std::path::Path::new("/k")));
        let location = corefile.location();
        assert_eq!(
            (
                location.namespace.as_str(),
                location.name.as_str(),
                location.key.as_str()
            ),
            ("kube-system", "coredns", "Corefile")
        );
        for (text, expected) in [
            ("10.96.0.53:5353", "10.96.0.53:5353"),
            ("fd00::53", "[fd00::53]:53"),
            ("[fd00::53]:54", "[fd00::53]:54"),
        ] {
            assert_eq!(parse_forward_to(text).unwrap().to_string(), expected);
        }
        assert!(parse_forward_to("crossdns.nauti-system").is_err());
    }
}
