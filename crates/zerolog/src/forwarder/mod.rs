//! The forwarder: accepts syslog over TCP (and UDP), frames it into messages, and publishes
//! each one as `[topic, message]` on a ZeroMQ XPUB socket.
//!
//! Input is async (tokio), so a thousand idle connections cost nothing. The XPUB socket lives on
//! one dedicated thread, fed batches of framed messages through a bounded channel. The XPUB
//! never drops (`ZMQ_XPUB_NODROP`): when a receiver is full the publish blocks, the channel
//! fills, connection tasks stop reading, and TCP flow control pushes back on the senders.
//!
//! The forwarder also tracks live subscriptions (`ZMQ_XPUB_VERBOSER`): it reads no input until
//! the configured number of subscriptions has arrived, pauses when no receiver is subscribed at
//! all, and counts as `unrouted` the messages whose topic no receiver subscribed to (libzmq
//! would drop those silently).
//!
//! This is what `zerolog forwarder` runs (zerolog 0.3's `start_forwarder`). To embed one, fill
//! in a [`ForwarderConfig`], [`Forwarder::bind`] it within a tokio runtime (port 0 picks free
//! ports: ask [`Forwarder::tcp_addrs`] and [`Forwarder::publish_endpoint`] which), and await
//! [`Forwarder::run`] with the future whose completion stops it:
//!
//! ```
//! use std::time::Duration;
//! use zerolog::endpoint::Endpoint;
//! use zerolog::forwarder::{Forwarder, ForwarderConfig};
//! use zerolog::framing::Framing;
//! use zerolog::syslog::TopicTemplate;
//!
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! let rt = tokio::runtime::Runtime::new()?;
//! rt.block_on(async {
//!     let forwarder = Forwarder::bind(ForwarderConfig {
//!         tcp: vec!["127.0.0.1:0".parse()?],
//!         udp: vec!["127.0.0.1:0".parse()?],
//!         publish: Endpoint::tcp("127.0.0.1", 0),
//!         framing: Framing::OctetCounted,
//!         topic_template: TopicTemplate::parse("{hostname}.{app}")?,
//!         ..Default::default()
//!     })
//!     .await?;
//!     println!(
//!         "syslog to {:?}, receivers connect to {}",
//!         forwarder.tcp_addrs(),
//!         forwarder.publish_endpoint()
//!     );
//!     let stats = forwarder.stats();
//!     // Stops (after flushing what it read) when the future completes: here after 100 ms; in
//!     // a program, on a signal (`tokio::signal::ctrl_c()`) or a channel.
//!     let shutdown = tokio::time::sleep(Duration::from_millis(100));
//!     forwarder.run(shutdown, || println!("reading input")).await?;
//!     assert_eq!(stats.snapshot()[0], ("connections_accepted", 0));
//!     Ok(())
//! })
//! # }
//! ```

use std::future::Future;
use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::sys::eventfd::{EfdFlags, EventFd};
use tokio::net::{TcpListener, TcpSocket, UdpSocket};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, error, info, warn};

use crate::endpoint::Endpoint;
use crate::events::{Blocked, RateLimit};
use crate::framing::{Framing, DEFAULT_MAX_SIZE};
use crate::journal::{Journal, JournalConfig};
use crate::queue::SendQueue;
use crate::stats::ForwarderStats;
use crate::syslog::{self, TopicTemplate};
use crate::zmqutil::{self, zerr};
use crate::Error;

mod journaled;
mod relp;
mod resent;
mod serve;
mod tcp;
mod tls_input;
use tcp::{accept_loop, bind_tcp, listen_tcp, Protocol};
pub use tls_input::TlsReloader;

use crate::access::Guard;
use crate::curve::CurveServer;

