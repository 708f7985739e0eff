//! The plugin's ttrpc service over a socketpair, called by a runtime of our own.

use std::sync::Arc;

use nauti_nri::core::PluginIdentity;
use nauti_nri::mux::MuxEnd;
use nauti_nri::proto::api;
use nauti_nri::service::Progress;
use nauti_nri::session::{SessionOutcome, run_session};
use tokio::net::UnixStream;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use ttrpc::Code;

use crate::support::{Calls, FakeRuntime, Recorder, Seen, WAIT, code_of, ctx, mk_pod};

struct Connected {
    runtime: FakeRuntime,
    calls: Calls,
    session: JoinHandle<SessionOutcome>,
    cancel: CancellationToken,
}

/// A plugin session on one end of a socketpair, our runtime on the other, registered and
/// configured.
async fn connected() -> Connected {
    let (plugin_end, runtime_end) = UnixStream::pair().unwrap();
    let (recorder, calls) = Recorder::new();
    let cancel = CancellationToken::new();
    let session = tokio::spawn({
        let cancel = cancel.clone();
        async move {
            run_session(
                plugin_end,
                &PluginIdentity::default(),
                recorder,
                WAIT,
                &cancel,
            )
            .await
            .unwrap()
        }
    });
    let mut runtime = FakeRuntime::start(runtime_end).await;
    let registration = runtime.registration().await;
    assert_eq!(registration.plugin_name, "nauti");
    assert_eq!(registration.plugin_idx, "10");
    assert!(!registration.NRI_version.is_empty());
    assert_eq!(
        runtime.configure().await,
        0b111,
        "RunPodSandbox|StopPodSandbox|RemovePodSandbox"
    );
    match calls.next() {
        Seen::Configure(info) => {
            assert_eq!(info.name, "fake-runtime");
            assert_eq!(info.request_timeout, std::time::Duration::from_secs(2));
        }
        other => panic!("expected Configure, got {other:?}"),
    }
    Connected {
        runtime,
        calls,
        session,
        cancel,
    }
}

#[tokio::test]
async fn registers_and_subscribes_to_the_three_sandbox_events() {
    let c = connected().await;
    c.cancel.cancel();
    let outcome = tokio::time::timeout(WAIT, c.session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.progress, Progress::Configured);
    assert!(matches!(outcome.end, MuxEnd::Closed), "{:?}", outcome.end);
}

#[tokio::test]
async fn run_pod_sandbox_reaches_the_handler_with_the_pod_and_its_netns() {
    let c = connected().await;
    let req = api::RunPodSandboxRequest {
        pod: Some(mk_pod("shop", "cart-7d9", Some("/var/run/netns/cni-42"))).into(),
        ..Default::default()
    };
    c.runtime.plugin.run_pod_sandbox(ctx(), &req).await.unwrap();
    match c.calls.next() {
        Seen::Run(pod) => {
            assert_eq!(pod.namespace, "shop");
            assert_eq!(pod.name, "cart-7d9");
            assert_eq!(pod.uid, "uid-cart-7d9");
            assert_eq!(pod.netns_path.as_deref(), Some("/var/run/netns/cni-42"));
        }
        other => panic!("expected Run, got {other:?}"),
    }
    let host = api::StopPodSandboxRequest {
        pod: Some(mk_pod("kube-system", "proxy", None)).into(),
        ..Default::default()
    };
    c.runtime
        .plugin
        .stop_pod_sandbox(ctx(), &host)
        .await
        .unwrap();
    match c.calls.next() {
        Seen::Stop(pod) => assert_eq!(pod.netns_path, None),
        other => panic!("expected Stop, got {other:?}"),
    }
    let remove = api::RemovePodSandboxRequest {
        pod: Some(mk_pod("shop", "cart-7d9", None)).into(),
        ..Default::default()
    };
    c.runtime
        .plugin
        .remove_pod_sandbox(ctx(), &remove)
        .await
        .unwrap();
    assert!(matches!(c.calls.next(), Seen::Remove(pod) if pod.name == "cart-7d9"));
}

