//! The plugin against real containerd 2.4 with NRI, in a node namespace of the test's own (root).

use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use nauti_nri::core::{Backoff, PluginIdentity};
use nauti_nri::socket::NriSocket;
use nauti_nri::{PluginConfig, PluginError, run};
use nauti_testbed::{Containerd, Netns, PodSpec, TestDir, require_root};
use tokio::runtime::Runtime;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;

use crate::support::{Calls, Recorder, Seen};

/// The plugin running in-process on its own tokio runtime; stopped on drop.
struct PluginGuard {
    runtime: Runtime,
    shutdown: CancellationToken,
    task: Option<JoinHandle<Result<(), PluginError>>>,
}

impl PluginGuard {
    fn start(socket: PathBuf, recorder: Arc<Recorder>) -> Self {
        let runtime = tokio::runtime::Builder::new_multi_thread()
            .worker_threads(2)
            .enable_all()
            .build()
            .unwrap();
        let shutdown = CancellationToken::new();
        let config = PluginConfig {
            identity: PluginIdentity::default(),
            socket: NriSocket::Path(socket),
            backoff: Backoff::new(Duration::from_millis(50), Duration::from_millis(500)),
            registration_timeout: Duration::from_secs(5),
        };
        let task = runtime.spawn(run(config, recorder, shutdown.clone()));
        Self {
            runtime,
            shutdown,
            task: Some(task),
        }
    }
}

impl Drop for PluginGuard {
    fn drop(&mut self) {
        self.shutdown.cancel();
        if let Some(task) = self.task.take() {
            let stopped = self
                .runtime
                .block_on(async { tokio::time::timeout(Duration::from_secs(10), task).await });
            if !std::thread::panicking() {
                assert!(
                    matches!(stopped, Ok(Ok(Ok(())))),
                    "plugin did not stop cleanly: {stopped:?}"
                );
            }
        }
    }
}

/// A node with containerd and the plugin connected and synchronized.
struct Node {
    calls: Calls,
    // Drop order: plugin, containerd, namespace, folder.
    plugin: Option<PluginGuard>,
    ctrd: Containerd,
    _netns: Netns,
    _dir: TestDir,
}

impl Node {
    fn start(test: &str) -> Self {
        let dir = TestDir::new(test).unwrap();
        let netns = Netns::new("nri").unwrap();
        let ctrd = Containerd::start(&netns, &dir).unwrap();
        let (recorder, calls) = Recorder::new();
        let plugin = PluginGuard::start(ctrd.nri_socket(), recorder);
        let node = Self {
            calls,
            plugin: Some(plugin),
            ctrd,
            _netns: netns,
            _dir: dir,
        };
        node.expect_configure_and_sync();
        node
    }

    /// Waits for the `Configure` and `Synchronize` of a (re)connection; returns the synced pods.
    fn expect_configure_and_sync(&self) -> Vec<nauti_nri::PodSandbox> {
        let runtime = self.calls.until("Configure", |seen| match seen {
            Seen::Configure(info) => Some(info),
            _ => None,
        });
        assert_eq!(runtime.name, "containerd");
        assert!(runtime.version.starts_with("v2."), "{}", runtime.version);
        self.calls.until("Synchronize", |seen| match seen {
            Seen::Synchronize { pods, .. } => Some(pods),
            _ => None,
        })
    }

