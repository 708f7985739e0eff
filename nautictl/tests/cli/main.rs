//! The built `nautictl` against a real kube-apiserver with Nauti's CRDs: join tokens are the
//! Secrets octopus issues (created, listed without their secret, deleted), `show` lists the Peers
//! and exports the test made, and a bad kubeconfig, an unknown context or a stopped API server
//! end in a message naming the cause and a non-zero exit.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

#[path = "../support/mod.rs"]
mod support;

use support::{assert_fails_naming, nautictl, stdout_of};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::{Condition, ObjectMeta, Time};
use kube::api::{Api, Patch, PatchParams, PostParams};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, PeerStatus, condition};
use nauti_api::testutil::{mk_hub_peer, mk_peer};
use nauti_api::{Peer, ServiceImport};
use nauti_octopus::core::mcs::ServiceKey;
use nauti_octopus::core::mcs::hub::{hub_import_name, hub_labels};
use nauti_octopus::join::member_namespace;
use nauti_octopus::join::token::{ISSUER_LABEL, SECRET_NAMESPACE, SECRET_TYPE};
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::{KubeApi, TestDir, require_root};

fn ready_condition(type_: &str, status: &str, reason: &str) -> Condition {
    Condition {
        type_: type_.to_owned(),
        status: status.to_owned(),
        reason: reason.to_owned(),
        message: format!("{type_}: {reason}"),
        last_transition_time: Time(jiff::Timestamp::now()),
        observed_generation: None,
    }
}

async fn create_namespace(client: &kube::Client, name: &str) {
    let ns = Namespace {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            ..ObjectMeta::default()
        },
        ..Namespace::default()
    };
    Api::<Namespace>::all(client.clone())
        .create(&PostParams::default(), &ns)
        .await
        .unwrap();
}

