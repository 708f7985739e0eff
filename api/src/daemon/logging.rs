use std::fs::{File, OpenOptions};
use std::io::{IsTerminal, Write};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex, PoisonError};

use clap::{Args, ValueEnum};
use tracing_subscriber::EnvFilter;
use tracing_subscriber::fmt::MakeWriter;

/// The log flags every daemon takes.
#[derive(Clone, Debug, Args)]
pub struct LogArgs {
    /// Log format.
    #[arg(long, env = "NAUTI_LOG_FORMAT", value_enum, default_value_t = LogFormat::Text)]
    pub log_format: LogFormat,

    /// Log filter (tracing `EnvFilter` syntax, e.g. `info,nauti_nri=debug`).
    #[arg(long, env = "NAUTI_LOG", default_value = "info")]
    pub log: String,

    /// Append log lines to this file instead of writing them to stderr.
    #[arg(long, env = "NAUTI_LOG_FILE")]
    pub log_file: Option<PathBuf>,
}

/// How log lines look.
#[derive(Clone, Copy, Debug, PartialEq, Eq, ValueEnum)]
pub enum LogFormat {
    /// Human-readable lines.
    Text,
    /// One JSON object per line.
    Json,
}

/// The log settings cannot work.
#[derive(Debug, thiserror::Error)]
pub enum LogError {
    /// The filter does not parse.
    #[error("invalid log filter {filter:?}: {reason}")]
    Filter {
        /// The filter given.
        filter: String,
        /// The parser's complaint.
        reason: String,
    },
    /// The log file cannot be opened for appending.
    #[error("cannot open the log file {path}")]
    File {
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
}

/// Where log lines go: stderr until a file is chosen. A daemon may learn its log file only after
/// start-up (a plugin that containerd launches gets its settings in `Configure`, with stderr
/// pointing nowhere), so the file can be switched while the subscriber is installed.
#[derive(Clone, Debug, Default)]
pub struct LogSink {
    file: Arc<Mutex<Option<Arc<File>>>>,
}

impl LogSink {
    /// From now on, appends log lines to `path`.
    pub fn log_to_file(&self, path: &Path) -> Result<(), LogError> {
        let file = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(|source| LogError::File {
                path: path.to_path_buf(),
                source,
            })?;
        *self.file.lock().unwrap_or_else(PoisonError::into_inner) = Some(Arc::new(file));
        Ok(())
    }

    fn current(&self) -> Option<Arc<File>> {
        self.file
            .lock()
            .unwrap_or_else(PoisonError::into_inner)
            .clone()
    }
}

/// One log line's writer.
#[derive(Debug)]
pub enum SinkWriter {
    /// The chosen file.
    File(Arc<File>),
    /// Standard error.
    Stderr(std::io::Stderr),
}

impl Write for SinkWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Self::File(file) => (&**file).write(buf),
            Self::Stderr(stderr) => stderr.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Self::File(file) => (&**file).flush(),
            Self::Stderr(stderr) => stderr.flush(),
        }
    }
}

impl<'a> MakeWriter<'a> for LogSink {
    type Writer = SinkWriter;

    fn make_writer(&'a self) -> SinkWriter {
        match self.current() {
            Some(file) => SinkWriter::File(file),
            None => SinkWriter::Stderr(std::io::stderr()),
        }
    }
}

impl LogArgs {
    /// Installs the global tracing subscriber (text or JSON, to stderr or `--log-file`) and
    /// returns its sink. A subscriber installed before (tests running a daemon in-process) is
    /// kept, and the sink returned then goes unused.
    pub fn init(&self) -> Result<LogSink, LogError> {
        let filter = EnvFilter::try_new(&self.log).map_err(|err| LogError::Filter {
            filter: self.log.clone(),
            reason: err.to_string(),
        })?;
        let sink = LogSink::default();
        if let Some(path) = &self.log_file {
            sink.log_to_file(path)?;
        }
        // Colours only on a terminal: in a pod or a log file they are noise.
        let ansi = self.log_file.is_none() && std::io::stderr().is_terminal();
        let builder = tracing_subscriber::fmt()
            .with_env_filter(filter)
            .with_ansi(ansi)
            .with_writer(sink.clone());
        let _ = match self.log_format {
            LogFormat::Text => builder.try_init(),
            LogFormat::Json => builder.json().try_init(),
        };
        Ok(sink)
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
        assert!(
            matches!(&err, LogError::Filter { filter, .. } if filter == "info,foo=loud"),
            "{err:?}"
        );
        assert!(err.to_string().contains("invalid log filter"), "{err}");
    }

    #[test]
    fn the_sink_switches_from_stderr_to_a_file() {
        let dir = std::env::temp_dir().join(format!("nauti-log-sink-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let path = dir.join("daemon.log");
        let sink = LogSink::default();
        assert!(matches!(sink.make_writer(), SinkWriter::Stderr(_)));
        sink.log_to_file(&path).unwrap();
        sink.make_writer().write_all(b"first\n").unwrap();
        sink.make_writer().write_all(b"second\n").unwrap();
        assert_eq!(std::fs::read_to_string(&path).unwrap(), "first\nsecond\n");
        let err = sink
            .log_to_file(&dir.join("missing/daemon.log"))
            .unwrap_err();
        assert!(err.to_string().contains("missing/daemon.log"), "{err}");
        std::fs::remove_dir_all(&dir).unwrap();
    }
}
