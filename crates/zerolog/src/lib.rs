//! zerolog: a log aggregation pipeline over ZeroMQ, wire-compatible with the Python zerolog 0.3.
//!
//! Syslog senders (rsyslog, syslog-ng, `logger`, applications) connect to the
//! [forwarder](forwarder::Forwarder) over TCP or UDP. It frames the byte stream into whole
//! messages ([`framing`], RFC 6587), derives a topic from each message's syslog header
//! ([`syslog`]), and publishes `[topic, message]` on a ZeroMQ XPUB socket without ever dropping.
//! Each [receiver](receiver::Receiver) subscribes to a topic prefix and pushes the message
//! frames, one frame each, to a pool of [workers](worker::Worker), which do the operator's
//! processing: write to a database, alert, forward. Back-pressure runs end to end: a slow
//! worker slows the receiver, which slows the forwarder, which stops reading its TCP
//! connections, which slows the sender. `zerologd` (the `zerologd` crate of this workspace)
//! runs each element as a child process; the same elements are library types a program can
//! embed. The protocol layer without I/O (framing, syslog header, endpoints) is the
//! `zerolog-proto` crate, re-exported here.
//!
//! ```text
//!  syslog senders --TCP/UDP--> forwarder --[topic, message]--> receiver(s) --[message]--> workers
//!                              (XPUB :6001)                    (SUB prefix, PUSH :6200)   (PULL)
//! ```
//!
//! # Writing a worker
//!
//! Most programs only write a worker: implement [`worker::Worker`] (bytes) or
//! [`worker::TextWorker`] (text) and run it with [`worker::run_worker`] (or
//! [`worker::Runner`] for options). It connects to a receiver's output, stops cleanly on
//! SIGTERM, and zerologd runs it as a `type = "zmq"` worker with `{backend}` in its command.
//!
//! ```no_run
//! use zerolog::worker::{run_worker, TextWorker};
//!
//! struct Alert;
//!
//! impl TextWorker for Alert {
//!     fn process_str(&mut self, msg: &str) -> Result<(), zerolog::Error> {
//!         if msg.contains("panic") {
//!             eprintln!("ALERT: {msg}");
//!         }
//!         Ok(())
//!     }
//! }
//!
//! fn main() -> Result<(), zerolog::Error> {
//!     let backend = std::env::args().nth(1).expect("usage: alert BACKEND");
//!     run_worker(&backend, &mut Alert)
//! }
//! ```
//!
//! # The whole pipeline in one program
//!
//! [`forwarder::Forwarder`] (async, on tokio) and [`receiver::Receiver`] (blocking, on its own
//! thread) are configured in code ([`forwarder::ForwarderConfig`],
//! [`receiver::ReceiverConfig`]); everything below binds port 0 and is stopped from code.
//!
//! ```
//! use std::io::Write;
//! use zerolog::endpoint::Endpoint;
//! use zerolog::forwarder::{Forwarder, ForwarderConfig};
//! use zerolog::receiver::{Receiver, ReceiverConfig};
//! use zerolog::signals::Signals;
//! use zerolog::worker::{Runner, TextWorker};
//!
//! struct Collect(Vec<String>, Signals);
//!
//! impl TextWorker for Collect {
//!     fn process_str(&mut self, msg: &str) -> Result<(), zerolog::Error> {
//!         self.0.push(msg.to_owned());
//!         if self.0.len() == 2 {
//!             self.1.request_stop();
//!         }
//!         Ok(())
//!     }
//! }
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Runtime::new()?;
//! let forwarder = rt.block_on(Forwarder::bind(ForwarderConfig {
//!     tcp: vec!["127.0.0.1:0".parse()?],
//!     publish: Endpoint::tcp("127.0.0.1", 0), // any free port
//!     wait_subscribers: 1, // read no input before the receiver subscribed
//!     ..Default::default()
//! }))?;
//! let input = forwarder.tcp_addrs()[0];
//!
//! let receiver = Receiver::bind(&ReceiverConfig {
//!     connect: vec![forwarder.publish_endpoint().clone()],
//!     topics: vec![b"app".to_vec()],
//!     output: Endpoint::tcp("127.0.0.1", 0),
//!     ..Default::default()
//! })?;
//! let backend = receiver.output_endpoint().to_string();
//! let receiver_signals = Signals::none();
//! let receiver_thread = {
//!     let signals = receiver_signals.clone();
//!     std::thread::spawn(move || receiver.run(&signals))
//! };
//!
//! let (stop_forwarder, stopped) = tokio::sync::oneshot::channel::<()>();
//! let (ready_tx, ready) = std::sync::mpsc::channel();
//! let forwarder_task = rt.spawn(forwarder.run(
//!     async { stopped.await.ok(); },
//!     move || ready_tx.send(()).unwrap(),
//! ));
//! ready.recv()?;
//!
//! let mut tcp = std::net::TcpStream::connect(input)?;
//! tcp.write_all(b"<13>1 2026-01-01T00:00:00Z host app - - - one\n")?;
//! tcp.write_all(b"<13>1 2026-01-01T00:00:00Z host other - - - not for us\n")?;
//! tcp.write_all(b"<13>1 2026-01-01T00:00:00Z host app - - - two\n")?;
//! drop(tcp);
//!
//! let worker_signals = Signals::none();
//! let mut worker = Collect(Vec::new(), worker_signals.clone());
//! Runner::new(backend).signals(worker_signals).run(&mut worker)?;
//! assert_eq!(worker.0, [
//!     "<13>1 2026-01-01T00:00:00Z host app - - - one",
//!     "<13>1 2026-01-01T00:00:00Z host app - - - two",
//! ]);
//!
//! stop_forwarder.send(()).ok();
//! rt.block_on(forwarder_task)??;
//! receiver_signals.request_stop();
//! receiver_thread.join().unwrap()?;
//! # Ok(())
//! # }
//! ```
//!
//! The wire protocol is that of the Python zerolog 0.3: two frames, `[topic, message]`, from
//! the forwarder, one frame from the receiver to workers, so zerolog 0.3 workers and receivers
//! work with these elements unchanged.

