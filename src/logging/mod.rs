//! Logging setup for the `zerolog` elements: `tracing` to stderr, configured by an optional
//! TOML file (`-l FILE`) and by `RUST_LOG`.
//!
//! The file format (every key optional):
//!
//! ```toml
//! # tracing filter directives: a level, or per-module levels
//! level = "info"                 # e.g. "warn,zerolog::receiver=debug"
//! # text (human), compact, or json (one object per line)
//! format = "text"
//! # where to write: "stderr" (default) or a file path, appended to
//! output = "/var/log/zerolog/receiver.log"
//! # include timestamps (journald adds its own, so zerologd turns them off)
//! timestamps = true
//! ```
//!
//! Without a file, lines carry no timestamp when `JOURNAL_STREAM` (systemd) or
//! `ZEROLOG_SUPERVISED` (zerologd) is set: those stamp lines themselves. When stderr is the
//! journal itself, entries go to journald natively instead ([`journal`]): with the priority of
//! their level and the program they are about in `ZEROLOG_PROGRAM`.
//!
//! `RUST_LOG`, when set, overrides `level`. Logs never go to stdout: the `stdout` worker owns it.

use std::fs::OpenOptions;
use std::path::{Path, PathBuf};
use std::sync::Mutex;

use serde::Deserialize;
use tracing_subscriber::layer::SubscriberExt;
use tracing_subscriber::util::SubscriberInitExt;
use tracing_subscriber::EnvFilter;

pub mod journal;

/// Output format of log lines.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum LogFormat {
    #[default]
    /// Human-readable lines (the default).
    Text,
    /// Shorter human-readable lines.
    Compact,
    /// One JSON object per line.
    Json,
}

/// A logging configuration file.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields, default)]
pub struct LogConfig {
    /// Key `level`: a tracing filter (`info`, `warn,zerolog::receiver=debug`); default `info`.
    pub level: String,
    /// Key `format`: `text` (default), `compact` or `json`.
    pub format: LogFormat,
    /// Key `output`: `stderr` (default) or a file path, appended to.
    pub output: String,
    /// Key `timestamps`: include a timestamp in each line (default true).
    pub timestamps: bool,
}

impl Default for LogConfig {
    fn default() -> Self {
        LogConfig {
            level: "info".into(),
            format: LogFormat::Text,
            output: "stderr".into(),
            timestamps: true,
        }
    }
}

/// A logging configuration that cannot be used.
#[derive(Debug, thiserror::Error)]
pub enum LogConfigError {
    #[error("cannot read log config {path}: {source}")]
    /// The file cannot be read.
    Read {
        /// The file that was read.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    #[error("invalid log config {path}: {message}")]
    /// The file is not valid TOML or has an unknown key.
    Parse {
        /// The file that was read.
        path: PathBuf,
        /// What is wrong, with line and column.
        message: String,
    },
    #[error("log config {path}: invalid level '{level}': {message}")]
    /// The `level` key is not a valid tracing filter.
    Level {
        /// The file that was read.
        path: PathBuf,
        /// The level, as given.
        level: String,
        /// Why it is invalid.
        message: String,
    },
    #[error("log config {path}: cannot open output {output}: {source}")]
    /// The `output` file cannot be opened.
    Output {
        /// The file that was read.
        path: PathBuf,
        /// The output, as given.
        output: String,
        /// What the operating system said.
        source: std::io::Error,
    },
}

impl LogConfig {
    /// Reads and parses a log config file; errors name the file and, for syntax errors, the
    /// line and column.
    pub fn load(path: &Path) -> Result<Self, LogConfigError> {
        let text = std::fs::read_to_string(path).map_err(|source| LogConfigError::Read {
            path: path.to_path_buf(),
            source,
        })?;
        toml::from_str(&text).map_err(|e| LogConfigError::Parse {
            path: path.to_path_buf(),
            message: crate::config_error_message(&text, &e),
        })
    }
}

/// Installs the global subscriber. `path` is the `-l` file, if any.
pub fn init(path: Option<&Path>) -> Result<(), LogConfigError> {
    let (config, origin) = match path {
        Some(p) => (LogConfig::load(p)?, p.to_path_buf()),
        None => {
            // Under zerologd or journald, the collector stamps each line already.
            let stamped_elsewhere = std::env::var_os("ZEROLOG_SUPERVISED").is_some()
                || std::env::var_os("JOURNAL_STREAM").is_some();
            let config = LogConfig {
                timestamps: !stamped_elsewhere,
                ..LogConfig::default()
            };
            (config, PathBuf::from("(defaults)"))
        }
    };
    let filter = match std::env::var("RUST_LOG") {
        Ok(v) if !v.is_empty() => EnvFilter::new(v),
        _ => EnvFilter::try_new(&config.level).map_err(|e| LogConfigError::Level {
            path: origin.clone(),
            level: config.level.clone(),
            message: e.to_string(),
        })?,
    };
    if path.is_none() && journal::stderr_is_journal() {
        if let Ok(layer) = journal::Journal::new(&identifier()) {
            // try_init: a second init (tests, embedding) keeps the first subscriber.
            let _ = tracing_subscriber::registry()
                .with(filter)
                .with(layer)
                .try_init();
            return Ok(());
        }
    }
    let writer: Box<dyn Fn() -> Box<dyn std::io::Write> + Send + Sync> =
        if config.output == "stderr" {
            Box::new(|| Box::new(std::io::stderr()))
        } else {
            let file = OpenOptions::new()
                .create(true)
                .append(true)
                .open(&config.output)
                .map_err(|source| LogConfigError::Output {
                    path: origin.clone(),
                    output: config.output.clone(),
                    source,
                })?;
            let file = std::sync::Arc::new(Mutex::new(file));
            Box::new(move || Box::new(SharedFile(file.clone())))
        };
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
        .with_writer(writer)
        .with_ansi(false);
    // try_init: a second init (tests, embedding) keeps the first subscriber.
    let _ = match (config.format, config.timestamps) {
        (LogFormat::Json, _) => builder.json().try_init(),
        (LogFormat::Compact, true) => builder.compact().try_init(),
        (LogFormat::Compact, false) => builder.compact().without_time().try_init(),
        (LogFormat::Text, true) => builder.try_init(),
        (LogFormat::Text, false) => builder.without_time().try_init(),
    };
    Ok(())
}

/// This program's name, as journald's `SYSLOG_IDENTIFIER`.
fn identifier() -> String {
    std::env::args_os()
        .next()
        .and_then(|a| {
            Path::new(&a)
                .file_name()
                .map(|n| n.to_string_lossy().into_owned())
        })
        .unwrap_or_else(|| "zerolog".into())
}

struct SharedFile(std::sync::Arc<Mutex<std::fs::File>>);

impl std::io::Write for SharedFile {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap_or_else(|e| e.into_inner()).write(buf)
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}
