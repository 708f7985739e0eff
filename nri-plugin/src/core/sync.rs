//! Assembly of a multi-part `Synchronize`.
//!
//! A runtime with many pods splits its state into several `Synchronize` requests; every part but
//! the last has `more = true`. The plugin answers each part at once, echoing `more` (an answer with
//! a different `more` tells the runtime the plugin cannot handle split requests, and it drops the
//! plugin), and acts on the whole set when the last part arrives. A runtime that reconnects starts
//! a fresh assembly.

/// Collects the parts of one synchronisation.
#[derive(Debug)]
pub struct SyncAssembly<P, C> {
    pods: Vec<P>,
    containers: Vec<C>,
    parts: usize,
}

impl<P, C> Default for SyncAssembly<P, C> {
    fn default() -> Self {
        Self {
            pods: Vec::new(),
            containers: Vec::new(),
            parts: 0,
        }
    }
}

/// What a part completed.
#[derive(Debug, PartialEq, Eq)]
pub enum SyncStep<P, C> {
    /// More parts follow; answer with `more = true` and wait.
    Partial {
        /// Parts received so far.
        parts: usize,
    },
    /// The last part arrived: the runtime's whole state.
    Complete {
        /// Every pod of every part, in order.
        pods: Vec<P>,
        /// Every container of every part, in order.
        containers: Vec<C>,
        /// How many parts there were.
        parts: usize,
    },
}

impl<P, C> SyncAssembly<P, C> {
    /// An empty assembly.
    pub fn new() -> Self {
        Self::default()
    }

    /// Adds one part. After a `Complete`, the assembly is empty again.
    pub fn push(&mut self, pods: Vec<P>, containers: Vec<C>, more: bool) -> SyncStep<P, C> {
        self.pods.extend(pods);
        self.containers.extend(containers);
        self.parts += 1;
        if more {
            return SyncStep::Partial { parts: self.parts };
        }
        let done = std::mem::take(self);
        SyncStep::Complete {
            pods: done.pods,
            containers: done.containers,
            parts: done.parts,
        }
    }

    /// Whether parts are waiting for the last one.
    pub fn in_progress(&self) -> bool {
        self.parts > 0
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_single_part_completes_at_once() {
        let mut sync = SyncAssembly::new();
        assert_eq!(
            sync.push(vec!["p1"], vec!["c1"], false),
            SyncStep::Complete {
                pods: vec!["p1"],
                containers: vec!["c1"],
                parts: 1
            }
        );
        assert!(!sync.in_progress());
    }

    #[test]
    fn parts_are_joined_in_order_at_the_last_one() {
        let mut sync = SyncAssembly::new();
        assert_eq!(
            sync.push(vec!["p1", "p2"], vec![], true),
            SyncStep::Partial { parts: 1 }
        );
        assert!(sync.in_progress());
        assert_eq!(
            sync.push(vec![], vec!["c1"], true),
            SyncStep::Partial { parts: 2 }
        );
        assert_eq!(
            sync.push(vec!["p3"], vec!["c2"], false),
            SyncStep::Complete {
                pods: vec!["p1", "p2", "p3"],
                containers: vec!["c1", "c2"],
                parts: 3
            }
        );
    }

    #[test]
    fn the_assembly_starts_over_after_completing() {
        let mut sync = SyncAssembly::new();
        let _ = sync.push(vec![1], vec![10], true);
        let _ = sync.push(vec![2], vec![20], false);
        assert_eq!(
            sync.push(vec![3], vec![30], false),
            SyncStep::Complete {
                pods: vec![3],
                containers: vec![30],
                parts: 1
            }
        );
    }

    #[test]
    fn an_empty_runtime_synchronizes_with_nothing() {
        let mut sync: SyncAssembly<u8, u8> = SyncAssembly::new();
        assert_eq!(
            sync.push(vec![], vec![], false),
            SyncStep::Complete {
                pods: vec![],
                containers: vec![],
                parts: 1
            }
        );
    }
}