/// Everything a forwarder needs to know: built in code, from the command line, or read from
/// the file zerologd hands it ([`crate::element::ElementConfig`]). The default is the
/// command's: TCP on 127.0.0.1:6000, publish on `tcp://127.0.0.1:6001`, `auto` framing, 64 KiB
/// messages, topic `{app}`.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ForwarderConfig {
    /// TCP addresses to accept syslog on.
    pub tcp: Vec<SocketAddr>,
    /// UDP addresses to receive syslog datagrams on (one message per datagram).
    pub udp: Vec<SocketAddr>,
    /// TCP addresses to accept RELP on (rsyslog's `omrelp`): each message is acknowledged
    /// once it is in the journal (without a journal: once published).
    pub relp: Vec<SocketAddr>,
    /// TCP addresses to accept syslog over TLS on (RFC 5425), framed as `tcp` is; needs
    /// `tls_settings`.
    pub tls: Vec<SocketAddr>,
    /// TCP addresses to accept RELP over TLS on (rsyslog's `omrelp` with `tls="on"`); needs
    /// `tls_settings`.
    pub relp_tls: Vec<SocketAddr>,
    /// Certificate, key, CA and permitted peers of the `tls` and `relp_tls` inputs (see
    /// [`crate::tls`]).
    pub tls_settings: Option<crate::tls::TlsSettings>,
    /// ZeroMQ endpoint the XPUB socket binds, e.g. `tcp://127.0.0.1:6001` (port 0: any free
    /// one, see [`Forwarder::publish_endpoint`]).
    pub publish: Endpoint,
    /// Optional lossy PUB endpoint that gets a copy of every message.
    pub monitor: Option<Endpoint>,
    /// How the TCP input is framed into messages (default `auto`: decided per connection).
    pub framing: Framing,
    /// Longer messages are truncated to this many bytes (and counted).
    pub max_message_size: usize,
    /// How each message's topic is derived from its syslog header (default `{app}`).
    #[serde(with = "crate::as_text")]
    pub topic_template: TopicTemplate,
    /// Subscriptions to wait for before reading any input (slow-joiner protection).
    pub wait_subscribers: usize,
    /// Per-subscriber queue length (messages) of the XPUB socket, at most.
    pub send_hwm: i32,
    /// Byte budget of the queues: each receiver's (and the monitor's) holds at most
    /// `queue_bytes / SEND_SHARE` (2 MiB by default), see [`crate::queue`].
    pub queue_bytes: usize,
    /// Open connections allowed per TCP input; more are closed at once and counted
    /// (`connections_refused`). Default [`DEFAULT_MAX_CONNECTIONS`].
    pub max_connections: usize,
    /// A connection that sends nothing for this long is closed and counted
    /// (`connections_idle_closed`). Default `None`: never (syslog senders keep quiet
    /// connections open for hours, and reconnect when one is closed).
    pub idle_timeout: Option<Duration>,
    /// SO_RCVBUF of the UDP sockets, in bytes (the kernel may cap it at
    /// `net.core.rmem_max`). Default `None`: the system's.
    pub udp_recv_buffer: Option<usize>,
    /// Networks receivers (and monitors) may connect from; empty: any (see [`crate::access`]).
    pub allow: Vec<ipnet::IpNet>,
    /// CURVE on the TCP publish, journal and monitor sockets: the forwarder's secret key and
    /// the receivers' public keys it lets in (see [`crate::curve`]). `None`: plaintext.
    pub curve: Option<CurveServer>,
    /// The durable journal every message is appended to before it counts as accepted, and
    /// from which receivers fetch with acknowledgements. `None`: no journal, zerolog 0.3's
    /// behaviour (at most once: what a crashed element held is lost).
    pub journal: Option<JournalConfig>,
    /// Where receivers fetch from the journal (a ROUTER socket; see [`crate::delivery`]).
    pub journal_endpoint: Endpoint,
}

/// Default of [`ForwarderConfig::max_connections`].
pub const DEFAULT_MAX_CONNECTIONS: usize = 4096;

impl Default for ForwarderConfig {
    fn default() -> Self {
        ForwarderConfig {
            tcp: vec![SocketAddr::from((
                [127, 0, 0, 1],
                crate::defaults::INPUT_PORT,
            ))],
            udp: Vec::new(),
            relp: Vec::new(),
            tls: Vec::new(),
            relp_tls: Vec::new(),
            tls_settings: None,
            publish: Endpoint::tcp(crate::defaults::BIND_HOST, crate::defaults::PUBLISH_PORT),
            monitor: None,
            framing: Framing::Auto,
            max_message_size: DEFAULT_MAX_SIZE,
            topic_template: TopicTemplate::default(),
            wait_subscribers: 0,
            send_hwm: crate::defaults::HWM,
            queue_bytes: crate::queue::DEFAULT_QUEUE_BYTES,
            max_connections: DEFAULT_MAX_CONNECTIONS,
            idle_timeout: None,
            udp_recv_buffer: None,
            allow: Vec::new(),
            curve: None,
            journal: None,
            journal_endpoint: Endpoint::tcp(
                crate::defaults::BIND_HOST,
                crate::defaults::JOURNAL_PORT,
            ),
        }
    }
}