#[tokio::test]
async fn unhandled_methods_answer_unimplemented_not_not_found() {
    let c = connected().await;
    let plugin = &c.runtime.plugin;
    let results = [
        (
            "CreateContainer",
            code_of(plugin.create_container(ctx(), &Default::default()).await),
        ),
        (
            "StartContainer",
            code_of(plugin.start_container(ctx(), &Default::default()).await),
        ),
        (
            "UpdateContainer",
            code_of(plugin.update_container(ctx(), &Default::default()).await),
        ),
        (
            "StopContainer",
            code_of(plugin.stop_container(ctx(), &Default::default()).await),
        ),
        (
            "RemoveContainer",
            code_of(plugin.remove_container(ctx(), &Default::default()).await),
        ),
        (
            "PostCreateContainer",
            code_of(
                plugin
                    .post_create_container(ctx(), &Default::default())
                    .await,
            ),
        ),
        (
            "PostStartContainer",
            code_of(
                plugin
                    .post_start_container(ctx(), &Default::default())
                    .await,
            ),
        ),
        (
            "PostUpdateContainer",
            code_of(
                plugin
                    .post_update_container(ctx(), &Default::default())
                    .await,
            ),
        ),
        (
            "UpdatePodSandbox",
            code_of(plugin.update_pod_sandbox(ctx(), &Default::default()).await),
        ),
        (
            "PostUpdatePodSandbox",
            code_of(
                plugin
                    .post_update_pod_sandbox(ctx(), &Default::default())
                    .await,
            ),
        ),
        (
            "ValidateContainerAdjustment",
            code_of(
                plugin
                    .validate_container_adjustment(ctx(), &Default::default())
                    .await,
            ),
        ),
    ];
    for (method, (code, message)) in results {
        assert_eq!(code, Code::UNIMPLEMENTED, "{method}: {message}");
        assert!(message.contains(method), "{method}: {message}");
    }
    // A method this subset does not even declare (a newer API's) gets the same code.
    let mut req = ttrpc::Request::new();
    req.service = "nri.pkg.api.v1alpha1.Plugin".into();
    req.method = "SomeFutureEvent".into();
    req.timeout_nano = 5_000_000_000;
    let (code, message) = code_of(c.runtime.raw.request(req).await);
    assert_eq!(code, Code::UNIMPLEMENTED, "{message}");
    // Nothing reached the handler.
    assert!(c.calls.drain().is_empty());
}

#[tokio::test]
async fn state_change_of_older_runtimes_reaches_the_same_handler() {
    let c = connected().await;
    for (event, name) in [
        (api::Event::RUN_POD_SANDBOX, "run"),
        (api::Event::STOP_POD_SANDBOX, "stop"),
        (api::Event::REMOVE_POD_SANDBOX, "remove"),
    ] {
        let req = api::StateChangeEvent {
            event: event.into(),
            pod: Some(mk_pod("legacy", name, Some("/run/netns/old"))).into(),
            ..Default::default()
        };
        c.runtime.plugin.state_change(ctx(), &req).await.unwrap();
    }
    assert!(
        matches!(c.calls.next(), Seen::Run(p) if p.name == "run" && p.netns_path.as_deref() == Some("/run/netns/old"))
    );
    assert!(matches!(c.calls.next(), Seen::Stop(p) if p.name == "stop"));
    assert!(matches!(c.calls.next(), Seen::Remove(p) if p.name == "remove"));
    // Container events through StateChange were not subscribed: accepted and ignored.
    let req = api::StateChangeEvent {
        event: api::Event::START_CONTAINER.into(),
        pod: Some(mk_pod("legacy", "x", None)).into(),
        ..Default::default()
    };
    c.runtime.plugin.state_change(ctx(), &req).await.unwrap();
    assert!(c.calls.drain().is_empty());
}

#[tokio::test]
async fn a_handler_error_fails_the_call_with_a_status_naming_the_cause() {
    let c = connected().await;
    let req = api::RunPodSandboxRequest {
        pod: Some(mk_pod("shop", Recorder::DOOMED, Some("/run/netns/d"))).into(),
        ..Default::default()
    };
    let (code, message) = code_of(c.runtime.plugin.run_pod_sandbox(ctx(), &req).await);
    assert_eq!(code, Code::UNAVAILABLE);
    assert_eq!(
        message,
        format!(
            "OVN northbound database is unavailable: {}",
            Recorder::DOOM_CAUSE
        )
    );
    // The same through StateChange.
    let req = api::StateChangeEvent {
        event: api::Event::RUN_POD_SANDBOX.into(),
        pod: Some(mk_pod("shop", Recorder::DOOMED, None)).into(),
        ..Default::default()
    };
    let (code, _) = code_of(c.runtime.plugin.state_change(ctx(), &req).await);
    assert_eq!(code, Code::UNAVAILABLE);
}

