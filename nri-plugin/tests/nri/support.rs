//! Shared fixtures: a handler that records what it is called with, a small NRI runtime of our own
//! (the runtime side of the multiplexed socket), and pod fixtures.

use std::sync::{Arc, Mutex, mpsc};
use std::time::Duration;

use async_trait::async_trait;
use futures::StreamExt as _;
use nauti_nri::mux::{Mux, MuxHandle};
use nauti_nri::proto::{api, api_ttrpc};
use nauti_nri::{Container, HandlerError, PodSandbox, RuntimeInfo, SandboxHandler};
use tokio::io::{AsyncRead, AsyncWrite};
use ttrpc::r#async::transport::{Listener, Socket};
use ttrpc::r#async::{Client, Server, TtrpcContext};

/// Generous bound for anything a test waits for.
pub const WAIT: Duration = Duration::from_secs(20);

/// One call the handler received.
#[derive(Clone, Debug)]
pub enum Seen {
    Configure(RuntimeInfo),
    Synchronize {
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    },
    Run(PodSandbox),
    Stop(PodSandbox),
    Remove(PodSandbox),
    Shutdown,
}

/// Records every call; fails `run_pod_sandbox` for pods named [`Recorder::DOOMED`].
pub struct Recorder {
    tx: Mutex<mpsc::Sender<Seen>>,
}

impl Recorder {
    /// Pods with this name fail `RunPodSandbox` with `Unavailable`.
    pub const DOOMED: &'static str = "doomed";
    /// The cause named in that failure.
    pub const DOOM_CAUSE: &'static str =
        "ovsdb at unix:/run/ovn/ovnnb_db.sock refused the connection";

    pub fn new() -> (Arc<Self>, Calls) {
        let (tx, rx) = mpsc::channel();
        (Arc::new(Self { tx: Mutex::new(tx) }), Calls(rx))
    }

    fn record(&self, seen: Seen) {
        let _ = self.tx.lock().unwrap().send(seen);
    }
}

/// The receiving end of a [`Recorder`].
pub struct Calls(mpsc::Receiver<Seen>);

impl Calls {
    /// The next call, waiting at most [`WAIT`].
    pub fn next(&self) -> Seen {
        self.0
            .recv_timeout(WAIT)
            .unwrap_or_else(|e| panic!("no handler call within {WAIT:?}: {e}"))
    }

    /// Skips calls until `pick` accepts one.
    pub fn until<T>(&self, what: &str, mut pick: impl FnMut(Seen) -> Option<T>) -> T {
        let deadline = std::time::Instant::now() + WAIT;
        loop {
            let left = deadline.saturating_duration_since(std::time::Instant::now());
            match self.0.recv_timeout(left) {
                Ok(seen) => {
                    if let Some(found) = pick(seen) {
                        return found;
                    }
                }
                Err(e) => panic!("no {what} within {WAIT:?}: {e}"),
            }
        }
    }

    /// Calls received so far, without waiting.
    pub fn drain(&self) -> Vec<Seen> {
        self.0.try_iter().collect()
    }
}

#[async_trait]
impl SandboxHandler for Recorder {
    async fn configure(&self, runtime: &RuntimeInfo, _config: &str) -> Result<(), HandlerError> {
        self.record(Seen::Configure(runtime.clone()));
        Ok(())
    }

    async fn synchronize(
        &self,
        pods: Vec<PodSandbox>,
        containers: Vec<Container>,
    ) -> Result<(), HandlerError> {
        self.record(Seen::Synchronize { pods, containers });
        Ok(())
    }

    async fn run_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        let doomed = pod.name == Self::DOOMED;
        self.record(Seen::Run(pod));
        if doomed {
            return Err(HandlerError::Unavailable {
                what: "OVN northbound database".into(),
                source: Self::DOOM_CAUSE.into(),
            });
        }
        Ok(())
    }

    async fn stop_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        self.record(Seen::Stop(pod));
        Ok(())
    }

    async fn remove_pod_sandbox(&self, pod: PodSandbox) -> Result<(), HandlerError> {
        self.record(Seen::Remove(pod));
        Ok(())
    }

    async fn shutdown(&self) {
        self.record(Seen::Shutdown);
    }
}

