//! Two replicas: one leads, the other takes over when the leader stops.

use std::time::{Duration, Instant};

use nauti_testbed::require_root;

use crate::{Bed, eventually};

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_second_replica_takes_over_when_the_leader_stops() {
    require_root!();
    let bed = Bed::start("master-election").await;
    let mut first = bed.master("first", &[]);
    eventually("first holds the lease", Duration::from_secs(60), || async {
        (bed.lease_holder().await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let second = bed.master("second", &[]);
    eventually("second is ready", Duration::from_secs(60), || async {
        second.get("/readyz").await.filter(|(code, _)| *code == 200)
    })
    .await;

    bed.create_node("node-x", None).await;
    eventually("node-x annotated", Duration::from_secs(30), || async {
        bed.node_blocks().await["node-x"].clone()
    })
    .await;
    // Well past a lease duration: still only one leader.
    tokio::time::sleep(Duration::from_secs(4)).await;
    assert_eq!(bed.lease_holder().await.as_deref(), Some("first"));
    assert_eq!(first.metric("nauti_ovnmaster_leader").await, Some(1.0));
    assert_eq!(second.metric("nauti_ovnmaster_leader").await, Some(0.0));

    // SIGTERM: the leader releases the lease and exits; the standby takes over quickly.
    let stopped_at = Instant::now();
    first.daemon.stop(Duration::from_secs(10));
    assert!(!first.daemon.is_running());
    let log = first.log_text();
    assert!(log.contains("released the lease"), "{log}");
    assert!(log.contains("stopped"), "{log}");
    eventually(
        "second holds the lease",
        Duration::from_secs(10),
        || async { (bed.lease_holder().await.as_deref() == Some("second")).then_some(()) },
    )
    .await;
    let took = stopped_at.elapsed();
    assert!(took < Duration::from_secs(10), "takeover took {took:?}");

    bed.create_node("node-y", None).await;
    let blocks = eventually(
        "node-y annotated by the new leader",
        Duration::from_secs(30),
        || async {
            let all = bed.node_blocks().await;
            Some((all["node-x"].clone()?, all["node-y"].clone()?))
        },
    )
    .await;
    assert_ne!(blocks.0, blocks.1);
    assert_eq!(second.metric("nauti_ovnmaster_leader").await, Some(1.0));
    assert!(second.log_text().contains("became the leader"));
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_crashed_leaders_lease_is_taken_over_once_it_expires() {
    require_root!();
    let bed = Bed::start("master-crash").await;
    let mut first = bed.master("first", &[]);
    eventually("first holds the lease", Duration::from_secs(60), || async {
        (bed.lease_holder().await.as_deref() == Some("first")).then_some(())
    })
    .await;
    let second = bed.master("second", &[]);
    eventually("second is ready", Duration::from_secs(60), || async {
        second.get("/readyz").await.filter(|(code, _)| *code == 200)
    })
    .await;

    // SIGKILL: no release; the standby must wait out the 3 s lease, then take it.
    let killed_at = Instant::now();
    first.daemon.kill();
    eventually(
        "second holds the lease",
        Duration::from_secs(20),
        || async { (bed.lease_holder().await.as_deref() == Some("second")).then_some(()) },
    )
    .await;
    let took = killed_at.elapsed();
    assert!(
        took >= Duration::from_secs(2),
        "took over after {took:?}, before expiry"
    );
    assert!(took < Duration::from_secs(10), "takeover took {took:?}");

    bed.create_node("node-z", None).await;
    eventually(
        "node-z annotated by the new leader",
        Duration::from_secs(30),
        || async { bed.node_blocks().await["node-z"].clone() },
    )
    .await;
}
