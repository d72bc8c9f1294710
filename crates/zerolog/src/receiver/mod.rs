//! The receiver: subscribes to a forwarder (or any publisher of `[topic, message]`) by topic
//! prefix and pushes each message frame, alone, to a pool of workers.
//!
//! The PUSH send blocks while every worker is busy (or none is connected), so the receiver
//! stops reading its SUB socket, whose queue fills, which blocks the forwarder: back-pressure,
//! not loss. On SIGTERM it drains what its SUB socket already holds before exiting.
//!
//! This is what `zerolog receiver` runs (zerolog 0.3's `Receiver` class). To embed one, fill in
//! a [`ReceiverConfig`], [`Receiver::bind`] it, and call [`Receiver::run`] on a thread of its
//! own (it blocks). [`Receiver::run`] stops when its [`Signals`] say so: pass
//! [`Signals::install`] to stop on SIGTERM/SIGINT as the command does, or [`Signals::none`] and
//! call [`Signals::request_stop`] on a clone to stop it from code:
//!
//! ```
//! use zerolog::endpoint::Endpoint;
//! use zerolog::receiver::{Receiver, ReceiverConfig};
//! use zerolog::signals::Signals;
//!
//! let receiver = Receiver::bind(&ReceiverConfig {
//!     connect: vec![Endpoint::tcp("127.0.0.1", 6001)], // the forwarder (may start later)
//!     topics: vec![b"nginx".to_vec()],                  // prefix: also nginx-access, ...
//!     output: Endpoint::tcp("127.0.0.1", 0),            // any free port (or ipc://PATH)
//!     ..Default::default()
//! })?;
//! println!("workers connect to {}", receiver.output_endpoint());
//! let stats = receiver.stats();
//!
//! let signals = Signals::none();
//! let thread = {
//!     let signals = signals.clone();
//!     std::thread::spawn(move || receiver.run(&signals))
//! };
//! // ... later, from any thread:
//! signals.request_stop();
//! thread.join().unwrap()?; // drained and stopped
//! assert_eq!(stats.snapshot(), [("received", 0), ("bytes_received", 0), ("pushed", 0), ("malformed", 0), ("zap_denied", 0), ("curve_handshakes_failed", 0), ("acked", 0), ("redelivered", 0), ("workers_lost", 0), ("in_flight", 0), ("backlog", 0)]);
//! # Ok::<(), zerolog::Error>(())
//! ```

use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{error, info, warn};

use crate::access::Guard;
use crate::delivery::Delivery;
use crate::endpoint::Endpoint;
use crate::events::{Blocked, RateLimit};
use crate::queue::{self, SendQueue};
use crate::signals::{self, Signals};
use crate::stats::ReceiverStats;
use crate::zmqutil::{self, zerr, RawMsg, RawSocket};
use crate::Error;

/// Everything a receiver needs to know: `zerolog receiver`'s arguments, in code. The default
/// is the command's: connect to `tcp://127.0.0.1:6001`, every topic, output
/// `tcp://127.0.0.1:6200`, queues of 10,000 messages.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ReceiverConfig {
    /// Publisher endpoints to connect the SUB socket to (one per forwarder).
    pub connect: Vec<Endpoint>,
    /// Topic prefixes to subscribe to; empty means everything.
    pub topics: Vec<Vec<u8>>,
    /// Endpoint the PUSH socket binds for workers (`tcp://...` or `ipc://...`).
    pub output: Endpoint,
    /// Queue lengths (messages) of the SUB and PUSH sockets, at most.
    pub hwm: i32,
    /// Byte budget of the queues: the SUB socket's holds at most `queue_bytes` (it is
    /// `queue_bytes / max_message_size` messages long), each worker's at most
    /// `queue_bytes / SEND_SHARE`; see [`crate::queue`].
    pub queue_bytes: usize,
    /// The longest message the publisher sends (the forwarder's `max_message_size`), which
    /// sets the SUB socket's queue length.
    pub max_message_size: usize,
    /// Networks workers may connect from (TCP output); empty: any (see [`crate::access`]).
    pub allow: Vec<ipnet::IpNet>,
    /// Fetch from this forwarder's journal endpoint (with acknowledgements, at least once)
    /// instead of subscribing to `connect` (at most once).
    pub journal: Option<Endpoint>,
    /// The consumer group the forwarder keeps this receiver's offset under: its name.
    pub group: String,
    /// How workers get messages: `push` (zerolog 0.3 workers) or `acked` (needs `journal`).
    pub delivery: Delivery,
    /// CURVE towards the forwarder (its TCP publish or journal endpoint): this receiver's
    /// secret key and the forwarder's public key (see [`crate::curve`]). `None`: plaintext.
    pub curve: Option<crate::curve::CurveClient>,
    /// CURVE on a TCP `output`: this receiver's secret key (as the workers' server) and the
    /// workers' public keys it lets in (none: any key). `None`: plaintext.
    pub curve_output: Option<crate::curve::CurveServer>,
}

