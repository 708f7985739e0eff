//! etcd + kube-apiserver with generated certificates: a real Kubernetes API per test.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::api::core::v1::{Namespace, ServiceAccount};
use k8s_openapi::apiextensions_apiserver::pkg::apis::apiextensions::v1::CustomResourceDefinition;
use kube::api::{Api, ObjectMeta, PostParams};
use kube::config::{KubeConfigOptions, Kubeconfig};

use crate::error::{Error, IoContext, Result};
use crate::pki::{CertPair, TestCa};
use crate::process::{Daemon, run};
use crate::testdir::TestDir;
use crate::{names, peers};

/// The user name and group of the test's administrator identity.
pub const ADMIN_USER: &str = "nauti-test-admin";
const ADMIN_GROUP: &str = "system:masters";

/// A running kube-apiserver on its own etcd, listening on 127.0.0.1.
///
/// Authentication is by client certificates from a per-test CA, authorization is `RBAC`: identities
/// made with [`KubeApi::kubeconfig_for`] start with no rights, so least-privilege rules can be tested.
pub struct KubeApi {
    dir: PathBuf,
    port: u16,
    ca: TestCa,
    admin_kubeconfig: PathBuf,
    // Declared before etcd: fields drop in order, and the apiserver must stop first.
    apiserver: Daemon,
    _etcd: Daemon,
}

impl std::fmt::Debug for KubeApi {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KubeApi")
            .field("url", &self.url())
            .field("dir", &self.dir)
            .finish_non_exhaustive()
    }
}

/// Optional kube-apiserver settings beyond the defaults of [`KubeApi::start`].
#[derive(Debug, Clone, Copy, Default)]
pub struct KubeApiOptions {
    /// `--enable-bootstrap-token-auth`: Secrets of type `bootstrap.kubernetes.io/token` in
    /// `kube-system` authenticate as `system:bootstrap:<id>` (kubeadm clusters run with it).
    pub bootstrap_token_auth: bool,
}

impl KubeApi {
    /// Starts etcd and kube-apiserver and waits until `/readyz` answers `ok`.
    pub async fn start(test: &TestDir) -> Result<Self> {
        Self::start_with(test, KubeApiOptions::default()).await
    }

    /// [`KubeApi::start`] with `options`.
    pub async fn start_with(test: &TestDir, options: KubeApiOptions) -> Result<Self> {
        let dir = test.sub(&names::unique("kube"))?;
        let etcd = start_etcd(&dir)?;
        let etcd_url = etcd.1;
        let ca = TestCa::new("nauti-test-ca")?;
        let server = ca.server(&[
            "localhost",
            "127.0.0.1",
            "kubernetes",
            "kubernetes.default",
            "kubernetes.default.svc",
        ])?;
        let admin = ca.client(ADMIN_USER, &[ADMIN_GROUP])?;
        write(&dir.join("ca.crt"), &ca.cert_pem)?;
        write(&dir.join("ca.key"), &ca.key_pem())?;
        write_pair(&dir, "server", &server)?;
        write_pair(&dir, "admin", &admin)?;
        let (sa_private, sa_public) = crate::pki::key_pair_pem()?;
        write(&dir.join("sa.key"), &sa_private)?;
        write(&dir.join("sa.pub"), &sa_public)?;

        let port = names::free_port().io_context(|| "pick a port for kube-apiserver".into())?;
        let mut cmd = Command::new(peers::bin("kube-apiserver")?);
        let p = |name: &str| dir.join(name).display().to_string();
        cmd.arg(format!("--etcd-servers={etcd_url}"))
            .arg("--bind-address=127.0.0.1")
            .arg("--advertise-address=127.0.0.1")
            // The endpoint reconciler refuses a loopback address; nothing here needs the
            // `kubernetes` Service's endpoints.
            .arg("--endpoint-reconciler-type=none")
            .arg(format!("--secure-port={port}"))
            .arg(format!("--cert-dir={}", p("certs")))
            .arg(format!("--tls-cert-file={}", p("server.crt")))
            .arg(format!("--tls-private-key-file={}", p("server.key")))
            .arg(format!("--client-ca-file={}", p("ca.crt")))
            .arg(format!("--service-account-key-file={}", p("sa.pub")))
            .arg(format!(
                "--service-account-signing-key-file={}",
                p("sa.key")
            ))
            .arg("--service-account-issuer=https://kubernetes.default.svc")
            .arg("--service-cluster-ip-range=10.96.0.0/16")
            .arg("--authorization-mode=RBAC")
            // As kubeadm and the ClusterBed: node agents (nauti-nri, Open vSwitch) are privileged.
            .arg("--allow-privileged=true")
            .arg("--profiling=false")
            .arg("--enable-priority-and-fairness=false")
            .arg("--v=1");
        if options.bootstrap_token_auth {
            cmd.arg("--enable-bootstrap-token-auth");
        }
        let mut apiserver = Daemon::spawn("kube-apiserver", cmd, &dir.join("kube-apiserver.log"))?;
        let ready = {
            let dir = dir.clone();
            move || readyz(&dir, port)
        };
        apiserver.wait_ready(Duration::from_secs(120), ready)?;

        let admin_kubeconfig = dir.join("admin.kubeconfig");
        write(
            &admin_kubeconfig,
            &kubeconfig_yaml(port, &ca.cert_pem, ADMIN_USER, &admin),
        )?;
        let api = Self {
            dir,
            port,
            ca,
            admin_kubeconfig,
            apiserver,
            _etcd: etcd.0,
        };
        // Without a controller-manager nobody creates the `default` ServiceAccount, and the
        // ServiceAccount admission plugin refuses pods that lack it.
        api.ensure_default_service_account("default").await?;
        Ok(api)
    }

