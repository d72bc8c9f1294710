//! The receiver's side of the journal: fetching records from the forwarder and committing
//! what its workers are done with ([`crate::delivery`]).

use std::collections::VecDeque;
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::delivery::{self, Fetch, Request, FROM_COMMITTED};
use crate::zmqutil::zerr;
use crate::Error;

/// A fetch unanswered for this long is sent again (the forwarder restarted, or the reply was
/// lost); the forwarder's long poll answers within 500 ms.
const FETCH_TIMEOUT: Duration = Duration::from_secs(1);
/// Commits go out at most this often while messages flow (at once when all is done).
const COMMIT_EVERY: Duration = Duration::from_millis(20);
/// How often a receiver with no room asks where the journal ends.
const PROBE_EVERY: Duration = Duration::from_secs(1);
/// An unchanged offset is committed again this often.
const RECOMMIT_EVERY: Duration = Duration::from_secs(1);

/// One message held by the receiver: a slice of the reply it came in.
#[derive(Clone)]
pub(super) struct Held {
    pub(super) seq: u64,
    pub(super) flags: u8,
    batch: Arc<Vec<u8>>,
    start: usize,
    end: usize,
}

impl Held {
    pub(super) fn data(&self) -> &[u8] {
        &self.batch[self.start..self.end]
    }
}

/// Fetched messages not yet handed to a worker, in order, and their bytes.
#[derive(Default)]
pub(super) struct Pending {
    queue: VecDeque<Held>,
    bytes: usize,
}

impl Pending {
    pub(super) fn push_back(&mut self, h: Held) {
        self.bytes += h.data().len();
        self.queue.push_back(h);
    }

    pub(super) fn pop_front(&mut self) -> Option<Held> {
        let h = self.queue.pop_front()?;
        self.bytes -= h.data().len();
        Some(h)
    }

    pub(super) fn front(&self) -> Option<&Held> {
        self.queue.front()
    }

    pub(super) fn len(&self) -> usize {
        self.queue.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// The bytes of the messages waiting.
    pub(super) fn bytes(&self) -> usize {
        self.bytes
    }
}

pub(super) struct Fetcher {
    pub(super) dealer: zmq::Socket,
    group: Vec<u8>,
    topics: Vec<Vec<u8>>,
    /// The next sequence number to fetch, or [`FROM_COMMITTED`] before the first answer.
    pub(super) next: u64,
    sent_at: Option<Instant>,
    /// The journal's end, as of the last answer.
    pub(super) head: u64,
    committed: u64,
    last_commit: Instant,
}

impl Fetcher {
    pub(super) fn new(dealer: zmq::Socket, group: &str, topics: &[Vec<u8>]) -> Self {
        Fetcher {
            dealer,
            group: group.as_bytes().to_vec(),
            topics: topics.to_vec(),
            next: FROM_COMMITTED,
            sent_at: None,
            head: 0,
            committed: 0,
            last_commit: Instant::now(),
        }
    }

    /// Asks for up to `records` more (about `bytes`), unless a fetch is already out.
    /// With no room (`records` 0), a probe for no record goes once a second: its answer
    /// keeps [`Fetcher::head`], the backlog, current.
    pub(super) fn request(&mut self, records: usize, bytes: usize) -> Result<(), Error> {
        let wait = if records == 0 {
            PROBE_EVERY
        } else {
            FETCH_TIMEOUT
        };
        if self.sent_at.is_some_and(|t| t.elapsed() < wait) {
            return Ok(());
        }
        let request = Request::Fetch(Fetch {
            group: &self.group,
            from: self.next,
            max_records: records.min(u32::MAX as usize) as u32,
            max_bytes: bytes.min(u32::MAX as usize) as u32,
            topics: self.topics.iter().map(Vec::as_slice).collect(),
        });
        if self.send(request)? {
            self.sent_at = Some(Instant::now());
        }
        Ok(())
    }

    /// Reads the forwarder's answers into `into`. Returns how many records arrived.
    pub(super) fn receive(&mut self, into: &mut Pending) -> Result<usize, Error> {
        let mut got = 0;
        loop {
            let frames = match self.dealer.recv_multipart(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(got),
                Err(e) => return Err(zerr("receiving from the journal")(e)),
            };
            let Ok([kind, range, body]) = <[Vec<u8>; 3]>::try_from(frames) else {
                continue;
            };
            let Ok((from, next, head)) = delivery::parse_range(&range) else {
                continue;
            };
            if kind != delivery::RECORDS || (self.next != FROM_COMMITTED && from != self.next) {
                // An answer to a fetch sent again: its records came already.
                continue;
            }
            got += self.take(body, into)?;
            self.next = next;
            self.head = head;
            self.sent_at = None;
        }
    }

    /// The records of an answer, kept in the frame they came in (no copy).
    fn take(&self, body: Vec<u8>, into: &mut Pending) -> Result<usize, Error> {
        let batch = Arc::new(body);
        let base = batch.as_ptr() as usize;
        let mut n = 0;
        for r in delivery::records(&batch) {
            let r = r.map_err(|e| Error::Protocol(format!("journal answer: {e}")))?;
            let start = r.message.as_ptr() as usize - base;
            into.push_back(Held {
                seq: r.seq,
                flags: r.flags,
                batch: batch.clone(),
                start,
                end: start + r.message.len(),
            });
            n += 1;
        }
        Ok(n)
    }

    /// Commits `done_below` (everything below it is done) when it moved, at most every
    /// 20 ms unless `now` is asked; and again every second, for a forwarder that restarted.
    pub(super) fn commit(&mut self, done_below: u64, now: bool) -> Result<(), Error> {
        if done_below == FROM_COMMITTED {
            return Ok(());
        }
        let since = self.last_commit.elapsed();
        let due = if done_below > self.committed {
            now || since >= COMMIT_EVERY
        } else {
            since >= RECOMMIT_EVERY
        };
        if !due {
            return Ok(());
        }
        let done_below = done_below.max(self.committed);
        let request = Request::Commit {
            group: &self.group,
            next: done_below,
        };
        if self.send(request)? {
            self.committed = done_below;
            self.last_commit = Instant::now();
        }
        Ok(())
    }

    /// Whether the request went out.
    fn send(&self, request: Request<'_>) -> Result<bool, Error> {
        match self.dealer.send_multipart(request.frames(), zmq::DONTWAIT) {
            Ok(()) => Ok(true),
            // Not connected (the forwarder is down): a fetch times out and goes again, a
            // commit goes with the next.
            Err(zmq::Error::EAGAIN) => Ok(false),
            Err(e) => Err(zerr("sending to the journal")(e)),
        }
    }
}
