//! Wiring the cluster's CoreDNS to crossdns: a marked server block in the Corefile of the
//! `kube-system/coredns` ConfigMap forwards `hyperos.local` and `clusterset.local` to crossdns's
//! Service (`crossdns wire-coredns`), and comes out again (`crossdns unwire-coredns`). The edit
//! itself is the pure [`corefile`] module; this is the read-modify-write against the API
//! server, guarded by the ConfigMap's resourceVersion so a concurrent edit is never lost.

pub mod corefile;

use std::net::SocketAddr;

use k8s_openapi::api::core::v1::ConfigMap;
use kube::api::{Api, PostParams};
use tracing::{info, warn};

pub use self::corefile::CorefileError;

/// How often a write that lost a race with another writer is tried again, each time on a fresh
/// read.
const CONFLICT_ATTEMPTS: usize = 5;

/// Which ConfigMap key holds the Corefile.
#[derive(Clone, Debug)]
pub struct CorefileLocation {
    /// Namespace of the ConfigMap.
    pub namespace: String,
    /// Its name.
    pub name: String,
    /// The data key holding the Corefile.
    pub key: String,
}

impl std::fmt::Display for CorefileLocation {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "ConfigMap {}/{} key {}",
            self.namespace, self.name, self.key
        )
    }
}

/// What an edit did.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Outcome {
    /// The ConfigMap was written.
    Changed,
    /// It already was as wanted.
    Unchanged,
}

/// Why the Corefile was not edited.
#[derive(Debug, thiserror::Error)]
pub enum WireError {
    /// The API server refused or failed the read or the write.
    #[error("cannot {verb} {location}")]
    Api {
        /// `read` or `update`.
        verb: &'static str,
        /// Where.
        location: String,
        /// Why.
        #[source]
        source: kube::Error,
    },
    /// The ConfigMap has no such key.
    #[error("{location} does not exist")]
    NoCorefile {
        /// Where we looked.
        location: String,
    },
    /// The Corefile is left alone: it does not parse, or it serves our zones itself.
    #[error("{location} is left alone: {source}")]
    Corefile {
        /// Where.
        location: String,
        /// What is wrong with it.
        #[source]
        source: CorefileError,
    },
    /// Other writers kept changing the ConfigMap between our read and our write.
    #[error("{location} kept changing under us ({CONFLICT_ATTEMPTS} attempts)")]
    Contended {
        /// Where.
        location: String,
    },
}

/// Adds (or refreshes) the block forwarding both zones to `forward_to`.
pub async fn wire(
    client: &kube::Client,
    location: &CorefileLocation,
    forward_to: SocketAddr,
) -> Result<Outcome, WireError> {
    let outcome = edit(client, location, |corefile| {
        corefile::wire(corefile, forward_to)
    })
    .await?;
    info!(%location, %forward_to, ?outcome, "CoreDNS forwards hyperos.local and clusterset.local to crossdns");
    Ok(outcome)
}

/// Removes the block, if there is one.
pub async fn unwire(
    client: &kube::Client,
    location: &CorefileLocation,
) -> Result<Outcome, WireError> {
    let outcome = edit(client, location, corefile::unwire).await?;
    info!(%location, ?outcome, "CoreDNS no longer forwards to crossdns");
    Ok(outcome)
}

async fn edit(
    client: &kube::Client,
    location: &CorefileLocation,
    change: impl Fn(&str) -> Result<Option<String>, CorefileError>,
) -> Result<Outcome, WireError> {
    let api: Api<ConfigMap> = Api::namespaced(client.clone(), &location.namespace);
    let api_error = |verb, source| WireError::Api {
        verb,
        location: location.to_string(),
        source,
    };
    for _ in 0..CONFLICT_ATTEMPTS {
        let mut config_map = api
            .get(&location.name)
            .await
            .map_err(|e| api_error("read", e))?;
        let corefile = config_map
            .data
            .as_ref()
            .and_then(|data| data.get(&location.key))
            .ok_or_else(|| WireError::NoCorefile {
                location: location.to_string(),
            })?;
        let edited = change(corefile).map_err(|source| WireError::Corefile {
            location: location.to_string(),
            source,
        })?;
        let Some(edited) = edited else {
            return Ok(Outcome::Unchanged);
        };
        if let Some(data) = config_map.data.as_mut() {
            data.insert(location.key.clone(), edited);
        }
        // The read's resourceVersion stays in the object: a write over a newer version fails
        // with 409 instead of undoing someone else's edit.
        match api
            .replace(&location.name, &PostParams::default(), &config_map)
            .await
        {
            Ok(_) => return Ok(Outcome::Changed),
            Err(kube::Error::Api(status)) if status.code == 409 => {
                warn!(%location, "the ConfigMap changed since it was read; reading it again");
            }
            Err(error) => return Err(api_error("update", error)),
        }
    }
    Err(WireError::Contended {
        location: location.to_string(),
    })
}
