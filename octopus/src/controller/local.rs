//! What octopus keeps in its own cluster: the WireGuard private key (a Secret created once,
//! then read at every start, so the public key other clusters know stays the same), the
//! member's credential on the hub (a Secret), and the cluster's slice for `nauti-ovnmaster`
//! (the ConfigMap [`CLUSTER_CONFIGMAP`], key [`CLUSTER_SUBNET_KEY`]).
//!
//! The slice reaches `nauti-ovnmaster` without any code of its own: its Deployment sets
//! `NAUTI_CLUSTER_SUBNET` (the environment twin of `--cluster-subnet`) from that ConfigMap
//! key with a `configMapKeyRef`. Until the hub has assigned a slice the ConfigMap does not
//! exist and the kubelet holds the container back (`CreateContainerConfigError`), so
//! `nauti-ovnmaster` never starts without one.

use std::collections::BTreeMap;

use boringtun::x25519::{PublicKey as XPublicKey, StaticSecret};
use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use nauti_api::core::wgkey::{encode_wireguard_key, parse_wireguard_key};

use crate::core::PublicKey;
use crate::join::{Credential, CredentialError};

/// Default name of the Secret holding the gateway's WireGuard private key.
pub const WIREGUARD_KEY_SECRET: &str = "octopus-wireguard-key";
/// Field of that Secret: the private key as `wg genkey` prints it.
pub const PRIVATE_KEY_FIELD: &str = "private-key";
/// Default name of the Secret holding a member's credential on the hub.
pub const CREDENTIAL_SECRET: &str = "octopus-credential";
/// The ConfigMap that hands the cluster's slice to `nauti-ovnmaster`.
pub const CLUSTER_CONFIGMAP: &str = "nauti-cluster";
/// Its key: the slice as a CIDR (what `nauti-ovnmaster --cluster-subnet` takes).
pub const CLUSTER_SUBNET_KEY: &str = "cluster-subnet";

/// A failure reading or writing octopus's objects in its own cluster.
#[derive(Debug, thiserror::Error)]
pub enum LocalError {
    #[error("{what} {namespace}/{name}: {source}")]
    Api {
        what: &'static str,
        namespace: String,
        name: String,
        #[source]
        source: kube::Error,
    },
    #[error("Secret {namespace}/{name} field {PRIVATE_KEY_FIELD:?} is not a WireGuard key")]
    BadKey { namespace: String, name: String },
    #[error("Secret {namespace}/{name} was created by another start and deleted again")]
    Vanished { namespace: String, name: String },
    #[error("no randomness from the operating system: {0}")]
    Random(String),
    #[error("credential Secret {namespace}/{name}: {source}")]
    Credential {
        namespace: String,
        name: String,
        #[source]
        source: CredentialError,
    },
}

/// The gateway's key pair. `Debug` shows only the public key.
#[derive(Clone)]
pub struct WireguardKey {
    /// The private key bytes (never logged).
    pub private: [u8; 32],
    /// Its public key, as published in the Peer.
    pub public: PublicKey,
}

impl std::fmt::Debug for WireguardKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("WireguardKey")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl WireguardKey {
    fn from_private(private: [u8; 32]) -> Self {
        let public = XPublicKey::from(&StaticSecret::from(private));
        Self {
            private,
            public: PublicKey(public.to_bytes()),
        }
    }
}

fn api_error(
    what: &'static str,
    namespace: &str,
    name: &str,
) -> impl FnOnce(kube::Error) -> LocalError {
    let (namespace, name) = (namespace.to_owned(), name.to_owned());
    move |source| LocalError::Api {
        what,
        namespace,
        name,
        source,
    }
}