/// Where input tasks hand framed batches to the publisher thread, which sleeps in a ZeroMQ
/// poll: the eventfd wakes it.
#[derive(Clone)]
pub(crate) struct Inbox {
    tx: mpsc::Sender<Batch>,
    wake: Arc<EventFd>,
}

impl Inbox {
    /// Sends a batch; an error means the forwarder is stopping.
    pub(crate) async fn send(&self, batch: Batch) -> Result<(), ()> {
        self.tx.send(batch).await.map_err(|_| ())?;
        let _ = self.wake.write(1);
        Ok(())
    }
}

/// Batches of framed messages travelling from connection tasks to the publisher thread.
const CHANNEL_BATCHES: usize = 8;
/// Bytes read from a connection at a time.
const READ_BUF: usize = 64 * 1024;
/// How long a publish may block before we log that receivers are not keeping up.
const SEND_TIMEOUT_MS: i32 = 1000;
/// When stopping, a connection is read until it has been quiet this long...
const DRAIN_QUIET: Duration = Duration::from_millis(200);
/// ...or for this long at most.
const DRAIN_MAX: Duration = Duration::from_secs(5);
/// Linger on close, so queued messages reach the receivers on shutdown.
const LINGER_MS: i32 = 10_000;
/// Queue length of the monitor socket, at most (libzmq's default).
const MONITOR_HWM: i32 = 1000;

/// Framed messages with their topics, packed in one buffer as journal payloads
/// (`topic_len u16 | topic | message`, see [`split_payload`]), so a batch is appended with no
/// copy.
#[derive(Default)]
pub(crate) struct Batch {
    buf: Vec<u8>,
    /// (start, topic length, message length) per message.
    items: Vec<(usize, usize, usize)>,
    /// Told the sequence number of the batch's first message once it is in the journal (a
    /// RELP connection answers then).
    pub(crate) accepted: Option<oneshot::Sender<u64>>,
}

impl Batch {
    pub(crate) fn push(&mut self, template: &TopicTemplate, msg: &[u8]) {
        self.push_marked(template, msg, false);
    }

    /// [`Batch::push`], marking the message as one its sender may have sent before
    /// ([`resent`]).
    pub(crate) fn push_marked(&mut self, template: &TopicTemplate, msg: &[u8], resent: bool) {
        let start = self.buf.len();
        self.buf.extend_from_slice(&[0, 0]);
        if template.needs_header() {
            template.render(&syslog::scan(msg), &mut self.buf);
        } else {
            template.render(&syslog::Header::default(), &mut self.buf);
        }
        let topic_len = (self.buf.len() - start - 2).min(MAX_TOPIC);
        self.buf.truncate(start + 2 + topic_len);
        let word = topic_len as u16 | if resent { RESENT } else { 0 };
        self.buf[start..start + 2].copy_from_slice(&word.to_le_bytes());
        self.buf.extend_from_slice(msg);
        self.items.push((start, topic_len, msg.len()));
    }

    fn iter(&self) -> impl Iterator<Item = (&[u8], &[u8])> {
        self.payloads().map(|p| {
            let p = split_payload(p);
            (p.topic, p.message)
        })
    }

    /// Each message as a journal payload.
    fn payloads(&self) -> impl Iterator<Item = &[u8]> {
        self.items
            .iter()
            .map(|&(s, t, m)| &self.buf[s..s + 2 + t + m])
    }

    pub(crate) fn len(&self) -> usize {
        self.items.len()
    }

    fn bytes(&self) -> usize {
        self.buf.len()
    }

    fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// The bit of a payload's first word that marks a message its sender may have sent before;
/// the rest is the topic's length.
const RESENT: u16 = 0x8000;
/// The longest topic kept (a longer one is cut).
const MAX_TOPIC: usize = (RESENT - 1) as usize;

/// A journal payload: `topic_len u16 (the top bit: RESENT) | topic | message`.
struct Payload<'a> {
    topic: &'a [u8],
    message: &'a [u8],
    resent: bool,
}

fn split_payload(p: &[u8]) -> Payload<'_> {
    let Some((word, rest)) = p.split_first_chunk::<2>() else {
        return Payload {
            topic: &[],
            message: p,
            resent: false,
        };
    };
    let word = u16::from_le_bytes(*word);
    let (topic, message) = rest.split_at(((word & !RESENT) as usize).min(rest.len()));
    Payload {
        topic,
        message,
        resent: word & RESENT != 0,
    }
}

