//! The runner: connects a PULL socket, feeds a [`Worker`], drains on stop.

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tracing::info;

use crate::delivery::Delivery;
use crate::signals::Signals;
use crate::stats::WorkerStats;
use crate::zmqutil::{self, zerr};
use crate::Error;

use super::{Message, Receive, Worker};

/// Connects a worker to a backend and drives it: the configurable form of [`run_worker`].
///
/// By default it installs handlers for SIGTERM and SIGINT (graceful stop: process what is
/// queued, then [`Worker::stop`]; a second signal ends the process at once) and SIGHUP
/// ([`Worker::reopen`]), receives one frame per message ([`Receive::Frame`]) and queues at most
/// 1000 messages, and at most 32 MiB of the longest messages, ahead of the worker (see
/// [`Runner::queue_length`] and [`Runner::queue_bytes`]).
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
    queue_bytes: usize,
    max_message_size: usize,
    delivery: Delivery,
    curve: Option<crate::curve::CurveClient>,
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
            queue_bytes: size_from_env(QUEUE_BYTES_ENV, crate::queue::DEFAULT_QUEUE_BYTES),
            max_message_size: size_from_env(MAX_MESSAGE_SIZE_ENV, crate::framing::DEFAULT_MAX_SIZE),
            delivery: delivery_from_env(),
            curve: None,
        }
    }

    /// CURVE towards a receiver whose TCP output has it: this worker's key file and the
    /// receiver's public key (see [`crate::curve`]). Not applied to an `ipc://` backend.
    pub fn curve(mut self, curve: crate::curve::CurveClient) -> Self {
        self.curve = Some(curve);
        self
    }

    /// How the receiver hands out messages (default: `$ZEROLOG_DELIVERY`, which zerologd
    /// sets, else [`Delivery::Push`], zerolog 0.3's). It must match the receiver's.
    pub fn delivery(mut self, delivery: Delivery) -> Self {
        self.delivery = delivery;
        self
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

    /// The queue holds at most `bytes` (default 32 MiB, or `$ZEROLOG_QUEUE_BYTES`, which
    /// zerologd sets to the receiver's `queue_bytes`): it is `bytes / max_message_size`
    /// messages long when that is shorter than [`Runner::queue_length`].
    pub fn queue_bytes(mut self, bytes: usize) -> Self {
        self.queue_bytes = bytes;
        self
    }

    /// The longest message that can arrive (default 64 KiB, or `$ZEROLOG_MAX_MESSAGE_SIZE`,
    /// which zerologd sets to the forwarder's `max_message_size`).
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.max_message_size = bytes;
        self
    }

    /// The counters of this runner, shared: read them while it runs or after.
    pub fn stats(&self) -> Arc<WorkerStats> {
        self.stats.clone()
    }

    /// Connects, feeds `worker` until a stop is requested, then processes messages until none
    /// arrived for 100 ms, calls [`Worker::stop`] and returns. A worker error ends the run and
    /// is returned (after [`Worker::stop`] was still called).
    // Generic rather than `&mut dyn Worker`, so every method of `W` (`buffered` included) is
    // the one called, with no adapter to forget one.
    pub fn run<W: Worker + ?Sized>(self, worker: &mut W) -> Result<(), Error> {
        let signals = match &self.signals {
            Some(s) => s.clone(),
            None => Signals::install().map_err(|source| Error::Io {
                context: "installing signal handlers",
                source,
            })?,
        };
        let stats = &self.stats;
        if self.delivery == Delivery::Acked {
            return self.run_acked(worker, &signals);
        }
        let (_ctx, pull) = self.connect(zmq::PULL)?;
        crate::notify::ready();
        let result = pump(&pull, &self.receive, worker, &signals, stats);
        let stopped = worker.stop();
        count_processed(stats, worker);
        stats.log("worker");
        result.and(stopped)
    }

    fn run_acked<W: Worker + ?Sized>(
        &self,
        worker: &mut W,
        signals: &Signals,
    ) -> Result<(), Error> {
        let (_ctx, dealer) = self.connect(zmq::DEALER)?;
        dealer
            .set_linger(ACK_LINGER_MS)
            .map_err(zerr("setting linger"))?;
        crate::notify::ready();
        let window =
            crate::queue::receive_hwm(self.hwm, self.queue_bytes, self.max_message_size).max(1);
        let mut acks = super::acked::Acks::new(&dealer, window as u32);
        let stats = &self.stats;
        let result = super::acked::pump(&mut acks, worker, signals, stats);
        let stopped = worker.stop();
        count_processed(stats, worker);
        // What the stop flushed is done too.
        let acked = acks.finish(worker);
        stats.log("worker");
        result.and(stopped).and(acked)
    }

    /// A PULL (or DEALER) socket connected to the backend, with its context.
    fn connect(&self, kind: zmq::SocketType) -> Result<(zmq::Context, zmq::Socket), Error> {
        let ctx = zmq::Context::new();
        let mut pull = ctx
            .socket(kind)
            .map_err(zerr("creating the backend socket"))?;
        zmqutil::set_io_batch(&mut pull).map_err(zerr("setting PULL batch size"))?;
        pull.set_rcvtimeo(TICK_MS)
            .map_err(zerr("setting timeout"))?;
        pull.set_linger(0).map_err(zerr("setting linger"))?;
        // A short queue: what sits here is lost if this worker dies, and the receiver's
        // round-robin balances better across workers when it does not prefetch much.
        let hwm = crate::queue::receive_hwm(self.hwm, self.queue_bytes, self.max_message_size);
        pull.set_rcvhwm(hwm).map_err(zerr("setting hwm"))?;
        if let Some(curve) = &self.curve {
            let backend = self
                .backend
                .parse()
                .map_err(|e| Error::Usage(format!("backend {:?}: {e}", self.backend)))?;
            crate::curve::guard_client(&pull, Some(curve), &backend)?;
        }
        zmqutil::connect(&pull, &self.backend)?;
        info!(backend = self.backend.as_str(), "worker connected");
        Ok((ctx, pull))
    }
}

