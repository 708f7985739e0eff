//! nauti-ipam swapped in for Debian's real host-local over the data directory host-local
//! filled: host-local's reservations are imported, no address is handed out twice, and a DEL of
//! a container host-local served frees its address.

use std::collections::BTreeSet;
use std::path::Path;

use nauti_testbed::testdir::TestDir;
use serde_json::{Value, json};

use crate::util::{Invocation, data_dir, mk_conf, run_with};

const HOST_LOCAL: &str = "/usr/lib/cni/host-local";

fn conf_for(ipam_type: &str, data: &Path) -> Value {
    let mut conf = mk_conf(
        "swap",
        data,
        json!({"subnet": "10.112.9.0/29", "gateway": "10.112.9.1"}),
    );
    conf["ipam"]["type"] = json!(ipam_type);
    // Debian's host-local speaks up to 1.0.0; both plugins read the same file.
    conf["cniVersion"] = json!("1.0.0");
    conf
}

#[test]
fn host_local_reservations_are_imported_never_handed_out_twice_and_freed_by_del() {
    assert!(
        Path::new(HOST_LOCAL).exists(),
        "{HOST_LOCAL} is missing (Debian containernetworking-plugins)"
    );
    let dir = TestDir::new("ipam-host-local-swap").unwrap();
    let data = data_dir(&dir);
    // A /29 with the gateway at .1: five usable addresses, .2 to .6.
    let host_local = conf_for("host-local", &data);
    let mut held = BTreeSet::new();
    let mut first = String::new();
    for id in ["hl-1", "hl-2", "hl-3"] {
        let inv = Invocation::new("ADD", id);
        let reply = run_with(
            inv.command(Path::new(HOST_LOCAL)),
            host_local.to_string().as_bytes(),
        );
        let address = reply.address();
        if first.is_empty() {
            first = address.clone();
        }
        assert!(held.insert(address), "host-local repeated an address");
    }
    assert!(
        data.join("swap/10.112.9.2").exists(),
        "host-local's disk layout"
    );

    let ours = conf_for("nauti-ipam", &data);
    for id in ["n-1", "n-2"] {
        let address = Invocation::new("ADD", id).run(&ours).address();
        assert!(
            held.insert(address.clone()),
            "{address} handed out twice: {held:?}"
        );
    }
    assert_eq!(held.len(), 5);
    // Every address is taken: host-local's three are held, not free.
    assert_eq!(Invocation::new("ADD", "n-3").run(&ours).code(), 100);
    assert!(
        !data.join("swap/10.112.9.2").exists(),
        "imported files are removed"
    );

    // A DEL of a container host-local served frees its address for the next ADD.
    let hl1 = Invocation::new("ADD", "hl-1").run(&ours).address();
    assert_eq!(hl1, first, "an imported container's ADD is idempotent");
    let del = Invocation::new("DEL", "hl-1").run(&ours);
    assert!(del.success, "DEL: {} {}", del.raw, del.stderr);
    assert_eq!(Invocation::new("ADD", "n-3").run(&ours).address(), hl1);
}
