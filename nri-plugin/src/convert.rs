//! Conversions from the generated wire messages into the plain types of [`crate::core`].
//!
//! Everything the runtime may leave out is tolerated: proto3 has no required fields, so an absent
//! `linux` section, an empty namespace path or a PID of 0 become `None`, never an error.

use std::collections::{BTreeMap, HashMap};
use std::time::Duration;

use crate::core::{Container, ContainerState, PodSandbox, RuntimeInfo};
use crate::proto::api;

/// The `type` of the network namespace in `LinuxPodSandbox.namespaces` (OCI runtime-spec name).
pub const NETWORK_NAMESPACE: &str = "network";

fn sorted(map: HashMap<String, String>) -> BTreeMap<String, String> {
    map.into_iter().collect()
}

fn nonzero(pid: u32) -> Option<u32> {
    (pid != 0).then_some(pid)
}

impl From<api::PodSandbox> for PodSandbox {
    fn from(pod: api::PodSandbox) -> Self {
        let linux = pod.linux.into_option().unwrap_or_default();
        let netns_path = linux
            .namespaces
            .into_iter()
            .find(|ns| ns.type_ == NETWORK_NAMESPACE)
            .map(|ns| ns.path)
            .filter(|path| !path.is_empty());
        Self {
            id: pod.id,
            name: pod.name,
            namespace: pod.namespace,
            uid: pod.uid,
            annotations: sorted(pod.annotations),
            labels: sorted(pod.labels),
            netns_path,
            runtime_handler: pod.runtime_handler,
            ips: pod.ips,
            pid: nonzero(pod.pid),
            cgroup_parent: linux.cgroup_parent,
        }
    }
}

impl From<api::ContainerState> for ContainerState {
    fn from(state: api::ContainerState) -> Self {
        match state {
            api::ContainerState::CONTAINER_UNKNOWN => Self::Unknown,
            api::ContainerState::CONTAINER_CREATED => Self::Created,
            api::ContainerState::CONTAINER_PAUSED => Self::Paused,
            api::ContainerState::CONTAINER_RUNNING => Self::Running,
            api::ContainerState::CONTAINER_STOPPED => Self::Stopped,
        }
    }
}

impl From<api::Container> for Container {
    fn from(container: api::Container) -> Self {
        Self {
            id: container.id,
            pod_sandbox_id: container.pod_sandbox_id,
            name: container.name,
            // A state number from a newer API is Unknown, not an error.
            state: container
                .state
                .enum_value()
                .map(ContainerState::from)
                .unwrap_or_default(),
            labels: sorted(container.labels),
            annotations: sorted(container.annotations),
            pid: nonzero(container.pid),
        }
    }
}

impl From<&api::ConfigureRequest> for RuntimeInfo {
    fn from(req: &api::ConfigureRequest) -> Self {
        let millis = |ms: i64| Duration::from_millis(u64::try_from(ms).unwrap_or(0));
        Self {
            name: req.runtime_name.clone(),
            version: req.runtime_version.clone(),
            nri_version: req.NRI_version.clone(),
            registration_timeout: millis(req.registration_timeout),
            request_timeout: millis(req.request_timeout),
        }
    }
}

#[cfg(test)]
mod tests {
    use protobuf::{EnumOrUnknown, Message as _};

    use super::*;

    fn mk_namespace(type_: &str, path: &str) -> api::LinuxNamespace {
        api::LinuxNamespace {
            type_: type_.into(),
            path: path.into(),
            ..Default::default()
        }
    }

    fn mk_pod(namespaces: Vec<api::LinuxNamespace>) -> api::PodSandbox {
        let mut linux = api::LinuxPodSandbox::new();
        linux.namespaces = namespaces;
        linux.cgroup_parent = "/kubepods/besteffort/pod1234".into();
        api::PodSandbox {
            id: "a1b2".into(),
            name: "nginx".into(),
            namespace: "default".into(),
            uid: "0b6e5ad4-1d9e-4d2c-9a8c-6f1c2f0d9e11".into(),
            labels: [("app".into(), "nginx".into())].into(),
            annotations: [("nauti.io/enabled".into(), "true".into())].into(),
            linux: Some(linux).into(),
            pid: 4242,
            ips: vec!["10.244.0.5".into()],
            ..Default::default()
        }
    }

