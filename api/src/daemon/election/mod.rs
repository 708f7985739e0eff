//! Leader election on a `coordination.k8s.io/v1` Lease, published as a `watch::Receiver<bool>`
//! that writers check; nothing else needs to know about leases. Every Nauti controller that runs
//! in several replicas (nauti-ovnmaster, octopus's hub and gateway) elects with it.
//!
//! Every write goes through `replace` with the `resourceVersion` that was read, so two
//! replicas racing for the lease cannot both win: the loser gets `409 Conflict` and follows.
//! Expiry is judged by our own monotonic clock ([`LeaseTracker`]), never by comparing the
//! holder's wall-clock `renewTime` with ours.
//!
//! Caveats: a leader stops acting when it could not renew within the renew deadline (two
//! thirds of the lease duration), before any standby may take over; on shutdown it releases
//! the lease (empty holder) so a standby takes over at its next look rather than after a
//! full lease duration.

use std::time::{Duration, Instant};

use k8s_openapi::api::coordination::v1::{Lease, LeaseSpec};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::MicroTime;
use k8s_openapi::jiff::Timestamp;
use kube::api::{Api, ObjectMeta, PostParams};
use tokio::sync::watch;
use tokio::task::JoinHandle;
use tokio_util::sync::CancellationToken;
use tracing::{Instrument, debug, info, info_span, warn};

mod core;

pub use self::core::{
    LeaseDecision, LeaseRecord, LeaseTracker, LookFailure, keeps_lead, must_step_down,
};

/// How long a release on shutdown may take before we exit anyway.
const RELEASE_TIMEOUT: Duration = Duration::from_secs(3);

/// Which of the [`LeaseSettings`] is wrong (a daemon names its own flag for it).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LeaseSetting {
    /// The lease duration.
    Duration,
    /// The renew interval.
    RenewInterval,
    /// The holder identity.
    Identity,
}

/// Lease settings that cannot work.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid lease {setting:?}: {reason}")]
pub struct LeaseSettingError {
    /// The setting.
    pub setting: LeaseSetting,
    /// Why.
    pub reason: String,
}

/// Leader-election settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LeaseSettings {
    /// Lease name.
    pub name: String,
    /// Lease namespace.
    pub namespace: String,
    /// Our holder identity.
    pub identity: String,
    /// Lease duration (written into the Lease in whole seconds).
    pub duration: Duration,
    /// How often we renew, or look when following.
    pub renew_interval: Duration,
    /// Keep leading while the API server does not answer (see [`keeps_lead`]).
    pub keep_while_unreachable: bool,
    /// Owner of the Lease when this replica creates it (see [`owner`](super::owner)).
    pub owner: Option<super::owner::Owner>,
}

impl LeaseSettings {
    /// Checks that the timings leave room to renew before expiry.
    pub fn new(
        name: &str,
        namespace: &str,
        identity: String,
        duration: Duration,
        renew_interval: Duration,
    ) -> Result<Self, LeaseSettingError> {
        if duration < Duration::from_secs(1) || duration.subsec_nanos() != 0 {
            return Err(LeaseSettingError {
                setting: LeaseSetting::Duration,
                reason: format!("{duration:?}: must be a whole number of seconds, at least 1s"),
            });
        }
        let settings = Self {
            name: name.to_owned(),
            namespace: namespace.to_owned(),
            identity,
            duration,
            renew_interval,
            keep_while_unreachable: false,
            owner: None,
        };
        if renew_interval.is_zero() || renew_interval >= settings.renew_deadline() {
            return Err(LeaseSettingError {
                setting: LeaseSetting::RenewInterval,
                reason: format!(
                    "{renew_interval:?}: must be shorter than two thirds of the lease duration {duration:?}"
                ),
            });
        }
        if identity_is_empty(&settings.identity) {
            return Err(LeaseSettingError {
                setting: LeaseSetting::Identity,
                reason: "must not be empty".into(),
            });
        }
        Ok(settings)
    }

    /// The same, keeping the lead while the API server does not answer: for gateways, whose
    /// data path must outlive an API outage. The price is a possible second leader during a
    /// partition that leaves another replica the API; it steps down once it sees the lease again.
    pub fn keeping_while_unreachable(mut self) -> Self {
        self.keep_while_unreachable = true;
        self
    }

    /// The same, the Lease created with `owner`'s reference.
    pub fn owned_by(mut self, owner: Option<super::owner::Owner>) -> Self {
        self.owner = owner;
        self
    }

    /// How long a leader keeps acting without a successful renewal.
    pub fn renew_deadline(&self) -> Duration {
        self.duration * 2 / 3
    }

    fn duration_secs(&self) -> i32 {
        i32::try_from(self.duration.as_secs()).unwrap_or(i32::MAX)
    }
}

