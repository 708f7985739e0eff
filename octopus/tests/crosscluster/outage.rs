//! Issue test 4: the hub's API server stops answering under an established cross-cluster TCP
//! stream; the stream keeps flowing, the hub's gateway keeps its lead (no restart), and once the
//! API server is back the hub's passes succeed again.

use std::time::Duration;

use nauti_testbed::cluster_bed::{Cluster, ClusterBed};

use crate::cluster::{Member, NAMESPACE};

/// 1 MiB chunks, one every half second: a stream of 18 s.
const CHUNKS: u64 = 36;
/// Longer than the hub lease's duration (15 s): a gateway that stepped down would have.
const OUTAGE: Duration = Duration::from_secs(16);

/// Resumes the API server however the phase ends.
struct Outage<'a>(&'a Cluster);

impl Drop for Outage<'_> {
    fn drop(&mut self) {
        let _ = self.0.control_plane.resume_apiserver();
    }
}

fn received(west: &Member<'_>) -> u64 {
    west.exec("server", &["stat", "-c", "%s", "/tmp/stream"])
        .ok()
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(0)
}

fn hub_restarts(hub: &Cluster) -> String {
    hub.kubectl(&[
        "get",
        "pods",
        "-n",
        NAMESPACE,
        "-l",
        "app=octopus-hub",
        "-o",
        "jsonpath={.items[*].status.containerStatuses[*].restartCount}",
    ])
    .unwrap_or_default()
}

pub fn a_stream_outlives_the_hubs_api_server(
    bed: &ClusterBed,
    east: &Member<'_>,
    west: &Member<'_>,
    server_ip: &str,
) {
    let hub = bed.cluster("hub").unwrap();
    let restarts_before = hub_restarts(hub);
    let stream = format!(
        "for i in $(seq {CHUNKS}); do head -c 1048576 /dev/zero; sleep 0.5; done \
         | /usr/bin/nc.openbsd -N {server_ip} 5002"
    );
    std::thread::scope(|scope| {
        let sender = scope.spawn(|| east.exec("client", &["sh", "-c", &stream]));
        let mut flowing = false;
        for _ in 0..40 {
            if received(west) > 0 {
                flowing = true;
                break;
            }
            std::thread::sleep(Duration::from_millis(250));
        }
        assert!(flowing, "the stream never started\n{}", east.diagnostics());

        hub.control_plane.pause_apiserver().unwrap();
        let outage = Outage(hub);
        let at_start = received(west);
        std::thread::sleep(OUTAGE);
        let at_end = received(west);
        drop(outage);
        assert!(
            at_end > at_start,
            "the stream stopped while the hub's API server was down: {at_start} -> {at_end} bytes"
        );
        let sent = sender.join().unwrap();
        assert!(sent.is_ok(), "the stream's sender failed: {sent:?}");
    });
    let mut total = 0;
    for _ in 0..20 {
        total = received(west);
        if total == CHUNKS << 20 {
            break;
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    assert_eq!(total, CHUNKS << 20, "bytes were lost across the outage");
    assert_eq!(
        hub_restarts(hub),
        restarts_before,
        "the hub's gateway restarted during the outage (it gave up its lease)"
    );

    // Back: the hub answers, and its gateway is still the ready leader.
    hub.kubectl(&[
        "wait",
        "-n",
        NAMESPACE,
        "--for=condition=Ready",
        "pod",
        "-l",
        "app=octopus-hub",
        "--timeout=60s",
    ])
    .unwrap_or_else(|e| panic!("the hub's gateway is not ready after the outage: {e}"));
}
