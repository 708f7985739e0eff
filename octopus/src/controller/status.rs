//! Tunnel status: what the gateway's device says about each peer, as metrics (hub and member)
//! and, on the hub, in each member's `Peer` status (status subresource; the hub owns it).
//!
//! The decisions are [`crate::core::tunnel`]'s; this module reads the device, matches its
//! peers to Peers by public key, adds the latency [`super::probe`] measures through the tunnel
//! to each member's gateway address, and writes.

use std::collections::BTreeMap;
use std::net::IpAddr;
use std::time::{Duration, SystemTime};

use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use kube::api::{Api, Patch, PatchParams};
use nauti_api::conditions::{new_condition, set_condition};
use nauti_api::peer::condition;
use nauti_api::{NetworkConfig, Peer};

use super::metrics::Metrics;
use super::probe::{self, ProbeSettings};
use crate::core::icmp::round_ms;
use crate::core::tunnel::epoch_secs;
use crate::core::{
    PublicKey, TunnelSample, TunnelStatus, WritePacing, WrittenStatus, should_write, tunnel_status,
};
use crate::hub::assign::assigned_slice;
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
            endpoint: device_peer.config.endpoint,
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

/// Where the hub pings a member through the tunnel: the gateway address (first usable
/// address) of the slice the hub assigned it, which the member's router answers.
pub fn probe_target(peer: &Peer) -> Option<IpAddr> {
    assigned_slice(peer).and_then(|slice| NetworkConfig::gateway_of(&slice))
}

