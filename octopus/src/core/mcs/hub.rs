//! How a member's exports are laid out on the hub, and how a member reads them back.
//!
//! Every member writes into its own namespace on the hub (`nauti-member-<id>`, the only one its
//! credential may write), for each valid export:
//! - a `ServiceImport` named `<namespace>.<name>` carrying the export's properties (type, ports,
//!   session affinity, traffic policies) and, in [`ANNOTATION_EXPORTED_AT`], when the
//!   `ServiceExport` was created, which decides conflicts;
//! - its EndpointSlices, named `<namespace>.<slice name>` (see [`super::slice_name`]).
//!
//! Namespaces and Service names are DNS labels, so the first `.` splits a hub name without
//! ambiguity. Both kinds carry the service's name and namespace and the source cluster as
//! labels; a reader trusts none of them for the cluster, which it takes from the namespace the
//! object lives in (a member can write nowhere else).

use std::collections::BTreeMap;

use jiff::Timestamp;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use nauti_api::ServiceImport;
use nauti_api::mcs::{
    LABEL_MANAGED_BY, LABEL_SERVICE_NAME, LABEL_SOURCE_CLUSTER, MANAGED_BY_NAUTI, ServiceImportSpec,
};

use super::ServiceKey;
use super::export::ServiceProperties;
use super::merge::ClusterExport;
use super::slices::is_slice_name_of;
use crate::join::member_namespace;

/// Label on the hub's objects naming the namespace of the exported Service (the hub namespace
/// is the member's, not the Service's).
pub const LABEL_SERVICE_NAMESPACE: &str = "nauti.io/service-namespace";

/// Annotation on a member's `ServiceImport` on the hub: when its `ServiceExport` was created
/// (RFC 3339). The oldest export of a name wins its conflicts.
pub const ANNOTATION_EXPORTED_AT: &str = "nauti.io/exported-at";

/// The cluster whose member namespace on the hub is `namespace`, if it is one.
pub fn cluster_of_hub_namespace(namespace: &str) -> Option<&str> {
    let prefix = member_namespace("");
    namespace
        .strip_prefix(prefix.as_str())
        .filter(|id| nauti_api::core::names::validate_dns1123_label(id).is_ok())
}

/// The hub name of an export's `ServiceImport`: `<namespace>.<name>`.
pub fn hub_import_name(key: &ServiceKey) -> String {
    format!("{}.{}", key.namespace, key.name)
}

/// The hub name of an exported EndpointSlice whose name in the clusters is `slice`.
pub fn hub_slice_name(key: &ServiceKey, slice: &str) -> String {
    format!("{}.{slice}", key.namespace)
}

/// The name an EndpointSlice of the hub gets in a member: its hub name without the
/// namespace. `None` for a name that is not laid out as `key`'s and `cluster`'s slices are,
/// so that a member cannot aim a copy at another object (say, a Service's own slice).
pub fn local_slice_name<'a>(hub_name: &'a str, key: &ServiceKey, cluster: &str) -> Option<&'a str> {
    hub_name
        .split_once('.')
        .filter(|(namespace, _)| *namespace == key.namespace)
        .map(|(_, rest)| rest)
        .filter(|rest| is_slice_name_of(rest, key, cluster))
}

/// The labels of every object a member writes on the hub for `key`.
pub fn hub_labels(key: &ServiceKey, cluster: &str) -> BTreeMap<String, String> {
    BTreeMap::from([
        (LABEL_SERVICE_NAME.to_owned(), key.name.clone()),
        (LABEL_SERVICE_NAMESPACE.to_owned(), key.namespace.clone()),
        (LABEL_SOURCE_CLUSTER.to_owned(), cluster.to_owned()),
        (LABEL_MANAGED_BY.to_owned(), MANAGED_BY_NAUTI.to_owned()),
    ])
}

/// The service a hub object belongs to, from its labels, with the cluster taken from its
/// namespace. `None` when it is not in a member namespace, lacks the labels, or its
/// source-cluster label names another cluster than the namespace's owner.
pub fn hub_object_key(meta: &ObjectMeta) -> Option<(ServiceKey, String)> {
    let cluster = cluster_of_hub_namespace(meta.namespace.as_deref()?)?;
    let labels = meta.labels.as_ref()?;
    if labels.get(LABEL_SOURCE_CLUSTER).map(String::as_str) != Some(cluster) {
        return None;
    }
    let key = ServiceKey::new(
        labels.get(LABEL_SERVICE_NAMESPACE)?.clone(),
        labels.get(LABEL_SERVICE_NAME)?.clone(),
    );
    Some((key, cluster.to_owned()))
}

/// The import spec of a merged service, with its clusterset IPs (none for `Headless`).
pub fn import_spec(properties: &ServiceProperties, ips: &[std::net::IpAddr]) -> ServiceImportSpec {
    let mut families: Vec<String> = ips
        .iter()
        .map(|ip| if ip.is_ipv4() { "IPv4" } else { "IPv6" }.to_owned())
        .collect();
    families.dedup();
    ServiceImportSpec {
        ports: properties.ports.clone(),
        ips: ips.iter().map(ToString::to_string).collect(),
        type_: properties.type_,
        session_affinity: properties.session_affinity.clone(),
        session_affinity_config: properties.session_affinity_config.clone(),
        ip_families: families,
        internal_traffic_policy: properties.internal_traffic_policy.clone(),
        traffic_distribution: properties.traffic_distribution.clone(),
    }
}

