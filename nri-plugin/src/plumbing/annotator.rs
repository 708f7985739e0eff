//! Writes each pod's `nauti.io/*` annotations after the runtime has its answer.
//!
//! The NIC is what the pod needs to start; the annotations only describe it. Writing them is an
//! API-server round trip with an etcd commit, the slowest step of plumbing, so the sandbox is
//! answered as soon as the NIC is up and the merge patch follows, retried with backoff until the
//! API server takes it, the pod is gone, or the attempts run out (the next reconciliation then
//! tries again). A pod whose sandbox is removed has its pending patch cancelled.
//!
//! One task owns the bookkeeping (patches under way, sandboxes confirmed) and takes its orders
//! from a channel, so `submit`, `ensure` and `cancel` are applied in the order they were sent,
//! with no lock to take in the wrong order.

use std::collections::{HashMap, HashSet};
use std::sync::Arc;
use std::time::{Duration, Instant};

use async_trait::async_trait;
use k8s_openapi::api::core::v1::Pod;
use kube::api::{Api, Patch, PatchParams};
use nauti_api::PodNetwork;
use tokio::sync::mpsc;
use tokio::task::AbortHandle;
use tracing::{Instrument as _, debug, info, info_span, warn};

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

/// How many times one pod's patch is tried before it waits for the next reconciliation.
pub const MAX_ATTEMPTS: u32 = 12;

/// A failed patch: the API server's status code, if it answered at all.
#[derive(Debug, thiserror::Error)]
#[error("{message}")]
pub struct PatchError {
    pub status: Option<u16>,
    pub message: String,
}

/// Merge-patches pods: the API server, or a recording fake in unit tests.
#[async_trait]
pub trait PodPatcher: Send + Sync + 'static {
    async fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<(), PatchError>;
}

/// [`PodPatcher`] over the API server.
pub struct KubePatcher(pub kube::Client);

#[async_trait]
impl PodPatcher for KubePatcher {
    async fn patch(
        &self,
        namespace: &str,
        name: &str,
        patch: &serde_json::Value,
    ) -> Result<(), PatchError> {
        let api = Api::<Pod>::namespaced(self.0.clone(), namespace);
        match api
            .patch(name, &PatchParams::default(), &Patch::Merge(patch))
            .await
        {
            Ok(_) => Ok(()),
            Err(kube::Error::Api(status)) => Err(PatchError {
                status: Some(status.code),
                message: status.message.clone(),
            }),
            Err(other) => Err(PatchError {
                status: None,
                message: other.to_string(),
            }),
        }
    }
}

enum Order {
    Submit {
        pod: Box<PodSandbox>,
        network: Box<PodNetwork>,
        since: Instant,
        only_if_unknown: bool,
    },
    Cancel {
        sandbox: String,
    },
    Done {
        sandbox: String,
        number: u64,
        result: &'static str,
    },
}

/// The handle on the annotation writer of one node (cheap to clone).
#[derive(Clone)]
pub struct Annotator {
    orders: mpsc::UnboundedSender<Order>,
}

impl std::fmt::Debug for Annotator {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Annotator").finish_non_exhaustive()
    }
}

impl Annotator {
    /// Starts the writer; the first retry waits `first_retry`, doubling up to 30 s. It stops
    /// when the last handle is dropped.
    pub fn start(
        patcher: Arc<dyn PodPatcher>,
        first_retry: Duration,
        metrics: Arc<Metrics>,
    ) -> Self {
        let (orders, inbox) = mpsc::unbounded_channel();
        let owner = Owner {
            patcher,
            first_retry,
            metrics,
            pending: HashMap::new(),
            confirmed: HashSet::new(),
            submissions: 0,
            done: orders.downgrade(),
        };
        tokio::spawn(owner.run(inbox).instrument(info_span!("annotator")));
        Self { orders }
    }

    /// Starts writing `network` onto the pod, replacing a patch of the same sandbox under way.
    /// `since` is when the sandbox event arrived, for the logged latency.
    pub fn submit(&self, pod: &PodSandbox, network: &PodNetwork, since: Instant) {
        self.send(Order::Submit {
            pod: Box::new(pod.clone()),
            network: Box::new(network.clone()),
            since,
            only_if_unknown: false,
        });
    }

    /// Like [`Annotator::submit`], unless the API server already confirmed this sandbox's
    /// annotations or a patch is under way: what a reconciliation uses for pods plumbed before.
    pub fn ensure(&self, pod: &PodSandbox, network: &PodNetwork) {
        self.send(Order::Submit {
            pod: Box::new(pod.clone()),
            network: Box::new(network.clone()),
            since: Instant::now(),
            only_if_unknown: true,
        });
    }

    /// Stops a patch under way and forgets the sandbox.
    pub fn cancel(&self, sandbox_id: &str) {
        self.send(Order::Cancel {
            sandbox: sandbox_id.to_owned(),
        });
    }

