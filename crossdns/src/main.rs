//! `crossdns`: DNS for services exported across clusters. Everything but flag parsing lives in
//! the library, so tests can run it in-process too.

use clap::Parser as _;
use nauti_crossdns::{Args, run};

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let err = anyhow::Error::from(err);
            tracing::error!(error = format!("{err:#}"), "crossdns stopped");
            eprintln!("crossdns: {err:#}");
            std::process::ExitCode::FAILURE
        }
    }
}
