//! Benchmark of the OVSDB client against `ovn-nbctl`, on a private ovsdb-server (run by
//! `tests/bench/ovn.sh`):
//! 1. create and delete 1,000 logical switch ports: this client in batched transactions
//!    (`ensure_logical_switch_ports` / `remove_logical_switch_ports`, BATCH ports each), against
//!    `ovn-nbctl`, one process per port, in the same run on the same server;
//! 2. steady-state memory of a monitor cache holding 10,000 ports: live heap bytes from a counting
//!    allocator (primary figure) and the RSS delta (for reference).

#![allow(clippy::print_stdout, clippy::unwrap_used, clippy::expect_used)]

use std::alloc::System;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use nauti_ovn::core::nb::DB;
use nauti_ovn::{
    Client, ClientConfig, Endpoint, LogicalSwitch, LogicalSwitchPort, MonitorRequest, Northbound,
};
use nauti_testbed::TestDir;
use nauti_testbed::ovn::{NB_SCHEMA, OvsdbServer, RunDir};
use stats_alloc::{INSTRUMENTED_SYSTEM, Region, StatsAlloc};

#[global_allocator]
static GLOBAL: &StatsAlloc<System> = &INSTRUMENTED_SYSTEM;

fn env_usize(name: &str, default: usize) -> usize {
    std::env::var(name)
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or(default)
}

fn mk_port(i: usize) -> LogicalSwitchPort {
    let (hi, lo) = (i / 250, i % 250 + 2);
    LogicalSwitchPort::new(format!("default_pod-{i}"))
        .with_address(
            &format!("0a:58:0a:70:{hi:02x}:{lo:02x}"),
            &[&format!("10.112.{hi}.{lo}")],
        )
        .with_external_id("namespace", "default")
        .with_external_id("pod", format!("pod-{i}"))
        .with_external_id("node", "node1")
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find(|l| l.starts_with("VmRSS:"))
                .and_then(|l| l.split_whitespace().nth(1))
                .and_then(|v| v.parse().ok())
        })
        .unwrap_or(0)
}

fn nbctl(remote: &str, args: &[&str]) {
    let out = Command::new("ovn-nbctl")
        .arg(format!("--db={remote}"))
        .args(args)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "ovn-nbctl {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn secs(d: Duration) -> f64 {
    d.as_secs_f64()
}

#[tokio::main(flavor = "current_thread")]
async fn main() {
    let ports = env_usize("OVN_BENCH_PORTS", 1000);
    let batch = env_usize("OVN_BENCH_BATCH", 100);
    let cached = env_usize("OVN_BENCH_CACHED", 10_000);

    let dir = TestDir::new("ovn-bench").unwrap();
    let run = RunDir::new("novb").unwrap();
    let server =
        OvsdbServer::start("nb", Path::new(NB_SCHEMA), run.path(), None, &dir.log("nb")).unwrap();
    let remote = server.remote();
    let mut config = ClientConfig::new(Endpoint::parse(&remote).unwrap());
    config.request_timeout = Duration::from_secs(120);
    let client = Client::connect(config.clone()).await.unwrap();
    let nb = Northbound::new(client.clone());

    // --- 1. create + delete N ports -----------------------------------------------------------
    let want: Vec<LogicalSwitchPort> = (0..ports).map(mk_port).collect();
    nb.ensure_logical_switch(&LogicalSwitch::new("bench-lib"))
        .await
        .unwrap();
    let t = Instant::now();
    for chunk in want.chunks(batch) {
        nb.ensure_logical_switch_ports("bench-lib", chunk)
            .await
            .unwrap();
    }
    let lib_create = t.elapsed();
    assert_eq!(
        nb.list_logical_switch_ports("bench-lib")
            .await
            .unwrap()
            .len(),
        ports
    );
    let names: Vec<&str> = want.iter().map(|p| p.name.as_str()).collect();
    let t = Instant::now();
    for chunk in names.chunks(batch) {
        assert_eq!(
            nb.remove_logical_switch_ports(chunk).await.unwrap(),
            chunk.len()
        );
    }
    let lib_delete = t.elapsed();

    nbctl(&remote, &["ls-add", "bench-cli"]);
    let t = Instant::now();
    for p in &want {
        let addr = p.addresses[0].as_str();
        nbctl(
            &remote,
            &[
                "lsp-add",
                "bench-cli",
                &p.name,
                "--",
                "lsp-set-addresses",
                &p.name,
                addr,
                "--",
                "lsp-set-port-security",
                &p.name,
                addr,
                "--",
                "set",
                "logical_switch_port",
                &p.name,
                "external_ids:namespace=default",
                &format!("external_ids:pod={}", p.external_ids["pod"]),
                "external_ids:node=node1",
            ],
        );
    }
    let cli_create = t.elapsed();
    assert_eq!(
        nb.list_logical_switch_ports("bench-cli")
            .await
            .unwrap()
            .len(),
        ports
    );
    let t = Instant::now();
    for p in &want {
        nbctl(&remote, &["lsp-del", &p.name]);
    }
    let cli_delete = t.elapsed();

    let lib_total = lib_create + lib_delete;
    let cli_total = cli_create + cli_delete;
    println!("create+delete {ports} logical switch ports (same ovsdb-server, unix socket)");
    println!(
        "  nauti-ovn, batches of {batch}:   create {:.3} s, delete {:.3} s, total {:.3} s ({:.0} ports/s)",
        secs(lib_create),
        secs(lib_delete),
        secs(lib_total),
        2.0 * ports as f64 / secs(lib_total)
    );
    println!(
        "  ovn-nbctl, one call per port: create {:.3} s, delete {:.3} s, total {:.3} s ({:.0} ports/s)",
        secs(cli_create),
        secs(cli_delete),
        secs(cli_total),
        2.0 * ports as f64 / secs(cli_total)
    );
    println!(
        "  ratio ovn-nbctl / nauti-ovn: {:.1}x",
        secs(cli_total) / secs(lib_total)
    );

    // --- 2. memory of a cache with M ports ------------------------------------------------------
    let want: Vec<LogicalSwitchPort> = (0..cached).map(mk_port).collect();
    for chunk in want.chunks(500) {
        nb.ensure_logical_switch_ports("bench-lib", chunk)
            .await
            .unwrap();
    }
    drop(want);
    let rss_before = rss_kib();
    let region = Region::new(GLOBAL);
    let watcher = Client::connect(config).await.unwrap();
    let monitor = watcher
        .monitor(
            DB,
            vec![
                MonitorRequest::table("Logical_Switch_Port"),
                MonitorRequest::table("Logical_Switch"),
            ],
        )
        .await
        .unwrap();
    assert_eq!(monitor.read(|c| c.len("Logical_Switch_Port")), cached);
    // Let transient buffers (the initial reply's text and JSON tree) go before measuring.
    tokio::time::sleep(Duration::from_millis(200)).await;
    let stats = region.change();
    let live = stats.bytes_allocated as i64 - stats.bytes_deallocated as i64
        + stats.bytes_reallocated as i64;
    let rss_after = rss_kib();
    println!(
        "steady-state memory of a client monitoring {cached} ports (Logical_Switch_Port + Logical_Switch):"
    );
    println!(
        "  counting allocator, live heap: {:.1} MiB ({:.0} bytes per port)",
        live as f64 / 1048576.0,
        live as f64 / cached as f64
    );
    println!(
        "  RSS delta: {:.1} MiB (includes freed-but-kept allocator pages)",
        (rss_after as f64 - rss_before as f64) / 1024.0
    );
    drop(monitor);
}
