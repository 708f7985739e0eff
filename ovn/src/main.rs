//! `nauti-ovnmaster`: the cluster controller of Nauti. Everything but flag parsing lives in
//! `nauti_ovn::master`, so tests can run it in-process too.

use clap::Parser as _;
use nauti_ovn::master::{Args, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let err = anyhow::Error::from(err);
            tracing::error!(error = format!("{err:#}"), "nauti-ovnmaster stopped");
            eprintln!("nauti-ovnmaster: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
