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

use std::fs::{File, OpenOptions};
use std::io::{self, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::signals::Signals;
use crate::stats::WorkerStats;
use crate::zmqutil::{self, zerr};
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

/// Size at which an output buffer is written out even while messages keep coming.
const OUT_BUFFER: usize = 64 * 1024;

/// An output buffer that knows how many messages it holds (for [`Worker::buffered`]): a
/// message counts as processed only once its bytes have been written to the file, stdout or
/// the program's stdin, so a worker killed with messages in here shows them as lost.
struct MsgBuf<W: Write> {
    inner: W,
    buf: Vec<u8>,
    held: u64,
}

impl<W: Write> MsgBuf<W> {
    fn new(inner: W) -> Self {
        MsgBuf {
            inner,
            buf: Vec::with_capacity(OUT_BUFFER),
            held: 0,
        }
    }

    fn push(&mut self, framing: OutputFraming, msg: &[u8]) -> io::Result<()> {
        framing.write(&mut self.buf, msg)?;
        self.held += 1;
        if self.buf.len() >= OUT_BUFFER {
            self.flush()?;
        }
        Ok(())
    }

    fn flush(&mut self) -> io::Result<()> {
        if !self.buf.is_empty() {
            // On an error what is left stays held (and counted as such); the worker then fails.
            self.inner.write_all(&self.buf)?;
            self.buf.clear();
        }
        self.held = 0;
        self.inner.flush()
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
/// processed is counted as `failed` in [`WorkerStats`]); exit non-zero on it, and the
/// supervisor restarts the worker.
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
#[derive(Debug, Clone, Default, PartialEq, Eq)]
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

/// Connects a worker to a backend and drives it: the configurable form of [`run_worker`].
///
/// By default it installs handlers for SIGTERM and SIGINT (graceful stop: process what is
/// queued, then [`Worker::stop`]; a second signal ends the process at once) and SIGHUP
/// ([`Worker::reopen`]), receives one frame per message ([`Receive::Frame`]) and queues at most
/// 1000 messages ahead of the worker.
///
/// # Example
///
/// Stopping from code instead of by a signal: give the runner [`Signals::none`] and call
/// [`Signals::request_stop`] on a clone (from the worker, as here, or from another thread).
///
/// ```
/// use zerolog::signals::Signals;
/// use zerolog::worker::{Receive, Runner, Worker};
///
/// struct StopAfter {
///     left: usize,
///     seen: Vec<Vec<u8>>,
///     signals: Signals,
/// }
///
/// impl Worker for StopAfter {
///     fn process(&mut self, msg: &[u8]) -> Result<(), zerolog::Error> {
///         self.seen.push(msg.to_vec());
///         self.left -= 1;
///         if self.left == 0 {
///             self.signals.request_stop();
///         }
///         Ok(())
///     }
/// }
///
/// // A PUSH peer sending [topic, message] pairs, as logstash or omczmq may (on a thread of its
/// // own: a PUSH send waits until a peer connects).
/// let ctx = zmq::Context::new();
/// let push = ctx.socket(zmq::PUSH).unwrap();
/// push.bind("tcp://127.0.0.1:*").unwrap();
/// let backend = push.get_last_endpoint().unwrap().unwrap();
/// let peer = std::thread::spawn(move || {
///     for i in 0..3 {
///         push.send_multipart([&b"app"[..], format!("message {i}").as_bytes()], 0).unwrap();
///     }
/// });
///
/// let signals = Signals::none();
/// let mut worker = StopAfter { left: 3, seen: Vec::new(), signals: signals.clone() };
/// let runner = Runner::new(&backend).receive(Receive::LastFrame).signals(signals);
/// let stats = runner.stats();
/// runner.run(&mut worker)?;
/// peer.join().unwrap();
/// assert_eq!(worker.seen, [&b"message 0"[..], b"message 1", b"message 2"]);
/// assert_eq!(stats.processed().load(std::sync::atomic::Ordering::Relaxed), 3);
/// assert_eq!(stats.bytes_received().load(std::sync::atomic::Ordering::Relaxed), 27);
/// # Ok::<(), zerolog::Error>(())
/// ```
#[derive(Debug)]
pub struct Runner {
    backend: String,
    receive: Receive,
    signals: Option<Signals>,
    stats: Arc<WorkerStats>,
    hwm: i32,
}

impl Runner {
    /// A runner for the backend endpoint `backend`: the receiver's output, `tcp://HOST:PORT` or
    /// `ipc://PATH` (zerologd passes it as `{backend}` and in `ZEROLOG_BACKEND`).
    pub fn new(backend: impl Into<String>) -> Self {
        Runner {
            backend: backend.into(),
            receive: Receive::default(),
            signals: None,
            stats: Arc::new(WorkerStats::from_env()),
            hwm: DEFAULT_HWM,
        }
    }

    /// How messages are received (default [`Receive::Frame`]).
    pub fn receive(mut self, receive: Receive) -> Self {
        self.receive = receive;
        self
    }

    /// Stops when these signals say so, instead of installing the process's signal handlers
    /// (use [`Signals::none`] and [`Signals::request_stop`] to stop from code).
    pub fn signals(mut self, signals: Signals) -> Self {
        self.signals = Some(signals);
        self
    }

    /// How many messages may wait in this worker's queue (default 1000). What waits there is
    /// lost if the worker is killed, and a short queue lets the receiver balance its workers.
    pub fn queue_length(mut self, messages: i32) -> Self {
        self.hwm = messages;
        self
    }

    /// The counters of this runner, shared: read them while it runs or after.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Connects, feeds `worker` until a stop is requested, then processes messages until none
    /// arrived for 100 ms, calls [`Worker::stop`] and returns. A worker error ends the run and
    /// is returned (after [`Worker::stop`] was still called).
    pub fn run<W: Worker + ?Sized>(self, worker: &mut W) -> Result<(), Error> {
        let signals = match self.signals {
            Some(s) => s,
            None => Signals::install().map_err(|source| Error::Io {
                context: "installing signal handlers",
                source,
            })?,
        };
        run_inner(
            &self.backend,
            &self.receive,
            self.hwm,
            worker,
            &signals,
            &self.stats,
        )
    }
}

/// Runs `worker` on `backend` until SIGTERM or SIGINT, then drains and returns: the whole main
/// loop of a worker program. Installs the signal handlers; see [`Runner`] for the options.
///
/// ```no_run
/// use zerolog::worker::{run_worker, Worker};
///
/// struct Discard;
///
/// impl Worker for Discard {
///     fn process(&mut self, _msg: &[u8]) -> Result<(), zerolog::Error> {
///         Ok(())
///     }
/// }
///
/// run_worker("tcp://127.0.0.1:6200", &mut Discard).unwrap();
/// ```
pub fn run_worker<W: Worker + ?Sized>(backend: &str, worker: &mut W) -> Result<(), Error> {
    Runner::new(backend).run(worker)
}

/// How long a blocking receive waits before the runner looks at signals and ticks.
const TICK_MS: i32 = 100;
/// Default queue length of the PULL socket.
const DEFAULT_HWM: i32 = 1000;

/// Connects a PULL socket to `backend` and feeds `worker` until a stop signal; then processes
/// messages until none arrived for a tick (100 ms), calls [`Worker::stop`], and returns. A
/// worker error ends the run.
///
/// This is the runner of the `zerolog worker` command, with the signals and counters passed in;
/// [`Runner`] and [`run_worker`] are the same loop with defaults.
pub fn run(
    backend: &str,
    receive: &Receive,
    worker: &mut dyn Worker,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    run_inner(backend, receive, DEFAULT_HWM, worker, signals, stats)
}

// Generic rather than `&mut dyn Worker`, so every method of `W` (`buffered` included) is
// the one called, with no adapter to forget one.
fn run_inner<W: Worker + ?Sized>(
    backend: &str,
    receive: &Receive,
    hwm: i32,
    worker: &mut W,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    let ctx = zmq::Context::new();
    let mut pull = ctx
        .socket(zmq::PULL)
        .map_err(zerr("creating PULL socket"))?;
    zmqutil::set_io_batch(&mut pull).map_err(zerr("setting PULL batch size"))?;
    pull.set_rcvtimeo(TICK_MS)
        .map_err(zerr("setting timeout"))?;
    pull.set_linger(0).map_err(zerr("setting linger"))?;
    // A small queue: what sits here is lost if this worker dies, and the receiver's
    // round-robin balances better across workers when it does not prefetch much.
    pull.set_rcvhwm(hwm).map_err(zerr("setting hwm"))?;
    zmqutil::connect(&pull, backend)?;
    info!(backend, "worker connected");
    crate::notify::ready();
    let result = pump(&pull, receive, worker, signals, stats);
    let stopped = worker.stop();
    count_processed(stats, worker);
    stats.log("worker");
    result.and(stopped)
}

/// Receives the remaining frames of a multipart message (already complete: this does not
/// wait, but a signal may interrupt it).
fn recv_more(pull: &zmq::Socket) -> Result<zmq::Message, Error> {
    loop {
        match pull.recv_msg(0) {
            Ok(m) => return Ok(m),
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
            Err(e) => return Err(zerr("receiving from backend")(e)),
        }
    }
}

/// Hands one received message to the worker, shaped as `receive` says.
fn process_one<W: Worker + ?Sized>(
    pull: &zmq::Socket,
    receive: &Receive,
    msg: zmq::Message,
    joined: &mut Vec<u8>,
    worker: &mut W,
) -> Result<usize, Error> {
    match receive {
        Receive::Frame => worker.process(&msg).map(|()| msg.len()),
        _ if !msg.get_more() => worker.process(&msg).map(|()| msg.len()),
        Receive::Joined(separator) => {
            joined.clear();
            joined.extend_from_slice(&msg);
            loop {
                let next = recv_more(pull)?;
                joined.extend_from_slice(separator);
                joined.extend_from_slice(&next);
                if !next.get_more() {
                    break;
                }
            }
            worker.process(joined).map(|()| joined.len())
        }
        Receive::LastFrame => {
            let mut last = msg;
            while last.get_more() {
                last = recv_more(pull)?;
            }
            worker.process(&last).map(|()| last.len())
        }
        Receive::FirstFrame => {
            let mut rest = recv_more(pull)?;
            while rest.get_more() {
                rest = recv_more(pull)?;
            }
            worker.process(&msg).map(|()| msg.len())
        }
    }
}

/// Sets `processed` from the identity `received = processed + failed + held`, where held is
/// what the worker still holds ([`Worker::buffered`]). Only the thread running `pump` writes
/// these counters.
fn count_processed<W: Worker + ?Sized>(stats: &WorkerStats, worker: &W) {
    let done = stats.received().load(Relaxed) - stats.failed().load(Relaxed);
    stats
        .processed()
        .store(done.saturating_sub(worker.buffered()), Relaxed);
}

fn pump<W: Worker + ?Sized>(
    pull: &zmq::Socket,
    receive: &Receive,
    worker: &mut W,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    let mut unflushed = false;
    let mut stopping = false;
    let mut joined = Vec::new();
    loop {
        if signals.take_hup() {
            worker.flush()?;
            count_processed(stats, worker);
            worker.reopen()?;
        }
        if !stopping && signals.stop_requested().is_some() {
            stopping = true;
            info!("stop requested: processing what is queued, then exiting");
        }
        // After a message, poll without waiting so the output is flushed as soon as the
        // queue is empty. While stopping, the same holds: the runner returns only once
        // nothing arrived for a whole tick.
        let flags = if unflushed { zmq::DONTWAIT } else { 0 };
        match pull.recv_msg(flags) {
            Ok(msg) => {
                stats.received().fetch_add(1, Relaxed);
                match process_one(pull, receive, msg, &mut joined, worker) {
                    Ok(bytes) => stats.bytes_received().fetch_add(bytes as u64, Relaxed),
                    Err(e) => {
                        stats.failed().fetch_add(1, Relaxed);
                        return Err(e);
                    }
                };
                count_processed(stats, worker);
                unflushed = true;
            }
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => {
                if unflushed {
                    worker.flush()?;
                    count_processed(stats, worker);
                    unflushed = false;
                } else if stopping {
                    return Ok(());
                } else {
                    worker.tick()?;
                }
            }
            Err(e) => return Err(zerr("receiving from backend")(e)),
        }
    }
}

/// Writes messages to the process's stdout.
pub struct StdoutWorker {
    out: MsgBuf<io::Stdout>,
    framing: OutputFraming,
}

impl StdoutWorker {
    /// A stdout worker writing in `framing`.
    pub fn new(framing: OutputFraming) -> Self {
        StdoutWorker {
            out: MsgBuf::new(io::stdout()),
            framing,
        }
    }
}

fn out_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Output {
        path: path.to_path_buf(),
        source,
    }
}

impl Worker for StdoutWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.out
            .push(self.framing, msg)
            .map_err(out_err(Path::new("stdout")))
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(out_err(Path::new("stdout")))
    }
    fn buffered(&self) -> u64 {
        self.out.held
    }
}

