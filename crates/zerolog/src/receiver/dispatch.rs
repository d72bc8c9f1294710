//! Handing held messages to workers: over a ROUTER with acknowledgements ([`Acked`]), or over
//! PUSH for zerolog 0.3 workers ([`push`]).
//!
//! Acked: each worker says how many messages it takes at once (its window); a message stays
//! in flight, held here, until its worker acknowledges it. A worker that is gone (a probe or
//! a send to it fails: `ZMQ_ROUTER_MANDATORY`) has its messages sent to the others, flagged as
//! redeliveries.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::delivery::{self, Record, REDELIVERY};
use crate::stats::ReceiverStats;
use crate::zmqutil::zerr;
use crate::Error;

use super::fetch::{Held, Pending};

/// How often workers with messages in flight are probed.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// At most this many bytes of messages in one batch to a worker.
const BATCH_BYTES: usize = 1 << 20;

struct WorkerState {
    window: usize,
    /// Sent, not yet acknowledged, in the order sent: a worker acknowledges in that order.
    in_flight: VecDeque<Held>,
}

pub(super) struct Acked {
    pub(super) router: zmq::Socket,
    workers: HashMap<Vec<u8>, WorkerState>,
    /// Round-robin order of the workers.
    order: VecDeque<Vec<u8>>,
    /// Messages of lost workers, sent before anything new.
    pub(super) retry: BTreeMap<u64, Held>,
    next_probe: Instant,
    out: Vec<u8>,
}

impl Acked {
    pub(super) fn new(router: zmq::Socket) -> Result<Self, Error> {
        router
            .set_router_mandatory(true)
            .map_err(zerr("setting ROUTER_MANDATORY"))?;
        Ok(Acked {
            router,
            workers: HashMap::new(),
            order: VecDeque::new(),
            retry: BTreeMap::new(),
            next_probe: Instant::now(),
            out: Vec::new(),
        })
    }

    /// Messages held here (in flight or waiting to be sent again).
    pub(super) fn held(&self) -> usize {
        let in_flight: usize = self.workers.values().map(|w| w.in_flight.len()).sum();
        in_flight + self.retry.len()
    }

    /// The smallest sequence number not yet done.
    pub(super) fn oldest(&self) -> Option<u64> {
        let fronts = self.workers.values().filter_map(|w| w.in_flight.front());
        let retry = self.retry.keys().next().copied();
        fronts.map(|h| h.seq).chain(retry).min()
    }

    /// Reads the workers' acknowledgements.
    pub(super) fn read_acks(&mut self, stats: &ReceiverStats) -> Result<(), Error> {
        loop {
            let frames = match self.router.recv_multipart(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(()),
                Err(e) => return Err(zerr("reading acknowledgements")(e)),
            };
            let [id, kind, body] = &frames[..] else {
                continue;
            };
            let Ok((window, seqs)) = delivery::parse_ack(body) else {
                continue;
            };
            if kind.as_slice() != delivery::ACK {
                continue;
            }
            if !self.workers.contains_key(id) {
                info!("worker connected");
                self.order.push_back(id.clone());
            }
            let w = self
                .workers
                .entry(id.clone())
                .or_insert_with(|| WorkerState {
                    window: 0,
                    in_flight: VecDeque::new(),
                });
            w.window = window as usize;
            let mut acked = 0;
            for seq in seqs {
                // In order; anything else (a stale ack) is ignored.
                if w.in_flight.front().is_some_and(|h| h.seq == seq) {
                    w.in_flight.pop_front();
                    acked += 1;
                }
            }
            stats.acked().fetch_add(acked, Relaxed);
        }
    }

    /// Sends what the workers have room for: first the messages of lost workers, then from
    /// `pending`.
    pub(super) fn dispatch(
        &mut self,
        pending: &mut Pending,
        stats: &ReceiverStats,
    ) -> Result<(), Error> {
        for _ in 0..self.order.len() {
            if self.retry.is_empty() && pending.is_empty() {
                break;
            }
            let Some(id) = self.order.pop_front() else {
                break;
            };
            self.order.push_back(id.clone());
            let Some(w) = self.workers.get(&id) else {
                continue;
            };
            let room = w.window.saturating_sub(w.in_flight.len());
            if room > 0 {
                self.send_batch(&id, room, pending, stats)?;
            }
        }
        Ok(())
    }

