//! ADD, DEL, CHECK, GC, STATUS and VERSION through the real binary.

use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::util::{Invocation, data_dir, mk_conf, plugin, run_with};

#[test]
fn add_is_idempotent_and_del_of_unknown_owners_succeeds() {
    let dir = TestDir::new("ipam-idem").unwrap();
    let conf = mk_conf("idem", &data_dir(&dir), json!({"subnet": "10.112.20.0/24"}));
    let a = Invocation::new("ADD", "ctr-a").run(&conf).address();
    assert_eq!(Invocation::new("ADD", "ctr-a").run(&conf).address(), a);
    let b = Invocation::new("ADD", "ctr-b").run(&conf).address();
    assert_ne!(a, b);
    let mut other_if = Invocation::new("ADD", "ctr-a");
    other_if.ifname = "net1".into();
    assert_ne!(
        other_if.run(&conf).address(),
        a,
        "another interface is another owner"
    );
    assert!(Invocation::new("DEL", "ctr-a").run(&conf).success);
    assert!(Invocation::new("DEL", "ctr-a").run(&conf).success);
    assert!(Invocation::new("DEL", "never-seen").run(&conf).success);
    let fresh = mk_conf(
        "never-used",
        &data_dir(&dir),
        json!({"subnet": "10.112.21.0/24"}),
    );
    assert!(Invocation::new("DEL", "x").run(&fresh).success);
}

#[test]
fn exhaustion_fails_add_and_status_until_an_address_is_released() {
    let dir = TestDir::new("ipam-exhaust").unwrap();
    let conf = mk_conf(
        "exhaust",
        &data_dir(&dir),
        json!({"subnet": "10.112.22.0/24", "rangeStart": "10.112.22.10", "rangeEnd": "10.112.22.12"}),
    );
    assert!(Invocation::new("STATUS", "").run(&conf).success);
    for c in ["c1", "c2", "c3"] {
        Invocation::new("ADD", c).run(&conf).address();
    }
    let r = Invocation::new("ADD", "c4").run(&conf);
    assert_eq!(r.code(), 100, "{}", r.raw);
    assert_eq!(Invocation::new("STATUS", "").run(&conf).code(), 50);
    assert!(Invocation::new("DEL", "c2").run(&conf).success);
    assert!(Invocation::new("STATUS", "").run(&conf).success);
    assert_eq!(
        Invocation::new("ADD", "c4").run(&conf).address(),
        "10.112.22.11/24"
    );
}

#[test]
fn check_of_a_missing_allocation_is_container_unknown() {
    let dir = TestDir::new("ipam-check").unwrap();
    let conf = mk_conf(
        "check",
        &data_dir(&dir),
        json!({"subnet": "10.112.23.0/24"}),
    );
    assert_eq!(Invocation::new("CHECK", "c1").run(&conf).code(), 3);
    let a = Invocation::new("ADD", "c1").run(&conf).address();
    let mut with_prev = conf.clone();
    with_prev["prevResult"] = json!({"cniVersion": "1.1.0", "ips": [{"address": a}]});
    assert!(Invocation::new("CHECK", "c1").run(&with_prev).success);
    assert!(Invocation::new("DEL", "c1").run(&conf).success);
    assert_eq!(Invocation::new("CHECK", "c1").run(&with_prev).code(), 3);
}

#[test]
fn gc_frees_reservations_not_in_valid_attachments() {
    let dir = TestDir::new("ipam-gc").unwrap();
    let conf = mk_conf("gc", &data_dir(&dir), json!({"subnet": "10.112.24.0/24"}));
    for c in ["keep", "drop1", "drop2"] {
        Invocation::new("ADD", c).run(&conf).address();
    }
    let mut gc = conf.clone();
    gc["cni.dev/valid-attachments"] = json!([{"containerID": "keep", "ifname": "eth0"}]);
    let r = Invocation::new("GC", "").run(&gc);
    assert!(r.success, "{}", r.raw);
    assert!(r.raw.trim().is_empty(), "GC prints nothing on success");
    assert!(Invocation::new("CHECK", "keep").run(&conf).success);
    assert_eq!(Invocation::new("CHECK", "drop1").run(&conf).code(), 3);
    assert_eq!(Invocation::new("CHECK", "drop2").run(&conf).code(), 3);
}

#[test]
fn version_lists_every_supported_version() {
    let r = run_with(
        Invocation::new("VERSION", "").command(plugin()),
        br#"{"cniVersion":"1.0.0"}"#,
    );
    assert!(r.success);
    assert_eq!(
        r.stdout.unwrap(),
        json!({"cniVersion": "1.0.0",
               "supportedVersions": ["0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0"]})
    );
}

#[test]
fn results_are_shaped_for_each_requested_version() {
    let dir = TestDir::new("ipam-versions").unwrap();
    for (i, v) in [
        "0.1.0", "0.2.0", "0.3.0", "0.3.1", "0.4.0", "1.0.0", "1.1.0",
    ]
    .iter()
    .enumerate()
    {
        let mut conf = mk_conf(
            "versions",
            &data_dir(&dir),
            json!({"subnet": "10.112.25.0/24"}),
        );
        conf["cniVersion"] = json!(v);
        let r = Invocation::new("ADD", format!("c{i}")).run(&conf);
        assert!(r.success, "{v}: {}", r.raw);
        let out = r.stdout.unwrap();
        assert_eq!(out["cniVersion"], *v);
        if v.starts_with("0.1") || v.starts_with("0.2") {
            assert!(out["ip4"]["ip"].is_string(), "{v}: {out}");
        } else {
            assert!(out["ips"][0]["address"].is_string(), "{v}: {out}");
            assert_eq!(
                out["ips"][0].get("version").is_some(),
                v.starts_with("0."),
                "{v}: {out}"
            );
        }
    }
}
