//! The RELP input (rsyslog's reliable protocol, as librelp speaks it): each `syslog` frame is
//! answered `200 OK` only once its message is in the journal, so a sender such as rsyslog's
//! `omrelp` sends again whatever was not answered when the forwarder died.
//!
//! A connection is two tasks: the reader frames the input and hands batches to the publisher
//! thread, each with the transaction numbers it carries; the writer answers them in order as
//! the journal accepts each batch. Between them, a bounded queue of unanswered batches is the
//! window: when it is full, the reader stops reading.

use std::net::SocketAddr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;

use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{debug, info, warn};

use super::resent::Earlier;
use super::{Batch, ForwarderConfig, Inbox, READ_BUF};
use crate::relp::{self, Parsed, RelpError};
use crate::stats::ForwarderStats;

/// Batches of one connection handed on and not yet answered, at most.
const UNANSWERED_BATCHES: usize = 16;

/// What the writer sends, in command order.
enum Answer {
    /// The `200 OK` of each of these transactions, once the batch is in the journal.
    Accepted(oneshot::Receiver<u64>, Vec<u32>),
    /// An answer ready now (`open`, `close`), and whether the session ends after it.
    Now(Vec<u8>, bool),
}

/// Serves one RELP connection (plain TCP, or a TLS session) until it closes, breaks the
/// protocol, or a stop.
pub(super) async fn session<S>(
    stream: S,
    peer: SocketAddr,
    tx: Inbox,
    stop: watch::Receiver<bool>,
    config: &ForwarderConfig,
    earlier: &Earlier,
    stats: &Arc<ForwarderStats>,
) where
    S: AsyncRead + AsyncWrite + Send + 'static,
{
    let (read, write) = tokio::io::split(stream);
    let (answers, pending) = mpsc::channel(UNANSWERED_BATCHES);
    let writer = tokio::spawn(write_answers(write, pending, stop.clone(), stats.clone()));
    let input = Input {
        tx: &tx,
        config,
        earlier,
        stats,
    };
    let result = read_frames(read, input, &answers, stop).await;
    if let Err(e) = result {
        stats.relp_errors().fetch_add(1, Relaxed);
        warn!(%peer, error = %e, "RELP session ended: protocol error (counted as relp_errors)");
    }
    drop(answers);
    let _ = writer.await;
    debug!(%peer, "RELP session closed");
}

/// Why the reader ended a session.
#[derive(Debug, thiserror::Error)]
enum SessionError {
    #[error(transparent)]
    Frame(#[from] RelpError),
    #[error("the first command is {0:?}, not open")]
    NotOpened(String),
    #[error("unknown command {0:?}")]
    Unknown(String),
}

/// Where a session's messages go, and what it knows.
struct Input<'a> {
    tx: &'a Inbox,
    config: &'a ForwarderConfig,
    earlier: &'a Earlier,
    stats: &'a ForwarderStats,
}

