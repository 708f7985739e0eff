//! What `show` reads from each member cluster, as plain data: its gateway (CNF) pods with the one
//! the Lease names active, and the services it imports from the set (the EndpointSlices octopus
//! writes, labelled with the cluster serving them).

use std::collections::BTreeMap;

use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::Pod;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI,
};
use serde::Serialize;

use crate::diagnose::pod_of_identity;

/// The CNF's environment variable naming the member's cluster ID (octopus's `--cluster-id`).
pub const CLUSTER_ID_ENV: &str = "OCTOPUS_CLUSTER_ID";

/// One gateway (CNF) pod of a member.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct GatewayPod {
    pub name: String,
    pub node: Option<String>,
    pub phase: String,
    pub ready: bool,
    /// `active` when the Lease names it and has not expired, `standby` otherwise.
    pub role: String,
}

/// A service a member imports and the clusters serving it there.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct ImportRow {
    pub namespace: String,
    pub name: String,
    /// The source clusters of its EndpointSlices, sorted.
    pub clusters: Vec<String>,
    /// Its endpoints across those slices.
    pub endpoints: usize,
}

/// One member cluster as its own API server shows it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
#[serde(rename_all = "camelCase")]
pub struct MemberView {
    /// The kubeconfig context (or file) it was read through.
    pub context: String,
    /// The cluster ID its CNF runs with; `None` without a CNF pod that names it.
    pub cluster_id: Option<String>,
    pub gateways: Vec<GatewayPod>,
    /// The Lease's holder when it names no pod listed (a pod gone, a foreign holder).
    pub lease_holder: Option<String>,
    pub imports: Vec<ImportRow>,
}

/// A cluster `show` could not read.
#[derive(Debug, Clone, PartialEq, Eq, Serialize)]
pub struct ClusterError {
    pub context: String,
    pub error: String,
}

fn lease_holder(lease: Option<&Lease>, now: jiff::Timestamp) -> Option<String> {
    let spec = lease?.spec.as_ref()?;
    let holder = spec.holder_identity.as_deref().filter(|h| !h.is_empty())?;
    // An expired Lease names no one: the pod it names may be dead.
    if let (Some(renewed), Some(duration)) = (&spec.renew_time, spec.lease_duration_seconds) {
        let expiry = renewed
            .0
            .checked_add(jiff::SignedDuration::from_secs(i64::from(duration)))
            .ok()?;
        if expiry < now {
            return None;
        }
    }
    Some(pod_of_identity(holder).to_owned())
}

fn cluster_id_of(pod: &Pod) -> Option<String> {
    pod.spec
        .as_ref()?
        .containers
        .iter()
        .flat_map(|c| c.env.iter().flatten())
        .find(|e| e.name == CLUSTER_ID_ENV)
        .and_then(|e| e.value.clone())
        .filter(|v| !v.is_empty())
}

fn gateway_pod(pod: &Pod, holder: Option<&str>) -> GatewayPod {
    let name = pod.metadata.name.clone().unwrap_or_default();
    let status = pod.status.as_ref();
    let ready = status
        .and_then(|s| s.conditions.as_ref())
        .into_iter()
        .flatten()
        .any(|c| c.type_ == "Ready" && c.status == "True");
    let phase = match (pod.metadata.deletion_timestamp.is_some(), status) {
        (true, _) => "Terminating".to_owned(),
        (false, s) => s
            .and_then(|s| s.phase.clone())
            .unwrap_or_else(|| "Unknown".to_owned()),
    };
    let role = if holder == Some(name.as_str()) {
        "active"
    } else {
        "standby"
    };
    GatewayPod {
        node: pod.spec.as_ref().and_then(|s| s.node_name.clone()),
        phase,
        ready,
        role: role.to_owned(),
        name,
    }
}

/// The imports octopus wrote: slices labelled managed by Nauti with a service name and a source
/// cluster. The built-in controller's slices and others' are not the set's.
pub fn import_rows(slices: &[EndpointSlice]) -> Vec<ImportRow> {
    let mut services: BTreeMap<(String, String), (Vec<String>, usize)> = BTreeMap::new();
    for slice in slices {
        let Some(labels) = slice.metadata.labels.as_ref() else {
            continue;
        };
        if labels.get(LABEL_MANAGED_BY).map(String::as_str) != Some(MANAGED_BY_NAUTI) {
            continue;
        }
        let (Some(service), Some(cluster)) = (
            labels.get(LABEL_SERVICE_NAME),
            labels.get(LABEL_SOURCE_CLUSTER),
        ) else {
            continue;
        };
        let namespace = slice.metadata.namespace.clone().unwrap_or_default();
        let entry = services.entry((namespace, service.clone())).or_default();
        entry.0.push(cluster.clone());
        entry.1 += slice.endpoints.as_ref().map_or(0, Vec::len);
    }
    services
        .into_iter()
        .map(|((namespace, name), (mut clusters, endpoints))| {
            clusters.sort();
            clusters.dedup();
            ImportRow {
                namespace,
                name,
                clusters,
                endpoints,
            }
        })
        .collect()
}

