//! The TCP input: accepting connections (within the limit) and each connection's read loop,
//! an explicit state machine: [`Phase`] x [`Wake`] -> next phase or [`End`].

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tokio::net::{TcpListener, TcpSocket, TcpStream};
use tokio::sync::watch;
use tracing::{debug, info, warn};

use super::resent::Earlier;
use super::tls_input::{self, SharedTls};
use super::{Batch, ForwarderConfig, Inbox, DRAIN_MAX, DRAIN_QUIET, READ_BUF};
use crate::events::{BadInput, ConnectionRefused, RateLimit};
use crate::framing::{Framer, FramerStats};
use crate::stats::ForwarderStats;
use crate::Error;

/// A TCP socket bound to `addr`, not yet listening: until the forwarder is ready, senders
/// are refused (and keep their logs) rather than accepted into a queue nobody reads.
pub(super) fn bind_tcp(addr: SocketAddr) -> Result<TcpSocket, Error> {
    let err = |source| Error::Listen {
        addr: format!("tcp:{addr}"),
        source,
    };
    let socket = if addr.is_ipv4() {
        TcpSocket::new_v4()
    } else {
        TcpSocket::new_v6()
    }
    .map_err(err)?;
    // A restarted forwarder must bind again while old connections sit in TIME_WAIT.
    socket.set_reuseaddr(true).map_err(err)?;
    socket.bind(addr).map_err(err)?;
    Ok(socket)
}

/// Starts accepting on a socket of [`bind_tcp`].
pub(super) fn listen_tcp(socket: TcpSocket) -> Result<TcpListener, Error> {
    let addr = socket
        .local_addr()
        .map_or_else(|_| "?".into(), |a| a.to_string());
    socket.listen(1024).map_err(|source| Error::Listen {
        addr: format!("tcp:{addr}"),
        source,
    })
}

/// What a TCP input speaks.
#[derive(Clone, Debug)]
pub(super) enum Protocol {
    /// Syslog, framed by RFC 6587.
    Syslog,
    /// RELP ([`super::relp`]), with what was in the journal at start (to tell re-sends).
    Relp(Arc<Earlier>),
    /// Syslog over TLS (RFC 5425, [`super::tls_input`]), framed as [`Protocol::Syslog`].
    Tls(SharedTls),
    /// RELP over TLS: [`Protocol::Relp`] after [`Protocol::Tls`]'s handshake.
    RelpTls(Arc<Earlier>, SharedTls),
}

impl Protocol {
    /// The counter of its accepted connections.
    fn accepted<'a>(&self, stats: &'a ForwarderStats) -> &'a AtomicU64 {
        match self {
            Protocol::Syslog | Protocol::Tls(_) => stats.connections_accepted(),
            Protocol::Relp(_) | Protocol::RelpTls(..) => stats.relp_sessions(),
        }
    }

    /// The gauge of its open connections, if it has one.
    fn open<'a>(&self, stats: &'a ForwarderStats) -> Option<&'a AtomicU64> {
        matches!(self, Protocol::Syslog | Protocol::Tls(_)).then(|| stats.connections_open())
    }

    /// How its addresses are named in the log: `tcp`, `relp`, `tls`.
    pub(super) fn scheme(&self) -> &'static str {
        match self {
            Protocol::Syslog => "tcp",
            Protocol::Relp(_) => "relp",
            Protocol::Tls(_) => "tls",
            Protocol::RelpTls(..) => "relp+tls",
        }
    }
}