/// A forwarder whose sockets are bound; [`Forwarder::run`] starts it. See the
/// [module documentation](self) for an example.
pub struct Forwarder {
    config: ForwarderConfig,
    /// Bound; listening once ready.
    tcp: Vec<TcpSocket>,
    relp: Vec<TcpSocket>,
    /// The TLS inputs' sockets (syslog, RELP), and what their connections are accepted with.
    tls: Vec<TcpSocket>,
    relp_tls: Vec<TcpSocket>,
    tls_input: Option<tls_input::SharedTls>,
    udp: Vec<UdpSocket>,
    _ctx: zmq::Context,
    xpub: Output,
    monitor: Option<Output>,
    publish_endpoint: Endpoint,
    /// The journal and the socket receivers fetch from, when configured.
    journal: Option<(Journal, zmq::Socket)>,
    journal_endpoint: Option<Endpoint>,
    stats: Arc<ForwarderStats>,
}

impl Forwarder {
    /// Binds every input and output. Must be called within a tokio runtime. The TCP inputs
    /// listen only once [`Forwarder::run`] is ready: until then, connections are refused.
    pub async fn bind(config: ForwarderConfig) -> Result<Self, Error> {
        let ctx = zmq::Context::new();
        let stats = Arc::new(ForwarderStats::from_env());
        let guard = Guard::start(&ctx, &config.allow, config.curve.as_ref(), stats.clone())?;
        let mut xpub = ctx
            .socket(zmq::XPUB)
            .map_err(zerr("creating XPUB socket"))?;
        zmqutil::set_xpub_nodrop_verboser(&mut xpub).map_err(zerr("setting XPUB options"))?;
        zmqutil::set_io_batch(&mut xpub).map_err(zerr("setting XPUB batch size"))?;
        let queue = SendQueue::new(config.send_hwm, config.queue_bytes, config.max_message_size);
        queue
            .start_on(&xpub)
            .map_err(zerr("setting send high-water mark"))?;
        xpub.set_sndtimeo(SEND_TIMEOUT_MS)
            .map_err(zerr("setting send timeout"))?;
        xpub.set_linger(LINGER_MS).map_err(zerr("setting linger"))?;
        guard.apply(&xpub, &config.publish)?;
        zmqutil::bind(&xpub, &config.publish)?;
        let publish_endpoint = zmqutil::bound_endpoint(&xpub, &config.publish);
        let xpub = (xpub, queue);

        let monitor = match &config.monitor {
            Some(endpoint) => {
                let s = ctx
                    .socket(zmq::PUB)
                    .map_err(zerr("creating monitor socket"))?;
                s.set_linger(0).map_err(zerr("setting linger"))?;
                let queue =
                    SendQueue::new(MONITOR_HWM, config.queue_bytes, config.max_message_size);
                queue
                    .start_on(&s)
                    .map_err(zerr("setting monitor high-water mark"))?;
                guard.apply(&s, endpoint)?;
                zmqutil::bind(&s, endpoint)?;
                Some((s, queue))
            }
            None => None,
        };

        let mut tcp = Vec::new();
        for addr in &config.tcp {
            tcp.push(bind_tcp(*addr)?);
        }
        let relp = config
            .relp
            .iter()
            .map(|a| bind_tcp(*a))
            .collect::<Result<Vec<_>, _>>()?;
        let any_tls = !(config.tls.is_empty() && config.relp_tls.is_empty());
        let tls_input = match (&config.tls_settings, any_tls) {
            (_, false) => None,
            (Some(settings), true) => Some(tls_input::shared(settings)?),
            (None, true) => {
                return Err(Error::Usage(
                    "TLS inputs need TLS settings: a certificate and its key".into(),
                ))
            }
        };
        let tls = config
            .tls
            .iter()
            .map(|a| bind_tcp(*a))
            .collect::<Result<Vec<_>, _>>()?;
        let relp_tls = config
            .relp_tls
            .iter()
            .map(|a| bind_tcp(*a))
            .collect::<Result<Vec<_>, _>>()?;
        let mut udp = Vec::new();
        for addr in &config.udp {
            let s = UdpSocket::bind(addr)
                .await
                .map_err(|source| Error::Listen {
                    addr: format!("udp:{addr}"),
                    source,
                })?;
            if let Some(size) = config.udp_recv_buffer {
                let sock = socket2::SockRef::from(&s);
                if let Err(e) = sock.set_recv_buffer_size(size) {
                    warn!(%addr, size, error = %e, "cannot set the UDP receive buffer");
                }
                // Linux reports twice the size it granted (the kernel's bookkeeping).
                let got = sock.recv_buffer_size().unwrap_or(0);
                info!(%addr, requested = size, granted = got / 2, "UDP receive buffer");
            }
            udp.push(s);
        }
        let journal = match &config.journal {
            Some(j) => Some(open_journal((&ctx, &guard), j, &config, &stats)?),
            None => None,
        };
        let journal_endpoint = journal
            .as_ref()
            .map(|(_, router)| zmqutil::bound_endpoint(router, &config.journal_endpoint));
        Ok(Forwarder {
            config,
            tcp,
            relp,
            tls,
            relp_tls,
            tls_input,
            udp,
            _ctx: ctx,
            xpub,
            monitor,
            publish_endpoint,
            journal,
            journal_endpoint,
            stats,
        })
    }

