//! Metrics and readiness of `octopus hub` and `octopus member`, served by
//! `nauti_api::daemon::start_endpoints`.

use std::sync::Mutex;

use nauti_api::daemon::Health;
use prometheus_client::encoding::EncodeLabelSet;
use prometheus_client::encoding::text::encode;
use prometheus_client::metrics::counter::Counter;
use prometheus_client::metrics::family::Family;
use prometheus_client::metrics::gauge::Gauge;
use prometheus_client::registry::Registry;

/// Label of the Peer gauge.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct ValidLabel {
    /// `true` or `false`, the `Valid` condition the hub set.
    pub valid: String,
}

/// Label of the per-peer tunnel metrics.
#[derive(Clone, Debug, Hash, PartialEq, Eq, EncodeLabelSet)]
pub struct PeerLabel {
    /// The Peer's name (its cluster ID).
    pub peer: String,
}

/// What both modes report.
pub struct Metrics {
    registry: Registry,
    /// Passes over the Peers.
    pub syncs: Counter,
    /// Passes that failed (retried on the next event or resync).
    pub sync_errors: Counter,
    /// Peers by the hub's verdict (hub) or as seen (member).
    pub peers: Family<ValidLabel, Gauge>,
    /// 1 once this cluster holds a slice.
    pub slice_assigned: Gauge,
    /// WireGuard peers the current plan wants (member).
    pub wanted_peers: Gauge,
    /// Routes into the tunnel the current plan wants (member).
    pub wanted_routes: Gauge,
    /// When the member's credential on the hub expires, in seconds since the epoch.
    pub credential_expiry: Gauge,
    /// 1 while this replica holds the lease (hub) and acts.
    pub leader: Gauge,
    /// 1 when the tunnel to the peer had a handshake within 3 minutes.
    pub tunnel_ready: Family<PeerLabel, Gauge>,
    /// The tunnel's last handshake, seconds since the epoch (absent before the first).
    pub tunnel_last_handshake: Family<PeerLabel, Gauge>,
    /// Bytes received from the peer through the tunnel.
    pub tunnel_rx_bytes: Family<PeerLabel, Gauge>,
    /// Bytes sent to the peer through the tunnel.
    pub tunnel_tx_bytes: Family<PeerLabel, Gauge>,
    not_ready: Mutex<Option<String>>,
}

impl std::fmt::Debug for Metrics {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Metrics").finish_non_exhaustive()
    }
}

impl Metrics {
    /// Registers every metric under `nauti_octopus_`; not ready until [`Metrics::set_ready`].
    pub fn new(starting: &str) -> Self {
        let mut registry = Registry::with_prefix("nauti_octopus");
        let syncs = Counter::default();
        let sync_errors = Counter::default();
        let peers = Family::<ValidLabel, Gauge>::default();
        let slice_assigned = Gauge::default();
        let wanted_peers = Gauge::default();
        let wanted_routes = Gauge::default();
        let credential_expiry = Gauge::default();
        registry.register("syncs", "Passes over the Peers", syncs.clone());
        registry.register(
            "sync_errors",
            "Passes over the Peers that failed and are retried",
            sync_errors.clone(),
        );
        registry.register("peers", "Peers by their Valid condition", peers.clone());
        registry.register(
            "slice_assigned",
            "1 once this cluster holds a slice of the global CIDR",
            slice_assigned.clone(),
        );
        registry.register(
            "wanted_peers",
            "WireGuard peers the gateway's plan wants",
            wanted_peers.clone(),
        );
        registry.register(
            "wanted_routes",
            "Networks the gateway's plan routes into the tunnel",
            wanted_routes.clone(),
        );
        registry.register(
            "credential_expiry_timestamp_seconds",
            "When the member's certificate on the hub expires",
            credential_expiry.clone(),
        );
        let leader = Gauge::default();
        registry.register(
            "leader",
            "1 while this replica holds the lease and acts",
            leader.clone(),
        );
        let tunnel_ready = Family::<PeerLabel, Gauge>::default();
        let tunnel_last_handshake = Family::<PeerLabel, Gauge>::default();
        let tunnel_rx_bytes = Family::<PeerLabel, Gauge>::default();
        let tunnel_tx_bytes = Family::<PeerLabel, Gauge>::default();
        registry.register(
            "tunnel_ready",
            "1 when the tunnel to the peer had a WireGuard handshake within 3 minutes",
            tunnel_ready.clone(),
        );
        registry.register(
            "tunnel_last_handshake_timestamp_seconds",
            "The tunnel's last WireGuard handshake with the peer",
            tunnel_last_handshake.clone(),
        );
        registry.register(
            "tunnel_received_bytes",
            "Bytes received from the peer through the tunnel since the device started",
            tunnel_rx_bytes.clone(),
        );
        registry.register(
            "tunnel_sent_bytes",
            "Bytes sent to the peer through the tunnel since the device started",
            tunnel_tx_bytes.clone(),
        );
        Self {
            registry,
            leader,
            tunnel_ready,
            tunnel_last_handshake,
            tunnel_rx_bytes,
            tunnel_tx_bytes,
            syncs,
            sync_errors,
            peers,
            slice_assigned,
            wanted_peers,
            wanted_routes,
            credential_expiry,
            not_ready: Mutex::new(Some(starting.to_owned())),
        }
    }

    /// Ready from now on.
    pub fn set_ready(&self) {
        if let Ok(mut guard) = self.not_ready.lock() {
            *guard = None;
        }
    }

    /// Forgets every peer's tunnel metrics (before recording the current ones).
    pub fn clear_tunnels(&self) {
        self.tunnel_ready.clear();
        self.tunnel_last_handshake.clear();
        self.tunnel_rx_bytes.clear();
        self.tunnel_tx_bytes.clear();
    }

    /// Records one peer's tunnel.
    pub fn record_tunnel(
        &self,
        peer: &str,
        ready: bool,
        last_handshake_secs: Option<u64>,
        rx_bytes: u64,
        tx_bytes: u64,
    ) {
        let label = PeerLabel {
            peer: peer.to_owned(),
        };
        let clamp = |v: u64| i64::try_from(v).unwrap_or(i64::MAX);
        self.tunnel_ready
            .get_or_create(&label)
            .set(i64::from(ready));
        if let Some(secs) = last_handshake_secs {
            self.tunnel_last_handshake
                .get_or_create(&label)
                .set(clamp(secs));
        }
        self.tunnel_rx_bytes
            .get_or_create(&label)
            .set(clamp(rx_bytes));
        self.tunnel_tx_bytes
            .get_or_create(&label)
            .set(clamp(tx_bytes));
    }

    /// Not ready, for `reason`.
    pub fn set_not_ready(&self, reason: impl Into<String>) {
        if let Ok(mut guard) = self.not_ready.lock() {
            *guard = Some(reason.into());
        }
    }
}

impl Health for Metrics {
    fn render_metrics(&self) -> String {
        let mut out = String::new();
        if encode(&mut out, &self.registry).is_err() {
            out.clear();
        }
        out
    }

    fn not_ready(&self) -> Option<String> {
        self.not_ready
            .lock()
            .map_or_else(|_| Some("state lock poisoned".to_owned()), |g| g.clone())
    }
}
