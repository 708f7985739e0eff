//! The control plane end to end on real API servers: a hub (kube-apiserver with bootstrap-token
//! authentication, kube-controller-manager's `csrsigning`, `tokencleaner` and `namespace`) and
//! two member clusters (a kube-apiserver each). The `octopus` binary runs as `octopus hub`
//! under `deploy/rbac/octopus-hub.yaml` and as `octopus member` under
//! `deploy/rbac/octopus-member.yaml` in each member, with only those rights. Tokens come from
//! `octopus hub issue-token`.
//!
//! One test, in steps that build on each other: join and slices with two hub replicas and two
//! replicas of member A (only each Lease's holder acts; killed, the standby takes over, A's
//! with the same key and credential), an overlapping request, a restart that keeps key and
//! credential, leaving and joining again.

#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    reason = "test code: a failure here is a test failure"
)]

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use ipnet::IpNet;
use k8s_openapi::api::apps::v1::Deployment;
use k8s_openapi::api::certificates::v1::CertificateSigningRequest;
use k8s_openapi::api::coordination::v1::Lease;
use k8s_openapi::api::core::v1::{ConfigMap, Namespace, Pod, Secret};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::api::rbac::v1::Role;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, ListParams, Patch, PatchParams, PostParams};
use nauti_api::peer::{DEFAULT_PEER_NAMESPACE, Peer, condition};
use nauti_octopus::controller::local::{
    CLUSTER_CONFIGMAP, CLUSTER_SUBNET_KEY, CREDENTIAL_SECRET, PRIVATE_KEY_FIELD,
    WIREGUARD_KEY_SECRET,
};
use nauti_octopus::controller::status::probe_target;
use nauti_octopus::hub::assign::{NO_SLICE, assigned_slice};
use nauti_octopus::join::credential::bootstrap_client;
use nauti_octopus::join::csr::{CsrError, request_certificate};
use nauti_octopus::join::{BootstrapToken, Credential, member_namespace};
use nauti_testbed::forward::Forward;
use nauti_testbed::names::unique;
use nauti_testbed::process::wait_until;
use nauti_testbed::{Daemon, KubeApi, Netns, TestDir, require_root};

#[path = "../support/mod.rs"]
mod support;
use support::{
    Hub, MemberApi, SA_GROUPS, WAIT, issued_token, octopus, octopus_once, poll, start_hub,
    start_member_api, write_token,
};

const HUB_ID: &str = "hub";
/// The members' namespace (deploy/rbac/octopus-member.yaml).
const MEMBER_NAMESPACE: &str = "nauti-system";
/// The uninstall hook's `octopus member leave` (deploy/rbac/octopus-member.yaml).
const LEAVE_SA: &str = "system:serviceaccount:nauti-system:octopus-member-leave";

struct Member {
    id: &'static str,
    /// Keeps the member's API server running.
    _api: KubeApi,
    kubeconfig: PathBuf,
    admin: kube::Client,
}

async fn start_member(dir: &TestDir, id: &'static str) -> Member {
    let MemberApi {
        api,
        kubeconfig,
        admin,
    } = start_member_api(dir, false).await;
    Member {
        id,
        _api: api,
        kubeconfig,
        admin,
    }
}

/// A token from `octopus hub issue-token`, written to a file; returns (file, token id).
fn issue_token(dir: &TestDir, hub: &Hub, name: &str) -> (PathBuf, String) {
    let issued = issued_token(hub);
    let token = issued["token"].as_str().unwrap();
    assert_eq!(issued["hubURL"].as_str().unwrap(), hub.api.url());
    let ca = issued["hubCA"].as_str().unwrap();
    assert!(ca.contains("BEGIN CERTIFICATE"), "{ca}");
    let id = token.split('.').next().unwrap().to_owned();
    (write_token(dir, hub, name, &issued), id)
}

fn run_member(
    dir: &TestDir,
    hub: &Hub,
    member: &Member,
    token_file: &Path,
    extra: &[&str],
) -> Daemon {
    support::run_member(
        dir,
        hub,
        &format!("octopus-{}", member.id),
        member.id,
        &member.kubeconfig,
        token_file,
        extra,
    )
}

/// Polls `check` every 250 ms until it returns `Some`, at most [`WAIT`].
async fn eventually<T, F, Fut>(what: &str, check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    poll(what, WAIT, Duration::from_millis(250), check).await
}

/// GET `path` from the metrics endpoint of the octopus whose log is `log` (the address of its
/// latest start, as logged).
fn http_get(log: &Path, path: &str) -> String {
    use std::io::{Read as _, Write as _};
    let text = std::fs::read_to_string(log).unwrap();
    let addr = text
        .lines()
        .filter(|l| l.contains("serving /metrics"))
        .filter_map(|l| l.split("addr=").nth(1))
        .next_back()
        .unwrap()
        .trim()
        .to_owned();
    let mut stream = std::net::TcpStream::connect(&addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(5)))
        .unwrap();
    write!(stream, "GET {path} HTTP/1.0\r\nHost: {addr}\r\n\r\n").unwrap();
    let mut answer = String::new();
    stream.read_to_string(&mut answer).unwrap();
    answer
}

/// Lease timing of the hub replicas: short, so the takeover fits the test.
const HUB_LEASE: Duration = Duration::from_secs(4);
const HUB_RENEW: Duration = Duration::from_secs(1);