    fn send_batch(
        &mut self,
        id: &[u8],
        room: usize,
        pending: &mut Pending,
        stats: &ReceiverStats,
    ) -> Result<(), Error> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < room && bytes < BATCH_BYTES {
            let Some(next) = self
                .retry
                .pop_first()
                .map(|(_, h)| h)
                .or_else(|| pending.pop_front())
            else {
                break;
            };
            bytes += next.data().len();
            batch.push(next);
        }
        self.out.clear();
        for h in &batch {
            let record = Record {
                seq: h.seq,
                flags: h.flags,
                topic: b"",
                message: h.data(),
            };
            delivery::push_record(&mut self.out, &record);
        }
        let frames: [&[u8]; 3] = [id, delivery::MESSAGES, &self.out];
        match self.router.send_multipart(frames, zmq::DONTWAIT) {
            Ok(()) => {
                stats.pushed().fetch_add(batch.len() as u64, Relaxed);
                let w = self.workers.get_mut(id).expect("known worker");
                w.in_flight.extend(batch);
            }
            Err(e @ (zmq::Error::EAGAIN | zmq::Error::EHOSTUNREACH)) => {
                // Sent before anything new, in order.
                for h in batch {
                    self.retry.insert(h.seq, h);
                }
                if e == zmq::Error::EHOSTUNREACH {
                    self.lost(id, stats);
                }
            }
            Err(e) => return Err(zerr("sending to a worker")(e)),
        }
        Ok(())
    }

    /// Probes the workers holding messages, now and then: a worker gone fails the send.
    pub(super) fn probe(&mut self, stats: &ReceiverStats) -> Result<(), Error> {
        if Instant::now() < self.next_probe {
            return Ok(());
        }
        self.next_probe = Instant::now() + PROBE_EVERY;
        let ids: Vec<Vec<u8>> = self.workers.keys().cloned().collect();
        for id in ids {
            let frames: [&[u8]; 2] = [&id, delivery::PROBE];
            match self.router.send_multipart(frames, zmq::DONTWAIT) {
                Ok(()) | Err(zmq::Error::EAGAIN) => {}
                Err(zmq::Error::EHOSTUNREACH) => self.lost(&id, stats),
                Err(e) => return Err(zerr("probing a worker")(e)),
            }
        }
        Ok(())
    }

    /// A worker is gone: what it held goes to the others.
    fn lost(&mut self, id: &[u8], stats: &ReceiverStats) {
        let Some(w) = self.workers.remove(id) else {
            return;
        };
        self.order.retain(|o| o != id);
        let theirs = w.in_flight.len();
        for mut h in w.in_flight {
            h.flags |= REDELIVERY;
            self.retry.insert(h.seq, h);
        }
        stats.redelivered().fetch_add(theirs as u64, Relaxed);
        stats.workers_lost().fetch_add(1, Relaxed);
        if theirs == 0 {
            info!("worker gone");
        } else {
            warn!(
                messages = theirs,
                "worker gone with messages in flight: sending them to the other workers (counted as redelivered)"
            );
        }
    }
}

/// Pushes held messages to zerolog 0.3 workers (PUSH, one frame each): done once sent.
pub(super) fn push(
    socket: &zmq::Socket,
    pending: &mut Pending,
    stats: &ReceiverStats,
) -> Result<(), Error> {
    while let Some(h) = pending.front() {
        match socket.send(h.data(), zmq::DONTWAIT) {
            Ok(()) => {
                stats.pushed().fetch_add(1, Relaxed);
                pending.pop_front();
            }
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => break,
            Err(e) => return Err(zerr("pushing to workers")(e)),
        }
    }
    Ok(())
}