    /// The endpoint receivers fetch the journal from (port 0 resolved), when there is one.
    pub fn journal_endpoint(&self) -> Option<&Endpoint> {
        self.journal_endpoint.as_ref()
    }

    /// The TCP addresses actually listened on (port 0 resolved).
    pub fn tcp_addrs(&self) -> Vec<SocketAddr> {
        self.tcp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The RELP addresses actually listened on (port 0 resolved).
    pub fn relp_addrs(&self) -> Vec<SocketAddr> {
        self.relp
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The TLS addresses actually listened on (port 0 resolved).
    pub fn tls_addrs(&self) -> Vec<SocketAddr> {
        self.tls
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// The RELP-over-TLS addresses actually listened on (port 0 resolved).
    pub fn relp_tls_addrs(&self) -> Vec<SocketAddr> {
        self.relp_tls
            .iter()
            .filter_map(|l| l.local_addr().ok())
            .collect()
    }

    /// What re-reads the TLS inputs' files (on SIGHUP, say), if there are TLS inputs.
    pub fn tls_reloader(&self) -> Option<TlsReloader> {
        Some(TlsReloader {
            settings: self.config.tls_settings.clone()?,
            shared: self.tls_input.clone()?,
        })
    }

    /// The UDP addresses actually bound (port 0 resolved).
    pub fn udp_addrs(&self) -> Vec<SocketAddr> {
        self.udp
            .iter()
            .filter_map(|s| s.local_addr().ok())
            .collect()
    }

    /// The endpoint the XPUB socket bound (port 0 resolved).
    pub fn publish_endpoint(&self) -> &Endpoint {
        &self.publish_endpoint
    }

    /// Live counters, shared with the running forwarder.
    pub fn stats(&self) -> Arc<ForwarderStats> {
        self.stats.clone()
    }

    /// Runs until `shutdown` completes, then stops accepting, reads each connection until it
    /// has been quiet for 200 ms (5 s at most), publishes everything framed, and returns.
    ///
    /// `on_ready` is called once the forwarder starts reading input (after the awaited
    /// subscriptions arrived).
    pub async fn run(
        self,
        shutdown: impl Future<Output = ()>,
        on_ready: impl FnOnce(),
    ) -> Result<(), Error> {
        let Forwarder {
            config,
            tcp,
            relp,
            tls,
            relp_tls,
            tls_input,
            udp,
            _ctx,
            xpub,
            monitor,
            mut journal,
            stats,
            ..
        } = self;
        let (tx, rx) = mpsc::channel::<Batch>(CHANNEL_BATCHES);
        let wake = EventFd::from_value_and_flags(0, EfdFlags::EFD_NONBLOCK | EfdFlags::EFD_CLOEXEC)
            .map_err(|e| Error::Io {
                context: "creating the publisher's eventfd",
                source: e.into(),
            })?;
        let wake = Arc::new(wake);
        let tx = Inbox {
            tx,
            wake: wake.clone(),
        };
        let (ready_tx, ready_rx) = oneshot::channel();
        let (stop_tx, stop_rx) = watch::channel(false);
        let earlier = Arc::new(match journal.as_mut() {
            Some((j, _)) if !(relp.is_empty() && relp_tls.is_empty()) => {
                resent::Earlier::from_tail(j).unwrap_or_else(|e| {
                    warn!(error = %e, "cannot read the journal's end: RELP re-sends will not be told apart");
                    resent::Earlier::default()
                })
            }
            _ => resent::Earlier::default(),
        });
        let publisher = {
            let stats = stats.clone();
            let wait = config.wait_subscribers;
            let stop = stop_rx.clone();
            let thread = move || match journal {
                Some((journal, router)) => {
                    let opened_at = journal.next_seq();
                    let mut legacy = journaled::Legacy {
                        xpub,
                        monitor,
                        subs: Subscriptions::default(),
                        only_path: journal.config().consumers.is_empty(),
                        waiting: false,
                    };
                    if !wait_for_subscribers(&legacy.xpub.0, &mut legacy.subs, wait, &stop)? {
                        return Ok(());
                    }
                    journaled::Loop {
                        journal,
                        served: serve::Served::new(router, opened_at),
                        legacy,
                        rx,
                        wake,
                        stop,
                        ready: Some(ready_tx),
                    }
                    .run(&stats)
                }
                None => publish_loop(xpub, monitor, rx, ready_tx, wait, stop, &stats),
            };
            std::thread::Builder::new()
                .name("zerolog-publish".into())
                .spawn(thread)
                .map_err(|e| Error::Io {
                    context: "spawning publisher thread",
                    source: e,
                })?
        };
        let publisher = tokio::task::spawn_blocking(move || publisher.join());

        tokio::pin!(shutdown);
        let ready = tokio::select! {
            r = ready_rx => r.is_ok(),
            _ = &mut shutdown => false,
        };
        let mut failed = None;
        if ready {
            let mut inputs = vec![
                (tcp, Protocol::Syslog),
                (relp, Protocol::Relp(earlier.clone())),
            ];
            if let Some(t) = tls_input {
                inputs.push((tls, Protocol::Tls(t.clone())));
                inputs.push((relp_tls, Protocol::RelpTls(earlier, t)));
            }
            let listen = |(v, p): (Vec<TcpSocket>, Protocol)| {
                v.into_iter().map(move |s| Ok((listen_tcp(s)?, p.clone())))
            };
            match inputs
                .into_iter()
                .flat_map(listen)
                .collect::<Result<Vec<_>, Error>>()
            {
                Ok(tcp) => {
                    spawn_inputs(tcp, udp, &tx, &stop_rx, Arc::new(config), &stats);
                    on_ready();
                    shutdown.await;
                }
                Err(e) => failed = Some(e),
            }
        }
        info!("forwarder stopping: no longer accepting, flushing what was received");
        let _ = stop_tx.send(true);
        drop(tx);
        let published = match publisher.await {
            Ok(Ok(result)) => result,
            _ => Err(Error::Io {
                context: "publisher thread",
                source: std::io::Error::other("publisher thread panicked"),
            }),
        };
        match failed {
            Some(e) => Err(e),
            None => published,
        }
    }
}

/// Starts reading every input, each on tasks of its own.
fn spawn_inputs(
    tcp: Vec<(TcpListener, Protocol)>,
    udp: Vec<UdpSocket>,
    tx: &Inbox,
    stop: &watch::Receiver<bool>,
    config: Arc<ForwarderConfig>,
    stats: &Arc<ForwarderStats>,
) {
    let addrs: Vec<String> = tcp
        .iter()
        .filter_map(|(l, p)| Some(format!("{}:{}", p.scheme(), l.local_addr().ok()?)))
        .chain(
            udp.iter()
                .filter_map(|s| s.local_addr().ok())
                .map(|a| format!("udp:{a}")),
        )
        .collect();
    info!(
        inputs = %addrs.join(","),
        framing = %config.framing,
        topic = %config.topic_template,
        "forwarder ready, reading input"
    );
    for (listener, protocol) in tcp {
        let (tx, stop, config, stats) = (tx.clone(), stop.clone(), config.clone(), stats.clone());
        tokio::spawn(accept_loop(listener, protocol, tx, stop, config, stats));
    }
    for socket in udp {
        let (tx, stop, config, stats) = (tx.clone(), stop.clone(), config.clone(), stats.clone());
        tokio::spawn(udp_loop(socket, tx, stop, config, stats));
    }
}

async fn udp_loop(
    socket: UdpSocket,
    tx: Inbox,
    mut stop: watch::Receiver<bool>,
    config: Arc<ForwarderConfig>,
    stats: Arc<ForwarderStats>,
) {
    let mut buf = vec![0u8; 65_536];
    let max = config.max_message_size;
    loop {
        let r = tokio::select! {
            _ = stop.changed() => return,
            r = socket.recv_from(&mut buf) => r,
        };
        let Ok((n, _peer)) = r else { continue };
        stats.bytes_received().fetch_add(n as u64, Relaxed);
        stats.udp_datagrams().fetch_add(1, Relaxed);
        // One datagram, one message; a trailing newline is a terminator, not content.
        let mut msg = &buf[..n];
        if let Some(m) = msg.strip_suffix(b"\n") {
            msg = m;
        }
        if msg.is_empty() {
            continue;
        }
        stats.messages_received().fetch_add(1, Relaxed);
        if msg.len() > max {
            stats.truncated().fetch_add(1, Relaxed);
            msg = &msg[..max];
        }
        let mut batch = Batch::default();
        batch.push(&config.topic_template, msg);
        if tx.send(batch).await.is_err() {
            return;
        }
    }
}

/// Subscriptions as the XPUB reports them (a multiset of topic prefixes).
#[derive(Default)]
struct Subscriptions {
    topics: Vec<(Vec<u8>, usize)>,
    total: usize,
    /// Some receiver takes every topic (the empty prefix): no need to compare.
    match_all: bool,
}

impl Subscriptions {
    /// Applies one XPUB (un)subscription message: `\x01topic` or `\x00topic`.
    fn apply(&mut self, msg: &[u8]) {
        let Some((&kind, topic)) = msg.split_first() else {
            return;
        };
        let pos = self.topics.iter().position(|(t, _)| t == topic);
        match (kind, pos) {
            (1, Some(i)) => self.topics[i].1 += 1,
            (1, None) => self.topics.push((topic.to_vec(), 1)),
            (0, Some(i)) => {
                self.topics[i].1 -= 1;
                if self.topics[i].1 == 0 {
                    self.topics.swap_remove(i);
                }
            }
            _ => return,
        }
        self.total = self.topics.iter().map(|(_, n)| n).sum();
        self.match_all = self.topics.iter().any(|(t, _)| t.is_empty());
        debug!(
            topic = %String::from_utf8_lossy(topic),
            subscribe = kind == 1,
            subscriptions = self.total,
            "subscription change"
        );
    }

    fn matches(&self, topic: &[u8]) -> bool {
        self.match_all || self.topics.iter().any(|(t, _)| topic.starts_with(t))
    }
}

/// Reads (un)subscriptions from the XPUB. Blocks up to `timeout_ms` for the first one
/// (0 = don't block). Returns whether any arrived.
fn read_subscriptions(
    xpub: &zmq::Socket,
    subs: &mut Subscriptions,
    timeout_ms: i64,
) -> Result<bool, Error> {
    let mut got = false;
    let mut timeout = timeout_ms;
    loop {
        if xpub
            .poll(zmq::POLLIN, timeout)
            .map_err(zerr("polling XPUB"))?
            == 0
        {
            return Ok(got);
        }
        let msg = xpub
            .recv_bytes(zmq::DONTWAIT)
            .map_err(zerr("reading subscription"))?;
        subs.apply(&msg);
        got = true;
        timeout = 0;
    }
}

/// A sending socket and the bound of its queues.
type Output = (zmq::Socket, SendQueue);

/// Waits until `wanted` subscriptions arrived (slow-joiner protection). False: a stop came
/// first.
fn wait_for_subscribers(
    xpub: &zmq::Socket,
    subs: &mut Subscriptions,
    wanted: usize,
    stop: &watch::Receiver<bool>,
) -> Result<bool, Error> {
    if wanted > 0 {
        info!(
            wait_subscribers = wanted,
            "waiting for receivers to subscribe before reading input"
        );
    }
    while subs.total < wanted {
        if *stop.borrow() {
            return Ok(false);
        }
        read_subscriptions(xpub, subs, 100)?;
    }
    Ok(true)
}

/// Opens (recovers) the journal and binds the endpoint receivers fetch it from.
fn open_journal(
    (ctx, guard): (&zmq::Context, &Guard),
    j: &JournalConfig,
    config: &ForwarderConfig,
    stats: &ForwarderStats,
) -> Result<(Journal, zmq::Socket), Error> {
    let (journal, recovery) = Journal::open(j)?;
    stats
        .journal_cut_bytes()
        .fetch_add(recovery.cut_bytes, Relaxed);
    info!(
        dir = %j.dir.display(),
        fsync = ?j.fsync,
        first = journal.first_seq(),
        next = journal.next_seq(),
        size = journal.size(),
        segments = recovery.segments,
        cut_bytes = recovery.cut_bytes,
        "journal opened"
    );
    if recovery.cut_bytes > 0 {
        warn!(cut_bytes = recovery.cut_bytes, "journal recovery cut a torn or corrupt tail (a crash during a write); every whole record before it was kept");
    }
    let router = ctx
        .socket(zmq::ROUTER)
        .map_err(zerr("creating the journal socket"))?;
    router.set_linger(0).map_err(zerr("setting linger"))?;
    guard.apply(&router, &config.journal_endpoint)?;
    zmqutil::bind(&router, &config.journal_endpoint)?;
    Ok((journal, router))
}

fn publish_loop(
    (xpub, mut queue): Output,
    mut monitor: Option<Output>,
    mut rx: mpsc::Receiver<Batch>,
    ready: oneshot::Sender<()>,
    wait_subscribers: usize,
    stop: watch::Receiver<bool>,
    stats: &ForwarderStats,
) -> Result<(), Error> {
    let mut subs = Subscriptions::default();
    if !wait_for_subscribers(&xpub, &mut subs, wait_subscribers, &stop)? {
        return Ok(());
    }
    let _ = ready.send(());
    while let Some(mut batch) = rx.blocking_recv() {
        read_subscriptions(&xpub, &mut subs, 0)?;
        for (topic, msg) in batch.iter() {
            publish_one(&xpub, &mut queue, &mut subs, (topic, msg), &stop, stats)?;
            copy_to_monitor(&mut monitor, topic, msg)?;
        }
        // Without a journal, a RELP batch counts as accepted once published.
        if let Some(accepted) = batch.accepted.take() {
            let _ = accepted.send(0);
        }
    }
    stats.log("forwarder");
    Ok(())
}

fn publish_one(
    xpub: &zmq::Socket,
    queue: &mut SendQueue,
    subs: &mut Subscriptions,
    (topic, msg): (&[u8], &[u8]),
    stop: &watch::Receiver<bool>,
    stats: &ForwarderStats,
) -> Result<(), Error> {
    queue
        .before_send(xpub, topic.len() + msg.len())
        .map_err(zerr("setting send high-water mark"))?;
    // Only a blocked publish looks at the clock.
    let mut blocked_since: Option<Instant> = None;
    let mut blocked_log = RateLimit::new(Duration::from_secs(10));
    loop {
        if subs.total == 0 && *stop.borrow() {
            // Stopping with no receiver left: nothing can take this message. Count it.
            if stats.dropped_at_shutdown().fetch_add(1, Relaxed) == 0 {
                error!("stopping with no receiver subscribed: dropping the remaining messages (counted as dropped_at_shutdown)");
            }
            return Ok(());
        }
        if subs.total == 0 {
            // Nobody to deliver to (every receiver gone): hold the message and stop reading
            // input until a receiver subscribes, rather than publish into the void.
            if blocked_since.is_none() {
                warn!("no receiver subscribed: input paused until one subscribes");
                blocked_since = Some(Instant::now());
            }
            read_subscriptions(xpub, subs, 1000)?;
            continue;
        }
        if !subs.matches(topic) {
            stats.unrouted().fetch_add(1, Relaxed);
            return Ok(());
        }
        if send_pair(xpub, topic, msg, 0)? {
            stats.published().fetch_add(1, Relaxed);
            if let Some(t) = blocked_since {
                let waited = t.elapsed();
                if waited >= Duration::from_secs(1) {
                    info!(waited_ms = waited.as_millis() as u64, "publishing resumed");
                }
            }
            return Ok(());
        }
        let since = *blocked_since.get_or_insert_with(Instant::now);
        Blocked {
            since,
            what: "publishing blocked: a receiver is not keeping up (input is throttled, nothing dropped)",
        }
        .emit(&mut blocked_log);
        // A receiver may have gone away meanwhile; its unsubscription unblocks us.
        read_subscriptions(xpub, subs, 0)?;
    }
}

/// Sends `[topic, msg]` on a publishing socket. False: it is full (with `flags` DONTWAIT at
/// once, else after its send timeout).
fn send_pair(socket: &zmq::Socket, topic: &[u8], msg: &[u8], flags: i32) -> Result<bool, Error> {
    match socket.send(topic, zmq::SNDMORE | flags) {
        // With NODROP the check happens on the first frame; the rest always goes.
        Ok(()) => socket
            .send(msg, 0)
            .map_err(zerr("publishing"))
            .map(|()| true),
        Err(zmq::Error::EAGAIN) => Ok(false),
        Err(e) => Err(zerr("publishing")(e)),
    }
}

/// A copy for the monitor, if there is one. Lossy by design: never waits.
fn copy_to_monitor(monitor: &mut Option<Output>, topic: &[u8], msg: &[u8]) -> Result<(), Error> {
    if let Some((m, queue)) = monitor {
        queue
            .before_send(m, topic.len() + msg.len())
            .map_err(zerr("setting monitor high-water mark"))?;
        let _ = m
            .send(topic, zmq::SNDMORE | zmq::DONTWAIT)
            .and_then(|_| m.send(msg, zmq::DONTWAIT));
    }
    Ok(())
}
