//! A bed whose owner is killed (SIGKILL: no destructor runs) is swept by the next bed that starts:
//! no process, namespace, mount, cgroup, log link, folder or record of it is left.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use std::io::{BufRead, BufReader};
use std::process::{Command, Stdio};
use std::sync::mpsc;
use std::time::Duration;

use nauti_testbed::cluster_bed::sweep::{Record, beds_dir};
use nauti_testbed::cluster_bed::{ClusterBed, ClusterSpec};
use nauti_testbed::require_root;

#[test]
fn a_killed_bed_is_swept_by_the_next_one() {
    require_root!();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nauti-cluster-bed"))
        .arg("solo:1")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let stdout = child.stdout.take().unwrap();
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines().map_while(Result::ok) {
            if let Some(rest) = line.strip_prefix("bed ") {
                let _ = tx.send(rest.split_whitespace().next().unwrap_or("").to_owned());
                return;
            }
        }
    });
    let id = match rx.recv_timeout(Duration::from_secs(240)) {
        Ok(id) => id,
        Err(_) => {
            let _ = child.kill();
            let _ = child.wait();
            panic!("the child's bed never became ready");
        }
    };
    let record = Record::parse(&std::fs::read_to_string(beds_dir().join(&id)).unwrap());
    assert!(record.owner.is_some(), "the bed {id} recorded no owner");

    child.kill().unwrap();
    child.wait().unwrap();
    let left = ClusterBed::leftovers_of(&id, &record);
    for kind in ["process", "netns", "mount", "cgroup", "folder", "record"] {
        assert!(
            left.iter().any(|l| l.starts_with(kind)),
            "a killed bed should leave a {kind} behind for the sweeper; left: {left:?}"
        );
    }

    let (early_id, early_record) = killed_while_starting();

    // The next run starts clean and works: a cluster of its own comes up on the same machine.
    let next = ClusterBed::start("after-kill", &[ClusterSpec::hub("again", 1)])
        .expect("a bed starts after a killed one");
    let nodes = next
        .cluster("again")
        .unwrap()
        .kubectl(&[
            "get",
            "nodes",
            "-o",
            "jsonpath={range .items[*]}{.metadata.name}={.status.conditions[?(@.type==\"Ready\")].status}{\"\\n\"}{end}",
        ])
        .unwrap();
    let ready: Vec<&str> = nodes.lines().filter(|l| l.ends_with("=True")).collect();
    assert_eq!(
        ready.len(),
        1,
        "the bed after the kill has no Ready node: {nodes}"
    );
    let left = ClusterBed::leftovers_of(&id, &record);
    assert!(left.is_empty(), "the killed bed {id} left: {left:#?}");
    let left = ClusterBed::leftovers_of(&early_id, &early_record);
    assert!(
        left.is_empty(),
        "the bed {early_id} killed while starting left: {left:#?}"
    );
    let next_id = next.id().to_owned();
    let next_record = next.record();
    drop(next);
    let left = ClusterBed::leftovers_of(&next_id, &next_record);
    assert!(left.is_empty(), "the second bed {next_id} left: {left:#?}");
}

/// A bed killed while it starts, once its control plane runs and its first node is on the way
/// (the record names the run folder, written right after the control plane is up).
fn killed_while_starting() -> (String, Record) {
    let before: Vec<String> = bed_ids();
    let mut child = Command::new(env!("CARGO_BIN_EXE_nauti-cluster-bed"))
        .arg("early:1")
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let deadline = std::time::Instant::now() + Duration::from_secs(120);
    let found = loop {
        let new = bed_ids().into_iter().find(|id| !before.contains(id));
        let record = new.as_ref().map(|id| {
            Record::parse(&std::fs::read_to_string(beds_dir().join(id)).unwrap_or_default())
        });
        if let (Some(id), Some(record)) = (new, record)
            && record.paths.len() >= 2
        {
            // Into the first node's start: its namespace, chassis and containerd.
            std::thread::sleep(Duration::from_millis(1500));
            break Some((id, record));
        }
        if std::time::Instant::now() >= deadline {
            break None;
        }
        std::thread::sleep(Duration::from_millis(100));
    };
    child.kill().unwrap();
    child.wait().unwrap();
    found.expect("the second child's bed never got as far as its control plane")
}

fn bed_ids() -> Vec<String> {
    std::fs::read_dir(beds_dir())
        .map(|entries| {
            entries
                .flatten()
                .filter_map(|e| e.file_name().to_str().map(str::to_owned))
                .collect()
        })
        .unwrap_or_default()
}
