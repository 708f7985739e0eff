//! Multi-cluster services in `octopus member`: the [`exports`](super::exports) controller
//! (this cluster's `ServiceExport`s to the hub) and the [`imports`](super::imports) controller
//! (every cluster's exports from the hub into this cluster), started together under one hub
//! credential and stopped together when it is renewed.

use std::net::IpAddr;
use std::time::Duration;

use ipnet::IpNet;
use nauti_ovn::{Client, ClientConfig, Endpoint, Northbound, TlsFiles};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument as _, info_span};

pub use nauti_api::daemon::watch::spawn_store;

use super::{exports, imports};

/// Field manager of every object the sync writes (server-side apply).
pub const FIELD_MANAGER: &str = "octopus";
/// Field manager of the `Conflict` condition, which the import side works out.
pub const CONFLICT_FIELD_MANAGER: &str = "octopus-conflicts";
/// Pause before a pass that failed is tried again.
pub const RETRY: Duration = Duration::from_secs(2);
/// How many services' writes a pass has in flight at once: a burst of exports or imports goes
/// out side by side rather than one API call after another.
pub const WRITE_CONCURRENCY: usize = 16;
/// How often a full pass runs without any event.
pub const RESYNC: Duration = Duration::from_secs(30);

/// How the member reaches its cluster's OVN northbound database.
#[derive(Debug, Clone, Default)]
pub struct ServicesConfig {
    /// `--ovn-nb`; without it nothing is exported (imports still work).
    pub ovn_nb: Option<Endpoint>,
    /// Client key, certificate and CA for an `ssl:` remote.
    pub ovn_nb_tls: Option<TlsFiles>,
    /// The cluster's logical switch; `nauti-<cluster-id>` when absent, as `nauti-ovnmaster`
    /// names it.
    pub logical_switch: Option<String>,
}

/// What both controllers need.
#[derive(Clone)]
pub struct SyncContext {
    /// The member's own cluster.
    pub local: kube::Client,
    /// The hub, under the member's credential.
    pub hub: kube::Client,
    /// This cluster's ID.
    pub cluster_id: String,
    /// octopus's namespace in this cluster (the slice ConfigMap).
    pub namespace: String,
    /// Namespace of the Peers on the hub.
    pub hub_namespace: String,
    /// The block of clusterset IPs.
    pub clusterset: IpNet,
    /// The OVN settings.
    pub config: ServicesConfig,
}

/// Both controllers; dropping it stops them and their watches.
pub struct ServicesSync {
    _stop: DropGuard,
}

/// Starts the export and import controllers until the result is dropped or `shutdown`.
pub fn spawn(context: SyncContext, shutdown: &CancellationToken) -> ServicesSync {
    let stop = shutdown.child_token();
    tokio::spawn(
        exports::run(context.clone(), stop.clone())
            .instrument(info_span!("exports", cluster = %context.cluster_id)),
    );
    tokio::spawn(
        imports::run(context.clone(), stop.clone())
            .instrument(info_span!("imports", cluster = %context.cluster_id)),
    );
    ServicesSync {
        _stop: stop.drop_guard(),
    }
}

/// Waits until every store holds a full list; false on `stop`.
pub async fn all_ready<F>(ready: F, stop: &CancellationToken) -> bool
where
    F: std::future::Future<Output = bool>,
{
    tokio::select! {
        ok = ready => ok,
        () = stop.cancelled() => false,
    }
}

/// Waits for a change (letting a burst settle), `delay`, or `stop`; false on `stop`.
pub async fn next_pass(changed: &Notify, delay: Duration, stop: &CancellationToken) -> bool {
    tokio::select! {
        () = changed.notified() => {
            tokio::time::sleep(Duration::from_millis(100)).await;
            true
        }
        () = tokio::time::sleep(delay) => true,
        () = stop.cancelled() => false,
    }
}

/// A northbound client of `endpoint`, connecting again with backoff until it answers; `None` on
/// `stop`.
pub async fn connect_nb(
    endpoint: Endpoint,
    tls: Option<TlsFiles>,
    stop: &CancellationToken,
) -> Option<Northbound> {
    let mut delay = Duration::from_millis(200);
    loop {
        let mut config = ClientConfig::new(endpoint.clone());
        config.connect_timeout = Duration::from_secs(5);
        config.tls = tls.clone();
        let attempt = tokio::select! {
            () = stop.cancelled() => return None,
            attempt = Client::connect(config) => attempt,
        };
        match attempt {
            Ok(client) => {
                tracing::info!(%endpoint, "connected to the OVN northbound database");
                return Some(Northbound::new(client));
            }
            Err(error) => {
                tracing::warn!(%error, %endpoint, "cannot reach the OVN northbound database; retrying");
            }
        }
        tokio::select! {
            () = stop.cancelled() => return None,
            () = tokio::time::sleep(delay) => {}
        }
        delay = (delay * 2).min(Duration::from_secs(10));
    }
}

/// `404 Not Found` counts as done for a delete.
pub fn gone_is_fine<T>(result: Result<T, kube::Error>) -> Result<(), kube::Error> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(error) => Err(error),
    }
}

/// The first address of a list of strings that parses.
pub fn first_ip(addresses: &[String]) -> Option<IpAddr> {
    addresses.iter().find_map(|a| a.parse().ok())
}
