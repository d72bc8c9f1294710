//! Workers: PULL messages from a receiver (or any PUSH peer) and process them.
//!
//! This is the part of the pipeline you write yourself, as zerolog 0.3's `BaseWorker` subclass
//! with its `process_data` method was in Python. Implement [`Worker`] (one required method,
//! given each message as bytes) or [`TextWorker`] (the same, given `&str`), then hand it to a
//! [`Runner`]: it connects a PULL socket to the receiver's endpoint (the *backend*), feeds your
//! worker every message, and on SIGTERM or SIGINT processes what is already queued, calls
//! [`Worker::stop`] and returns, so a supervisor can stop it without losing messages.
//!
//! ```no_run
//! use zerolog::worker::{run_worker, TextWorker};
//!
//! struct Print;
//!
//! impl TextWorker for Print {
//!     fn process_str(&mut self, msg: &str) -> Result<(), zerolog::Error> {
//!         println!("{msg}");
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<(), zerolog::Error> {
//!     // Under zerologd (`type = "zmq"`), pass "{backend}" as the first argument.
//!     let backend = std::env::args().nth(1).unwrap_or("tcp://127.0.0.1:6200".into());
//!     run_worker(&backend, &mut Print)
//! }
//! ```
//!
//! [`Runner`] is the configurable form of [`run_worker`]: how multipart messages are received
//! ([`Receive`], zerolog 0.3's `recv_func`), the queue length, and whose [`Signals`] stop it
//! (to stop it from code rather than by a signal). `examples/sqlite_worker.rs` and
//! `examples/count_worker.rs` in the repository are complete programs.
//!
//! The built-in workers of `zerolog worker` are here too: [`StdoutWorker`], [`FileWorker`],
//! [`NullWorker`], and [`ProgramWorker`], which hands every message to a program on its stdin
//! (so a worker can be written in any language without ZeroMQ). [`WorkerSpec`] names them as the
//! command line does; [`run`] is the runner the `zerolog worker` command uses.
//!
//! Output framing for stdout, file and program stdin ([`OutputFraming`]):
//! - `lf` (default): one message per line; an LF inside a message is written as the four bytes
//!   `#012` (the convention of rsyslog's control-character escaping), so a message never spans
//!   two lines. Nothing else is changed.
//! - `octet-counted`: `LEN SP MSG`, as RFC 6587; bytes pass raw, LF included.
//! - `nul`: each message followed by a NUL byte; bytes pass raw.

mod acked;
mod builtin;
mod output;
mod program;
mod runner;

pub use builtin::*;
pub use program::*;
pub use runner::*;

use std::io::{self, Write};
use std::str::FromStr;

use crate::Error;

/// How messages are delimited on a byte stream written by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFraming {
    /// One message per line, embedded LF written as `#012`.
    #[default]
    Lf,
    /// `LEN SP MSG` (RFC 6587 octet counting), raw bytes.
    OctetCounted,
    /// Message then NUL, raw bytes.
    Nul,
}

impl FromStr for OutputFraming {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lf" => Ok(OutputFraming::Lf),
            "octet-counted" => Ok(OutputFraming::OctetCounted),
            "nul" => Ok(OutputFraming::Nul),
            other => Err(format!(
                "unknown framing '{other}': expected lf, octet-counted or nul"
            )),
        }
    }
}

impl std::fmt::Display for OutputFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputFraming::Lf => "lf",
            OutputFraming::OctetCounted => "octet-counted",
            OutputFraming::Nul => "nul",
        })
    }
}

impl OutputFraming {
    /// The byte that ends each record, for the framings that have one.
    pub fn delimiter(self) -> Option<u8> {
        match self {
            OutputFraming::Lf => Some(b'\n'),
            OutputFraming::Nul => Some(0),
            OutputFraming::OctetCounted => None,
        }
    }

    /// Writes one message to `w` in this framing.
    pub fn write(self, w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
        match self {
            OutputFraming::Lf => {
                let mut rest = msg;
                while let Some(i) = memchr::memchr(b'\n', rest) {
                    w.write_all(&rest[..i])?;
                    w.write_all(b"#012")?;
                    rest = &rest[i + 1..];
                }
                w.write_all(rest)?;
                w.write_all(b"\n")
            }
            OutputFraming::OctetCounted => {
                write!(w, "{} ", msg.len())?;
                w.write_all(msg)
            }
            OutputFraming::Nul => {
                w.write_all(msg)?;
                w.write_all(b"\0")
            }
        }
    }
}

