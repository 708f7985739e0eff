//! A gateway fed from a file of Peers instead of the hub's API (`octopus gateway`): the same
//! review, topology and apply as the controllers, for static setups and for testing the data
//! path without Kubernetes.
//!
//! The file holds a JSON array of `Peer` objects as the hub stores them (slices filled in). It
//! is read again whenever its content changes (write it to a temporary name and rename it over
//! the old one) and applied again every [`RESYNC`], which repairs drift. A file that cannot be
//! read or parsed is logged and the last plan stays in force: the tunnel never drops for it.

use std::collections::BTreeSet;
use std::path::PathBuf;
use std::time::Duration;

use nauti_api::Peer;
use tokio_util::sync::CancellationToken;

use super::{Gateway, GatewayConfig, GatewayError, log_applied, resolve_endpoints, usable_peers};
use crate::core::{LocalRole, SlicePolicy, TopologyPlan, plan_topology, review_peers};

/// How often the file is looked at.
const POLL: Duration = Duration::from_millis(250);
/// How often the plan is applied again without a change to the file.
pub const RESYNC: Duration = Duration::from_secs(10);

/// What `octopus gateway` runs with.
#[derive(Clone)]
pub struct FileGatewayConfig {
    /// The interface, its MTU and the extra routes.
    pub gateway: GatewayConfig,
    /// The device's private key.
    pub private_key: [u8; 32],
    /// Its UDP port.
    pub listen_port: u16,
    /// Who this gateway is.
    pub local: LocalRole,
    /// The JSON array of Peers.
    pub peers_file: PathBuf,
    /// The slice policy Peers are judged by.
    pub policy: SlicePolicy,
    /// The clusters that joined (as the hub knows them); `None` trusts every Peer's cluster.
    pub joined: Option<BTreeSet<String>>,
}

/// Why a pass over the file did nothing.
#[derive(Debug, thiserror::Error)]
pub enum FileError {
    /// The file cannot be read.
    #[error("read Peers file {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: std::io::Error,
    },
    /// The file is not a JSON array of Peers.
    #[error("Peers file {path} is not a JSON array of Peers: {source}")]
    Parse {
        /// The file.
        path: PathBuf,
        /// The error.
        #[source]
        source: serde_json::Error,
    },
    /// Applying the plan failed.
    #[error(transparent)]
    Gateway(#[from] GatewayError),
}

/// Starts the userspace device and keeps it at the plan the file gives, until `shutdown`.
pub async fn run(config: FileGatewayConfig, shutdown: CancellationToken) -> Result<(), FileError> {
    let gateway = Gateway::start_userspace(
        config.gateway.clone(),
        config.private_key,
        config.listen_port,
    )?;
    tracing::info!(
        ifname = gateway.ifname(),
        public_key = %gateway.device().public_key(),
        peers_file = %config.peers_file.display(),
        "gateway running from a Peers file"
    );
    let mut last_text: Option<Vec<u8>> = None;
    let mut last_plan: Option<TopologyPlan> = None;
    let mut since_apply = Duration::ZERO;
    loop {
        match std::fs::read(&config.peers_file) {
            Ok(text) if last_text.as_ref() != Some(&text) || since_apply >= RESYNC => {
                since_apply = Duration::ZERO;
                match pass(&gateway, &config, &text, &mut last_plan).await {
                    Ok(()) => last_text = Some(text),
                    Err(error) => tracing::warn!(%error, "gateway pass failed; retried"),
                }
            }
            Ok(_) => {}
            Err(source) => {
                let error = FileError::Read {
                    path: config.peers_file.clone(),
                    source,
                };
                if last_text.take().is_some() || since_apply >= RESYNC {
                    tracing::warn!(%error, "keeping the last plan");
                    since_apply = Duration::ZERO;
                }
            }
        }
        tokio::select! {
            () = tokio::time::sleep(POLL) => since_apply += POLL,
            () = shutdown.cancelled() => break,
        }
    }
    let _ = std::fs::remove_file(crate::wg::userspace::uapi::socket_path(gateway.ifname()));
    Ok(())
}

async fn pass(
    gateway: &Gateway<crate::wg::userspace::Device>,
    config: &FileGatewayConfig,
    text: &[u8],
    last_plan: &mut Option<TopologyPlan>,
) -> Result<(), FileError> {
    let peers: Vec<Peer> = serde_json::from_slice(text).map_err(|source| FileError::Parse {
        path: config.peers_file.clone(),
        source,
    })?;
    let usable = usable_peers(review_peers(&peers, &config.policy, config.joined.as_ref()));
    let resolved = resolve_endpoints(&usable).await;
    let local = local_role(&config.local, &peers);
    let plan = plan_topology(&local, &usable, |name| resolved.get(name).copied());
    if last_plan.as_ref() != Some(&plan) {
        log_plan(&plan);
    }
    let applied = gateway.apply(&plan).await?;
    log_applied(gateway.ifname(), &applied);
    *last_plan = Some(plan);
    Ok(())
}

/// This gateway's role: whether it is public is what its own Peer in the file says (so marking
/// a cluster public is one edit of the file), else what the flags say.
pub fn local_role(flags: &LocalRole, peers: &[Peer]) -> LocalRole {
    let own = peers.iter().find(|p| p.spec.cluster_id == flags.cluster_id);
    LocalRole {
        is_public: own.map_or(flags.is_public, |p| p.spec.is_public || flags.is_hub),
        ..flags.clone()
    }
}

/// Logs a plan that differs from the last one.
pub fn log_plan(plan: &TopologyPlan) {
    let peers_wanted: Vec<String> = plan
        .peers
        .iter()
        .map(|p| format!("{} -> {:?}", p.public_key, p.allowed_ips))
        .collect();
    tracing::info!(
        peers = ?peers_wanted,
        routes = ?plan.routes,
        missing_hub = plan.missing_hub,
        unresolved = ?plan.unresolved,
        "WireGuard plan changed"
    );
}

#[cfg(test)]
mod tests {
    use nauti_api::peer::PeerSpec;

    use super::*;

    fn peer(cluster: &str, is_public: bool) -> Peer {
        Peer::new(
            cluster,
            PeerSpec {
                cluster_id: cluster.to_owned(),
                cluster_cidrs: vec!["10.113.0.0/16".parse().unwrap()],
                endpoint: Some("198.19.1.10".to_owned()),
                port: 51820,
                public_key: "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=".to_owned(),
                is_hub: false,
                is_public,
            },
        )
    }

    #[test]
    fn the_own_peer_in_the_file_says_whether_this_gateway_is_public() {
        let flags = LocalRole {
            cluster_id: "a".to_owned(),
            is_hub: false,
            is_public: false,
        };
        assert!(!local_role(&flags, &[peer("a", false), peer("b", true)]).is_public);
        assert!(local_role(&flags, &[peer("a", true)]).is_public);
        assert!(
            !local_role(&flags, &[peer("b", true)]).is_public,
            "no own Peer: the flags"
        );
        let hub = LocalRole {
            is_hub: true,
            is_public: true,
            ..flags
        };
        assert!(
            local_role(&hub, &[peer("a", false)]).is_public,
            "a hub is public"
        );
    }
}