/// Where zerologd tells its workers the receiver's `queue_bytes`...
pub const QUEUE_BYTES_ENV: &str = "ZEROLOG_QUEUE_BYTES";
/// ...and the forwarder's `max_message_size`.
pub const MAX_MESSAGE_SIZE_ENV: &str = "ZEROLOG_MAX_MESSAGE_SIZE";

/// Where zerologd tells its workers how their receiver delivers (`acked` or `push`).
pub const DELIVERY_ENV: &str = "ZEROLOG_DELIVERY";

/// Linger of the acknowledging socket, so the last acknowledgements go out at a stop.
const ACK_LINGER_MS: i32 = 1000;

/// `$ZEROLOG_DELIVERY` (`acked` or `push`), else push.
pub fn delivery_from_env() -> Delivery {
    let Some(value) = std::env::var_os(DELIVERY_ENV) else {
        return Delivery::Push;
    };
    match value.to_str().map(str::parse) {
        Some(Ok(d)) => d,
        _ => {
            tracing::warn!(variable = DELIVERY_ENV, value = ?value, "not acked or push; using push");
            Delivery::Push
        }
    }
}

/// A positive size from the environment variable `name`, else `default` (with a warning when
/// the variable is set but is not one).
fn size_from_env(name: &str, default: usize) -> usize {
    let Some(value) = std::env::var_os(name) else {
        return default;
    };
    match value.to_str().and_then(|v| v.parse::<usize>().ok()) {
        Some(n) if n > 0 => n,
        _ => {
            tracing::warn!(variable = name, value = ?value, default, "not a size in bytes; using the default");
            default
        }
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
        Receive::Frame => process(worker, &msg),
        _ if !msg.get_more() => process(worker, &msg),
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
            process(worker, joined)
        }
        Receive::LastFrame => {
            let mut last = msg;
            while last.get_more() {
                last = recv_more(pull)?;
            }
            process(worker, &last)
        }
        Receive::FirstFrame => {
            let mut rest = recv_more(pull)?;
            while rest.get_more() {
                rest = recv_more(pull)?;
            }
            process(worker, &msg)
        }
    }
}

fn process<W: Worker + ?Sized>(worker: &mut W, data: &[u8]) -> Result<usize, Error> {
    worker
        .process_message(&Message::new(data))
        .map(|()| data.len())
}

/// Sets `processed` from the identity `received = processed + failed + held`, where held is
/// what the worker still holds ([`Worker::buffered`]). Only the thread running `pump` writes
/// these counters.
pub(super) fn count_processed<W: Worker + ?Sized>(stats: &WorkerStats, worker: &W) {
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
                    count_processed(stats, worker);
                }
            }
            Err(e) => return Err(zerr("receiving from backend")(e)),
        }
    }
}
