//! crossdns: DNS for services exported across clusters.
//!
//! It answers two zones from the ServiceImports and imported EndpointSlices that octopus keeps
//! in the member cluster it runs in (the contract is on [`nauti_api::mcs::MANAGED_BY_NAUTI`]):
//! `hyperos.local` (`<svc>.<ns>.svc.hyperos.local`, the ready global endpoints of a service in
//! every cluster) and `clusterset.local`, as KEP-1645's DNS specification describes it.
//!
//! ```text
//!   ServiceImport / EndpointSlice watches ──► kube (views) ──► core::Index ◄── dns::Handler ◄── udp (per socket)
//!                                                                                          ◄── tcp (bounded)
//!                                                                  └──► metrics ──► /metrics /readyz
//! ```

pub mod cli;
pub mod core;
pub mod coredns;
pub mod dns;
pub mod kube;
pub mod metrics;
pub mod tcp;
pub mod udp;
mod wire;

use std::net::SocketAddr;
use std::sync::{Arc, RwLock};
use std::time::Duration;

use nauti_api::daemon::{shutdown_on_signals, start_endpoints};
use tokio::net::{TcpListener, UdpSocket};
use tokio_util::sync::CancellationToken;
use tracing::{info, warn};

pub use self::cli::{Args, Command};
use self::core::Index;
use self::dns::Handler;
use self::metrics::Metrics;

/// Why crossdns cannot start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum CrossdnsError {
    /// The log filter does not parse.
    #[error(transparent)]
    Log(#[from] nauti_api::daemon::LogError),
    /// No usable Kubernetes client configuration.
    #[error("cannot load a Kubernetes client configuration from {source_of}: {reason}")]
    KubeConfig {
        /// Where we looked.
        source_of: String,
        /// What failed.
        reason: String,
    },
    /// An address cannot be bound.
    #[error("cannot listen on {flag} {addr}")]
    Bind {
        /// The flag naming the address.
        flag: &'static str,
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
    /// `wire-coredns` or `unwire-coredns` failed.
    #[error(transparent)]
    Coredns(#[from] coredns::WireError),
}

/// Runs crossdns until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), CrossdnsError> {
    args.log.init()?;
    if let Some(command) = &args.command {
        return run_command(&args, command).await;
    }
    let shutdown = shutdown_on_signals().map_err(CrossdnsError::Signals)?;
    run_with(args, shutdown).await
}

/// `count` UDP sockets on `addr` (one per CPU for 0), sharing it with SO_REUSEPORT: each is
/// served by one task ([`udp::serve`]), so a single socket would cap the answers per second at
/// what one core does.
fn udp_sockets(addr: SocketAddr, count: usize) -> std::io::Result<Vec<UdpSocket>> {
    let count = match count {
        0 => std::thread::available_parallelism().map_or(1, usize::from),
        n => n,
    };
    let mut sockets = Vec::with_capacity(count);
    // The first socket fixes the port when `addr` asks for any.
    let mut addr = addr;
    for _ in 0..count {
        let socket = socket2::Socket::new(
            socket2::Domain::for_address(addr),
            socket2::Type::DGRAM,
            Some(socket2::Protocol::UDP),
        )?;
        socket.set_reuse_port(true)?;
        socket.set_nonblocking(true)?;
        socket.bind(&addr.into())?;
        let socket = UdpSocket::from_std(socket.into())?;
        addr = socket.local_addr()?;
        sockets.push(socket);
    }
    Ok(sockets)
}

/// Runs one of the one-shot commands.
async fn run_command(args: &Args, command: &Command) -> Result<(), CrossdnsError> {
    let client = kube::connect(args.kubeconfig.as_deref()).await?;
    match command {
        Command::WireCoredns {
            forward_to,
            corefile,
        } => coredns::wire(&client, &corefile.location(), *forward_to).await?,
        Command::UnwireCoredns { corefile } => {
            coredns::unwire(&client, &corefile.location()).await?
        }
    };
    Ok(())
}

/// Runs crossdns until `shutdown` is cancelled.
pub async fn run_with(args: Args, shutdown: CancellationToken) -> Result<(), CrossdnsError> {
    let metrics = Arc::new(Metrics::new());
    let _endpoints = start_endpoints(args.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .map_err(|source| CrossdnsError::Bind {
            flag: "--metrics-addr",
            addr: args.metrics_addr,
            source,
        })?;
    let index = Arc::new(RwLock::new(Index::new()));
    let bind = |source| CrossdnsError::Bind {
        flag: "--dns-addr",
        addr: args.dns_addr,
        source,
    };
    // Listen before the first sync: until then queries get SERVFAIL, not silence.
    let udp = udp_sockets(args.dns_addr, args.udp_sockets).map_err(bind)?;
    let tcp = TcpListener::bind(args.dns_addr).await.map_err(bind)?;
    let handler = Handler::new(index.clone(), metrics.clone(), args.max_udp_payload);
    let mut udp_tasks = tokio::task::JoinSet::new();
    for socket in udp {
        udp_tasks.spawn(udp::serve(socket, handler.clone(), shutdown.clone()));
    }
    let limits = tcp::TcpLimits {
        max_connections: args.max_tcp_connections.max(1),
        idle: Duration::from_secs(args.tcp_idle_seconds.max(1)),
        max_query: tcp::MAX_TCP_QUERY,
    };
    let tcp_task = tokio::spawn(tcp::serve(
        tcp,
        handler,
        metrics.clone(),
        limits,
        shutdown.clone(),
    ));
    info!(addr = %args.dns_addr, "answering DNS over UDP and TCP");

    let client = kube::connect(args.kubeconfig.as_deref()).await?;
    kube::spawn_watches(&client, &index, &metrics, &shutdown);

    shutdown.cancelled().await;
    if let Err(error) = tcp_task.await {
        warn!(%error, "the TCP listener stopped with an error");
    }
    udp_tasks.join_all().await;
    info!("stopped");
    Ok(())
}