/// Appends messages to a file; reopens it on SIGHUP (for logrotate).
pub struct FileWorker {
    path: PathBuf,
    out: MsgBuf<File>,
    framing: OutputFraming,
}

impl FileWorker {
    /// Opens `path` for appending (creating it if missing).
    pub fn open(path: &Path, framing: OutputFraming) -> Result<Self, Error> {
        Ok(FileWorker {
            path: path.to_path_buf(),
            out: Self::open_file(path)?,
            framing,
        })
    }

    fn open_file(path: &Path) -> Result<MsgBuf<File>, Error> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(out_err(path))?;
        Ok(MsgBuf::new(f))
    }
}

impl Worker for FileWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.out
            .push(self.framing, msg)
            .map_err(out_err(&self.path))
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(out_err(&self.path))
    }
    fn buffered(&self) -> u64 {
        self.out.held
    }
    fn reopen(&mut self) -> Result<(), Error> {
        // Nothing held may be dropped with the old file (the runner has flushed already).
        self.flush()?;
        self.out = Self::open_file(&self.path)?;
        info!(path = %self.path.display(), "reopened output file");
        Ok(())
    }
}

/// Counts messages and discards them: the sink for benchmarks. Logs the count and rate when
/// it stops and, given a report path, keeps a JSON report there (rewritten at most once a
/// second, and at the end): messages, bytes, the wall-clock time of the first message and of
/// the last (read when the queue next runs empty, not per message: the clock is not free at a
/// million messages a second), and per loggen connection (`seq=CONN.N` in the message) the
/// count, highest sequence number, missing numbers (below the highest, never seen here) and
/// duplicates.
pub struct NullWorker {
    count: u64,
    bytes: u64,
    first: Option<(Instant, std::time::SystemTime)>,
    last: Option<std::time::SystemTime>,
    /// Messages were counted since `last` was read.
    unstamped: bool,
    seqs: std::collections::BTreeMap<u32, SeqTrack>,
    report: Option<PathBuf>,
    last_report: Option<Instant>,
    dirty: bool,
}

