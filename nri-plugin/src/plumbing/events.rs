//! Warning events on pods that start without their NIC (the `ignore` failure policy).
//!
//! Publishing is an API-server round trip: it never happens in the answer to the runtime. The
//! sink only queues; the Kubernetes adapter publishes from a task of its own.

use std::sync::{Arc, Mutex, PoisonError};

use k8s_openapi::api::core::v1::ObjectReference;
use kube::runtime::events::{Event, EventType, Recorder, Reporter};
use tracing::{Instrument as _, warn};

use crate::core::PodSandbox;

/// Where "started without its NIC" goes.
pub trait FailureEvents: Send + Sync + 'static {
    /// Records, without waiting, that `pod` started without its NIC because of `reason`.
    fn nic_failed(&self, pod: &PodSandbox, reason: String);
}

/// [`FailureEvents`] as Kubernetes Events, published in the background.
pub struct KubeEvents {
    recorder: Arc<Recorder>,
}

impl KubeEvents {
    /// Events reported as `nauti-nri` of `node`.
    pub fn new(kube: kube::Client, node: &str) -> Self {
        let recorder = Recorder::new(
            kube,
            Reporter {
                controller: "nauti-nri".into(),
                instance: Some(node.to_owned()),
            },
        );
        Self {
            recorder: Arc::new(recorder),
        }
    }
}

impl FailureEvents for KubeEvents {
    fn nic_failed(&self, pod: &PodSandbox, reason: String) {
        let reference = ObjectReference {
            api_version: Some("v1".into()),
            kind: Some("Pod".into()),
            name: Some(pod.name.clone()),
            namespace: Some(pod.namespace.clone()),
            uid: Some(pod.uid.clone()),
            ..Default::default()
        };
        let event = Event {
            type_: EventType::Warning,
            reason: "NautiNicFailed".into(),
            note: Some(format!("started without its second NIC: {reason}")),
            action: "PlumbSecondNic".into(),
            secondary: None,
        };
        let recorder = self.recorder.clone();
        tokio::spawn(
            async move {
                if let Err(error) = recorder.publish(&event, &reference).await {
                    warn!(%error, "event not recorded");
                }
            }
            .in_current_span(),
        );
    }
}

/// [`FailureEvents`] kept in memory, for unit tests.
#[derive(Default)]
pub struct RecordedEvents(Mutex<Vec<(String, String)>>);

impl RecordedEvents {
    /// `(namespace/name, reason)` of every event so far.
    pub fn events(&self) -> Vec<(String, String)> {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

impl FailureEvents for RecordedEvents {
    fn nic_failed(&self, pod: &PodSandbox, reason: String) {
        self.0
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .push((pod.key().to_string(), reason));
    }
}
