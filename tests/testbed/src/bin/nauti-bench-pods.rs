//! `make bench` (NRI part): 100 pods created 10 at a time on one node with `nauti-nri`; the
//! plugin's RunPodSandbox handling time (p50, p99, from its own log) and pod start-up time through
//! CRI with the plugin against the same containerd without it, as a ratio.

use std::io::Write;
use std::path::PathBuf;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nauti_testbed::PodSpec;
use nauti_testbed::node_bed::NodeBed;

type BenchResult<T> = Result<T, Box<dyn std::error::Error + Send + Sync>>;

const PODS: usize = 100;
/// Pods started at once (`NAUTI_BENCH_PARALLEL` overrides, e.g. 1 for the uncontended figure).
fn parallel() -> usize {
    std::env::var("NAUTI_BENCH_PARALLEL")
        .ok()
        .and_then(|v| v.parse().ok())
        .filter(|n| *n > 0)
        .unwrap_or(10)
}

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
}

#[tokio::main(flavor = "multi_thread", worker_threads = 2)]
async fn main() -> ExitCode {
    match bench().await {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn percentile(sorted: &[f64], p: f64) -> f64 {
    if sorted.is_empty() {
        return f64::NAN;
    }
    let rank = ((p / 100.0) * (sorted.len() as f64 - 1.0)).round() as usize;
    sorted[rank.min(sorted.len() - 1)]
}

/// Runs every spec through `crictl runp`, [`parallel`] at a time; returns each start-up time in ms.
fn start_all(bed: &NodeBed, specs: Vec<PodSpec>) -> BenchResult<Vec<f64>> {
    let mut times = Vec::new();
    for chunk in specs.chunks(parallel()) {
        let results: Vec<BenchResult<f64>> = std::thread::scope(|scope| {
            let handles: Vec<_> = chunk
                .iter()
                .map(|spec| {
                    scope.spawn(move || -> BenchResult<f64> {
                        let t0 = Instant::now();
                        bed.ctrd.run_pod(spec)?;
                        Ok(t0.elapsed().as_secs_f64() * 1e3)
                    })
                })
                .collect();
            handles
                .into_iter()
                .map(|h| {
                    h.join()
                        .unwrap_or_else(|_| Err("pod thread panicked".into()))
                })
                .collect()
        });
        for r in results {
            times.push(r?);
        }
    }
    times.sort_by(f64::total_cmp);
    Ok(times)
}

/// The sorted `elapsed_us` (as ms) of every JSON log line with `message`, one per pod.
fn logged_ms(log: &str, message: &str) -> BenchResult<Vec<f64>> {
    let mut ms: Vec<f64> = log
        .lines()
        .filter_map(|line| serde_json::from_str::<serde_json::Value>(line).ok())
        .filter(|v| v["fields"]["message"] == message)
        .filter_map(|v| v["fields"]["elapsed_us"].as_f64())
        .map(|us| us / 1e3)
        .collect();
    ms.sort_by(f64::total_cmp);
    if ms.len() != PODS {
        return Err(format!(
            "plugin logged `{message}` {} times, expected {PODS}",
            ms.len()
        )
        .into());
    }
    Ok(ms)
}

async fn bench() -> BenchResult<()> {
    let plugin: PathBuf = std::env::var_os("NAUTI_NRI_BIN")
        .map(PathBuf::from)
        .ok_or("NAUTI_NRI_BIN must name the nauti-nri binary")?;
    let mut bed = NodeBed::start("bench-pods", plugin, &["--log-format", "json"]).await?;

    let mut with = Vec::new();
    let mut without = Vec::new();
    for i in 0..PODS {
        with.push(bed.create_pod_object(&format!("with-{i}"), &[]).await?);
        without.push(bed.create_pod_object(&format!("without-{i}"), &[]).await?);
    }
    let startup_with = start_all(&bed, with)?;
    // The annotations follow the sandbox's answer: wait for the last ones before reading the log.
    for i in 0..PODS {
        bed.annotations_when_allocated(&format!("with-{i}")).await?;
    }
    let log = std::fs::read_to_string(bed.plugin_log())?;
    let handling = logged_ms(&log, "second NIC plumbed")?;
    let annotated = logged_ms(&log, "pod annotated")?;

    // Both runs start from an empty node: the pods of the first would otherwise load the second.
    bed.ctrd.remove_all_pods()?;
    bed.kill_plugin();
    tokio::time::sleep(Duration::from_secs(1)).await;
    let startup_without = start_all(&bed, without)?;

    let (p50, p99) = (percentile(&handling, 50.0), percentile(&handling, 99.0));
    let (a50, a99) = (percentile(&annotated, 50.0), percentile(&annotated, 99.0));
    let (w50, w99) = (
        percentile(&startup_with, 50.0),
        percentile(&startup_with, 99.0),
    );
    let (o50, o99) = (
        percentile(&startup_without, 50.0),
        percentile(&startup_without, 99.0),
    );
    say(format!(
        "pods: {PODS} with the plugin, {PODS} without, {} at a time",
        parallel()
    ));
    say(format!(
        "plugin RunPodSandbox handling: p50 {p50:.1} ms, p99 {p99:.1} ms"
    ));
    say(format!(
        "annotations written (from the sandbox event): p50 {a50:.1} ms, p99 {a99:.1} ms"
    ));
    say(format!(
        "pod start-up with nauti-nri:    p50 {w50:.0} ms, p99 {w99:.0} ms"
    ));
    say(format!(
        "pod start-up without a plugin:  p50 {o50:.0} ms, p99 {o99:.0} ms"
    ));
    say(format!(
        "ratio with/without: p50 {:.2}x, p99 {:.2}x",
        w50 / o50,
        w99 / o99
    ));
    Ok(())
}
