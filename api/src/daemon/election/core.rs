//! The election's decisions, pure: what a Lease record read at an instant means for us.

use std::time::{Duration, Instant};

/// A `coordination.k8s.io/v1` Lease as the election sees it.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LeaseRecord {
    /// `spec.holderIdentity` (empty or absent: free).
    pub holder: Option<String>,
    /// `spec.renewTime` as the server wrote it; only compared for change, never against our
    /// clock, so clock skew between replicas does not matter.
    pub renew_time: Option<String>,
    /// `spec.leaseDurationSeconds`.
    pub duration: Option<Duration>,
}

impl LeaseRecord {
    fn holder(&self) -> Option<&str> {
        self.holder.as_deref().filter(|h| !h.is_empty())
    }
}

/// What to do with the lease.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum LeaseDecision {
    /// We hold it: write a fresh renew time.
    Renew,
    /// It is free or expired: take it.
    Acquire,
    /// Someone else holds it; look again later.
    Follow {
        /// The holder.
        holder: String,
        /// How long until it counts as expired if not renewed.
        expires_in: Duration,
    },
}

/// Tracks when the lease record last changed, by our monotonic clock: a holder's lease expires
/// when its record has not changed for its duration, as measured by the observer (the scheme of
/// client-go's leader election, which tolerates skewed wall clocks).
///
/// A record first read as it is knows only that it is at least that old, not when it was last
/// renewed: until the tracker sees it change, expiry waits `startup_grace` longer. A leader's
/// container restarted after a crash thus leaves the lease to the standbys that watched it
/// being renewed, rather than racing them for it.
#[derive(Debug, Clone, Default)]
pub struct LeaseTracker {
    /// The record, since when it is unchanged, and whether that moment is when it changed.
    last: Option<(LeaseRecord, Instant, bool)>,
    startup_grace: Duration,
}

impl LeaseTracker {
    /// A tracker that has seen nothing.
    pub fn new() -> Self {
        Self::default()
    }

    /// A tracker that waits `grace` longer on a record it has not seen change.
    pub fn with_startup_grace(grace: Duration) -> Self {
        Self {
            last: None,
            startup_grace: grace,
        }
    }

    /// Records the lease as read at `now` and decides. `default_duration` applies when the
    /// record has none.
    pub fn observe(
        &mut self,
        me: &str,
        record: LeaseRecord,
        now: Instant,
        default_duration: Duration,
    ) -> LeaseDecision {
        let (since, seen_change) = match &self.last {
            Some((prev, at, seen_change)) if *prev == record => (*at, *seen_change),
            Some(_) => (now, true),
            None => (now, false),
        };
        let decision = match record.holder() {
            Some(h) if h == me => LeaseDecision::Renew,
            None => LeaseDecision::Acquire,
            Some(holder) => {
                let mut duration = record.duration.unwrap_or(default_duration);
                if !seen_change {
                    duration += self.startup_grace;
                }
                let age = now.saturating_duration_since(since);
                if age >= duration {
                    LeaseDecision::Acquire
                } else {
                    LeaseDecision::Follow {
                        holder: holder.to_owned(),
                        expires_in: duration - age,
                    }
                }
            }
        };
        self.last = Some((record, since, seen_change));
        decision
    }

    /// Forgets what was seen (after our own write, whose result is the new baseline).
    pub fn reset(&mut self) {
        self.last = None;
    }
}

/// Why a look at the lease failed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LookFailure {
    /// No answer: connection refused or reset, a timeout, a 5xx or 429. Nobody can take the
    /// lease through an API server that does not answer.
    Unreachable,
    /// The API server answered and refused (4xx): our permissions or the object are wrong.
    Refused,
}

/// Whether a leader whose look failed keeps acting. Only when it asked to
/// (`keep_while_unreachable`, the gateways: an API outage must not stop the data path) and the
/// API did not answer; a refusal, or any failure for the others, counts as a missed renewal.
pub fn keeps_lead(failure: LookFailure, leading: bool, keep_while_unreachable: bool) -> bool {
    leading && keep_while_unreachable && failure == LookFailure::Unreachable
}

/// Whether a leader whose last successful renewal was at `last_renew` must stop acting at
/// `now`. It steps down before the lease could expire in anyone's eyes (`deadline` is shorter
/// than the lease duration), so two leaders never act at once.
pub fn must_step_down(last_renew: Instant, now: Instant, deadline: Duration) -> bool {
    now.saturating_duration_since(last_renew) >= deadline
}