    /// `https://127.0.0.1:<port>`.
    pub fn url(&self) -> String {
        format!("https://127.0.0.1:{}", self.port)
    }

    /// The port kube-apiserver listens on (127.0.0.1).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// Makes the API reachable from `netns` at the same URL (see [`crate::forward::Forward`]).
    pub fn expose_in(&self, netns: &crate::Netns) -> Result<crate::forward::Forward> {
        crate::forward::Forward::start(netns, self.port)
    }

    /// A kubeconfig file for the administrator (group `system:masters`).
    pub fn kubeconfig(&self) -> &Path {
        &self.admin_kubeconfig
    }

    /// A kubeconfig for a new identity `user` in `groups`, which has only what RBAC grants it.
    pub fn kubeconfig_for(&self, user: &str, groups: &[&str]) -> Result<PathBuf> {
        let pair = self.ca.client(user, groups)?;
        let path = self
            .dir
            .join(format!("{}.kubeconfig", names::unique("user")));
        write(
            &path,
            &kubeconfig_yaml(self.port, &self.ca.cert_pem, user, &pair),
        )?;
        Ok(path)
    }

    /// A kubeconfig that authenticates with the bearer `token` (a service account's, say); `name`
    /// names the user entry and the file.
    pub fn kubeconfig_with_token(&self, name: &str, token: &str) -> Result<PathBuf> {
        let path = self.dir.join(format!("{}.kubeconfig", names::unique(name)));
        write(
            &path,
            &kubeconfig_json(
                self.port,
                &self.ca.cert_pem,
                name,
                serde_json::json!({"token": token}),
            ),
        )?;
        Ok(path)
    }

    /// A token of ServiceAccount `namespace/account` bound to the Pod `pod` (its name and uid),
    /// as the kubelet projects into the pod: valid while that pod exists, and, when the pod is
    /// scheduled, naming its node in the user extra `authentication.kubernetes.io/node-name`.
    pub async fn pod_bound_token(
        &self,
        namespace: &str,
        account: &str,
        pod: &k8s_openapi::api::core::v1::Pod,
    ) -> Result<String> {
        self.token_bound_to(namespace, account, "Pod", &pod.metadata)
            .await
    }

    /// A token of ServiceAccount `namespace/account` bound to the Node `node`: valid while that
    /// Node exists, naming it in the user extra `authentication.kubernetes.io/node-name`.
    pub async fn node_bound_token(
        &self,
        namespace: &str,
        account: &str,
        node: &k8s_openapi::api::core::v1::Node,
    ) -> Result<String> {
        self.token_bound_to(namespace, account, "Node", &node.metadata)
            .await
    }

    async fn token_bound_to(
        &self,
        namespace: &str,
        account: &str,
        kind: &str,
        object: &ObjectMeta,
    ) -> Result<String> {
        let bound_to = serde_json::json!({
            "kind": kind,
            "apiVersion": "v1",
            "name": object.name,
            "uid": object.uid,
        });
        self.token_for(namespace, account, Some(bound_to)).await
    }

    /// A token of ServiceAccount `namespace/account` bound to no object.
    pub async fn unbound_token(&self, namespace: &str, account: &str) -> Result<String> {
        self.token_for(namespace, account, None).await
    }

    async fn token_for(
        &self,
        namespace: &str,
        account: &str,
        bound_to: Option<serde_json::Value>,
    ) -> Result<String> {
        let request: k8s_openapi::api::authentication::v1::TokenRequest =
            serde_json::from_value(serde_json::json!({
                "spec": {
                    "audiences": [],
                    "expirationSeconds": 3600,
                    "boundObjectRef": bound_to,
                },
            }))
            .map_err(|e| Error::Other(format!("token request: {e}")))?;
        let answer = Api::<ServiceAccount>::namespaced(self.client().await?, namespace)
            .create_token_request(account, &PostParams::default(), &request)
            .await
            .map_err(|e| Error::Other(format!("a token for {namespace}/{account}: {e}")))?;
        answer
            .status
            .and_then(|status| status.token)
            .ok_or_else(|| Error::Other(format!("no token for {namespace}/{account}")))
    }

