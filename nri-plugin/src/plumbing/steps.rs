//! The steps of one pod's plumbing under way, so that an answer given at the deadline names what
//! the plugin was still waiting for, and a debug line says how long each step took.

use std::sync::{Arc, Mutex, PoisonError};
use std::time::Instant;

/// The steps under way for one pod (cheap to clone; clones share them).
#[derive(Clone, Debug, Default)]
pub struct Steps(Arc<Mutex<Vec<&'static str>>>);

impl Steps {
    /// Marks `step` as under way until the guard is dropped.
    pub fn enter(&self, step: &'static str) -> StepGuard {
        self.lock().push(step);
        StepGuard {
            steps: self.clone(),
            step,
            since: Instant::now(),
        }
    }

    /// True when no step is under way.
    pub fn is_idle(&self) -> bool {
        self.lock().is_empty()
    }

    /// The steps under way, joined for a message.
    pub fn describe(&self) -> String {
        let steps = self.lock();
        if steps.is_empty() {
            "finishing".to_owned()
        } else {
            steps.join(" and ")
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Vec<&'static str>> {
        self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }
}

/// Ends its step when dropped.
pub struct StepGuard {
    steps: Steps,
    step: &'static str,
    since: Instant,
}

impl Drop for StepGuard {
    fn drop(&mut self) {
        let mut steps = self.steps.lock();
        if let Some(at) = steps.iter().position(|s| *s == self.step) {
            steps.remove(at);
        }
        let us = u64::try_from(self.since.elapsed().as_micros()).unwrap_or(u64::MAX);
        tracing::debug!(step = self.step, elapsed_us = us, "plumbing step");
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn steps_under_way_are_named_until_they_end() {
        let steps = Steps::default();
        let lsp = steps.enter("writing the port");
        let ovs = steps.enter("plugging the OVS port");
        assert_eq!(
            steps.describe(),
            "writing the port and plugging the OVS port"
        );
        drop(lsp);
        assert_eq!(steps.describe(), "plugging the OVS port");
        drop(ovs);
        assert_eq!(steps.describe(), "finishing");
    }
}
