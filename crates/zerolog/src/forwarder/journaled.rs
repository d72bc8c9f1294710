//! The publisher thread of a forwarder with a journal: it appends each batch before anything
//! else (a message counts as accepted once it is in the journal), serves the journal to
//! receivers ([`super::serve`]), keeps the journal synced and its offsets checkpointed, and
//! still publishes `[topic, message]` on the XPUB for zerolog 0.3 receivers and the monitor.
//!
//! When the journal is full (`max_size`) or a write fails (a full disk), the batch waits and
//! nothing more is taken from the input channel, so the inputs stop reading: back-pressure,
//! never loss. Receivers keep being served meanwhile, and their commits free space.

use std::os::fd::AsRawFd;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use nix::sys::eventfd::EventFd;
use tokio::sync::{mpsc, oneshot, watch};
use tracing::{error, info, warn};

use crate::events::RateLimit;
use crate::journal::{Journal, JournalError};
use crate::stats::ForwarderStats;
use crate::zmqutil::zerr;
use crate::Error;

use super::serve::Served;
use super::{copy_to_monitor, read_subscriptions, send_pair, Batch, Output, Subscriptions};

/// How often committed offsets are made durable (and segments below them deleted).
const CHECKPOINT_EVERY: Duration = Duration::from_millis(100);
/// How long a failed write waits before it is tried again.
const RETRY_WRITE: Duration = Duration::from_secs(1);
/// Batches appended between two looks at the receivers' requests.
const TAKE_AT_ONCE: usize = 8;
/// At a stop, how long the forwarder keeps serving receivers so they can finish.
const STOP_DRAIN: Duration = Duration::from_secs(5);

/// Counts and logs (rate-limited) a failed journal write other than an append.
fn disk_error(stats: &ForwarderStats, log: &mut RateLimit, what: &str, e: &JournalError) {
    stats.journal_write_errors().fetch_add(1, Relaxed);
    if log.allow() {
        error!(error = %e, "{what}; retrying (counted as journal_write_errors)");
    }
}

/// The XPUB for zerolog 0.3 receivers and the lossy monitor.
pub(super) struct Legacy {
    pub(super) xpub: Output,
    pub(super) monitor: Option<Output>,
    pub(super) subs: Subscriptions,
    /// No receiver fetches from the journal: the XPUB is the only way out. Then input waits
    /// while nobody is subscribed, as in a forwarder without journal, and what no
    /// subscription matches is counted as unrouted.
    pub(super) only_path: bool,
    /// Input is held for want of a subscriber (logged once per wait).
    pub(super) waiting: bool,
}

impl Legacy {
    /// Publishes the batch's messages from `from` on. Returns where it stopped when a 0.3
    /// receiver is full, or (`only_path`) nobody is subscribed: its messages are in the
    /// journal already, and the batch is retried from there.
    fn publish(
        &mut self,
        batch: &Batch,
        from: usize,
        stopping: bool,
        stats: &ForwarderStats,
    ) -> Result<Option<usize>, Error> {
        read_subscriptions(&self.xpub.0, &mut self.subs, 0)?;
        if self.subs.total == 0 && self.monitor.is_none() && !self.only_path {
            // The usual case: receivers fetch from the journal, where it is published.
            stats
                .published()
                .fetch_add((batch.len() - from) as u64, Relaxed);
            return Ok(None);
        }
        let mut published = 0;
        let mut stopped = None;
        for (i, (topic, msg)) in batch.iter().enumerate().skip(from) {
            match self.route(topic, msg, stopping, stats)? {
                Some(sent) => published += u64::from(sent || !self.only_path),
                None => {
                    stopped = Some(i);
                    break;
                }
            }
            copy_to_monitor(&mut self.monitor, topic, msg)?;
        }
        stats.published().fetch_add(published, Relaxed);
        Ok(stopped)
    }

    /// One message on the XPUB: whether it went out, or `None` when it must wait.
    fn route(
        &mut self,
        topic: &[u8],
        msg: &[u8],
        stopping: bool,
        stats: &ForwarderStats,
    ) -> Result<Option<bool>, Error> {
        if self.subs.total == 0 && self.only_path && !stopping {
            if !self.waiting {
                warn!("no receiver subscribed: input paused until one subscribes");
                self.waiting = true;
            }
            return Ok(None);
        }
        self.waiting = false;
        if self.subs.total == 0 {
            if self.only_path {
                stats.dropped_at_shutdown().fetch_add(1, Relaxed);
            }
            return Ok(Some(false));
        }
        if !self.subs.matches(topic) {
            if self.only_path {
                stats.unrouted().fetch_add(1, Relaxed);
            }
            return Ok(Some(false));
        }
        let (xpub, queue) = &mut self.xpub;
        queue
            .before_send(xpub, topic.len() + msg.len())
            .map_err(zerr("setting send high-water mark"))?;
        Ok(send_pair(xpub, topic, msg, zmq::DONTWAIT)?.then_some(true))
    }
}