impl Default for ReceiverConfig {
    fn default() -> Self {
        ReceiverConfig {
            connect: vec![Endpoint::tcp(
                crate::defaults::BIND_HOST,
                crate::defaults::PUBLISH_PORT,
            )],
            topics: Vec::new(),
            output: Endpoint::tcp(crate::defaults::BIND_HOST, crate::defaults::OUTPUT_PORT),
            hwm: crate::defaults::HWM,
            queue_bytes: crate::queue::DEFAULT_QUEUE_BYTES,
            max_message_size: crate::framing::DEFAULT_MAX_SIZE,
            allow: Vec::new(),
            curve: None,
            curve_output: None,
            journal: None,
            group: "receiver".into(),
            delivery: Delivery::Push,
        }
    }
}

/// How long the receiver waits in one blocking call before checking for signals.
const TICK_MS: i32 = 100;
/// Linger on close, so pushed messages reach workers after a stop.
const LINGER_MS: i32 = 10_000;

mod dispatch;
mod fetch;
mod journal;

/// A receiver whose sockets are bound and connected; [`Receiver::run`] relays until stopped.
/// See the [module documentation](self) for an example.
pub struct Receiver {
    mode: Mode,
    _ctx: zmq::Context,
    output_endpoint: Endpoint,
    stats: Arc<ReceiverStats>,
}

/// Where a receiver takes its messages from.
enum Mode {
    /// A publisher's `[topic, message]`, pushed to workers (zerolog 0.3's way).
    Subscribe(Subscribed),
    /// A forwarder's journal ([`journal`]).
    Journal(std::cell::RefCell<journal::Relay>),
}

/// The sockets of [`Mode::Subscribe`].
struct Subscribed {
    /// Kept alive for the raw handles, through which they are used.
    _sub: zmq::Socket,
    push: zmq::Socket,
    /// The bound of the PUSH socket's queues, as it starts.
    push_queue: SendQueue,
    sub_raw: RawSocket,
    push_raw: RawSocket,
    stats: Arc<ReceiverStats>,
}

impl Receiver {
    /// Binds the output and connects to the publishers (or the journal).
    pub fn bind(config: &ReceiverConfig) -> Result<Self, Error> {
        let ctx = zmq::Context::new();
        let stats = Arc::new(ReceiverStats::from_env());
        let guard = Guard::start(
            &ctx,
            &config.allow,
            config.curve_output.as_ref(),
            stats.clone(),
        )?;
        if config.journal.is_none() && config.delivery == Delivery::Acked {
            return Err(Error::Protocol(
                "acked delivery needs a journal to fetch from (journal = the forwarder's journal endpoint)".into(),
            ));
        }
        let (mode, output_endpoint) = match &config.journal {
            Some(endpoint) => {
                let (relay, output) = journal::Relay::bind((&ctx, &guard), config, endpoint)?;
                (Mode::Journal(std::cell::RefCell::new(relay)), output)
            }
            None => {
                let (subscribed, output) = Subscribed::bind((&ctx, &guard), config, stats.clone())?;
                (Mode::Subscribe(subscribed), output)
            }
        };
        Ok(Receiver {
            mode,
            _ctx: ctx,
            output_endpoint,
            stats,
        })
    }

    /// The endpoint workers connect to (port 0 resolved).
    pub fn output_endpoint(&self) -> &Endpoint {
        &self.output_endpoint
    }

