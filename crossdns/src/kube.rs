//! The Kubernetes edge: watches on ServiceImports and on the EndpointSlices octopus imports
//! (selected by label), converted into the core's views and fed to the index.
//!
//! Each watch buffers the objects of a (re)list and hands them over with `reset_*` at its end,
//! so the index never answers from half a list, and drops what a relist no longer holds.

use std::net::IpAddr;
use std::path::Path;
use std::sync::{Arc, PoisonError};

use futures::StreamExt;
use k8s_openapi::api::discovery::v1::{Endpoint, EndpointSlice};
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt, watcher};
use nauti_api::ServiceImport;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI, ServiceImportType,
};
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, info, info_span, warn};

use crate::CrossdnsError;
use crate::core::{
    EndpointView, ImportKind, ImportView, Index, PortView, ServiceKey, SliceKey, SliceView,
};
use crate::dns::SharedIndex;
use crate::metrics::Metrics;

/// Builds a client from a kubeconfig file, or from the usual places (in-cluster service
/// account, `$KUBECONFIG`, `~/.kube/config`).
pub async fn connect(kubeconfig: Option<&Path>) -> Result<kube::Client, CrossdnsError> {
    let config = match kubeconfig {
        Some(path) => {
            let fail = |reason: String| CrossdnsError::KubeConfig {
                source_of: path.display().to_string(),
                reason,
            };
            let file = Kubeconfig::read_from(path).map_err(|e| fail(e.to_string()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .map_err(|e| fail(e.to_string()))?
        }
        None => kube::Config::infer()
            .await
            .map_err(|e| CrossdnsError::KubeConfig {
                source_of: "the in-cluster service account or $KUBECONFIG".into(),
                reason: e.to_string(),
            })?,
    };
    kube::Client::try_from(config).map_err(|e| CrossdnsError::KubeConfig {
        source_of: "the loaded configuration".into(),
        reason: e.to_string(),
    })
}

/// The label selector of the EndpointSlices crossdns reads.
pub fn slice_selector() -> String {
    format!("{LABEL_MANAGED_BY}={MANAGED_BY_NAUTI},{LABEL_SERVICE_NAME},{LABEL_SOURCE_CLUSTER}")
}

/// Starts both watches; they feed `index` until `shutdown`.
pub fn spawn_watches(
    client: &kube::Client,
    index: &SharedIndex,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) {
    let imports: Api<ServiceImport> = Api::all(client.clone());
    let slices: Api<EndpointSlice> = Api::all(client.clone());
    spawn_watch(
        imports,
        watcher::Config::default(),
        Feed {
            view: import_view,
            apply: |index, (key, view)| index.apply_import(key, view),
            delete: |index, (key, _)| index.delete_import(&key),
            reset: |index, items| index.reset_imports(items),
        },
        "serviceimports",
        index,
        metrics,
        shutdown,
    );
    spawn_watch(
        slices,
        watcher::Config::default().labels(&slice_selector()),
        Feed {
            view: slice_view,
            apply: |index, (key, view)| index.apply_slice(key, view),
            delete: |index, (key, _)| index.delete_slice(&key),
            reset: |index, items| index.reset_slices(items),
        },
        "endpointslices",
        index,
        metrics,
        shutdown,
    );
}

/// How one resource's events reach the index.
struct Feed<K, Key, View> {
    view: fn(&K) -> Option<(Key, View)>,
    apply: fn(&mut Index, (Key, View)),
    delete: fn(&mut Index, (Key, Option<View>)),
    reset: fn(&mut Index, Vec<(Key, View)>),
}

#[allow(clippy::too_many_arguments, reason = "one call per watched resource")]
fn spawn_watch<K, Key, View>(
    api: Api<K>,
    config: watcher::Config,
    feed: Feed<K, Key, View>,
    what: &'static str,
    index: &SharedIndex,
    metrics: &Arc<Metrics>,
    shutdown: &CancellationToken,
) where
    K: kube::Resource<DynamicType = ()>
        + Clone
        + std::fmt::Debug
        + serde::de::DeserializeOwned
        + Send
        + Sync
        + 'static,
    Key: Send + 'static,
    View: Send + 'static,
{
    let index = index.clone();
    let metrics = metrics.clone();
    let shutdown = shutdown.clone();
    let stream = watcher(api, config).default_backoff();
    tokio::spawn(
        async move {
            let mut stream = std::pin::pin!(stream);
            let mut relist: Vec<(Key, View)> = Vec::new();
            loop {
                let event = tokio::select! {
                    () = shutdown.cancelled() => return,
                    next = stream.next() => match next {
                        Some(event) => event,
                        None => return,
                    },
                };
                let event = match event {
                    Ok(event) => event,
                    Err(error) => {
                        metrics.watch_errors.inc();
                        warn!(%error, "watch failed; retrying with backoff");
                        continue;
                    }
                };
                let index_guard = || index.write().unwrap_or_else(PoisonError::into_inner);
                match event {
                    watcher::Event::Init => relist.clear(),
                    watcher::Event::InitApply(object) => relist.extend((feed.view)(&object)),
                    watcher::Event::InitDone => {
                        let items = std::mem::take(&mut relist);
                        info!(objects = items.len(), "listed");
                        let mut index = index_guard();
                        (feed.reset)(&mut index, items);
                        publish(&index, &metrics);
                    }
                    watcher::Event::Apply(object) => {
                        if let Some(item) = (feed.view)(&object) {
                            let mut index = index_guard();
                            (feed.apply)(&mut index, item);
                            publish(&index, &metrics);
                        }
                    }
                    watcher::Event::Delete(object) => {
                        if let Some((key, view)) = (feed.view)(&object) {
                            let mut index = index_guard();
                            (feed.delete)(&mut index, (key, Some(view)));
                            publish(&index, &metrics);
                        }
                    }
                }
            }
        }
        .instrument(info_span!("watch", resource = what)),
    );
}

fn publish(index: &Index, metrics: &Metrics) {
    metrics
        .records
        .set(i64::try_from(index.record_count()).unwrap_or(i64::MAX));
    if index.is_synced() {
        metrics.set_synced();
    }
}

/// The view of a ServiceImport. Unparsable clusterset IPs are skipped with a warning.
pub fn import_view(import: &ServiceImport) -> Option<(ServiceKey, ImportView)> {
    let namespace = import.metadata.namespace.as_deref()?;
    let name = import.metadata.name.as_deref()?;
    let kind = match import.spec.type_ {
        ServiceImportType::ClusterSetIP => ImportKind::ClusterSetIp(
            import
                .spec
                .ips
                .iter()
                .filter_map(|ip| match ip.parse::<IpAddr>() {
                    Ok(ip) => Some(ip),
                    Err(_) => {
                        warn!(%namespace, %name, ip, "ServiceImport has an unparsable IP; skipped");
                        None
                    }
                })
                .collect(),
        ),
        ServiceImportType::Headless => ImportKind::Headless,
    };
    let ports = import
        .spec
        .ports
        .iter()
        .filter_map(|p| {
            let port = u16::try_from(p.port).ok()?;
            Some(PortView::new(&p.name, &p.protocol, port))
        })
        .collect();
    Some((ServiceKey::new(namespace, name), ImportView { kind, ports }))
}

/// The view of an imported EndpointSlice; `None` without the labels crossdns reads.
pub fn slice_view(slice: &EndpointSlice) -> Option<(SliceKey, SliceView)> {
    let namespace = slice.metadata.namespace.as_deref()?;
    let name = slice.metadata.name.as_deref()?;
    let labels = slice.metadata.labels.as_ref()?;
    let service = labels.get(LABEL_SERVICE_NAME)?;
    let cluster = labels.get(LABEL_SOURCE_CLUSTER)?;
    let ports = slice
        .ports
        .iter()
        .flatten()
        .filter_map(|p| {
            let port = u16::try_from(p.port?).ok()?;
            Some(PortView::new(
                p.name.as_deref().unwrap_or_default(),
                p.protocol.as_deref().unwrap_or("TCP"),
                port,
            ))
        })
        .collect();
    let endpoints = slice
        .endpoints
        .iter()
        .flatten()
        .map(endpoint_view)
        .collect();
    Some((
        SliceKey::new(namespace, name),
        SliceView {
            service: ServiceKey::new(namespace, service),
            cluster: cluster.to_ascii_lowercase(),
            ports,
            endpoints,
        },
    ))
}

fn endpoint_view(endpoint: &Endpoint) -> EndpointView {
    let conditions = endpoint.conditions.as_ref();
    // An unset `ready` means ready (EndpointSlice API); a terminating endpoint takes no new
    // connections whatever `ready` says.
    let ready = conditions.and_then(|c| c.ready).unwrap_or(true)
        && !conditions.and_then(|c| c.terminating).unwrap_or(false);
    EndpointView {
        addresses: endpoint
            .addresses
            .iter()
            .filter_map(|a| a.parse().ok())
            .collect(),
        hostname: endpoint.hostname.clone(),
        ready,
    }
}