#[cfg(test)]
mod tests {
    use super::*;

    fn record(holder: Option<&str>, renew: &str) -> LeaseRecord {
        LeaseRecord {
            holder: holder.map(str::to_owned),
            renew_time: Some(renew.to_owned()),
            duration: Some(Duration::from_secs(15)),
        }
    }

    #[test]
    fn a_free_lease_is_acquired() {
        let mut t = LeaseTracker::new();
        let d = Duration::from_secs(15);
        assert_eq!(
            t.observe("me", LeaseRecord::default(), Instant::now(), d),
            LeaseDecision::Acquire
        );
        assert_eq!(
            t.observe("me", record(Some(""), "t1"), Instant::now(), d),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn our_own_lease_is_renewed() {
        let mut t = LeaseTracker::new();
        assert_eq!(
            t.observe(
                "me",
                record(Some("me"), "t1"),
                Instant::now(),
                Duration::from_secs(15)
            ),
            LeaseDecision::Renew
        );
    }

    #[test]
    fn another_holders_lease_is_taken_only_after_it_stopped_changing_for_its_duration() {
        let mut t = LeaseTracker::new();
        let d = Duration::from_secs(15);
        let t0 = Instant::now();
        let held = record(Some("other"), "t1");
        assert!(matches!(
            t.observe("me", held.clone(), t0, d),
            LeaseDecision::Follow { expires_in, .. } if expires_in == d
        ));
        assert!(matches!(
            t.observe("me", held.clone(), t0 + Duration::from_secs(14), d),
            LeaseDecision::Follow { .. }
        ));
        // A renewal restarts the clock.
        let renewed = record(Some("other"), "t2");
        assert!(matches!(
            t.observe("me", renewed.clone(), t0 + Duration::from_secs(14), d),
            LeaseDecision::Follow { .. }
        ));
        assert!(matches!(
            t.observe("me", renewed.clone(), t0 + Duration::from_secs(28), d),
            LeaseDecision::Follow { .. }
        ));
        assert_eq!(
            t.observe("me", renewed, t0 + Duration::from_secs(29), d),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn a_record_never_seen_changing_is_given_the_startup_grace_on_top() {
        let d = Duration::from_secs(3);
        let grace = Duration::from_secs(2);
        let t0 = Instant::now();
        let mut held = record(Some("crashed"), "t1");
        held.duration = Some(d);
        // Just started: the record may have been renewed right before.
        let mut fresh = LeaseTracker::with_startup_grace(grace);
        fresh.observe("restarted", held.clone(), t0, d);
        assert!(matches!(
            fresh.observe("restarted", held.clone(), t0 + d, d),
            LeaseDecision::Follow { .. }
        ));
        assert_eq!(
            fresh.observe("restarted", held.clone(), t0 + d + grace, d),
            LeaseDecision::Acquire
        );
        // A standby that saw the last renewal happen takes it after the duration alone.
        let mut watching = LeaseTracker::with_startup_grace(grace);
        watching.observe("standby", record(Some("crashed"), "t0"), t0, d);
        watching.observe("standby", held.clone(), t0, d);
        assert_eq!(
            watching.observe("standby", held, t0 + d, d),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn the_duration_written_in_the_lease_wins_over_ours() {
        let mut t = LeaseTracker::new();
        let t0 = Instant::now();
        let mut held = record(Some("other"), "t1");
        held.duration = Some(Duration::from_secs(3));
        t.observe("me", held.clone(), t0, Duration::from_secs(15));
        assert_eq!(
            t.observe(
                "me",
                held,
                t0 + Duration::from_secs(3),
                Duration::from_secs(15)
            ),
            LeaseDecision::Acquire
        );
    }

    #[test]
    fn a_leader_steps_down_once_renewals_failed_past_the_deadline() {
        let t0 = Instant::now();
        let deadline = Duration::from_secs(10);
        assert!(!must_step_down(t0, t0 + Duration::from_secs(9), deadline));
        assert!(must_step_down(t0, t0 + deadline, deadline));
    }

    #[test]
    fn only_a_leader_that_asked_keeps_the_lead_and_only_while_the_api_is_silent() {
        assert!(keeps_lead(LookFailure::Unreachable, true, true));
        assert!(
            !keeps_lead(LookFailure::Refused, true, true),
            "a 403 is no outage"
        );
        assert!(!keeps_lead(LookFailure::Unreachable, true, false));
        assert!(
            !keeps_lead(LookFailure::Unreachable, false, true),
            "a standby takes nothing"
        );
    }
}