    /// Live counters.
    pub fn stats(&self) -> Arc<ReceiverStats> {
        self.stats.clone()
    }

    /// Runs until `signals` asks for a stop (a signal, or [`Signals::request_stop`]); then
    /// relays until no message arrived for a tick (100 ms), so a stopping upstream's last
    /// messages still reach workers, and returns. Blocks the calling thread.
    pub fn run(&self, signals: &Signals) -> Result<(), Error> {
        let result = match &self.mode {
            Mode::Journal(relay) => relay.borrow_mut().run(signals, &self.stats),
            Mode::Subscribe(subscribed) => subscribed.relay(signals),
        };
        match (&result, signals.stop_requested()) {
            (Err(e), _) => error!(error = %e, "receiver failed"),
            (Ok(()), Some(sig)) => error!(
                signal = %signals::name(sig),
                "receiver interrupted; queued messages were drained to workers"
            ),
            _ => {}
        }
        self.stats.log("receiver");
        result
    }
}

impl Subscribed {
    /// Binds the PUSH output and connects the SUB socket to the publishers.
    fn bind(
        (ctx, guard): (&zmq::Context, &Guard),
        config: &ReceiverConfig,
        stats: Arc<ReceiverStats>,
    ) -> Result<(Self, Endpoint), Error> {
        let mut push = ctx
            .socket(zmq::PUSH)
            .map_err(zerr("creating PUSH socket"))?;
        zmqutil::set_io_batch(&mut push).map_err(zerr("setting PUSH batch size"))?;
        let push_queue = SendQueue::new(config.hwm, config.queue_bytes, config.max_message_size);
        push_queue
            .start_on(&push)
            .map_err(zerr("setting PUSH hwm"))?;
        push.set_sndtimeo(TICK_MS)
            .map_err(zerr("setting PUSH timeout"))?;
        push.set_linger(LINGER_MS).map_err(zerr("setting linger"))?;
        guard.apply(&push, &config.output)?;
        zmqutil::bind(&push, &config.output)?;
        let output_endpoint = zmqutil::bound_endpoint(&push, &config.output);

        let mut sub = ctx.socket(zmq::SUB).map_err(zerr("creating SUB socket"))?;
        zmqutil::set_io_batch(&mut sub).map_err(zerr("setting SUB batch size"))?;
        let hwm = queue::receive_hwm(config.hwm, config.queue_bytes, config.max_message_size);
        sub.set_rcvhwm(hwm).map_err(zerr("setting SUB hwm"))?;
        sub.set_rcvtimeo(TICK_MS)
            .map_err(zerr("setting SUB timeout"))?;
        sub.set_linger(0).map_err(zerr("setting linger"))?;
        if config.topics.is_empty() {
            sub.set_subscribe(b"").map_err(zerr("subscribing"))?;
        }
        for t in &config.topics {
            sub.set_subscribe(t).map_err(zerr("subscribing"))?;
        }
        if let Some(tcp) = config.connect.iter().find(|e| e.port().is_some()) {
            crate::curve::guard_client(&sub, config.curve.as_ref(), tcp)?;
        }
        for endpoint in &config.connect {
            zmqutil::connect(&sub, &endpoint.to_string())?;
        }
        let subscribed = Subscribed {
            sub_raw: RawSocket::of(&mut sub),
            push_raw: RawSocket::of(&mut push),
            _sub: sub,
            push,
            push_queue,
            stats,
        };
        Ok((subscribed, output_endpoint))
    }