/// Measures the latency to each member of `statuses` (all at once, each bounded by
/// `settings`) and sets it in its status; unset for a member without a slice, or whose
/// gateway did not answer.
pub async fn add_latency(
    statuses: &mut [(String, TunnelStatus)],
    peers: &[Peer],
    source: Option<IpAddr>,
    settings: ProbeSettings,
) {
    let probes = statuses.iter().map(|(name, _)| {
        let target = peers
            .iter()
            .find(|p| p.metadata.name.as_deref() == Some(name.as_str()))
            .and_then(probe_target);
        async move {
            let target = target?;
            match probe::round_trip(source, target, settings).await {
                Ok(rtt) => rtt.map(round_ms),
                Err(error) => {
                    tracing::debug!(peer = %name, %target, %error, "cannot probe the latency");
                    None
                }
            }
        }
    });
    let latencies = futures::future::join_all(probes).await;
    for ((_, status), latency) in statuses.iter_mut().zip(latencies) {
        status.latency_ms = latency;
    }
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
                            latency_ms: wanted.latency_ms,
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
        latency_ms: status.latency_ms,
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
        "status": {
            "conditions": conditions,
            "lastHandshake": last_handshake,
            // null removes a latency no longer measured (merge patch).
            "latencyMs": wanted.latency_ms,
            "rxBytes": wanted.rx_bytes,
            "txBytes": wanted.tx_bytes,
        }
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

#[cfg(test)]
mod tests {
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
    use nauti_api::peer::PeerStatus;
    use nauti_api::testutil::mk_peer;

    use super::*;
    use crate::core::DevicePeer;
    use crate::core::tunnel::reason;
    use crate::wg::PeerState;

    fn at(secs: u64) -> SystemTime {
        SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
    }

    fn key(byte: u8) -> PublicKey {
        PublicKey([byte; 32])
    }

    fn peer_with_key(name: &str, byte: u8, recorded: Option<i64>) -> Peer {
        let mut peer = mk_peer(name, ["10.113.0.0/16".parse().unwrap()]);
        peer.spec.public_key = key(byte).to_string();
        peer.status = recorded.map(|secs| PeerStatus {
            last_handshake: Some(Time(jiff::Timestamp::from_second(secs).unwrap())),
            ..PeerStatus::default()
        });
        peer
    }

    fn device(peers: Vec<(u8, Option<u64>, u64)>) -> DeviceState {
        DeviceState {
            public_key: key(0),
            listen_port: 51820,
            peers: peers
                .into_iter()
                .map(|(byte, handshake, bytes)| PeerState {
                    config: DevicePeer {
                        public_key: key(byte),
                        endpoint: None,
                        allowed_ips: Vec::new(),
                        keepalive: None,
                    },
                    last_handshake: handshake.map(at),
                    rx_bytes: bytes,
                    tx_bytes: bytes,
                })
                .collect(),
        }
    }

    #[test]
    fn peers_are_matched_to_the_device_by_public_key() {
        let state = device(vec![(2, Some(990), 100), (1, None, 0)]);
        let peers = [
            peer_with_key("a", 1, None),
            peer_with_key("b", 2, None),
            peer_with_key("not-on-device", 3, None),
        ];
        let statuses = observe(&state, &peers, at(1000));
        let names: Vec<&str> = statuses.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            names,
            ["a", "b"],
            "a Peer without a device peer is not reported"
        );
        assert_eq!(statuses[0].1.reason, reason::NEVER_CONNECTED);
        assert_eq!(statuses[1].1.reason, reason::CONNECTED);
        assert_eq!(statuses[1].1.rx_bytes, 100);
    }

    #[test]
    fn the_recorded_handshake_survives_a_device_restart() {
        let state = device(vec![(1, None, 0)]);
        let peers = [peer_with_key("a", 1, Some(400))];
        let statuses = observe(&state, &peers, at(1000));
        assert_eq!(statuses[0].1.reason, reason::NOT_ANSWERING);
        assert_eq!(statuses[0].1.last_handshake, Some(at(400)));
    }

    #[test]
    fn the_probe_goes_to_the_gateway_address_of_the_assigned_slice() {
        let mut peer = peer_with_key("a", 1, None);
        peer.metadata.generation = Some(2);
        assert_eq!(
            probe_target(&peer),
            None,
            "no Valid condition: no slice yet"
        );
        peer.status = Some(PeerStatus {
            conditions: vec![new_condition(
                condition::VALID,
                Some(true),
                condition::REASON_VALID,
                String::new(),
                Some(2),
                Time(jiff::Timestamp::now()),
            )],
            ..PeerStatus::default()
        });
        assert_eq!(probe_target(&peer), Some("10.113.0.1".parse().unwrap()));
    }

    #[test]
    fn the_stored_latency_counts_as_written() {
        let mut peer = peer_with_key("a", 1, Some(990));
        let mut wanted = tunnel_status(
            &TunnelSample {
                last_handshake: Some(at(990)),
                ..TunnelSample::default()
            },
            None,
            at(1000),
        );
        wanted.latency_ms = Some(12);
        let status = peer.status.as_mut().unwrap();
        status.latency_ms = Some(3);
        status.conditions.push(new_condition(
            condition::READY,
            Some(true),
            reason::CONNECTED,
            wanted.message.clone(),
            None,
            Time(jiff::Timestamp::now()),
        ));
        let written = as_written(&peer).unwrap();
        assert_eq!(written.latency_ms, Some(3));
        assert!(
            should_write(&wanted, Some(&written), at(1000), WritePacing::default()),
            "3 ms stored, 12 ms measured"
        );
        peer.status.as_mut().unwrap().latency_ms = Some(12);
        let written = as_written(&peer).unwrap();
        assert!(!should_write(
            &wanted,
            Some(&written),
            at(1000),
            WritePacing::default()
        ));
    }

    #[test]
    fn the_stored_ready_condition_counts_as_written() {
        let mut peer = peer_with_key("a", 1, Some(990));
        let wanted = tunnel_status(
            &TunnelSample {
                last_handshake: Some(at(990)),
                ..TunnelSample::default()
            },
            None,
            at(1000),
        );
        peer.status.as_mut().unwrap().conditions.push(new_condition(
            condition::READY,
            Some(true),
            reason::CONNECTED,
            wanted.message.clone(),
            None,
            Time(jiff::Timestamp::now()),
        ));
        let written = as_written(&peer).unwrap();
        assert!(
            !should_write(&wanted, Some(&written), at(1000), WritePacing::default()),
            "a restarted hub does not rewrite what is already stored"
        );
    }
}