/// What a member publishes on the hub for an export created at `exported_at`.
pub fn hub_import(
    key: &ServiceKey,
    cluster: &str,
    exported_at: Timestamp,
    properties: &ServiceProperties,
) -> ServiceImport {
    let mut import = ServiceImport::new(&hub_import_name(key), import_spec(properties, &[]));
    import.metadata.namespace = Some(member_namespace(cluster));
    import.metadata.labels = Some(hub_labels(key, cluster));
    import.metadata.annotations = Some(BTreeMap::from([(
        ANNOTATION_EXPORTED_AT.to_owned(),
        exported_at.to_string(),
    )]));
    import
}

/// One cluster's export as read back from its `ServiceImport` on the hub.
pub fn hub_export(import: &ServiceImport) -> Option<(ServiceKey, ClusterExport)> {
    let (key, cluster) = hub_object_key(&import.metadata)?;
    // One export per name and cluster: only the object named for the key counts.
    if import.metadata.name.as_deref() != Some(hub_import_name(&key).as_str()) {
        return None;
    }
    let exported_at = import
        .metadata
        .annotations
        .as_ref()
        .and_then(|a| a.get(ANNOTATION_EXPORTED_AT))
        .and_then(|text| text.parse::<Timestamp>().ok())
        .or_else(|| import.metadata.creation_timestamp.as_ref().map(|t| t.0))?
        .as_second();
    let spec = &import.spec;
    Some((
        key,
        ClusterExport {
            cluster,
            exported_at,
            properties: ServiceProperties {
                type_: spec.type_,
                ports: spec.ports.clone(),
                session_affinity: spec.session_affinity.clone(),
                session_affinity_config: spec.session_affinity_config.clone(),
                internal_traffic_policy: spec.internal_traffic_policy.clone(),
                traffic_distribution: spec.traffic_distribution.clone(),
            },
        },
    ))
}

#[cfg(test)]
mod tests {
    use super::*;
    use nauti_api::mcs::{ServiceImportType, ServicePort};

    fn properties() -> ServiceProperties {
        ServiceProperties {
            type_: ServiceImportType::ClusterSetIP,
            ports: vec![ServicePort {
                name: "http".into(),
                protocol: "TCP".into(),
                app_protocol: None,
                port: 80,
            }],
            session_affinity: Some("ClientIP".into()),
            session_affinity_config: None,
            internal_traffic_policy: Some("Cluster".into()),
            traffic_distribution: None,
        }
    }

    #[test]
    fn an_export_reads_back_as_it_was_published() {
        let key = ServiceKey::new("default", "nginx-svc");
        let at: Timestamp = "2026-01-02T03:04:05Z".parse().unwrap();
        let import = hub_import(&key, "cluster-a", at, &properties());
        assert_eq!(import.metadata.name.as_deref(), Some("default.nginx-svc"));
        assert_eq!(
            import.metadata.namespace.as_deref(),
            Some("nauti-member-cluster-a")
        );
        let (read_key, export) = hub_export(&import).unwrap();
        assert_eq!(read_key, key);
        assert_eq!(export.cluster, "cluster-a");
        assert_eq!(export.exported_at, at.as_second());
        assert_eq!(export.properties, properties());
    }

    #[test]
    fn the_cluster_comes_from_the_namespace_and_a_label_claiming_another_is_refused() {
        let key = ServiceKey::new("default", "web");
        let at = Timestamp::UNIX_EPOCH;
        let mut forged = hub_import(&key, "cluster-b", at, &properties());
        // Cluster B writes in its own namespace but claims to be A.
        forged
            .metadata
            .labels
            .as_mut()
            .unwrap()
            .insert(LABEL_SOURCE_CLUSTER.into(), "cluster-a".into());
        assert_eq!(hub_export(&forged), None);

        let mut renamed = hub_import(&key, "cluster-a", at, &properties());
        renamed.metadata.name = Some("default.other".into());
        assert_eq!(
            hub_export(&renamed),
            None,
            "a second object for the same name"
        );

        let mut elsewhere = hub_import(&key, "cluster-a", at, &properties());
        elsewhere.metadata.namespace = Some("default".into());
        assert_eq!(hub_export(&elsewhere), None, "not a member namespace");
    }

    #[test]
    fn member_namespaces_map_to_their_cluster() {
        assert_eq!(cluster_of_hub_namespace("nauti-member-east"), Some("east"));
        assert_eq!(cluster_of_hub_namespace("nauti-member-"), None);
        assert_eq!(cluster_of_hub_namespace("nauti-system"), None);
        assert_eq!(cluster_of_hub_namespace("nauti-member-Bad_Id"), None);
    }

    #[test]
    fn slice_names_round_trip_through_the_hub() {
        let key = ServiceKey::new("apps", "web");
        let hub = hub_slice_name(&key, "web-east-ipv4");
        assert_eq!(hub, "apps.web-east-ipv4");
        assert_eq!(local_slice_name(&hub, &key, "east"), Some("web-east-ipv4"));
        assert_eq!(local_slice_name("plain", &key, "east"), None);
        // Another cluster's name, another namespace, or a Service's own slice: not copied.
        assert_eq!(local_slice_name(&hub, &key, "west"), None);
        assert_eq!(
            local_slice_name("default.web-east-ipv4", &key, "east"),
            None
        );
        assert_eq!(local_slice_name("apps.web-abcde", &key, "east"), None);
    }

    #[test]
    fn the_import_spec_names_one_family_per_address() {
        let ips = ["10.127.3.4".parse().unwrap()];
        let spec = import_spec(&properties(), &ips);
        assert_eq!(spec.ips, ["10.127.3.4"]);
        assert_eq!(spec.ip_families, ["IPv4"]);
        let headless = import_spec(&properties(), &[]);
        assert!(headless.ips.is_empty() && headless.ip_families.is_empty());
    }
}
