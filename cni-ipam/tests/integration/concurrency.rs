//! Many plugin processes on one network at once.

use std::collections::HashSet;

use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::util::{Invocation, Reply, data_dir, mk_conf};

#[test]
fn sixty_four_concurrent_adds_get_sixty_four_distinct_addresses() {
    let dir = TestDir::new("ipam-concurrent").unwrap();
    let conf = mk_conf(
        "concurrent",
        &data_dir(&dir),
        json!({"subnet": "10.112.30.0/24"}),
    );
    let children: Vec<_> = (0..64)
        .map(|i| Invocation::new("ADD", format!("ctr{i:02}")).spawn(&conf))
        .collect();
    let addrs: Vec<String> = children
        .into_iter()
        .map(|c| Reply::from_output(c.wait_with_output().unwrap()).address())
        .collect();
    let distinct: HashSet<_> = addrs.iter().collect();
    assert_eq!(distinct.len(), 64, "{addrs:?}");
    for a in &addrs {
        assert!(a.starts_with("10.112.30.") && a.ends_with("/24"), "{a}");
    }
    // And each one is on record for its own container.
    for i in 0..64 {
        assert!(
            Invocation::new("CHECK", format!("ctr{i:02}"))
                .run(&conf)
                .success
        );
    }
}
