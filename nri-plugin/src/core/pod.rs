//! The pods and containers the runtime reports, as plain data.
//!
//! These are what the pod-plumbing layer works with; `crate::convert` fills them from the wire
//! messages, so nothing outside the ttrpc edge sees protobuf types.

use std::collections::BTreeMap;
use std::fmt;
use std::time::Duration;

/// A pod sandbox as the runtime knows it.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct PodSandbox {
    /// The runtime's sandbox ID (64 hex digits for containerd).
    pub id: String,
    /// The Kubernetes pod name.
    pub name: String,
    /// The Kubernetes namespace.
    pub namespace: String,
    /// The Kubernetes pod UID.
    pub uid: String,
    /// Pod annotations as the kubelet passed them to the runtime.
    pub annotations: BTreeMap<String, String>,
    /// Pod labels as the kubelet passed them to the runtime.
    pub labels: BTreeMap<String, String>,
    /// The pod's network namespace (e.g. `/var/run/netns/cni-…`); `None` for pods without one of
    /// their own (`hostNetwork: true`).
    pub netns_path: Option<String>,
    /// The runtime handler (`runc`, `kata`, …); empty for the default.
    pub runtime_handler: String,
    /// Addresses the primary network gave the pod.
    pub ips: Vec<String>,
    /// PID of the sandbox's init process, when the runtime reports one.
    pub pid: Option<u32>,
    /// The pod's cgroup parent.
    pub cgroup_parent: String,
}

impl PodSandbox {
    /// `namespace/name`, for messages.
    pub fn key(&self) -> PodKey<'_> {
        PodKey(self)
    }

    /// Whether the pod has a network namespace of its own (not a hostNetwork pod).
    pub fn has_own_netns(&self) -> bool {
        self.netns_path.is_some()
    }
}

/// Displays a pod as `namespace/name`.
#[derive(Clone, Copy, Debug)]
pub struct PodKey<'a>(&'a PodSandbox);

impl fmt::Display for PodKey<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.0.namespace, self.0.name)
    }
}

/// A container as the runtime knows it (only what Nauti reads).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Container {
    /// The runtime's container ID.
    pub id: String,
    /// The sandbox the container belongs to.
    pub pod_sandbox_id: String,
    /// The container name from the pod spec.
    pub name: String,
    /// Lifecycle state.
    pub state: ContainerState,
    /// Container labels.
    pub labels: BTreeMap<String, String>,
    /// Container annotations.
    pub annotations: BTreeMap<String, String>,
    /// PID of the container's init process, when running.
    pub pid: Option<u32>,
}

/// A container's lifecycle state.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub enum ContainerState {
    /// Unknown, or a state from a newer API.
    #[default]
    Unknown,
    /// Created, not started.
    Created,
    /// Paused.
    Paused,
    /// Running.
    Running,
    /// Exited.
    Stopped,
}

/// What the runtime says about itself in `Configure`.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct RuntimeInfo {
    /// E.g. `containerd`.
    pub name: String,
    /// E.g. `v2.4.0`.
    pub version: String,
    /// The NRI version the runtime speaks, when it says.
    pub nri_version: String,
    /// How long the runtime waits for a plugin to register.
    pub registration_timeout: Duration,
    /// How long the runtime waits for a plugin's answer to any request; a slower answer makes the
    /// runtime drop the plugin's connection.
    pub request_timeout: Duration,
}