/// Accepts connections on `listener` (at most `max_connections` open; more are closed at
/// once and counted) and serves each with the input's protocol, on a task of its own.
pub(super) async fn accept_loop(
    listener: TcpListener,
    protocol: Protocol,
    tx: Inbox,
    mut stop: watch::Receiver<bool>,
    config: Arc<ForwarderConfig>,
    stats: Arc<ForwarderStats>,
) {
    // Connections open on this input (the limit is per input).
    let open = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut refusals = RateLimit::per_second();
    loop {
        tokio::select! {
            _ = stop.changed() => return,
            r = listener.accept() => match r {
                Ok((stream, peer)) => {
                    protocol.accepted(&stats).fetch_add(1, Relaxed);
                    if open.load(Relaxed) >= config.max_connections {
                        // Closing at once tells the sender to come back later; the open
                        // connections are not touched.
                        ConnectionRefused { peer, max_connections: config.max_connections }
                            .emit(stats.connections_refused(), &mut refusals);
                        drop(stream);
                        continue;
                    }
                    open.fetch_add(1, Relaxed);
                    if let Some(gauge) = protocol.open(&stats) {
                        gauge.fetch_add(1, Relaxed);
                    }
                    debug!(%peer, ?protocol, "connection accepted");
                    let (tx, stop, config, stats, open) = (tx.clone(), stop.clone(), config.clone(), stats.clone(), open.clone());
                    let protocol = protocol.clone();
                    tokio::spawn(async move {
                        match &protocol {
                            Protocol::Syslog => connection(stream, peer, tx, stop, &config, &stats).await,
                            Protocol::Relp(earlier) => {
                                let _ = stream.set_nodelay(true);
                                super::relp::session(stream, peer, tx, stop, &config, earlier, &stats).await
                            }
                            Protocol::Tls(tls) => tls_input::connection(stream, peer, tx, stop, &config, tls, &stats).await,
                            Protocol::RelpTls(earlier, tls) => tls_input::relp_session(stream, peer, tx, stop, (&config, earlier), tls, &stats).await,
                        }
                        if let Some(gauge) = protocol.open(&stats) {
                            gauge.fetch_sub(1, Relaxed);
                        }
                        open.fetch_sub(1, Relaxed);
                    });
                }
                Err(e) => {
                    // EMFILE and friends: back off instead of spinning.
                    warn!(error = %e, ?protocol, "accept failed");
                    tokio::time::sleep(Duration::from_millis(100)).await;
                }
            }
        }
    }
}

/// Adds what a framer counted since `last` to the shared counters and logs (at most once a
/// second per connection) about truncations and malformed counts.
fn account(
    stats: &ForwarderStats,
    now: FramerStats,
    last: &mut FramerStats,
    peer: SocketAddr,
    limit: &mut RateLimit,
    max: usize,
) {
    stats
        .messages_received()
        .fetch_add(now.messages - last.messages, Relaxed);
    BadInput {
        peer,
        now,
        last: *last,
        max_message_size: max,
    }
    .emit(stats, limit);
    *last = now;
}

/// Where a connection's read loop is: the states of [`Connection::run`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum Phase {
    /// Reading what comes; closed after `idle_timeout` of silence.
    Open,
    /// A stop was requested: read until the sender is quiet for [`DRAIN_QUIET`] (the rest of
    /// a burst may still sit in its socket) or `until` passes.
    Draining {
        /// When the drain time is up.
        until: Instant,
    },
}

/// What a wait on the connection gave: the events of [`Connection::run`].
#[derive(Debug)]
enum Wake {
    /// The socket is readable (data, the end of the stream, or an error).
    Readable(std::io::Result<()>),
    /// Open, and nothing came for `idle_timeout`.
    Idle,
    /// Open, and a stop was requested.
    Stop,
    /// Draining, and nothing came for [`DRAIN_QUIET`] (or the drain time is up).
    Quiet {
        /// Whether it was still sending when the drain time ran out.
        still_sending: bool,
    },
}

/// How a connection ends.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
enum End {
    /// The sender closed it (or it failed): a message left unterminated is passed on.
    Closed,
    /// We close it at the end of a drain: a message left unfinished is not ours to pass on.
    Drained,
}

/// Where a connection's bytes come from: a socket, read into its thread's scratch buffer once
/// readable (a connection then holds no read buffer of its own), or a TLS session
/// ([`super::tls_input`]), read into a buffer of its own.
pub(super) trait Source {
    /// Waits until [`Source::take`] has something: bytes, the end of the stream or an error.
    async fn readable(&mut self) -> std::io::Result<()>;
    /// Hands what can be read now to `f` and returns its length: 0 at the end of the stream,
    /// `WouldBlock` when there is nothing after all.
    fn take(&mut self, f: impl FnOnce(&[u8])) -> std::io::Result<usize>;
    /// The sender closed the stream.
    async fn closed(&mut self) {}
}

impl Source for TcpStream {
    async fn readable(&mut self) -> std::io::Result<()> {
        TcpStream::readable(self).await
    }
    fn take(&mut self, f: impl FnOnce(&[u8])) -> std::io::Result<usize> {
        SCRATCH.with_borrow_mut(|buf| {
            let n = self.try_read(buf)?;
            f(&buf[..n]);
            Ok(n)
        })
    }
}

/// One connection: its framer, its counters' last values, and where its loop is.
pub(super) struct Connection<'a, S> {
    stream: S,
    peer: SocketAddr,
    framer: Framer,
    last: FramerStats,
    bad_input: RateLimit,
    phase: Phase,
    config: &'a ForwarderConfig,
    stats: &'a ForwarderStats,
}

/// Serves one connection of `stream` until it ends.
pub(super) async fn connection<S: Source>(
    stream: S,
    peer: SocketAddr,
    tx: Inbox,
    stop: watch::Receiver<bool>,
    config: &ForwarderConfig,
    stats: &ForwarderStats,
) {
    Connection {
        stream,
        peer,
        framer: Framer::new(config.framing, config.max_message_size),
        last: FramerStats::default(),
        bad_input: RateLimit::per_second(),
        phase: Phase::Open,
        config,
        stats,
    }
    .run(tx, stop)
    .await
}