/// The view of one member from its CNF Lease, the CNF Deployment's pods and its EndpointSlices.
pub fn member_view(
    context: &str,
    lease: Option<&Lease>,
    cnf_pods: &[Pod],
    slices: &[EndpointSlice],
    now: jiff::Timestamp,
) -> MemberView {
    let holder = lease_holder(lease, now);
    let mut gateways: Vec<GatewayPod> = cnf_pods
        .iter()
        .map(|p| gateway_pod(p, holder.as_deref()))
        .collect();
    // The active one first, then by name.
    gateways.sort_by(|a, b| (a.role != "active", &a.name).cmp(&(b.role != "active", &b.name)));
    let holder_listed = gateways.iter().any(|g| g.role == "active");
    MemberView {
        context: context.to_owned(),
        cluster_id: cnf_pods.iter().find_map(cluster_id_of),
        gateways,
        lease_holder: holder.filter(|_| !holder_listed),
        imports: import_rows(slices),
    }
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, reason = "test code")]

    use super::*;
    use k8s_openapi::api::coordination::v1::LeaseSpec;
    use k8s_openapi::apimachinery::pkg::apis::meta::v1::{MicroTime, ObjectMeta};
    use serde_json::json;

    fn ts(s: &str) -> jiff::Timestamp {
        s.parse().unwrap()
    }

    fn pod(name: &str, node: &str, ready: bool) -> Pod {
        serde_json::from_value(json!({
            "metadata": {"name": name, "namespace": "nauti-system"},
            "spec": {"nodeName": node, "containers": [{"name": "octopus",
                "env": [{"name": CLUSTER_ID_ENV, "value": "east"}]}]},
            "status": {"phase": "Running", "conditions": [
                {"type": "Ready", "status": if ready { "True" } else { "False" }}]},
        }))
        .unwrap()
    }

    fn lease(holder: &str, renewed: &str) -> Lease {
        Lease {
            metadata: ObjectMeta::default(),
            spec: Some(LeaseSpec {
                holder_identity: Some(format!("{holder}_5f1c")),
                renew_time: Some(MicroTime(ts(renewed))),
                lease_duration_seconds: Some(15),
                ..LeaseSpec::default()
            }),
        }
    }

    fn slice(
        ns: &str,
        service: &str,
        cluster: &str,
        managed: &str,
        endpoints: usize,
    ) -> EndpointSlice {
        serde_json::from_value(json!({
            "metadata": {"name": format!("{service}-{cluster}"), "namespace": ns, "labels": {
                LABEL_SERVICE_NAME: service, LABEL_SOURCE_CLUSTER: cluster, LABEL_MANAGED_BY: managed}},
            "addressType": "IPv4",
            "endpoints": (0..endpoints).map(|i| json!({"addresses": [format!("10.113.0.{i}")]}))
                .collect::<Vec<_>>(),
        }))
        .unwrap()
    }

    #[test]
    fn the_lease_holder_is_active_and_the_others_stand_by() {
        let now = ts("2026-12-05T00:00:10Z");
        let pods = [
            pod("octopus-member-b", "east-n1", false),
            pod("octopus-member-a", "east-n0", true),
        ];
        let view = member_view(
            "east",
            Some(&lease("octopus-member-a", "2026-12-05T00:00:05Z")),
            &pods,
            &[],
            now,
        );
        assert_eq!(view.cluster_id.as_deref(), Some("east"));
        assert_eq!(view.gateways[0].name, "octopus-member-a");
        assert_eq!(view.gateways[0].role, "active");
        assert_eq!(view.gateways[0].node.as_deref(), Some("east-n0"));
        assert!(view.gateways[0].ready);
        assert_eq!(view.gateways[1].role, "standby");
        assert_eq!(view.lease_holder, None);

        // Expired: no one is active.
        let late = ts("2026-12-05T00:01:00Z");
        let view = member_view(
            "east",
            Some(&lease("octopus-member-a", "2026-12-05T00:00:05Z")),
            &pods,
            &[],
            late,
        );
        assert!(
            view.gateways.iter().all(|g| g.role == "standby"),
            "{view:?}"
        );

        // A holder that is not among the pods is named apart.
        let view = member_view(
            "east",
            Some(&lease("octopus-member-gone", "2026-12-05T00:00:05Z")),
            &pods,
            &[],
            now,
        );
        assert_eq!(view.lease_holder.as_deref(), Some("octopus-member-gone"));
        assert!(view.gateways.iter().all(|g| g.role == "standby"));
        let none = member_view("west", None, &[], &[], now);
        assert_eq!(none.cluster_id, None);
        assert!(none.gateways.is_empty());
    }

    #[test]
    fn imports_are_nautis_slices_grouped_by_service() {
        let slices = [
            slice("default", "nginx-svc", "east", MANAGED_BY_NAUTI, 2),
            slice("default", "nginx-svc", "hub", MANAGED_BY_NAUTI, 1),
            slice(
                "default",
                "local",
                "west",
                "endpointslice-controller.k8s.io",
                3,
            ),
        ];
        assert_eq!(
            import_rows(&slices),
            [ImportRow {
                namespace: "default".into(),
                name: "nginx-svc".into(),
                clusters: vec!["east".into(), "hub".into()],
                endpoints: 3,
            }]
        );
    }
}
