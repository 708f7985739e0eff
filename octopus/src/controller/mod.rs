//! The running controllers: `octopus hub` and `octopus member`, and what they share.
//!
//! - [`hub`]: approves members' certificates, decides every Peer's slice and `Valid`
//!   condition, cleans up after a member whose Peer is deleted, publishes the hub's own Peer.
//! - [`member`]: joins once with a bootstrap token, keeps and renews its credential, publishes
//!   its Peer, hands the slice the hub assigned to `nauti-ovnmaster` and works out the
//!   WireGuard plan from the valid Peers.
//! - [`leadership`]: the Lease the replicas of either elect their leader on.
//! - [`active`]: the leader's pod label the gateway Service selects.
//! - [`claim`]: the active CNF pod makes itself the next hop of its cluster's gateway router.
//! - [`local`]: the key, credential and slice kept in the cluster octopus runs in.
//! - [`publish`]: a cluster's own Peer on the hub.
//! - [`metrics`]: `/metrics` and `/readyz`.
//! - [`status`]: each peer's tunnel, as metrics and (hub) in its Peer's status.
//! - [`services`]: multi-cluster services in a member: [`exports`] publishes this cluster's
//!   ServiceExports on the hub, [`imports`] keeps every cluster's exports here.

pub mod active;
pub mod claim;
pub mod exports;
pub mod hub;
pub mod imports;
pub mod leadership;
pub mod local;
pub mod member;
pub mod metrics;
pub mod probe;
pub mod publish;
pub mod services;
pub mod status;

use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use futures::StreamExt as _;
use kube::api::Api;
use kube::config::{KubeConfigOptions, Kubeconfig};
use kube::runtime::{WatchStreamExt as _, watcher};
use nauti_api::Peer;
use nauti_api::daemon::AbortOnDrop;
use tokio::sync::Notify;
use tokio_util::sync::CancellationToken;

/// How often every Peer is looked at again even without a watch event.
pub const RESYNC: Duration = Duration::from_secs(30);

/// A client of the cluster in `kubeconfig`, or of the one octopus runs in.
pub async fn connect(kubeconfig: Option<&Path>) -> anyhow::Result<kube::Client> {
    use anyhow::Context as _;
    let config = match kubeconfig {
        Some(path) => {
            let file = Kubeconfig::read_from(path)
                .with_context(|| format!("read kubeconfig {}", path.display()))?;
            kube::Config::from_custom_kubeconfig(file, &KubeConfigOptions::default())
                .await
                .with_context(|| format!("load kubeconfig {}", path.display()))?
        }
        None => kube::Config::infer()
            .await
            .context("no kubeconfig given and no in-cluster service account")?,
    };
    kube::Client::try_from(config).context("build the Kubernetes client")
}

/// Watches the Peers of `api` and wakes `notify` on every change, until dropped.
pub fn watch_peers(api: Api<Peer>, notify: Arc<Notify>) -> AbortOnDrop {
    AbortOnDrop(tokio::spawn(async move {
        let mut events = watcher(api, watcher::Config::default())
            .default_backoff()
            .boxed();
        while let Some(event) = events.next().await {
            match event {
                Ok(_) => notify.notify_one(),
                Err(error) => tracing::warn!(%error, "Peer watch failed; retrying"),
            }
        }
    }))
}

/// Waits for a change, the resync period or shutdown; false on shutdown.
pub async fn next_pass(notify: &Notify, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = notify.notified() => {
            // Let a burst of events settle into one pass.
            tokio::time::sleep(Duration::from_millis(100)).await;
            true
        }
        () = tokio::time::sleep(RESYNC) => true,
        () = shutdown.cancelled() => false,
    }
}

/// Sleeps `delay` unless shutdown comes first; false on shutdown.
pub async fn pause(delay: Duration, shutdown: &CancellationToken) -> bool {
    tokio::select! {
        () = tokio::time::sleep(delay) => true,
        () = shutdown.cancelled() => false,
    }
}
