//! Prometheus metrics and readiness, served by `nauti_api::daemon::serve`.
//!
//! `/healthz` answers as long as the process serves requests (liveness); `/readyz` answers 200
//! only once the northbound database is connected and the Node and Pod caches are filled, so a
//! standby replica is ready too (it can take over at once). `/metrics` is the text exposition.

use std::sync::atomic::{AtomicBool, Ordering};

use nauti_api::daemon::Health;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of a reconcile's outcome (`ok`, or the error's stable label).
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ResultLabel {
    /// `ok` or an error label.
    pub result: String,
}

/// The controller's metrics and readiness flags.
pub struct Metrics {
    registry: Registry,
    /// Reconciles run, by outcome.
    pub reconciles: Family<ResultLabel, Counter>,
    /// Node blocks written.
    pub blocks_assigned: Counter,
    /// Node annotations found invalid and replaced.
    pub bad_annotations: Counter,
    /// Nodes that could not get a block.
    pub blocks_exhausted: Counter,
    /// Pod ports removed by garbage collection.
    pub ports_collected: Counter,
    /// 1 while this replica leads.
    pub leader: Gauge,
    nb_connected: AtomicBool,
    caches_synced: AtomicBool,
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
    /// Registers every metric under the `nauti_ovnmaster_` prefix.
    pub fn new() -> Self {
        let mut registry = Registry::with_prefix("nauti_ovnmaster");
        let reconciles = Family::<ResultLabel, Counter>::default();
        let blocks_assigned = Counter::default();
        let bad_annotations = Counter::default();
        let blocks_exhausted = Counter::default();
        let ports_collected = Counter::default();
        let leader = Gauge::default();
        registry.register(
            "reconciles",
            "Reconciles run, by result",
            reconciles.clone(),
        );
        registry.register(
            "blocks_assigned",
            "Node blocks written to nauti.io/node-cidr",
            blocks_assigned.clone(),
        );
        registry.register(
            "bad_node_annotations",
            "nauti.io/node-cidr values found invalid and replaced",
            bad_annotations.clone(),
        );
        registry.register(
            "blocks_exhausted",
            "Times a node found no free block in the cluster subnet",
            blocks_exhausted.clone(),
        );
        registry.register(
            "ports_collected",
            "Logical switch ports of deleted pods removed",
            ports_collected.clone(),
        );
        registry.register(
            "leader",
            "1 while this replica holds the lease",
            leader.clone(),
        );
        Self {
            registry,
            reconciles,
            blocks_assigned,
            bad_annotations,
            blocks_exhausted,
            ports_collected,
            leader,
            nb_connected: AtomicBool::new(false),
            caches_synced: AtomicBool::new(false),
        }
    }

    /// Counts one reconcile.
    pub fn reconciled(&self, result: &str) {
        self.reconciles
            .get_or_create(&ResultLabel {
                result: result.to_owned(),
            })
            .inc();
    }

    /// Records whether the northbound connection is up.
    pub fn set_nb_connected(&self, up: bool) {
        self.nb_connected.store(up, Ordering::Relaxed);
    }

    /// Records that the Node and Pod caches hold a full list.
    pub fn set_caches_synced(&self) {
        self.caches_synced.store(true, Ordering::Relaxed);
    }

    /// `None` when ready, else what is missing.
    pub fn not_ready(&self) -> Option<String> {
        let mut missing = Vec::new();
        if !self.nb_connected.load(Ordering::Relaxed) {
            missing.push("OVN northbound not connected");
        }
        if !self.caches_synced.load(Ordering::Relaxed) {
            missing.push("Node/Pod caches not synced");
        }
        (!missing.is_empty()).then(|| missing.join("; "))
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
        Metrics::not_ready(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_exposition_names_every_counter_and_the_leader_gauge() {
        let m = Metrics::new();
        m.reconciled("ok");
        m.blocks_assigned.inc();
        m.ports_collected.inc();
        m.leader.set(1);
        let text = m.render();
        for line in [
            "nauti_ovnmaster_reconciles_total{result=\"ok\"} 1",
            "nauti_ovnmaster_blocks_assigned_total 1",
            "nauti_ovnmaster_ports_collected_total 1",
            "nauti_ovnmaster_leader 1",
        ] {
            assert!(text.contains(line), "{line} missing in\n{text}");
        }
    }

    #[test]
    fn readiness_names_what_is_missing() {
        let m = Metrics::new();
        assert!(m.not_ready().unwrap().contains("northbound"));
        m.set_nb_connected(true);
        assert!(m.not_ready().unwrap().contains("caches"));
        m.set_caches_synced();
        assert_eq!(m.not_ready(), None);
    }
}
