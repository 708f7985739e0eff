//! `make demo`: the seed's demo across clusters (see `nauti_testbed::seed_demo`). With `KEEP=1`
//! the clusters stay up after the page was fetched, until Ctrl-C, for a user to play with.

use std::process::ExitCode;

use nauti_testbed::seed_demo::{self, Narrator, SeedDemo, Stdout};
use nix::sys::signal::{SigSet, Signal};

fn main() -> ExitCode {
    let narrator = Stdout;
    let keep = std::env::var("KEEP").is_ok_and(|v| !v.is_empty() && v != "0");
    // Blocked before any thread starts, so that every thread inherits the mask and Ctrl-C ends
    // the wait below (the bed and the releases are then removed as usual).
    let mut signals = SigSet::empty();
    signals.add(Signal::SIGINT);
    signals.add(Signal::SIGTERM);
    if keep && let Err(e) = signals.thread_block() {
        eprintln!("block signals: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = seed_demo::build_images(&narrator) {
        eprintln!("images: {e}");
        return ExitCode::FAILURE;
    }
    let demo = match SeedDemo::install(&narrator) {
        Ok(demo) => demo,
        Err(e) => {
            eprintln!("install: {e}");
            return ExitCode::FAILURE;
        }
    };
    if let Err(e) = demo.fetch_across() {
        eprintln!("the page did not come across: {e}");
        return ExitCode::FAILURE;
    }
    if let Err(e) = demo.summary() {
        eprintln!("summary: {e}");
    }
    if keep {
        narrator.say("==> KEEP: the clusters stay up until Ctrl-C; reach them with");
        for (name, kubeconfig) in demo.kubeconfigs() {
            narrator.say(&format!(
                "    {name}: kubectl --kubeconfig {}",
                kubeconfig.display()
            ));
        }
        let _ = signals.wait();
    }
    let outcome = match demo.uninstall() {
        Ok(left) if left.nauti.is_empty() => ExitCode::SUCCESS,
        Ok(_) => ExitCode::FAILURE,
        Err(e) => {
            eprintln!("uninstall: {e}");
            ExitCode::FAILURE
        }
    };
    narrator.say(&format!(
        "==> demo done in {:.0} s; removing the clusters",
        demo.elapsed().as_secs_f64()
    ));
    drop(demo);
    outcome
}