    /// The PEM of the CA that signed the server certificate.
    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// A client for the administrator.
    pub async fn client(&self) -> Result<kube::Client> {
        client_from(&self.admin_kubeconfig).await
    }

    /// A client for `user` in `groups` (see [`KubeApi::kubeconfig_for`]).
    pub async fn client_as(&self, user: &str, groups: &[&str]) -> Result<kube::Client> {
        client_from(&self.kubeconfig_for(user, groups)?).await
    }

    /// Creates namespace `name` (if absent) with its `default` ServiceAccount.
    pub async fn create_namespace(&self, name: &str) -> Result<()> {
        let api: Api<Namespace> = Api::all(self.client().await?);
        let ns = Namespace {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        ignore_conflict(api.create(&PostParams::default(), &ns).await)?;
        self.ensure_default_service_account(name).await
    }

    async fn ensure_default_service_account(&self, namespace: &str) -> Result<()> {
        let api: Api<ServiceAccount> = Api::namespaced(self.client().await?, namespace);
        let sa = ServiceAccount {
            metadata: ObjectMeta {
                name: Some("default".to_owned()),
                ..Default::default()
            },
            ..Default::default()
        };
        ignore_conflict(api.create(&PostParams::default(), &sa).await)
    }

    /// Installs every CRD found in `dir` (`*.yaml`) and waits until each is established.
    pub async fn install_crds(&self, dir: &Path) -> Result<Vec<String>> {
        let api: Api<CustomResourceDefinition> = Api::all(self.client().await?);
        let mut names = Vec::new();
        let mut files: Vec<PathBuf> = std::fs::read_dir(dir)
            .io_context(|| format!("read {}", dir.display()))?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| p.extension().is_some_and(|e| e == "yaml" || e == "yml"))
            .collect();
        files.sort();
        for file in files {
            let text =
                std::fs::read_to_string(&file).io_context(|| format!("read {}", file.display()))?;
            let crd: CustomResourceDefinition = serde_saphyr::from_str(&text)
                .map_err(|e| Error::Other(format!("{}: {e}", file.display())))?;
            let name = crd.metadata.name.clone().unwrap_or_default();
            ignore_conflict(api.create(&PostParams::default(), &crd).await)?;
            names.push(name);
        }
        for name in &names {
            let cond = kube::runtime::conditions::is_crd_established();
            let wait = kube::runtime::wait::await_condition(api.clone(), name, cond);
            tokio::time::timeout(Duration::from_secs(30), wait)
                .await
                .map_err(|_| Error::Other(format!("CRD {name} not established after 30 s")))?
                .map_err(|e| Error::Other(format!("waiting for CRD {name}: {e}")))?;
        }
        Ok(names)
    }

    /// Starts kube-controller-manager with only `controllers` (e.g. `csrsigning`,
    /// `tokencleaner`), signing `kubernetes.io/kube-apiserver-client` certificates with this
    /// API's client CA; the returned guard stops it.
    pub fn start_controller_manager(&self, controllers: &[&str]) -> Result<Daemon> {
        let port = names::free_port().io_context(|| "pick a port for controller-manager".into())?;
        let p = |name: &str| self.dir.join(name).display().to_string();
        let mut cmd = Command::new(peers::bin("kube-controller-manager")?);
        cmd.arg(format!("--kubeconfig={}", p("admin.kubeconfig")))
            .arg(format!(
                "--authentication-kubeconfig={}",
                p("admin.kubeconfig")
            ))
            .arg(format!(
                "--authorization-kubeconfig={}",
                p("admin.kubeconfig")
            ))
            .arg(format!("--controllers={}", controllers.join(",")))
            .arg(format!("--cluster-signing-cert-file={}", p("ca.crt")))
            .arg(format!("--cluster-signing-key-file={}", p("ca.key")))
            .arg(format!("--cert-dir={}", p("kcm-certs")))
            .arg("--bind-address=127.0.0.1")
            .arg(format!("--secure-port={port}"))
            .arg("--leader-elect=false")
            .arg("--use-service-account-credentials=false")
            .arg("--v=1");
        let log = self
            .dir
            .join(format!("{}.log", names::unique("kube-controller-manager")));
        let mut kcm = Daemon::spawn("kube-controller-manager", cmd, &log)?;
        let url = format!("https://127.0.0.1:{port}/healthz");
        kcm.wait_ready(Duration::from_secs(60), || {
            run(Command::new("curl").args(["-sfk", "-m", "2", &url]))
                .is_ok_and(|b| b.trim() == "ok")
        })?;
        Ok(kcm)
    }

