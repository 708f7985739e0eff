//! `nautictl benchmark` on real clusters (ClusterBed: a hub and two members behind NAT, Nauti
//! installed as `nauti-octopus --test crosscluster` installs it): from east to west, the table
//! names the cross-cluster and the same-cluster path with a throughput and a latency above zero,
//! and no benchmark pod is left in either cluster; an unknown context is a clear error.
//!
//! The built `nautictl` runs on the machine against the clusters' API servers (through the bed's
//! relays), as an operator's would; the pods run the bed's tools image.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

#[path = "../../../octopus/tests/crosscluster/cluster.rs"]
#[allow(
    dead_code,
    reason = "shared with octopus's --test crosscluster, which uses the rest"
)]
mod cluster;
#[path = "../support/mod.rs"]
#[allow(dead_code, reason = "shared with the other test binaries")]
mod support;

use std::time::Instant;

use nauti_testbed::cluster_bed::Cluster;
use nauti_testbed::require_root;

use support::{assert_fails_naming, nautictl};

/// The benchmark pods left in `cluster`, as `kubectl` lists them.
fn benchmark_pods(cluster: &Cluster) -> String {
    cluster
        .kubectl(&[
            "get",
            "pods",
            "--all-namespaces",
            "-l",
            "app.kubernetes.io/name=nauti-benchmark",
            "-o",
            "name",
        ])
        .unwrap()
}

/// The number after `label` in `line` (`250.0 Mbit/s` after nothing but spaces).
fn number_before(line: &str, unit: &str) -> f64 {
    let before = line
        .split(unit)
        .next()
        .unwrap_or_else(|| panic!("no {unit:?} in {line:?}"));
    before
        .split_whitespace()
        .last()
        .and_then(|n| n.parse().ok())
        .unwrap_or_else(|| panic!("no number before {unit:?} in {line:?}"))
}

#[test]
fn benchmark_measures_both_paths_and_leaves_no_pod() {
    require_root!();
    let started = Instant::now();
    let bed = cluster::start_bed("nbench", 1);
    let (east, west) = cluster::install(&bed);
    eprintln!("bed and Nauti ready after {:?}", started.elapsed());

    let west_kubeconfig = west.cluster().kubeconfig().display().to_string();
    let bench = Instant::now();
    let out = nautictl(
        east.cluster().kubeconfig(),
        &[
            "benchmark",
            "--to-kubeconfig",
            &west_kubeconfig,
            "--size-mib",
            "4",
            "--pings",
            "5",
        ],
    );
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    eprintln!(
        "benchmark in {:?}:\n{stdout}--- stderr\n{stderr}",
        bench.elapsed()
    );
    assert_eq!(out.status.code(), Some(0), "{stdout}\n{stderr}");
    let cross = stdout
        .lines()
        .find(|l| l.starts_with("cross-cluster (east -> west)"))
        .unwrap_or_else(|| panic!("no cross-cluster row:\n{stdout}"));
    let same = stdout
        .lines()
        .find(|l| l.starts_with("same cluster (east)"))
        .unwrap_or_else(|| panic!("no same-cluster row:\n{stdout}"));
    for row in [cross, same] {
        assert!(number_before(row, " Mbit/s") > 0.0, "{stdout}");
        assert!(number_before(row, " ms") > 0.0, "{stdout}");
    }
    assert!(stdout.contains("ratio cross/same"), "{stdout}");
    assert!(
        stderr.contains("benchmark: deleting pod nauti-bench-client-"),
        "{stderr}"
    );
    for cluster in [east.cluster(), west.cluster()] {
        let left = benchmark_pods(cluster);
        assert!(
            left.trim().is_empty(),
            "{}: benchmark pods left: {left}",
            cluster.name
        );
    }

    // An unknown context of the client's cluster: exit 1 naming it, and nothing created.
    let out = nautictl(
        east.cluster().kubeconfig(),
        &[
            "benchmark",
            "--from-cluster",
            "nope",
            "--to-kubeconfig",
            &west_kubeconfig,
        ],
    );
    assert_fails_naming(&out, "the client's cluster: unknown context \"nope\"");
    assert_fails_naming(&out, "(it has: east)");
    assert!(out.stdout.is_empty());
    assert!(benchmark_pods(west.cluster()).trim().is_empty());
    eprintln!("whole test: {:?}", started.elapsed());
}
