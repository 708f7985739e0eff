//! The built `nautictl rotate-keys` against a real kube-apiserver holding a gateway's key Secret
//! as octopus creates it: the key is replaced by a fresh one (old and new public keys printed),
//! `--wait` returns once the Peer on the hub carries the new key and names the Peer that does
//! not, and a missing Secret, a bad kubeconfig or an unknown context end in a message naming the
//! cause and exit code 1.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

#[path = "../support/mod.rs"]
mod support;

use std::time::Duration;
use support::{assert_fails_naming, nautictl, stdout_of};

use k8s_openapi::api::core::v1::{Namespace, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, Patch, PatchParams, PostParams};
use nauti_api::Peer;
use nauti_api::peer::DEFAULT_PEER_NAMESPACE;
use nauti_api::testutil::mk_hub_peer;
use nauti_octopus::controller::local::{
    WIREGUARD_KEY_SECRET, WireguardKey, ensure_wireguard_key, private_key_of,
};
use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::{KubeApi, TestDir, require_root};

async fn stored_key(secrets: &Api<Secret>) -> WireguardKey {
    let secret = secrets.get(WIREGUARD_KEY_SECRET).await.unwrap();
    WireguardKey::from_private(private_key_of(&secret).unwrap())
}

#[tokio::test]
async fn rotate_keys_against_a_real_api_server() {
    require_root!();
    let dir = TestDir::new("nautictl-rotate").unwrap();
    let api = KubeApi::start(&dir).await.unwrap();
    api.install_crds(&repo_crds()).await.unwrap();
    let client = api.client().await.unwrap();
    let kubeconfig = api.kubeconfig().to_owned();
    let namespace = DEFAULT_PEER_NAMESPACE;
    Api::<Namespace>::all(client.clone())
        .create(
            &PostParams::default(),
            &Namespace {
                metadata: ObjectMeta {
                    name: Some(namespace.to_owned()),
                    ..ObjectMeta::default()
                },
                ..Namespace::default()
            },
        )
        .await
        .unwrap();

    // No key Secret (octopus never ran here): nothing is created, the cause is named.
    assert_fails_naming(
        &nautictl(&kubeconfig, &["rotate-keys"]),
        &format!("no Secret {namespace}/{WIREGUARD_KEY_SECRET}"),
    );
    let secrets: Api<Secret> = Api::namespaced(client.clone(), namespace);
    assert!(
        secrets
            .get_opt(WIREGUARD_KEY_SECRET)
            .await
            .unwrap()
            .is_none()
    );

    // The Secret as octopus creates it at its first start; this cluster is the hub (no
    // member credential), its Peer carries that key.
    let first = ensure_wireguard_key(client.clone(), namespace, WIREGUARD_KEY_SECRET, None)
        .await
        .unwrap();
    let peers: Api<Peer> = Api::namespaced(client.clone(), namespace);
    let mut hub = mk_hub_peer("hub", ["10.112.0.0/16".parse().unwrap()], "198.18.0.10");
    hub.spec.public_key = first.public.to_string();
    peers.create(&PostParams::default(), &hub).await.unwrap();

    let out = stdout_of(&nautictl(&kubeconfig, &["rotate-keys"]));
    let second = stored_key(&secrets).await;
    assert_ne!(second, first, "the Secret still holds the old key");
    assert!(
        out.contains(&format!("old public key: {}", first.public)),
        "{out}"
    );
    assert!(
        out.contains(&format!("new public key: {}", second.public)),
        "{out}"
    );
    // What octopus reads at its next start is the new key.
    let reread = ensure_wireguard_key(client.clone(), namespace, WIREGUARD_KEY_SECRET, None)
        .await
        .unwrap();
    assert_eq!(reread, second);

    // --wait with no octopus to publish: the Peer that does not follow is named.
    assert_fails_naming(
        &nautictl(
            &kubeconfig,
            &[
                "rotate-keys",
                "--cluster",
                "hub",
                "--wait",
                "--timeout",
                "2s",
            ],
        ),
        &format!("the hub's Peer hub still carries {}", first.public),
    );
    // Without --cluster, the Peer is the one with the old key; this one has neither.
    assert_fails_naming(
        &nautictl(&kubeconfig, &["rotate-keys", "--wait", "--timeout", "2s"]),
        "name the cluster with --cluster",
    );

    // --wait returns once the Peer carries the new key (published here as octopus would).
    let before = stored_key(&secrets).await;
    let path = kubeconfig.clone();
    let waiting = tokio::task::spawn_blocking(move || {
        nautictl(
            &path,
            &[
                "rotate-keys",
                "--cluster",
                "hub",
                "--wait",
                "--timeout",
                "60s",
            ],
        )
    });
    let mut rotated = before.clone();
    for _ in 0..100 {
        rotated = stored_key(&secrets).await;
        if rotated != before {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_ne!(rotated, before, "nautictl did not rotate the key");
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        !waiting.is_finished(),
        "--wait returned before the Peer changed"
    );
    peers
        .patch(
            "hub",
            &PatchParams::default(),
            &Patch::Merge(serde_json::json!({"spec": {"publicKey": rotated.public.to_string()}})),
        )
        .await
        .unwrap();
    let out = stdout_of(&waiting.await.unwrap());
    assert!(
        out.contains("the hub's Peer hub carries the new key"),
        "{out}"
    );
    assert!(
        out.contains(&format!("new public key: {}", rotated.public)),
        "{out}"
    );

    // A bad kubeconfig and an unknown context: named, exit 1, nothing rotated.
    let garbage = dir.path().join("garbage.kubeconfig");
    std::fs::write(&garbage, "this: [is not a kubeconfig").unwrap();
    assert_fails_naming(&nautictl(&garbage, &["rotate-keys"]), "bad kubeconfig");
    assert_fails_naming(
        &nautictl(&kubeconfig, &["--context", "nowhere", "rotate-keys"]),
        "unknown context \"nowhere\"",
    );
    assert_eq!(stored_key(&secrets).await, rotated);
}