    /// `kubectl apply -f <repo>/<file>` as the administrator (e.g. `deploy/rbac/...yaml`);
    /// returns kubectl's stdout.
    pub fn apply_repo_file(&self, file: &str) -> Result<String> {
        let path = crate::repo_root().join(file);
        run(Command::new(peers::bin("kubectl")?)
            .arg(format!("--kubeconfig={}", self.kubeconfig().display()))
            .args(["apply", "-f"])
            .arg(&path))
    }

    /// Process IDs of kube-apiserver and etcd (to check that nothing outlives the guard).
    pub fn pids(&self) -> Vec<u32> {
        vec![self.apiserver.pid(), self._etcd.pid()]
    }

    /// The apiserver's log file.
    pub fn log(&self) -> &Path {
        self.apiserver.log()
    }
}

/// The repository's `deploy/crds` folder.
pub fn repo_crds() -> PathBuf {
    crate::repo_root().join("deploy/crds")
}

/// A client for the identity in the kubeconfig file `kubeconfig`.
pub async fn client_from(kubeconfig: &Path) -> Result<kube::Client> {
    let config = Kubeconfig::read_from(kubeconfig)
        .map_err(|e| Error::Other(format!("read {}: {e}", kubeconfig.display())))?;
    let config = kube::Config::from_custom_kubeconfig(config, &KubeConfigOptions::default())
        .await
        .map_err(|e| Error::Other(format!("load {}: {e}", kubeconfig.display())))?;
    kube::Client::try_from(config).map_err(|e| Error::Other(format!("kube client: {e}")))
}

fn ignore_conflict<T>(result: kube::Result<T>) -> Result<()> {
    match result {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 409 => Ok(()),
        Err(e) => Err(Error::Other(format!("kube API: {e}"))),
    }
}

fn start_etcd(dir: &Path) -> Result<(Daemon, String)> {
    let client = names::free_port().io_context(|| "pick a port for etcd".into())?;
    let peer = names::free_port().io_context(|| "pick a port for etcd".into())?;
    let client_url = format!("http://127.0.0.1:{client}");
    let peer_url = format!("http://127.0.0.1:{peer}");
    let mut cmd = Command::new(peers::bin("etcd")?);
    cmd.arg("--name=nauti-test")
        .arg(format!("--data-dir={}", dir.join("etcd").display()))
        .arg(format!("--listen-client-urls={client_url}"))
        .arg(format!("--advertise-client-urls={client_url}"))
        .arg(format!("--listen-peer-urls={peer_url}"))
        .arg(format!("--initial-advertise-peer-urls={peer_url}"))
        .arg(format!("--initial-cluster=nauti-test={peer_url}"))
        .arg("--log-level=warn");
    let mut etcd = Daemon::spawn("etcd", cmd, &dir.join("etcd.log"))?;
    let health = format!("{client_url}/health");
    etcd.wait_ready(Duration::from_secs(30), || {
        run(Command::new("curl").args(["-sf", "-m", "2", &health]))
            .is_ok_and(|body| body.contains("true"))
    })?;
    Ok((etcd, client_url))
}

fn readyz(dir: &Path, port: u16) -> bool {
    let url = format!("https://127.0.0.1:{port}/readyz");
    let p = |name: &str| dir.join(name).display().to_string();
    run(Command::new("curl").args([
        "-sf",
        "-m",
        "3",
        "--cacert",
        &p("ca.crt"),
        "--cert",
        &p("admin.crt"),
        "--key",
        &p("admin.key"),
        &url,
    ]))
    .is_ok_and(|body| body.trim() == "ok")
}

fn kubeconfig_yaml(port: u16, ca_pem: &str, user: &str, pair: &CertPair) -> String {
    let credentials = serde_json::json!({
        "client-certificate-data": B64.encode(&pair.cert_pem),
        "client-key-data": B64.encode(&pair.key_pem),
    });
    kubeconfig_json(port, ca_pem, user, credentials)
}

fn kubeconfig_json(port: u16, ca_pem: &str, user: &str, credentials: serde_json::Value) -> String {
    let value = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "nauti-test", "cluster": {
            "server": format!("https://127.0.0.1:{port}"),
            "certificate-authority-data": B64.encode(ca_pem),
        }}],
        "users": [{"name": user, "user": credentials}],
        "contexts": [{"name": "nauti-test", "context": {"cluster": "nauti-test", "user": user}}],
        "current-context": "nauti-test",
    });
    // A JSON document is valid YAML, and kubectl reads either.
    value.to_string()
}

fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).io_context(|| format!("write {}", path.display()))
}

fn write_pair(dir: &Path, name: &str, pair: &CertPair) -> Result<()> {
    write(&dir.join(format!("{name}.crt")), &pair.cert_pem)?;
    write(&dir.join(format!("{name}.key")), &pair.key_pem)
}