/// Hub replica `n` (identity `hub-<n>`), on the default Lease.
fn run_hub(dir: &TestDir, hub: &Hub, n: u8) -> Daemon {
    let identity = format!("hub-{n}");
    let lease = format!("{}s", HUB_LEASE.as_secs());
    let renew = format!("{}s", HUB_RENEW.as_secs());
    octopus(
        dir,
        &format!("octopus-{identity}"),
        &[
            "hub",
            "--kubeconfig",
            hub.kubeconfig.to_str().unwrap(),
            "--cluster-id",
            HUB_ID,
            "--endpoint",
            "198.18.0.1",
            "--lease-identity",
            &identity,
            "--lease-duration",
            &lease,
            "--lease-renew-interval",
            &renew,
        ],
    )
}

/// Member replica `n` (identity `<cluster-id>-<n>`, log `octopus-<identity>`), on the
/// default Lease of the member's cluster, with the hub's short timing.
fn run_member_replica(
    dir: &TestDir,
    hub: &Hub,
    member: &Member,
    token_file: &Path,
    n: u8,
) -> Daemon {
    let identity = format!("{}-{n}", member.id);
    let lease = format!("{}s", HUB_LEASE.as_secs());
    let renew = format!("{}s", HUB_RENEW.as_secs());
    support::run_member(
        dir,
        hub,
        &format!("octopus-{identity}"),
        member.id,
        &member.kubeconfig,
        token_file,
        &[
            "--lease-identity",
            &identity,
            "--lease-duration",
            &lease,
            "--lease-renew-interval",
            &renew,
        ],
    )
}

