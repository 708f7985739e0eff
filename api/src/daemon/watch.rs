//! Caches of watched objects that wake a controller's pass on every change.

use std::sync::Arc;

use futures::StreamExt as _;
use kube::Api;
use kube::runtime::reflector::{self, Store};
use kube::runtime::{WatchStreamExt as _, watcher};
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument as _, info_span, warn};

/// A cache of `api` filled by a watch that wakes `changed` on every event, until `stop`.
pub fn spawn_store<K>(
    api: Api<K>,
    config: watcher::Config,
    what: &'static str,
    changed: &Arc<Notify>,
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
    let changed = changed.clone();
    let stop = stop.clone();
    tokio::spawn(
        async move {
            let mut stream = std::pin::pin!(stream);
            loop {
                let next = tokio::select! {
                    () = stop.cancelled() => return,
                    next = stream.next() => next,
                };
                match next {
                    Some(Ok(_)) => changed.notify_one(),
                    // The store keeps what it last saw: an outage changes nothing.
                    Some(Err(error)) => warn!(%error, "watch failed; retrying with backoff"),
                    None => return,
                }
            }
        }
        .instrument(info_span!("watch", resource = what)),
    );
    store
}