    fn send(&self, order: Order) {
        // The owner runs as long as a handle exists; a send fails only during shutdown.
        if self.orders.send(order).is_err() {
            debug!("annotation writer stopped; order dropped");
        }
    }
}

/// The task that owns the bookkeeping.
struct Owner {
    patcher: Arc<dyn PodPatcher>,
    first_retry: Duration,
    metrics: Arc<Metrics>,
    /// Patches under way, by sandbox ID, with the number of the submission that started each.
    pending: HashMap<String, (u64, AbortHandle)>,
    /// Sandboxes whose annotations the API server has confirmed since the plugin started.
    confirmed: HashSet<String>,
    submissions: u64,
    done: mpsc::WeakUnboundedSender<Order>,
}

impl Owner {
    async fn run(mut self, mut inbox: mpsc::UnboundedReceiver<Order>) {
        while let Some(order) = inbox.recv().await {
            match order {
                Order::Submit {
                    pod,
                    network,
                    since,
                    only_if_unknown,
                } => {
                    let known =
                        self.pending.contains_key(&pod.id) || self.confirmed.contains(&pod.id);
                    if !(only_if_unknown && known) {
                        self.start(*pod, &network, since);
                    }
                }
                Order::Cancel { sandbox } => {
                    if let Some((_, task)) = self.pending.remove(&sandbox) {
                        task.abort();
                    }
                    self.confirmed.remove(&sandbox);
                }
                Order::Done {
                    sandbox,
                    number,
                    result,
                } => {
                    self.metrics.annotation(result);
                    // A newer submission for the same sandbox owns the entry by now: leave it.
                    if self
                        .pending
                        .get(&sandbox)
                        .is_some_and(|(n, _)| *n == number)
                    {
                        self.pending.remove(&sandbox);
                        if result == WRITTEN {
                            self.confirmed.insert(sandbox);
                        }
                    }
                }
            }
            self.metrics
                .annotations_pending
                .set(i64::try_from(self.pending.len()).unwrap_or(i64::MAX));
        }
    }

    fn start(&mut self, pod: PodSandbox, network: &PodNetwork, since: Instant) {
        let patch = serde_json::json!({
            "metadata": {"uid": pod.uid, "annotations": network.to_annotations()},
        });
        self.submissions += 1;
        let number = self.submissions;
        self.confirmed.remove(&pod.id);
        let patcher = self.patcher.clone();
        let first_retry = self.first_retry;
        let done = self.done.clone();
        let sandbox = pod.id.clone();
        let span = info_span!("annotate", pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id);
        let task = tokio::spawn(
            async move {
                let result = write(patcher.as_ref(), &pod, &patch, since, first_retry).await;
                if let Some(done) = done.upgrade() {
                    let _ = done.send(Order::Done {
                        sandbox: pod.id,
                        number,
                        result,
                    });
                }
            }
            .instrument(span),
        );
        if let Some((_, old)) = self.pending.insert(sandbox, (number, task.abort_handle())) {
            old.abort();
        }
    }
}

/// Tries up to [`MAX_ATTEMPTS`] times; returns how it ended ([`WRITTEN`], [`DROPPED`] or
/// [`GIVEN_UP`]).
async fn write(
    patcher: &dyn PodPatcher,
    pod: &PodSandbox,
    patch: &serde_json::Value,
    since: Instant,
    first_retry: Duration,
) -> &'static str {
    let mut backoff = Backoff::new(first_retry, Duration::from_secs(30));
    for attempt in 1..=MAX_ATTEMPTS {
        let result = patcher.patch(&pod.namespace, &pod.name, patch).await;
        let status = match &result {
            Ok(()) => Some(200),
            Err(e) => e.status,
        };
        match next_after(status) {
            Next::Done => {
                let elapsed_us = u64::try_from(since.elapsed().as_micros()).unwrap_or(u64::MAX);
                info!(elapsed_us, attempt, "pod annotated");
                return WRITTEN;
            }
            Next::GiveUp(why) => {
                info!(why, "annotations not written");
                return DROPPED;
            }
            Next::Retry => {
                let delay = backoff.next_delay();
                let error = result.err().map(|e| e.message);
                if attempt == MAX_ATTEMPTS {
                    warn!(
                        ?error,
                        "annotations not written after {MAX_ATTEMPTS} attempts; the next reconciliation retries"
                    );
                    return GIVEN_UP;
                }
                debug!(?error, attempt, ?delay, "annotation patch failed; retrying");
                tokio::time::sleep(delay).await;
            }
        }
    }
    GIVEN_UP
}

#[cfg(test)]
mod tests {
    use std::sync::atomic::{AtomicUsize, Ordering};

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

