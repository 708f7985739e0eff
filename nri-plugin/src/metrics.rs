//! The plugin's Prometheus metrics and readiness, served by `nauti_api::daemon::serve`, and
//! [`Instrumented`], the handler wrapper that feeds them from every sandbox event.
//!
//! Ready means: registered with the runtime and synchronised on the current connection, and the
//! handler's first reconciliation of the node with the runtime's sandboxes done (the handler
//! publishes that itself).

use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Instant;

use async_trait::async_trait;
use nauti_api::daemon::Health;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

use crate::core::{Container, PodSandbox, RuntimeInfo};
use crate::handler::{HandlerError, SandboxHandler};

/// Labels of a sandbox event's count.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct EventLabels {
    /// `run_pod_sandbox`, `stop_pod_sandbox`, `remove_pod_sandbox` or `synchronize`.
    pub event: &'static str,
    /// `ok` or `error`.
    pub result: &'static str,
}

/// Label of an annotation patch's end.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct AnnotationLabels {
    /// `written`, `dropped` (pod gone or replaced) or `given_up` (attempts exhausted).
    pub result: &'static str,
}

/// Every metric of the plugin.
pub struct Metrics {
    registry: Registry,
    /// Sandbox events handled, by event and result.
    pub events: Family<EventLabels, Counter>,
    /// Time from `RunPodSandbox` to its answer, in seconds.
    pub run_pod_sandbox_seconds: Histogram,
    /// Connections to the runtime that reached `Synchronize`.
    pub runtime_connections: Counter,
    /// 1 while synchronised with the runtime on the current connection.
    pub runtime_connected: Gauge,
    /// Annotation patches ended, by result.
    pub annotations: Family<AnnotationLabels, Counter>,
    /// Annotation patches under way (waiting for the API server or for a retry).
    pub annotations_pending: Gauge,
    /// Addresses of this node's block held by sandboxes.
    pub addresses_allocated: Gauge,
    /// Addresses of this node's block that can be handed out (block minus reserved ones).
    pub addresses_usable: Gauge,
    synchronized: AtomicBool,
    reconciled: AtomicBool,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Default for Metrics {
    fn default() -> Self {
        Self::new()
    }
}

impl Metrics {
    /// Registers every metric under the `nauti_nri_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nauti_nri");
        let events = Family::<EventLabels, Counter>::default();
        // 1 ms to about 4 s.
        let run_pod_sandbox_seconds = Histogram::new(exponential_buckets(0.001, 2.0, 13));
        let runtime_connections = Counter::default();
        let runtime_connected = Gauge::default();
        let annotations = Family::<AnnotationLabels, Counter>::default();
        let annotations_pending = Gauge::default();
        let addresses_allocated = Gauge::default();
        let addresses_usable = Gauge::default();
        registry.register(
            "sandbox_events",
            "Pod sandbox events handled, by event and result",
            events.clone(),
        );
        registry.register(
            "run_pod_sandbox_seconds",
            "Time from RunPodSandbox to the plugin's answer",
            run_pod_sandbox_seconds.clone(),
        );
        registry.register(
            "runtime_connections",
            "Connections to the runtime that reached Synchronize",
            runtime_connections.clone(),
        );
        registry.register(
            "runtime_connected",
            "1 while synchronised with the runtime",
            runtime_connected.clone(),
        );
        registry.register(
            "annotations",
            "nauti.io annotation patches ended, by result",
            annotations.clone(),
        );
        registry.register(
            "annotations_pending",
            "nauti.io annotation patches under way",
            annotations_pending.clone(),
        );
        registry.register(
            "addresses_allocated",
            "Addresses of the node block held by sandboxes",
            addresses_allocated.clone(),
        );
        registry.register(
            "addresses_usable",
            "Addresses of the node block that can be handed out",
            addresses_usable.clone(),
        );
        Self {
            registry,
            events,
            run_pod_sandbox_seconds,
            runtime_connections,
            runtime_connected,
            annotations,
            annotations_pending,
            addresses_allocated,
            addresses_usable,
            synchronized: AtomicBool::new(false),
            reconciled: AtomicBool::new(false),
        }
    }

    fn count(&self, event: &'static str, ok: bool) {
        let result = if ok { "ok" } else { "error" };
        self.events
            .get_or_create(&EventLabels { event, result })
            .inc();
    }

    /// Counts the end of an annotation patch.
    pub fn annotation(&self, result: &'static str) {
        self.annotations
            .get_or_create(&AnnotationLabels { result })
            .inc();
    }

    fn set_synchronized(&self, up: bool) {
        self.synchronized.store(up, Ordering::Relaxed);
        self.runtime_connected.set(i64::from(up));
    }

    /// Set by the handler once its first reconciliation with the runtime is done (a handler
    /// that keeps no state sets it at start).
    pub fn set_reconciled(&self, done: bool) {
        self.reconciled.store(done, Ordering::Relaxed);
    }

    /// The text exposition.
    pub fn render(&self) -> String {
        let mut out = String::new();
        // Writing into a String cannot fail.
        let _ = encode(&mut out, &self.registry);
        out
    }
}

