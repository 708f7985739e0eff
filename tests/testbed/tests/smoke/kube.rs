use std::time::Duration;

use futures::{StreamExt, TryStreamExt};
use kube::api::{Api, DynamicObject, PostParams};
use kube::discovery::ApiResource;
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::{KubeApi, TestDir, require_root};

fn peer_resource() -> ApiResource {
    ApiResource {
        group: "nauti.io".into(),
        version: "v1alpha1".into(),
        api_version: "nauti.io/v1alpha1".into(),
        kind: "Peer".into(),
        plural: "peers".into(),
    }
}

fn peer(name: &str, cluster_id: &str, public_key: &str) -> DynamicObject {
    let mut obj = DynamicObject::new(name, &peer_resource());
    obj.data = serde_json::json!({
        "spec": {
            "clusterID": cluster_id,
            "clusterCIDRs": ["10.112.0.0/16"],
            "publicKey": public_key,
        }
    });
    obj
}

// 32 zero bytes, base64.
const KEY_32: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=";
// 31 zero bytes, base64.
const KEY_31: &str = "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA==";

#[tokio::test]
async fn the_apiserver_serves_our_crds_watches_a_peer_and_rejects_invalid_ones() {
    require_root!();
    let dir = TestDir::new("kube-smoke").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    let installed = kube.install_crds(&repo_crds()).await.unwrap();
    assert!(
        installed.contains(&"peers.nauti.io".to_owned()),
        "{installed:?}"
    );
    assert!(installed.contains(&"serviceexports.multicluster.x-k8s.io".to_owned()));

    let client = kube.client().await.unwrap();
    let peers: Api<DynamicObject> = Api::namespaced_with(client, "default", &peer_resource());
    let mut events = kube::runtime::watcher(peers.clone(), Default::default()).boxed();
    // The initial list completes before the Peer exists, so its arrival is a watch event.
    let listed = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if matches!(event, kube::runtime::watcher::Event::InitDone) {
                return;
            }
        }
    })
    .await;
    assert!(listed.is_ok(), "the initial list did not complete");
    peers
        .create(&PostParams::default(), &peer("east", "east", KEY_32))
        .await
        .unwrap();
    let added = tokio::time::timeout(Duration::from_secs(20), async {
        while let Some(event) = events.try_next().await.unwrap() {
            if let kube::runtime::watcher::Event::Apply(obj) = event {
                return Some(obj);
            }
        }
        None
    })
    .await
    .expect("no watch event within 20 s")
    .expect("watch ended without an event for the new Peer");
    assert_eq!(added.metadata.name.as_deref(), Some("east"));
    assert_eq!(
        added.data["spec"]["port"], 51820,
        "schema default not applied"
    );

    for (name, cluster, key) in [
        ("upper", "East", KEY_32),
        ("long", &"a".repeat(64)[..], KEY_32),
        ("shortkey", "west", KEY_31),
    ] {
        let err = peers
            .create(&PostParams::default(), &peer(name, cluster, key))
            .await
            .expect_err(&format!("{name}: invalid Peer accepted"));
        match err {
            kube::Error::Api(status) => assert_eq!(status.code, 422, "{name}: {status:?}"),
            other => panic!("{name}: unexpected error {other}"),
        }
    }
}

#[tokio::test]
async fn a_new_identity_has_no_rights_until_rbac_grants_them() {
    require_root!();
    let dir = TestDir::new("kube-rbac").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    let client = kube
        .client_as("member-east", &["nauti:members"])
        .await
        .unwrap();
    let pods: Api<k8s_openapi::api::core::v1::Pod> = Api::namespaced(client, "default");
    match pods.list(&Default::default()).await {
        Err(kube::Error::Api(status)) => assert_eq!(status.code, 403, "{status:?}"),
        other => panic!("an identity without RBAC listed pods: {other:?}"),
    }
}

#[tokio::test]
async fn the_api_is_reachable_from_a_node_namespace_at_the_same_url() {
    require_root!();
    let dir = TestDir::new("kube-forward").unwrap();
    let kube = KubeApi::start(&dir).await.unwrap();
    let node = nauti_testbed::Netns::new("nkf").unwrap();
    let _forward = kube.expose_in(&node).unwrap();
    let kubeconfig = kube.kubeconfig().display().to_string();
    let out = node
        .exec(
            &nauti_testbed::peers::bin("kubectl")
                .unwrap()
                .display()
                .to_string(),
            &["--kubeconfig", &kubeconfig, "get", "--raw", "/readyz"],
        )
        .unwrap();
    assert_eq!(out.trim(), "ok");
}
