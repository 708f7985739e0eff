//! In-process tests of the whole plugin (`handle`) against a temporary data dir.

use std::collections::HashMap;
use std::path::PathBuf;

use serde_json::{Value, json};

use super::*;

struct Net {
    dir: PathBuf,
    ipam: Value,
}

impl Net {
    fn new(ipam: Value) -> Self {
        static N: std::sync::atomic::AtomicU32 = std::sync::atomic::AtomicU32::new(0);
        let dir = std::env::temp_dir().join(format!(
            "nauti-ipam-cni-{}-{}",
            std::process::id(),
            N.fetch_add(1, std::sync::atomic::Ordering::Relaxed)
        ));
        let mut ipam = ipam;
        ipam["dataDir"] = json!(dir.to_str().unwrap());
        Self { dir, ipam }
    }

    fn conf(&self, version: &str, extra: Value) -> Vec<u8> {
        let mut c =
            json!({"cniVersion": version, "name": "testnet", "type": "bridge", "ipam": self.ipam});
        if let (Some(c), Some(extra)) = (c.as_object_mut(), extra.as_object()) {
            for (k, v) in extra {
                c.insert(k.clone(), v.clone());
            }
        }
        serde_json::to_vec(&c).unwrap()
    }

    fn call(&self, cmd: &str, cid: &str, version: &str, extra: Value) -> Reply {
        let env: HashMap<&str, String> = [
            ("CNI_COMMAND", cmd.to_owned()),
            ("CNI_CONTAINERID", cid.to_owned()),
            ("CNI_IFNAME", "eth0".to_owned()),
            ("CNI_NETNS", "/run/netns/x".to_owned()),
            ("CNI_PATH", "/usr/lib/cni".to_owned()),
        ]
        .into_iter()
        .collect();
        handle(|k| env.get(k).cloned(), &self.conf(version, extra)[..])
    }

    fn add(&self, cid: &str) -> Reply {
        self.call("ADD", cid, "1.1.0", json!({}))
    }

