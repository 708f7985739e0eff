//! A queue of keys to reconcile, as controllers keep them: a key waits at most once, in the
//! order it first became due; a key being reconciled is never handed out twice, and a change
//! to it meanwhile hands it out again once the running reconcile is done.

use std::collections::{HashSet, VecDeque};
use std::hash::Hash;

/// The keys waiting and running.
#[derive(Debug)]
pub struct KeyQueue<K> {
    waiting: VecDeque<K>,
    queued: HashSet<K>,
    running: HashSet<K>,
    /// Changed while running: queued again when its reconcile ends.
    again: HashSet<K>,
    /// Bumped on every change, so a cached view of the inputs knows it is stale.
    generation: u64,
}

impl<K> Default for KeyQueue<K> {
    fn default() -> Self {
        Self {
            waiting: VecDeque::new(),
            queued: HashSet::new(),
            running: HashSet::new(),
            again: HashSet::new(),
            generation: 0,
        }
    }
}

impl<K: Clone + Eq + Hash> KeyQueue<K> {
    /// `key` changed: it is due (once, whatever the number of changes).
    pub fn add(&mut self, key: K) {
        self.generation += 1;
        if self.running.contains(&key) {
            self.again.insert(key);
        } else if self.queued.insert(key.clone()) {
            self.waiting.push_back(key);
        }
    }

    /// An input changed without naming a key.
    pub fn touch(&mut self) {
        self.generation += 1;
    }

    /// The count of changes so far.
    pub fn generation(&self) -> u64 {
        self.generation
    }

    /// Whether a key is waiting.
    pub fn has_waiting(&self) -> bool {
        !self.waiting.is_empty()
    }

    /// Up to `max` waiting keys, oldest first, now running.
    pub fn take(&mut self, max: usize) -> Vec<K> {
        let count = max.min(self.waiting.len());
        let keys: Vec<K> = self.waiting.drain(..count).collect();
        for key in &keys {
            self.queued.remove(key);
            self.running.insert(key.clone());
        }
        keys
    }

    /// `key`'s reconcile ended; it waits again if it changed meanwhile.
    pub fn done(&mut self, key: &K) {
        self.running.remove(key);
        if self.again.remove(key) && self.queued.insert(key.clone()) {
            self.waiting.push_back(key.clone());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_key_waits_once_in_the_order_it_became_due() {
        let mut queue = KeyQueue::default();
        queue.add("b");
        queue.add("a");
        queue.add("b");
        assert_eq!(queue.take(10), vec!["b", "a"]);
        assert!(!queue.has_waiting());
        assert_eq!(queue.generation(), 3);
    }

    #[test]
    fn take_hands_out_at_most_max() {
        let mut queue = KeyQueue::default();
        for key in 0..5 {
            queue.add(key);
        }
        assert_eq!(queue.take(2), vec![0, 1]);
        assert_eq!(queue.take(10), vec![2, 3, 4]);
        assert!(queue.take(10).is_empty());
    }

    #[test]
    fn a_running_key_changed_meanwhile_waits_again_after_done() {
        let mut queue = KeyQueue::default();
        queue.add("a");
        assert_eq!(queue.take(1), vec!["a"]);
        queue.add("a");
        queue.add("a");
        assert!(!queue.has_waiting(), "never handed out twice at once");
        queue.done(&"a");
        assert_eq!(queue.take(10), vec!["a"]);
        queue.done(&"a");
        assert!(!queue.has_waiting(), "unchanged since: done");
    }

    #[test]
    fn touch_counts_a_change_without_a_key() {
        let mut queue: KeyQueue<&str> = KeyQueue::default();
        queue.touch();
        assert_eq!(queue.generation(), 1);
        assert!(!queue.has_waiting());
    }
}
