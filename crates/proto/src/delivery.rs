//! The acknowledged-delivery protocol between zerolog's own elements, one definition of each
//! message. zerolog 0.3 peers never see it: they keep the XPUB `[topic, message]` and PUSH
//! sockets.
//!
//! Receiver (DEALER) to forwarder (ROUTER, the journal endpoint):
//! - `FETCH`: `["F", group, from u64, max_records u32, max_bytes u32, topic...]`. `from` is
//!   [`FROM_COMMITTED`] when the receiver (re)starts and knows nothing: the forwarder answers
//!   from the group's committed offset. The request is stateless, so either side may restart.
//! - `COMMIT`: `["C", group, next u64]`: every record of the group below `next` is done.
//!
//! Forwarder to receiver: `["R", from u64 | next u64 | head u64, records]`: the records with
//! sequence numbers in `from..next` whose topic matches the fetch (the others were skipped),
//! and the journal's end (`head`: the receiver's backlog is what lies below it); an empty
//! batch with `next == from` when nothing arrived for a while (a long poll's end).
//!
//! Receiver (ROUTER, its output) and worker (DEALER): the receiver sends `["M", records]`
//! (topics empty) and `["P"]` (a probe: a send to a worker gone fails, so its messages go to
//! the others); the worker sends `["A", window u32 | seq u64...]`: the sequence numbers it has
//! done, and how many messages it takes at once.
//!
//! All integers are little-endian. A record is `seq u64 | flags u8 | topic_len u16 | len u32 |
//! topic | message`.

/// How a receiver hands messages to its workers.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum Delivery {
    /// PUSH, one frame per message: what zerolog 0.3's `BaseWorker` reads. At most once: what
    /// a worker holds when it dies is lost.
    #[default]
    Push,
    /// The protocol of this module: a worker acknowledges each message once it is done, and
    /// a dead worker's messages go to the others. At least once.
    Acked,
}

impl std::str::FromStr for Delivery {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "push" => Ok(Delivery::Push),
            "acked" => Ok(Delivery::Acked),
            other => Err(format!(
                "unknown delivery '{other}': expected acked or push"
            )),
        }
    }
}

impl std::fmt::Display for Delivery {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            Delivery::Push => "push",
            Delivery::Acked => "acked",
        })
    }
}

/// `from` of a fetch that asks for the group's committed offset.
pub const FROM_COMMITTED: u64 = u64::MAX;
/// Flag of a record sent again (its first delivery may have been processed).
pub const REDELIVERY: u8 = 1;

/// Kinds of the first frame.
pub const FETCH: &[u8] = b"F";
/// See the module docs.
pub const COMMIT: &[u8] = b"C";
/// See the module docs.
pub const RECORDS: &[u8] = b"R";
/// See the module docs.
pub const MESSAGES: &[u8] = b"M";
/// See the module docs.
pub const PROBE: &[u8] = b"P";
/// See the module docs.
pub const ACK: &[u8] = b"A";

const RECORD_HEADER: usize = 8 + 1 + 2 + 4;

/// Why a message of this protocol could not be read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum DeliveryError {
    /// A frame is shorter than its fields.
    #[error("truncated {0}")]
    Truncated(&'static str),
    /// The first frame names no known message.
    #[error("unknown message kind {0:?}")]
    UnknownKind(Vec<u8>),
}

/// One record of a batch.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Record<'a> {
    /// Its sequence number in the forwarder's journal.
    pub seq: u64,
    /// [`REDELIVERY`] or 0.
    pub flags: u8,
    /// Its topic (empty on the worker hop).
    pub topic: &'a [u8],
    /// The message.
    pub message: &'a [u8],
}

/// Appends one record to a batch.
pub fn push_record(out: &mut Vec<u8>, r: &Record<'_>) {
    let topic_len = r.topic.len().min(u16::MAX as usize);
    out.extend_from_slice(&r.seq.to_le_bytes());
    out.push(r.flags);
    out.extend_from_slice(&(topic_len as u16).to_le_bytes());
    out.extend_from_slice(&(r.message.len() as u32).to_le_bytes());
    out.extend_from_slice(&r.topic[..topic_len]);
    out.extend_from_slice(r.message);
}

