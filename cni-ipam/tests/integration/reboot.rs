//! Reservations made during an earlier boot belong to containers that died with it: the binary
//! hands their addresses out again.

use std::path::Path;
use std::time::Duration;

use nauti_ipam::store::{FileStore, Record, StoreState};
use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::util::{Invocation, data_dir, mk_conf};

const EARLIER_BOOT: &str = "00000000-0000-4000-8000-0000000000e1";

/// Both addresses of the range held by `old-a` and `old-b`, saved twice so that both slots hold
/// that state, as a process of boot `boot` (`None`: this boot) would have left them.
fn seed_full_range(data: &Path, network: &str, boot: Option<&str>) {
    let store = FileStore::open(data, network, Duration::from_secs(5)).unwrap();
    let mut store = match boot {
        Some(id) => {
            assert_ne!(store.boot_id(), Some(id), "the test needs another boot ID");
            store.with_boot_id(Some(id.to_owned()))
        }
        None => store,
    };
    store.load().unwrap();
    let state = StoreState {
        records: [("10.112.34.10", "old-a"), ("10.112.34.11", "old-b")]
            .into_iter()
            .map(|(ip, cid)| Record {
                ip: ip.parse().unwrap(),
                container_id: cid.into(),
                ifname: "eth0".into(),
            })
            .collect(),
        last_reserved: [(0, "10.112.34.11".parse().unwrap())].into(),
    };
    store.save(&state).unwrap();
    store.save(&state).unwrap();
}

fn two_address_range() -> serde_json::Value {
    json!({"subnet": "10.112.34.0/24", "rangeStart": "10.112.34.10", "rangeEnd": "10.112.34.11"})
}

#[test]
fn addresses_reserved_during_an_earlier_boot_are_handed_out_again() {
    let dir = TestDir::new("ipam-reboot").unwrap();
    let data = data_dir(&dir);
    let this_boot = FileStore::open(&data, "probe", Duration::from_secs(5))
        .unwrap()
        .boot_id()
        .map(str::to_owned);
    assert!(
        this_boot.is_some(),
        "/proc/sys/kernel/random/boot_id is unreadable"
    );

    // The premise: the same state written during this boot leaves nothing to hand out.
    let same_boot = mk_conf("same-boot", &data, two_address_range());
    seed_full_range(&data, "same-boot", None);
    assert_eq!(Invocation::new("ADD", "new-a").run(&same_boot).code(), 100);

    let conf = mk_conf("reboot", &data, two_address_range());
    seed_full_range(&data, "reboot", Some(EARLIER_BOOT));
    assert_eq!(
        Invocation::new("ADD", "new-a").run(&conf).address(),
        "10.112.34.10/24"
    );
    assert_eq!(
        Invocation::new("ADD", "new-b").run(&conf).address(),
        "10.112.34.11/24"
    );
    // The old owners are gone; a runtime's late DEL for one of them leaves the new owner alone.
    assert_eq!(Invocation::new("CHECK", "old-a").run(&conf).code(), 3);
    assert!(Invocation::new("DEL", "old-a").run(&conf).success);
    assert!(Invocation::new("CHECK", "new-a").run(&conf).success);

    let mut store = FileStore::open(&data, "reboot", Duration::from_secs(5)).unwrap();
    let held: Vec<(String, String)> = store
        .load()
        .unwrap()
        .records
        .into_iter()
        .map(|r| (r.ip.to_string(), r.container_id))
        .collect();
    assert_eq!(
        held,
        [
            ("10.112.34.10".to_owned(), "new-a".to_owned()),
            ("10.112.34.11".to_owned(), "new-b".to_owned())
        ]
    );
    // What the plugin wrote carries this boot's ID.
    let slots: String = ["state.0", "state.1"]
        .iter()
        .map(|s| std::fs::read_to_string(store.dir().join(s)).unwrap_or_default())
        .collect();
    let stamp = format!("nauti-ipam-slot/2 {} ", this_boot.unwrap_or_default());
    assert!(slots.contains(&stamp), "{slots:?}");
}
