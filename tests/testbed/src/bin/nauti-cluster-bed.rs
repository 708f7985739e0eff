//! Starts a `ClusterBed` by hand, for debugging: prints each cluster's kubeconfig and waits until
//! Ctrl-C, then tears everything down.
//!
//!     nauti-cluster-bed [name:nodes[:public]]...    (default: hub:1:public east:2 west:2)

use std::io::Write;
use std::process::ExitCode;
use std::time::{Duration, Instant};

use nauti_testbed::cluster_bed::{ClusterBed, ClusterSpec};
use nix::sys::signal::{SigSet, Signal};

fn say(line: impl AsRef<str>) {
    let mut out = std::io::stdout().lock();
    let _ = writeln!(out, "{}", line.as_ref());
}

fn parse(arg: &str) -> Result<ClusterSpec, String> {
    let mut parts = arg.split(':');
    let name = parts.next().filter(|n| !n.is_empty()).ok_or("empty name")?;
    let nodes = parts
        .next()
        .unwrap_or("1")
        .parse()
        .map_err(|e| format!("{arg}: node count: {e}"))?;
    Ok(match parts.next() {
        Some("public") => ClusterSpec::hub(name, nodes),
        None => ClusterSpec::member(name, nodes),
        Some(other) => return Err(format!("{arg}: `{other}` is not `public`")),
    })
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let specs: Result<Vec<ClusterSpec>, String> = if args.is_empty() {
        Ok(vec![
            ClusterSpec::hub("hub", 1),
            ClusterSpec::member("east", 2),
            ClusterSpec::member("west", 2),
        ])
    } else {
        args.iter().map(|a| parse(a)).collect()
    };
    let specs = match specs {
        Ok(specs) => specs,
        Err(e) => {
            eprintln!("usage: nauti-cluster-bed [name:nodes[:public]]...: {e}");
            return ExitCode::FAILURE;
        }
    };
    // Blocked before any thread starts, so that every thread inherits the mask and sigwait gets it.
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if let Err(e) = signals.thread_block() {
        eprintln!("block signals: {e}");
        return ExitCode::FAILURE;
    }
    let started = Instant::now();
    let bed = match ClusterBed::start("cluster-bed", &specs) {
        Ok(bed) => bed,
        Err(e) => {
            eprintln!("the bed did not start: {e}");
            return ExitCode::FAILURE;
        }
    };
    let ready = started.elapsed();
    say(format!(
        "bed {} ready in {:.1} s; files in {}",
        bed.id(),
        ready.as_secs_f64(),
        bed.dir()
            .map(|d| d.display().to_string())
            .unwrap_or_default()
    ));
    for (name, kubeconfig) in bed.kubeconfigs() {
        say(format!(
            "  {name}: kubectl --kubeconfig {}",
            kubeconfig.display()
        ));
    }
    let at_start = bed.usage();
    say(format!(
        "  {} processes, resident memory {} MiB",
        at_start.processes,
        at_start.rss_bytes >> 20
    ));
    if std::env::var_os("NAUTI_BED_MEASURE_IDLE").is_some() {
        let window = Duration::from_secs(60);
        let before = bed.usage();
        std::thread::sleep(window);
        let after = bed.usage();
        let cpu = after.cpu_ticks.saturating_sub(before.cpu_ticks) as f64 / 100.0;
        say(format!(
            "  idle CPU over {} s: {:.1} % of one core",
            window.as_secs(),
            100.0 * cpu / window.as_secs_f64()
        ));
    }
    say("Ctrl-C stops the bed");
    let _ = signals.wait();
    say("stopping");
    drop(bed);
    ExitCode::SUCCESS
}