/// The bytes [`push_record`] adds for a topic and message of these lengths.
pub fn record_len(topic: usize, message: usize) -> usize {
    RECORD_HEADER + topic.min(u16::MAX as usize) + message
}

/// The records of a batch, in order; an error ends the iteration.
pub fn records(mut batch: &[u8]) -> impl Iterator<Item = Result<Record<'_>, DeliveryError>> {
    std::iter::from_fn(move || {
        if batch.is_empty() {
            return None;
        }
        let r = read_record(batch);
        match r {
            Ok((record, used)) => {
                batch = &batch[used..];
                Some(Ok(record))
            }
            Err(e) => {
                batch = &[];
                Some(Err(e))
            }
        }
    })
}

fn read_record(b: &[u8]) -> Result<(Record<'_>, usize), DeliveryError> {
    let short = DeliveryError::Truncated("record");
    if b.len() < RECORD_HEADER {
        return Err(short);
    }
    let seq = u64_at(b, 0);
    let flags = b[8];
    let topic_len = u16::from_le_bytes([b[9], b[10]]) as usize;
    let len = u32_at(b, 11) as usize;
    let end = RECORD_HEADER + topic_len + len;
    if b.len() < end {
        return Err(short);
    }
    let topic = &b[RECORD_HEADER..RECORD_HEADER + topic_len];
    let message = &b[RECORD_HEADER + topic_len..end];
    let record = Record {
        seq,
        flags,
        topic,
        message,
    };
    Ok((record, end))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

/// A fetch request, as the receiver sends it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Fetch<'a> {
    /// The consumer group: the receiver's name.
    pub group: &'a [u8],
    /// The first sequence number wanted, or [`FROM_COMMITTED`].
    pub from: u64,
    /// At most this many records...
    pub max_records: u32,
    /// ...and about this many bytes (at least one record).
    pub max_bytes: u32,
    /// Topic prefixes; none: every topic.
    pub topics: Vec<&'a [u8]>,
}

/// A request from a receiver to the forwarder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Request<'a> {
    /// See [`Fetch`].
    Fetch(Fetch<'a>),
    /// Everything of `group` below `next` is done.
    Commit {
        /// The consumer group.
        group: &'a [u8],
        /// The first sequence number not yet done.
        next: u64,
    },
}

impl Request<'_> {
    /// The frames of this request.
    pub fn frames(&self) -> Vec<Vec<u8>> {
        match self {
            Request::Fetch(f) => {
                let mut fields = Vec::with_capacity(16);
                fields.extend_from_slice(&f.from.to_le_bytes());
                fields.extend_from_slice(&f.max_records.to_le_bytes());
                fields.extend_from_slice(&f.max_bytes.to_le_bytes());
                let mut frames = vec![FETCH.to_vec(), f.group.to_vec(), fields];
                frames.extend(f.topics.iter().map(|t| t.to_vec()));
                frames
            }
            Request::Commit { group, next } => {
                vec![COMMIT.to_vec(), group.to_vec(), next.to_le_bytes().to_vec()]
            }
        }
    }
}

/// Reads a request from its frames (the ROUTER's routing frame removed).
pub fn parse_request<'a>(frames: &'a [Vec<u8>]) -> Result<Request<'a>, DeliveryError> {
    let kind = frames.first().ok_or(DeliveryError::Truncated("request"))?;
    let group = frames.get(1).ok_or(DeliveryError::Truncated("request"))?;
    let fields = frames.get(2).ok_or(DeliveryError::Truncated("request"))?;
    match kind.as_slice() {
        FETCH if fields.len() == 16 => Ok(Request::Fetch(Fetch {
            group,
            from: u64_at(fields, 0),
            max_records: u32_at(fields, 8),
            max_bytes: u32_at(fields, 12),
            topics: frames[3..].iter().map(Vec::as_slice).collect(),
        })),
        COMMIT if fields.len() == 8 => Ok(Request::Commit {
            group,
            next: u64_at(fields, 0),
        }),
        FETCH | COMMIT => Err(DeliveryError::Truncated("request fields")),
        other => Err(DeliveryError::UnknownKind(other.to_vec())),
    }
}

/// The range frame of a `RECORDS` reply.
pub fn range_frame(from: u64, next: u64, head: u64) -> [u8; 24] {
    let mut f = [0; 24];
    f[..8].copy_from_slice(&from.to_le_bytes());
    f[8..16].copy_from_slice(&next.to_le_bytes());
    f[16..].copy_from_slice(&head.to_le_bytes());
    f
}

