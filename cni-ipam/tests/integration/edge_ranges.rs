//! Ranges at the edges of the address space (`/0`, `/128`, the last address, ranges that end at
//! `255.255.255.255` or `ffff:...:ffff`): each gives a clear CNI error or hands out the right
//! addresses, in the debug build and in the release build (where integer overflow would wrap
//! silently instead of panicking), and never hangs.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::{Duration, Instant};

use nauti_testbed::testdir::TestDir;
use serde_json::{Value, json};

use crate::util::{Invocation, Reply, data_dir, mk_conf, plugin};

const TOP6: &str = "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff";

/// What one configuration must do.
enum Expect {
    /// ADD fails with this CNI code and a message naming `field`.
    Error { code: u64, field: &'static str },
    /// Successive ADDs hand out these addresses, then the next one fails with code 100.
    Addresses(&'static [&'static str]),
    /// Successive ADDs hand out at least these addresses (the range is larger).
    FirstAddresses(&'static [&'static str]),
}

fn cases() -> Vec<(Value, Expect)> {
    use Expect::*;
    vec![
        (
            json!({"subnet": format!("{TOP6}/128")}),
            Error {
                code: 7,
                field: "ipam.ranges[0][0].subnet",
            },
        ),
        (
            json!({"subnet": "255.255.255.255/32"}),
            Error {
                code: 7,
                field: "ipam.ranges[0][0].subnet",
            },
        ),
        (
            json!({"subnet": "255.255.255.254/31"}),
            Error {
                code: 7,
                field: "ipam.ranges[0][0].subnet",
            },
        ),
        (
            json!({"subnet": "0.0.0.0/0"}),
            FirstAddresses(&["0.0.0.2/0", "0.0.0.3/0"]),
        ),
        (
            json!({"subnet": "::/0"}),
            FirstAddresses(&["::2/0", "::3/0"]),
        ),
        (
            json!({"subnet": "0.0.0.0/0", "rangeStart": "255.255.255.253"}),
            Addresses(&["255.255.255.253/0", "255.255.255.254/0"]),
        ),
        (
            json!({"subnet": "0.0.0.0/0", "rangeStart": "255.255.255.255",
                   "rangeEnd": "255.255.255.255"}),
            Addresses(&[]),
        ),
        (
            json!({"subnet": "::/0", "rangeStart": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe"}),
            Addresses(&[
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/0",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0",
            ]),
        ),
        (
            json!({"subnet": "::/0", "rangeStart": TOP6, "rangeEnd": TOP6}),
            Addresses(&["ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/0"]),
        ),
        (
            json!({"subnet": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffc/126"}),
            Addresses(&[
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/126",
                "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff/126",
            ]),
        ),
        (
            json!({"subnet": "255.255.255.252/30"}),
            Addresses(&["255.255.255.254/30"]),
        ),
        (
            json!({"subnet": "::/0", "rangeEnd": "::"}),
            Error {
                code: 7,
                field: "rangeEnd",
            },
        ),
        (
            json!({"subnet": "0.0.0.0/0", "rangeStart": "0.0.0.0", "rangeEnd": "0.0.0.3"}),
            Addresses(&["0.0.0.2/0", "0.0.0.3/0"]),
        ),
        (
            json!({"subnet": "::/0", "gateway": TOP6}),
            FirstAddresses(&["::1/0", "::2/0"]),
        ),
    ]
}

/// The same cases with an exclusion at the very top of the address space.
fn excluded_top_cases() -> Vec<(Value, Vec<&'static str>, &'static [&'static str])> {
    vec![
        (
            json!({"subnet": "::/0", "rangeStart": "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd"}),
            vec![TOP6, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffe/127"],
            &["ffff:ffff:ffff:ffff:ffff:ffff:ffff:fffd/0"],
        ),
        (
            json!({"subnet": "0.0.0.0/0", "rangeStart": "255.255.255.250"}),
            vec!["255.255.255.252/30"],
            &["255.255.255.250/0", "255.255.255.251/0"],
        ),
    ]
}

/// Runs one invocation of `binary`, killing it after a bound: an overflow that wraps in a
/// release build shows up as a loop that never ends.
fn run_bounded(binary: &Path, inv: &Invocation, conf: &Value) -> Reply {
    let mut child = {
        let mut cmd = inv.command(binary);
        let mut child = cmd.spawn().expect("spawn nauti-ipam");
        let mut stdin = child.stdin.take().expect("stdin");
        std::io::Write::write_all(&mut stdin, conf.to_string().as_bytes()).expect("write stdin");
        drop(stdin);
        child
    };
    let deadline = Instant::now() + Duration::from_secs(30);
    while child.try_wait().expect("wait").is_none() {
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{} hung on {conf}", binary.display());
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    Reply::from_output(child.wait_with_output().expect("output"))
}

fn check_all(binary: &Path) {
    for (i, (range, expect)) in cases().into_iter().enumerate() {
        let dir = TestDir::new("ipam-edge").unwrap();
        let conf = mk_conf("edge", &data_dir(&dir), range.clone());
        let add = |n: usize| run_bounded(binary, &Invocation::new("ADD", format!("c{n}")), &conf);
        let want: &[&str] = match expect {
            Expect::Error { code, field } => {
                let r = add(0);
                assert!(
                    !r.stderr.contains("panicked"),
                    "case {i} {range}: {}",
                    r.stderr
                );
                assert_eq!(r.code(), code, "case {i} {range}: {}", r.raw);
                assert!(
                    r.msg().contains(field),
                    "case {i} {range} names {field}: {}",
                    r.raw
                );
                continue;
            }
            Expect::Addresses(want) | Expect::FirstAddresses(want) => want,
        };
        for (n, address) in want.iter().enumerate() {
            let r = add(n);
            assert!(
                !r.stderr.contains("panicked"),
                "case {i} {range}: {}",
                r.stderr
            );
            assert_eq!(r.address(), *address, "case {i} {range}, ADD {n}");
        }
        if matches!(expect, Expect::Addresses(_)) {
            let r = add(want.len());
            assert_eq!(r.code(), 100, "case {i} {range}: exhausted, {}", r.raw);
        }
    }
    for (range, exclude, want) in excluded_top_cases() {
        let dir = TestDir::new("ipam-edge-ex").unwrap();
        let mut conf = mk_conf("edge", &data_dir(&dir), range.clone());
        conf["ipam"]["exclude"] = json!(exclude);
        for (n, address) in want.iter().enumerate() {
            let r = run_bounded(binary, &Invocation::new("ADD", format!("c{n}")), &conf);
            assert_eq!(
                r.address(),
                *address,
                "{range} excluding {exclude:?}, ADD {n}"
            );
        }
        let r = run_bounded(binary, &Invocation::new("ADD", "last"), &conf);
        assert_eq!(r.code(), 100, "{range} excluding {exclude:?}: {}", r.raw);
    }
}

#[test]
fn edge_ranges_give_clear_errors_or_right_addresses_in_the_test_build() {
    check_all(plugin());
}

/// The release build of the binary, in a target directory of its own: the one this test runs
/// from is locked by the `cargo test` that started it.
fn release_binary() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        let target = plugin()
            .parent()
            .and_then(Path::parent)
            .expect("target dir")
            .join("edge-release");
        let cargo = std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into());
        let status = Command::new(cargo)
            .args([
                "build",
                "--release",
                "--quiet",
                "-p",
                "nauti-ipam",
                "--bin",
                "nauti-ipam",
            ])
            .arg("--target-dir")
            .arg(&target)
            .current_dir(env!("CARGO_MANIFEST_DIR"))
            .status()
            .expect("run cargo build --release");
        assert!(status.success(), "release build of nauti-ipam failed");
        target.join("release/nauti-ipam")
    })
}

#[test]
fn edge_ranges_give_clear_errors_or_right_addresses_in_the_release_build() {
    check_all(release_binary());
}