/// Something that processes messages, one at a time: the part of the pipeline you write.
///
/// Only [`Worker::process`] is required. The runner calls [`Worker::flush`] whenever no
/// further message is waiting (so a worker can batch: buffer in `process`, write or commit in
/// `flush`), [`Worker::tick`] about ten times a second while idle, [`Worker::reopen`] on SIGHUP,
/// and [`Worker::stop`] once, after the last message.
///
/// An error from any method ends the run and is returned by the runner (the message being
/// processed is counted as `failed` in [`WorkerStats`], so [`Worker::buffered`] must not count
/// it too); exit non-zero on it, and the supervisor restarts the worker.
///
/// # Example
///
/// A worker that counts messages and bytes:
///
/// ```
/// use zerolog::worker::Worker;
///
/// #[derive(Default)]
/// struct Count {
///     messages: u64,
///     bytes: u64,
/// }
///
/// impl Worker for Count {
///     fn process(&mut self, msg: &[u8]) -> Result<(), zerolog::Error> {
///         self.messages += 1;
///         self.bytes += msg.len() as u64;
///         Ok(())
///     }
///
///     fn stop(&mut self) -> Result<(), zerolog::Error> {
///         println!("{} messages, {} bytes", self.messages, self.bytes);
///         Ok(())
///     }
/// }
///
/// let mut count = Count::default();
/// count.process(b"<13>1 2026-01-01T00:00:00Z host app - - - hello").unwrap();
/// assert_eq!(count.messages, 1);
/// ```
pub trait Worker {
    /// Processes one message: the bytes of one syslog message, without framing (no trailing
    /// LF, no length prefix). Not necessarily UTF-8; see [`TextWorker`] for text.
    fn process(&mut self, msg: &[u8]) -> Result<(), Error>;

    /// Processes one message with what the runner knows of it: its sequence number (with
    /// acknowledged delivery), so a sink can drop the duplicates that at-least-once delivery
    /// brings after a crash. By default, [`Worker::process`] of its bytes.
    fn process_message(&mut self, msg: &Message<'_>) -> Result<(), Error> {
        self.process(msg.data())
    }

    /// No message is waiting: make what was processed visible (flush buffers, commit).
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// How many of the messages given to [`Worker::process`] are still held by this worker
    /// (in its own buffer, not yet written or committed), which a kill would lose. The runner
    /// counts `processed` as the messages given minus these, so the counters show that loss
    /// too. By default 0: a message is processed once `process` returns.
    fn buffered(&self) -> u64 {
        0
    }

