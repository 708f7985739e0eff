//! The plugin's ttrpc service: the methods the runtime calls, as a thin adapter over a
//! [`SandboxHandler`].
//!
//! Every method of the `Plugin` service is answered on purpose. The generated default for a method
//! a service does not implement answers `NOT_FOUND`, but a runtime falls back from the per-event
//! RPCs (`RunPodSandbox`, …) to the older `StateChange` only on `UNIMPLEMENTED`
//! (containerd/nri `pkg/adaptation/plugin_type.go`), so every method Nauti does not handle answers
//! `UNIMPLEMENTED` explicitly, and both the per-event RPCs and `StateChange` reach the handler.

use std::sync::{Arc, Mutex};

use async_trait::async_trait;
use tokio::sync::watch;
use tracing::{Instrument as _, debug, info, info_span, warn};
use ttrpc::r#async::TtrpcContext;
use ttrpc::{Code, get_status};

use crate::core::{
    Container, Event, EventMask, PodSandbox, RuntimeInfo, SANDBOX_EVENTS, SyncAssembly, SyncStep,
};
use crate::handler::{HandlerError, SandboxHandler, error_chain};
use crate::proto::api;
use crate::proto::api_ttrpc::Plugin;

/// How far the runtime got with this connection.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
pub enum Progress {
    /// Connected; no `Configure` yet.
    Connected,
    /// `Configure` answered.
    Configured,
    /// The last part of a `Synchronize` was handled.
    Synchronized,
}

/// The `Plugin` service of one connection.
pub struct PluginService<H> {
    handler: Arc<H>,
    events: EventMask,
    sync: Mutex<SyncAssembly<PodSandbox, Container>>,
    progress: watch::Sender<Progress>,
}

impl<H: SandboxHandler> PluginService<H> {
    /// A service subscribing to the sandbox events, calling `handler`.
    pub fn new(handler: Arc<H>) -> Self {
        Self {
            handler,
            events: EventMask::of(SANDBOX_EVENTS),
            sync: Mutex::new(SyncAssembly::new()),
            progress: watch::Sender::new(Progress::Connected),
        }
    }

    /// Follows the connection's progress.
    pub fn progress(&self) -> watch::Receiver<Progress> {
        self.progress.subscribe()
    }

    async fn do_pod_event(&self, event: Event, pod: Option<api::PodSandbox>) -> ttrpc::Result<()> {
        let Some(pod) = pod else {
            warn!(%event, "request without a pod");
            return Err(rpc_status(
                Code::INVALID_ARGUMENT,
                format!("{event} request carries no pod"),
            ));
        };
        let pod = PodSandbox::from(pod);
        // One span per pod event; the handler's tasks are spawned in it and keep it.
        let span = info_span!("pod_event", %event, pod.ns = %pod.namespace, pod.name = %pod.name, sandbox = %pod.id);
        async move {
            debug!("event");
            let result = match event {
                Event::RunPodSandbox => self.handler.run_pod_sandbox(pod).await,
                Event::StopPodSandbox => self.handler.stop_pod_sandbox(pod).await,
                Event::RemovePodSandbox => self.handler.remove_pod_sandbox(pod).await,
                other => {
                    debug!(event = %other, "not a sandbox event; ignored");
                    Ok(())
                }
            };
            result.map_err(|err| {
                warn!(error = %error_chain(&err), "handler failed");
                handler_status(&err)
            })
        }
        .instrument(span)
        .await
    }
}

/// The status the runtime sees for a handler error; its message is the whole cause chain, which
/// containerd puts into the sandbox's failure.
pub fn handler_status(err: &HandlerError) -> ttrpc::Error {
    let code = match err {
        HandlerError::InvalidPod { .. } => Code::INVALID_ARGUMENT,
        HandlerError::Unavailable { .. } => Code::UNAVAILABLE,
        HandlerError::Failed { .. } => Code::INTERNAL,
    };
    rpc_status(code, error_chain(err))
}

fn rpc_status(code: Code, message: impl ToString) -> ttrpc::Error {
    ttrpc::Error::RpcStatus(get_status(code, message))
}

/// The answer for a method Nauti does not handle; see the module documentation.
fn unimplemented<T>(method: &str) -> ttrpc::Result<T> {
    debug!(method, "answering UNIMPLEMENTED");
    Err(rpc_status(
        Code::UNIMPLEMENTED,
        format!("/nri.pkg.api.v1alpha1.Plugin/{method} is not implemented by nauti"),
    ))
}

// === impl Plugin ===

