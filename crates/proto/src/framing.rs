//! RFC 6587 framing: turns one connection's byte stream into messages.
//!
//! The framer knows nothing of syslog fields (see [`crate::syslog`] for that). It supports
//! LF-delimited ("non-transparent") framing, octet counting (`LEN SP MSG`), and `auto`, which
//! decides once per connection from the first byte: a digit means octet counting. Deciding per
//! connection rather than per frame matters because LF-framed lines may begin with a digit.
//!
//! Guarantees, for any split of the input into chunks:
//! - the same messages come out, in the same order;
//! - a message is never longer than `max_size`: longer frames are truncated to `max_size` and the
//!   rest of that frame is skipped exactly (octet counting knows the length; LF skips to the
//!   next LF);
//! - memory held between chunks is bounded by `max_size`;
//! - a malformed octet count is counted and the connection falls back to LF framing, keeping the
//!   bytes read so far as the start of the next line, so nothing after it is lost.
//!
//! Empty LF-delimited lines are not messages and are skipped. Bytes are passed through untouched:
//! a CR before the LF stays part of the message. One exception: an octet-counted frame ending in
//! LF loses that LF (senders such as rsyslog put their template's line terminator inside the
//! count); an LF anywhere else in the frame is content and stays.

use std::fmt;
use std::str::FromStr;

/// How a connection's byte stream is split into messages.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
#[serde(rename_all = "kebab-case")]
pub enum Framing {
    /// Octet counting when the connection's first byte is a digit, LF otherwise.
    #[default]
    Auto,
    /// One message per LF-terminated line.
    Lf,
    /// RFC 6587 octet counting: `LEN SP MSG`, repeated.
    OctetCounted,
}

impl FromStr for Framing {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "auto" => Ok(Framing::Auto),
            "lf" => Ok(Framing::Lf),
            "octet-counted" => Ok(Framing::OctetCounted),
            other => Err(format!(
                "unknown framing '{other}': expected auto, lf or octet-counted"
            )),
        }
    }
}

impl fmt::Display for Framing {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Framing::Auto => "auto",
            Framing::Lf => "lf",
            Framing::OctetCounted => "octet-counted",
        })
    }
}

/// Default maximum message size: 64 KiB.
pub const DEFAULT_MAX_SIZE: usize = 64 * 1024;

/// Octet counts of more digits than this are treated as malformed (1 GB - 1 at most).
const MAX_COUNT_DIGITS: usize = 9;

/// What the framer has seen on one connection.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct FramerStats {
    /// Messages emitted (including truncated and incomplete ones).
    pub messages: u64,
    /// Messages cut to the maximum size.
    pub truncated: u64,
    /// Octet counts that did not parse; each one switched the connection to LF framing.
    pub malformed_counts: u64,
    /// Octet-counted frames cut short by the end of the connection, emitted as they were.
    pub incomplete: u64,
}

/// One message out of the framer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Frame<'a> {
    /// The message bytes, without LF terminator or length prefix.
    pub data: &'a [u8],
    /// The frame was longer than the maximum size and `data` holds only its start.
    pub truncated: bool,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// `auto` framing, before the first byte.
    Undecided,
    /// LF framing. `skipping`: inside an oversized line whose start was already emitted.
    Lf { skipping: bool },
    /// Reading an octet count; its digits are in `head[..digits]`.
    Count { value: usize, digits: usize },
    /// Inside an octet-counted frame of `len` bytes with `remaining` still to come.
    Body { len: usize, remaining: usize },
}

/// A streaming RFC 6587 framer for one connection.
///
/// Feed it the connection's bytes in whatever chunks they arrive; it calls back once per
/// complete message.
///
/// ```
/// use zerolog_proto::framing::{Framer, Framing};
///
/// let mut framer = Framer::new(Framing::Auto, 64 * 1024);
/// let mut messages = Vec::new();
/// // An octet-counted stream, cut in the middle of a frame.
/// framer.feed(b"10 first\nline6 se", &mut |f| messages.push(f.data.to_vec()));
/// framer.feed(b"cond", &mut |f| messages.push(f.data.to_vec()));
/// framer.finish(&mut |f| messages.push(f.data.to_vec()));
/// assert_eq!(messages, [&b"first\nline"[..], b"second"]);
/// ```
#[derive(Debug)]
pub struct Framer {
    state: State,
    max_size: usize,
    /// The start of a message split across chunks (never more than `max_size` bytes).
    partial: Vec<u8>,
    head: [u8; MAX_COUNT_DIGITS],
    stats: FramerStats,
}