#[tokio::test]
async fn a_request_without_a_pod_is_an_invalid_argument() {
    let c = connected().await;
    let (code, message) = code_of(
        c.runtime
            .plugin
            .run_pod_sandbox(ctx(), &api::RunPodSandboxRequest::new())
            .await,
    );
    assert_eq!(code, Code::INVALID_ARGUMENT);
    assert!(message.contains("no pod"), "{message}");
    assert!(c.calls.drain().is_empty());
}

#[tokio::test]
async fn split_synchronize_is_answered_per_part_and_handled_once_whole() {
    let c = connected().await;
    let parts = [
        (
            vec![mk_pod("a", "p1", Some("/n/1")), mk_pod("a", "p2", None)],
            true,
        ),
        (vec![], true),
        (vec![mk_pod("b", "p3", Some("/n/3"))], false),
    ];
    for (i, (pods, more)) in parts.into_iter().enumerate() {
        let container = api::Container {
            id: format!("c{i}"),
            pod_sandbox_id: "sandbox-a-p1".into(),
            state: api::ContainerState::CONTAINER_RUNNING.into(),
            ..Default::default()
        };
        let req = api::SynchronizeRequest {
            pods,
            containers: vec![container],
            more,
            ..Default::default()
        };
        let rpl = c.runtime.plugin.synchronize(ctx(), &req).await.unwrap();
        assert_eq!(rpl.more, more, "part {i} must echo more={more}");
        assert!(rpl.update.is_empty());
        if more {
            assert!(
                c.calls.drain().is_empty(),
                "handler called before the last part"
            );
        }
    }
    match c.calls.next() {
        Seen::Synchronize { pods, containers } => {
            let names: Vec<_> = pods.iter().map(|p| p.name.as_str()).collect();
            assert_eq!(names, ["p1", "p2", "p3"]);
            assert_eq!(containers.len(), 3);
            assert_eq!(pods[0].netns_path.as_deref(), Some("/n/1"));
        }
        other => panic!("expected Synchronize, got {other:?}"),
    }
    c.cancel.cancel();
    let outcome = tokio::time::timeout(WAIT, c.session)
        .await
        .unwrap()
        .unwrap();
    assert_eq!(outcome.progress, Progress::Synchronized);
}

#[tokio::test]
async fn shutdown_is_passed_on_and_the_session_ends_when_the_runtime_closes() {
    let c = connected().await;
    c.runtime.synchronize(vec![]).await;
    assert!(matches!(c.calls.next(), Seen::Synchronize { .. }));
    c.runtime
        .plugin
        .shutdown(ctx(), &api::Empty::new())
        .await
        .unwrap();
    assert!(matches!(c.calls.next(), Seen::Shutdown));
    c.runtime.shutdown().await;
    let outcome = tokio::time::timeout(WAIT, c.session)
        .await
        .unwrap()
        .unwrap();
    assert!(
        matches!(outcome.end, MuxEnd::PeerClosed),
        "{:?}",
        outcome.end
    );
    assert_eq!(outcome.progress, Progress::Synchronized);
}

#[tokio::test]
async fn garbage_from_the_runtime_ends_the_session_cleanly() {
    use tokio::io::AsyncWriteExt as _;
    let (plugin_end, mut runtime_end) = UnixStream::pair().unwrap();
    let (recorder, _calls) = Recorder::new();
    let cancel = CancellationToken::new();
    let session = tokio::spawn(async move {
        run_session(
            plugin_end,
            &PluginIdentity::default(),
            Arc::clone(&recorder),
            WAIT,
            &cancel,
        )
        .await
    });
    // A frame header announcing 4 GiB on the plugin connection.
    runtime_end
        .write_all(&[0, 0, 0, 1, 0xff, 0xff, 0xff, 0xff])
        .await
        .unwrap();
    let result = tokio::time::timeout(WAIT, session).await.unwrap().unwrap();
    let err = result.unwrap_err();
    assert!(err.to_string().contains("registration"), "{err}");
    let source = std::error::Error::source(&err)
        .map(ToString::to_string)
        .unwrap_or_default();
    assert!(source.contains("garbage"), "{source}");
}