    fn addr(&self, cid: &str) -> String {
        let r = self.add(cid);
        assert!(r.success, "{r:?}");
        r.stdout.unwrap()["ips"][0]["address"]
            .as_str()
            .unwrap()
            .to_owned()
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

fn code(r: &Reply) -> u64 {
    assert!(!r.success, "{r:?}");
    r.stdout.as_ref().unwrap()["code"].as_u64().unwrap()
}

fn small() -> Net {
    Net::new(
        json!({"type": "nauti-ipam", "ranges": [[{"subnet": "10.112.9.0/29", "gateway": "10.112.9.1"}]]}),
    )
}

#[test]
fn add_returns_an_address_with_gateway_and_routes() {
    let n = Net::new(json!({"subnet": "10.112.1.0/24", "routes": [{"dst": "10.112.0.0/12"}]}));
    let r = n.add("c1");
    assert_eq!(
        r.stdout.unwrap(),
        json!({"cniVersion": "1.1.0",
               "ips": [{"address": "10.112.1.2/24", "gateway": "10.112.1.1"}],
               "routes": [{"dst": "10.112.0.0/12"}]})
    );
}

#[test]
fn repeated_add_returns_the_same_address() {
    let n = small();
    assert_eq!(n.addr("c1"), n.addr("c1"));
    assert_ne!(n.addr("c1"), n.addr("c2"));
}

#[test]
fn del_releases_and_del_of_an_unknown_owner_succeeds() {
    let n = small();
    assert!(n.call("DEL", "never-added", "1.1.0", json!({})).success);
    n.addr("c1");
    assert!(n.call("DEL", "c1", "1.1.0", json!({})).success);
    assert!(n.call("DEL", "c1", "1.1.0", json!({})).success);
    assert_eq!(code(&n.call("CHECK", "c1", "1.1.0", json!({}))), 3);
}

#[test]
fn pool_exhaustion_is_reported_by_add_and_status() {
    let n = small();
    assert!(n.call("STATUS", "", "1.1.0", json!({})).success);
    let got: Vec<_> = (0..5).map(|i| n.addr(&format!("c{i}"))).collect();
    assert_eq!(
        got,
        [
            "10.112.9.2/29",
            "10.112.9.3/29",
            "10.112.9.4/29",
            "10.112.9.5/29",
            "10.112.9.6/29"
        ]
    );
    assert_eq!(code(&n.add("c9")), 100);
    assert_eq!(code(&n.call("STATUS", "", "1.1.0", json!({}))), 50);
    assert!(n.call("DEL", "c3", "1.1.0", json!({})).success);
    assert_eq!(n.addr("c9"), "10.112.9.5/29");
    assert_eq!(code(&n.add("c10")), 100);
}

#[test]
fn check_verifies_the_allocation_and_prev_result() {
    let n = small();
    assert_eq!(code(&n.call("CHECK", "c1", "1.1.0", json!({}))), 3);
    let a = n.addr("c1");
    assert!(n.call("CHECK", "c1", "1.1.0", json!({})).success);
    let prev = json!({"prevResult": {"cniVersion": "1.1.0", "ips": [{"address": a}]}});
    assert!(n.call("CHECK", "c1", "1.1.0", prev).success);
    let wrong =
        json!({"prevResult": {"cniVersion": "1.1.0", "ips": [{"address": "10.112.9.6/29"}]}});
    assert_eq!(code(&n.call("CHECK", "c1", "1.1.0", wrong)), 102);
    assert_eq!(code(&n.call("CHECK", "c1", "0.3.1", json!({}))), 1);
}

#[test]
fn gc_frees_allocations_not_listed_as_valid() {
    let n = small();
    for c in ["c1", "c2", "c3"] {
        n.addr(c);
    }
    let valid = json!({"cni.dev/valid-attachments": [{"containerID": "c2", "ifname": "eth0"}]});
    assert!(n.call("GC", "", "1.1.0", valid).success);
    assert!(n.call("CHECK", "c2", "1.1.0", json!({})).success);
    assert_eq!(code(&n.call("CHECK", "c1", "1.1.0", json!({}))), 3);
    assert_eq!(code(&n.call("CHECK", "c3", "1.1.0", json!({}))), 3);
    assert_eq!(code(&n.call("GC", "", "1.1.0", json!({}))), 7);
    assert_eq!(
        code(&n.call("GC", "", "1.0.0", json!({"cni.dev/valid-attachments": []}))),
        1
    );
}

#[test]
fn results_follow_the_requested_version() {
    let n = small();
    let r = n.call("ADD", "a", "0.2.0", json!({})).stdout.unwrap();
    assert_eq!(r["ip4"]["ip"], "10.112.9.2/29");
    let r = n.call("ADD", "b", "0.4.0", json!({})).stdout.unwrap();
    assert_eq!(r["ips"][0]["version"], "4");
    let r = n.call("ADD", "c", "1.0.0", json!({})).stdout.unwrap();
    assert!(r["ips"][0].get("version").is_none());
    assert_eq!(r["cniVersion"], "1.0.0");
}

#[test]
fn requested_address_is_honoured_or_refused() {
    let n = small();
    let r = n.call(
        "ADD",
        "a",
        "1.1.0",
        json!({"args": {"cni": {"ips": ["10.112.9.5"]}}}),
    );
    assert_eq!(r.stdout.unwrap()["ips"][0]["address"], "10.112.9.5/29");
    let r = n.call(
        "ADD",
        "b",
        "1.1.0",
        json!({"args": {"cni": {"ips": ["10.112.9.5"]}}}),
    );
    assert_eq!(code(&r), 101);
    let r = n.call(
        "ADD",
        "b",
        "1.1.0",
        json!({"runtimeConfig": {"ips": ["10.200.0.1"]}}),
    );
    assert_eq!(code(&r), 101);
    // A refused ADD leaves nothing behind.
    assert_eq!(code(&n.call("CHECK", "b", "1.1.0", json!({}))), 3);
}

#[test]
fn dual_stack_gives_one_address_per_range_set() {
    let n = Net::new(
        json!({"ranges": [[{"subnet": "10.112.3.0/24"}], [{"subnet": "fd00:112:3::/64"}]]}),
    );
    let r = n.add("a").stdout.unwrap();
    assert_eq!(r["ips"][0]["address"], "10.112.3.2/24");
    assert_eq!(r["ips"][1]["address"], "fd00:112:3::2/64");
    assert_eq!(r["ips"][1]["gateway"], "fd00:112:3::1");
}

#[test]
fn version_needs_no_config() {
    let r = handle(
        |k| (k == "CNI_COMMAND").then(|| "VERSION".to_owned()),
        &b""[..],
    );
    assert!(r.success);
    assert_eq!(r.stdout.unwrap()["supportedVersions"][6], "1.1.0");
}

#[test]
fn errors_carry_the_requested_version() {
    let r = handle(
        |k| match k {
            "CNI_COMMAND" => Some("ADD".into()),
            "CNI_CONTAINERID" => Some("c".into()),
            "CNI_IFNAME" => Some("eth0".into()),
            "CNI_NETNS" => Some("/x".into()),
            _ => None,
        },
        &br#"{"cniVersion":"0.4.0","name":"n"}"#[..],
    );
    let out = r.stdout.unwrap();
    assert_eq!(out["cniVersion"], "0.4.0");
    assert_eq!(out["code"], 7);
    assert!(out["msg"].as_str().unwrap().contains("ipam"));
}

#[test]
fn unwritable_data_dir_is_an_io_error() {
    let n = Net::new(json!({"subnet": "10.112.1.0/24"}));
    std::fs::write(&n.dir, b"a file, not a folder").unwrap();
    let r = n.add("c1");
    assert_eq!(code(&r), 5);
    std::fs::remove_file(&n.dir).unwrap();
}

#[test]
fn corrupt_state_is_reported_not_overwritten() {
    let n = small();
    n.addr("c1");
    let state = n.dir.join("testnet").join("state.0");
    std::fs::write(&state, "garbage\n").unwrap();
    assert_eq!(code(&n.add("c2")), 103);
    assert_eq!(std::fs::read_to_string(&state).unwrap(), "garbage\n");
}
