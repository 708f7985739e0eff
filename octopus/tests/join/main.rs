//! Joining through a real hub: kube-apiserver with bootstrap-token authentication and
//! kube-controller-manager's `csrsigning` and `tokencleaner`, octopus's approval loop running
//! under `deploy/rbac/octopus-hub.yaml` only, and a member with its own kube-apiserver.
//! Every denial is the real API server's answer (401/403).
//!
//! One fixture (hub, its controller-manager, a member) serves every step: the steps use
//! distinct cluster IDs and tokens, so they do not disturb each other.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::time::Duration;

use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, PostParams};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, Peer};
use nauti_api::testutil::mk_peer;
use nauti_octopus::hub::{approval, grants, tokens};
use nauti_octopus::join::credential::bootstrap_client;
use nauti_octopus::join::csr::{CsrError, request_certificate};
use nauti_octopus::join::{BootstrapToken, Credential, member_namespace};
use nauti_testbed::{Daemon, KubeApi, TestDir, require_root};

#[path = "../support/mod.rs"]
mod support;
use support::{HUB_SA, SA_GROUPS, start_hub_api};

const LIFETIME: Duration = Duration::from_secs(3600);
const WAIT: Duration = Duration::from_secs(60);

struct Hub {
    api: KubeApi,
    _kcm: Daemon,
    octopus: kube::Client,
}

async fn start_hub(dir: &TestDir) -> Hub {
    let (api, kcm) = start_hub_api(dir).await;
    let octopus = api.client_as(HUB_SA, &SA_GROUPS).await.unwrap();
    Hub {
        api,
        _kcm: kcm,
        octopus,
    }
}

fn status_of<T: std::fmt::Debug>(result: Result<T, kube::Error>) -> u16 {
    match result {
        Ok(_) => 200,
        Err(kube::Error::Api(s)) => s.code,
        Err(e) => panic!("not an API answer: {e}"),
    }
}

async fn join(hub: &Hub, cluster_id: &str) -> Credential {
    let token = tokens::issue_token(hub.octopus.clone(), tokens::DEFAULT_TOKEN_TTL)
        .await
        .unwrap();
    let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &token)
        .await
        .unwrap();
    let (key_pem, cert_pem) = request_certificate(boot, cluster_id, LIFETIME, WAIT)
        .await
        .unwrap();
    Credential {
        server: hub.api.url(),
        ca_pem: hub.api.ca_pem().to_owned(),
        cert_pem,
        key_pem,
    }
}

fn slice(name: &str, namespace: &str) -> EndpointSlice {
    EndpointSlice {
        metadata: ObjectMeta {
            name: Some(name.to_owned()),
            namespace: Some(namespace.to_owned()),
            ..Default::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: None,
        ports: None,
    }
}

#[tokio::test]
async fn tokens_join_least_privilege_renewal_and_leave() {
    require_root!();
    let dir = TestDir::new("octopus-join").unwrap();
    let hub = start_hub(&dir).await;
    let member_cluster = KubeApi::start(&dir).await.unwrap();
    let approver = tokio::spawn(approval::run(hub.octopus.clone()));
    let admin = hub.api.client().await.unwrap();

    bootstrap_token_can_only_join(&hub).await;
    expired_token_is_refused(&hub, &admin).await;
    member_writes_only_its_own(&hub, &member_cluster).await;
    renewal_gives_a_new_working_certificate(&hub).await;
    taken_cluster_id_is_denied_and_leave_frees_it(&hub).await;

    approver.abort();
}

/// A fresh token authenticates but may do nothing except create (and read) a CSR.
async fn bootstrap_token_can_only_join(hub: &Hub) {
    let token = tokens::issue_token(hub.octopus.clone(), tokens::DEFAULT_TOKEN_TTL)
        .await
        .unwrap();
    let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &token)
        .await
        .unwrap();
    let secrets: Api<Secret> = Api::namespaced(boot.clone(), "kube-system");
    assert_eq!(status_of(secrets.list(&ListParams::default()).await), 403);
    let peers: Api<Peer> = Api::namespaced(boot.clone(), DEFAULT_PEER_NAMESPACE);
    assert_eq!(status_of(peers.list(&ListParams::default()).await), 403);
    let peer = mk_peer("intruder", ["10.120.0.0/16".parse().unwrap()]);
    assert_eq!(
        status_of(peers.create(&PostParams::default(), &peer).await),
        403
    );
    let maps: Api<ConfigMap> = Api::namespaced(boot.clone(), "default");
    assert_eq!(status_of(maps.list(&ListParams::default()).await), 403);
    // The same token joins.
    let (_, cert) = request_certificate(boot, "boot-only", LIFETIME, WAIT)
        .await
        .unwrap();
    assert!(cert.contains("BEGIN CERTIFICATE"), "{cert}");
}