/// Sequence numbers seen from one loggen connection, as a bitmap.
#[derive(Default)]
struct SeqTrack {
    seen: Vec<u64>,
    count: u64,
    max: Option<u64>,
    duplicates: u64,
}

impl SeqTrack {
    fn add(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.count += 1;
        self.max = Some(self.max.map_or(n, |m| m.max(n)));
    }

    fn missing(&self) -> u64 {
        self.max.map_or(0, |m| m + 1 - self.count)
    }
}

impl NullWorker {
    /// A null worker; with `report`, it keeps a JSON report at that path.
    pub fn new(report: Option<PathBuf>) -> Self {
        NullWorker {
            count: 0,
            bytes: 0,
            first: None,
            last: None,
            unstamped: false,
            seqs: Default::default(),
            report,
            last_report: None,
            dirty: false,
        }
    }

    /// Messages counted so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The report, as JSON.
    pub fn report_json(&self) -> serde_json::Value {
        let ns = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
        };
        let conns: serde_json::Map<String, serde_json::Value> = self
            .seqs
            .iter()
            .map(|(c, t)| {
                (
                    c.to_string(),
                    serde_json::json!({
                        "count": t.count,
                        "max_seq": t.max,
                        "missing": t.missing(),
                        "duplicates": t.duplicates,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "messages": self.count,
            "bytes": self.bytes,
            "first_unix_ns": ns(self.first.map(|f| f.1)),
            "last_unix_ns": ns(self.last),
            "missing": self.seqs.values().map(SeqTrack::missing).sum::<u64>(),
            "duplicates": self.seqs.values().map(|t| t.duplicates).sum::<u64>(),
            "connections": conns,
        })
    }

    /// Records now as the time of the last message, if any arrived since the last stamp.
    fn stamp(&mut self) {
        if self.unstamped {
            self.last = Some(std::time::SystemTime::now());
            self.unstamped = false;
        }
    }

    fn write_report(&mut self) -> Result<(), Error> {
        let Some(path) = self.report.clone() else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.report_json().to_string())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(out_err(&path))?;
        self.last_report = Some(Instant::now());
        self.dirty = false;
        Ok(())
    }
}

impl Worker for NullWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        if self.first.is_none() {
            self.first = Some((Instant::now(), std::time::SystemTime::now()));
        }
        self.unstamped = true;
        self.count += 1;
        self.bytes += msg.len() as u64;
        if let Some((conn, n)) = crate::loggen::parse_seq(msg) {
            self.seqs.entry(conn).or_default().add(n);
        }
        self.dirty = true;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.stamp();
        if self.dirty
            && self
                .last_report
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.write_report()?;
        }
        Ok(())
    }
    fn tick(&mut self) -> Result<(), Error> {
        self.stamp();
        if self.dirty {
            self.write_report()?;
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<(), Error> {
        self.stamp();
        let secs = self.first.map_or(0.0, |t| t.0.elapsed().as_secs_f64());
        let rate = if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        };
        let missing: u64 = self.seqs.values().map(SeqTrack::missing).sum();
        let duplicates: u64 = self.seqs.values().map(|t| t.duplicates).sum();
        info!(
            messages = self.count,
            bytes = self.bytes,
            rate_per_s = rate as u64,
            missing,
            duplicates,
            "null worker counted"
        );
        self.write_report()
    }
}

