//! A plugin killed with SIGKILL in the middle of its work leaves a store the next call reads.

use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::time::Duration;

use nauti_ipam::store::{FileStore, Record, StoreState};
use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::util::{Invocation, Reply, data_dir, mk_conf};

/// The i-th address of 10.112.32.0/20.
fn seed_ip(i: u32) -> Ipv4Addr {
    Ipv4Addr::from(u32::from(Ipv4Addr::new(10, 112, 32, 0)) + i)
}

#[test]
fn sigkill_during_adds_leaves_a_readable_store_and_no_shared_address() {
    let dir = TestDir::new("ipam-sigkill").unwrap();
    let data = data_dir(&dir);
    let conf = mk_conf("crash", &data, json!({"subnet": "10.112.32.0/20"}));
    // Seed a few thousand allocations so that each write takes long enough to be interrupted.
    {
        let mut store = FileStore::open(&data, "crash", Duration::from_secs(5)).unwrap();
        store.load().unwrap();
        let records: Vec<Record> = (2..3002u32)
            .map(|i| Record {
                ip: seed_ip(i).into(),
                container_id: format!("seed{i:05}"),
                ifname: "eth0".into(),
            })
            .collect();
        store
            .save(&StoreState {
                records,
                last_reserved: Default::default(),
            })
            .unwrap();
    }
    let mut x: u64 = 0x9e37_79b9_7f4a_7c15;
    for round in 0..40u32 {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
        let victim = Invocation::new("ADD", format!("victim{round:02}")).spawn(&conf);
        let bystander = Invocation::new("ADD", format!("bystander{round:02}")).spawn(&conf);
        std::thread::sleep(Duration::from_micros(x % 6000));
        let mut victim = victim;
        let _ = victim.kill();
        let _ = victim.wait();
        Reply::from_output(bystander.wait_with_output().unwrap()).address();
    }
    // The next calls read the store correctly: old allocations are still there ...
    assert!(Invocation::new("CHECK", "seed00002").run(&conf).success);
    assert!(Invocation::new("CHECK", "bystander00").run(&conf).success);
    // ... and every owner, killed or not, ends up with its own address.
    let mut holders: HashMap<String, String> = HashMap::new();
    for round in 0..40u32 {
        for who in ["victim", "bystander"] {
            let cid = format!("{who}{round:02}");
            let a = Invocation::new("ADD", cid.clone()).run(&conf).address();
            if let Some(prev) = holders.insert(a.clone(), cid.clone()) {
                panic!("{a} handed to both {prev} and {cid}");
            }
        }
    }
    let seeded: Vec<String> = (2..3002u32).map(|i| format!("{}/20", seed_ip(i))).collect();
    for a in holders.keys() {
        assert!(
            !seeded.contains(a),
            "{a} was already seeded to another container"
        );
    }
}
