//! The TLS input (syslog over TLS, RFC 5425): the handshake of [`crate::tls::accept`] on each
//! connection, then the same framing and counters as a plain TCP connection ([`super::tcp`]).
//!
//! Each connection is a task of its own (see [`super::tcp::accept_loop`]), so a client that
//! connects and never finishes its handshake holds up nobody; it is dropped after
//! [`HANDSHAKE_TIMEOUT`]. After it, the connection is served by [`super::tcp::connection`]
//! (idle timeout, drain at stop, counters), reading decrypted bytes into a buffer of its own
//! ([`TLS_READ_BUF`], one TLS record's worth).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::TlsAcceptor;
use tracing::{debug, warn};

use super::tcp::Source;
use super::{ForwarderConfig, Inbox, DRAIN_QUIET};
use crate::events::RateLimit;
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
    let tls = tokio::select! {
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
    let source = TlsSource {
        tls,
        buf: vec![0; TLS_READ_BUF],
        read: None,
    };
    super::tcp::connection(source, peer, tx, stop, config, stats).await;
}

/// A TLS session as a [`Source`]: a read waits for decrypted bytes, which are kept until taken.
struct TlsSource {
    tls: tokio_rustls::server::TlsStream<TcpStream>,
    buf: Vec<u8>,
    /// What the last read gave, not yet taken.
    read: Option<std::io::Result<usize>>,
}

impl Source for TlsSource {
    async fn readable(&mut self) -> std::io::Result<()> {
        if self.read.is_none() {
            // Cancel-safe: a read given up (a timeout, a stop) has taken nothing.
            self.read = Some(self.tls.read(&mut self.buf).await);
        }
        Ok(())
    }
    fn take(&mut self, f: impl FnOnce(&[u8])) -> std::io::Result<usize> {
        let n = self
            .read
            .take()
            .unwrap_or_else(|| Err(std::io::ErrorKind::WouldBlock.into()))?;
        f(&self.buf[..n]);
        Ok(n)
    }
    /// The sender's close_notify: answer it, so that it knows all was read.
    async fn closed(&mut self) {
        let _ = tokio::time::timeout(DRAIN_QUIET, self.tls.shutdown()).await;
    }
}
