//! Key rotation on real clusters (ClusterBed: a hub and two members behind NAT, installed as
//! `--test crosscluster` installs them). A TCP stream runs from a pod in east to a pod in west,
//! through both members' CNFs and the hub; mid-stream a fresh key is written into a gateway's
//! key Secret, as `nautictl rotate-keys` writes it (the same library function). The stream
//! ends with every byte, the receiver never waits long (the pause is about one handshake), and
//! the hub's Peer carries the new public key. Once for a member (east), once for the hub.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../crosscluster/cluster.rs"]
#[allow(
    dead_code,
    reason = "shared with --test crosscluster, which uses the rest"
)]
mod cluster;

use std::time::{Duration, Instant};

use nauti_octopus::controller::connect;
use nauti_octopus::controller::local::{WIREGUARD_KEY_SECRET, rotate_wireguard_key};
use nauti_testbed::cluster_bed::Cluster;
use nauti_testbed::require_root;

use cluster::{Member, NAMESPACE, install, pod_address, start_bed};

/// 1 MiB chunks, one every half second: a stream of 12 s.
const CHUNKS: u64 = 24;
/// The longest the receiver may see no new byte: a rotation costs about one handshake after
/// the other gateways' next pass, so well under this; a stream that waited for WireGuard's own
/// retry after a refused handshake (5 s) or a keepalive timeout (15 s) would fail.
const LONGEST_STALL: Duration = Duration::from_secs(4);
/// The sender gives up after this many seconds (a stream that never resumes ends the test).
const SENDER_LIMIT: u64 = 60;
/// How often the receiver writes down how much has arrived.
const SAMPLE_MS: u64 = 100;

#[test]
fn a_tcp_stream_survives_a_members_and_the_hubs_key_rotation() {
    require_root!();
    let bed = start_bed("rk", 1);
    let (east, west) = install(&bed);
    let hub = bed.cluster("hub").unwrap();

    // The receiver samples the size of what it got every SAMPLE_MS (monotonic milliseconds),
    // so a stall is measured where it is felt, without kubectl's latency.
    west.run_pod(
        "server",
        &[
            "sh",
            "-c",
            &format!(
                "for port in 5001 5002; do \
                   /usr/bin/nc.openbsd -l $port > /tmp/stream-$port & pid=$!; \
                   while :; do \
                     echo $(cut -d' ' -f1 /proc/uptime) $(stat -c %s /tmp/stream-$port 2>/dev/null || echo 0); \
                     kill -0 $pid 2>/dev/null || break; \
                     sleep 0.{SAMPLE_MS:03}; \
                   done > /tmp/samples-$port; \
                 done; sleep 3600"
            ),
        ],
    );
    east.run_pod("client", &["sleep", "3600"]);
    let server_ip = pod_address(west.cluster(), "server");
    wait_for_ping(&east, &server_ip);

    let runtime = tokio::runtime::Runtime::new().unwrap();
    for (port, rotated, peer) in [(5001, east.cluster(), "east"), (5002, hub, "hub")] {
        let old_key = peer_key(hub, peer);
        let new_key = stream_across_a_rotation(&runtime, &east, &west, &server_ip, port, rotated);
        assert_ne!(old_key, new_key);
        // The hub's Peer for the rotated cluster carries the new key (it did before the
        // stream ended, or the stream would not have resumed; a bounded wait all the same).
        let start = Instant::now();
        while peer_key(hub, peer) != new_key && start.elapsed() < Duration::from_secs(30) {
            std::thread::sleep(Duration::from_millis(250));
        }
        assert_eq!(
            peer_key(hub, peer),
            new_key,
            "the hub's Peer {peer} does not carry the rotated key"
        );
    }
}

/// Pings west's server from east's client until it answers (the tunnels come up with the
/// first packets).
fn wait_for_ping(east: &Member<'_>, server_ip: &str) {
    let mut last = String::new();
    for _ in 0..30 {
        match east.exec(
            "client",
            &["busybox", "ping", "-c", "2", "-W", "2", server_ip],
        ) {
            Ok(out) if out.contains(" 0% packet loss") => return,
            Ok(out) | Err(out) => last = out,
        }
        std::thread::sleep(Duration::from_secs(1));
    }
    panic!(
        "east's client cannot ping west's server at {server_ip}:\n{last}\n{}",
        east.diagnostics()
    );
}

/// `spec.publicKey` of the Peer `name` on the hub.
fn peer_key(hub: &Cluster, name: &str) -> String {
    hub.kubectl(&[
        "get",
        "peers.nauti.io",
        name,
        "-n",
        NAMESPACE,
        "-o",
        "jsonpath={.spec.publicKey}",
    ])
    .unwrap_or_default()
    .trim()
    .to_owned()
}