/// Reads the range frame of a `RECORDS` reply: (from, next, head).
pub fn parse_range(frame: &[u8]) -> Result<(u64, u64, u64), DeliveryError> {
    if frame.len() != 24 {
        return Err(DeliveryError::Truncated("range"));
    }
    Ok((u64_at(frame, 0), u64_at(frame, 8), u64_at(frame, 16)))
}

/// A worker's `ACK` frame: its window and the sequence numbers it has done.
pub fn ack_frame(window: u32, done: &[u64]) -> Vec<u8> {
    let mut f = Vec::with_capacity(4 + 8 * done.len());
    f.extend_from_slice(&window.to_le_bytes());
    for s in done {
        f.extend_from_slice(&s.to_le_bytes());
    }
    f
}

/// Reads an `ACK` frame: the window and the sequence numbers done.
pub fn parse_ack(frame: &[u8]) -> Result<(u32, impl Iterator<Item = u64> + '_), DeliveryError> {
    if frame.len() < 4 || (frame.len() - 4) % 8 != 0 {
        return Err(DeliveryError::Truncated("ack"));
    }
    let seqs = frame[4..].chunks_exact(8).map(|c| u64_at(c, 0));
    Ok((u32_at(frame, 0), seqs))
}

/// Whether `topic` matches any of the prefixes (none: everything), as a ZeroMQ SUB would.
pub fn topic_matches(prefixes: &[&[u8]], topic: &[u8]) -> bool {
    prefixes.is_empty() || prefixes.iter().any(|p| topic.starts_with(p))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn records_round_trip_and_a_cut_batch_is_an_error() {
        let mut batch = Vec::new();
        let a = Record {
            seq: 7,
            flags: 0,
            topic: b"nginx",
            message: b"GET /",
        };
        let b = Record {
            seq: 9,
            flags: REDELIVERY,
            topic: b"",
            message: b"",
        };
        push_record(&mut batch, &a);
        push_record(&mut batch, &b);
        assert_eq!(batch.len(), record_len(5, 5) + record_len(0, 0));
        let got: Vec<_> = records(&batch).collect();
        assert_eq!(got, [Ok(a), Ok(b)]);
        for cut in 1..batch.len() {
            if cut == record_len(5, 5) {
                continue;
            }
            let got: Vec<_> = records(&batch[..cut]).collect();
            assert_eq!(got.last(), Some(&Err(DeliveryError::Truncated("record"))));
        }
    }

    #[test]
    fn requests_round_trip() {
        let fetch = Request::Fetch(Fetch {
            group: b"r1",
            from: FROM_COMMITTED,
            max_records: 1000,
            max_bytes: 1 << 20,
            topics: vec![b"a", b"bc"],
        });
        let frames = fetch.frames();
        assert_eq!(parse_request(&frames), Ok(fetch));
        let commit = Request::Commit {
            group: b"r1",
            next: 42,
        };
        let frames = commit.frames();
        assert_eq!(parse_request(&frames), Ok(commit));
        let bad = vec![b"X".to_vec(), b"g".to_vec(), vec![]];
        assert_eq!(
            parse_request(&bad),
            Err(DeliveryError::UnknownKind(b"X".to_vec()))
        );
        let short = vec![FETCH.to_vec(), b"g".to_vec(), vec![0; 3]];
        assert!(parse_request(&short).is_err());
    }

    #[test]
    fn acks_round_trip() {
        let f = ack_frame(64, &[3, 4, 9]);
        let (window, seqs) = parse_ack(&f).unwrap();
        assert_eq!(window, 64);
        assert_eq!(seqs.collect::<Vec<_>>(), [3, 4, 9]);
        assert!(parse_ack(&f[..7]).is_err());
        assert_eq!(parse_range(&range_frame(5, 10, 12)), Ok((5, 10, 12)));
    }

    #[test]
    fn topics_match_by_prefix() {
        assert!(topic_matches(&[], b"x"));
        assert!(topic_matches(&[b"ng"], b"nginx"));
        assert!(!topic_matches(&[b"ng", b"ap"], b"sshd"));
    }
}
