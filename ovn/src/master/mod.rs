//! `nauti-ovnmaster`, the cluster controller: it keeps the cluster's logical switch and the
//! gateway (CNF) port in the OVN northbound database, gives each Node a block of the cluster
//! subnet (annotation `nauti.io/node-cidr`), and removes the ports of pods that no longer exist.
//!
//! ```text
//!   Node/Pod metadata watches ──► caches ──┐
//!   Lease ──► leader: watch<bool> ─────────┤      core (pure): desired rows, block plan,
//!   resync timer, GC due times ────────────┴─► reconcile ──► GC decision
//!                                              │   ├─ ovsdb: ensure switch + CNF port, remove ports
//!                                              │   └─ kube: patch Node annotations, events
//!   /metrics /healthz /readyz ◄── Metrics ◄────┘
//! ```
//!
//! Reconcile works from the whole current state every time (the reason it runs is not passed
//! in), so a missed or repeated trigger is harmless. Only the leader writes; standbys keep their
//! caches warm and take over when the lease is released (SIGTERM) or expires.

mod blocks;
pub mod cli;
pub mod core;
mod gc;
pub mod kube;
pub mod metrics;

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use ::kube::runtime::events::{Event, EventType, Recorder, Reporter};
use k8s_openapi::api::core::v1::{Node, ObjectReference};
use nauti_api::core::backoff::Backoff;
use nauti_api::daemon::election;
use nauti_api::daemon::{shutdown_on_signals, start_endpoints};
use tokio::sync::{Notify, watch};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use self::core::{ClusterNetwork, GcTracker, SetupError};
use self::kube::Caches;
use self::metrics::Metrics;
use crate::client::{Client, ClientConfig, Endpoint, Northbound, TlsFiles};

pub use self::cli::{Args, Settings};

/// Name under which the controller reports events.
const CONTROLLER: &str = "nauti-ovnmaster";
/// Quiet time after a watch event before reconciling, so a burst of changes costs one pass.
const DEBOUNCE: Duration = Duration::from_millis(100);
/// First and largest delay between reconciles that failed.
const RETRY_MIN: Duration = Duration::from_millis(500);
const RETRY_MAX: Duration = Duration::from_secs(30);
/// Largest delay between attempts to reach the northbound database at startup.
const NB_RETRY_MAX: Duration = Duration::from_secs(30);

