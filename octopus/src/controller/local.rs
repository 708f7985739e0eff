//! What octopus keeps in its own cluster: the WireGuard private key (a Secret created once,
//! then read at every start, so the public key other clusters know stays the same; watched
//! while running, so a new key written into it, [`rotate_wireguard_key`], reaches the running
//! tunnel: [`decide_key_change`]), the
//! member's credential on the hub (a Secret), and the cluster's slice for `nauti-ovnmaster`
//! (the ConfigMap [`CLUSTER_CONFIGMAP`], key [`CLUSTER_SUBNET_KEY`]).
//!
//! The slice reaches `nauti-ovnmaster` without any code of its own: its Deployment sets
//! `NAUTI_CLUSTER_SUBNET` (the environment twin of `--cluster-subnet`) from that ConfigMap
//! key with a `configMapKeyRef`. Until the hub has assigned a slice the ConfigMap does not
//! exist and the kubelet holds the container back (`CreateContainerConfigError`), so
//! `nauti-ovnmaster` never starts without one.

use std::collections::BTreeMap;
use std::sync::Arc;

use futures::StreamExt as _;
use kube::runtime::{WatchStreamExt as _, watcher};
use nauti_api::daemon::AbortOnDrop;
use tokio::sync::{Notify, watch};

use boringtun::x25519::{PublicKey as XPublicKey, StaticSecret};
use ipnet::IpNet;
use k8s_openapi::ByteString;
use k8s_openapi::api::core::v1::{ConfigMap, Secret};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, DeleteParams, PostParams};
use nauti_api::core::wgkey::{encode_wireguard_key, parse_wireguard_key};
use nauti_api::daemon::owner::{Owner, adopt};