impl Health for Metrics {
    fn render_metrics(&self) -> String {
        self.render()
    }

    fn not_ready(&self) -> Option<String> {
        if !self.synchronized.load(Ordering::Relaxed) {
            return Some("not registered and synchronised with the runtime".to_owned());
        }
        (!self.reconciled.load(Ordering::Relaxed))
            .then(|| "the node is not reconciled with the runtime yet".to_owned())
    }
}

/// A [`SandboxHandler`] that counts and times every event of the one it wraps.
#[derive(Debug)]
pub struct Instrumented<H> {
    inner: H,
    metrics: Arc<Metrics>,
}

impl<H> Instrumented<H> {
    /// Wraps `inner`, reporting into `metrics`.
    pub fn new(inner: H, metrics: Arc<Metrics>) -> Self {
        Self { inner, metrics }
    }
}

#[async_trait]
impl<H: SandboxHandler> SandboxHandler for Instrumented<H> {
    async fn configure(&self, runtime: &RuntimeInfo, config: &str) -> Result<(), HandlerError> {
        self.inner.configure(runtime, config).await
    }

    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<(), HandlerError> {
        let result = self.inner.synchronize(pods, containers).await;
        self.metrics.count("synchronize", result.is_ok());
        if result.is_ok() {
            self.metrics.runtime_connections.inc();
            self.metrics.set_synchronized(true);
        }
        result
    }

    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let started = Instant::now();
        let result = self.inner.run_pod_sandbox(pod).await;
        self.metrics
            .run_pod_sandbox_seconds
            .observe(started.elapsed().as_secs_f64());
        self.metrics.count("run_pod_sandbox", result.is_ok());
        result
    }

    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let result = self.inner.stop_pod_sandbox(pod).await;
        self.metrics.count("stop_pod_sandbox", result.is_ok());
        result
    }

    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let result = self.inner.remove_pod_sandbox(pod).await;
        self.metrics.count("remove_pod_sandbox", result.is_ok());
        result
    }

    async fn disconnected(&self) {
        self.metrics.set_synchronized(false);
        self.inner.disconnected().await;
    }

    async fn shutdown(&self) {
        self.inner.shutdown().await;
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::handler::LoggingHandler;

    fn pod() -> PodSandbox {
        PodSandbox {
            id: "a".repeat(64),
            name: "p".into(),
            namespace: "default".into(),
            uid: "u".into(),
            ..Default::default()
        }
    }

    #[tokio::test]
    async fn events_are_counted_and_timed_and_readiness_follows_the_connection() {
        let metrics = Arc::new(Metrics::new());
        let handler = Instrumented::new(LoggingHandler, metrics.clone());
        assert!(metrics.not_ready().unwrap().contains("runtime"));

        handler.synchronize(vec![], vec![]).await.unwrap();
        assert!(metrics.not_ready().unwrap().contains("reconciled"));
        metrics.set_reconciled(true);
        assert_eq!(metrics.not_ready(), None);
        handler.run_pod_sandbox(pod()).await.unwrap();
        handler.run_pod_sandbox(pod()).await.unwrap();
        handler.remove_pod_sandbox(pod()).await.unwrap();
        let text = metrics.render();
        for line in [
            "nauti_nri_sandbox_events_total{event=\"run_pod_sandbox\",result=\"ok\"} 2",
            "nauti_nri_sandbox_events_total{event=\"remove_pod_sandbox\",result=\"ok\"} 1",
            "nauti_nri_run_pod_sandbox_seconds_count 2",
            "nauti_nri_runtime_connections_total 1",
            "nauti_nri_runtime_connected 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }

        handler.disconnected().await;
        assert!(metrics.not_ready().is_some());
        assert!(metrics.render().contains("nauti_nri_runtime_connected 0"));
    }

    struct Refusing;

    #[async_trait]
    impl SandboxHandler for Refusing {
        async fn synchronize(
            &self,
            _: Vec<PodSandbox>,
            _: Vec<Container>,
        ) -> Result<(), HandlerError> {
            Ok(())
        }
        async fn run_pod_sandbox(&self, _: PodSandbox) -> Result<(), HandlerError> {
            Err(HandlerError::failed("no", "nope"))
        }
        async fn stop_pod_sandbox(&self, _: PodSandbox) -> Result<(), HandlerError> {
            Ok(())
        }
        async fn remove_pod_sandbox(&self, _: PodSandbox) -> Result<(), HandlerError> {
            Ok(())
        }
    }

    #[tokio::test]
    async fn failures_are_counted_apart() {
        let metrics = Arc::new(Metrics::new());
        let handler = Instrumented::new(Refusing, metrics.clone());
        assert!(handler.run_pod_sandbox(pod()).await.is_err());
        let text = metrics.render();
        assert!(
            text.contains(
                "nauti_nri_sandbox_events_total{event=\"run_pod_sandbox\",result=\"error\"} 1"
            ),
            "{text}"
        );
    }
}
