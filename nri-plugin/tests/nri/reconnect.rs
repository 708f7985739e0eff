//! The plugin loop against a runtime socket that goes away and comes back.

use std::sync::Arc;
use std::time::Duration;

use nauti_nri::core::{Backoff, PluginIdentity};
use nauti_nri::socket::NriSocket;
use nauti_nri::{PluginConfig, run};
use nauti_testbed::TestDir;
use tokio::net::UnixListener;
use tokio_util::sync::CancellationToken;

use crate::support::{FakeRuntime, Recorder, Seen, WAIT, mk_pod};

#[tokio::test]
async fn the_plugin_reconnects_registers_and_synchronizes_after_the_runtime_restarts() {
    let dir = TestDir::new("nri-reconnect").unwrap();
    let path = dir.path().join("nri.sock");
    let (recorder, calls) = Recorder::new();
    let config = PluginConfig {
        identity: PluginIdentity::new("nauti", "42").unwrap(),
        socket: NriSocket::Path(path.clone()),
        backoff: Backoff::new(Duration::from_millis(20), Duration::from_millis(200)),
        registration_timeout: WAIT,
    };
    let shutdown = CancellationToken::new();
    // The runtime is not there yet: the plugin retries until it is.
    let plugin = tokio::spawn(run(config, Arc::clone(&recorder), shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(300)).await;
    assert!(!plugin.is_finished());

    for round in 0..3 {
        let _ = std::fs::remove_file(&path);
        let listener = UnixListener::bind(&path).unwrap();
        let (stream, _) = tokio::time::timeout(WAIT, listener.accept())
            .await
            .unwrap()
            .unwrap();
        drop(listener);
        let mut runtime = FakeRuntime::start(stream).await;
        let registration = runtime.registration().await;
        assert_eq!(
            (
                registration.plugin_name.as_str(),
                registration.plugin_idx.as_str()
            ),
            ("nauti", "42")
        );
        assert_eq!(runtime.configure().await, 0b111);
        let name = format!("pod-{round}");
        runtime
            .synchronize(vec![mk_pod("default", &name, Some("/run/netns/x"))])
            .await;
        let synced = calls.until("Synchronize", |seen| match seen {
            Seen::Synchronize { pods, .. } => Some(pods),
            _ => None,
        });
        assert_eq!(synced.len(), 1);
        assert_eq!(
            synced[0].name, name,
            "round {round} synchronizes the state of that round"
        );
        // The runtime goes away (a containerd restart).
        runtime.shutdown().await;
    }

    shutdown.cancel();
    let stopped = tokio::time::timeout(WAIT, plugin).await.unwrap().unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
}

#[tokio::test]
async fn shutdown_stops_the_plugin_while_it_waits_for_the_runtime() {
    let dir = TestDir::new("nri-absent").unwrap();
    let (recorder, _calls) = Recorder::new();
    let config = PluginConfig {
        socket: NriSocket::Path(dir.path().join("never.sock")),
        backoff: Backoff::new(Duration::from_secs(30), Duration::from_secs(30)),
        ..PluginConfig::default()
    };
    let shutdown = CancellationToken::new();
    let plugin = tokio::spawn(run(config, recorder, shutdown.clone()));
    tokio::time::sleep(Duration::from_millis(100)).await;
    shutdown.cancel();
    let stopped = tokio::time::timeout(Duration::from_secs(5), plugin)
        .await
        .unwrap()
        .unwrap();
    assert!(stopped.is_ok(), "{stopped:?}");
}
