use std::io::IsTerminal;

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;

/// The log flags every daemon takes.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "NAUTI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,nauti_nri=debug`).
    #[arg(long, env = "NAUTI_LOG", default_value = "info")]
    pub log: String,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The log filter does not parse.
#[derive(Debug, thiserror::Error)]
#[error("invalid log filter {filter:?}: {reason}")]
pub struct LogError {
    /// The filter given.
    pub filter: String,
    /// The parser's complaint.
    pub reason: String,
}

impl LogArgs {
    /// Installs the global tracing subscriber (stderr, text or JSON). A subscriber installed
    /// before (tests running a daemon in-process) is kept.
    pub fn init(&self) -> Result<(), LogError> {
        let filter = EnvFilter::try_new(&self.log).map_err(|err| LogError {
            filter: self.log.clone(),
            reason: err.to_string(),
        })?;
        // Colours only on a terminal: in a pod or a log file they are noise.
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(std::io::stderr().is_terminal())
            .with_writer(std::io::stderr);
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use clap::Parser;

    use super::*;

    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        log: LogArgs,
    }

    #[test]
    fn text_and_info_by_default_json_on_request() {
        let cli = Cli::parse_from(["d"]);
        assert_eq!(cli.log.log_format, LogFormat::Text);
        assert_eq!(cli.log.log, "info");
        let cli = Cli::parse_from(["d", "--log-format", "json"]);
        assert_eq!(cli.log.log_format, LogFormat::Json);
    }

    #[test]
    fn a_bad_filter_is_named() {
        let cli = Cli::parse_from(["d", "--log", "info,foo=loud"]);
        let err = cli.log.init().unwrap_err();
        assert_eq!(err.filter, "info,foo=loud");
        assert!(err.to_string().contains("invalid log filter"), "{err}");
    }
}