    #[test]
    fn pod_with_network_namespace_gets_its_path() {
        let pod = PodSandbox::from(mk_pod(vec![
            mk_namespace("ipc", "/proc/4242/ns/ipc"),
            mk_namespace("network", "/var/run/netns/cni-1234"),
            mk_namespace("uts", ""),
        ]));
        assert_eq!(pod.netns_path.as_deref(), Some("/var/run/netns/cni-1234"));
        assert!(pod.has_own_netns());
        assert_eq!(pod.name, "nginx");
        assert_eq!(pod.namespace, "default");
        assert_eq!(pod.uid, "0b6e5ad4-1d9e-4d2c-9a8c-6f1c2f0d9e11");
        assert_eq!(pod.id, "a1b2");
        assert_eq!(pod.labels["app"], "nginx");
        assert_eq!(pod.annotations["nauti.io/enabled"], "true");
        assert_eq!(pod.pid, Some(4242));
        assert_eq!(pod.ips, ["10.244.0.5"]);
        assert_eq!(pod.cgroup_parent, "/kubepods/besteffort/pod1234");
        assert_eq!(pod.key().to_string(), "default/nginx");
    }

    #[test]
    fn host_network_pod_has_no_netns() {
        let pod = PodSandbox::from(mk_pod(vec![mk_namespace("ipc", "/proc/1/ns/ipc")]));
        assert_eq!(pod.netns_path, None);
        assert!(!pod.has_own_netns());
    }

    #[test]
    fn empty_network_namespace_path_is_no_netns() {
        let pod = PodSandbox::from(mk_pod(vec![mk_namespace("network", "")]));
        assert_eq!(pod.netns_path, None);
    }

    #[test]
    fn pod_without_linux_section_converts_with_defaults() {
        let pod = PodSandbox::from(api::PodSandbox {
            id: "x".into(),
            ..Default::default()
        });
        assert_eq!(pod.netns_path, None);
        assert_eq!(pod.pid, None);
        assert!(pod.labels.is_empty());
    }

    #[test]
    fn unknown_fields_from_a_newer_runtime_are_skipped() {
        // A PodSandbox with our fields plus field 99 (varint) and field 100 (bytes), as a newer
        // runtime might send; and LinuxPodSandbox field 1 (resources), which our subset omits.
        let mut bytes = mk_pod(vec![mk_namespace("network", "/run/netns/x")])
            .write_to_bytes()
            .unwrap();
        bytes.extend([0x98, 0x06, 0x01]); // field 99, varint 1
        bytes.extend([0xa2, 0x06, 0x03, b'n', b'e', b'w']); // field 100, "new"
        let decoded = api::PodSandbox::parse_from_bytes(&bytes).unwrap();
        let pod = PodSandbox::from(decoded);
        assert_eq!(pod.netns_path.as_deref(), Some("/run/netns/x"));
        assert_eq!(pod.name, "nginx");
    }

    #[test]
    fn container_state_from_a_newer_api_is_unknown() {
        let container = Container::from(api::Container {
            id: "c1".into(),
            pod_sandbox_id: "a1b2".into(),
            state: EnumOrUnknown::from_i32(42),
            ..Default::default()
        });
        assert_eq!(container.state, ContainerState::Unknown);
        assert_eq!(container.pid, None);
        let running = Container::from(api::Container {
            state: api::ContainerState::CONTAINER_RUNNING.into(),
            pid: 7,
            ..Default::default()
        });
        assert_eq!(running.state, ContainerState::Running);
        assert_eq!(running.pid, Some(7));
    }

    #[test]
    fn runtime_info_takes_timeouts_in_milliseconds() {
        let info = RuntimeInfo::from(&api::ConfigureRequest {
            runtime_name: "containerd".into(),
            runtime_version: "v2.4.0".into(),
            registration_timeout: 5000,
            request_timeout: -1,
            ..Default::default()
        });
        assert_eq!(info.registration_timeout, Duration::from_secs(5));
        assert_eq!(info.request_timeout, Duration::ZERO);
        assert_eq!(info.name, "containerd");
    }
}
