//! The Lease around the leader's work, the same for `octopus hub` and `octopus member`:
//! replicas elect a leader; a standby only waits, and a leader that loses the lease stops (its
//! pod restarts as a standby), so never two replicas act at once.

use std::future::Future;
use std::sync::Arc;

use nauti_api::daemon::election::{self, LeaseSettings};
use nauti_api::daemon::owner::Owner;
use tokio_util::sync::CancellationToken;

use super::active::{self, ActivePod};
use super::metrics::Metrics;

/// What the election needs from the replica.
pub struct Replica<'a> {
    /// The cluster the Lease is in.
    pub client: kube::Client,
    /// The Lease and its timing.
    pub lease: &'a LeaseSettings,
    /// The Deployment the Lease belongs to, if known.
    pub owner: Option<&'a Owner>,
    /// `leader` gauge and readiness.
    pub metrics: &'a Arc<Metrics>,
    /// This replica's pod, labelled while it leads.
    pub active: Option<&'a ActivePod>,
}

/// Waits for the Lease (running `standby` meanwhile, which only reports and never ends by
/// itself), then runs `lead` while this replica holds it, readiness saying `leading_reason`
/// until the work says more. Ends with `lead`'s outcome, with `Ok` on `shutdown`, or with an
/// error once the lease is lost. On the way out the pod steps down (if it led) and the lease
/// task releases the lease.
pub async fn lead_on_lease(
    replica: Replica<'_>,
    standby: impl Future<Output = ()>,
    leading_reason: &str,
    shutdown: &CancellationToken,
    lead: impl Future<Output = anyhow::Result<()>>,
) -> anyhow::Result<()> {
    let leader_metric = replica.metrics.clone();
    let (mut leader, lease_task) = election::spawn(
        replica.client,
        replica.lease.clone().owned_by(replica.owner.cloned()),
        Box::new(move |leading| {
            leader_metric.leader.set(i64::from(leading));
        }),
        shutdown.clone(),
    );
    let lease = &replica.lease.name;
    tracing::info!(identity = %replica.lease.identity, %lease, "waiting for the lease");
    let led = tokio::select! {
        led = leader.wait_for(|leading| *leading) => led.is_ok(),
        () = standby => false,
        () = shutdown.cancelled() => false,
    };
    let outcome = if led {
        replica.metrics.set_not_ready(leading_reason);
        let lost = async {
            // Only a change to false ends this; an ended lease task counts as lost.
            let _ = leader.wait_for(|leading| !*leading).await;
        };
        tokio::select! {
            outcome = lead => outcome,
            // On shutdown the lease task steps down first, then releases: not a loss.
            () = lost => if shutdown.is_cancelled() {
                Ok(())
            } else {
                Err(anyhow::anyhow!(
                    "lost the lease {lease}: stopping so the new leader alone acts"
                ))
            },
        }
    } else {
        Ok(())
    };
    shutdown.cancel();
    if led && let Some(active) = replica.active {
        active::step_down(active).await;
    }
    // The lease task releases the lease (bounded) once it sees the cancellation.
    if let Err(error) = lease_task.await {
        tracing::warn!(%error, "the lease task ended abnormally");
    }
    outcome
}