impl<S: Source> Connection<'_, S> {
    /// Reads, frames and sends on until the connection ends.
    async fn run(mut self, tx: Inbox, mut stop: watch::Receiver<bool>) {
        loop {
            let mut batch = Batch::default();
            let end = match self.wait(&mut stop).await {
                Wake::Stop => {
                    self.phase = Phase::Draining {
                        until: Instant::now() + DRAIN_MAX,
                    };
                    continue;
                }
                Wake::Idle => {
                    self.stats.connections_idle_closed().fetch_add(1, Relaxed);
                    info!(peer = %self.peer, pending_bytes = self.framer.pending(), "connection idle for idle_timeout: closed (counted as connections_idle_closed)");
                    return;
                }
                Wake::Quiet { still_sending } => {
                    if still_sending {
                        self.stats.closed_sending_at_stop().fetch_add(1, Relaxed);
                        warn!(peer = %self.peer, "connection still sending at the end of the drain time; closing it: what the sender writes from now on is lost in TCP (counted as closed_sending_at_stop)");
                    }
                    Some(End::Drained)
                }
                Wake::Readable(ready) => match ready.and_then(|()| self.read(&mut batch)) {
                    Ok(0) => {
                        self.stream.closed().await;
                        Some(End::Closed)
                    }
                    Ok(n) => {
                        self.stats.bytes_received().fetch_add(n as u64, Relaxed);
                        None
                    }
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => continue,
                    Err(e) => {
                        debug!(peer = %self.peer, error = %e, "read failed; closing connection");
                        Some(End::Closed)
                    }
                },
            };
            if let Some(end) = end {
                self.finish(end, &mut batch);
            }
            account(
                self.stats,
                self.framer.stats(),
                &mut self.last,
                self.peer,
                &mut self.bad_input,
                self.config.max_message_size,
            );
            if !batch.is_empty() && tx.send(batch).await.is_err() {
                return;
            }
            if end.is_some() {
                debug!(peer = %self.peer, "connection closed");
                return;
            }
        }
    }

    /// Waits for what the current phase waits for.
    async fn wait(&mut self, stop: &mut watch::Receiver<bool>) -> Wake {
        match self.phase {
            Phase::Open => tokio::select! {
                biased;
                r = ready_or_idle(&mut self.stream, self.config.idle_timeout) => match r {
                    Some(r) => Wake::Readable(r),
                    None => Wake::Idle,
                },
                _ = stop.changed() => Wake::Stop,
            },
            Phase::Draining { until } => {
                let left = until.saturating_duration_since(Instant::now());
                if left.is_zero() {
                    // A sender that never pauses would hold the stop forever.
                    return Wake::Quiet {
                        still_sending: true,
                    };
                }
                match tokio::time::timeout(DRAIN_QUIET.min(left), self.stream.readable()).await {
                    Ok(r) => Wake::Readable(r),
                    Err(_) => Wake::Quiet {
                        still_sending: left <= DRAIN_QUIET,
                    },
                }
            }
        }
    }

    /// Frames what can be read now.
    fn read(&mut self, batch: &mut Batch) -> std::io::Result<usize> {
        let (template, framer) = (&self.config.topic_template, &mut self.framer);
        self.stream
            .take(|data| framer.feed(data, &mut |f| batch.push(template, f.data)))
    }

    /// What is left in the framer when the connection ends.
    fn finish(&mut self, end: End, batch: &mut Batch) {
        let pending = self.framer.pending();
        match end {
            End::Closed => {
                let template = &self.config.topic_template;
                self.framer.finish(&mut |f| batch.push(template, f.data));
            }
            End::Drained if pending > 0 => {
                self.stats.cut_at_stop().fetch_add(1, Relaxed);
                warn!(peer = %self.peer, bytes = pending, "closing a connection in the middle of a message at stop: that partial message is dropped (counted as cut_at_stop)");
            }
            End::Drained => {}
        }
    }
}

thread_local! {
    /// Where connections read into, one per input thread.
    static SCRATCH: std::cell::RefCell<Vec<u8>> = std::cell::RefCell::new(vec![0; READ_BUF]);
}

/// Waits until `stream` is readable; `None` when nothing came for `idle` (when set).
async fn ready_or_idle<S: Source>(
    stream: &mut S,
    idle: Option<Duration>,
) -> Option<std::io::Result<()>> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, stream.readable()).await.ok(),
        None => Some(stream.readable().await),
    }
}