/// Bytes the server has received on `port`.
fn received(west: &Member<'_>, port: u16) -> u64 {
    west.exec(
        "server",
        &["stat", "-c", "%s", &format!("/tmp/stream-{port}")],
    )
    .ok()
    .and_then(|s| s.trim().parse().ok())
    .unwrap_or(0)
}

/// Streams CHUNKS MiB from east to west on `port`, rotating `rotated`'s gateway key once the
/// stream flows; asserts every byte arrived and the longest stall. Returns the new public key.
fn stream_across_a_rotation(
    runtime: &tokio::runtime::Runtime,
    east: &Member<'_>,
    west: &Member<'_>,
    server_ip: &str,
    port: u16,
    rotated: &Cluster,
) -> String {
    let stream = format!(
        "for i in $(seq {CHUNKS}); do head -c 1048576 /dev/zero; sleep 0.5; done \
         | timeout {SENDER_LIMIT} /usr/bin/nc.openbsd -N {server_ip} {port}"
    );
    let new_key = std::thread::scope(|scope| {
        let sender = scope.spawn(|| east.exec("client", &["sh", "-c", &stream]));
        let start = Instant::now();
        while received(west, port) < 3 << 20 {
            assert!(
                start.elapsed() < Duration::from_secs(20),
                "the stream on port {port} never got going\n{}",
                east.diagnostics()
            );
            std::thread::sleep(Duration::from_millis(250));
        }
        let rotation = runtime
            .block_on(async {
                let client = connect(Some(rotated.kubeconfig())).await?;
                anyhow::Ok(rotate_wireguard_key(client, NAMESPACE, WIREGUARD_KEY_SECRET).await?)
            })
            .unwrap_or_else(|e| panic!("{}: rotate the key: {e:#}", rotated.name));
        eprintln!(
            "{}: rotated {:?} -> {} with {} bytes received",
            rotated.name,
            rotation.old.as_ref().map(|k| k.public),
            rotation.new.public,
            received(west, port)
        );
        let sent = sender.join().unwrap();
        assert!(
            sent.is_ok(),
            "the stream's sender failed: {sent:?}\n{}",
            east.diagnostics()
        );
        rotation.new.public.to_string()
    });

    let total = CHUNKS << 20;
    let start = Instant::now();
    while received(west, port) < total && start.elapsed() < Duration::from_secs(10) {
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(
        received(west, port),
        total,
        "{}'s rotation lost bytes of the stream",
        rotated.name
    );
    // The sampler ends with the listener; its file then holds the whole stream's record.
    let mut samples = String::new();
    for _ in 0..20 {
        samples = west
            .exec("server", &["cat", &format!("/tmp/samples-{port}")])
            .unwrap_or_default();
        if samples.lines().any(|l| l.ends_with(&format!(" {total}"))) {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let stall = longest_stall(&samples, total)
        .unwrap_or_else(|| panic!("no usable samples at the receiver:\n{samples}"));
    eprintln!(
        "{}'s rotation: longest stall at the receiver {stall:?}",
        rotated.name
    );
    assert!(
        stall < LONGEST_STALL,
        "{}'s rotation stalled the stream for {stall:?} (limit {LONGEST_STALL:?})",
        rotated.name
    );
    new_key
}

/// The longest time between the first byte and `total` during which the received size did not
/// grow, from lines `<uptime seconds> <bytes>`.
fn longest_stall(samples: &str, total: u64) -> Option<Duration> {
    let points: Vec<(f64, u64)> = samples
        .lines()
        .filter_map(|l| {
            let (t, n) = l.trim().split_once(' ')?;
            Some((t.parse().ok()?, n.parse().ok()?))
        })
        .collect();
    let mut grew_at: Option<f64> = None;
    let mut last = 0;
    let mut longest = 0f64;
    for (t, n) in points {
        if n > last {
            if let Some(at) = grew_at {
                longest = longest.max(t - at);
            }
            grew_at = Some(t);
            last = n;
        }
        if n >= total {
            return Some(Duration::from_secs_f64(longest));
        }
    }
    None
}

#[test]
fn the_longest_stall_is_read_from_the_samples() {
    let samples = "10.0 0\n10.1 100\n10.2 100\n10.6 200\n13.1 200\n13.2 300\n13.3 300\n";
    assert_eq!(
        longest_stall(samples, 300),
        Some(Duration::from_secs_f64(13.2 - 10.6))
    );
    assert_eq!(longest_stall(samples, 400), None, "never complete");
    assert_eq!(longest_stall("garbage\n", 1), None);
}
