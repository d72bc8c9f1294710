//! zerolog: a log aggregation pipeline over ZeroMQ.
//!
//! Syslog senders (rsyslog, syslog-ng, `logger`, applications) connect to the
//! [`forwarder`] over TCP or UDP. It frames the byte stream into messages ([`framing`]),
//! derives a topic from the syslog header ([`syslog`]), and publishes `[topic, message]` on a
//! ZeroMQ XPUB socket without ever dropping. Each [`receiver`] subscribes to a topic prefix and
//! pushes the message frames to a pool of [`worker`]s, which hand each message to the
//! operator's processing. Back-pressure runs end to end: a slow worker slows the sender.
//!
//! The wire protocol is that of the Python zerolog 0.3: two-frame `[topic, message]` from the
//! forwarder, one frame from the receiver to workers.

pub mod forwarder;
pub mod framing;
pub mod loggen;
pub mod logging;
pub mod process;
pub mod receiver;
pub mod signals;
pub mod stats;
pub mod supervisor;
pub mod syslog;
pub mod topology;
pub mod worker;
mod zmqutil;

pub use zmqutil::tcp_endpoint;

use std::path::PathBuf;

/// Errors of the pipeline elements.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    #[error("cannot bind {endpoint}: {source}")]
    Bind {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        endpoint: String,
        source: zmq::Error,
    },
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        addr: String,
        source: std::io::Error,
    },
    #[error("ZeroMQ error while {context}: {source}")]
    Zmq {
        context: &'static str,
        source: zmq::Error,
    },
    #[error("{context}: {source}")]
    Io {
        context: &'static str,
        source: std::io::Error,
    },
    #[error("worker program {program} not found{where_}")]
    ProgramNotFound { program: String, where_: String },
    #[error("cannot start worker program {program}: {source}")]
    Spawn {
        program: PathBuf,
        source: std::io::Error,
    },
    #[error("output {path}: {source}")]
    Output {
        path: PathBuf,
        source: std::io::Error,
    },
    #[error("worker program {program} ended ({status})")]
    ProgramDied {
        program: String,
        status: String,
        /// The exit code the worker passes on (see [`worker::exit_code_for`]).
        code: i32,
    },
    #[error("invalid arguments: {0}")]
    Usage(String),
}

/// Formats a TOML error as `line L, column C: message`.
pub(crate) fn config_error_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}