/// The runtime's `Runtime` service: records registrations.
struct RuntimeService {
    registered: tokio::sync::mpsc::UnboundedSender<api::RegisterPluginRequest>,
}

#[async_trait]
impl api_ttrpc::Runtime for RuntimeService {
    async fn register_plugin(
        &self,
        _ctx: &TtrpcContext,
        req: api::RegisterPluginRequest,
    ) -> ttrpc::Result<api::Empty> {
        let _ = self.registered.send(req);
        Ok(api::Empty::new())
    }
}

/// The runtime side of an NRI connection: serves `Runtime` on connection 2 and calls the plugin's
/// `Plugin` service on connection 1, through the same multiplexer the plugin uses.
pub struct FakeRuntime {
    pub plugin: api_ttrpc::PluginClient,
    pub raw: Client,
    pub registered: tokio::sync::mpsc::UnboundedReceiver<api::RegisterPluginRequest>,
    server: Server,
    pub mux: MuxHandle,
}

impl FakeRuntime {
    pub async fn start<S>(trunk: S) -> Self
    where
        S: AsyncRead + AsyncWrite + Send + 'static,
    {
        let (mux, streams) = Mux::start(trunk);
        let (tx, registered) = tokio::sync::mpsc::unbounded_channel();
        let service = Arc::new(RuntimeService { registered: tx });
        let listener = Listener::new(
            futures::stream::once(async { Ok(streams.runtime_service) })
                .chain(futures::stream::pending()),
        );
        let mut server = Server::new()
            .register_service(api_ttrpc::create_runtime(service))
            .add_listener(listener);
        server.start().await.unwrap();
        let raw = Client::new(Socket::new(streams.plugin_service));
        Self {
            plugin: api_ttrpc::PluginClient::new(raw.clone()),
            raw,
            registered,
            server,
            mux,
        }
    }

    /// Waits for the plugin's `RegisterPlugin`.
    pub async fn registration(&mut self) -> api::RegisterPluginRequest {
        tokio::time::timeout(WAIT, self.registered.recv())
            .await
            .expect("no RegisterPlugin in time")
            .expect("runtime service gone")
    }

    /// `Configure` as containerd sends it; returns the event mask.
    pub async fn configure(&self) -> i32 {
        let req = api::ConfigureRequest {
            runtime_name: "fake-runtime".into(),
            runtime_version: "v0.0.1".into(),
            registration_timeout: 5000,
            request_timeout: 2000,
            ..Default::default()
        };
        self.plugin.configure(ctx(), &req).await.unwrap().events
    }

    /// A single-part `Synchronize` of `pods`.
    pub async fn synchronize(&self, pods: Vec<api::PodSandbox>) {
        let req = api::SynchronizeRequest {
            pods,
            ..Default::default()
        };
        let rpl = self.plugin.synchronize(ctx(), &req).await.unwrap();
        assert!(!rpl.more);
    }

    pub async fn shutdown(mut self) {
        self.mux.close();
        let _ = self.server.shutdown().await;
    }
}

/// A request context with a deadline, as the runtime sets one.
pub fn ctx() -> ttrpc::context::Context {
    ttrpc::context::with_duration(Duration::from_secs(5))
}

/// A wire pod with a network namespace (or without, for `netns: None`).
pub fn mk_pod(namespace: &str, name: &str, netns: Option<&str>) -> api::PodSandbox {
    let mut linux = api::LinuxPodSandbox::new();
    linux.namespaces.push(api::LinuxNamespace {
        type_: "ipc".into(),
        path: String::new(),
        ..Default::default()
    });
    if let Some(path) = netns {
        linux.namespaces.push(api::LinuxNamespace {
            type_: "network".into(),
            path: path.into(),
            ..Default::default()
        });
    }
    api::PodSandbox {
        id: format!("sandbox-{namespace}-{name}"),
        name: name.into(),
        namespace: namespace.into(),
        uid: format!("uid-{name}"),
        linux: Some(linux).into(),
        ..Default::default()
    }
}

/// The status code of a failed call.
pub fn code_of<T: std::fmt::Debug>(result: ttrpc::Result<T>) -> (ttrpc::Code, String) {
    match result {
        Err(ttrpc::Error::RpcStatus(status)) => (status.code(), status.message.clone()),
        other => panic!("expected an RPC status, got {other:?}"),
    }
}
