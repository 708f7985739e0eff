//! The delay between attempts to reach the runtime.

use std::time::Duration;

/// Exponential backoff with a cap: `initial`, `2·initial`, … up to `max`, then `max` for ever.
/// [`Backoff::reset`] after a connection that worked, so a restarted containerd is found again
/// quickly, while a containerd that stays down costs one attempt per `max`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Backoff {
    initial: Duration,
    max: Duration,
    next: Duration,
}

impl Backoff {
    /// A backoff from `initial` doubling up to `max` (`max` below `initial` is raised to it; a
    /// zero `initial` is taken as 1 ms so that the delay grows).
    pub fn new(initial: Duration, max: Duration) -> Self {
        let initial = initial.max(Duration::from_millis(1));
        let max = max.max(initial);
        Self {
            initial,
            max,
            next: initial,
        }
    }

    /// The delay before the next attempt; doubles the one after.
    pub fn next_delay(&mut self) -> Duration {
        let delay = self.next;
        self.next = self.next.saturating_mul(2).min(self.max);
        delay
    }

    /// Starts over from `initial`.
    pub fn reset(&mut self) {
        self.next = self.initial;
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

    #[test]
    fn delays_double_up_to_the_cap() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        let delays: Vec<_> = (0..7).map(|_| backoff.next_delay()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1000, 1000, 1000].map(ms));
    }

    #[test]
    fn reset_starts_over() {
        let mut backoff = Backoff::new(ms(100), ms(1000));
        for _ in 0..5 {
            backoff.next_delay();
        }
        backoff.reset();
        assert_eq!(backoff.next_delay(), ms(100));
    }

    #[test]
    fn odd_settings_are_made_sane() {
        let mut zero = Backoff::new(Duration::ZERO, Duration::ZERO);
        assert_eq!(zero.next_delay(), ms(1));
        assert_eq!(zero.next_delay(), ms(1));
        let mut inverted = Backoff::new(ms(500), ms(100));
        assert_eq!(inverted.next_delay(), ms(500));
        assert_eq!(inverted.next_delay(), ms(500));
        let mut huge = Backoff::new(Duration::MAX, Duration::MAX);
        assert_eq!(huge.next_delay(), Duration::MAX);
        assert_eq!(huge.next_delay(), Duration::MAX);
    }
}