/// A holder identity for this process: `$POD_NAME` (set from the downward API), else
/// `$HOSTNAME`, else the kernel's host name, else `fallback`; followed by a random suffix, so that
/// two incarnations of one pod are told apart.
pub fn default_identity(fallback: &str) -> String {
    use std::hash::BuildHasher as _;
    let host = ["POD_NAME", "HOSTNAME"]
        .iter()
        .find_map(|v| std::env::var(v).ok().filter(|s| !s.trim().is_empty()))
        .or_else(|| {
            std::fs::read_to_string("/proc/sys/kernel/hostname")
                .ok()
                .map(|s| s.trim().to_owned())
                .filter(|s| !s.is_empty())
        })
        .unwrap_or_else(|| fallback.to_owned());
    // `RandomState` is seeded from the OS's randomness per process: enough to tell two
    // incarnations of one pod apart without another dependency.
    let nanos = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_nanos());
    let suffix =
        std::collections::hash_map::RandomState::new().hash_one((nanos, std::process::id()));
    format!("{host}_{:08x}", suffix & 0xffff_ffff)
}

fn identity_is_empty(identity: &str) -> bool {
    identity.trim().is_empty()
}

/// Told whenever we become or stop being the leader (a daemon sets its metric with it).
pub type OnLeadership = Box<dyn Fn(bool) + Send + Sync>;

/// Starts the election task; the receiver says whether we lead right now. On `shutdown` the
/// task releases the lease (if held) and ends.
pub fn spawn(
    client: kube::Client,
    settings: LeaseSettings,
    on_change: OnLeadership,
    shutdown: CancellationToken,
) -> (watch::Receiver<bool>, JoinHandle<()>) {
    let (tx, rx) = watch::channel(false);
    let span = info_span!("lease", lease = %settings.name, identity = %settings.identity);
    // Two looks: a standby that watched the last renewal looks at most one interval late.
    let tracker = LeaseTracker::with_startup_grace(settings.renew_interval * 2);
    let elector = Elector {
        api: Api::namespaced(client, &settings.namespace),
        settings,
        tracker,
        last_renew: None,
        tx,
        on_change,
    };
    let task = tokio::spawn(elector.run(shutdown).instrument(span));
    (rx, task)
}

struct Elector {
    api: Api<Lease>,
    settings: LeaseSettings,
    tracker: LeaseTracker,
    last_renew: Option<Instant>,
    tx: watch::Sender<bool>,
    on_change: OnLeadership,
}

impl Elector {
    async fn run(mut self, shutdown: CancellationToken) {
        loop {
            // A look that hangs is a failed one: the renew deadline is judged after it.
            let look = tokio::time::timeout(self.settings.renew_interval, self.step()).await;
            match look {
                Ok(Ok(true)) => self.last_renew = Some(Instant::now()),
                Ok(Ok(false)) => self.last_renew = None,
                Ok(Err(error)) => self.look_failed(failure_of(&error), &error.to_string()),
                Err(_) => self.look_failed(LookFailure::Unreachable, "no answer in time"),
            }
            let leading = self.last_renew.is_some_and(|at| {
                !must_step_down(at, Instant::now(), self.settings.renew_deadline())
            });
            self.publish(leading);
            tokio::select! {
                () = shutdown.cancelled() => break,
                () = tokio::time::sleep(self.settings.renew_interval) => {}
            }
        }
        if *self.tx.borrow() {
            // Stop acting first, then hand the lease back.
            self.publish(false);
            match tokio::time::timeout(RELEASE_TIMEOUT, self.release()).await {
                Ok(Ok(())) => info!("released the lease"),
                Ok(Err(error)) => warn!(%error, "cannot release the lease; it expires by itself"),
                Err(_) => warn!("releasing the lease timed out; it expires by itself"),
            }
        }
    }

    fn look_failed(&mut self, failure: LookFailure, error: &str) {
        let leading = *self.tx.borrow();
        if keeps_lead(failure, leading, self.settings.keep_while_unreachable) {
            warn!(
                error,
                "the API server does not answer; keeping the lead so the data path goes on"
            );
            self.last_renew = Some(Instant::now());
        } else {
            warn!(error, "cannot read or write the lease; retrying");
        }
    }

    fn publish(&self, leading: bool) {
        let changed = self.tx.send_if_modified(|current| {
            let changed = *current != leading;
            *current = leading;
            changed
        });
        if changed {
            (self.on_change)(leading);
            if leading {
                info!("became the leader");
            } else {
                info!("not the leader");
            }
        }
    }

    /// One look at the lease and the write it calls for; `Ok(true)` when we hold it now.
    async fn step(&mut self) -> Result<bool, kube::Error> {
        let me = self.settings.identity.clone();
        let Some(current) = self.api.get_opt(&self.settings.name).await? else {
            return self.create().await;
        };
        let record = record_of(&current);
        let previous = record.holder.clone().filter(|h| !h.is_empty());
        match self
            .tracker
            .observe(&me, record, Instant::now(), self.settings.duration)
        {
            LeaseDecision::Follow { holder, expires_in } => {
                debug!(%holder, ?expires_in, "following");
                Ok(false)
            }
            LeaseDecision::Renew => self.write(current, false).await,
            LeaseDecision::Acquire => {
                info!(previous = ?previous, "taking the lease");
                let transition = previous.is_some_and(|p| p != me);
                self.write(current, transition).await
            }
        }
    }

