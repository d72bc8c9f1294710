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

use super::fetch::Held;

/// How often workers with messages in flight are probed.
const PROBE_EVERY: Duration = Duration::from_millis(200);
/// At most this many bytes of messages in one batch to a worker.
const BATCH_BYTES: usize = 1 << 20;

struct WorkerState {
    window: usize,
    in_flight: usize,
}

pub(super) struct Acked {
    pub(super) router: zmq::Socket,
    workers: HashMap<Vec<u8>, WorkerState>,
    /// Round-robin order of the workers.
    order: VecDeque<Vec<u8>>,
    in_flight: BTreeMap<u64, (Held, Vec<u8>)>,
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
            in_flight: BTreeMap::new(),
            retry: BTreeMap::new(),
            next_probe: Instant::now(),
            out: Vec::new(),
        })
    }

    /// Messages held here (in flight or waiting to be sent again).
    pub(super) fn held(&self) -> usize {
        self.in_flight.len() + self.retry.len()
    }

    /// The smallest sequence number not yet done.
    pub(super) fn oldest(&self) -> Option<u64> {
        let a = self.in_flight.keys().next();
        let b = self.retry.keys().next();
        a.into_iter().chain(b).min().copied()
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
            let Ok((window, seqs)) = delivery::parse_ack(body).map_err(|_| ()) else {
                continue;
            };
            if kind.as_slice() != delivery::ACK {
                continue;
            }
            let w = self.workers.entry(id.clone()).or_insert_with(|| {
                info!("worker connected");
                WorkerState {
                    window: 0,
                    in_flight: 0,
                }
            });
            if !self.order.contains(id) {
                self.order.push_back(id.clone());
            }
            w.window = window as usize;
            let mut acked = 0;
            for seq in seqs {
                if self
                    .in_flight
                    .get(&seq)
                    .is_some_and(|(_, owner)| owner == id)
                {
                    self.in_flight.remove(&seq);
                    w.in_flight -= 1;
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
        pending: &mut VecDeque<Held>,
        stats: &ReceiverStats,
    ) -> Result<(), Error> {
        for _ in 0..self.order.len() {
            if self.retry.is_empty() && pending.is_empty() {
                return Ok(());
            }
            let Some(id) = self.order.pop_front() else {
                return Ok(());
            };
            self.order.push_back(id.clone());
            let Some(w) = self.workers.get(&id) else {
                continue;
            };
            let room = w.window.saturating_sub(w.in_flight);
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
        pending: &mut VecDeque<Held>,
        stats: &ReceiverStats,
    ) -> Result<(), Error> {
        let mut batch = Vec::new();
        let mut bytes = 0;
        while batch.len() < room && bytes < BATCH_BYTES {
            let next = match self.retry.pop_first() {
                Some((_, h)) => h,
                None => match pending.pop_front() {
                    Some(h) => h,
                    None => break,
                },
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
                w.in_flight += batch.len();
                for h in batch {
                    self.in_flight.insert(h.seq, (h, id.to_vec()));
                }
                Ok(())
            }
            Err(e @ (zmq::Error::EAGAIN | zmq::Error::EHOSTUNREACH)) => {
                // Back where they came from, in order.
                for h in batch {
                    self.retry.insert(h.seq, h);
                }
                if e == zmq::Error::EHOSTUNREACH {
                    self.lost(id, stats);
                }
                Ok(())
            }
            Err(e) => Err(zerr("sending to a worker")(e)),
        }
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
        self.workers.remove(id);
        self.order.retain(|o| o != id);
        let theirs: Vec<u64> = self
            .in_flight
            .iter()
            .filter(|(_, (_, owner))| owner == id)
            .map(|(seq, _)| *seq)
            .collect();
        for seq in &theirs {
            if let Some((mut h, _)) = self.in_flight.remove(seq) {
                h.flags |= REDELIVERY;
                self.retry.insert(*seq, h);
            }
        }
        stats.redelivered().fetch_add(theirs.len() as u64, Relaxed);
        stats.workers_lost().fetch_add(1, Relaxed);
        if theirs.is_empty() {
            info!("worker gone");
        } else {
            warn!(
                messages = theirs.len(),
                "worker gone with messages in flight: sending them to the other workers (counted as redelivered)"
            );
        }
    }
}

/// Pushes held messages to zerolog 0.3 workers (PUSH, one frame each): done once sent.
pub(super) fn push(
    socket: &zmq::Socket,
    pending: &mut VecDeque<Held>,
    stats: &ReceiverStats,
) -> Result<(), Error> {
    while let Some(h) = pending.front() {
        match socket.send(h.data(), zmq::DONTWAIT) {
            Ok(()) => {
                stats.pushed().fetch_add(1, Relaxed);
                pending.pop_front();
            }
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(()),
            Err(e) => return Err(zerr("pushing to workers")(e)),
        }
    }
    Ok(())
}
