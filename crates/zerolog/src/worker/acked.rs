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
    /// How many messages this worker takes at once.
    window: u32,
    /// Leaving (a stop): it takes nothing more, and says so with a window of 0.
    leaving: bool,
    /// The window the receiver was last told.
    told: Option<u32>,
    /// Sequence numbers processed, oldest first, not yet acknowledged.
    held: VecDeque<u64>,
    last_sent: Instant,
}

impl<'s> Acks<'s> {
    pub(super) fn new(dealer: &'s zmq::Socket, window: u32) -> Self {
        Acks {
            dealer,
            window,
            leaving: false,
            told: None,
            held: VecDeque::new(),
            last_sent: Instant::now(),
        }
    }

    /// Acknowledges what the worker no longer holds; says its window when it changed, and
    /// that it is there when it is time.
    fn send<W: Worker + ?Sized>(&mut self, worker: &W) -> Result<(), Error> {
        let window = if self.leaving { 0 } else { self.window };
        let keep = (worker.buffered() as usize).min(self.held.len());
        let done: Vec<u64> = self.held.drain(..self.held.len() - keep).collect();
        let hello_due = self.last_sent.elapsed() >= HELLO_EVERY;
        if done.is_empty() && !hello_due && self.told == Some(window) {
            return Ok(());
        }
        let frames: [&[u8]; 2] = [delivery::ACK, &delivery::ack_frame(window, &done)];
        match self.dealer.send_multipart(frames, zmq::DONTWAIT) {
            // Not connected: the receiver sends these messages again to someone.
            Ok(()) | Err(zmq::Error::EAGAIN) => {}
            Err(e) => return Err(zerr("acknowledging")(e)),
        }
        self.told = Some(window);
        self.last_sent = Instant::now();
        Ok(())
    }

    /// Acknowledges what the worker's stop flushed.
    pub(super) fn finish<W: Worker + ?Sized>(&mut self, worker: &W) -> Result<(), Error> {
        self.leaving = true;
        self.send(worker)
    }
}

pub(super) fn pump<W: Worker + ?Sized>(
    acks: &mut Acks<'_>,
    worker: &mut W,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    acks.send(worker)?;
    let mut unflushed = false;
    loop {
        if signals.take_hup() {
            worker.flush()?;
            worker.reopen()?;
        }
        if !acks.leaving && signals.stop_requested().is_some() {
            info!("stop requested: taking no more messages, processing what came");
            // Window 0: the receiver sends nothing more here.
            acks.leaving = true;
            acks.send(worker)?;
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
                } else if acks.leaving {
                    return Ok(());
                } else {
                    worker.tick()?;
                }
            }
            Err(e) => return Err(zerr("receiving from backend")(e)),
        }
        super::runner::count_processed(stats, worker);
        acks.send(worker)?;
    }
}

fn process_batch<W: Worker + ?Sized>(
    acks: &mut Acks<'_>,
    body: &[u8],
    worker: &mut W,
    stats: &WorkerStats,
) -> Result<(), Error> {
    // Counted once per batch, not per message.
    let (mut received, mut bytes, mut again) = (0, 0, 0);
    let mut result = Ok(());
    for r in delivery::records(body) {
        let r = match r {
            Ok(r) => r,
            Err(e) => {
                result = Err(Error::Protocol(format!("receiver's batch: {e}")));
                break;
            }
        };
        received += 1;
        let redelivery = r.flags & REDELIVERY != 0;
        again += u64::from(redelivery);
        let msg = Message::with_seq(r.message, r.seq, redelivery);
        if let Err(e) = worker.process_message(&msg) {
            stats.failed().fetch_add(1, Relaxed);
            result = Err(e);
            break;
        }
        bytes += r.message.len() as u64;
        acks.held.push_back(r.seq);
    }
    stats.received().fetch_add(received, Relaxed);
    stats.redelivered().fetch_add(again, Relaxed);
    stats.bytes_received().fetch_add(bytes, Relaxed);
    result
}
