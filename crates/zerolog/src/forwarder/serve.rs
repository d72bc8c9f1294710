//! Serving the journal to receivers: fetches (answered at once, or parked until records
//! arrive: a long poll) and commits, on the ROUTER socket of the journal endpoint. See
//! [`crate::delivery`] for the protocol.

use std::collections::HashMap;
use std::sync::atomic::Ordering::Relaxed;
use std::time::{Duration, Instant};

use tracing::{debug, warn};

use crate::delivery::{self, Fetch, Record, Request, FROM_COMMITTED, REDELIVERY};
use crate::events::RateLimit;
use crate::journal::{Cursor, Journal};
use crate::stats::ForwarderStats;
use crate::zmqutil::zerr;
use crate::Error;

use super::split_payload;

/// How long a fetch with nothing to read waits before an empty answer.
const LONG_POLL: Duration = Duration::from_millis(500);

/// A fetch waiting for records.
struct Parked {
    id: Vec<u8>,
    group: Vec<u8>,
    from: u64,
    max_records: u32,
    max_bytes: u32,
    topics: Vec<Vec<u8>>,
    until: Instant,
}

/// What the forwarder knows of a consumer group between its fetches.
struct Group {
    cursor: Cursor,
    /// Everything below this was sent at least once (since this forwarder started; at start,
    /// everything the journal held, as it may have been sent before a crash).
    sent_below: u64,
}

pub(super) struct Served {
    pub(super) router: zmq::Socket,
    parked: Vec<Parked>,
    groups: HashMap<Vec<u8>, Group>,
    out: Vec<u8>,
    bad_log: RateLimit,
    /// Whether a commit arrived since the last checkpoint.
    pub(super) committed: bool,
    /// The journal's end when it was opened: what lies below may have been sent before.
    opened_at: u64,
    /// The groups heard from since start.
    pub(super) heard: std::collections::HashSet<Vec<u8>>,
}

impl Served {
    pub(super) fn new(router: zmq::Socket, opened_at: u64) -> Self {
        Served {
            opened_at,
            heard: Default::default(),
            router,
            parked: Vec::new(),
            groups: HashMap::new(),
            out: Vec::new(),
            bad_log: RateLimit::new(Duration::from_secs(10)),
            committed: false,
        }
    }

    /// Reads and handles every request waiting on the socket.
    pub(super) fn handle_requests(
        &mut self,
        journal: &mut Journal,
        stats: &ForwarderStats,
    ) -> Result<(), Error> {
        loop {
            let frames = match self.router.recv_multipart(zmq::DONTWAIT) {
                Ok(f) => f,
                Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => return Ok(()),
                Err(e) => return Err(zerr("reading a receiver's request")(e)),
            };
            let Some((id, request)) = frames.split_first() else {
                continue;
            };
            let request = delivery::parse_request(request);
            if let Ok(Request::Fetch(Fetch { group, .. }) | Request::Commit { group, .. }) =
                &request
            {
                if !self.heard.contains(*group) {
                    self.heard.insert(group.to_vec());
                }
            }
            match request {
                Ok(Request::Fetch(f)) => self.fetch(journal, id, &f, stats)?,
                Ok(Request::Commit { group, next }) => {
                    journal.commit(&String::from_utf8_lossy(group), next);
                    self.committed = true;
                }
                Err(e) => {
                    stats.journal_bad_requests().fetch_add(1, Relaxed);
                    if self.bad_log.allow() {
                        warn!(error = %e, "malformed request on the journal endpoint (counted as journal_bad_requests)");
                    }
                }
            }
        }
    }

    fn fetch(
        &mut self,
        journal: &mut Journal,
        id: &[u8],
        f: &Fetch<'_>,
        stats: &ForwarderStats,
    ) -> Result<(), Error> {
        let name = String::from_utf8_lossy(f.group);
        let from = match f.from {
            FROM_COMMITTED => journal
                .committed(&name)
                .unwrap_or_else(|| journal.first_seq()),
            from => from,
        }
        .max(journal.first_seq());
        // A group's earlier fetch still parked is superseded (its receiver restarted).
        self.parked.retain(|p| p.group != f.group);
        let parked = Parked {
            id: id.to_vec(),
            group: f.group.to_vec(),
            from,
            max_records: f.max_records,
            max_bytes: f.max_bytes,
            topics: f.topics.iter().map(|t| t.to_vec()).collect(),
            until: Instant::now() + LONG_POLL,
        };
        // A probe (no record wanted) is answered at once: it asks where the journal ends.
        if from < journal.next_seq() || f.max_records == 0 {
            self.answer(journal, &parked, stats)
        } else {
            debug!(group = %name, from, "fetch parked until records arrive");
            self.parked.push(parked);
            Ok(())
        }
    }

    /// Answers the parked fetches that have records now, or whose wait is over.
    pub(super) fn answer_parked(
        &mut self,
        journal: &mut Journal,
        stats: &ForwarderStats,
    ) -> Result<(), Error> {
        if self.parked.is_empty() {
            return Ok(());
        }
        let now = Instant::now();
        let next = journal.next_seq();
        let (due, wait): (Vec<_>, Vec<_>) = std::mem::take(&mut self.parked)
            .into_iter()
            .partition(|p| p.from < next || p.until <= now);
        self.parked = wait;
        for p in &due {
            self.answer(journal, p, stats)?;
        }
        Ok(())
    }

    /// When the next parked fetch's wait ends.
    pub(super) fn next_deadline(&self) -> Option<Instant> {
        self.parked.iter().map(|p| p.until).min()
    }

    fn answer(
        &mut self,
        journal: &mut Journal,
        p: &Parked,
        stats: &ForwarderStats,
    ) -> Result<(), Error> {
        let opened_at = self.opened_at;
        let group = self.groups.entry(p.group.clone()).or_insert_with(|| Group {
            cursor: Cursor::default(),
            sent_below: opened_at,
        });
        let topics: Vec<&[u8]> = p.topics.iter().map(Vec::as_slice).collect();
        let out = &mut self.out;
        out.clear();
        let (mut sent, mut again) = (0u64, 0u64);
        let sent_below = group.sent_below;
        let next = journal.read(
            &mut group.cursor,
            p.from,
            p.max_records as usize,
            p.max_bytes as usize,
            |seq, payload| {
                let super::Payload {
                    topic,
                    message,
                    resent,
                } = split_payload(payload);
                if !delivery::topic_matches(&topics, topic) {
                    return;
                }
                let flags = if seq < sent_below || resent {
                    again += 1;
                    REDELIVERY
                } else {
                    0
                };
                sent += 1;
                let record = Record {
                    seq,
                    flags,
                    topic,
                    message,
                };
                delivery::push_record(out, &record);
            },
        )?;
        group.sent_below = group.sent_below.max(next);
        stats.journal_sent().fetch_add(sent, Relaxed);
        stats.journal_redelivered().fetch_add(again, Relaxed);
        let range = delivery::range_frame(p.from, next, journal.next_seq());
        let frames: [&[u8]; 4] = [&p.id, delivery::RECORDS, &range, out];
        match self.router.send_multipart(frames, zmq::DONTWAIT) {
            // A receiver gone, or not reading: it fetches again when it can.
            Ok(()) | Err(zmq::Error::EAGAIN | zmq::Error::EHOSTUNREACH) => Ok(()),
            Err(e) => Err(zerr("answering a fetch")(e)),
        }
    }
}
