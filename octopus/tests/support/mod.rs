//! What the real-peer tests of octopus share: a hub (kube-apiserver with bootstrap-token
//! authentication, kube-controller-manager's `csrsigning`, `tokencleaner` and `namespace`,
//! `deploy/rbac/octopus-hub.yaml`), a member's API server under
//! `deploy/rbac/octopus-member.yaml`, the `octopus` binary as hub and member, and bounded
//! polling.

#![allow(
    dead_code,
    reason = "each test binary includes this module and uses part of it"
)]

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use nauti_testbed::kube_api::repo_crds;
use nauti_testbed::{Daemon, KubeApi, KubeApiOptions, TestDir};

pub const HUB_SA: &str = "system:serviceaccount:nauti-system:octopus-hub";
pub const MEMBER_SA: &str = "system:serviceaccount:nauti-system:octopus-member";
pub const SA_GROUPS: [&str; 2] = [
    "system:serviceaccounts",
    "system:serviceaccounts:nauti-system",
];
/// Every wait is bounded by this.
pub const WAIT: Duration = Duration::from_secs(90);

/// The hub's API server with bootstrap-token authentication, its controller-manager, the
/// repository's CRDs and the hub's RBAC.
pub async fn start_hub_api(dir: &TestDir) -> (KubeApi, Daemon) {
    let api = KubeApi::start_with(
        dir,
        KubeApiOptions {
            bootstrap_token_auth: true,
        },
    )
    .await
    .unwrap();
    let kcm = api
        .start_controller_manager(&["csrsigning", "tokencleaner", "namespace"])
        .unwrap();
    api.install_crds(&repo_crds()).await.unwrap();
    api.apply_repo_file("deploy/rbac/octopus-hub.yaml").unwrap();
    (api, kcm)
}

pub struct Hub {
    pub api: KubeApi,
    pub _kcm: Daemon,
    /// octopus hub's own kubeconfig (its ServiceAccount, nothing more).
    pub kubeconfig: PathBuf,
    pub admin: kube::Client,
    /// Where the hub's CA from the latest issued token is written.
    pub ca_file: PathBuf,
}

pub async fn start_hub(dir: &TestDir) -> Hub {
    let (api, kcm) = start_hub_api(dir).await;
    let kubeconfig = api.kubeconfig_for(HUB_SA, &SA_GROUPS).unwrap();
    let admin = api.client().await.unwrap();
    let ca_file = dir.path().join("hub-ca.pem");
    Hub {
        api,
        _kcm: kcm,
        kubeconfig,
        admin,
        ca_file,
    }
}

/// A member cluster's API server under the member's RBAC.
pub struct MemberApi {
    pub api: KubeApi,
    /// octopus member's own kubeconfig (its ServiceAccount, nothing more).
    pub kubeconfig: PathBuf,
    pub admin: kube::Client,
}

/// Starts a member's API server; with `crds`, the repository's CRDs are installed first.
pub async fn start_member_api(dir: &TestDir, crds: bool) -> MemberApi {
    let api = KubeApi::start(dir).await.unwrap();
    if crds {
        api.install_crds(&repo_crds()).await.unwrap();
    }
    api.apply_repo_file("deploy/rbac/octopus-member.yaml")
        .unwrap();
    let kubeconfig = api.kubeconfig_for(MEMBER_SA, &SA_GROUPS).unwrap();
    let admin = api.client().await.unwrap();
    MemberApi {
        api,
        kubeconfig,
        admin,
    }
}

/// `octopus <args>` as a daemon, its log under `name`.
pub fn octopus(dir: &TestDir, name: &str, args: &[&str]) -> Daemon {
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_octopus"));
    cmd.args(["--log", "info,nauti_octopus=debug"])
        .args(args)
        .args(["--metrics-addr", "127.0.0.1:0"]);
    Daemon::spawn(name, cmd, &dir.log(name)).unwrap()
}

/// Runs a one-shot `octopus` command; returns stdout, panics with stderr on failure.
pub fn octopus_once(args: &[&str]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_octopus"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "octopus {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The JSON answer of `octopus hub issue-token` (1 h), as the hub's ServiceAccount.
pub fn issued_token(hub: &Hub) -> serde_json::Value {
    let out = octopus_once(&[
        "hub",
        "issue-token",
        "--kubeconfig",
        hub.kubeconfig.to_str().unwrap(),
        "--ttl",
        "1h",
    ]);
    serde_json::from_str(&out).unwrap()
}

/// Writes the hub's CA of `issued` to the hub's CA file and its token to `<name>.token`;
/// returns the token file.
pub fn write_token(dir: &TestDir, hub: &Hub, name: &str, issued: &serde_json::Value) -> PathBuf {
    std::fs::write(&hub.ca_file, issued["hubCA"].as_str().unwrap()).unwrap();
    let file = dir.path().join(format!("{name}.token"));
    std::fs::write(&file, issued["token"].as_str().unwrap()).unwrap();
    file
}

/// `octopus member` of cluster `id` (as the identity in `kubeconfig`) joining `hub` with
/// `token_file`, its log under `name`, with `extra` arguments.
pub fn run_member(
    dir: &TestDir,
    hub: &Hub,
    name: &str,
    id: &str,
    kubeconfig: &Path,
    token_file: &Path,
    extra: &[&str],
) -> Daemon {
    let hub_url = hub.api.url();
    let mut args = vec![
        "member",
        "--kubeconfig",
        kubeconfig.to_str().unwrap(),
        "--hub-url",
        &hub_url,
        "--hub-ca-file",
        hub.ca_file.to_str().unwrap(),
        "--token-file",
        token_file.to_str().unwrap(),
        "--cluster-id",
        id,
    ];
    args.extend_from_slice(extra);
    octopus(dir, name, &args)
}

/// Polls `check` every `every` until it returns `Some`, at most `bound`.
pub async fn poll<T, F, Fut>(what: &str, bound: Duration, every: Duration, mut check: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + bound;
    loop {
        if let Some(value) = check().await {
            return value;
        }
        assert!(
            Instant::now() < deadline,
            "timed out after {bound:?} waiting for {what}"
        );
        tokio::time::sleep(every).await;
    }
}