    /// Counts patches; each waits until `open` says so.
    struct Recording {
        calls: AtomicUsize,
        open: tokio::sync::watch::Sender<bool>,
    }

    #[async_trait]
    impl PodPatcher for Recording {
        async fn patch(&self, _: &str, _: &str, _: &serde_json::Value) -> Result<(), PatchError> {
            self.calls.fetch_add(1, Ordering::SeqCst);
            let _ = self.open.subscribe().wait_for(|open| *open).await;
            Ok(())
        }
    }

    fn mk_pod() -> PodSandbox {
        PodSandbox {
            id: "a".repeat(64),
            name: "web".into(),
            namespace: "default".into(),
            uid: "u".into(),
            ..PodSandbox::default()
        }
    }

    fn mk_network() -> PodNetwork {
        PodNetwork::try_from_annotations(
            &[
                ("nauti.io/ip_address", "10.112.1.2"),
                ("nauti.io/mac_address", "0a:58:0a:70:01:02"),
                ("nauti.io/cidr", "10.112.0.0/16"),
                ("nauti.io/gateway", "10.112.0.1"),
                ("nauti.io/logical_switch", "nauti-east"),
                ("nauti.io/pod_nic_type", "veth-pair"),
                ("nauti.io/routes", "[]"),
                ("nauti.io/allocated", "true"),
            ]
            .into_iter()
            .map(|(k, v)| (k.to_owned(), v.to_owned()))
            .collect(),
        )
        .unwrap()
        .unwrap()
    }

    async fn settled(metrics: &Metrics, written: u64) {
        for _ in 0..200 {
            let text = metrics.render();
            if metrics.annotations_pending.get() == 0
                && text.contains(&format!(
                    "nauti_nri_annotations_total{{result=\"written\"}} {written}"
                ))
            {
                return;
            }
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
        panic!("not settled: {}", metrics.render());
    }

    #[tokio::test]
    async fn ensure_while_a_patch_is_under_way_or_confirmed_writes_nothing_more() {
        let patcher = Arc::new(Recording {
            calls: AtomicUsize::new(0),
            open: tokio::sync::watch::Sender::new(false),
        });
        let metrics = Arc::new(Metrics::new());
        let annotator =
            Annotator::start(patcher.clone(), Duration::from_millis(1), metrics.clone());
        let (pod, network) = (mk_pod(), mk_network());
        annotator.submit(&pod, &network, Instant::now());
        annotator.ensure(&pod, &network);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(patcher.calls.load(Ordering::SeqCst), 1);
        patcher.open.send_replace(true);
        settled(&metrics, 1).await;
        annotator.ensure(&pod, &network);
        tokio::time::sleep(Duration::from_millis(20)).await;
        assert_eq!(
            patcher.calls.load(Ordering::SeqCst),
            1,
            "confirmed: no patch"
        );
        // A cancelled sandbox is forgotten: ensuring it writes again.
        annotator.cancel(&pod.id);
        annotator.ensure(&pod, &network);
        settled(&metrics, 2).await;
        assert_eq!(patcher.calls.load(Ordering::SeqCst), 2);
    }

    #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
    async fn ensure_racing_submit_from_many_tasks_settles_confirmed() {
        let patcher = Arc::new(Recording {
            calls: AtomicUsize::new(0),
            open: tokio::sync::watch::Sender::new(true),
        });
        let metrics = Arc::new(Metrics::new());
        let annotator =
            Annotator::start(patcher.clone(), Duration::from_millis(1), metrics.clone());
        let (pod, network) = (mk_pod(), mk_network());
        let tasks: Vec<_> = (0..64)
            .map(|n| {
                let (annotator, pod, network) = (annotator.clone(), pod.clone(), network.clone());
                tokio::spawn(async move {
                    if n % 2 == 0 {
                        annotator.submit(&pod, &network, Instant::now());
                    } else {
                        annotator.ensure(&pod, &network);
                    }
                })
            })
            .collect();
        for task in tasks {
            tokio::time::timeout(Duration::from_secs(5), task)
                .await
                .expect("no deadlock")
                .unwrap();
        }
        // Settled: nothing under way and no new patch for a while.
        let mut calls = usize::MAX;
        for _ in 0..200 {
            tokio::time::sleep(Duration::from_millis(25)).await;
            let now = patcher.calls.load(Ordering::SeqCst);
            if metrics.annotations_pending.get() == 0 && now == calls {
                break;
            }
            calls = now;
        }
        assert_eq!(metrics.annotations_pending.get(), 0);
        assert!((1..=64).contains(&calls), "{calls}");
        // Whatever the interleaving, the sandbox ends confirmed: one more ensure writes nothing.
        annotator.ensure(&pod, &network);
        tokio::time::sleep(Duration::from_millis(30)).await;
        assert_eq!(patcher.calls.load(Ordering::SeqCst), calls);
    }
}