    async fn create(&mut self) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let mut metadata = ObjectMeta {
            name: Some(self.settings.name.clone()),
            namespace: Some(self.settings.namespace.clone()),
            ..ObjectMeta::default()
        };
        super::owner::adopt(self.settings.owner.as_ref(), &mut metadata);
        let lease = Lease {
            metadata,
            spec: Some(LeaseSpec {
                holder_identity: Some(self.settings.identity.clone()),
                lease_duration_seconds: Some(self.settings.duration_secs()),
                acquire_time: Some(now.clone()),
                renew_time: Some(now),
                lease_transitions: Some(0),
                ..LeaseSpec::default()
            }),
        };
        match self.api.create(&PostParams::default(), &lease).await {
            Ok(_) => {
                info!("created the lease");
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_already_exists() || s.is_conflict() => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Renews (or takes) the lease with the version we read; a conflict means someone else
    /// wrote first, and we follow.
    async fn write(&mut self, mut lease: Lease, transition: bool) -> Result<bool, kube::Error> {
        let now = MicroTime(Timestamp::now());
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            spec.acquire_time = Some(now.clone());
        }
        spec.holder_identity = Some(self.settings.identity.clone());
        spec.lease_duration_seconds = Some(self.settings.duration_secs());
        spec.renew_time = Some(now);
        if transition {
            spec.lease_transitions = Some(spec.lease_transitions.unwrap_or(0).saturating_add(1));
        }
        match self
            .api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
        {
            Ok(_) => {
                self.tracker.reset();
                Ok(true)
            }
            Err(kube::Error::Api(s)) if s.is_conflict() => {
                debug!("lost a race for the lease");
                Ok(false)
            }
            Err(e) => Err(e),
        }
    }

    /// Empties the holder if it still is us, so a standby acquires at once.
    async fn release(&self) -> Result<(), kube::Error> {
        let Some(mut lease) = self.api.get_opt(&self.settings.name).await? else {
            return Ok(());
        };
        let spec = lease.spec.get_or_insert_with(LeaseSpec::default);
        if spec.holder_identity.as_deref() != Some(self.settings.identity.as_str()) {
            return Ok(());
        }
        spec.holder_identity = None;
        spec.lease_duration_seconds = Some(1);
        spec.renew_time = Some(MicroTime(Timestamp::now()));
        self.api
            .replace(&self.settings.name, &PostParams::default(), &lease)
            .await
            .map(|_| ())
    }
}

fn failure_of(error: &kube::Error) -> LookFailure {
    match error {
        kube::Error::Api(status) if status.code >= 500 || status.code == 429 => {
            LookFailure::Unreachable
        }
        kube::Error::Api(_) => LookFailure::Refused,
        _ => LookFailure::Unreachable,
    }
}

fn record_of(lease: &Lease) -> LeaseRecord {
    let spec = lease.spec.as_ref();
    LeaseRecord {
        holder: spec.and_then(|s| s.holder_identity.clone()),
        renew_time: spec.and_then(|s| s.renew_time.as_ref().map(|t| t.0.to_string())),
        duration: spec
            .and_then(|s| s.lease_duration_seconds)
            .and_then(|s| u64::try_from(s).ok())
            .map(Duration::from_secs),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lease_timings_must_leave_room_to_renew() {
        let ok = LeaseSettings::new(
            "l",
            "ns",
            "me".into(),
            Duration::from_secs(15),
            Duration::from_secs(5),
        )
        .unwrap();
        assert_eq!(ok.renew_deadline(), Duration::from_secs(10));
        for (duration, renew) in [(15, 10), (3, 2), (0, 0)] {
            assert!(
                LeaseSettings::new(
                    "l",
                    "ns",
                    "me".into(),
                    Duration::from_secs(duration),
                    Duration::from_secs(renew)
                )
                .is_err(),
                "{duration} {renew}"
            );
        }
        assert!(
            LeaseSettings::new(
                "l",
                "ns",
                "me".into(),
                Duration::from_millis(1500),
                Duration::from_millis(500)
            )
            .is_err()
        );
        assert!(
            LeaseSettings::new(
                "l",
                "ns",
                " ".into(),
                Duration::from_secs(15),
                Duration::from_secs(5)
            )
            .is_err()
        );
    }

    #[test]
    fn a_lease_record_reads_holder_renewal_and_duration() {
        let lease = Lease {
            spec: Some(LeaseSpec {
                holder_identity: Some("a".into()),
                lease_duration_seconds: Some(3),
                renew_time: Some(MicroTime(Timestamp::UNIX_EPOCH)),
                ..LeaseSpec::default()
            }),
            ..Lease::default()
        };
        let r = record_of(&lease);
        assert_eq!(r.holder.as_deref(), Some("a"));
        assert_eq!(r.duration, Some(Duration::from_secs(3)));
        assert!(r.renew_time.is_some());
        assert_eq!(record_of(&Lease::default()), LeaseRecord::default());
    }
}