/// Runs a program and writes every message to its stdin. Its stdout and stderr are those of
/// this process. The worker fails (and so exits) when the program dies.
pub struct ProgramWorker {
    name: String,
    child: Child,
    stdin: Option<MsgBuf<ChildStdin>>,
    framing: OutputFraming,
}

/// How long a stopping program may take to exit after its stdin closes, before SIGTERM.
const PROGRAM_EXIT_GRACE: Duration = Duration::from_secs(10);

impl ProgramWorker {
    /// Starts `program` with `args`, its stdin a pipe this worker writes messages to in `framing`.
    pub fn spawn(program: &Path, args: &[String], framing: OutputFraming) -> Result<Self, Error> {
        let mut cmd = Command::new(program);
        // Readiness is this worker's to notify, not its program's.
        cmd.args(args)
            .stdin(Stdio::piped())
            .env_remove(crate::notify::NOTIFY_SOCKET_ENV);
        crate::process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
        let stdin = child.stdin.take().map(MsgBuf::new);
        info!(program = %program.display(), pid = child.id(), "worker program started");
        Ok(ProgramWorker {
            name: program.display().to_string(),
            child,
            stdin,
            framing,
        })
    }

    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn died(&mut self, status: std::process::ExitStatus) -> Error {
        Error::ProgramDied {
            program: self.name.clone(),
            status: status.to_string(),
            code: exit_code_for(status),
        }
    }

