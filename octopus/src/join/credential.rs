//! A member's credential on the hub: its private key, the certificate the hub's signer issued,
//! the hub's CA and URL. Kept in a Secret in the member cluster; never logged.

use std::collections::BTreeMap;

use base64::Engine;
use base64::engine::general_purpose::STANDARD as B64;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::Secret;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::config::{KubeConfigOptions, Kubeconfig};

use super::token::BootstrapToken;

const SERVER: &str = "server";
const CA: &str = "ca.crt";
const CERT: &str = "tls.crt";
const KEY: &str = "tls.key";

/// Why a credential could not be read or used.
#[derive(Debug, thiserror::Error)]
pub enum CredentialError {
    #[error("credential Secret lacks {0:?}")]
    Missing(&'static str),
    #[error("credential Secret field {0:?} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("certificate is not a PEM X.509 certificate: {0}")]
    BadCertificate(String),
    #[error("cannot build a client for {server}: {source}")]
    Client {
        server: String,
        #[source]
        source: Box<dyn std::error::Error + Send + Sync>,
    },
}

/// Key, certificate, hub CA and hub URL. `Debug` shows only the URL.
#[derive(Clone, PartialEq, Eq)]
pub struct Credential {
    pub server: String,
    pub ca_pem: String,
    pub cert_pem: String,
    pub key_pem: String,
}

impl std::fmt::Debug for Credential {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Credential")
            .field("server", &self.server)
            .finish_non_exhaustive()
    }
}

/// The validity window of a certificate, in seconds since the epoch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Validity {
    pub not_before: i64,
    pub not_after: i64,
}

impl Validity {
    /// When to ask for a new certificate: two thirds into its life, as kubelets do (70-90 %),
    /// leaving a third of it to get the next one through a hub outage.
    pub fn renew_at(&self) -> i64 {
        self.not_before + (self.not_after - self.not_before) * 2 / 3
    }
}

impl Credential {
    /// The Secret `namespace/name` that stores this credential.
    pub fn to_secret(&self, namespace: &str, name: &str) -> Secret {
        let data = [
            (SERVER, &self.server),
            (CA, &self.ca_pem),
            (CERT, &self.cert_pem),
            (KEY, &self.key_pem),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_owned(), ByteString(v.as_bytes().to_vec())))
        .collect::<BTreeMap<_, _>>();
        Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(data),
            ..Default::default()
        }
    }

    /// Reads a credential back from its Secret.
    pub fn from_secret(secret: &Secret) -> Result<Self, CredentialError> {
        let empty = BTreeMap::new();
        let data = secret.data.as_ref().unwrap_or(&empty);
        let field = |key: &'static str| -> Result<String, CredentialError> {
            let bytes = data.get(key).ok_or(CredentialError::Missing(key))?;
            String::from_utf8(bytes.0.clone()).map_err(|_| CredentialError::NotUtf8(key))
        };
        Ok(Self {
            server: field(SERVER)?,
            ca_pem: field(CA)?,
            cert_pem: field(CERT)?,
            key_pem: field(KEY)?,
        })
    }

    /// The certificate's validity window.
    pub fn validity(&self) -> Result<Validity, CredentialError> {
        let (_, pem) = x509_parser::pem::parse_x509_pem(self.cert_pem.as_bytes())
            .map_err(|e| CredentialError::BadCertificate(e.to_string()))?;
        let cert = pem
            .parse_x509()
            .map_err(|e| CredentialError::BadCertificate(e.to_string()))?;
        Ok(Validity {
            not_before: cert.validity().not_before.timestamp(),
            not_after: cert.validity().not_after.timestamp(),
        })
    }

    /// A client of the hub that authenticates with this certificate.
    pub async fn client(&self) -> Result<kube::Client, CredentialError> {
        let user = serde_json::json!({
            "client-certificate-data": B64.encode(&self.cert_pem),
            "client-key-data": B64.encode(&self.key_pem),
        });
        client_for(&self.server, &self.ca_pem, user).await
    }
}

/// A client of the hub that authenticates with a bootstrap token.
pub async fn bootstrap_client(
    server: &str,
    ca_pem: &str,
    token: &BootstrapToken,
) -> Result<kube::Client, CredentialError> {
    let user = serde_json::json!({ "token": token.to_string() });
    client_for(server, ca_pem, user).await
}

async fn client_for(
    server: &str,
    ca_pem: &str,
    user: serde_json::Value,
) -> Result<kube::Client, CredentialError> {
    let fail = |e: Box<dyn std::error::Error + Send + Sync>| CredentialError::Client {
        server: server.to_owned(),
        source: e,
    };
    let doc = serde_json::json!({
        "apiVersion": "v1",
        "kind": "Config",
        "clusters": [{"name": "hub", "cluster": {
            "server": server,
            "certificate-authority-data": B64.encode(ca_pem),
        }}],
        "users": [{"name": "nauti", "user": user}],
        "contexts": [{"name": "hub", "context": {"cluster": "hub", "user": "nauti"}}],
        "current-context": "hub",
    });
    let kubeconfig: Kubeconfig = serde_json::from_value(doc).map_err(|e| fail(e.into()))?;
    let config = kube::Config::from_custom_kubeconfig(kubeconfig, &KubeConfigOptions::default())
        .await
        .map_err(|e| fail(e.into()))?;
    kube::Client::try_from(config).map_err(|e| fail(e.into()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_round_trip_and_missing_field() {
        let c = Credential {
            server: "https://198.18.0.1:6443".into(),
            ca_pem: "ca".into(),
            cert_pem: "cert".into(),
            key_pem: "key".into(),
        };
        let mut s = c.to_secret("nauti-system", "octopus-hub-credential");
        assert_eq!(Credential::from_secret(&s).unwrap(), c);
        assert!(!format!("{c:?}").contains("key\""));
        s.data.as_mut().unwrap().remove(KEY);
        assert!(matches!(
            Credential::from_secret(&s),
            Err(CredentialError::Missing(KEY))
        ));
    }

    #[test]
    fn renewal_is_two_thirds_into_the_life() {
        let v = Validity {
            not_before: 0,
            not_after: 3_600,
        };
        assert_eq!(v.renew_at(), 2_400);
    }
}
