//! The TLS inputs: syslog over TLS (RFC 5425) and RELP over TLS. Each connection's handshake
//! is [`crate::tls::TlsServer::accept`]; after it, a syslog connection is served as a plain TCP
//! one ([`super::tcp`]), a RELP one as [`super::relp`] serves plain RELP.
//!
//! Each connection is a task of its own (see [`super::tcp::accept_loop`]), so a client that
//! connects and never finishes its handshake holds up nobody; it is dropped after
//! [`HANDSHAKE_TIMEOUT`]. A syslog connection then reads decrypted bytes into a buffer of its
//! own ([`TLS_READ_BUF`], one TLS record's worth).

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::{Arc, Mutex, PoisonError, RwLock};
use std::time::Duration;

use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::watch;
use tokio_rustls::server::TlsStream;
use tracing::{debug, info, warn};

use super::resent::Earlier;
use super::tcp::Source;
use super::{ForwarderConfig, Inbox, DRAIN_QUIET};
use crate::events::RateLimit;
use crate::stats::ForwarderStats;
use crate::tls::{TlsError, TlsServer, TlsSettings};

/// How long a client has to finish its TLS handshake.
pub(super) const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);
/// Decrypted bytes read at a time: a TLS record carries at most 16 KiB.
const TLS_READ_BUF: usize = 16 * 1024;

/// The current [`TlsServer`], shared by the TLS listeners; a reload puts a new one in (a
/// connection takes the one current when it is accepted).
pub(super) type SharedTls = Arc<RwLock<Arc<TlsServer>>>;

/// Builds the first [`SharedTls`].
pub(super) fn shared(settings: &TlsSettings) -> Result<SharedTls, TlsError> {
    Ok(Arc::new(RwLock::new(Arc::new(TlsServer::new(settings)?))))
}

/// Re-reads the certificate, key and CA files of the TLS inputs (SIGHUP), so that a renewed
/// certificate needs no restart. Cloned freely; see [`super::Forwarder::tls_reloader`].
#[derive(Debug, Clone)]
pub struct TlsReloader {
    pub(super) settings: TlsSettings,
    pub(super) shared: SharedTls,
}

impl TlsReloader {
    /// Reads the files afresh: new connections get the new certificate, open ones keep theirs.
    /// On an error, the inputs keep what they had.
    pub fn reload(&self) -> Result<(), TlsError> {
        let server = Arc::new(TlsServer::new(&self.settings)?);
        *self.shared.write().unwrap_or_else(PoisonError::into_inner) = server;
        info!(cert = %self.settings.cert.display(), "TLS certificate, key and CA re-read");
        Ok(())
    }
}

/// Refusals logged, at most one a second for the whole process (each connection is a task of
/// its own, so a per-connection limit would not limit anything).
static REFUSALS: Mutex<RateLimit> = Mutex::new(RateLimit::per_second());

/// The handshake of one connection, with the server current now; `None` when it was refused
/// (logged, counted in `tls_refused`) or a stop came first.
async fn handshake(
    stream: TcpStream,
    peer: SocketAddr,
    stop: &mut watch::Receiver<bool>,
    shared: &SharedTls,
    stats: &ForwarderStats,
) -> Option<TlsStream<TcpStream>> {
    let server = shared
        .read()
        .unwrap_or_else(PoisonError::into_inner)
        .clone();
    tokio::select! {
        r = server.accept(stream, HANDSHAKE_TIMEOUT) => match r {
            Ok(tls) => {
                stats.tls_sessions().fetch_add(1, Relaxed);
                debug!(%peer, "TLS session established");
                Some(tls)
            }
            Err(refused) => {
                stats.tls_refused().fetch_add(1, Relaxed);
                if REFUSALS.lock().unwrap_or_else(PoisonError::into_inner).allow() {
                    warn!(%peer, reason = %refused, "TLS connection refused (counted as tls_refused)");
                }
                None
            }
        },
        // A stop does not wait for handshakes: nothing was read yet.
        _ = stop.changed() => None,
    }
}

/// Serves one syslog-over-TLS connection: the handshake, then reading, framing and sending
/// until it ends.
pub(super) async fn connection(
    stream: TcpStream,
    peer: SocketAddr,
    tx: Inbox,
    mut stop: watch::Receiver<bool>,
    config: &ForwarderConfig,
    shared: &SharedTls,
    stats: &ForwarderStats,
) {
    let Some(tls) = handshake(stream, peer, &mut stop, shared, stats).await else {
        return;
    };
    let source = TlsSource {
        tls,
        buf: vec![0; TLS_READ_BUF],
        read: None,
    };
    super::tcp::connection(source, peer, tx, stop, config, stats).await;
}

/// Serves one RELP-over-TLS connection: the handshake, then the RELP session.
pub(super) async fn relp_session(
    stream: TcpStream,
    peer: SocketAddr,
    tx: Inbox,
    mut stop: watch::Receiver<bool>,
    (config, earlier): (&ForwarderConfig, &Earlier),
    shared: &SharedTls,
    stats: &Arc<ForwarderStats>,
) {
    let _ = stream.set_nodelay(true);
    if let Some(tls) = handshake(stream, peer, &mut stop, shared, stats).await {
        super::relp::session(tls, peer, tx, stop, config, earlier, stats).await;
    }
}

/// A TLS session as a [`Source`]: a read waits for decrypted bytes, which are kept until taken.
struct TlsSource {
    tls: TlsStream<TcpStream>,
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
