use super::*;

fn at(secs: u64) -> SystemTime {
    SystemTime::UNIX_EPOCH + Duration::from_secs(secs)
}

const NOW: u64 = 1_000_000;

fn sample(handshake: Option<u64>, rx: u64, tx: u64) -> TunnelSample {
    TunnelSample {
        last_handshake: handshake.map(at),
        rx_bytes: rx,
        tx_bytes: tx,
        endpoint: None,
    }
}

#[test]
fn no_handshake_ever_is_never_connected() {
    let status = tunnel_status(&sample(None, 0, 148), None, at(NOW));
    assert!(!status.ready);
    assert_eq!(status.reason, reason::NEVER_CONNECTED);
    assert_eq!(status.last_handshake, None);
    assert_eq!(status.tx_bytes, 148);
    assert!(
        status.message.contains("no WireGuard handshake"),
        "{}",
        status.message
    );
    assert!(status.message.contains("148 B sent"), "{}", status.message);
}

#[test]
fn a_peer_that_never_connected_says_which_side_must_act() {
    let behind_nat = tunnel_status(&sample(None, 0, 0), None, at(NOW));
    assert!(
        behind_nat
            .message
            .contains("no endpoint to dial, waiting for the peer to dial in"),
        "{}",
        behind_nat.message
    );
    let public = TunnelSample {
        endpoint: Some("198.18.0.99:51820".parse().unwrap()),
        ..sample(None, 0, 0)
    };
    let silent = tunnel_status(&public, None, at(NOW));
    assert_eq!(silent.reason, reason::NEVER_CONNECTED);
    assert!(
        silent
            .message
            .contains("198.18.0.99:51820 has not answered"),
        "{}",
        silent.message
    );
    // And once it had answered, the endpoint it stopped answering at.
    let stale = TunnelSample {
        endpoint: Some("198.18.0.12:40000".parse().unwrap()),
        ..sample(Some(NOW - 600), 1, 1)
    };
    let stale = tunnel_status(&stale, None, at(NOW));
    assert_eq!(stale.reason, reason::NOT_ANSWERING);
    assert!(
        stale
            .message
            .contains("(198.18.0.12:40000 has not answered)"),
        "{}",
        stale.message
    );
}

#[test]
fn a_recent_handshake_is_connected_and_names_its_age() {
    let status = tunnel_status(&sample(Some(NOW - 42), 5 << 20, 1536), None, at(NOW));
    assert!(status.ready);
    assert_eq!(status.reason, reason::CONNECTED);
    assert_eq!(status.last_handshake, Some(at(NOW - 42)));
    assert_eq!((status.rx_bytes, status.tx_bytes), (5 << 20, 1536));
    assert!(status.message.contains("42s ago"), "{}", status.message);
    assert!(
        status.message.contains("5.0 MiB received"),
        "{}",
        status.message
    );
    assert!(
        status.message.contains("1.5 KiB sent"),
        "{}",
        status.message
    );
}

#[test]
fn three_minutes_is_the_edge() {
    let fresh = tunnel_status(&sample(Some(NOW - 180), 1, 1), None, at(NOW));
    assert!(
        fresh.ready,
        "a rekey every 2 min plus slack: 180 s is still up"
    );
    let stale = tunnel_status(&sample(Some(NOW - 181), 1, 1), None, at(NOW));
    assert!(!stale.ready);
    assert_eq!(stale.reason, reason::NOT_ANSWERING);
    assert!(stale.message.contains("3m1s ago"), "{}", stale.message);
    assert!(
        stale.message.contains("stopped answering"),
        "{}",
        stale.message
    );
}

#[test]
fn hours_old_handshake_reads_in_hours() {
    let status = tunnel_status(&sample(Some(NOW - 7300), 0, 0), None, at(NOW));
    assert_eq!(status.reason, reason::NOT_ANSWERING);
    assert!(status.message.contains("2h1m ago"), "{}", status.message);
}

#[test]
fn a_restarted_device_remembers_the_earlier_handshake() {
    // The device restarted (failover): it has no handshake yet, but the peer had connected.
    let before = sample(Some(NOW - 600), 9000, 9000);
    let status = tunnel_status(&sample(None, 0, 0), Some(&before), at(NOW));
    assert_eq!(status.reason, reason::NOT_ANSWERING, "not NeverConnected");
    assert_eq!(status.last_handshake, Some(at(NOW - 600)));
    assert_eq!(status.rx_bytes, 0, "bytes are the device's counters now");

    // The newer of the two handshakes counts.
    let status = tunnel_status(&sample(Some(NOW - 10), 1, 1), Some(&before), at(NOW));
    assert_eq!(status.last_handshake, Some(at(NOW - 10)));
    assert!(status.ready);
    let status = tunnel_status(&sample(Some(NOW - 900), 1, 1), Some(&before), at(NOW));
    assert_eq!(status.last_handshake, Some(at(NOW - 600)));
}

