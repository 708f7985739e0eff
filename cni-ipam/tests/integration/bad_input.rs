//! Bad input of every kind: a CNI error object on stdout with the right code, naming what is
//! wrong, a non-zero exit, and never a panic.

use std::process::Command;

use nauti_testbed::testdir::TestDir;
use serde_json::json;

use crate::util::{Invocation, Reply, data_dir, mk_conf, plugin, run_with};

fn add_raw(stdin: &[u8]) -> Reply {
    run_with(Invocation::new("ADD", "c1").command(plugin()), stdin)
}

fn assert_no_panic(r: &Reply) {
    assert!(
        !r.stderr.contains("panicked"),
        "plugin panicked: {}",
        r.stderr
    );
}

#[test]
fn not_json_is_a_decode_error() {
    let r = add_raw(b"{ this is not json");
    assert_eq!(r.code(), 6);
    assert_no_panic(&r);
}

#[test]
fn missing_ipam_names_ipam() {
    let r = add_raw(br#"{"cniVersion":"1.0.0","name":"n","type":"bridge"}"#);
    assert_eq!(r.code(), 7);
    assert!(r.msg().contains("ipam"), "{}", r.raw);
}

#[test]
fn unknown_cni_version_is_incompatible() {
    let r = add_raw(br#"{"cniVersion":"42.0.0","name":"n","ipam":{"subnet":"10.112.1.0/24"}}"#);
    assert_eq!(r.code(), 1);
    assert!(r.raw.contains("42.0.0"), "{}", r.raw);
}

fn bad_range(range: serde_json::Value, field: &str) {
    let dir = TestDir::new("ipam-bad").unwrap();
    let conf = mk_conf("bad", &data_dir(&dir), range);
    let r = Invocation::new("ADD", "c1").run(&conf);
    assert_eq!(r.code(), 7, "{}", r.raw);
    assert!(
        r.msg().contains(field),
        "msg should name {field}: {}",
        r.raw
    );
    assert_no_panic(&r);
}

#[test]
fn a_slash_33_names_the_subnet() {
    bad_range(
        json!({"subnet": "10.112.1.0/33"}),
        "ipam.ranges[0][0].subnet",
    );
}

#[test]
fn range_start_outside_the_subnet_names_range_start() {
    bad_range(
        json!({"subnet": "10.112.1.0/24", "rangeStart": "10.112.2.1"}),
        "rangeStart",
    );
}

#[test]
fn range_end_before_range_start_names_range_end() {
    bad_range(
        json!({"subnet": "10.112.1.0/24", "rangeStart": "10.112.1.50", "rangeEnd": "10.112.1.10"}),
        "rangeEnd",
    );
}

#[test]
fn gateway_outside_the_subnet_names_the_gateway() {
    bad_range(
        json!({"subnet": "10.112.1.0/24", "gateway": "10.112.9.1"}),
        "gateway",
    );
}

/// The documented rule (host-local's): a gateway between rangeStart and rangeEnd is accepted and
/// simply never handed out.
#[test]
fn gateway_inside_the_range_is_accepted_and_never_handed_out() {
    let dir = TestDir::new("ipam-gw-in-range").unwrap();
    let conf = mk_conf(
        "gw",
        &data_dir(&dir),
        json!({"subnet": "10.112.1.0/24", "rangeStart": "10.112.1.10",
               "rangeEnd": "10.112.1.12", "gateway": "10.112.1.11"}),
    );
    let a = Invocation::new("ADD", "c1").run(&conf).address();
    let b = Invocation::new("ADD", "c2").run(&conf).address();
    assert_eq!(
        [a.as_str(), b.as_str()],
        ["10.112.1.10/24", "10.112.1.12/24"]
    );
    assert_eq!(Invocation::new("ADD", "c3").run(&conf).code(), 100);
}

#[test]
fn unwritable_data_dir_is_an_io_error() {
    let dir = TestDir::new("ipam-unwritable").unwrap();
    let file = dir.path().join("a-file");
    std::fs::write(&file, b"not a folder").unwrap();
    let conf = mk_conf("n", &file.join("sub"), json!({"subnet": "10.112.1.0/24"}));
    let r = Invocation::new("ADD", "c1").run(&conf);
    assert_eq!(r.code(), 5, "{}", r.raw);
    assert!(
        r.raw.contains("a-file"),
        "the error names the path: {}",
        r.raw
    );
}

#[test]
fn empty_environment_names_cni_command() {
    let mut cmd = Command::new(plugin());
    cmd.env_clear()
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped());
    let r = Reply::from_output(cmd.output().unwrap());
    assert_eq!(r.code(), 4);
    assert!(r.msg().contains("CNI_COMMAND"), "{}", r.raw);
}

#[test]
fn missing_container_id_names_the_variable() {
    let mut cmd = Invocation::new("ADD", "x").command(plugin());
    cmd.env_remove("CNI_CONTAINERID");
    let r = run_with(
        cmd,
        br#"{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.112.1.0/24"}}"#,
    );
    assert_eq!(r.code(), 4);
    assert!(r.msg().contains("CNI_CONTAINERID"), "{}", r.raw);
}

#[test]
fn arbitrary_bytes_never_panic() {
    // Every input here must fail before touching a store; those that name a dataDir point it
    // somewhere that does not exist, so a regression cannot write into the machine's.
    let inputs: [&[u8]; 8] = [
        b"",
        b"null",
        b"[]",
        b"\xff\xfe\x00garbage",
        br#"{"cniVersion":1,"name":"n"}"#,
        br#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"fd00::/127"}]],"dataDir":"/nonexistent/nauti"}}"#,
        br#"{"cniVersion":"1.0.0","name":"n","ipam":{"ranges":[[{"subnet":"10.0.0.0/8","rangeStart":"fd00::1"}]],"dataDir":"/nonexistent/nauti"}}"#,
        br#"{"cniVersion":"1.0.0","name":"n","ipam":{"subnet":"10.0.0.0/24","routes":[{"dst":"x"}],"dataDir":"/nonexistent/nauti"}}"#,
    ];
    for input in inputs {
        let r = add_raw(input);
        assert!(
            !r.success,
            "{:?} should fail",
            String::from_utf8_lossy(input)
        );
        r.code();
        assert_no_panic(&r);
    }
}