#![warn(missing_docs)]

pub mod access;
mod as_text;
pub mod curve;
pub mod defaults;
pub mod element;
pub mod events;
pub mod forwarder;
pub mod journal;
pub mod notify;
pub mod process;
pub mod queue;
pub mod receiver;
pub mod signals;
pub mod stats;
pub mod tls;
pub mod worker;
mod zmqutil;

pub use zerolog_proto::{delivery, endpoint, framing, relp, seq, syslog};
pub use zmqutil::{set_io_batch, IO_BATCH_BYTES};

use std::path::PathBuf;

/// Errors of the pipeline elements and of workers, typed: match on them, or print them (each
/// says what failed and where).
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// A ZeroMQ socket could not bind its endpoint (in use, bad address, no permission).
    #[error("cannot bind {endpoint}: {source}")]
    Bind {
        /// The endpoint, as given.
        endpoint: String,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// A ZeroMQ socket could not connect to an endpoint (malformed endpoint, unknown
    /// transport). A peer that is not up yet is not an error: ZeroMQ connects when it comes.
    #[error("cannot connect to {endpoint}: {source}")]
    Connect {
        /// The endpoint, as given.
        endpoint: String,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// The forwarder could not listen on a TCP or UDP address.
    #[error("cannot listen on {addr}: {source}")]
    Listen {
        /// `tcp:ADDR` or `udp:ADDR`.
        addr: String,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// Any other ZeroMQ failure (creating or configuring a socket, receiving, sending).
    #[error("ZeroMQ error while {context}: {source}")]
    Zmq {
        /// What was being done, e.g. `receiving from backend`.
        context: &'static str,
        /// What ZeroMQ said.
        source: zmq::Error,
    },
    /// An I/O failure outside the outputs (signal handlers, threads, ...).
    #[error("{context}: {source}")]
    Io {
        /// What was being done.
        context: &'static str,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A worker program named on the command line does not exist or is not executable.
    #[error("worker program {program} not found{where_}")]
    ProgramNotFound {
        /// The name, as given.
        program: String,
        /// Where it was looked for (` on PATH`, ` in directory DIR`, ...).
        where_: String,
    },
    /// A worker program could not be started.
    #[error("cannot start worker program {program}: {source}")]
    Spawn {
        /// The program's path.
        program: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// A worker could not write its output (file, stdout, a program's stdin). Your own workers
    /// may use it for their outputs too.
    #[error("output {path}: {source}")]
    Output {
        /// The output: a path, or a description such as `stdout`.
        path: PathBuf,
        /// What the operating system said.
        source: std::io::Error,
    },
    /// The program of a [`worker::ProgramWorker`] was down when a stop was requested (it is
    /// started again otherwise).
    #[error("worker program {program} ended ({status})")]
    ProgramDied {
        /// The program.
        program: String,
        /// How it ended, e.g. `exit status: 3`.
        status: String,
        /// The exit code the worker passes on (see [`worker::exit_code_for`]).
        code: i32,
    },
    /// The configuration file of `--config` cannot be read or is invalid.
    #[error(transparent)]
    ConfigFile(element::ConfigFileError),
    /// Invalid arguments (a built-in worker given the wrong arguments, say).
    #[error("invalid arguments: {0}")]
    Usage(String),
    /// A peer broke the protocol between zerolog's elements ([`delivery`]).
    #[error("protocol error: {0}")]
    Protocol(String),
    /// A CURVE key or key file is missing, invalid, or readable by others.
    #[error(transparent)]
    Curve(#[from] curve::CurveError),
    /// A TLS input's certificate, key or CA file is missing, invalid or readable by others,
    /// or a `permitted_peers` entry is malformed.
    #[error(transparent)]
    Tls(#[from] tls::TlsError),
    /// The durable journal failed (I/O, damage, configuration).
    #[error(transparent)]
    Journal(#[from] journal::JournalError),
    /// A worker of yours failed: any error of yours, boxed (see [`Error::worker`]).
    #[error("worker failed: {0}")]
    Worker(#[source] Box<dyn std::error::Error + Send + Sync + 'static>),
}

impl Error {
    /// Wraps any error of a worker of yours, so `?` works in [`worker::Worker::process`]:
    /// `db.execute(..).map_err(Error::worker)?`.
    ///
    /// ```
    /// let e = zerolog::Error::worker(std::io::Error::other("database is locked"));
    /// assert_eq!(e.to_string(), "worker failed: database is locked");
    /// ```
    pub fn worker(error: impl Into<Box<dyn std::error::Error + Send + Sync + 'static>>) -> Self {
        Error::Worker(error.into())
    }
}
