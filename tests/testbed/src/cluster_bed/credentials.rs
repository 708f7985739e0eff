//! A cluster's certificates and kubeconfig files, as a kubeadm cluster has them: a CA per cluster,
//! a serving certificate for kube-apiserver, one client identity per component and per node, and a
//! key pair for service-account tokens.

use std::path::{Path, PathBuf};

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;

use crate::error::{IoContext, Result};
use crate::pki::{CertPair, TestCa};

/// The identity of the bed's administrator in every cluster.
pub const ADMIN_USER: &str = "nauti-bed-admin";

/// A cluster's CA and the files written from it.
#[derive(Debug)]
pub struct Credentials {
    dir: PathBuf,
    cluster: String,
    ca: TestCa,
}

impl Credentials {
    /// A new CA for `cluster`, with `ca.crt`, the service-account keys, kube-apiserver's serving
    /// certificate (for `sans`) and its client certificate towards kubelets written into `dir`.
    pub fn new(dir: &Path, cluster: &str, sans: &[&str]) -> Result<Self> {
        std::fs::create_dir_all(dir).io_context(|| format!("create {}", dir.display()))?;
        let ca = TestCa::new(&format!("nauti-bed-{cluster}-ca"))?;
        let creds = Self {
            dir: dir.to_owned(),
            cluster: cluster.to_owned(),
            ca,
        };
        write(&creds.path("ca.crt"), &creds.ca.cert_pem)?;
        // kube-controller-manager signs approved certificate requests with it.
        write(&creds.path("ca.key"), &creds.ca.key_pem())?;
        let (sa_private, sa_public) = crate::pki::key_pair_pem()?;
        write(&creds.path("sa.key"), &sa_private)?;
        write(&creds.path("sa.pub"), &sa_public)?;
        creds.write_pair("apiserver", &creds.ca.server(sans)?)?;
        // kubeadm's name for it; system:masters lets the kubelet's webhook authorizer admit exec.
        creds.write_pair(
            "apiserver-kubelet-client",
            &creds
                .ca
                .client("kube-apiserver-kubelet-client", &["system:masters"])?,
        )?;
        Ok(creds)
    }

    /// A file of this cluster's PKI folder.
    pub fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    pub fn ca_pem(&self) -> &str {
        &self.ca.cert_pem
    }

    /// Writes `<name>.kubeconfig` for `user` in `groups` against `server`, with the context named
    /// after the cluster (and the identity as `<name>.crt`, `<name>.key`); returns its path.
    pub fn kubeconfig(
        &self,
        name: &str,
        server: &str,
        user: &str,
        groups: &[&str],
    ) -> Result<PathBuf> {
        let pair = self.ca.client(user, groups)?;
        self.write_pair(name, &pair)?;
        let path = self.path(&format!("{name}.kubeconfig"));
        write(
            &path,
            &kubeconfig_text(&self.cluster, server, &self.ca.cert_pem, user, &pair),
        )?;
        Ok(path)
    }

    fn write_pair(&self, name: &str, pair: &CertPair) -> Result<()> {
        write(&self.path(&format!("{name}.crt")), &pair.cert_pem)?;
        write(&self.path(&format!("{name}.key")), &pair.key_pem)
    }
}

/// A kubeconfig whose cluster and context are both named `cluster`.
pub fn kubeconfig_text(
    cluster: &str,
    server: &str,
    ca_pem: &str,
    user: &str,
    pair: &CertPair,
) -> String {
    serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": cluster, "cluster": {
            "server": server,
            "certificate-authority-data": B64.encode(ca_pem),
        }}],
        "users": [{"name": user, "user": {
            "client-certificate-data": B64.encode(&pair.cert_pem),
            "client-key-data": B64.encode(&pair.key_pem),
        }}],
        "contexts": [{"name": cluster, "context": {"cluster": cluster, "user": user}}],
        "current-context": cluster,
    })
    .to_string()
}

pub(super) fn write(path: &Path, text: &str) -> Result<()> {
    std::fs::write(path, text).io_context(|| format!("write {}", path.display()))
}