#[tokio::test]
async fn nautictl_against_a_real_hub() {
    require_root!();
    let dir = TestDir::new("nautictl-cli").unwrap();
    let api = KubeApi::start(&dir).await.unwrap();
    api.install_crds(&repo_crds()).await.unwrap();
    let client = api.client().await.unwrap();
    let kubeconfig = api.kubeconfig().to_owned();

    // join-token create: a Secret of octopus's shape, and the helm line with the hub URL.
    let created = stdout_of(&nautictl(
        &kubeconfig,
        &["join-token", "create", "--ttl", "2h"],
    ));
    let token = created
        .lines()
        .find_map(|l| l.strip_prefix("Bootstrap token: "))
        .and_then(|l| l.split_whitespace().next())
        .unwrap_or_else(|| panic!("no token in {created}"))
        .to_owned();
    let (id, secret_half) = token.split_once('.').unwrap();
    assert!(
        created.contains(&format!(
            "--set hub.hubURL={} --set cluster.clusterID=cluster1",
            api.url()
        )),
        "{created}"
    );
    assert!(created.contains(&format!("--set hub.bootstrapToken={token}")));
    assert!(created.contains("helm install nauti-agent deploy/charts/nauti-agent"));

    let secrets: Api<Secret> = Api::namespaced(client.clone(), SECRET_NAMESPACE);
    let stored = secrets.get(&format!("bootstrap-token-{id}")).await.unwrap();
    assert_eq!(stored.type_.as_deref(), Some(SECRET_TYPE));
    assert_eq!(
        stored.metadata.labels.as_ref().unwrap()[ISSUER_LABEL],
        "true"
    );
    let data = stored.data.unwrap();
    assert_eq!(data["token-secret"].0, secret_half.as_bytes());
    let expiration: jiff::Timestamp = String::from_utf8(data["expiration"].0.clone())
        .unwrap()
        .parse()
        .unwrap();
    let ttl = expiration.duration_since(jiff::Timestamp::now());
    assert!(
        ttl > jiff::SignedDuration::from_mins(115) && ttl <= jiff::SignedDuration::from_mins(120),
        "expiration {expiration} is not 2h away"
    );

    // list: the ID and its expiry, never the secret half.
    let listed = stdout_of(&nautictl(&kubeconfig, &["join-token", "list"]));
    let line = listed
        .lines()
        .find(|l| l.starts_with(id))
        .unwrap_or_else(|| panic!("{id} not in {listed}"));
    assert!(line.contains("unused"), "{listed}");
    assert!(line.contains(&expiration.to_string()), "{listed}");
    assert!(!listed.contains(secret_half), "{listed}");

    // delete: the Secret is gone, and a second delete says there is no such token.
    let deleted = stdout_of(&nautictl(&kubeconfig, &["join-token", "delete", id]));
    assert!(deleted.contains(id));
    assert!(
        secrets
            .get_opt(&format!("bootstrap-token-{id}"))
            .await
            .unwrap()
            .is_none()
    );
    assert_fails_naming(
        &nautictl(&kubeconfig, &["join-token", "delete", id]),
        &format!("no token {id}"),
    );
    let listed = stdout_of(&nautictl(&kubeconfig, &["join-token", "list"]));
    assert!(!listed.contains(id), "{listed}");

    // show: two Peers with status through the status subresource, and one service two members
    // export (their ServiceImports in their namespaces on the hub).
    create_namespace(&client, DEFAULT_PEER_NAMESPACE).await;
    let peers: Api<Peer> = Api::namespaced(client.clone(), DEFAULT_PEER_NAMESPACE);
    let hub = mk_hub_peer("hub", ["10.112.0.0/16".parse().unwrap()], "198.18.0.10");
    let east = mk_peer("east", ["10.113.0.0/16".parse().unwrap()]);
    for peer in [&hub, &east] {
        peers.create(&PostParams::default(), peer).await.unwrap();
    }
    // Whole seconds: the API server stores RFC 3339 times to the second.
    let handshake = jiff::Timestamp::from_second(jiff::Timestamp::now().as_second() - 30).unwrap();
    let status = PeerStatus {
        conditions: vec![
            ready_condition(condition::VALID, "True", condition::REASON_VALID),
            ready_condition(condition::READY, "False", condition::REASON_NOT_ANSWERING),
        ],
        last_handshake: Some(Time(handshake)),
        latency_ms: Some(4),
        ..PeerStatus::default()
    };
    peers
        .patch_status(
            "east",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({ "status": status })),
        )
        .await
        .unwrap();
    let key = ServiceKey::new("shop", "cart");
    for cluster in ["east", "hub"] {
        let namespace = member_namespace(cluster);
        create_namespace(&client, &namespace).await;
        let mut import: ServiceImport = serde_json::from_value(serde_json::json!({
            "metadata": {},
            "spec": {"type": "ClusterSetIP", "ports": [{"port": 80, "protocol": "TCP"}]}
        }))
        .unwrap();
        import.metadata = ObjectMeta {
            name: Some(hub_import_name(&key)),
            namespace: Some(namespace.clone()),
            labels: Some(hub_labels(&key, cluster)),
            ..ObjectMeta::default()
        };
        Api::<ServiceImport>::namespaced(client.clone(), &namespace)
            .create(&PostParams::default(), &import)
            .await
            .unwrap();
    }

    let shown: serde_json::Value =
        serde_json::from_str(&stdout_of(&nautictl(&kubeconfig, &["show", "-o", "json"]))).unwrap();
    let clusters = shown["clusters"].as_array().unwrap();
    assert_eq!(clusters.len(), 2, "{shown}");
    let east_row = &clusters[0];
    assert_eq!(east_row["clusterId"], "east");
    assert_eq!(east_row["slices"], serde_json::json!(["10.113.0.0/16"]));
    assert_eq!(east_row["isHub"], false);
    assert_eq!(east_row["valid"]["status"], "True");
    assert_eq!(east_row["ready"]["status"], "False");
    assert_eq!(east_row["ready"]["reason"], condition::REASON_NOT_ANSWERING);
    assert_eq!(east_row["latencyMs"], 4);
    assert_eq!(
        east_row["lastHandshake"].as_str().unwrap(),
        handshake.to_string()
    );
    let hub_row = &clusters[1];
    assert_eq!(hub_row["clusterId"], "hub");
    assert_eq!(hub_row["isHub"], true);
    assert_eq!(hub_row["endpoint"], "198.18.0.10:51820");
    assert!(hub_row["ready"].is_null(), "{shown}");
    assert_eq!(
        shown["services"],
        serde_json::json!([{"namespace": "shop", "name": "cart", "clusters": ["east", "hub"]}])
    );
    let table = stdout_of(&nautictl(&kubeconfig, &["show"]));
    assert!(table.contains("False (NotAnswering)"), "{table}");
    assert!(table.contains("shop/cart"), "{table}");

    // Errors: a kubeconfig that is not one, a context it lacks, an API server that is down.
    let bad = dir.path().join("bad.kubeconfig");
    std::fs::write(&bad, "clusters: [unclosed").unwrap();
    assert_fails_naming(&nautictl(&bad, &["show"]), "bad kubeconfig");
    assert_fails_naming(
        &nautictl(&kubeconfig, &["--context", "nowhere", "show"]),
        "unknown context \"nowhere\"",
    );
    let saved = dir.path().join("saved.kubeconfig");
    std::fs::copy(&kubeconfig, &saved).unwrap();
    let url = api.url();
    drop(api);
    let down = nautictl(&saved, &["show"]);
    assert_fails_naming(&down, &url);
    assert_fails_naming(&down, "list the Peers");
}
