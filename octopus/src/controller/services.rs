//! Multi-cluster services in `octopus member`: the [`exports`](super::exports) controller
//! (this cluster's `ServiceExport`s to the hub) and the [`imports`](super::imports) controller
//! (every cluster's exports from the hub into this cluster), started together under one hub
//! credential and stopped together when it is renewed.

use std::net::IpAddr;
use std::sync::{Arc, Mutex, PoisonError};
use std::time::Duration;

use futures::StreamExt as _;

use ipnet::IpNet;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use nauti_ovn::{Client, ClientConfig, Endpoint, Northbound, TlsFiles};
use tokio::sync::Notify;
use tokio_util::sync::{CancellationToken, DropGuard};
use tracing::{Instrument as _, info_span, warn};

pub use nauti_api::daemon::watch::spawn_store;

use super::{exports, imports};
use crate::core::mcs::ServiceKey;
use crate::core::queue::KeyQueue;

/// Field manager of every object the sync writes (server-side apply).
pub const FIELD_MANAGER: &str = "octopus";
/// Field manager of the `Conflict` condition, which the import side works out.
pub const CONFLICT_FIELD_MANAGER: &str = "octopus-conflicts";
/// Pause before a pass that failed is tried again.
pub const RETRY: Duration = Duration::from_secs(2);
/// How many services' writes a pass has in flight at once: a burst of exports or imports goes
/// out side by side rather than one API call after another.
pub const WRITE_CONCURRENCY: usize = 64;
/// How often every key is reconciled without any event.
pub const RESYNC: Duration = Duration::from_secs(30);
/// A reconcile starts once this many of its [`WRITE_CONCURRENCY`] places are free (or none
/// runs), so that the inputs' view is rebuilt once per batch rather than once per key.
pub const REFILL_AT: usize = WRITE_CONCURRENCY / 4;

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
    let mut config = ClientConfig::new(endpoint);
    config.connect_timeout = Duration::from_secs(5);
    config.tls = tls;
    Client::connect_retrying(
        config,
        "the OVN northbound database",
        Duration::from_millis(200),
        Duration::from_secs(10),
        stop,
    )
    .await
    .map(Northbound::new)
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

/// The services a controller has to reconcile, shared by its watches and its workers.
#[derive(Default)]
pub struct WorkQueue {
    keys: Mutex<KeyQueue<ServiceKey>>,
    resync: std::sync::atomic::AtomicBool,
    wake: Notify,
}

impl WorkQueue {
    fn keys(&self) -> std::sync::MutexGuard<'_, KeyQueue<ServiceKey>> {
        // The queue stays consistent across a panic: every method leaves it whole.
        self.keys.lock().unwrap_or_else(PoisonError::into_inner)
    }

    /// `key` is due.
    pub fn add(&self, key: ServiceKey) {
        self.keys().add(key);
        self.wake.notify_one();
    }

    /// An input changed without naming a service.
    pub fn touch(&self) {
        self.keys().touch();
    }

    /// Every service is due (a relist, a change of a shared input, the periodic resync).
    pub fn resync(&self) {
        self.resync
            .store(true, std::sync::atomic::Ordering::Relaxed);
        self.keys().touch();
        self.wake.notify_one();
    }

    /// Whether a resync was asked since the last call.
    pub fn take_resync(&self) -> bool {
        self.resync
            .swap(false, std::sync::atomic::Ordering::Relaxed)
    }

    /// The count of changes so far.
    pub fn generation(&self) -> u64 {
        self.keys().generation()
    }

    /// Whether a key waits.
    pub fn has_waiting(&self) -> bool {
        self.keys().has_waiting()
    }

    /// Up to `max` keys, now running.
    pub fn take(&self, max: usize) -> Vec<ServiceKey> {
        self.keys().take(max)
    }

    /// `key`'s reconcile ended.
    pub fn done(&self, key: &ServiceKey) {
        self.keys().done(key);
        self.wake.notify_one();
    }

    /// `key` again after `delay` (a failed reconcile), unless `stop`.
    pub fn retry_later(
        self: &Arc<Self>,
        key: ServiceKey,
        delay: Duration,
        stop: &CancellationToken,
    ) {
        let queue = self.clone();
        let stop = stop.clone();
        tokio::spawn(async move {
            tokio::select! {
                () = stop.cancelled() => {}
                () = tokio::time::sleep(delay) => queue.add(key),
            }
        });
    }

    /// Until a key may be due or a reconcile ended.
    pub fn notified(&self) -> tokio::sync::futures::Notified<'_> {
        self.wake.notified()
    }
}

/// Which services an event of a watched object makes due.
pub enum Keys<K> {
    /// The services the object names, on every change.
    Of(fn(&K) -> Vec<ServiceKey>),
    /// The services the object names, when it is deleted (the controller's own output: its
    /// own writes wake nothing, a deletion by someone else is put back).
    DeletedOf(fn(&K) -> Vec<ServiceKey>),
    /// Every service: a shared input.
    All,
}

impl<K> Clone for Keys<K> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<K> Copy for Keys<K> {}

/// A cache of `api` filled by a watch that makes due, on every event, the services `keys` names
/// (every service after a relist, which does not report what it dropped), until `stop`.
pub fn spawn_keyed_store<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    queue: &Arc<WorkQueue>,
    keys: Keys<K>,
    stop: &CancellationToken,
) -> Store<K>
where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
{
    let (store, writer) = reflector::store();
    let stream = reflector::reflector(writer, watcher(api, config).default_backoff());
    let queue = queue.clone();
    let stop = stop.clone();
    tokio::spawn(
        async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = stream.next() => next,
                };
                let event = match next {
                    Some(Ok(event)) => event,
                    // The store keeps what it last saw: an outage changes nothing.
                    Some(Err(error)) => {
                        warn!(%error, "watch failed; retrying with backoff");
                        continue;
                    }
                    None => return,
                };
                match (&event, keys) {
                    (watcher::Event::InitDone, _)
                    | (watcher::Event::Apply(_) | watcher::Event::Delete(_), Keys::All) => {
                        queue.resync();
                    }
                    (watcher::Event::Apply(object), Keys::Of(of))
                    | (watcher::Event::Delete(object), Keys::Of(of) | Keys::DeletedOf(of)) => {
                        for key in of(object) {
                            queue.add(key);
                        }
                    }
                    _ => queue.touch(),
                }
            }
        }
        .instrument(info_span!("watch", resource = what)),
    );
    store
}