/// Where the input stands.
#[derive(Default)]
struct Input {
    /// Appended, still being published on the XPUB (from this index).
    publishing: Option<(Batch, usize)>,
    /// Not appended yet: the journal is full, or the last write failed.
    waiting: Option<Batch>,
    retry_at: Option<Instant>,
    closed: bool,
    full_since: Option<Instant>,
}

/// When the journal's end was where: the age of the oldest record not yet done, to 100 ms.
struct Ages {
    /// (time, next_seq then), oldest first; the first is the last one at or below the oldest
    /// record not yet done.
    marks: std::collections::VecDeque<(Instant, u64)>,
    warn: RateLimit,
}

/// A backlog this old is warned about (once a minute).
const BACKLOG_WARN_AGE: Duration = Duration::from_secs(30);

impl Ages {
    fn new(next: u64) -> Self {
        Ages {
            marks: [(Instant::now(), next)].into(),
            warn: RateLimit::new(Duration::from_secs(60)),
        }
    }

    /// Notes the journal's end now; returns the age of the oldest record not yet done.
    fn update(&mut self, journal: &Journal) -> Duration {
        let (oldest, next) = (journal.oldest_unconsumed(), journal.next_seq());
        let now = Instant::now();
        if self.marks.back().is_none_or(|m| m.1 < next) {
            self.marks.push_back((now, next));
        }
        while self.marks.len() > 1 && self.marks[1].1 <= oldest {
            self.marks.pop_front();
        }
        if oldest >= next {
            return Duration::ZERO;
        }
        now - self.marks[0].0
    }

    fn warn_if_old(&mut self, age: Duration, journal: &Journal) {
        if age < BACKLOG_WARN_AGE || !self.warn.allow() {
            return;
        }
        let next = journal.next_seq();
        for c in &journal.config().consumers {
            let done = journal.committed(c).unwrap_or_else(|| journal.first_seq());
            if done < next {
                warn!(receiver = c.as_str(), backlog = next - done, oldest_age_s = age.as_secs(), "a receiver is behind: its records wait in the journal (the input stops when the journal is full)");
            }
        }
    }
}

pub(super) struct Loop {
    pub(super) journal: Journal,
    pub(super) served: Served,
    pub(super) legacy: Legacy,
    pub(super) rx: mpsc::Receiver<Batch>,
    pub(super) wake: std::sync::Arc<EventFd>,
    pub(super) stop: watch::Receiver<bool>,
    /// Sent once every consumer without an offset has fetched or committed: until then no
    /// input is read, so a new pipeline whose receivers cannot start refuses connections
    /// (as without a journal).
    pub(super) ready: Option<oneshot::Sender<()>>,
}

impl Loop {
    pub(super) fn run(mut self, stats: &ForwarderStats) -> Result<(), Error> {
        let mut input = Input::default();
        let mut next_checkpoint = Instant::now() + CHECKPOINT_EVERY;
        let mut log = RateLimit::new(Duration::from_secs(10));
        let mut drain_until = None;
        let mut ages = Ages::new(self.journal.next_seq());
        loop {
            let more = self.take_input(&mut input, stats, &mut log)?;
            self.served.handle_requests(&mut self.journal, stats)?;
            self.served.answer_parked(&mut self.journal, stats)?;
            self.ready_when_joined();
            let now = Instant::now();
            if self.journal.sync_due().is_some_and(|t| t <= now) {
                if let Err(e) = self.journal.sync() {
                    disk_error(stats, &mut log, "cannot sync the journal", &e);
                }
            }
            if now >= next_checkpoint {
                self.checkpoint(stats, &mut log);
                let age = ages.update(&self.journal);
                stats
                    .journal_oldest_age_ms()
                    .store(age.as_millis() as u64, Relaxed);
                ages.warn_if_old(age, &self.journal);
                next_checkpoint = now + CHECKPOINT_EVERY;
            }
            if input.closed && input.publishing.is_none() && input.waiting.is_none() {
                let until = *drain_until.get_or_insert(now + STOP_DRAIN);
                if self.journal.oldest_unconsumed() >= self.journal.next_seq() || now >= until {
                    return self.finish(stats);
                }
            }
            if !more {
                self.wait(&input, next_checkpoint)?;
            }
        }
    }

    fn ready_when_joined(&mut self) {
        if self.ready.is_none() {
            return;
        }
        // Only receivers with no offset yet (a new topology) are waited for: one with an
        // offset has its records kept anyway, so a restarted forwarder reads input at once.
        let consumers = &self.journal.config().consumers;
        if consumers
            .iter()
            .filter(|c| self.journal.committed(c).is_none())
            .all(|c| self.served.heard.contains(c.as_bytes()))
        {
            if !consumers.is_empty() {
                info!(
                    receivers = consumers.len(),
                    "every receiver fetches from the journal"
                );
            }
            let _ = self.ready.take().map(|r| r.send(()));
        }
    }