use crate::core::PublicKey;
use crate::gateway::Gateway;
use crate::join::{Credential, CredentialError};
use crate::wg::WireGuard;

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
    #[error(
        "no Secret {namespace}/{name}: octopus creates it at its first start (is it installed here? is --namespace right?)"
    )]
    NoKey { namespace: String, name: String },
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
#[derive(Clone, PartialEq, Eq)]
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
    /// The key pair of `private`.
    pub fn from_private(private: [u8; 32]) -> Self {
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

/// The private key in a key Secret; `None` when its field is missing or is not a key.
pub fn private_key_of(secret: &Secret) -> Option<[u8; 32]> {
    let text = secret.data.as_ref()?.get(PRIVATE_KEY_FIELD)?;
    parse_wireguard_key(std::str::from_utf8(&text.0).ok()?.trim()).ok()
}

/// A new private key from the operating system's CSPRNG.
pub fn generate_private_key() -> Result<[u8; 32], getrandom::Error> {
    let mut private = [0u8; 32];
    getrandom::fill(&mut private)?;
    Ok(private)
}

/// The key Secret's data for `private`.
fn key_data(private: &[u8; 32]) -> BTreeMap<String, ByteString> {
    BTreeMap::from([(
        PRIVATE_KEY_FIELD.to_owned(),
        ByteString(encode_wireguard_key(private).into_bytes()),
    )])
}

/// Reads the key from Secret `namespace/name`, creating it with a new random key when absent
/// (if two starts race, the one that created it wins and the other reads it back).
pub async fn ensure_wireguard_key(
    client: kube::Client,
    namespace: &str,
    name: &str,
    owner: Option<&Owner>,
) -> Result<WireguardKey, LocalError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    for _ in 0..2 {
        if let Some(secret) =
            api.get_opt(name)
                .await
                .map_err(api_error("read Secret", namespace, name))?
        {
            let private = private_key_of(&secret).ok_or_else(|| LocalError::BadKey {
                namespace: namespace.to_owned(),
                name: name.to_owned(),
            })?;
            return Ok(WireguardKey::from_private(private));
        }
        let private = generate_private_key().map_err(|e| LocalError::Random(e.to_string()))?;
        let mut secret = Secret {
            metadata: ObjectMeta {
                name: Some(name.to_owned()),
                namespace: Some(namespace.to_owned()),
                ..Default::default()
            },
            type_: Some("Opaque".to_owned()),
            data: Some(key_data(&private)),
            ..Default::default()
        };
        adopt(owner, &mut secret.metadata);
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

/// A key rotation as written: the key the Secret held and the one it holds now.
#[derive(Debug, Clone)]
pub struct Rotation {
    /// The key before (`None` when the Secret held no valid key).
    pub old: Option<WireguardKey>,
    /// The key written.
    pub new: WireguardKey,
}

/// Writes a fresh random key into the existing key Secret `namespace/name` (what
/// `nautictl rotate-keys` does). The running octopus watches that Secret and switches its
/// tunnel to the new key in place. The Secret must exist: octopus creates it at its first start,
/// and a missing one means octopus is not installed there (or the name is wrong). The write is
/// conditional on the version read, so two rotations at once cannot both report success.
pub async fn rotate_wireguard_key(
    client: kube::Client,
    namespace: &str,
    name: &str,
) -> Result<Rotation, LocalError> {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let mut secret = api
        .get_opt(name)
        .await
        .map_err(api_error("read Secret", namespace, name))?
        .ok_or_else(|| LocalError::NoKey {
            namespace: namespace.to_owned(),
            name: name.to_owned(),
        })?;
    let old = private_key_of(&secret).map(WireguardKey::from_private);
    let new = WireguardKey::from_private(
        generate_private_key().map_err(|e| LocalError::Random(e.to_string()))?,
    );
    secret
        .data
        .get_or_insert_with(BTreeMap::new)
        .extend(key_data(&new.private));
    // Any stringData would override data on write.
    secret.string_data = None;
    api.replace(name, &PostParams::default(), &secret)
        .await
        .map_err(api_error("write Secret", namespace, name))?;
    tracing::info!(secret = name, old = ?old.as_ref().map(|k| k.public), new = %new.public, "WireGuard key rotated");
    Ok(Rotation { old, new })
}

/// What a running gateway does when its key Secret is seen again.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KeyChange {
    /// The Secret holds the key the device runs with.
    Keep,
    /// The Secret holds another key: switch the device to it and publish its public key.
    Switch(WireguardKey),
    /// The Secret is gone: keep running with the current key (a restart creates a new one).
    Missing,
    /// The Secret's field is not a key: keep running with the current key.
    Invalid,
}

/// Compares the key Secret as last seen (`None`: deleted) with the key the device runs with.
pub fn decide_key_change(running: &WireguardKey, stored: Option<&Secret>) -> KeyChange {
    let Some(secret) = stored else {
        return KeyChange::Missing;
    };
    match private_key_of(secret) {
        None => KeyChange::Invalid,
        Some(private) if private == running.private => KeyChange::Keep,
        Some(private) => KeyChange::Switch(WireguardKey::from_private(private)),
    }
}

/// The key Secret as a watch keeps it: `None` until first listed, then `Some(None)` while it
/// does not exist and `Some(Some(secret))` while it does.
pub type KeySecretView = watch::Receiver<Option<Option<Secret>>>;

/// Watches Secret `namespace/name` (a watch limited to that one name) and wakes `notify` on
/// every change, until the returned guard is dropped.
pub fn watch_key_secret(
    client: kube::Client,
    namespace: &str,
    name: &str,
    notify: Arc<Notify>,
) -> (AbortOnDrop, KeySecretView) {
    let api: Api<Secret> = Api::namespaced(client, namespace);
    let config = watcher::Config::default().fields(&format!("metadata.name={name}"));
    let (sender, view) = watch::channel(None);
    let task = tokio::spawn(async move {
        let mut events = watcher(api, config).default_backoff().boxed();
        // During a re-list: whether the Secret was among the objects listed.
        let mut listed = false;
        while let Some(event) = events.next().await {
            let seen = match event {
                Ok(watcher::Event::Init) => {
                    listed = false;
                    continue;
                }
                Ok(watcher::Event::InitApply(secret)) => {
                    listed = true;
                    Some(secret)
                }
                Ok(watcher::Event::InitDone) if listed => continue,
                Ok(watcher::Event::InitDone | watcher::Event::Delete(_)) => None,
                Ok(watcher::Event::Apply(secret)) => Some(secret),
                Err(error) => {
                    tracing::warn!(%error, "watch of the WireGuard key Secret failed; retrying");
                    continue;
                }
            };
            sender.send_replace(Some(seen));
            notify.notify_one();
        }
    });
    (AbortOnDrop(task), view)
}

/// Brings the running key to what the key Secret holds (as `view` last saw it): switches the
/// device, if there is one, to the new key in place and updates `key`, whose public key the
/// next publish then carries. True when it switched. A missing or unreadable Secret keeps the
/// running key (logged once per change of the Secret); a device that refuses the key leaves
/// `key` as it was, and the next pass tries again.
pub fn follow_key_secret<W: WireGuard>(
    view: &mut KeySecretView,
    key: &mut WireguardKey,
    gateway: Option<&Gateway<W>>,
) -> bool {
    let changed = view.has_changed().unwrap_or(false);
    let Some(stored) = view.borrow_and_update().clone() else {
        return false; // not listed yet
    };
    match decide_key_change(key, stored.as_ref()) {
        KeyChange::Keep => false,
        KeyChange::Missing => {
            if changed {
                tracing::warn!("the WireGuard key Secret is gone; running on with the current key");
            }
            false
        }
        KeyChange::Invalid => {
            if changed {
                tracing::warn!(
                    field = PRIVATE_KEY_FIELD,
                    "the WireGuard key Secret holds no valid key; running on with the current key"
                );
            }
            false
        }
        KeyChange::Switch(new) => {
            if let Some(gateway) = gateway
                && let Err(error) = gateway.set_private_key(&new.private)
            {
                tracing::warn!(%error, "cannot switch to the rotated WireGuard key; retried");
                return false;
            }
            tracing::info!(old = %key.public, new = %new.public, "switched to the rotated WireGuard key");
            *key = new;
            true
        }
    }
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

/// Writes `slice` into the cluster ConfigMap (created with `owner`'s reference); returns
/// whether it changed.
pub async fn write_cluster_subnet(
    client: kube::Client,
    namespace: &str,
    slice: IpNet,
    owner: Option<&Owner>,
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
            let mut map = ConfigMap {
                metadata: ObjectMeta {
                    name: Some(name.to_owned()),
                    namespace: Some(namespace.to_owned()),
                    ..Default::default()
                },
                data: Some(BTreeMap::from([(CLUSTER_SUBNET_KEY.to_owned(), value)])),
                ..Default::default()
            };
            adopt(owner, &mut map.metadata);
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

    fn key_secret(text: &str) -> Secret {
        Secret {
            data: Some(BTreeMap::from([(
                PRIVATE_KEY_FIELD.to_owned(),
                ByteString(text.as_bytes().to_vec()),
            )])),
            ..Default::default()
        }
    }

    #[test]
    fn a_new_key_in_the_secret_switches_the_device_and_anything_else_keeps_it() {
        let running = WireguardKey::from_private([1; 32]);
        let same = key_secret(&format!("{}\n", encode_wireguard_key(&[1; 32])));
        assert_eq!(decide_key_change(&running, Some(&same)), KeyChange::Keep);
        let rotated = key_secret(&encode_wireguard_key(&[2; 32]));
        let KeyChange::Switch(new) = decide_key_change(&running, Some(&rotated)) else {
            panic!("a new key is not switched to");
        };
        assert_eq!(new, WireguardKey::from_private([2; 32]));
        assert_ne!(new.public, running.public);
        assert_eq!(decide_key_change(&running, None), KeyChange::Missing);
        assert_eq!(
            decide_key_change(&running, Some(&key_secret("not a key"))),
            KeyChange::Invalid
        );
        assert_eq!(
            decide_key_change(&running, Some(&Secret::default())),
            KeyChange::Invalid
        );
    }

    #[test]
    fn generated_keys_differ_and_round_trip_through_the_secret() {
        let (a, b) = (
            generate_private_key().unwrap(),
            generate_private_key().unwrap(),
        );
        assert_ne!(a, b);
        let secret = Secret {
            data: Some(key_data(&a)),
            ..Default::default()
        };
        assert_eq!(private_key_of(&secret), Some(a));
    }

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