/// Reads and frames until the peer closes, a `close`, an error, or a stop.
async fn read_frames(
    mut read: impl AsyncRead + Unpin,
    Input {
        tx,
        config,
        earlier,
        stats,
    }: Input<'_>,
    answers: &mpsc::Sender<Answer>,
    mut stop: watch::Receiver<bool>,
) -> Result<(), SessionError> {
    let max_data = config.max_message_size.max(relp::DEFAULT_MAX_DATA);
    let mut buf = Vec::with_capacity(READ_BUF);
    let mut opened = false;
    // A sender re-sends what it had no answer for first: its first messages may be copies of
    // what the journal holds, the rest are new.
    let mut resending = !earlier.is_empty();
    loop {
        let mut batch = Batch::default();
        let mut txnrs = Vec::new();
        let mut used = 0;
        let mut closing = None;
        while let Parsed::Frame(f, n) = relp::parse(&buf[used..], max_data)? {
            used += n;
            match (f.command, opened) {
                (b"open", _) => {
                    let offers = relp::parse_offers(f.data);
                    let mut out = Vec::new();
                    match relp::our_open_response(&offers) {
                        // Its data is "200 OK" and our offers, one per line.
                        Ok(data) => relp::write_frame(&mut out, f.txnr, "rsp", &data),
                        Err(e) => {
                            relp::write_rsp(&mut out, f.txnr, 500, &e.to_string(), b"");
                            let _ = answers.send(Answer::Now(out, true)).await;
                            return Err(e.into());
                        }
                    }
                    opened = true;
                    let _ = answers.send(Answer::Now(out, false)).await;
                }
                (b"syslog", true) => {
                    stats
                        .bytes_received()
                        .fetch_add(f.data.len() as u64, Relaxed);
                    stats.messages_received().fetch_add(1, Relaxed);
                    let mut msg = f.data.strip_suffix(b"\n").unwrap_or(f.data);
                    if msg.len() > config.max_message_size {
                        stats.truncated().fetch_add(1, Relaxed);
                        msg = &msg[..config.max_message_size];
                    }
                    resending = resending && earlier.contains(msg);
                    if resending {
                        stats.relp_resent().fetch_add(1, Relaxed);
                    }
                    batch.push_marked(&config.topic_template, msg, resending);
                    txnrs.push(f.txnr);
                }
                (b"close", true) => {
                    let mut out = Vec::new();
                    relp::write_rsp(&mut out, f.txnr, 200, "OK", b"");
                    closing = Some(out);
                    break;
                }
                (cmd, false) => {
                    return Err(SessionError::NotOpened(String::from_utf8_lossy(cmd).into()))
                }
                (cmd, true) => {
                    return Err(SessionError::Unknown(String::from_utf8_lossy(cmd).into()))
                }
            }
        }
        buf.drain(..used);
        if !batch.is_empty() {
            let (done, accepted) = oneshot::channel();
            batch.accepted = Some(done);
            if tx.send(batch).await.is_err()
                || answers
                    .send(Answer::Accepted(accepted, txnrs))
                    .await
                    .is_err()
            {
                return Ok(());
            }
        }
        if let Some(out) = closing {
            let _ = answers.send(Answer::Now(out, true)).await;
            return Ok(());
        }
        if buf.capacity() - buf.len() < READ_BUF / 2 {
            buf.reserve(READ_BUF);
        }
        let n = tokio::select! {
            r = read.read_buf(&mut buf) => r.unwrap_or(0),
            _ = stop.changed() => 0,
        };
        if n == 0 {
            return Ok(());
        }
    }
}

/// Answers in command order; at a stop (or when the reader ends), answers what was accepted
/// and then, if the session was not closed by the client, sends `serverclose`.
async fn write_answers(
    mut write: impl AsyncWrite + Unpin,
    mut pending: mpsc::Receiver<Answer>,
    stop: watch::Receiver<bool>,
    stats: Arc<ForwarderStats>,
) {
    let mut out = Vec::new();
    let mut closed = false;
    while let Some(answer) = pending.recv().await {
        out.clear();
        match answer {
            Answer::Accepted(accepted, txnrs) => {
                // Not accepted (the forwarder is stopping and dropped it): leave it
                // unanswered, so the client sends it again to the next forwarder.
                if accepted.await.is_err() {
                    break;
                }
                for t in &txnrs {
                    relp::write_rsp(&mut out, *t, 200, "OK", b"");
                }
                stats.relp_acked().fetch_add(txnrs.len() as u64, Relaxed);
            }
            Answer::Now(bytes, end) => {
                out = bytes;
                closed = end;
            }
        }
        if write.write_all(&out).await.is_err() || closed {
            return;
        }
    }
    if *stop.borrow() {
        out.clear();
        relp::write_frame(&mut out, 0, "serverclose", b"");
        let _ = write.write_all(&out).await;
        info!("RELP session: sent serverclose at stop");
    }
}