#[async_trait]
impl<H: SandboxHandler> Plugin for PluginService<H> {
    async fn configure(
        &self,
        _ctx: &TtrpcContext,
        req: api::ConfigureRequest,
    ) -> ttrpc::Result<api::ConfigureResponse> {
        let runtime = RuntimeInfo::from(&req);
        info!(
            runtime = %runtime.name,
            version = %runtime.version,
            events = %self.events,
            "configure"
        );
        self.handler
            .configure(&runtime, &req.config)
            .await
            .map_err(|err| handler_status(&err))?;
        // A runtime that reconfigures (it does not today) starts a fresh synchronisation.
        *self
            .sync
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner()) = SyncAssembly::new();
        self.progress.send_replace(Progress::Configured);
        Ok(api::ConfigureResponse {
            events: self.events.bits(),
            ..Default::default()
        })
    }

    async fn synchronize(
        &self,
        _ctx: &TtrpcContext,
        req: api::SynchronizeRequest,
    ) -> ttrpc::Result<api::SynchronizeResponse> {
        let more = req.more;
        let pods = req.pods.into_iter().map(PodSandbox::from).collect();
        let containers = req.containers.into_iter().map(Container::from).collect();
        let step = self
            .sync
            .lock()
            .unwrap_or_else(|poisoned| poisoned.into_inner())
            .push(pods, containers, more);
        match step {
            SyncStep::Partial { parts } => {
                debug!(parts, "synchronize: part received, more to come");
            }
            SyncStep::Complete {
                pods,
                containers,
                parts,
            } => {
                info!(
                    pods = pods.len(),
                    containers = containers.len(),
                    parts,
                    "synchronize"
                );
                self.handler
                    .synchronize(pods, containers)
                    .await
                    .map_err(|err| {
                        warn!(error = %error_chain(&err), "synchronize failed");
                        handler_status(&err)
                    })?;
                self.progress.send_replace(Progress::Synchronized);
            }
        }
        // `more` echoes the request: a different value tells the runtime we cannot take parts.
        Ok(api::SynchronizeResponse {
            more,
            ..Default::default()
        })
    }

    async fn shutdown(&self, _ctx: &TtrpcContext, _req: api::Empty) -> ttrpc::Result<api::Empty> {
        info!("runtime announced its shutdown");
        self.handler.shutdown().await;
        Ok(api::Empty::new())
    }

    async fn run_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::RunPodSandboxRequest,
    ) -> ttrpc::Result<api::RunPodSandboxResponse> {
        self.do_pod_event(Event::RunPodSandbox, req.pod.into_option())
            .await
            .map(|()| api::RunPodSandboxResponse::new())
    }

    async fn stop_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::StopPodSandboxRequest,
    ) -> ttrpc::Result<api::StopPodSandboxResponse> {
        self.do_pod_event(Event::StopPodSandbox, req.pod.into_option())
            .await
            .map(|()| api::StopPodSandboxResponse::new())
    }

    async fn remove_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        req: api::RemovePodSandboxRequest,
    ) -> ttrpc::Result<api::RemovePodSandboxResponse> {
        self.do_pod_event(Event::RemovePodSandbox, req.pod.into_option())
            .await
            .map(|()| api::RemovePodSandboxResponse::new())
    }

    async fn state_change(
        &self,
        _ctx: &TtrpcContext,
        req: api::StateChangeEvent,
    ) -> ttrpc::Result<api::Empty> {
        match Event::from_number(req.event.value()) {
            Some(event) if self.events.contains(event) => {
                self.do_pod_event(event, req.pod.into_option()).await?;
            }
            Some(event) => debug!(%event, "StateChange for an unsubscribed event; ignored"),
            None => debug!(
                event = req.event.value(),
                "StateChange for an unknown event; ignored"
            ),
        }
        Ok(api::Empty::new())
    }

    async fn update_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        _req: api::UpdatePodSandboxRequest,
    ) -> ttrpc::Result<api::UpdatePodSandboxResponse> {
        unimplemented("UpdatePodSandbox")
    }

    async fn post_update_pod_sandbox(
        &self,
        _ctx: &TtrpcContext,
        _req: api::PostUpdatePodSandboxRequest,
    ) -> ttrpc::Result<api::PostUpdatePodSandboxResponse> {
        unimplemented("PostUpdatePodSandbox")
    }

    async fn create_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::CreateContainerRequest,
    ) -> ttrpc::Result<api::CreateContainerResponse> {
        unimplemented("CreateContainer")
    }

    async fn post_create_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::PostCreateContainerRequest,
    ) -> ttrpc::Result<api::PostCreateContainerResponse> {
        unimplemented("PostCreateContainer")
    }

    async fn start_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::StartContainerRequest,
    ) -> ttrpc::Result<api::StartContainerResponse> {
        unimplemented("StartContainer")
    }

    async fn post_start_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::PostStartContainerRequest,
    ) -> ttrpc::Result<api::PostStartContainerResponse> {
        unimplemented("PostStartContainer")
    }

    async fn update_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::UpdateContainerRequest,
    ) -> ttrpc::Result<api::UpdateContainerResponse> {
        unimplemented("UpdateContainer")
    }

    async fn post_update_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::PostUpdateContainerRequest,
    ) -> ttrpc::Result<api::PostUpdateContainerResponse> {
        unimplemented("PostUpdateContainer")
    }

    async fn stop_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::StopContainerRequest,
    ) -> ttrpc::Result<api::StopContainerResponse> {
        unimplemented("StopContainer")
    }

    async fn remove_container(
        &self,
        _ctx: &TtrpcContext,
        _req: api::RemoveContainerRequest,
    ) -> ttrpc::Result<api::RemoveContainerResponse> {
        unimplemented("RemoveContainer")
    }

    async fn validate_container_adjustment(
        &self,
        _ctx: &TtrpcContext,
        _req: api::ValidateContainerAdjustmentRequest,
    ) -> ttrpc::Result<api::ValidateContainerAdjustmentResponse> {
        unimplemented("ValidateContainerAdjustment")
    }
}
