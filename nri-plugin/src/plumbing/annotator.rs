//! Writes each pod's `nauti.io/*` annotations after the runtime has its answer.
//!
//! The NIC is what the pod needs to start; the annotations only describe it. Writing them is an
//! API-server round trip with an etcd commit, the slowest step of plumbing, so the sandbox is
//! answered as soon as the NIC is up and the merge patch follows in a task of its own, retried
//! with backoff until the API server takes it, the pod is gone, or the attempts run out (the next
//! `Synchronize` then tries again). A pod whose sandbox is removed has its pending patch cancelled.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex, PoisonError};
use std::time::{Duration, Instant};

use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use nauti_api::PodNetwork;
use tokio::task::AbortHandle;
use tracing::{debug, info, warn};

use crate::core::{Backoff, PodSandbox};
use crate::metrics::Metrics;

/// What to do after one patch attempt.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Next {
    /// The API server has the annotations.
    Done,
    /// Try again after the backoff: the API server is away, overloaded or refuses for now.
    Retry,
    /// Stop: retrying cannot help (the reason says why).
    GiveUp(&'static str),
}

/// Decides from the API server's HTTP status code (`None`: no answer at all).
pub fn next_after(status: Option<u16>) -> Next {
    match status {
        Some(200..=299) => Next::Done,
        Some(404) => Next::GiveUp("the pod no longer exists"),
        // The UID in the patch no longer matches: a new pod of the same name took its place.
        Some(409) => Next::GiveUp("the pod was replaced by another of the same name"),
        Some(400 | 415 | 422) => Next::GiveUp("the API server refused the patch as invalid"),
        // Transport errors, 401/403 (credentials or RBAC being fixed), 429 and 5xx.
        _ => Next::Retry,
    }
}

/// How a patch ended, as counted in `nauti_nri_annotations_total{result}`.
pub const WRITTEN: &str = "written";
/// The pod is gone or was replaced.
pub const DROPPED: &str = "dropped";
/// The attempts ran out.
pub const GIVEN_UP: &str = "given_up";

fn gauge(n: usize) -> i64 {
    i64::try_from(n).unwrap_or(i64::MAX)
}

/// How many times one pod's patch is tried before it waits for the next `Synchronize`.
pub const MAX_ATTEMPTS: u32 = 12;

/// The annotation writer of one node.
pub struct Annotator {
    kube: kube::Client,
    /// Patches under way, by sandbox ID, with the number of the submission that started each.
    pending: Mutex<HashMap<String, (u64, AbortHandle)>>,
    submissions: AtomicU64,
    /// Sandboxes whose annotations the API server has confirmed since the plugin started.
    confirmed: Mutex<HashSet<String>>,
    first_retry: Duration,
    metrics: Arc<Metrics>,
}

impl std::fmt::Debug for Annotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annotator").finish_non_exhaustive()
    }
}

impl Annotator {
    /// A writer using `kube`; the first retry waits `first_retry`, doubling up to 30 s.
    pub fn new(kube: kube::Client, first_retry: Duration, metrics: Arc<Metrics>) -> Arc<Self> {
        Arc::new(Self {
            kube,
            pending: Mutex::default(),
            confirmed: Mutex::default(),
            submissions: AtomicU64::new(0),
            first_retry,
            metrics,
        })
    }

    /// Starts writing `network` onto the pod, replacing a patch of the same sandbox under way.
    /// `since` is when the sandbox event arrived, for the logged latency.
    pub fn submit(self: &Arc<Self>, pod: &PodSandbox, network: &PodNetwork, since: Instant) {
        let patch = serde_json::json!({
            "metadata": {"uid": pod.uid, "annotations": network.to_annotations()},
        });
        let this = Arc::clone(self);
        let pod = pod.clone();
        let sandbox = pod.id.clone();
        let number = self.submissions.fetch_add(1, Ordering::Relaxed);
        // Held until the new task is registered, so the task cannot finish before it is known.
        let mut pending = lock(&self.pending);
        lock(&self.confirmed).remove(&sandbox);
        let task = tokio::spawn(async move {
            let result = this.write(&pod, &patch, since).await;
            this.metrics.annotation(result);
            let mut pending = lock(&this.pending);
            // A newer submission for the same sandbox owns the entry by now: leave it.
            if pending.get(&pod.id).is_some_and(|(n, _)| *n == number) {
                pending.remove(&pod.id);
                this.metrics.annotations_pending.set(gauge(pending.len()));
                if result == WRITTEN {
                    lock(&this.confirmed).insert(pod.id);
                }
            }
        });
        if let Some((_, old)) = pending.insert(sandbox, (number, task.abort_handle())) {
            old.abort();
        }
        self.metrics.annotations_pending.set(gauge(pending.len()));
    }