impl Framer {
    /// A framer for a new connection. `max_size` must be at least 1.
    pub fn new(framing: Framing, max_size: usize) -> Self {
        let state = match framing {
            Framing::Auto => State::Undecided,
            Framing::Lf => State::Lf { skipping: false },
            Framing::OctetCounted => State::Count {
                value: 0,
                digits: 0,
            },
        };
        Framer {
            state,
            max_size: max_size.max(1),
            partial: Vec::new(),
            head: [0; MAX_COUNT_DIGITS],
            stats: FramerStats::default(),
        }
    }

    /// Counters for this connection so far.
    pub fn stats(&self) -> FramerStats {
        self.stats
    }

    /// Bytes held back, waiting for the rest of a message.
    pub fn pending(&self) -> usize {
        self.partial.len()
    }

    /// Feeds the next chunk of the stream, calling `emit` for every complete message in it.
    pub fn feed(&mut self, mut input: &[u8], emit: &mut impl FnMut(Frame<'_>)) {
        while !input.is_empty() {
            input = match self.state {
                State::Undecided => {
                    self.state = if input[0].is_ascii_digit() {
                        State::Count {
                            value: 0,
                            digits: 0,
                        }
                    } else {
                        State::Lf { skipping: false }
                    };
                    input
                }
                State::Lf { skipping } => self.feed_lf(input, skipping, emit),
                State::Count { value, digits } => self.feed_count(input, value, digits, emit),
                State::Body { len, remaining } => self.feed_body(input, len, remaining, emit),
            };
        }
    }

    /// Ends the stream: emits what is held back (an unterminated last line, or an
    /// octet-counted frame cut short, counted as incomplete).
    pub fn finish(&mut self, emit: &mut impl FnMut(Frame<'_>)) {
        match self.state {
            State::Undecided | State::Lf { skipping: true } => {}
            State::Lf { skipping: false } => {
                if !self.partial.is_empty() {
                    emit_counted(&mut self.stats, &self.partial, false, emit);
                }
            }
            State::Count { digits, .. } => {
                // Digits with no space after them: not a count after all, keep them as a line.
                if digits > 0 {
                    self.stats.malformed_counts += 1;
                    let kept = digits.min(self.max_size);
                    emit_counted(&mut self.stats, &self.head[..kept], digits > kept, emit);
                }
            }
            State::Body { len, .. } => {
                self.stats.incomplete += 1;
                emit_counted(&mut self.stats, &self.partial, len > self.max_size, emit);
            }
        }
        self.partial.clear();
        self.state = State::Lf { skipping: false };
    }

    fn feed_lf<'a>(
        &mut self,
        mut input: &'a [u8],
        mut skipping: bool,
        emit: &mut impl FnMut(Frame<'_>),
    ) -> &'a [u8] {
        let max = self.max_size;
        loop {
            let Some(pos) = memchr::memchr(b'\n', input) else {
                // No end of line in this chunk: hold the start of the line back, up to the limit.
                if !skipping {
                    let room = max - self.partial.len();
                    if input.len() > room {
                        self.partial.extend_from_slice(&input[..room]);
                        emit_counted(&mut self.stats, &self.partial, true, emit);
                        self.partial.clear();
                        skipping = true;
                    } else {
                        self.partial.extend_from_slice(input);
                    }
                }
                self.state = State::Lf { skipping };
                return &[];
            };
            let line = &input[..pos];
            input = &input[pos + 1..];
            if skipping {
                skipping = false;
                continue;
            }
            if self.partial.is_empty() {
                if !line.is_empty() {
                    let truncated = line.len() > max;
                    emit_counted(
                        &mut self.stats,
                        &line[..line.len().min(max)],
                        truncated,
                        emit,
                    );
                }
            } else {
                let room = max - self.partial.len();
                let truncated = line.len() > room;
                self.partial
                    .extend_from_slice(&line[..line.len().min(room)]);
                emit_counted(&mut self.stats, &self.partial, truncated, emit);
                self.partial.clear();
            }
        }
    }

    fn feed_count<'a>(
        &mut self,
        input: &'a [u8],
        mut value: usize,
        mut digits: usize,
        emit: &mut impl FnMut(Frame<'_>),
    ) -> &'a [u8] {
        for (i, &b) in input.iter().enumerate() {
            match b {
                b'0'..=b'9' if digits < MAX_COUNT_DIGITS && !(digits == 0 && b == b'0') => {
                    self.head[digits] = b;
                    digits += 1;
                    value = value * 10 + usize::from(b - b'0');
                }
                b' ' if digits > 0 => {
                    self.state = State::Body {
                        len: value,
                        remaining: value,
                    };
                    return &input[i + 1..];
                }
                // Some senders end each octet-counted frame with a newline as well: skip it.
                b'\n' | b'\r' if digits == 0 => {}
                _ => {
                    // Not a count: this connection is LF-framed from here on, and the digits
                    // already read begin the next line.
                    self.stats.malformed_counts += 1;
                    self.partial.clear();
                    let skipping = if digits > self.max_size {
                        // The digits alone overflow the limit: that line is truncated.
                        emit_counted(&mut self.stats, &self.head[..self.max_size], true, emit);
                        true
                    } else {
                        self.partial.extend_from_slice(&self.head[..digits]);
                        false
                    };
                    self.state = State::Lf { skipping };
                    return &input[i..];
                }
            }
        }
        self.state = State::Count { value, digits };
        &[]
    }

