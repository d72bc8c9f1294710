//! The TLS input (syslog over TLS, RFC 5425): the handshake of [`crate::tls::accept`] on each
//! connection, then the same framing and counters as a plain TCP connection ([`super::tcp`]).
//!
//! Each connection is a task of its own (see [`super::tcp::accept_loop`]), so a client that
//! connects and never finishes its handshake holds up nobody; it is dropped after
//! [`HANDSHAKE_TIMEOUT`]. Unlike a plain TCP connection, which reads into a scratch buffer of
//! its thread when the socket is readable, a TLS connection reads decrypted bytes into a
//! buffer of its own ([`TLS_READ_BUF`], one TLS record's worth).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::{Duration, Instant};

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, info, warn};

use super::tcp::account;
use super::{Batch, ForwarderConfig, Inbox, DRAIN_MAX, DRAIN_QUIET};
use crate::events::RateLimit;
use crate::framing::{Framer, FramerStats};
use crate::stats::ForwarderStats;
use crate::tls::{self, PeerCheck, TlsError, TlsSettings};

/// How long a client has to finish its TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Decrypted bytes read at a time: a TLS record carries at most 16 KiB.
const TLS_READ_BUF: usize = 16 * 1024;

/// What every TLS connection is accepted with: built once from [`TlsSettings`].
pub(super) struct TlsInput {
    acceptor: TlsAcceptor,
    check: PeerCheck,
}

impl std::fmt::Debug for TlsInput {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsInput")
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

/// The current [`TlsInput`], shared by the TLS listeners; a reload may put a new one in (a
/// connection takes the one current when it is accepted).
pub(super) type SharedTls = Arc<RwLock<Arc<TlsInput>>>;

impl TlsInput {
    /// Reads the certificate, key and CA files and parses `permitted_peers`.
    pub(super) fn shared(settings: &TlsSettings) -> Result<SharedTls, TlsError> {
        let input = TlsInput {
            acceptor: tls::acceptor(settings)?,
            check: PeerCheck::from_settings(settings)?,
        };
        Ok(Arc::new(RwLock::new(Arc::new(input))))
    }
}

/// Refusals logged, at most one a second for the whole process (each connection is a task of
/// its own, so a per-connection limit would not limit anything).
static REFUSALS: Mutex<RateLimit> = Mutex::new(RateLimit::per_second());

/// Serves one TLS connection: the handshake, then reading, framing and sending until it ends.
pub(super) async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tx: Inbox,
    mut stop: watch::Receiver<bool>,
    config: &ForwarderConfig,
    shared: &SharedTls,
    stats: &ForwarderStats,
) {
    let input = shared
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    let handshake = tls::accept(&input.acceptor, stream, &input.check, HANDSHAKE_TIMEOUT);
    let mut tls = tokio::select! {
        r = handshake => match r {
            Ok(tls) => tls,
            Err(refused) => {
                stats.tls_refused().fetch_add(1, Relaxed);
                if REFUSALS.lock().unwrap_or_else(PoisonError::into_inner).allow() {
                    warn!(%peer, reason = %refused, "TLS connection refused (counted as tls_refused)");
                }
                return;
            }
        },
        // A stop does not wait for handshakes: nothing was read yet.
        _ = stop.changed() => return,
    };
    drop(input);
    stats.tls_sessions().fetch_add(1, Relaxed);
    debug!(%peer, "TLS session established");

    let template = &config.topic_template;
    let mut framer = Framer::new(config.framing, config.max_message_size);
    let mut last = FramerStats::default();
    let mut bad_input = RateLimit::per_second();
    let mut buf = vec![0u8; TLS_READ_BUF];
    // When a stop was requested: the drain's deadline.
    let mut draining: Option<Instant> = None;
    loop {
        let read = match draining {
            None => tokio::select! {
                biased;
                r = read_or_idle(&mut tls, &mut buf, config.idle_timeout) => match r {
                    Some(r) => r,
                    None => {
                        stats.connections_idle_closed().fetch_add(1, Relaxed);
                        info!(%peer, pending_bytes = framer.pending(), "TLS connection idle for idle_timeout: closed (counted as connections_idle_closed)");
                        return;
                    }
                },
                _ = stop.changed() => {
                    draining = Some(Instant::now() + DRAIN_MAX);
                    continue;
                }
            },
            Some(until) => {
                let left = until.saturating_duration_since(Instant::now());
                // A sender that never pauses would hold the stop forever.
                let r = match left.is_zero() {
                    true => None,
                    false => tokio::time::timeout(DRAIN_QUIET.min(left), tls.read(&mut buf))
                        .await
                        .ok(),
                };
                match r {
                    Some(r) => r,
                    None => {
                        // Quiet for DRAIN_QUIET, or the drain time is up.
                        if left <= DRAIN_QUIET {
                            stats.closed_sending_at_stop().fetch_add(1, Relaxed);
                            warn!(%peer, "TLS connection still sending at the end of the drain time; closing it (counted as closed_sending_at_stop)");
                        }
                        if framer.pending() > 0 {
                            stats.cut_at_stop().fetch_add(1, Relaxed);
                            warn!(%peer, bytes = framer.pending(), "closing a TLS connection in the middle of a message at stop: that partial message is dropped (counted as cut_at_stop)");
                        }
                        return;
                    }
                }
            }
        };
        let mut batch = Batch::default();
        let closed = match read {
            Ok(0) => {
                // The sender's close_notify: answer it, so that it knows all was read.
                let _ = tokio::time::timeout(DRAIN_QUIET, tls.shutdown()).await;
                true
            }
            Ok(n) => {
                stats.bytes_received().fetch_add(n as u64, Relaxed);
                framer.feed(&buf[..n], &mut |f| batch.push(template, f.data));
                false
            }
            Err(e) => {
                debug!(%peer, error = %e, "TLS read failed; closing connection");
                true
            }
        };
        if closed {
            // The sender closed it (or it failed): a message left unterminated is passed on.
            framer.finish(&mut |f| batch.push(template, f.data));
        }
        account(
            stats,
            framer.stats(),
            &mut last,
            peer,
            &mut bad_input,
            config.max_message_size,
        );
        if !batch.is_empty() && tx.send(batch).await.is_err() {
            return;
        }
        if closed {
            debug!(%peer, "TLS connection closed");
            return;
        }
    }
}

/// Reads decrypted bytes into `buf`; `None` when nothing came for `idle` (when set).
async fn read_or_idle(
    tls: &mut tokio_rustls::server::TlsStream<TcpStream>,
    buf: &mut [u8],
    idle: Option<Duration>,
) -> Option<std::io::Result<usize>> {
    match idle {
        Some(idle) => tokio::time::timeout(idle, tls.read(buf)).await.ok(),
        None => Some(tls.read(buf).await),
    }
}