    fn expect_run(&self) -> nauti_nri::PodSandbox {
        self.calls.until("RunPodSandbox", |seen| match seen {
            Seen::Run(pod) => Some(pod),
            _ => None,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        // Stop the plugin before containerd, so that its reconnection attempts end first.
        drop(self.plugin.take());
    }
}

#[test]
fn a_cri_pod_produces_run_stop_and_remove_with_its_identity_and_netns() {
    require_root!();
    let node = Node::start("nri-ctrd-pod");
    let mut spec = PodSpec::new("shop", "cart");
    spec.labels.insert("app".into(), "cart".into());
    spec.annotations
        .insert("nauti.io/enabled".into(), "true".into());
    let pod = node.ctrd.run_pod(&spec).unwrap();
    let netns = node.ctrd.pod_netns(&pod).unwrap().expect("pod has a netns");

    let seen = node.expect_run();
    assert_eq!(seen.id, pod.id);
    assert_eq!(seen.name, "cart");
    assert_eq!(seen.namespace, "shop");
    assert_eq!(seen.uid, spec.uid);
    assert_eq!(seen.labels.get("app").map(String::as_str), Some("cart"));
    assert_eq!(
        seen.annotations.get("nauti.io/enabled").map(String::as_str),
        Some("true")
    );
    assert_eq!(
        seen.netns_path.as_deref().map(PathBuf::from),
        Some(netns.clone())
    );
    assert!(
        netns.exists(),
        "the netns exists while RunPodSandbox is handled"
    );

    node.ctrd.crictl(&["stopp", &pod.id]).unwrap();
    let stopped = node.calls.until("StopPodSandbox", |seen| match seen {
        Seen::Stop(pod) => Some(pod),
        _ => None,
    });
    assert_eq!(
        (stopped.id.as_str(), stopped.uid.as_str()),
        (pod.id.as_str(), spec.uid.as_str())
    );
    node.ctrd.crictl(&["rmp", &pod.id]).unwrap();
    let removed = node.calls.until("RemovePodSandbox", |seen| match seen {
        Seen::Remove(pod) => Some(pod),
        _ => None,
    });
    assert_eq!(removed.id, pod.id);
}

#[test]
fn a_host_network_pod_arrives_without_a_netns() {
    require_root!();
    let node = Node::start("nri-ctrd-hostnet");
    let mut spec = PodSpec::new("kube-system", "proxy");
    spec.host_network = true;
    let pod = node.ctrd.run_pod(&spec).unwrap();
    let seen = node.expect_run();
    assert_eq!(seen.id, pod.id);
    assert_eq!(seen.netns_path, None);
}

#[test]
fn a_handler_error_fails_the_sandbox_with_the_cause_in_the_message() {
    require_root!();
    let node = Node::start("nri-ctrd-doomed");
    let err = node
        .ctrd
        .run_pod(&PodSpec::new("shop", Recorder::DOOMED))
        .unwrap_err()
        .to_string();
    assert!(
        err.contains(Recorder::DOOM_CAUSE),
        "crictl error lacks the cause: {err}"
    );
    assert_eq!(node.expect_run().name, Recorder::DOOMED);
    // containerd cleaned the failed sandbox up; the plugin stays connected for the next pod.
    let ok = node.ctrd.run_pod(&PodSpec::new("shop", "fine")).unwrap();
    assert_eq!(node.expect_run().id, ok.id);
}

#[test]
fn after_a_containerd_restart_the_plugin_resynchronizes_and_sees_the_next_pod() {
    require_root!();
    let mut node = Node::start("nri-ctrd-restart");
    let before = node
        .ctrd
        .run_pod(&PodSpec::new("default", "before"))
        .unwrap();
    assert_eq!(node.expect_run().id, before.id);

    node.ctrd.restart().unwrap();
    let synced = node.expect_configure_and_sync();
    assert!(
        synced
            .iter()
            .any(|pod| pod.id == before.id && pod.netns_path.is_some()),
        "the pod from before the restart is in the new Synchronize: {synced:?}"
    );

    let after = node
        .ctrd
        .run_pod(&PodSpec::new("default", "after"))
        .unwrap();
    let seen = node.expect_run();
    assert_eq!(
        (seen.id.as_str(), seen.name.as_str()),
        (after.id.as_str(), "after")
    );
}

#[test]
fn garbage_on_the_nri_socket_harms_neither_containerd_nor_the_plugin() {
    use std::io::Write as _;
    require_root!();
    let node = Node::start("nri-ctrd-garbage");
    let garbage: [&[u8]; 3] = [
        // A frame header announcing 4 GiB.
        &[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff],
        // Bytes that are no frame at all, then the end of the stream inside a header.
        b"GET / HTTP/1.1\r\n\r\n",
        // A well-framed message for a connection nobody opened.
        &[0, 0, 0, 9, 0, 0, 0, 3, 1, 2, 3],
    ];
    for bytes in garbage {
        let mut stream = std::os::unix::net::UnixStream::connect(node.ctrd.nri_socket()).unwrap();
        stream
            .set_write_timeout(Some(Duration::from_secs(5)))
            .unwrap();
        let _ = stream.write_all(bytes);
    }
    let pod = node
        .ctrd
        .run_pod(&PodSpec::new("default", "after-garbage"))
        .unwrap();
    assert_eq!(node.expect_run().id, pod.id);
}

#[test]
fn containerd_launches_the_binary_from_its_plugin_folder_and_it_registers() {
    require_root!();
    let dir = TestDir::new("nri-ctrd-launch").unwrap();
    let netns = Netns::new("nrl").unwrap();
    let mut ctrd = Containerd::start(&netns, &dir).unwrap();
    // containerd launches `<index>-<name>` from its plugin folder at startup, with nothing in the
    // environment but NRI_PLUGIN_SOCKET/NAME/IDX and no arguments. The wrapper adds `--log-only`
    // (the plumbing needs settings this test has no use for); `exec` keeps the inherited socket.
    let plugin = ctrd.nri_plugin_dir().join("20-nauti");
    let wrapper = format!(
        "#!/bin/sh\nexec {} --log-only \"$@\"\n",
        env!("CARGO_BIN_EXE_nauti-nri")
    );
    std::fs::write(&plugin, wrapper).unwrap();
    std::fs::set_permissions(&plugin, std::os::unix::fs::PermissionsExt::from_mode(0o755)).unwrap();
    ctrd.restart().unwrap();
    assert!(
        wait_for_log(&ctrd, &["pre-connected:20-nauti", "registered"]),
        "containerd log does not show the launched plugin registering"
    );
    // The launched plugin stays connected through a pod's life.
    let pod = ctrd.run_pod(&PodSpec::new("default", "launched")).unwrap();
    ctrd.remove_pod(&pod).unwrap();
    assert!(
        !wait_for_log(&ctrd, &["20-nauti", "closed"]),
        "containerd lost the launched plugin"
    );
}

/// Whether a line of containerd's log holds every word of `needles`, waiting up to 5 s for it.
fn wait_for_log(ctrd: &Containerd, needles: &[&str]) -> bool {
    for _ in 0..50 {
        let log = std::fs::read_to_string(ctrd.log()).unwrap_or_default();
        if log
            .lines()
            .any(|line| needles.iter().all(|n| line.contains(n)))
        {
            return true;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    false
}