    /// Called periodically while idle, to notice failures (a dead child, say).
    fn tick(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// SIGHUP: reopen outputs (after logrotate). The runner calls [`Worker::flush`] first.
    fn reopen(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Last call, after the last message: flush and release everything. By default, calls
    /// [`Worker::flush`].
    fn stop(&mut self) -> Result<(), Error> {
        self.flush()
    }
}

/// A [`Worker`] that takes each message as text: implement this instead of [`Worker`] and the
/// blanket implementation `impl<T: TextWorker> Worker for T` does the decoding.
///
/// Syslog carries bytes: most messages are UTF-8, but nothing guarantees it (RFC 5424 allows
/// any octets in MSG without a BOM, and applications log what they have). A message that is
/// valid UTF-8 is passed as it is, without a copy. One that is not goes to
/// [`TextWorker::process_invalid_utf8`], which by default replaces each invalid sequence with
/// U+FFFD (`�`, as [`String::from_utf8_lossy`]) and calls [`TextWorker::process_str`]: the
/// message is never dropped and never stops the worker. (zerolog 0.3's `recv_string` raised
/// `UnicodeDecodeError` instead, which killed the Python worker.) Override it to keep the bytes,
/// count them, or fail.
///
/// # Example
///
/// ```
/// use zerolog::worker::{TextWorker, Worker};
///
/// struct Grep(Vec<String>);
///
/// impl TextWorker for Grep {
///     fn process_str(&mut self, msg: &str) -> Result<(), zerolog::Error> {
///         if msg.contains("error") {
///             self.0.push(msg.to_owned());
///         }
///         Ok(())
///     }
/// }
///
/// let mut grep = Grep(Vec::new());
/// // The runner calls `Worker::process`, which decodes and calls `process_str`.
/// grep.process(b"disk error on sda").unwrap();
/// grep.process(b"an error in \xff latin-1").unwrap();
/// grep.process(b"all good").unwrap();
/// assert_eq!(grep.0, ["disk error on sda", "an error in \u{FFFD} latin-1"]);
/// ```
pub trait TextWorker {
    /// Processes one message, as text.
    fn process_str(&mut self, msg: &str) -> Result<(), Error>;

    /// Processes a message that is not valid UTF-8. By default: replaces each invalid sequence
    /// with U+FFFD and calls [`TextWorker::process_str`].
    fn process_invalid_utf8(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.process_str(&String::from_utf8_lossy(msg))
    }

    /// As [`Worker::flush`].
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// As [`Worker::tick`].
    fn tick(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// As [`Worker::buffered`].
    fn buffered(&self) -> u64 {
        0
    }

    /// As [`Worker::reopen`].
    fn reopen(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// As [`Worker::stop`]; by default calls [`TextWorker::flush`].
    fn stop(&mut self) -> Result<(), Error> {
        TextWorker::flush(self)
    }
}

/// A message as the runner hands it to [`Worker::process_message`].
#[derive(Debug, Clone, Copy)]
pub struct Message<'a> {
    data: &'a [u8],
    seq: Option<u64>,
    redelivery: bool,
}

impl<'a> Message<'a> {
    /// A message with no sequence number (PUSH delivery).
    pub fn new(data: &'a [u8]) -> Self {
        Message {
            data,
            seq: None,
            redelivery: false,
        }
    }

    /// A message of acknowledged delivery: its number in the forwarder's journal.
    pub fn with_seq(data: &'a [u8], seq: u64, redelivery: bool) -> Self {
        Message {
            data,
            seq: Some(seq),
            redelivery,
        }
    }

    /// The message's bytes.
    pub fn data(&self) -> &'a [u8] {
        self.data
    }

    /// Its sequence number in the forwarder's journal: unique and increasing per forwarder,
    /// the same when the message is delivered again. `None` with PUSH delivery.
    pub fn seq(&self) -> Option<u64> {
        self.seq
    }

    /// Whether it may have been processed already: it was sent before, to a worker or
    /// receiver that died before acknowledging it, or it is a RELP sender's re-send of a
    /// message the journal already held (with a number of its own).
    pub fn is_redelivery(&self) -> bool {
        self.redelivery
    }
}

impl<T: TextWorker + ?Sized> Worker for T {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        match std::str::from_utf8(msg) {
            Ok(text) => self.process_str(text),
            Err(_) => self.process_invalid_utf8(msg),
        }
    }
    fn flush(&mut self) -> Result<(), Error> {
        TextWorker::flush(self)
    }
    fn tick(&mut self) -> Result<(), Error> {
        TextWorker::tick(self)
    }
    fn buffered(&self) -> u64 {
        TextWorker::buffered(self)
    }
    fn reopen(&mut self) -> Result<(), Error> {
        TextWorker::reopen(self)
    }
    fn stop(&mut self) -> Result<(), Error> {
        TextWorker::stop(self)
    }
}

/// How the runner turns what arrives on its PULL socket into messages: zerolog 0.3's
/// `recv_func`, for the cases that matter on this socket.
///
/// Our receiver (and zerolog 0.3's) pushes every message as one frame, so the default,
/// [`Receive::Frame`], is right for them. Other PUSH peers may send multipart messages, for
/// example `[topic, message]`. Decoding the content (zerolog 0.3's `recv_json`) is the
/// worker's business in Rust: parse the bytes in [`Worker::process`]
/// (`serde_json::from_slice(msg)`), where the error is yours to handle.
#[derive(Debug, Clone, Default, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Receive {
    /// Every frame is a message (the default; what a receiver sends is one frame). The frames
    /// of a multipart message are processed one by one, as separate messages.
    #[default]
    Frame,
    /// All frames of a multipart message, joined with this separator, are one message.
    Joined(Vec<u8>),
    /// The last frame of a multipart message is the message; the others (a topic, say) are
    /// dropped. `[topic, message]` becomes `message`; a single frame is kept whole.
    LastFrame,
    /// The first frame of a multipart message is the message; the others are dropped.
    FirstFrame,
}