    /// Appends (and publishes) what the inputs framed, while the journal has room. True when
    /// it stopped with input perhaps left.
    fn take_input(
        &mut self,
        input: &mut Input,
        stats: &ForwarderStats,
        log: &mut RateLimit,
    ) -> Result<bool, Error> {
        // A few batches at a time, so that receivers' fetches are served under a steady flood.
        for _ in 0..TAKE_AT_ONCE {
            if let Some((batch, from)) = input.publishing.take() {
                let stopping = *self.stop.borrow();
                if let Some(at) = self.legacy.publish(&batch, from, stopping, stats)? {
                    input.publishing = Some((batch, at));
                    return Ok(false);
                }
            }
            if input.retry_at.is_some_and(|t| Instant::now() < t) {
                return Ok(false);
            }
            let batch = match input.waiting.take() {
                Some(b) => b,
                None => match self.rx.try_recv() {
                    Ok(b) => b,
                    Err(mpsc::error::TryRecvError::Empty) => return Ok(false),
                    Err(mpsc::error::TryRecvError::Disconnected) => {
                        input.closed = true;
                        return Ok(false);
                    }
                },
            };
            if !self.journal.has_room(batch.bytes() as u64) {
                if input.full_since.is_none() {
                    stats.journal_full().fetch_add(1, Relaxed);
                    warn!(size = self.journal.size(), "journal full (max_size): input paused until receivers catch up, nothing dropped");
                    input.full_since = Some(Instant::now());
                }
                input.waiting = Some(batch);
                return Ok(false);
            }
            if let Some(since) = input.full_since.take() {
                info!(
                    paused_ms = since.elapsed().as_millis() as u64,
                    "journal has room again: input resumed"
                );
            }
            self.append(batch, input, stats, log);
        }
        Ok(true)
    }

    fn append(
        &mut self,
        mut batch: Batch,
        input: &mut Input,
        stats: &ForwarderStats,
        log: &mut RateLimit,
    ) {
        match self.journal.append(batch.payloads()) {
            Ok(first) => {
                input.retry_at = None;
                stats
                    .journal_appended()
                    .fetch_add(batch.len() as u64, Relaxed);
                if let Some(accepted) = batch.accepted.take() {
                    let _ = accepted.send(first);
                }
                input.publishing = Some((batch, 0));
            }
            Err(e) => {
                disk_error(stats, log, "cannot append to the journal: input paused", &e);
                input.waiting = Some(batch);
                input.retry_at = Some(Instant::now() + RETRY_WRITE);
            }
        }
    }

    /// Saves the offsets and deletes what every receiver is done with. A failure (a full
    /// disk) is retried at the next checkpoint: an offset not saved only means records sent
    /// again after a crash.
    fn checkpoint(&mut self, stats: &ForwarderStats, log: &mut RateLimit) {
        if self.served.committed {
            match self.journal.checkpoint() {
                Ok(deleted) => {
                    self.served.committed = false;
                    stats
                        .journal_segments_deleted()
                        .fetch_add(deleted as u64, Relaxed);
                }
                Err(e) => disk_error(stats, log, "cannot save the receivers' offsets", &e),
            }
        }
        stats.journal_bytes().store(self.journal.size(), Relaxed);
        let backlog = self.journal.next_seq() - self.journal.oldest_unconsumed();
        stats.journal_backlog().store(backlog, Relaxed);
    }

    fn finish(mut self, stats: &ForwarderStats) -> Result<(), Error> {
        let mut log = RateLimit::new(Duration::ZERO);
        if let Err(e) = self.journal.sync() {
            disk_error(stats, &mut log, "cannot sync the journal", &e);
        }
        self.served.committed = true;
        self.checkpoint(stats, &mut log);
        let left = self.journal.next_seq() - self.journal.oldest_unconsumed();
        if left > 0 {
            info!(
                records = left,
                "stopping with records not yet done by every receiver: they stay in the journal for the next start"
            );
        }
        stats.log("forwarder");
        Ok(())
    }

    /// Sleeps until a request, input, a writable XPUB, or the next timer.
    fn wait(&self, input: &Input, next_checkpoint: Instant) -> Result<(), Error> {
        let mut until = next_checkpoint;
        for t in [
            self.journal.sync_due(),
            self.served.next_deadline(),
            input.retry_at,
        ]
        .into_iter()
        .flatten()
        {
            until = until.min(t);
        }
        let input_ready = input.waiting.is_none() && input.publishing.is_none();
        let mut items = vec![self.served.router.as_poll_item(zmq::POLLIN)];
        if input_ready {
            items.push(zmq::PollItem::from_fd(self.wake.as_raw_fd(), zmq::POLLIN));
        }
        let mut timeout = until.saturating_duration_since(Instant::now()).as_millis() as i64 + 1;
        if input.publishing.is_some() {
            // A 0.3 receiver is full: try again soon (an XPUB does not say when it has room).
            timeout = 1;
        } else if *self.stop.borrow() && input.closed {
            // Draining: receivers' commits are what we wait for.
            timeout = timeout.min(10);
        }
        zmq::poll(&mut items, timeout).map_err(zerr("polling"))?;
        if input_ready {
            // Consumed; the channel is read until empty next round.
            let _ = self.wake.read();
        }
        Ok(())
    }
}
