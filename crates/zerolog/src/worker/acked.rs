//! The runner's loop with acknowledged delivery ([`crate::delivery`]): a DEALER takes batches
//! of numbered messages from the receiver's ROUTER and acknowledges each once the worker is
//! done with it: processed, and no longer among what [`Worker::buffered`] holds.

use std::collections::VecDeque;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tracing::info;

use crate::delivery::{self, REDELIVERY};
use crate::signals::Signals;
use crate::stats::WorkerStats;
use crate::zmqutil::zerr;
use crate::Error;

use super::{Message, Worker};

/// With nothing to acknowledge, the worker still says it is there this often, so a
/// restarted receiver learns of it.
const HELLO_EVERY: Duration = Duration::from_secs(1);

pub(super) struct Acks<'s> {
    pub(super) dealer: &'s zmq::Socket,
    pub(super) window: u32,
    /// Sequence numbers processed, oldest first, not yet acknowledged.
    held: VecDeque<u64>,
    last_sent: Instant,
}

impl<'s> Acks<'s> {
    pub(super) fn new(dealer: &'s zmq::Socket, window: u32) -> Self {
        Acks {
            dealer,
            window,
            held: VecDeque::new(),
            last_sent: Instant::now() - HELLO_EVERY,
        }
    }

    /// Acknowledges what the worker no longer holds, or says hello when it is time.
    fn send<W: Worker + ?Sized>(&mut self, worker: &W, window: u32) -> Result<(), Error> {
        let keep = (worker.buffered() as usize).min(self.held.len());
        let done: Vec<u64> = self.held.drain(..self.held.len() - keep).collect();
        if done.is_empty() && self.last_sent.elapsed() < HELLO_EVERY && window == self.window {
            return Ok(());
        }
        self.window = window;
        let frames: [&[u8]; 2] = [delivery::ACK, &delivery::ack_frame(window, &done)];
        match self.dealer.send_multipart(frames, zmq::DONTWAIT) {
            // Not connected: the receiver sends these messages again to someone.
            Ok(()) | Err(zmq::Error::EAGAIN) => {}
            Err(e) => return Err(zerr("acknowledging")(e)),
        }
        self.last_sent = Instant::now();
        Ok(())
    }
}

impl Acks<'_> {
    /// Acknowledges what the worker's stop flushed.
    pub(super) fn finish<W: Worker + ?Sized>(&mut self, worker: &W) -> Result<(), Error> {
        self.last_sent = Instant::now() - HELLO_EVERY;
        self.send(worker, 0)
    }
}

pub(super) fn pump<W: Worker + ?Sized>(
    acks: &mut Acks<'_>,
    worker: &mut W,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    let window = acks.window;
    acks.send(worker, window)?;
    let mut stopping = false;
    let mut unflushed = false;
    loop {
        if signals.take_hup() {
            worker.flush()?;
            worker.reopen()?;
        }
        if !stopping && signals.stop_requested().is_some() {
            stopping = true;
            info!("stop requested: taking no more messages, processing what came");
            // Window 0: the receiver sends nothing more here.
            acks.send(worker, 0)?;
        }
        let flags = if unflushed { zmq::DONTWAIT } else { 0 };
        match acks.dealer.recv_multipart(flags) {
            Ok(frames) => {
                if let [kind, body] = &frames[..] {
                    if kind.as_slice() == delivery::MESSAGES {
                        process_batch(acks, body, worker, stats)?;
                        unflushed = true;
                    }
                }
            }
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => {
                if unflushed {
                    worker.flush()?;
                    unflushed = false;
                } else if stopping {
                    return Ok(());
                } else {
                    worker.tick()?;
                }
            }
            Err(e) => return Err(zerr("receiving from backend")(e)),
        }
        super::runner::count_processed(stats, worker);
        let window = if stopping { 0 } else { acks.window.max(1) };
        acks.send(worker, window)?;
    }
}

fn process_batch<W: Worker + ?Sized>(
    acks: &mut Acks<'_>,
    body: &[u8],
    worker: &mut W,
    stats: &WorkerStats,
) -> Result<(), Error> {
    for r in delivery::records(body) {
        let r = r.map_err(|e| Error::Protocol(format!("receiver's batch: {e}")))?;
        stats.received().fetch_add(1, Relaxed);
        let again = r.flags & REDELIVERY != 0;
        if again {
            stats.redelivered().fetch_add(1, Relaxed);
        }
        let msg = Message::with_seq(r.message, r.seq, again);
        if let Err(e) = worker.process_message(&msg) {
            stats.failed().fetch_add(1, Relaxed);
            return Err(e);
        }
        stats
            .bytes_received()
            .fetch_add(r.message.len() as u64, Relaxed);
        acks.held.push_back(r.seq);
    }
    Ok(())
}