#[test]
fn a_handshake_in_the_future_counts_as_now() {
    let status = tunnel_status(&sample(Some(NOW + 30), 1, 1), None, at(NOW));
    assert!(status.ready);
    assert!(status.message.contains("0s ago"), "{}", status.message);
}

fn written(status: &TunnelStatus, secs: u64) -> WrittenStatus {
    WrittenStatus {
        at: at(secs),
        ready: status.ready,
        reason: status.reason.to_owned(),
        message: status.message.clone(),
        last_handshake_secs: epoch_secs(status.last_handshake),
        latency_ms: status.latency_ms,
    }
}

#[test]
fn the_first_status_is_written_at_once() {
    let wanted = tunnel_status(&sample(None, 0, 0), None, at(NOW));
    assert!(should_write(&wanted, None, at(NOW), WritePacing::default()));
}

#[test]
fn an_unchanged_status_is_not_written_again() {
    let wanted = tunnel_status(&sample(Some(NOW - 5), 10, 10), None, at(NOW));
    let last = written(&wanted, NOW - 3600);
    assert!(!should_write(
        &wanted,
        Some(&last),
        at(NOW),
        WritePacing::default()
    ));
}

#[test]
fn a_transition_waits_only_for_the_minimum_interval() {
    let pacing = WritePacing::default();
    let before = tunnel_status(&sample(None, 0, 0), None, at(NOW));
    let last = written(&before, NOW - 4);
    let connected = tunnel_status(&sample(Some(NOW - 1), 10, 10), None, at(NOW));
    assert!(
        !should_write(&connected, Some(&last), at(NOW), pacing),
        "4 s after the last write: rate-limited"
    );
    assert!(should_write(&connected, Some(&last), at(NOW + 6), pacing));
}

#[test]
fn a_new_handshake_is_significant() {
    let pacing = WritePacing::default();
    let old = tunnel_status(&sample(Some(NOW - 130), 10, 10), None, at(NOW - 20));
    let last = written(&old, NOW - 20);
    let rekeyed = tunnel_status(&sample(Some(NOW - 2), 10, 10), None, at(NOW));
    assert!(should_write(&rekeyed, Some(&last), at(NOW), pacing));
}

#[test]
fn a_message_that_only_ages_is_refreshed_slowly() {
    let pacing = WritePacing::default();
    let first = tunnel_status(&sample(Some(NOW - 10), 10, 10), None, at(NOW));
    let last = written(&first, NOW);
    let later = tunnel_status(&sample(Some(NOW - 10), 5000, 5000), None, at(NOW + 30));
    assert_ne!(later.message, first.message);
    assert!(!should_write(&later, Some(&last), at(NOW + 30), pacing));
    assert!(should_write(&later, Some(&last), at(NOW + 60), pacing));
}

#[test]
fn a_wobbling_latency_waits_for_the_refresh_and_a_jump_does_not() {
    let pacing = WritePacing::default();
    let mut first = tunnel_status(&sample(Some(NOW - 10), 10, 10), None, at(NOW));
    first.latency_ms = Some(40);
    let last = written(&first, NOW);
    let mut wobble = first.clone();
    wobble.latency_ms = Some(47);
    assert!(!should_write(&wobble, Some(&last), at(NOW + 30), pacing));
    assert!(should_write(&wobble, Some(&last), at(NOW + 60), pacing));
    let mut jump = first.clone();
    jump.latency_ms = Some(90);
    assert!(
        !should_write(&jump, Some(&last), at(NOW + 5), pacing),
        "still no faster than the minimum interval"
    );
    assert!(should_write(&jump, Some(&last), at(NOW + 10), pacing));
    let mut lost = first.clone();
    lost.latency_ms = None;
    assert!(
        should_write(&lost, Some(&last), at(NOW + 10), pacing),
        "no reply any more"
    );
    let unchanged = first;
    assert!(!should_write(
        &unchanged,
        Some(&last),
        at(NOW + 3600),
        pacing
    ));
}
