//! The generated CRDs and the typed resources against a real kube-apiserver (from the
//! test-bed): the apiserver accepts the schemas, applies their defaults and enforces the rules
//! that live in the schema, and objects written by these types read back equal.

#![allow(
    clippy::unwrap_used,
    clippy::panic,
    reason = "test helpers outside #[test] functions; a failure here is a test failure"
)]

use kube::api::{Api, Patch, PatchParams, PostParams};
use nauti_api::conditions::{new_condition, set_condition};
use nauti_api::mcs::{
    ClusterStatus, ServiceExport, ServiceImport, ServiceImportSpec, ServiceImportStatus,
    ServicePort,
};
use nauti_api::mcs::{ServiceImportType, export_condition};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, Peer, PeerStatus};
use nauti_api::testutil::{mk_hub_peer, mk_peer};
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::{KubeApi, TestDir, require_root};

fn now() -> k8s_openapi::apimachinery::pkg::apis::meta::v1::Time {
    k8s_openapi::apimachinery::pkg::apis::meta::v1::Time(
        std::time::SystemTime::now().try_into().unwrap(),
    )
}

async fn apiserver(name: &str) -> (TestDir, KubeApi, kube::Client) {
    let dir = TestDir::new(name).unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    kube.install_crds(&repo_crds()).await.unwrap();
    kube.create_namespace(DEFAULT_PEER_NAMESPACE).await.unwrap();
    let client = kube.client().await.unwrap();
    (dir, kube, client)
}

fn assert_rejected<T: std::fmt::Debug>(result: Result<T, kube::Error>, needle: &str) {
    match result {
        Err(kube::Error::Api(status)) => {
            assert_eq!(status.code, 422, "{status:?}");
            assert!(
                status.message.contains(needle),
                "{needle:?} not in {:?}",
                status.message
            );
        }
        other => panic!("expected a 422 mentioning {needle:?}, got {other:?}"),
    }
}

#[tokio::test]
async fn peers_round_trip_and_the_schema_enforces_its_rules() {
    require_root!();
    let (_dir, _kube, client) = apiserver("api-peers").await;
    let peers: Api<Peer> = Api::namespaced(client.clone(), DEFAULT_PEER_NAMESPACE);

    let hub = mk_hub_peer(
        "hub",
        [
            "10.113.0.0/16".parse().unwrap(),
            "fd00:113::/48".parse().unwrap(),
        ],
        "hub.example.com",
    );
    let created = peers.create(&PostParams::default(), &hub).await.unwrap();
    assert_eq!(created.spec, hub.spec);
    assert_eq!(created.validate(), Ok(()));

    // Status through the status subresource, typed, with a standard condition.
    let mut status = PeerStatus {
        latency_ms: Some(4),
        last_handshake: Some(now()),
        ..PeerStatus::default()
    };
    set_condition(
        &mut status.conditions,
        new_condition(
            "Ready",
            Some(true),
            "HandshakeRecent",
            "",
            created.metadata.generation,
            now(),
        ),
    );
    let patch = serde_json::json!({ "status": status });
    let patched = peers
        .patch_status("hub", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.status.as_ref().map(|s| s.latency_ms), Some(Some(4)));
    assert_eq!(
        patched
            .status
            .as_ref()
            .and_then(|s| s.condition("Ready"))
            .map(|c| c.status.as_str()),
        Some("True")
    );

    // The CEL rule: a hub needs an endpoint.
    let mut no_endpoint = mk_hub_peer("hub-2", ["10.114.0.0/16".parse().unwrap()], "x");
    no_endpoint.spec.endpoint = None;
    assert_rejected(
        peers.create(&PostParams::default(), &no_endpoint).await,
        "endpoint is required",
    );

    // Patterns and lengths.
    let mut bad_id = mk_peer("member-x", ["10.115.0.0/16".parse().unwrap()]);
    bad_id.spec.cluster_id = "Member-X".to_owned();
    assert_rejected(
        peers.create(&PostParams::default(), &bad_id).await,
        "clusterID",
    );
    let mut bad_key = mk_peer("member-y", ["10.116.0.0/16".parse().unwrap()]);
    bad_key.spec.public_key = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==".to_owned();
    assert_rejected(
        peers.create(&PostParams::default(), &bad_key).await,
        "publicKey",
    );
    let raw: Api<kube::api::DynamicObject> = Api::namespaced_with(
        client,
        DEFAULT_PEER_NAMESPACE,
        &kube::api::ApiResource::erase::<Peer>(&()),
    );
    let mut obj: kube::api::DynamicObject =
        serde_json::from_value(serde_json::to_value(mk_peer("member-z", [])).unwrap()).unwrap();
    obj.data["spec"]["clusterCIDRs"] = serde_json::json!(["10.117.0.0/33"]);
    assert_rejected(
        raw.create(&PostParams::default(), &obj).await,
        "clusterCIDRs",
    );
}

#[tokio::test]
async fn service_exports_without_spec_and_service_imports_round_trip() {
    require_root!();
    let (_dir, _kube, client) = apiserver("api-mcs").await;
    let exports: Api<ServiceExport> = Api::namespaced(client.clone(), "default");
    let created = exports
        .create(&PostParams::default(), &ServiceExport::new("nginx-svc"))
        .await
        .unwrap();
    assert!(created.spec.is_empty());
    let condition = new_condition(
        export_condition::VALID,
        Some(true),
        export_condition::REASON_VALID,
        "",
        created.metadata.generation,
        now(),
    );
    let patch = serde_json::json!({ "status": { "conditions": [condition] } });
    let patched = exports
        .patch_status("nginx-svc", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.status.unwrap().conditions[0].type_, "Valid");

    let imports: Api<ServiceImport> = Api::namespaced(client, "default");
    let import = ServiceImport::new(
        "nginx-svc",
        ServiceImportSpec {
            ports: vec![ServicePort {
                name: "http".to_owned(),
                protocol: "TCP".to_owned(),
                app_protocol: None,
                port: 80,
            }],
            ips: vec![],
            type_: ServiceImportType::Headless,
            session_affinity: None,
            session_affinity_config: None,
            ip_families: vec!["IPv4".to_owned()],
            internal_traffic_policy: None,
            traffic_distribution: None,
        },
    );
    let created = imports
        .create(&PostParams::default(), &import)
        .await
        .unwrap();
    assert_eq!(created.spec, import.spec);
    let status = ServiceImportStatus {
        clusters: vec![ClusterStatus {
            cluster: "member-1".to_owned(),
        }],
        ..ServiceImportStatus::default()
    };
    let patch = serde_json::json!({ "status": status });
    let patched = imports
        .patch_status("nginx-svc", &PatchParams::default(), &Patch::Merge(&patch))
        .await
        .unwrap();
    assert_eq!(patched.status, Some(status));

    let mut bad = import.clone();
    bad.metadata.name = Some("bad".to_owned());
    bad.spec.ips = vec![
        "10.0.0.1".to_owned(),
        "10.0.0.2".to_owned(),
        "10.0.0.3".to_owned(),
    ];
    assert_rejected(imports.create(&PostParams::default(), &bad).await, "ips");
}
