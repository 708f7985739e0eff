//! `nautictl rotate-keys`: the adapters around [`nautictl::rotate`]. Writes a fresh key into the
//! cluster's WireGuard key Secret (through octopus's own [`rotate_wireguard_key`], so the Secret
//! is exactly what octopus reads) and, with `--wait`, watches the hub's Peers until the cluster's
//! Peer carries the new public key.

use std::time::{Duration, Instant};

use anyhow::{Context, bail};
use kube::api::{Api, ListParams};
use nauti_api::Peer;
use nauti_api::peer::DEFAULT_PEER_NAMESPACE;
use nauti_octopus::controller::local::{
    CREDENTIAL_SECRET, WIREGUARD_KEY_SECRET, load_credential, rotate_wireguard_key,
};
use nautictl::rotate::{PeerKey, peer_key, render_rotation};

use crate::{Target, emit};

/// How often `--wait` looks at the hub's Peers.
const POLL: Duration = Duration::from_millis(500);

/// The flags of `rotate-keys`.
#[derive(Debug, clap::Args)]
pub struct RotateArgs {
    /// The cluster's ID (its Peer's name on the hub) that `--wait` waits for; without it, the
    /// Peer that carried the old key.
    #[arg(long, value_name = "X")]
    pub cluster: Option<String>,
    /// Namespace of octopus in this cluster (its key and credential Secrets).
    #[arg(long, default_value = "nauti-system")]
    pub namespace: String,
    /// The Secret holding the WireGuard private key.
    #[arg(long, default_value = WIREGUARD_KEY_SECRET)]
    pub secret: String,
    /// Wait until the hub's Peer for this cluster shows the new public key (read through the
    /// member's credential on the hub; on the hub itself, in its own cluster).
    #[arg(long)]
    pub wait: bool,
    /// How long `--wait` waits (e.g. `2m`, `30s`).
    #[arg(long, default_value = "2m")]
    pub timeout: jiff::SignedDuration,
    /// Namespace of the Peers on the hub.
    #[arg(long, default_value = DEFAULT_PEER_NAMESPACE)]
    pub hub_namespace: String,
}

pub async fn rotate_keys(target: &Target, args: &RotateArgs) -> anyhow::Result<()> {
    if !args.timeout.is_positive() {
        bail!("--timeout {:#} must be positive", args.timeout);
    }
    let timeout = Duration::try_from(args.timeout)
        .with_context(|| format!("--timeout {:#} is out of range", args.timeout))?;
    let secret = format!("{}/{}", args.namespace, args.secret);
    // The hub is found before anything is written: a --wait that cannot work fails untouched.
    let hub = if args.wait {
        Some(hub_peers(target, args).await?)
    } else {
        None
    };
    let rotation = rotate_wireguard_key(target.client.clone(), &args.namespace, &args.secret)
        .await
        .with_context(|| target.unreachable(&format!("rotate the key in Secret {secret}")))?;
    let old = rotation.old.as_ref().map(|k| k.public);
    emit(&render_rotation(
        &secret,
        old.as_ref(),
        &rotation.new.public,
    ))?;
    let Some(peers) = hub else {
        return Ok(());
    };
    eprintln!("waiting up to {timeout:?} for the hub's Peer to carry the new key...");
    let start = Instant::now();
    loop {
        let list = peers
            .list(&ListParams::default())
            .await
            .context("list the Peers on the hub")?
            .items;
        let state = peer_key(
            &list,
            args.cluster.as_deref(),
            old.as_ref(),
            &rotation.new.public,
        );
        if let PeerKey::Rotated { name } = &state {
            return emit(&format!(
                "the hub's Peer {name} carries the new key (after {:.1} s)\n",
                start.elapsed().as_secs_f64()
            ));
        }
        if start.elapsed() >= timeout {
            match state {
                PeerKey::Waiting { name, shows } => bail!(
                    "the hub's Peer {name} still carries {shows} after {timeout:?}: is octopus running in this cluster, and does it see Secret {secret}?"
                ),
                _ => bail!(
                    "no Peer on the hub ({}) {} after {timeout:?}",
                    args.hub_namespace,
                    args.cluster.as_ref().map_or_else(
                        || "carries the old or the new key (name the cluster with --cluster)"
                            .to_owned(),
                        |c| format!("is named {c}")
                    )
                ),
            }
        }
        tokio::time::sleep(POLL).await;
    }
}

/// The hub's Peers: through the member's credential when this cluster has one, otherwise this
/// cluster is the hub.
async fn hub_peers(target: &Target, args: &RotateArgs) -> anyhow::Result<Api<Peer>> {
    let credential = load_credential(target.client.clone(), &args.namespace, CREDENTIAL_SECRET)
        .await
        .with_context(|| target.unreachable("read the member's credential"))?;
    let client = match credential {
        Some(credential) => credential.client().await.with_context(|| {
            format!(
                "connect to the hub {} with the credential in Secret {}/{CREDENTIAL_SECRET}",
                credential.server, args.namespace
            )
        })?,
        None => target.client.clone(),
    };
    Ok(Api::namespaced(client, &args.hub_namespace))
}
