//! Integration tests of the `nauti-ipam` binary: exec'd as CNI plugins exec it, alone and chained
//! under Debian's reference `bridge` and `macvlan` plugins in network namespaces made here.

// Test helpers outside `#[test]` functions fail the test loudly, as the tests themselves do.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

mod bad_input;
mod bridge;
mod chained;
mod concurrency;
mod crash;
mod edge_ranges;
mod host_local_swap;
mod lifecycle;
mod macvlan;
mod reboot;
mod util;