    fn feed_body<'a>(
        &mut self,
        input: &'a [u8],
        len: usize,
        remaining: usize,
        emit: &mut impl FnMut(Frame<'_>),
    ) -> &'a [u8] {
        let max = self.max_size;
        let take = remaining.min(input.len());
        let (chunk, rest) = input.split_at(take);
        let remaining = remaining - take;
        if remaining == 0 && self.partial.is_empty() && len <= max {
            // The whole frame is in this chunk: emit it in place, no copy.
            emit_octet_frame(&mut self.stats, chunk, false, emit);
        } else {
            let room = max - self.partial.len();
            self.partial
                .extend_from_slice(&chunk[..chunk.len().min(room)]);
            if remaining == 0 {
                emit_octet_frame(&mut self.stats, &self.partial, len > max, emit);
                self.partial.clear();
            }
        }
        self.state = if remaining == 0 {
            State::Count {
                value: 0,
                digits: 0,
            }
        } else {
            State::Body { len, remaining }
        };
        rest
    }
}

/// An octet-counted frame whose last byte is LF carries the sender's line terminator (rsyslog
/// with a template ending in a newline): the LF is dropped, as rsyslog's own receiver does.
fn emit_octet_frame(
    stats: &mut FramerStats,
    data: &[u8],
    truncated: bool,
    emit: &mut impl FnMut(Frame<'_>),
) {
    let data = match data.strip_suffix(b"\n") {
        Some(d) if !truncated => d,
        _ => data,
    };
    if !data.is_empty() {
        emit_counted(stats, data, truncated, emit);
    }
}

fn emit_counted(
    stats: &mut FramerStats,
    data: &[u8],
    truncated: bool,
    emit: &mut impl FnMut(Frame<'_>),
) {
    stats.messages += 1;
    stats.truncated += u64::from(truncated);
    emit(Frame { data, truncated });
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    /// Runs `input` through a framer in the given chunks; returns (message, truncated) pairs.
    fn frame_chunks(
        framing: Framing,
        max: usize,
        chunks: &[&[u8]],
    ) -> (Vec<(Vec<u8>, bool)>, FramerStats) {
        let mut f = Framer::new(framing, max);
        let mut out = Vec::new();
        let mut emit = |fr: Frame<'_>| out.push((fr.data.to_vec(), fr.truncated));
        for c in chunks {
            f.feed(c, &mut emit);
            assert!(f.pending() <= max, "held back more than max_size");
        }
        f.finish(&mut emit);
        (out, f.stats())
    }

    fn frame_all(framing: Framing, max: usize, input: &[u8]) -> Vec<(Vec<u8>, bool)> {
        frame_chunks(framing, max, &[input]).0
    }

    /// Asserts that every split into two and three pieces, and byte-by-byte feeding, give
    /// the same result as feeding the whole input at once.
    fn assert_split_invariant(framing: Framing, max: usize, input: &[u8]) {
        let (whole, whole_stats) = frame_chunks(framing, max, &[input]);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            let (got, stats) = frame_chunks(framing, max, &[a, b]);
            assert_eq!(
                got,
                whole,
                "split at {i} of {:?}",
                String::from_utf8_lossy(input)
            );
            assert_eq!(stats, whole_stats, "stats differ at split {i}");
            for j in i..=input.len() {
                let (b1, b2) = b.split_at(j - i);
                let (got, _) = frame_chunks(framing, max, &[a, b1, b2]);
                assert_eq!(got, whole, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(frame_chunks(framing, max, &bytes).0, whole, "byte by byte");
    }

    fn msgs(v: &[&str]) -> Vec<(Vec<u8>, bool)> {
        v.iter().map(|s| (s.as_bytes().to_vec(), false)).collect()
    }

    #[test]
    fn lf_lines() {
        let input = b"<13>a one\n<13>b two\n\nlast without lf";
        assert_eq!(
            frame_all(Framing::Lf, 100, input),
            msgs(&["<13>a one", "<13>b two", "last without lf"])
        );
        assert_split_invariant(Framing::Lf, 100, input);
        assert_split_invariant(Framing::Auto, 100, input);
    }

    #[test]
    fn crlf_keeps_cr() {
        assert_eq!(
            frame_all(Framing::Lf, 100, b"a\r\nb\n"),
            msgs(&["a\r", "b"])
        );
    }

    #[test]
    fn lf_line_starting_with_digit_in_auto_mode_after_first() {
        // The decision is per connection: a later line beginning with digits stays a line.
        let input = b"<13>x\n12 monkeys\n";
        assert_eq!(
            frame_all(Framing::Auto, 100, input),
            msgs(&["<13>x", "12 monkeys"])
        );
        assert_split_invariant(Framing::Auto, 100, input);
    }

    #[test]
    fn octet_counted() {
        let input = b"5 hello11 hello\nworld3 abc";
        let expect = msgs(&["hello", "hello\nworld", "abc"]);
        assert_eq!(frame_all(Framing::OctetCounted, 100, input), expect);
        assert_eq!(frame_all(Framing::Auto, 100, input), expect);
        assert_split_invariant(Framing::OctetCounted, 100, input);
        assert_split_invariant(Framing::Auto, 100, input);
    }

    #[test]
    fn octet_frame_trailing_lf_is_a_terminator() {
        let input = b"6 hello\n10 two\nlines\n1 \n3 end";
        assert_eq!(
            frame_all(Framing::OctetCounted, 100, input),
            msgs(&["hello", "two\nlines", "end"])
        );
        assert_split_invariant(Framing::OctetCounted, 100, input);
    }

    #[test]
    fn octet_counted_tolerates_newline_between_frames() {
        let input = b"5 hello\n5 world\r\n";
        assert_eq!(
            frame_all(Framing::Auto, 100, input),
            msgs(&["hello", "world"])
        );
        assert_split_invariant(Framing::Auto, 100, input);
    }

    #[test]
    fn lf_truncation_keeps_next_message() {
        let input = b"0123456789abc\nnext\n0123456789\nx";
        let (got, stats) = frame_chunks(Framing::Lf, 10, &[input]);
        assert_eq!(
            got,
            vec![
                (b"0123456789".to_vec(), true),
                (b"next".to_vec(), false),
                (b"0123456789".to_vec(), false),
                (b"x".to_vec(), false),
            ]
        );
        assert_eq!(stats.truncated, 1);
        assert_eq!(stats.messages, 4);
        assert_split_invariant(Framing::Lf, 10, input);
    }

    #[test]
    fn octet_truncation_skips_exactly() {
        let input = b"15 0123456789abcde4 next";
        let (got, stats) = frame_chunks(Framing::OctetCounted, 10, &[input]);
        assert_eq!(
            got,
            vec![(b"0123456789".to_vec(), true), (b"next".to_vec(), false)]
        );
        assert_eq!(stats.truncated, 1);
        assert_split_invariant(Framing::OctetCounted, 10, input);
    }

    #[test]
    fn malformed_count_falls_back_to_lf() {
        let input = b"5 hello12x34 junk\nafter\n";
        let (got, stats) = frame_chunks(Framing::Auto, 100, &[input]);
        assert_eq!(got, msgs(&["hello", "12x34 junk", "after"]));
        assert_eq!(stats.malformed_counts, 1);
        assert_split_invariant(Framing::Auto, 100, input);
    }

    #[test]
    fn leading_zero_and_too_many_digits_are_malformed() {
        let (got, stats) = frame_chunks(Framing::OctetCounted, 100, &[b"05 hello\n"]);
        assert_eq!(got, msgs(&["05 hello"]));
        assert_eq!(stats.malformed_counts, 1);
        let input = b"99999999999999999999 huge\n";
        let (got, stats) = frame_chunks(Framing::OctetCounted, 100, &[input]);
        assert_eq!(got, msgs(&["99999999999999999999 huge"]));
        assert_eq!(stats.malformed_counts, 1);
        assert_split_invariant(Framing::OctetCounted, 100, input);
    }

    #[test]
    fn explicit_octet_mode_with_non_digit_start_falls_back() {
        let (got, stats) = frame_chunks(Framing::OctetCounted, 100, &[b"<13>plain line\n"]);
        assert_eq!(got, msgs(&["<13>plain line"]));
        assert_eq!(stats.malformed_counts, 1);
    }

    #[test]
    fn connection_closing_mid_message() {
        let (got, stats) = frame_chunks(Framing::OctetCounted, 100, &[b"5 hello10 abc"]);
        assert_eq!(got, msgs(&["hello", "abc"]));
        assert_eq!(stats.incomplete, 1);
        let (got, stats) = frame_chunks(Framing::OctetCounted, 100, &[b"5 hello42"]);
        assert_eq!(got, msgs(&["hello", "42"]));
        assert_eq!(stats.malformed_counts, 1);
    }

    #[test]
    fn binary_junk_and_nul_bytes_pass_through() {
        let input: &[u8] = b"\x00\xff\xfe bin\x00ary\n\x80\x81\n";
        let got = frame_all(Framing::Auto, 100, input);
        assert_eq!(
            got,
            vec![
                (b"\x00\xff\xfe bin\x00ary".to_vec(), false),
                (b"\x80\x81".to_vec(), false)
            ]
        );
        assert_split_invariant(Framing::Auto, 100, input);
    }

    #[test]
    fn huge_line_memory_is_bounded() {
        let mut f = Framer::new(Framing::Lf, 1024);
        let chunk = vec![b'a'; 64 * 1024];
        let mut n = 0;
        for _ in 0..160 {
            // 10 MiB without an LF
            f.feed(&chunk, &mut |_| n += 1);
            assert!(f.pending() <= 1024);
        }
        f.feed(b"\nok\n", &mut |_| n += 1);
        assert_eq!(n, 2);
        assert_eq!(f.stats().truncated, 1);
    }

    fn lf_encode(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(m);
            out.push(b'\n');
        }
        out
    }

    fn octet_encode(msgs: &[Vec<u8>]) -> Vec<u8> {
        let mut out = Vec::new();
        for m in msgs {
            out.extend_from_slice(format!("{} ", m.len()).as_bytes());
            out.extend_from_slice(m);
        }
        out
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// LF round trip: any non-empty lines without LF come back identical (or truncated to
        /// the limit), whatever the chunking.
        #[test]
        fn prop_lf_roundtrip(
            msgs in proptest::collection::vec(
                proptest::collection::vec(any::<u8>().prop_filter("no lf", |b| *b != b'\n'), 1..40), 0..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            max in 1usize..50,
        ) {
            let input = lf_encode(&msgs);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&input[last..p]); last = p; }
            chunks.push(&input[last..]);
            let (got, _) = frame_chunks(Framing::Lf, max, &chunks);
            let expect: Vec<(Vec<u8>, bool)> = msgs.iter()
                .map(|m| (m[..m.len().min(max)].to_vec(), m.len() > max)).collect();
            prop_assert_eq!(got, expect);
        }

        /// Octet-counted round trip: arbitrary bytes, LF included, whatever the chunking, in
        /// both explicit and auto mode.
        #[test]
        fn prop_octet_roundtrip(
            msgs in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 1..60), 1..20),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
            max in 1usize..80,
            auto in any::<bool>(),
        ) {
            let input = octet_encode(&msgs);
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&input[last..p]); last = p; }
            chunks.push(&input[last..]);
            let framing = if auto { Framing::Auto } else { Framing::OctetCounted };
            let (got, stats) = frame_chunks(framing, max, &chunks);
            // One trailing LF of a whole frame is a terminator, not content.
            let expect: Vec<(Vec<u8>, bool)> = msgs.iter()
                .map(|m| match m.strip_suffix(b"\n") {
                    Some(s) if m.len() <= max => (s.to_vec(), false),
                    _ => (m[..m.len().min(max)].to_vec(), m.len() > max),
                })
                .filter(|(m, _)| !m.is_empty())
                .collect();
            prop_assert_eq!(got, expect);
            prop_assert_eq!(stats.malformed_counts, 0);
        }

        /// Arbitrary input: never panics, never holds back more than the limit, and the result
        /// does not depend on where the input is split.
        #[test]
        fn prop_any_input_split_invariant(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b' '), b'0'..=b'9', any::<u8>()], 0..120),
            split in any::<usize>(),
            max in 1usize..40,
            framing in prop_oneof![Just(Framing::Auto), Just(Framing::Lf), Just(Framing::OctetCounted)],
        ) {
            let whole = frame_chunks(framing, max, &[&input]);
            let at = split % (input.len() + 1);
            let parts = frame_chunks(framing, max, &[&input[..at], &input[at..]]);
            prop_assert_eq!(whole, parts);
        }
    }
}
