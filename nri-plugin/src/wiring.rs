//! Builds the pod-plumbing handler from its settings: the API server client, the OVSDB
//! connections, the Node watch, the annotation writer and the event sink. The command line and a
//! plugin containerd launches both go through here.

use std::sync::Arc;
use std::time::Duration;

use nauti_ovn::{Client, ClientConfig, Endpoint, Northbound, OpenVswitch, TlsFiles};

use crate::metrics::Metrics;
use crate::plumbing::annotator::{Annotator, KubePatcher};
use crate::plumbing::backends::Backends;
use crate::plumbing::events::KubeEvents;
use crate::plumbing::node_block::watch_node_block;
use crate::plumbing::{NautiHandler, Parts, PlumbingSettings};

/// The first pause before a failed annotation patch is tried again.
const ANNOTATION_FIRST_RETRY: Duration = Duration::from_millis(100);

/// Why the plumbing could not be set up.
#[derive(Debug, thiserror::Error)]
pub enum WiringError {
    /// The kubeconfig (or in-cluster configuration) is unusable.
    #[error("Kubernetes client configuration: {0}")]
    KubeConfig(String),
    /// An OVSDB endpoint does not parse.
    #[error("bad endpoint `{0}`: expected unix:<path>, tcp:<host>:<port> or ssl:<host>:<port>")]
    Endpoint(String),
    /// An OVSDB server cannot be reached.
    #[error("OVSDB {endpoint}")]
    Ovsdb {
        endpoint: String,
        #[source]
        source: Box<nauti_ovn::Error>,
    },
}

/// The handler for `settings`, connected to the API server, OVN and OVS. It does not need the
/// node's block yet: it follows the Node and serves pods once the block is there.
pub async fn plumbing_handler(
    settings: PlumbingSettings,
    metrics: Arc<Metrics>,
) -> Result<NautiHandler, WiringError> {
    let kube = kube_client(settings.kubeconfig.as_deref()).await?;
    let tls = settings.ovsdb_tls.as_ref();
    let nb = Northbound::new(ovsdb(&settings.ovn_nb, tls).await?);
    let ovs = OpenVswitch::new(ovsdb(&settings.ovs_db, tls).await?);
    let blocks = watch_node_block(kube.clone(), &settings.node_name);
    let annotator = Annotator::start(
        Arc::new(KubePatcher(kube.clone())),
        ANNOTATION_FIRST_RETRY,
        metrics.clone(),
    );
    let events = Arc::new(KubeEvents::new(kube, &settings.node_name));
    Ok(NautiHandler::start(Parts {
        settings,
        backends: Backends::real(nb, ovs),
        blocks,
        annotator,
        events,
        metrics,
    }))
}

async fn ovsdb(remote: &str, tls: Option<&TlsFiles>) -> Result<Client, WiringError> {
    let endpoint =
        Endpoint::parse(remote).ok_or_else(|| WiringError::Endpoint(remote.to_owned()))?;
    let mut config = ClientConfig::new(endpoint);
    // Used only if the remote is `ssl:`.
    config.tls = tls.cloned();
    Client::connect(config)
        .await
        .map_err(|source| WiringError::Ovsdb {
            endpoint: remote.to_owned(),
            source: Box::new(source),
        })
}

/// A client from the given kubeconfig, else from `KUBECONFIG` or the in-cluster service account.
pub async fn kube_client(
    kubeconfig: Option<&std::path::Path>,
) -> Result<kube::Client, WiringError> {
    let bad = |e: &dyn std::fmt::Display| WiringError::KubeConfig(e.to_string());
    let config = match kubeconfig {
        Some(path) => {
            let file = kube::config::Kubeconfig::read_from(path).map_err(|e| bad(&e))?;
            kube::Config::from_custom_kubeconfig(file, &Default::default())
                .await
                .map_err(|e| bad(&e))?
        }
        None => kube::Config::infer().await.map_err(|e| bad(&e))?,
    };
    kube::Client::try_from(config).map_err(|e| bad(&e))
}