/// Why the controller cannot start or had to stop.
#[derive(Debug, thiserror::Error)]
pub enum MasterError {
    /// The network settings are unusable.
    #[error(transparent)]
    Setup(#[from] SetupError),
    /// `--ovn-nb` is not an OVS remote we speak.
    #[error("--ovn-nb {value:?} is not unix:PATH, tcp:HOST:PORT or ssl:HOST:PORT")]
    BadEndpoint {
        /// The value given.
        value: String,
    },
    /// The TLS flags for an `ssl:` northbound database are incomplete.
    #[error(transparent)]
    Tls(#[from] crate::client::TlsError),
    /// A flag out of range.
    #[error("{flag} {reason}")]
    BadFlag {
        /// The flag.
        flag: &'static str,
        /// What is wrong.
        reason: String,
    },
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
    /// The metrics address cannot be bound.
    #[error("cannot listen on --metrics-addr {addr}")]
    MetricsBind {
        /// The address.
        addr: SocketAddr,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// Signal handlers could not be installed.
    #[error("cannot install signal handlers")]
    Signals(#[source] std::io::Error),
}

/// What one reconcile pass could not do; the pass is retried with backoff.
#[derive(Debug, thiserror::Error)]
pub enum ReconcileError {
    /// The northbound database refused or is unreachable.
    #[error("OVN northbound: {0}")]
    Ovsdb(#[from] crate::client::Error),
    /// A Kubernetes call failed.
    #[error("{action}: {source}")]
    Kube {
        /// What we were doing.
        action: String,
        /// The client's error.
        #[source]
        source: ::kube::Error,
    },
}

impl ReconcileError {
    /// A stable label for the failure metric.
    pub fn metric_label(&self) -> &'static str {
        match self {
            Self::Ovsdb(_) => "ovsdb_error",
            Self::Kube { .. } => "kube_error",
        }
    }

    fn kube(action: impl Into<String>) -> impl FnOnce(::kube::Error) -> Self {
        let action = action.into();
        move |source| Self::Kube { action, source }
    }
}

/// Everything a reconcile pass needs.
pub(crate) struct Context {
    network: ClusterNetwork,
    nb: Northbound,
    client: ::kube::Client,
    caches: Caches,
    leader: watch::Receiver<bool>,
    metrics: Arc<Metrics>,
    recorder: Recorder,
    gc_grace: Duration,
}

impl Context {
    /// Checked before every write: a replica that lost the lease mid-pass stops writing.
    fn is_leader(&self) -> bool {
        *self.leader.borrow()
    }

    fn nodes(&self) -> ::kube::Api<Node> {
        ::kube::Api::all(self.client.clone())
    }

    /// Publishes an event; failing to is logged, never fatal.
    async fn event(
        &self,
        regarding: &ObjectReference,
        kind: EventType,
        reason: &str,
        note: String,
    ) {
        let event = Event {
            type_: kind,
            reason: reason.to_owned(),
            note: Some(note),
            action: reason.to_owned(),
            secondary: None,
        };
        if let Err(error) = self.recorder.publish(&event, regarding).await {
            warn!(%error, reason, "cannot publish an event");
        }
    }
}

/// Runs the controller until SIGTERM or SIGINT.
pub async fn run(args: Args) -> Result<(), MasterError> {
    args.init_tracing()?;
    let settings = args.settings()?;
    let shutdown = shutdown_on_signals().map_err(MasterError::Signals)?;
    run_with(settings, shutdown).await
}

/// Runs the controller until `shutdown` is cancelled (in-process embedding and tests).
pub async fn run_with(settings: Settings, shutdown: CancellationToken) -> Result<(), MasterError> {
    let network = &settings.network;
    info!(
        cluster = %network.cluster_id,
        switch = %network.switch,
        subnet = %network.subnet,
        gateway = %network.gateway,
        identity = %settings.lease.identity,
        "starting"
    );
    let metrics = Arc::new(Metrics::new());
    let _endpoints = start_endpoints(settings.metrics_addr, metrics.clone(), shutdown.clone())
        .await
        .map_err(|source| MasterError::MetricsBind {
            addr: settings.metrics_addr,
            source,
        })?;

    let client = kube::connect(settings.kubeconfig.as_deref()).await?;
    let changed = Arc::new(Notify::new());
    let caches = kube::spawn_watches(&client, changed.clone(), &shutdown);

    let Some(nb) = connect_nb(
        &settings.ovn_nb,
        settings.ovn_nb_tls.as_ref(),
        &metrics,
        &shutdown,
    )
    .await
    else {
        return Ok(());
    };
    tokio::select! {
        ready = caches.ready() => if ready { metrics.set_caches_synced() },
        () = shutdown.cancelled() => return Ok(()),
    }
    info!("caches synced; joining the leader election");

    let owner = nauti_api::daemon::owner::resolve_owner(
        &settings.owner,
        client.clone(),
        &settings.lease.namespace,
        &shutdown,
    )
    .await;
    let leader_metric = metrics.clone();
    let (leader, lease_task) = election::spawn(
        client.clone(),
        settings.lease.clone().owned_by(owner),
        Box::new(move |leading| {
            leader_metric.leader.set(i64::from(leading));
        }),
        shutdown.clone(),
    );
    let recorder = Recorder::new(
        client.clone(),
        Reporter {
            controller: CONTROLLER.into(),
            instance: Some(settings.lease.identity.clone()),
        },
    );
    let ctx = Context {
        network: settings.network.clone(),
        nb,
        client,
        caches,
        leader,
        metrics,
        recorder,
        gc_grace: settings.gc_grace,
    };
    reconcile_loop(&ctx, settings.resync_interval, &changed, &shutdown)
        .instrument(info_span!("reconcile", cluster = %ctx.network.cluster_id))
        .await;
    // The lease task releases the lease (bounded) once it sees the cancellation.
    if let Err(error) = lease_task.await {
        warn!(%error, "the lease task ended abnormally");
    }
    info!("stopped");
    Ok(())
}

/// Connects to the northbound database, retrying with backoff until it answers or we are told
/// to stop (`None`). Afterwards the client reconnects by itself; readiness follows it.
async fn connect_nb(
    endpoint: &Endpoint,
    tls: Option<&TlsFiles>,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) -> Option<Northbound> {
    let mut config = ClientConfig::new(endpoint.clone());
    config.connect_timeout = Duration::from_secs(5);
    config.tls = tls.cloned();
    let client = Client::connect_retrying(
        config,
        "the OVN northbound database",
        RETRY_MIN,
        NB_RETRY_MAX,
        shutdown,
    )
    .await?;
    let mut state = client.state();
    let metrics = metrics.clone();
    tokio::spawn(async move {
        loop {
            let connected = state.borrow_and_update().connected;
            metrics.set_nb_connected(connected);
            if state.changed().await.is_err() {
                metrics.set_nb_connected(false);
                return;
            }
        }
    });
    Some(Northbound::new(client))
}

async fn reconcile_loop(
    ctx: &Context,
    resync: Duration,
    changed: &Notify,
    shutdown: &CancellationToken,
) {
    let mut leader = ctx.leader.clone();
    let mut gc = GcTracker::new();
    let mut was_leader = false;
    let mut retry = Backoff::new(RETRY_MIN, RETRY_MAX);
    loop {
        let leading = *leader.borrow_and_update();
        if leading != was_leader {
            // A new term starts the grace periods over: what the previous leader saw is unknown.
            gc = GcTracker::new();
            was_leader = leading;
        }
        let mut wait = resync;
        if leading {
            match reconcile(ctx, &mut gc).await {
                Ok(again) => {
                    ctx.metrics.reconciled("ok");
                    retry.reset();
                    if again {
                        wait = RETRY_MIN;
                    }
                    if let Some(due) = gc.next_due(std::time::Instant::now(), ctx.gc_grace) {
                        wait = wait.min(due + DEBOUNCE);
                    }
                }
                Err(error) => {
                    ctx.metrics.reconciled(error.metric_label());
                    wait = retry.next_delay();
                    warn!(%error, retry_in = ?wait, "reconcile failed");
                }
            }
        }
        tokio::select! {
            () = shutdown.cancelled() => return,
            () = changed.notified() => tokio::time::sleep(DEBOUNCE).await,
            changed = leader.changed() => if changed.is_err() {
                warn!("the lease task is gone; no longer reconciling");
                return;
            },
            () = tokio::time::sleep(wait) => {}
        }
    }
}

/// One pass over everything; `Ok(true)` asks for another pass soon (a write lost a race).
async fn reconcile(ctx: &Context, gc: &mut GcTracker) -> Result<bool, ReconcileError> {
    ctx.nb
        .ensure_logical_switch(&ctx.network.desired_switch())
        .await?;
    ctx.nb
        .ensure_logical_router(
            &ctx.network.router(),
            &ctx.network.router_external_ids(),
            &[ctx.network.desired_router_port()],
        )
        .await?;
    ctx.nb
        .ensure_logical_switch_port(&ctx.network.switch, &ctx.network.desired_cnf_port())
        .await?;
    // Blocks and collection are independent: one failing does not hold the other back.
    let blocks = blocks::reconcile(ctx).await;
    let collected = gc::collect(ctx, gc).await;
    let again = blocks?;
    collected?;
    Ok(again)
}