/// A token past its `expiration` is refused by the authenticator itself.
async fn expired_token_is_refused(hub: &Hub, admin: &kube::Client) {
    let token = BootstrapToken::generate().unwrap();
    let past = jiff::Timestamp::now() - jiff::SignedDuration::from_secs(60);
    let secrets: Api<Secret> = Api::namespaced(admin.clone(), "kube-system");
    secrets
        .create(&PostParams::default(), &token.to_secret(past, "expired"))
        .await
        .unwrap();
    let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &token)
        .await
        .unwrap();
    let err = request_certificate(boot, "late", LIFETIME, WAIT).await;
    match err {
        Err(CsrError::Api(kube::Error::Api(s))) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("expected 401, got {other:?}"),
    }
}

/// Two members: each writes its own Peer and exports, and gets 403 on the other's.
async fn member_writes_only_its_own(hub: &Hub, member_cluster: &KubeApi) {
    let a = join(hub, "cluster-a").await;
    let b = join(hub, "cluster-b").await;

    // The credential lives in a Secret in the member cluster and works once read back.
    member_cluster
        .create_namespace("nauti-system")
        .await
        .unwrap();
    let local: Api<Secret> =
        Api::namespaced(member_cluster.client().await.unwrap(), "nauti-system");
    local
        .create(
            &PostParams::default(),
            &a.to_secret("nauti-system", "octopus-credential"),
        )
        .await
        .unwrap();
    let stored = Credential::from_secret(&local.get("octopus-credential").await.unwrap()).unwrap();
    assert_eq!(stored, a);

    let a = stored.client().await.unwrap();
    let b = b.client().await.unwrap();
    let a_peers: Api<Peer> = Api::namespaced(a.clone(), DEFAULT_PEER_NAMESPACE);
    let b_peers: Api<Peer> = Api::namespaced(b.clone(), DEFAULT_PEER_NAMESPACE);
    let pp = PostParams::default();

    let peer_a = mk_peer("cluster-a", ["10.113.0.0/16".parse().unwrap()]);
    let peer_b = mk_peer("cluster-b", ["10.114.0.0/16".parse().unwrap()]);
    assert_eq!(status_of(a_peers.create(&pp, &peer_a).await), 200);
    assert_eq!(
        status_of(a_peers.create(&pp, &peer_b).await),
        403,
        "A creates B's Peer"
    );
    assert_eq!(status_of(b_peers.create(&pp, &peer_b).await), 200);

    // Reading every Peer is allowed; writing another's is not.
    let listed = a_peers.list(&ListParams::default()).await.unwrap();
    assert_eq!(listed.items.len(), 2);
    let mut theirs = a_peers.get("cluster-b").await.unwrap();
    theirs.spec.port = 1;
    assert_eq!(
        status_of(a_peers.replace("cluster-b", &pp, &theirs).await),
        403
    );
    assert_eq!(
        status_of(a_peers.delete("cluster-b", &DeleteParams::default()).await),
        403
    );
    let mut mine = a_peers.get("cluster-a").await.unwrap();
    mine.spec.port = 51821;
    assert_eq!(
        status_of(a_peers.replace("cluster-a", &pp, &mine).await),
        200
    );

    // Exports: own namespace yes, the other member's no; reading the other's is allowed.
    let a_own: Api<EndpointSlice> = Api::namespaced(a.clone(), &member_namespace("cluster-a"));
    let a_in_b: Api<EndpointSlice> = Api::namespaced(a.clone(), &member_namespace("cluster-b"));
    let ns_a = member_namespace("cluster-a");
    let ns_b = member_namespace("cluster-b");
    assert_eq!(
        status_of(a_own.create(&pp, &slice("web", &ns_a)).await),
        200
    );
    assert_eq!(
        status_of(a_in_b.create(&pp, &slice("web", &ns_b)).await),
        403
    );
    assert_eq!(status_of(a_in_b.list(&ListParams::default()).await), 200);
    // No Secrets, anywhere.
    let a_secrets: Api<Secret> = Api::namespaced(a, "kube-system");
    assert_eq!(status_of(a_secrets.list(&ListParams::default()).await), 403);
}