    fn relay(&self, signals: &Signals) -> Result<(), Error> {
        // Frames are received into and sent from messages we own (no copy, and a send that
        // times out keeps its message), and no per-message readiness check is needed.
        let mut topic = RawMsg::new();
        let mut data = RawMsg::new();
        let mut stopping = false;
        let mut pause = Pause::default();
        let mut queue = self.push_queue.clone();
        loop {
            if !stopping && signals.stop_requested().is_some() {
                stopping = true;
                info!("stop requested: draining queued messages to workers");
            }
            if !stopping && pause.hold(signals) {
                continue;
            }
            // While stopping, keep relaying until nothing has arrived for a tick: what the
            // forwarder flushed as it stopped may still be on its way.
            match topic.recv(self.sub_raw, 0) {
                Ok(()) => {}
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) if stopping => return Ok(()),
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => continue,
                Err(e) => return Err(zerr("receiving from forwarder")(e)),
            }
            self.stats.received().fetch_add(1, Relaxed);
            let out = if topic.more() {
                recv_rest(&mut data, self.sub_raw)?;
                if data.more() {
                    // More than [topic, message]: pass frame 1 on, drop the rest.
                    self.stats.malformed().fetch_add(1, Relaxed);
                    let mut extra = RawMsg::new();
                    loop {
                        recv_rest(&mut extra, self.sub_raw)?;
                        if !extra.more() {
                            break;
                        }
                    }
                }
                &mut data
            } else {
                // A single-frame publication is passed on whole.
                self.stats.malformed().fetch_add(1, Relaxed);
                &mut topic
            };
            self.stats
                .bytes_received()
                .fetch_add(out.len() as u64, Relaxed);
            queue
                .before_send(&self.push, out.len())
                .map_err(zerr("setting PUSH hwm"))?;
            self.push_blocking(out, signals, &mut pause)?;
        }
    }

    /// Pushes one message to a worker, waiting while every worker is busy or none is
    /// connected (the send times out every tick so the wait is logged).
    fn push_blocking(
        &self,
        msg: &mut RawMsg,
        signals: &Signals,
        pause: &mut Pause,
    ) -> Result<(), Error> {
        // The clock is read only once a send has had to wait, not per message.
        let mut since: Option<Instant> = None;
        let mut blocked_log = RateLimit::new(BLOCKED_LOG_INTERVAL);
        loop {
            // A message that could not go out yet stays here while paused (a leaving worker
            // must not get it), unless a stop asks to drain.
            while signals.stop_requested().is_none() && pause.hold(signals) {}
            match msg.send(self.push_raw, 0) {
                Ok(()) => {
                    self.stats.pushed().fetch_add(1, Relaxed);
                    return Ok(());
                }
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => {
                    Blocked {
                        since: *since.get_or_insert_with(Instant::now),
                        what: "no worker is taking messages (all busy or none connected); holding",
                    }
                    .emit(&mut blocked_log);
                }
                Err(e) => return Err(zerr("pushing to workers")(e)),
            }
        }
    }
}

/// How long a push must have waited before it is logged, and how often then.
const BLOCKED_LOG_INTERVAL: Duration = Duration::from_secs(10);

/// The longest a pause lasts: zerologd resumes a receiver as soon as the worker it waits for
/// has exited, so a pause this long means zerologd is gone or stuck; better to go on.
const MAX_PAUSE: Duration = Duration::from_secs(60);

/// Pause state of the relay (SIGUSR1 pauses, SIGUSR2 resumes; see [`Signals::paused`]).
#[derive(Default)]
struct Pause {
    since: Option<Instant>,
}

impl Pause {
    /// Returns true, after waiting a moment, while the relay must stay paused.
    fn hold(&mut self, signals: &Signals) -> bool {
        if !signals.paused() {
            if let Some(since) = self.since.take() {
                info!(paused_ms = since.elapsed().as_millis() as u64, "resumed");
            }
            return false;
        }
        let since = *self.since.get_or_insert_with(|| {
            info!("paused: pushing nothing until resumed (a worker is stopping)");
            Instant::now()
        });
        if since.elapsed() >= MAX_PAUSE {
            warn!(
                max_s = MAX_PAUSE.as_secs(),
                "paused too long without a resume; resuming"
            );
            signals.set_paused(false);
            return false;
        }
        std::thread::sleep(Duration::from_millis(2));
        true
    }
}

/// Receives the next frame of a multipart message (already complete, so this does not wait;
/// a signal may still interrupt it).
fn recv_rest(msg: &mut RawMsg, socket: RawSocket) -> Result<(), Error> {
    loop {
        match msg.recv(socket, 0) {
            Ok(()) => return Ok(()),
            Err(zmq::Error::EINTR | zmq::Error::EAGAIN) => continue,
            Err(e) => return Err(zerr("receiving from forwarder")(e)),
        }
    }
}