    /// Like [`Annotator::submit`], unless the API server already confirmed this sandbox's
    /// annotations or a patch is under way: what `Synchronize` uses for pods already plumbed.
    pub fn ensure(self: &Arc<Self>, pod: &PodSandbox, network: &PodNetwork) {
        // One lock at a time: `submit` and its task take `pending` before `confirmed`, and a
        // temporary guard here would live to the end of the expression, in the other order.
        let under_way = lock(&self.pending).contains_key(&pod.id);
        let confirmed = lock(&self.confirmed).contains(&pod.id);
        if !under_way && !confirmed {
            self.submit(pod, network, Instant::now());
        }
    }

    /// Stops a patch under way and forgets the sandbox.
    pub fn cancel(&self, sandbox_id: &str) {
        let mut pending = lock(&self.pending);
        if let Some((_, task)) = pending.remove(sandbox_id) {
            task.abort();
        }
        self.metrics.annotations_pending.set(gauge(pending.len()));
        drop(pending);
        lock(&self.confirmed).remove(sandbox_id);
    }

    /// Tries up to [`MAX_ATTEMPTS`] times; returns how it ended ([`WRITTEN`], [`DROPPED`] or
    /// [`GIVEN_UP`]).
    async fn write(
        &self,
        pod: &PodSandbox,
        patch: &serde_json::Value,
        since: Instant,
    ) -> &'static str {
        let api = Api::<Pod>::namespaced(self.kube.clone(), &pod.namespace);
        let mut backoff = Backoff::new(self.first_retry, Duration::from_secs(30));
        for attempt in 1..=MAX_ATTEMPTS {
            let result = api
                .patch(&pod.name, &PatchParams::default(), &Patch::Merge(patch))
                .await;
            let (status, error) = match &result {
                Ok(_) => (Some(200), None),
                Err(kube::Error::Api(status)) => (Some(status.code), result.as_ref().err()),
                Err(other) => (None, Some(other)),
            };
            match next_after(status) {
                Next::Done => {
                    let elapsed_us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
                    info!(pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id, elapsed_us, attempt, "pod annotated");
                    return WRITTEN;
                }
                Next::GiveUp(why) => {
                    info!(pod.ns = %pod.namespace, pod.name = %pod.name, why, "annotations not written");
                    return DROPPED;
                }
                Next::Retry => {
                    let delay = backoff.next_delay();
                    if let Some(error) = error {
                        debug!(pod.ns = %pod.namespace, pod.name = %pod.name, %error, attempt, ?delay, "annotation patch failed; retrying");
                    }
                    if attempt == MAX_ATTEMPTS {
                        warn!(pod.ns = %pod.namespace, pod.name = %pod.name, error = ?error.map(ToString::to_string), "annotations not written after {MAX_ATTEMPTS} attempts; the next synchronization retries");
                        return GIVEN_UP;
                    }
                    tokio::time::sleep(delay).await;
                }
            }
        }
        GIVEN_UP
    }
}

/// The maps stay consistent whatever a panicking holder left half done (each update is one
/// insert or remove), so a poisoned lock is used as is.
fn lock<T>(mutex: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(PoisonError::into_inner)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn success_is_done() {
        assert_eq!(next_after(Some(200)), Next::Done);
        assert_eq!(next_after(Some(201)), Next::Done);
    }

    #[test]
    fn a_deleted_or_replaced_pod_ends_the_attempts() {
        assert!(matches!(next_after(Some(404)), Next::GiveUp(w) if w.contains("no longer")));
        assert!(matches!(next_after(Some(409)), Next::GiveUp(w) if w.contains("replaced")));
        assert!(matches!(next_after(Some(422)), Next::GiveUp(_)));
    }

    #[test]
    fn an_absent_overloaded_or_forbidding_api_server_is_retried() {
        for status in [None, Some(401), Some(403), Some(429), Some(500), Some(503)] {
            assert_eq!(next_after(status), Next::Retry, "{status:?}");
        }
    }
}