/// The member asks again under its own identity and gets a different, working certificate.
async fn renewal_gives_a_new_working_certificate(hub: &Hub) {
    let first = join(hub, "cluster-r").await;
    let client = first.client().await.unwrap();
    let (key_pem, cert_pem) = request_certificate(client, "cluster-r", LIFETIME, WAIT)
        .await
        .unwrap();
    assert_ne!(cert_pem, first.cert_pem);
    assert_ne!(key_pem, first.key_pem);
    let renewed = Credential {
        cert_pem,
        key_pem,
        ..first
    };
    let v = renewed.validity().unwrap();
    // The signer honours expirationSeconds, backdating not_before by 5 minutes for clock skew.
    assert!(v.not_after - v.not_before <= 3600 + 300 + 60, "{v:?}");
    let peers: Api<Peer> = Api::namespaced(renewed.client().await.unwrap(), DEFAULT_PEER_NAMESPACE);
    let peer = mk_peer("cluster-r", ["10.115.0.0/16".parse().unwrap()]);
    assert_eq!(
        status_of(peers.create(&PostParams::default(), &peer).await),
        200
    );

    // Another member cannot renew in cluster-r's name.
    let other = join(hub, "cluster-s").await.client().await.unwrap();
    match request_certificate(other, "cluster-r", LIFETIME, WAIT).await {
        Err(CsrError::Denied { reason, .. }) => assert!(reason.contains("neither"), "{reason}"),
        other => panic!("expected a denial, got {other:?}"),
    }
}

/// A second join under a taken ID is denied; once the member's grants are revoked (leave) its
/// credential can do nothing and the ID can join again.
async fn taken_cluster_id_is_denied_and_leave_frees_it(hub: &Hub) {
    let first = join(hub, "cluster-l").await;
    let token = tokens::issue_token(hub.octopus.clone(), tokens::DEFAULT_TOKEN_TTL)
        .await
        .unwrap();
    let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &token)
        .await
        .unwrap();
    match request_certificate(boot.clone(), "cluster-l", LIFETIME, WAIT).await {
        Err(CsrError::Denied { reason, .. }) => assert!(reason.contains("held"), "{reason}"),
        other => panic!("expected a denial, got {other:?}"),
    }

    let client = first.client().await.unwrap();
    let peers: Api<Peer> = Api::namespaced(client.clone(), DEFAULT_PEER_NAMESPACE);
    let peer = mk_peer("cluster-l", ["10.116.0.0/16".parse().unwrap()]);
    assert_eq!(
        status_of(peers.create(&PostParams::default(), &peer).await),
        200
    );
    assert_eq!(
        status_of(peers.delete("cluster-l", &DeleteParams::default()).await),
        200
    );
    grants::revoke(hub.octopus.clone(), "cluster-l")
        .await
        .unwrap();
    let own: Api<EndpointSlice> = Api::namespaced(client, &member_namespace("cluster-l"));
    assert_eq!(
        status_of(
            own.create(
                &PostParams::default(),
                &slice("x", "nauti-member-cluster-l")
            )
            .await
        ),
        403
    );

    // The namespace takes a moment to go; then the same ID joins again.
    let mut rejoined = None;
    for _ in 0..60 {
        let token = tokens::issue_token(hub.octopus.clone(), tokens::DEFAULT_TOKEN_TTL)
            .await
            .unwrap();
        let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &token)
            .await
            .unwrap();
        match request_certificate(boot, "cluster-l", LIFETIME, WAIT).await {
            Ok(pair) => {
                rejoined = Some(pair);
                break;
            }
            Err(CsrError::Denied { .. }) => tokio::time::sleep(Duration::from_secs(1)).await,
            Err(e) => panic!("{e}"),
        }
    }
    assert!(
        rejoined.is_some(),
        "cluster-l could not join again after leaving"
    );
}