/// Reads the key from Secret `namespace/name`, creating it with a new random key when absent
/// (if two starts race, the one that created it wins and the other reads it back).
pub async fn ensure_wireguard_key(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<WireguardKey, LocalError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    for _ in 0..2 {
        if let Some(secret) =
            api.get_opt(name)
                .await
                .map_err(api_error("read Secret", namespace, name))?
        {
            let text = secret
                .data
                .as_ref()
                .and_then(|d| d.get(PRIVATE_KEY_FIELD))
                .and_then(|b| std::str::from_utf8(&b.0).ok())
                .map(str::trim)
                .unwrap_or_default()
                .to_owned();
            let private = parse_wireguard_key(&text).map_err(|_| LocalError::BadKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
            return Ok(WireguardKey::from_private(private));
        }
        let mut private = [0u8; 32];
        getrandom::fill(&mut private).map_err(|e| LocalError::Random(e.to_string()))?;
        let secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(BTreeMap::from([(
                PRIVATE_KEY_FIELD.to_owned(),
                ByteString(encode_wireguard_key(&private).into_bytes()),
            )])),
            ..Default::default()
        };
        match api.create(&PostParams::default(), &secret).await {
            Ok(_) => {
                let key = WireguardKey::from_private(private);
                tracing::info!(public_key = %key.public, secret = name, "WireGuard key created");
                return Ok(key);
            }
            // Created meanwhile by another start: read that one.
            Err(kube::Error::Api(s)) if s.code == 409 => {}
            Err(e) => return Err(api_error("create Secret", namespace, name)(e)),
        }
    }
    Err(LocalError::Vanished {
        namespace: namespace.to_owned(),
        name: name.to_owned(),
    })
}

/// The credential stored in Secret `namespace/name`, if any.
pub async fn load_credential(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Option<Credential>, LocalError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let Some(secret) =
        api.get_opt(name)
            .await
            .map_err(api_error("read Secret", namespace, name))?
    else {
        return Ok(None);
    };
    Credential::from_secret(&secret)
        .map(Some)
        .map_err(|source| LocalError::Credential {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
            source,
        })
}

/// Stores `credential` in Secret `namespace/name`, replacing what was there.
pub async fn store_credential(
    client: kube::Client,
    namespace: &str,
    name: &str,
    credential: &Credential,
) -> Result<(), LocalError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let mut secret = credential.to_secret(namespace, name);
    let fail = api_error("write Secret", namespace, name);
    match api.get_opt(name).await {
        Ok(Some(current)) => {
            secret.metadata.resource_version = current.metadata.resource_version;
            api.replace(name, &PostParams::default(), &secret)
                .await
                .map(|_| ())
                .map_err(fail)
        }
        Ok(None) => api
            .create(&PostParams::default(), &secret)
            .await
            .map(|_| ())
            .map_err(fail),
        Err(e) => Err(fail(e)),
    }
}

/// Deletes Secret `namespace/name` (absent is fine).
pub async fn delete_secret(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<(), LocalError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    match api.delete(name, &DeleteParams::default()).await {
        Ok(_) => Ok(()),
        Err(kube::Error::Api(status)) if status.code == 404 => Ok(()),
        Err(e) => Err(api_error("delete Secret", namespace, name)(e)),
    }
}

/// Writes `slice` into the cluster ConfigMap; returns whether it changed.
pub async fn write_cluster_subnet(
    client: kube::Client,
    namespace: &str,
    slice: IpNet,
) -> Result<bool, LocalError> {
    let api: Api<ConfigMap> = Api::namespaced(client, namespace);
    let name = CLUSTER_CONFIGMAP;
    let fail = api_error("write ConfigMap", namespace, name);
    let value = slice.to_string();
    match api.get_opt(name).await {
        Ok(Some(mut current)) => {
            let data = current.data.get_or_insert_with(BTreeMap::new);
            if data.get(CLUSTER_SUBNET_KEY) == Some(&value) {
                return Ok(false);
            }
            data.insert(CLUSTER_SUBNET_KEY.to_owned(), value);
            api.replace(name, &PostParams::default(), &current)
                .await
                .map(|_| true)
                .map_err(fail)
        }
        Ok(None) => {
            let map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(CLUSTER_SUBNET_KEY.to_owned(), value)])),
                ..Default::default()
            };
            api.create(&PostParams::default(), &map)
                .await
                .map(|_| true)
                .map_err(fail)
        }
        Err(e) => Err(fail(e)),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_public_key_is_x25519_of_the_private_key() {
        // RFC 7748 section 6.1, Alice's key pair.
        let hex = |s: &str| -> [u8; 32] {
            let bytes: Vec<u8> = (0..s.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
                .collect();
            bytes.try_into().unwrap()
        };
        let key = WireguardKey::from_private(hex(
            "77076d0a7318a57d3c16c17251b26645df4c2f87ebc0992ab177fba51db92c2a",
        ));
        assert_eq!(
            key.public.0,
            hex("8520f0098930a754748b7ddcb43ef75a0dbf3a0d26381af4eba4a98eaa9b4e6a")
        );
        assert!(!format!("{key:?}").contains("private: "));
    }
}
