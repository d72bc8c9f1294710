//! The receiver's relay when it fetches from a forwarder's journal: fetch as much as the
//! queue has room for, hand it to workers ([`super::dispatch`]), and commit the offset below
//! the oldest message not yet done, so a receiver that dies (or whose workers die) loses
//! nothing: the forwarder sends it again.

use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::delivery::Delivery;
use crate::endpoint::Endpoint;
use crate::signals::Signals;
use crate::stats::ReceiverStats;
use crate::zmqutil::{self, zerr};
use crate::Error;

use super::dispatch::{self, Acked};
use super::fetch::{Fetcher, Pending};
use super::ReceiverConfig;

/// At a stop, how long the receiver waits for its workers to finish what they hold.
const STOP_DRAIN: Duration = Duration::from_secs(5);
/// The longest a poll sleeps.
const TICK_MS: i64 = 50;
/// Linger of the journal socket, so the last commit goes out at a stop.
const COMMIT_LINGER_MS: i32 = 1000;

enum Output {
    Acked(Acked),
    Push(zmq::Socket),
}

pub(super) struct Relay {
    fetcher: Fetcher,
    output: Output,
    /// At most this many messages held (fetched, not done)...
    capacity: usize,
    /// ...and about this many bytes waiting to be sent.
    queue_bytes: usize,
}

impl Relay {
    /// Connects to the journal and binds the output. Returns the bound output endpoint.
    pub(super) fn bind(
        (ctx, guard): (&zmq::Context, &crate::access::Guard),
        config: &ReceiverConfig,
        journal: &Endpoint,
    ) -> Result<(Self, Endpoint), Error> {
        let dealer = ctx
            .socket(zmq::DEALER)
            .map_err(zerr("creating the journal socket"))?;
        dealer
            .set_linger(COMMIT_LINGER_MS)
            .map_err(zerr("setting linger"))?;
        crate::curve::guard_client(&dealer, config.curve.as_ref(), journal)?;
        zmqutil::connect(&dealer, &journal.to_string())?;
        let kind = match config.delivery {
            Delivery::Acked => zmq::ROUTER,
            Delivery::Push => zmq::PUSH,
        };
        let socket = ctx
            .socket(kind)
            .map_err(zerr("creating the output socket"))?;
        socket.set_linger(0).map_err(zerr("setting linger"))?;
        guard.apply(&socket, &config.output)?;
        zmqutil::bind(&socket, &config.output)?;
        let endpoint = zmqutil::bound_endpoint(&socket, &config.output);
        let output = match config.delivery {
            Delivery::Acked => Output::Acked(Acked::new(socket)?),
            Delivery::Push => {
                socket
                    .set_sndhwm(config.hwm)
                    .map_err(zerr("setting PUSH hwm"))?;
                Output::Push(socket)
            }
        };
        info!(%journal, group = config.group.as_str(), delivery = %config.delivery, "receiver fetching from the journal");
        let relay = Relay {
            fetcher: Fetcher::new(dealer, &config.group, &config.topics),
            output,
            capacity: config.hwm.max(1) as usize,
            queue_bytes: config.queue_bytes,
        };
        Ok((relay, endpoint))
    }

    pub(super) fn run(&mut self, signals: &Signals, stats: &ReceiverStats) -> Result<(), Error> {
        let mut pending = Pending::default();
        let mut drain_until: Option<Instant> = None;
        loop {
            if drain_until.is_none() && signals.stop_requested().is_some() {
                info!("stop requested: waiting for the workers to finish what they hold");
                drain_until = Some(Instant::now() + STOP_DRAIN);
            }
            let before = pending.bytes();
            let got = self.fetcher.receive(&mut pending)?;
            if got > 0 {
                stats.received().fetch_add(got as u64, Relaxed);
                let bytes = pending.bytes() - before;
                stats.bytes_received().fetch_add(bytes as u64, Relaxed);
            }
            self.hand_out(&mut pending, stats)?;
            let held = pending.len() + self.held();
            stats.in_flight().store(held as u64, Relaxed);
            let oldest = [self.oldest(), pending.front().map(|h| h.seq)]
                .into_iter()
                .flatten()
                .min()
                .unwrap_or(self.fetcher.next);
            self.fetcher.commit(oldest, held == 0)?;
            if oldest != crate::delivery::FROM_COMMITTED {
                let backlog = self.fetcher.head.saturating_sub(oldest);
                stats.backlog().store(backlog, Relaxed);
            }
            match drain_until {
                Some(until) if held == 0 || Instant::now() >= until => {
                    return self.finish(held, oldest);
                }
                Some(_) => {}
                None => {
                    let room = self.capacity.saturating_sub(held);
                    let bytes = self.queue_bytes.saturating_sub(pending.bytes());
                    // Ask for big batches, not one message at a time.
                    if held == 0 || room >= self.capacity / 4 {
                        self.fetcher.request(room, bytes.max(1))?;
                    } else {
                        self.fetcher.request(0, 0)?;
                    }
                }
            }
            self.wait(!pending.is_empty())?;
        }
    }

    fn hand_out(&mut self, pending: &mut Pending, stats: &ReceiverStats) -> Result<(), Error> {
        match &mut self.output {
            Output::Acked(a) => {
                a.read_acks(stats)?;
                a.dispatch(pending, stats)?;
                a.probe(stats)
            }
            Output::Push(p) => dispatch::push(p, pending, stats),
        }
    }

    fn held(&self) -> usize {
        match &self.output {
            Output::Acked(a) => a.held(),
            Output::Push(_) => 0,
        }
    }

    fn oldest(&self) -> Option<u64> {
        match &self.output {
            Output::Acked(a) => a.oldest(),
            Output::Push(_) => None,
        }
    }

    fn finish(&mut self, held: usize, oldest: u64) -> Result<(), Error> {
        self.fetcher.commit(oldest, true)?;
        if held > 0 {
            warn!(
                messages = held,
                "stopping with messages not yet done by a worker: the forwarder sends them again after a restart"
            );
        }
        Ok(())
    }

    /// Sleeps until the forwarder answers, a worker acknowledges (or, pushing, has room), or
    /// a tick passes.
    fn wait(&self, pending: bool) -> Result<(), Error> {
        let mut items = vec![self.fetcher.dealer.as_poll_item(zmq::POLLIN)];
        match &self.output {
            Output::Acked(a) => items.push(a.router.as_poll_item(zmq::POLLIN)),
            Output::Push(p) if pending => items.push(p.as_poll_item(zmq::POLLOUT)),
            Output::Push(_) => {}
        }
        match zmq::poll(&mut items, TICK_MS) {
            Ok(_) | Err(zmq::Error::EINTR) => Ok(()),
            Err(e) => Err(zerr("polling")(e)),
        }
    }
}
