//! The delay between attempts to reach a peer that is away: exponential with jitter (`backon`),
//! so that the daemons of many nodes restarted together do not knock in step. Every retry loop of
//! Nauti's daemons and clients waits with it.

use std::time::Duration;

use backon::{BackoffBuilder as _, ExponentialBackoff, ExponentialBuilder};

/// `initial`, about `2·initial`, … up to `max`, each stretched by a random factor in `[1, 2)`.
/// [`Backoff::reset`] after an attempt that worked, so a restarted peer is found again quickly,
/// while a peer that stays down costs one attempt per `max` or so.
#[derive(Debug)]
pub struct Backoff {
    builder: ExponentialBuilder,
    max: Duration,
    delays: ExponentialBackoff,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (`max` below `initial` is raised to it; a
    /// zero `initial` is taken as 1 ms so that the delay grows).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        let builder = ExponentialBuilder::new()
            .with_min_delay(initial)
            .with_max_delay(max)
            .with_jitter()
            .without_max_times();
        Self {
            builder,
            max,
            delays: builder.build(),
        }
    }

    /// The delay before the next attempt.
    pub fn next_delay(&mut self) -> Duration {
        // Without a limit on the attempts the iterator never ends.
        self.delays.next().unwrap_or(self.max)
    }

    /// Starts over from `initial`.
    pub fn reset(&mut self) {
        self.delays = self.builder.build();
    }
}

impl Clone for Backoff {
    /// A clone starts over from `initial`.
    fn clone(&self) -> Self {
        Self {
            builder: self.builder,
            max: self.max,
            delays: self.builder.build(),
        }
    }
}

impl Default for Backoff {
    /// 200 ms doubling up to 10 s.
    fn default() -> Self {
        Self::new(Duration::from_millis(200), Duration::from_secs(10))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ms(n: u64) -> Duration {
        Duration::from_millis(n)
    }

    /// Jitter stretches each delay by a factor in `[1, 2)`.
    fn within(delay: Duration, base: Duration) -> bool {
        delay >= base && delay < base * 2
    }

    #[test]
    fn delays_double_up_to_the_cap_with_jitter() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        for base in [100, 200, 400, 800, 1000, 1000, 1000].map(ms) {
            let delay = backoff.next_delay();
            assert!(within(delay, base), "{delay:?} for {base:?}");
        }
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert!(within(backoff.next_delay(), ms(100)));
    }

    #[test]
    fn odd_settings_are_made_sane() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert!(within(zero.next_delay(), ms(1)));
        assert!(within(zero.next_delay(), ms(1)));
        let mut inverted = Backoff::new(ms(500), ms(100));
        assert!(within(inverted.next_delay(), ms(500)));
        assert!(within(inverted.next_delay(), ms(500)));
    }

    #[test]
    fn no_two_fresh_backoffs_need_to_agree() {
        let delays: std::collections::BTreeSet<_> = (0..16)
            .map(|_| Backoff::new(ms(1000), ms(1000)).next_delay())
            .collect();
        assert!(delays.len() > 1, "{delays:?}");
    }
}
