//! Prometheus metrics and readiness, served by `nauti_api::daemon::start_endpoints`.
//!
//! `/readyz` answers 200 once the index holds a full list of ServiceImports and EndpointSlices;
//! until then every query in our zones gets SERVFAIL.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::Duration;

use nauti_api::daemon::Health;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::metrics::histogram::{Histogram, exponential_buckets};
use prometheus_client::registry::Registry;

/// Labels of an answered query.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct QueryLabels {
    /// The query type (`A`, `SRV`, ...).
    pub qtype: &'static str,
    /// The response code (`NoError`, `NXDomain`, ...).
    pub rcode: &'static str,
}

/// Labels of a closed TCP connection.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ClosedLabels {
    /// Why: `peer`, `timeout` or `bad_length` (see `tcp::Closed`).
    pub reason: &'static str,
}

/// crossdns's metrics and readiness flag.
pub struct Metrics {
    registry: Registry,
    /// Queries answered, by type and response code.
    pub queries: Family<QueryLabels, Counter>,
    /// Time from a parsed request to its response handed to the transport.
    pub latency: Histogram,
    /// Records held by the index.
    pub records: Gauge,
    /// Watch errors (the watch retries with backoff).
    pub watch_errors: Counter,
    /// TCP connections open now.
    pub tcp_connections: Gauge,
    /// TCP connections closed as soon as accepted because `--max-tcp-connections` were open.
    pub tcp_refused: Counter,
    /// TCP connections closed, by reason.
    pub tcp_closed: Family<ClosedLabels, Counter>,
    synced: AtomicBool,
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
    /// Registers every metric under the `nauti_crossdns_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nauti_crossdns");
        let queries = Family::<QueryLabels, Counter>::default();
        // 1 µs .. ~16 ms.
        let latency = Histogram::new(exponential_buckets(1e-6, 2.0, 15));
        let records = Gauge::default();
        let watch_errors = Counter::default();
        registry.register(
            "queries",
            "DNS queries answered, by query type and response code",
            queries.clone(),
        );
        registry.register(
            "answer_latency_seconds",
            "Time to work out and send an answer",
            latency.clone(),
        );
        registry.register("records", "Records held by the index", records.clone());
        registry.register(
            "watch_errors",
            "Errors of the ServiceImport and EndpointSlice watches",
            watch_errors.clone(),
        );
        let tcp_connections = Gauge::default();
        let tcp_refused = Counter::default();
        let tcp_closed = Family::<ClosedLabels, Counter>::default();
        registry.register(
            "tcp_connections",
            "TCP connections open now",
            tcp_connections.clone(),
        );
        registry.register(
            "tcp_refused",
            "TCP connections closed at once because the most allowed were open",
            tcp_refused.clone(),
        );
        registry.register(
            "tcp_closed",
            "TCP connections closed, by reason (peer, timeout, bad_length)",
            tcp_closed.clone(),
        );
        Self {
            registry,
            queries,
            latency,
            records,
            watch_errors,
            tcp_connections,
            tcp_refused,
            tcp_closed,
            synced: AtomicBool::new(false),
        }
    }

    /// Counts one answered query.
    pub fn answered(&self, qtype: &'static str, rcode: &'static str, took: Duration) {
        // Static labels: counting a query allocates nothing.
        self.queries
            .get_or_create(&QueryLabels { qtype, rcode })
            .inc();
        self.latency.observe(took.as_secs_f64());
    }

    /// Counts one closed TCP connection.
    pub fn tcp_closed(&self, reason: &'static str) {
        self.tcp_closed
            .get_or_create(&ClosedLabels { reason })
            .inc();
    }

    /// Records that the index holds a full list.
    pub fn set_synced(&self) {
        self.synced.store(true, Ordering::Relaxed);
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
        (!self.synced.load(Ordering::Relaxed))
            .then(|| "ServiceImports and EndpointSlices not listed yet".to_owned())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_queries_latency_and_records() {
        let m = Metrics::new();
        m.answered("A", "NXDomain", Duration::from_micros(3));
        m.records.set(12);
        m.tcp_connections.set(3);
        m.tcp_refused.inc();
        m.tcp_closed("timeout");
        let text = m.render();
        for line in [
            "nauti_crossdns_tcp_connections 3",
            "nauti_crossdns_tcp_refused_total 1",
            "nauti_crossdns_tcp_closed_total{reason=\"timeout\"} 1",
            "nauti_crossdns_queries_total{qtype=\"A\",rcode=\"NXDomain\"} 1",
            "nauti_crossdns_answer_latency_seconds_count 1",
            "nauti_crossdns_records 12",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn readiness_waits_for_the_first_sync() {
        let m = Metrics::new();
        assert!(m.not_ready().unwrap().contains("not listed"));
        m.set_synced();
        assert_eq!(m.not_ready(), None);
    }
}
