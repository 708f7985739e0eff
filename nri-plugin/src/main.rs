//! `nauti-nri`: the Nauti NRI plugin. Everything but flag parsing lives in the library.

use clap::Parser as _;
use nauti_nri::cli::{Args, run};
use nauti_nri::handler::error_chain;

#[tokio::main]
async fn main() -> std::process::ExitCode {
    match run(Args::parse()).await {
        Ok(()) => std::process::ExitCode::SUCCESS,
        Err(err) => {
            let text = error_chain(&err);
            tracing::error!(error = %text, "nauti-nri stopped");
            eprintln!("nauti-nri: {text}");
            std::process::ExitCode::FAILURE
        }
    }
}
