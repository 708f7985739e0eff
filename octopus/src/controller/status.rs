//! Tunnel status: what the gateway's device says about each peer, as metrics (hub and member)
//! and, on the hub, in each member's `Peer` status (status subresource; the hub owns it).
//!
//! The decisions are [`crate::core::tunnel`]'s; this module reads the device, matches its
//! peers to Peers by public key and writes.

use std::collections::BTreeMap;
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use nauti_api::Peer;
use nauti_api::conditions::{new_condition, set_condition};
use nauti_api::peer::condition;

use super::metrics::Metrics;
use crate::core::tunnel::epoch_secs;
use crate::core::{
    PublicKey, TunnelSample, TunnelStatus, WritePacing, WrittenStatus, should_write, tunnel_status,
};
use crate::wg::DeviceState;

/// Each Peer (by name) the device has a peer for, with its tunnel status. `peers` are the
/// Peers to report on; the handshake each Peer's status recorded counts as the previous look,
/// so a restarted device does not call a once-connected peer never connected.
pub fn observe(
    state: &DeviceState,
    peers: &[Peer],
    now: SystemTime,
) -> Vec<(String, TunnelStatus)> {
    let mut out = Vec::new();
    for peer in peers {
        let Some(name) = peer.metadata.name.clone() else {
            continue;
        };
        let Ok(key) = peer.spec.public_key.parse::<PublicKey>() else {
            continue;
        };
        let Some(device_peer) = state.peers.iter().find(|p| p.config.public_key == key) else {
            continue;
        };
        let current = TunnelSample {
            last_handshake: device_peer.last_handshake,
            rx_bytes: device_peer.rx_bytes,
            tx_bytes: device_peer.tx_bytes,
        };
        let previous = TunnelSample {
            last_handshake: recorded_handshake(peer),
            ..TunnelSample::default()
        };
        out.push((name, tunnel_status(&current, Some(&previous), now)));
    }
    out
}

fn recorded_handshake(peer: &Peer) -> Option<SystemTime> {
    let time = peer.status.as_ref()?.last_handshake.as_ref()?;
    let secs = u64::try_from(time.0.as_second()).ok()?;
    Some(SystemTime::UNIX_EPOCH + Duration::from_secs(secs))
}

/// Exports `statuses` as the per-peer tunnel metrics, dropping peers no longer reported.
pub fn record_metrics(metrics: &Metrics, statuses: &[(String, TunnelStatus)]) {
    metrics.clear_tunnels();
    for (name, status) in statuses {
        metrics.record_tunnel(
            name,
            status.ready,
            epoch_secs(status.last_handshake),
            status.rx_bytes,
            status.tx_bytes,
        );
    }
}

/// Writes tunnel status into Peers, paced per Peer ([`should_write`]).
#[derive(Debug, Default)]
pub struct StatusWriter {
    written: BTreeMap<String, WrittenStatus>,
    pacing: WritePacing,
}

impl StatusWriter {
    /// A writer with the default pacing.
    pub fn new() -> Self {
        Self::default()
    }

    /// Writes each status whose change calls for it; `stored` are the Peers as last read (their
    /// other conditions are kept). Returns how many writes failed.
    pub async fn write(
        &mut self,
        api: &Api<Peer>,
        stored: &[Peer],
        statuses: &[(String, TunnelStatus)],
        now: SystemTime,
    ) -> usize {
        let mut failures = 0;
        self.written
            .retain(|name, _| statuses.iter().any(|(n, _)| n == name));
        for (name, wanted) in statuses {
            let Some(peer) = stored
                .iter()
                .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            else {
                continue;
            };
            let last = self.written.get(name).cloned().or_else(|| as_written(peer));
            if !should_write(wanted, last.as_ref(), now, self.pacing) {
                continue;
            }
            match write_one(api, peer, wanted).await {
                Ok(()) => {
                    self.written.insert(
                        name.clone(),
                        WrittenStatus {
                            at: now,
                            ready: wanted.ready,
                            reason: wanted.reason.to_owned(),
                            message: wanted.message.clone(),
                            last_handshake_secs: epoch_secs(wanted.last_handshake),
                        },
                    );
                }
                Err(error) => {
                    failures += 1;
                    tracing::warn!(peer = %name, %error, "cannot write the tunnel status");
                }
            }
        }
        failures
    }
}

/// What a Peer's stored status says was written, as if long ago (a restarted hub writes each
/// Peer once when anything differs).
fn as_written(peer: &Peer) -> Option<WrittenStatus> {
    let status = peer.status.as_ref()?;
    let ready = status.condition(condition::READY)?;
    Some(WrittenStatus {
        at: SystemTime::UNIX_EPOCH,
        ready: ready.status == "True",
        reason: ready.reason.clone(),
        message: ready.message.clone(),
        last_handshake_secs: recorded_handshake(peer)
            .and_then(|t| t.duration_since(SystemTime::UNIX_EPOCH).ok())
            .map(|d| d.as_secs()),
    })
}

async fn write_one(api: &Api<Peer>, peer: &Peer, wanted: &TunnelStatus) -> Result<(), kube::Error> {
    let name = peer.metadata.name.as_deref().unwrap_or_default();
    let mut conditions = peer
        .status
        .as_ref()
        .map(|s| s.conditions.clone())
        .unwrap_or_default();
    let transition = peer
        .status
        .as_ref()
        .and_then(|s| s.condition(condition::READY))
        .is_none_or(|c| c.reason != wanted.reason);
    set_condition(
        &mut conditions,
        new_condition(
            condition::READY,
            Some(wanted.ready),
            wanted.reason,
            wanted.message.clone(),
            peer.metadata.generation,
            Time(jiff::Timestamp::now()),
        ),
    );
    let last_handshake = epoch_secs(wanted.last_handshake)
        .and_then(|secs| i64::try_from(secs).ok())
        .and_then(|secs| jiff::Timestamp::from_second(secs).ok())
        .map(Time);
    let patch = serde_json::json!({
        "status": {"conditions": conditions, "lastHandshake": last_handshake}
    });
    api.patch_status(name, &PatchParams::default(), &Patch::Merge(patch))
        .await?;
    if transition {
        tracing::info!(
            peer = name,
            ready = wanted.ready,
            reason = wanted.reason,
            message = %wanted.message,
            "tunnel status"
        );
    }
    Ok(())
}