    /// The program failed to take input: report how it died (waiting briefly for it).
    fn write_failed(&mut self, e: io::Error) -> Error {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return self.died(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Error::Output {
            path: PathBuf::from(format!("stdin of {}", self.name)),
            source: e,
        }
    }
}

/// The worker's exit code when its program ended with `status`: the program's own non-zero
/// code, 128 + signal for a signal, and 1 for a program that exited 0 (a worker program is
/// expected to run until its input ends, so a supervisor must restart it).
pub fn exit_code_for(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => 1,
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    }
}

impl Worker for ProgramWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        if let Err(e) = stdin.push(self.framing, msg) {
            return Err(self.write_failed(e));
        }
        Ok(())
    }

    fn buffered(&self) -> u64 {
        self.stdin.as_ref().map_or(0, |s| s.held)
    }

    fn flush(&mut self) -> Result<(), Error> {
        if let Some(stdin) = self.stdin.as_mut() {
            if let Err(e) = stdin.flush() {
                return Err(self.write_failed(e));
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(self.died(status)),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) -> Result<(), Error> {
        let flushed = self.flush();
        // EOF on stdin tells the program to finish.
        drop(self.stdin.take());
        let deadline = Instant::now() + PROGRAM_EXIT_GRACE;
        let mut termed = false;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                info!(program = %self.name, %status, "worker program exited");
                return flushed;
            }
            if Instant::now() >= deadline {
                if termed {
                    warn!(program = %self.name, "worker program ignored SIGTERM; killing it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return flushed;
                }
                warn!(program = %self.name, "worker program did not exit after end of input; sending SIGTERM");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                termed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A worker as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSpec {
    /// `stdout`: [`StdoutWorker`].
    Stdout,
    /// `file PATH`: [`FileWorker`].
    File(PathBuf),
    /// With the path of a JSON report to keep.
    Null(Option<PathBuf>),
    /// Any other program, fed on its stdin: [`ProgramWorker`].
    Program {
        /// The program's path.
        path: PathBuf,
        /// Its arguments.
        args: Vec<String>,
    },
}

impl WorkerSpec {
    /// Resolves `WORKER [ARGS...]`. The built-in names (`stdout`, `file`, `null`) win; to run
    /// a program of that name, give a path containing `/`. Other names are looked up in
    /// `directory` when given, on `PATH` otherwise.
    pub fn resolve(
        worker: &str,
        args: &[String],
        directory: Option<&Path>,
    ) -> Result<WorkerSpec, Error> {
        let no_args = |spec: WorkerSpec| {
            if args.is_empty() {
                Ok(spec)
            } else {
                Err(Error::Usage(format!(
                    "the built-in worker '{worker}' takes no arguments (got {args:?})"
                )))
            }
        };
        match worker {
            "stdout" => return no_args(WorkerSpec::Stdout),
            "null" => {
                return match args {
                    [] => Ok(WorkerSpec::Null(None)),
                    [report] => Ok(WorkerSpec::Null(Some(PathBuf::from(report)))),
                    _ => Err(Error::Usage(
                        "the built-in worker 'null' takes at most one argument: REPORT_PATH".into(),
                    )),
                }
            }
            "file" => {
                return match args {
                    [path] => Ok(WorkerSpec::File(PathBuf::from(path))),
                    _ => Err(Error::Usage(
                        "the built-in worker 'file' takes exactly one argument: PATH".into(),
                    )),
                }
            }
            _ => {}
        }
        let path = find_program(worker, directory)?;
        Ok(WorkerSpec::Program {
            path,
            args: args.to_vec(),
        })
    }

    /// Starts the worker this spec names.
    pub fn start(&self, framing: OutputFraming) -> Result<Box<dyn Worker>, Error> {
        Ok(match self {
            WorkerSpec::Stdout => Box::new(StdoutWorker::new(framing)),
            WorkerSpec::File(p) => Box::new(FileWorker::open(p, framing)?),
            WorkerSpec::Null(report) => Box::new(NullWorker::new(report.clone())),
            WorkerSpec::Program { path, args } => {
                Box::new(ProgramWorker::spawn(path, args, framing)?)
            }
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds a worker program: a path as given when it contains `/`, else in `directory`, else on
/// `PATH`.
pub fn find_program(name: &str, directory: Option<&Path>) -> Result<PathBuf, Error> {
    let not_found = |where_: String| Error::ProgramNotFound {
        program: name.to_string(),
        where_,
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_found(" (no executable file at that path)".into()))
        };
    }
    if let Some(dir) = directory {
        let p = dir.join(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_found(format!(" in directory {}", dir.display())))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| not_found(" on PATH".into()))
}

/// Counters shared with a running worker (in `$ZEROLOG_STATS_FILE` when it is set).
pub fn new_stats() -> Arc<WorkerStats> {
    Arc::new(WorkerStats::from_env())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: OutputFraming, m: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        f.write(&mut v, m).unwrap();
        v
    }

    #[test]
    fn file_worker_reports_what_it_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let lines = |p: &Path| std::fs::read(p).unwrap().split(|&b| b == b'\n').count() - 1;
        let mut w = FileWorker::open(&path, OutputFraming::Lf).unwrap();
        let msg = [b'x'; 99];
        for _ in 0..10 {
            w.process(&msg).unwrap();
        }
        // Held, not written: a kill now would lose 10 messages, and the counters say so.
        assert_eq!(w.buffered(), 10);
        assert_eq!(lines(&path), 0);
        w.flush().unwrap();
        assert_eq!(w.buffered(), 0);
        assert_eq!(lines(&path), 10);
        // Past the buffer size it writes on its own; what it reports held is exactly what the
        // file lacks.
        for given in 1..=2000u64 {
            w.process(&msg).unwrap();
            assert_eq!(
                lines(&path) as u64,
                10 + given - w.buffered(),
                "after {given}"
            );
        }
        assert!(w.buffered() < 2000, "wrote out before the end");
        w.stop().unwrap();
        assert_eq!((w.buffered(), lines(&path)), (0, 2010));
    }

    #[test]
    fn lf_framing_escapes_only_newlines() {
        assert_eq!(enc(OutputFraming::Lf, b"a\nb\\n\n"), b"a#012b\\n#012\n");
        assert_eq!(enc(OutputFraming::Lf, b"plain"), b"plain\n");
        assert_eq!(enc(OutputFraming::OctetCounted, b"a\nb"), b"3 a\nb");
        assert_eq!(enc(OutputFraming::Nul, b"a\nb"), b"a\nb\0");
    }

    #[test]
    fn resolve_builtins_and_programs() {
        assert_eq!(
            WorkerSpec::resolve("stdout", &[], None).unwrap(),
            WorkerSpec::Stdout
        );
        assert!(WorkerSpec::resolve("stdout", &["x".into()], None).is_err());
        assert!(WorkerSpec::resolve("file", &[], None).is_err());
        assert!(matches!(
            WorkerSpec::resolve("sh", &[], None).unwrap(),
            WorkerSpec::Program { .. }
        ));
        let e = WorkerSpec::resolve("sh", &[], Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.to_string().contains("in directory /nonexistent"), "{e}");
        assert!(WorkerSpec::resolve("no-such-program-zl", &[], None).is_err());
    }
}
