//! Bad flags and an unreachable northbound database: clear errors, retries, no panic.

use std::process::Command;
use std::time::Duration;

use nauti_testbed::require_root;

use crate::{Bed, SWITCH, eventually};

#[test]
fn bad_flags_stop_the_binary_with_an_error_naming_the_flag() {
    let cases: [(&[&str], &str); 4] = [
        (&["--cluster-id", "member-1"], "--cluster-subnet"),
        (
            &[
                "--cluster-id",
                "member-1",
                "--cluster-subnet",
                "10.200.0.0/16",
            ],
            "outside global_cidr",
        ),
        (
            &[
                "--cluster-id",
                "member-1",
                "--cluster-subnet",
                "10.113.0.0/16",
                "--ovn-nb",
                "ssl:h:1",
            ],
            "ssl:h:1",
        ),
        (
            &[
                "--cluster-id",
                "Bad_ID",
                "--cluster-subnet",
                "10.113.0.0/16",
            ],
            "cluster_id",
        ),
    ];
    for (args, words) in cases {
        let out = Command::new(env!("CARGO_BIN_EXE_nauti-ovnmaster"))
            .args(args)
            .args(["--metrics-addr", "127.0.0.1:0"])
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{args:?}: {stderr}");
        assert!(stderr.contains(words), "{args:?}: {stderr}");
        assert!(!stderr.contains("panicked"), "{args:?}: {stderr}");
    }
}

#[test]
fn json_logs_are_one_object_per_line() {
    let out = Command::new(env!("CARGO_BIN_EXE_nauti-ovnmaster"))
        .args(["--cluster-id", "member-1", "--log-format", "json"])
        .output()
        .unwrap();
    let stderr = String::from_utf8_lossy(&out.stderr);
    let first = stderr.lines().next().unwrap_or_default();
    let line: serde_json::Value = serde_json::from_str(first).unwrap();
    assert_eq!(line["level"], "ERROR", "{first}");
    assert!(
        line["fields"]["error"]
            .as_str()
            .unwrap()
            .contains("--cluster-subnet"),
        "{first}"
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn an_unreachable_northbound_database_is_retried_until_it_answers() {
    require_root!();
    let mut bed = Bed::start("master-nb-down").await;
    bed.ovn.nb_server().stop();
    let master = bed.master("a", &[]);
    let remote = bed.ovn.nb_remote();
    eventually(
        "a retry message naming the endpoint",
        Duration::from_secs(30),
        || async {
            let log = master.log_text();
            (log.contains("cannot reach the OVN northbound database") && log.contains(&remote))
                .then_some(())
        },
    )
    .await;
    let (code, body) = master.get("/readyz").await.unwrap();
    assert_eq!(code, 503);
    assert!(body.contains("northbound"), "{body}");
    assert_eq!(master.get("/healthz").await.unwrap().0, 200);

    bed.ovn.nb_server().resume().unwrap();
    let nb = bed.nb().await;
    eventually(
        "the switch after the database came back",
        Duration::from_secs(60),
        || async { nb.get_logical_switch(SWITCH).await.unwrap() },
    )
    .await;
    eventually("ready", Duration::from_secs(10), || async {
        master.get("/readyz").await.filter(|(code, _)| *code == 200)
    })
    .await;
    assert!(!master.log_text().contains("panicked"));
}
