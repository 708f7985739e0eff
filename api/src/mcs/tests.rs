use std::collections::BTreeMap;

use kube::CustomResourceExt;
use kube::core::Resource;

use super::*;

#[test]
fn a_service_export_without_spec_is_accepted_and_written_back_without_one() {
    let export: ServiceExport = serde_json::from_value(serde_json::json!({
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceExport",
        "metadata": {"name": "nginx-svc", "namespace": "default"},
    }))
    .unwrap();
    assert!(export.spec.is_empty() && export.status.is_none());
    let json = serde_json::to_value(&export).unwrap();
    assert_eq!(
        json,
        serde_json::json!({
            "apiVersion": "multicluster.x-k8s.io/v1beta1",
            "kind": "ServiceExport",
            "metadata": {"name": "nginx-svc", "namespace": "default"},
        })
    );
}

#[test]
fn a_service_export_keeps_exported_labels_and_conditions() {
    let mut export = ServiceExport::new("nginx-svc");
    export.spec.exported_labels = BTreeMap::from([("tier".to_owned(), "web".to_owned())]);
    let json = serde_json::json!({
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceExport",
        "metadata": {"name": "nginx-svc"},
        "spec": {"exportedLabels": {"tier": "web"}},
        "status": {"conditions": [{
            "type": "Valid", "status": "True", "reason": "Valid", "message": "",
            "lastTransitionTime": "2026-11-24T23:48:00Z",
        }]},
    });
    let parsed: ServiceExport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(parsed.spec, export.spec);
    let conditions = &parsed.status.as_ref().unwrap().conditions;
    assert_eq!(conditions[0].type_, export_condition::VALID);
    assert_eq!(serde_json::to_value(&parsed).unwrap(), json);
}

#[test]
fn service_export_resource_metadata_matches_upstream() {
    assert_eq!(
        ServiceExport::api_version(&()),
        "multicluster.x-k8s.io/v1beta1"
    );
    assert_eq!(ServiceExport::plural(&()), "serviceexports");
    assert_eq!(
        ServiceExport::crd_name(),
        "serviceexports.multicluster.x-k8s.io"
    );
    assert_eq!(ServiceExport::shortnames(), ["svcex", "svcexport"]);
    assert_eq!(ServiceExport::api_resource().kind, "ServiceExport");
    assert_eq!(
        ServiceImport::crd_name(),
        "serviceimports.multicluster.x-k8s.io"
    );
    assert_eq!(ServiceImport::shortnames(), ["svcim", "svcimport"]);
    assert_eq!(ServiceImport::crd().spec.scope, "Namespaced");
}

#[test]
fn a_service_import_uses_upstream_field_names() {
    let json = serde_json::json!({
        "apiVersion": "multicluster.x-k8s.io/v1beta1",
        "kind": "ServiceImport",
        "metadata": {"name": "nginx-svc", "namespace": "default"},
        "spec": {
            "ports": [{"name": "http", "protocol": "TCP", "appProtocol": "http", "port": 80}],
            "ips": ["10.112.7.7"],
            "type": "ClusterSetIP",
            "sessionAffinity": "ClientIP",
            "sessionAffinityConfig": {"clientIP": {"timeoutSeconds": 300}},
            "ipFamilies": ["IPv4"],
        },
        "status": {"endpointSliceObjects": "Present", "clusters": [{"cluster": "member-1"}]},
    });
    let import: ServiceImport = serde_json::from_value(json.clone()).unwrap();
    assert_eq!(import.spec.type_, ServiceImportType::ClusterSetIP);
    assert_eq!(import.spec.ports[0].app_protocol.as_deref(), Some("http"));
    let status = import.status.as_ref().unwrap();
    assert_eq!(
        status.clusters,
        [ClusterStatus {
            cluster: "member-1".to_owned()
        }]
    );
    assert_eq!(
        status.endpoint_slice_objects,
        Some(EndpointSliceObjects::Present)
    );
    assert_eq!(serde_json::to_value(&import).unwrap(), json);
}

#[test]
fn a_port_without_protocol_defaults_to_tcp() {
    let port: ServicePort = serde_json::from_value(serde_json::json!({"port": 53})).unwrap();
    assert_eq!(
        (port.name.as_str(), port.protocol.as_str(), port.port),
        ("", "TCP", 53)
    );
    assert!(
        serde_json::from_value::<ServiceImportType>(serde_json::json!("LoadBalancer")).is_err()
    );
}

#[test]
fn endpoint_slice_labels_are_the_upstream_keys() {
    assert_eq!(
        LABEL_SERVICE_NAME,
        "multicluster.kubernetes.io/service-name"
    );
    assert_eq!(
        LABEL_SOURCE_CLUSTER,
        "multicluster.kubernetes.io/source-cluster"
    );
}
