//! `octopus`: Nauti's cross-cluster gateway. Everything but flag parsing lives in the library.

use clap::Parser as _;
use nauti_octopus::cli::{Args, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            tracing::error!(error = format!("{err:#}"), "octopus stopped");
            eprintln!("octopus: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