/// Who holds the member's Lease (in its own cluster) now.
async fn member_lease_holder(member: &Member) -> Option<String> {
    Api::<Lease>::namespaced(member.admin.clone(), "nauti-system")
        .get_opt("octopus-member")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

/// Who holds the hub's Lease now.
async fn lease_holder(hub: &Hub) -> Option<String> {
    Api::<Lease>::namespaced(hub.admin.clone(), "nauti-system")
        .get_opt("octopus-hub")
        .await
        .unwrap()?
        .spec?
        .holder_identity
}

async fn peer(hub: &Hub, name: &str) -> Option<Peer> {
    Api::<Peer>::namespaced(hub.admin.clone(), DEFAULT_PEER_NAMESPACE)
        .get_opt(name)
        .await
        .unwrap()
}

async fn slice_of(hub: &Hub, name: &str) -> IpNet {
    eventually(&format!("a slice for {name}"), || async move {
        peer(hub, name).await.as_ref().and_then(assigned_slice)
    })
    .await
}

async fn configmap_slice(member: &Member) -> Option<String> {
    Api::<ConfigMap>::namespaced(member.admin.clone(), "nauti-system")
        .get_opt(CLUSTER_CONFIGMAP)
        .await
        .unwrap()
        .and_then(|c| c.data)
        .and_then(|d| d.get(CLUSTER_SUBNET_KEY).cloned())
}

async fn secret(member: &Member, name: &str) -> Option<Secret> {
    Api::<Secret>::namespaced(member.admin.clone(), "nauti-system")
        .get_opt(name)
        .await
        .unwrap()
}

/// The public key derived from the private key in the member's key Secret, by the peer of
/// record: boringtun's x25519.
async fn public_key_in(member: &Member) -> String {
    let secret = secret(member, WIREGUARD_KEY_SECRET).await.unwrap();
    let text = String::from_utf8(secret.data.unwrap()[PRIVATE_KEY_FIELD].0.clone()).unwrap();
    let private = nauti_api::core::wgkey::parse_wireguard_key(text.trim()).unwrap();
    let public =
        boringtun::x25519::PublicKey::from(&boringtun::x25519::StaticSecret::from(private));
    nauti_api::core::wgkey::encode_wireguard_key(public.as_bytes())
}

async fn member_csrs(hub: &Hub, id: &str) -> usize {
    Api::<CertificateSigningRequest>::all(hub.admin.clone())
        .list(&ListParams::default())
        .await
        .unwrap()
        .items
        .iter()
        .filter(|c| {
            c.metadata
                .name
                .as_deref()
                .is_some_and(|n| n.starts_with(&format!("nauti-member-{id}-")))
        })
        .count()
}

fn valid_condition(peer: &Peer) -> (String, String, String) {
    let c = peer
        .status
        .as_ref()
        .and_then(|s| s.condition(condition::VALID))
        .unwrap();
    (c.status.clone(), c.reason.clone(), c.message.clone())
}

#[tokio::test]
async fn hub_and_members_join_get_slices_restart_and_leave() {
    require_root!();
    let dir = TestDir::new("octopus-control").unwrap();
    let hub_bed = start_hub(&dir).await;
    let hub = &hub_bed;
    // Two hub replicas on one Lease: only the holder acts.
    let mut hub_replicas = [run_hub(&dir, hub, 1), run_hub(&dir, hub, 2)];
    let leader = eventually("a hub leader", || async move { lease_holder(hub).await }).await;
    let (leading, standby) = match leader.as_str() {
        "hub-1" => (0, 1),
        "hub-2" => (1, 0),
        other => panic!("unexpected lease holder {other:?}"),
    };
    let a = start_member(&dir, "cluster-a").await;
    let b = start_member(&dir, "cluster-b").await;

    // 1. Both members join with their own tokens and get distinct slices; A runs as two
    // replicas on its cluster's Lease.
    let (token_a, token_a_id) = issue_token(&dir, hub, "a");
    let (token_b, token_b_id) = issue_token(&dir, hub, "b");
    let mut a_replicas = [
        run_member_replica(&dir, hub, &a, &token_a, 1),
        run_member_replica(&dir, hub, &a, &token_a, 2),
    ];
    let mut octopus_b = run_member(&dir, hub, &b, &token_b, &[]);
    let started = Instant::now();
    let slice_a = slice_of(hub, a.id).await;
    let slice_b = slice_of(hub, b.id).await;
    eprintln!(
        "both members joined and hold slices after {:?}",
        started.elapsed()
    );
    let hub_slice = slice_of(hub, HUB_ID).await;
    let global: IpNet = "10.112.0.0/12".parse().unwrap();
    let clusterset: IpNet = "10.127.0.0/16".parse().unwrap();
    for slice in [slice_a, slice_b, hub_slice] {
        assert_eq!(slice.prefix_len(), 16, "{slice}");
        assert!(global.contains(&slice), "{slice} outside {global}");
        assert_ne!(slice, clusterset, "{slice} is the clusterset block");
    }
    assert_ne!(slice_a, slice_b);
    assert_ne!(slice_a, hub_slice);
    assert_ne!(slice_b, hub_slice);
    for (member, slice) in [(&a, slice_a), (&b, slice_b)] {
        let (status, reason, _) = valid_condition(&peer(hub, member.id).await.unwrap());
        assert_eq!((status.as_str(), reason.as_str()), ("True", "Valid"));
        let in_configmap = eventually("the slice in the member's ConfigMap", || async move {
            configmap_slice(member).await
        })
        .await;
        assert_eq!(in_configmap, slice.to_string(), "{}", member.id);
        assert!(secret(member, CREDENTIAL_SECRET).await.is_some());
        assert_eq!(
            peer(hub, member.id).await.unwrap().spec.public_key,
            public_key_in(member).await,
            "{}: the Peer carries the key kept in the member's Secret",
            member.id
        );
    }
    let a_leader = eventually("a leader of A", || async { member_lease_holder(&a).await }).await;
    let (a_leading, a_standby) = match a_leader.as_str() {
        "cluster-a-1" => (0, 1),
        "cluster-a-2" => (1, 0),
        other => panic!("unexpected lease holder {other:?}"),
    };
    // Each member's plan: one WireGuard peer (the hub, both members being behind NAT) carrying
    // the hub's slice and the other member's.
    for log_name in [format!("octopus-{a_leader}"), format!("octopus-{}", b.id)] {
        let log = dir.log(&log_name);
        let log = &log;
        eventually("the member's plan in its metrics", || async move {
            let metrics = http_get(log, "/metrics");
            // The plan is in the metrics during the pass; readiness follows when it ends.
            (metrics.contains("nauti_octopus_slice_assigned 1")
                && metrics.contains("nauti_octopus_wanted_peers 1")
                && metrics.contains("nauti_octopus_wanted_routes 2")
                && http_get(log, "/readyz").starts_with("HTTP/1.0 200"))
            .then_some(())
        })
        .await;
        let ready = http_get(log, "/readyz");
        assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    }

    // The hub cluster's own slice went to its own ConfigMap.
    let hub_map = &Api::<ConfigMap>::namespaced(hub.admin.clone(), "nauti-system");
    let hub_cm = eventually("the hub's ConfigMap", || async move {
        hub_map.get_opt(CLUSTER_CONFIGMAP).await.unwrap()
    })
    .await;
    assert_eq!(
        hub_cm.data.unwrap()[CLUSTER_SUBNET_KEY],
        hub_slice.to_string()
    );

    // Each token was used once: the hub deleted it when its member published its Peer, and
    // the API server refuses it from then on.
    for id in [&token_a_id, &token_b_id] {
        eventually("the join token deleted", || async move {
            Api::<Secret>::namespaced(hub.admin.clone(), "kube-system")
                .get_opt(&format!("bootstrap-token-{id}"))
                .await
                .unwrap()
                .is_none()
                .then_some(())
        })
        .await;
    }
    let spent: BootstrapToken = std::fs::read_to_string(&token_a).unwrap().parse().unwrap();
    let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &spent)
        .await
        .unwrap();
    // kube-apiserver keeps a token it accepted in its cache for 10 s: probe with a harmless
    // read until the deletion shows.
    let deleted = Instant::now();
    let probe = &Api::<CertificateSigningRequest>::all(boot.clone());
    eventually("the spent token refused", || async move {
        match probe.get_opt("nauti-probe").await {
            Err(kube::Error::Api(s)) if s.code == 401 => Some(()),
            _ => None,
        }
    })
    .await;
    eprintln!(
        "spent token refused {:?} after its deletion was seen",
        deleted.elapsed()
    );
    match request_certificate(boot, "cluster-z", Duration::from_secs(3600), WAIT).await {
        Err(CsrError::Api(kube::Error::Api(s))) => assert_eq!(s.code, 401, "{s:?}"),
        other => panic!("a spent token must be refused, got {other:?}"),
    }

    // Nobody joins under the hub's own cluster ID.
    let (hub_token, _) = issue_token(&dir, hub, "hub-id");
    let impostor: BootstrapToken = std::fs::read_to_string(&hub_token)
        .unwrap()
        .parse()
        .unwrap();
    let boot = bootstrap_client(&hub.api.url(), hub.api.ca_pem(), &impostor)
        .await
        .unwrap();
    match request_certificate(boot, HUB_ID, Duration::from_secs(3600), WAIT).await {
        Err(CsrError::Denied { reason, .. }) => assert!(reason.contains("hub's own"), "{reason}"),
        other => panic!("a join as the hub must be denied, got {other:?}"),
    }

    // A Peer for a cluster that never joined gets no slice, with the reason; once deleted
    // the hub lets it go.
    let peers_admin = Api::<Peer>::namespaced(hub.admin.clone(), DEFAULT_PEER_NAMESPACE);
    peers_admin
        .create(
            &PostParams::default(),
            &nauti_api::testutil::mk_peer("stranger", [NO_SLICE]),
        )
        .await
        .unwrap();
    let stranger = eventually("the stranger's Peer judged", || async move {
        peer(hub, "stranger")
            .await
            .filter(|p| p.status.as_ref().is_some_and(|s| !s.conditions.is_empty()))
    })
    .await;
    let (status, reason, message) = valid_condition(&stranger);
    assert_eq!(
        (status.as_str(), reason.as_str()),
        ("False", "UnknownCluster")
    );
    assert!(message.contains("stranger"), "{message}");
    assert_eq!(stranger.spec.cluster_cidrs, vec![NO_SLICE]);
    peers_admin
        .delete("stranger", &DeleteParams::default())
        .await
        .unwrap();
    eventually("the stranger's Peer released", || async move {
        peer(hub, "stranger").await.is_none().then_some(())
    })
    .await;

    // The standby made no pass, approved nothing, wrote nothing; the leader did.
    let standby_log = dir.log(&format!("octopus-hub-{}", standby + 1));
    let leader_log = dir.log(&format!("octopus-hub-{}", leading + 1));
    let standby_metrics = http_get(&standby_log, "/metrics");
    assert!(
        standby_metrics.contains("nauti_octopus_leader 0")
            && standby_metrics.contains("nauti_octopus_syncs_total 0"),
        "{standby_metrics}"
    );
    let standby_text = std::fs::read_to_string(&standby_log).unwrap();
    assert!(!standby_text.contains("Peer valid"), "{standby_text}");
    assert!(!standby_text.contains("approved"), "{standby_text}");
    assert!(http_get(&leader_log, "/metrics").contains("nauti_octopus_leader 1"));
    let leader_text = std::fs::read_to_string(&leader_log).unwrap();
    assert!(
        leader_text.contains("member certificate approved") && leader_text.contains("Peer valid"),
        "the leader approved and judged the members"
    );

    // The leader dies without releasing the lease: the standby takes over once it expires.
    hub_replicas[leading].kill();
    let killed = Instant::now();
    let next = format!("hub-{}", standby + 1);
    let next = &next;
    eventually("the standby holds the lease", || async move {
        (lease_holder(hub).await.as_deref() == Some(next.as_str())).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("standby took the lease {takeover:?} after the leader was killed");
    assert!(
        takeover < HUB_LEASE + HUB_RENEW * 2 + Duration::from_secs(1),
        "takeover took {takeover:?} for a {HUB_LEASE:?} lease"
    );
    let standby_log = &standby_log;
    eventually("the new leader's first pass", || async move {
        let metrics = http_get(standby_log, "/metrics");
        (metrics.contains("nauti_octopus_leader 1")
            && !metrics.contains("nauti_octopus_syncs_total 0"))
        .then_some(())
    })
    .await;

    // A's standby replica joined nothing, published nothing, and says who leads; the leader
    // joined once.
    let a_standby_id = format!("{}-{}", a.id, a_standby + 1);
    let a_standby_log = dir.log(&format!("octopus-{a_standby_id}"));
    let a_leader_log = dir.log(&format!("octopus-{a_leader}"));
    let standby_metrics = http_get(&a_standby_log, "/metrics");
    assert!(
        standby_metrics.contains("nauti_octopus_leader 0")
            && standby_metrics.contains("nauti_octopus_syncs_total 0")
            && standby_metrics.contains("nauti_octopus_slice_assigned 0"),
        "{standby_metrics}"
    );
    let a_standby_log = &a_standby_log;
    let a_leader_name = &a_leader;
    // A healthy standby is ready (the gateway Service picks the leader by its pod label) and
    // names the holder in its log.
    eventually("A's standby names the holder", || async move {
        let ready = http_get(a_standby_log, "/readyz");
        let text = std::fs::read_to_string(a_standby_log).unwrap_or_default();
        (ready.starts_with("HTTP/1.0 200") && text.contains(&format!("held by {a_leader_name}")))
            .then_some(())
    })
    .await;
    let standby_text = std::fs::read_to_string(a_standby_log).unwrap();
    for acted in [
        "joined the hub",
        "using the stored credential",
        "member running",
    ] {
        assert!(!standby_text.contains(acted), "{acted}: {standby_text}");
    }
    assert!(http_get(&a_leader_log, "/metrics").contains("nauti_octopus_leader 1"));
    assert!(
        std::fs::read_to_string(&a_leader_log)
            .unwrap()
            .contains("joined the hub")
    );
    assert_eq!(member_csrs(hub, a.id).await, 1, "one join for two replicas");

    // A's leader dies without releasing the lease: the standby takes over with the shared key
    // and credential, so A's Peer stays valid with the same key and nothing joins again.
    let key_a = peer(hub, a.id).await.unwrap().spec.public_key;
    let credential_a_data = secret(&a, CREDENTIAL_SECRET).await.unwrap().data;
    a_replicas[a_leading].kill();
    let killed = Instant::now();
    let a_standby_id = &a_standby_id;
    eventually("A's standby holds the lease", || async {
        (member_lease_holder(&a).await.as_deref() == Some(a_standby_id.as_str())).then_some(())
    })
    .await;
    let takeover = killed.elapsed();
    eprintln!("A's standby took the lease {takeover:?} after its leader was killed");
    assert!(
        takeover < HUB_LEASE + HUB_RENEW * 2 + Duration::from_secs(1),
        "takeover took {takeover:?} for a {HUB_LEASE:?} lease"
    );
    // `syncs_total` counts a pass when it starts and readiness follows when it ends: wait for both.
    eventually("A's new leader's first pass", || async move {
        let metrics = http_get(a_standby_log, "/metrics");
        (metrics.contains("nauti_octopus_leader 1")
            && metrics.contains("nauti_octopus_slice_assigned 1")
            && !metrics.contains("nauti_octopus_syncs_total 0")
            && http_get(a_standby_log, "/readyz").starts_with("HTTP/1.0 200"))
        .then_some(())
    })
    .await;
    eprintln!(
        "A's new leader made its first pass {:?} after the kill",
        killed.elapsed()
    );
    let ready = http_get(a_standby_log, "/readyz");
    assert!(ready.starts_with("HTTP/1.0 200"), "{ready}");
    let after = peer(hub, a.id).await.unwrap();
    assert_eq!(
        after.spec.public_key, key_a,
        "the same key after the takeover"
    );
    let (status, reason, _) = valid_condition(&after);
    assert_eq!((status.as_str(), reason.as_str()), ("True", "Valid"));
    assert_eq!(assigned_slice(&after), Some(slice_a), "A keeps its slice");
    assert_eq!(member_csrs(hub, a.id).await, 1, "no new join");
    assert_eq!(
        secret(&a, CREDENTIAL_SECRET).await.unwrap().data,
        credential_a_data,
        "the credential is reused"
    );
    let new_leader_text = std::fs::read_to_string(a_standby_log).unwrap();
    assert!(
        new_leader_text.contains("using the stored credential")
            && !new_leader_text.contains("joined the hub"),
        "{new_leader_text}"
    );

    // 2. B restarts asking for A's slice; its token is spent. It keeps its key and credential
    // (no second join) and its Peer is refused, naming A, with no slice.
    let key_b = peer(hub, b.id).await.unwrap().spec.public_key;
    let credential_b = secret(&b, CREDENTIAL_SECRET).await.unwrap();
    let csrs_b = member_csrs(hub, b.id).await;
    assert_eq!(csrs_b, 1);
    octopus_b.stop(Duration::from_secs(5));
    let asked = slice_a.to_string();
    octopus_b = run_member(&dir, hub, &b, &token_b, &["--cluster-cidr", &asked]);
    let refused = eventually("B's request refused", || async move {
        let p = peer(hub, b.id).await?;
        let (status, ..) = valid_condition(&p);
        let current = p
            .status
            .as_ref()?
            .condition(condition::VALID)?
            .observed_generation
            == p.metadata.generation;
        (status == "False" && current).then_some(p)
    })
    .await;
    let (_, reason, message) = valid_condition(&refused);
    assert_eq!(reason, "CIDRConflict", "{message}");
    assert!(message.contains("\"cluster-a\""), "{message}");
    assert_eq!(refused.spec.cluster_cidrs, vec![NO_SLICE]);
    assert_eq!(assigned_slice(&refused), None);
    assert_eq!(
        refused.spec.public_key, key_b,
        "the key survived the restart"
    );
    assert_eq!(member_csrs(hub, b.id).await, csrs_b, "no second join");
    assert_eq!(
        secret(&b, CREDENTIAL_SECRET).await.unwrap().data,
        credential_b.data,
        "the credential survived the restart"
    );
    assert_eq!(slice_of(hub, a.id).await, slice_a, "A keeps its slice");

    // Without the request, B gets a slice again.
    octopus_b.stop(Duration::from_secs(5));
    let _octopus_b = run_member(&dir, hub, &b, &token_b, &[]);
    let slice_b2 = eventually("B's new slice", || async move {
        peer(hub, b.id).await.as_ref().and_then(assigned_slice)
    })
    .await;
    assert_ne!(slice_b2, slice_a);
    assert!(global.contains(&slice_b2));

    // 3. A leaves: the member is stopped (uninstalled), then `octopus member leave` as the
    // chart's hook runs it: under its own ServiceAccount, stopping the member's Deployment first
    // (its pods stand in for the member; a controller-manager scales them, no kubelet runs them).
    let key_a = peer(hub, a.id).await.unwrap().spec.public_key;
    let credential_a =
        Credential::from_secret(&secret(&a, CREDENTIAL_SECRET).await.unwrap()).unwrap();
    a_replicas[a_standby].stop(Duration::from_secs(5));
    let _a_kcm = a
        ._api
        .start_controller_manager(&["deployment", "replicaset"])
        .unwrap();
    let deployments = Api::<Deployment>::namespaced(a.admin.clone(), MEMBER_NAMESPACE);
    for (name, replicas) in [("octopus-member", 2), ("other", 1)] {
        deployments
            .create(&PostParams::default(), &stand_in_deployment(name, replicas))
            .await
            .unwrap();
    }
    let member_pods = || pod_names(&a, "app.kubernetes.io/component=octopus-member");
    let other_pods = || pod_names(&a, "app.kubernetes.io/component=other");
    eventually("the member's two stand-in pods", || async {
        (member_pods().await.len() == 2 && other_pods().await.len() == 1).then_some(())
    })
    .await;
    assert_leave_account_rights(&a);
    let leave_kubeconfig = a._api.kubeconfig_for(LEAVE_SA, &SA_GROUPS).unwrap();
    let started = Instant::now();
    let a_id = a.id;
    let leaving = std::thread::spawn(move || {
        octopus_once(&[
            "member",
            "leave",
            "--kubeconfig",
            leave_kubeconfig.to_str().unwrap(),
            "--cluster-id",
            a_id,
            "--stop-deployment",
            "octopus-member",
        ])
    });
    // The stand-ins' finalizer holds them terminating: the Peer stays while they remain.
    let pods = Api::<Pod>::namespaced(a.admin.clone(), MEMBER_NAMESPACE);
    let held = eventually("the member's pods terminating", || async {
        let listed = pods
            .list(&ListParams::default().labels("app.kubernetes.io/component=octopus-member"))
            .await
            .unwrap()
            .items;
        (listed.len() == 2
            && listed
                .iter()
                .all(|pod| pod.metadata.deletion_timestamp.is_some()))
        .then_some(listed)
    })
    .await;
    tokio::time::sleep(Duration::from_secs(1)).await;
    assert!(
        peer(hub, a.id).await.is_some(),
        "the Peer was deleted while the member's pods remained"
    );
    assert!(
        !leaving.is_finished(),
        "the leave did not wait for the pods"
    );
    let release = serde_json::json!({"metadata": {"finalizers": null}});
    for pod in held {
        let name = pod.metadata.name.unwrap();
        pods.patch(&name, &PatchParams::default(), &Patch::Merge(&release))
            .await
            .unwrap();
    }
    leaving.join().unwrap();
    eprintln!(
        "leave took {:?} (the member's pods held terminating for 1 s of it)",
        started.elapsed()
    );
    let scaled = deployments.get("octopus-member").await.unwrap();
    assert_eq!(scaled.spec.replicas, Some(0), "the member is scaled to 0");
    assert_eq!(
        member_pods().await,
        Vec::<String>::new(),
        "the leave returned before the member's pods were gone"
    );
    let other = deployments.get("other").await.unwrap();
    assert_eq!(
        other.spec.replicas,
        Some(1),
        "another Deployment was scaled"
    );
    assert_eq!(
        other_pods().await.len(),
        1,
        "another Deployment lost its pod"
    );
    assert!(peer(hub, a.id).await.is_none(), "A's Peer is gone");
    assert!(
        secret(&a, CREDENTIAL_SECRET).await.is_none(),
        "A's credential is gone"
    );
    let roles = Api::<Role>::namespaced(hub.admin.clone(), DEFAULT_PEER_NAMESPACE);
    assert!(
        roles
            .get_opt(&member_namespace(a.id))
            .await
            .unwrap()
            .is_none(),
        "A's Peer Role is revoked"
    );
    let namespaces = Api::<Namespace>::all(hub.admin.clone());
    let ns_a = namespaces.get_opt(&member_namespace(a.id)).await.unwrap();
    assert!(
        ns_a.is_none_or(|ns| ns.metadata.deletion_timestamp.is_some()),
        "A's namespace on the hub is going"
    );
    // The old certificate authenticates but may write nothing of A's any more.
    let old = credential_a.client().await.unwrap();
    let exports = Api::<EndpointSlice>::namespaced(old, &member_namespace(a.id));
    let slice_object = EndpointSlice {
        metadata: ObjectMeta {
            name: Some("web".to_owned()),
            ..Default::default()
        },
        address_type: "IPv4".to_owned(),
        endpoints: None,
        ports: None,
    };
    match exports.create(&PostParams::default(), &slice_object).await {
        Err(kube::Error::Api(s)) => assert_eq!(s.code, 403, "{s:?}"),
        other => panic!("expected 403, got {other:?}"),
    }

    // 4. A joins again with a new token, with the same WireGuard key.
    // Its namespace on the hub must be gone first: until then the hub denies the join and the
    // member asks again.
    let started = Instant::now();
    let (token_a2, _) = issue_token(&dir, hub, "a2");
    let _octopus_a = run_member(&dir, hub, &a, &token_a2, &[]);
    let slice_a2 = slice_of(hub, a.id).await;
    assert!(global.contains(&slice_a2));
    assert_ne!(slice_a2, slice_b2);
    assert_eq!(peer(hub, a.id).await.unwrap().spec.public_key, key_a);
    eprintln!(
        "A joined again and holds a slice {:?} after leaving",
        started.elapsed()
    );
    let rejoined = Credential::from_secret(&secret(&a, CREDENTIAL_SECRET).await.unwrap()).unwrap();
    assert_ne!(
        rejoined.cert_pem, credential_a.cert_pem,
        "a new certificate"
    );
}

/// A Deployment of `replicas` pods labelled `app.kubernetes.io/component: <name>`, in the
/// member's namespace, standing in for a daemon (no kubelet runs its pods; a finalizer keeps a
/// deleted one terminating until it is taken off).
fn stand_in_deployment(name: &str, replicas: i32) -> Deployment {
    serde_json::from_value(serde_json::json!({
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "metadata": {"name": name, "namespace": MEMBER_NAMESPACE},
        "spec": {
            "replicas": replicas,
            "selector": {"matchLabels": {"app.kubernetes.io/component": name}},
            "template": {
                "metadata": {
                    "labels": {"app.kubernetes.io/component": name},
                    // Held terminating until the test removes it, like a pod stopping slowly.
                    "finalizers": ["nauti.io/stand-in"],
                },
                "spec": {
                    "serviceAccountName": "octopus-member",
                    "automountServiceAccountToken": false,
                    "containers": [{"name": "main", "image": "registry.invalid/stand-in:0"}],
                },
            },
        },
    }))
    .unwrap()
}

/// The names of the pods in the member's namespace matching `selector`.
async fn pod_names(member: &Member, selector: &str) -> Vec<String> {
    Api::<Pod>::namespaced(member.admin.clone(), MEMBER_NAMESPACE)
        .list(&ListParams::default().labels(selector))
        .await
        .unwrap()
        .items
        .into_iter()
        .filter_map(|pod| pod.metadata.name)
        .collect()
}

/// What the API server says the leave hook's ServiceAccount may do in the member's cluster:
/// the scale of octopus-member, not of another Deployment nor the Deployment itself; the
/// credential, not another Secret.
fn assert_leave_account_rights(member: &Member) {
    let can = |args: &[&str]| {
        let out = std::process::Command::new(nauti_testbed::peers::bin("kubectl").unwrap())
            .arg("--kubeconfig")
            .arg(member._api.kubeconfig())
            .args(["auth", "can-i", "-n", MEMBER_NAMESPACE])
            .arg(format!("--as={LEAVE_SA}"))
            .args(args)
            .output()
            .unwrap();
        String::from_utf8_lossy(&out.stdout).trim().to_owned()
    };
    let scale = "--subresource=scale";
    for allowed in [
        &["get", "deployments.apps/octopus-member", scale][..],
        &["patch", "deployments.apps/octopus-member", scale][..],
        &["update", "deployments.apps/octopus-member", scale][..],
        &["get", "deployments.apps/octopus-member"][..],
        &["list", "pods"][..],
        &["get", "secrets/octopus-credential"][..],
        &["delete", "secrets/octopus-credential"][..],
    ] {
        assert_eq!(can(allowed), "yes", "{allowed:?}");
    }
    for denied in [
        &["patch", "deployments.apps/other", scale][..],
        &["update", "deployments.apps/other", scale][..],
        &["patch", "deployments.apps/octopus-member"][..],
        &["delete", "deployments.apps/octopus-member"][..],
        &["get", "secrets/octopus-wireguard-key"][..],
        &["get", "secrets/nauti-hub"][..],
        &["list", "secrets"][..],
        &["update", "secrets/octopus-credential"][..],
        &["delete", "pods"][..],
    ] {
        assert_eq!(can(denied), "no", "{denied:?}");
    }
}

/// Removes a file when dropped, also when the test fails.
struct RemoveOnDrop(PathBuf);

impl Drop for RemoveOnDrop {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}

fn uapi_socket(ifname: &str) -> PathBuf {
    PathBuf::from(format!("/var/run/wireguard/{ifname}.sock"))
}

/// `octopus <args>` inside `ns`, its log under `name`.
fn octopus_in(dir: &TestDir, ns: &Netns, name: &str, args: &[&str]) -> Daemon {
    let mut cmd = ns.command(env!("CARGO_BIN_EXE_octopus"));
    cmd.args(["--log", "info,nauti_octopus=debug"])
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0"]);
    Daemon::spawn(name, cmd, &dir.log(name)).unwrap()
}

fn port_of(url: &str) -> u16 {
    url.rsplit(':').next().unwrap().parse().unwrap()
}

/// A gauge's value for `peer` in a Prometheus text page.
fn peer_gauge(metrics: &str, name: &str, peer: &str) -> Option<i64> {
    let prefix = format!("{name}{{peer=\"{peer}\"}} ");
    metrics
        .lines()
        .find_map(|l| l.strip_prefix(&prefix))
        .map(|v| v.trim().parse().unwrap())
}

/// The hub and a member each run the tunnel (`--wireguard-interface`) in a network namespace
/// of their own, joined by a veth (their API servers reached through loopback forwards): the
/// member dials the hub, and the hub records the tunnel in the member's Peer status: `Ready`,
/// the handshake, the byte counters and the latency of pings to the member's gateway address.
#[tokio::test]
async fn the_hub_writes_the_members_tunnel_into_its_peer_status() {
    require_root!();
    let dir = TestDir::new("octopus-status").unwrap();
    let hub_bed = start_hub(&dir).await;
    let hub = &hub_bed;
    let member = start_member(&dir, "cluster-a").await;
    let hub_ns = Netns::new("octh").unwrap();
    let member_ns = Netns::new("octa").unwrap();
    hub_ns.veth_to("wan0", &member_ns, "wan0").unwrap();
    hub_ns.add_addr("wan0", "198.18.0.1/24").unwrap();
    member_ns.add_addr("wan0", "198.18.0.11/24").unwrap();
    let hub_port = port_of(&hub.api.url());
    let _forwards = [
        Forward::start(&hub_ns, hub_port).unwrap(),
        Forward::start(&member_ns, hub_port).unwrap(),
        Forward::start(&member_ns, port_of(&member._api.url())).unwrap(),
    ];
    let hub_if = unique("wgh");
    let member_if = unique("wga");
    // The UAPI sockets are machine-wide files the stopped processes leave behind.
    let _sockets = [&hub_if, &member_if].map(|i| RemoveOnDrop(uapi_socket(i)));
    let (token, _) = issue_token(&dir, hub, "status");
    let _hub_octopus = octopus_in(
        &dir,
        &hub_ns,
        "octopus-hub",
        &[
            "hub",
            "--kubeconfig",
            hub.kubeconfig.to_str().unwrap(),
            "--cluster-id",
            HUB_ID,
            "--endpoint",
            "198.18.0.1",
            "--wireguard-interface",
            &hub_if,
        ],
    );
    let hub_url = hub.api.url();
    let _member_octopus = octopus_in(
        &dir,
        &member_ns,
        "octopus-cluster-a",
        &[
            "member",
            "--kubeconfig",
            member.kubeconfig.to_str().unwrap(),
            "--hub-url",
            &hub_url,
            "--hub-ca-file",
            hub.ca_file.to_str().unwrap(),
            "--token-file",
            token.to_str().unwrap(),
            "--cluster-id",
            member.id,
            "--wireguard-interface",
            &member_if,
        ],
    );
    let started = Instant::now();
    // Traffic through the tunnel, both ways: the member pings an address of the hub's slice
    // from one of its own.
    let member_slice = slice_of(hub, member.id).await;
    let hub_slice = slice_of(hub, HUB_ID).await;
    let member_addr = member_slice.hosts().next().unwrap().to_string();
    // The hub's gateway holds its slice's first address (its probes' source): a pod of the
    // hub's has another one.
    let hub_addr = hub_slice.hosts().nth(1).unwrap().to_string();
    member_ns
        .add_addr("lo", &format!("{member_addr}/32"))
        .unwrap();
    hub_ns.add_addr("lo", &format!("{hub_addr}/32")).unwrap();
    let pinged = wait_until(Duration::from_secs(60), || {
        member_ns
            .exec("ping", &["-c1", "-W1", "-I", &member_addr, &hub_addr])
            .is_ok()
    });
    assert!(
        pinged,
        "{member_addr} cannot ping {hub_addr} through the tunnel"
    );
    eprintln!(
        "ping through the tunnel {:?} after the start",
        started.elapsed()
    );
    let ready = eventually("Ready=True in the member's Peer", || async move {
        let p = peer(hub, member.id).await?;
        let ready = p.status.as_ref()?.condition(condition::READY)?.clone();
        (ready.status == "True").then_some((p, ready))
    })
    .await;
    eprintln!("Ready=True {:?} after the start", started.elapsed());
    let (p, ready) = ready;
    assert_eq!(ready.reason, "Connected", "{}", ready.message);
    assert!(ready.message.contains("ago"), "{}", ready.message);
    assert!(
        !ready.message.contains(" 0 B received"),
        "{}",
        ready.message
    );
    let handshake = p.status.as_ref().unwrap().last_handshake.clone().unwrap();
    let age = jiff::Timestamp::now().duration_since(handshake.0);
    assert!(
        age < jiff::SignedDuration::from_secs(60),
        "a recent handshake: {age:#}"
    );
    assert_eq!(
        probe_target(&p),
        Some(member_addr.parse().unwrap()),
        "the hub pings the first address of the member's slice"
    );
    // The hub's metrics carry the same tunnel, bytes in both directions.
    let hub_log = dir.log("octopus-hub");
    let hub_log = &hub_log;
    let hub_ns = &hub_ns;
    let metrics = eventually("the ping's bytes in the hub's metrics", || async move {
        let log = hub_log.clone();
        let metrics = hub_ns.run_in(move || http_get(&log, "/metrics")).unwrap();
        let moved = [
            "nauti_octopus_tunnel_received_bytes",
            "nauti_octopus_tunnel_sent_bytes",
        ]
        .iter()
        .all(|name| peer_gauge(&metrics, name, member.id).unwrap_or_default() > 0);
        moved.then_some(metrics)
    })
    .await;
    assert_eq!(
        peer_gauge(&metrics, "nauti_octopus_tunnel_ready", member.id),
        Some(1),
        "{metrics}"
    );
    let handshake_metric = peer_gauge(
        &metrics,
        "nauti_octopus_tunnel_last_handshake_timestamp_seconds",
        member.id,
    );
    assert!(handshake_metric.unwrap_or_default() > 0, "{metrics}");
    // And the member's view of the hub.
    let member_log = dir.log("octopus-cluster-a");
    let member_log = &member_log;
    let member_ns = &member_ns;
    eventually("the member's tunnel metrics", || async move {
        let log = member_log.clone();
        let metrics = member_ns
            .run_in(move || http_get(&log, "/metrics"))
            .unwrap();
        (peer_gauge(&metrics, "nauti_octopus_tunnel_ready", HUB_ID) == Some(1)).then_some(())
    })
    .await;

    // The hub pings the member's gateway address (`member_addr`, on the member's loopback)
    // through the tunnel and writes the median round trip.
    let latency = eventually("latencyMs in the member's Peer", || async move {
        peer(hub, member.id).await?.status?.latency_ms
    })
    .await;
    eprintln!(
        "latencyMs {latency} {:?} after the start",
        started.elapsed()
    );
    assert!(
        latency < 250,
        "a round trip between two namespaces of one machine: {latency} ms"
    );
    // The device's byte counters ride with the condition; traffic makes them grow (written at
    // the message's refresh pace, so within about a minute).
    let status = peer(hub, member.id).await.unwrap().status.unwrap();
    let (rx_before, tx_before) = (status.rx_bytes.unwrap(), status.tx_bytes.unwrap());
    assert!(rx_before > 0 && tx_before > 0, "{status:?}");
    const PINGS: u64 = 20;
    const SIZE: u64 = 1200;
    member_ns
        .exec(
            "ping",
            &[
                "-c",
                &PINGS.to_string(),
                "-i",
                "0.2",
                "-s",
                &SIZE.to_string(),
                "-W",
                "1",
                "-I",
                &member_addr,
                &hub_addr,
            ],
        )
        .unwrap();
    let grown_at = Instant::now();
    let (rx_after, tx_after) = poll(
        "the ping's bytes in the member's Peer status",
        Duration::from_secs(150),
        Duration::from_secs(1),
        || async move {
            let status = peer(hub, member.id).await?.status?;
            let (rx, tx) = (status.rx_bytes?, status.tx_bytes?);
            let moved = rx >= rx_before + PINGS * SIZE && tx >= tx_before + PINGS * SIZE;
            moved.then_some((rx, tx))
        },
    )
    .await;
    eprintln!(
        "rxBytes {rx_before} -> {rx_after}, txBytes {tx_before} -> {tx_after}, written {:?} after the traffic",
        grown_at.elapsed()
    );
    // Once the gateway address stops answering, the latency goes away.
    member_ns
        .ip(&["addr", "del", &format!("{member_addr}/32"), "dev", "lo"])
        .unwrap();
    let gone_at = Instant::now();
    eventually("latencyMs unset once nothing answers", || async move {
        let status = peer(hub, member.id).await?.status?;
        status.latency_ms.is_none().then_some(())
    })
    .await;
    eprintln!(
        "latencyMs unset {:?} after the address went",
        gone_at.elapsed()
    );
}
