//! RELP, rsyslog's Reliable Event Logging Protocol: frames, responses and the offers of the
//! `open` command, with no I/O (librelp's `doc/relp.md` is the specification; where the two
//! differ, this follows what librelp does on the wire).
//!
//! A frame is `TXNR SP COMMAND SP DATALEN [SP DATA] LF`:
//! - TXNR: 1 to 9 digits (0 is for hints such as `serverclose`; leading zeros are accepted,
//!   as librelp does);
//! - COMMAND: 1 to 32 ASCII letters (`open`, `syslog`, `close`, `rsp`, `serverclose`);
//! - DATALEN: 1 to 9 digits, the length of DATA. When it is 0 there is neither the SP nor
//!   data: the LF follows the digits at once. A stray SP there (`1 close 0 \n`) is rejected,
//!   as librelp rejects it (its frame is invalid and it drops the session), and so is an
//!   empty DATALEN (`1 close \n`), which librelp reads as 0 but the specification forbids.
//!
//! [`parse`] looks at a buffer holding the start of a connection's unread bytes: it returns
//! one whole frame and how many bytes it took, or [`Parsed::Incomplete`] when the buffer ends
//! before the frame does. It never reads past what it needs, so the caller keeps the rest for
//! the next call, and the result does not depend on where the stream was split: a prefix of
//! a valid frame is `Incomplete`, and an error is reported as soon as the bytes show it, the
//! same error whatever follows. An error is fatal for the connection (librelp closes it).
//!
//! The data of an `rsp` is `CODE SP TEXT [LF EXTRA]` ([`write_rsp`], [`split_rsp`]): 200 is
//! success, anything else a failure; `open`'s response carries the server's offers as its
//! extra data ([`our_open_response`]).

use std::fmt::Write as _;

/// The largest transaction number: the one after it is 1 ([`next_txnr`]).
pub const MAX_TXNR: u32 = 999_999_999;

/// librelp's default (and, in protocol version 0, fixed) maximum data length: 128 KiB.
pub const DEFAULT_MAX_DATA: usize = 128 * 1024;

/// The longest command name.
pub const MAX_COMMAND: usize = 32;

/// Digits of TXNR and DATALEN, at most.
const MAX_DIGITS: usize = 9;

/// The protocol version we speak: 0, as every librelp does (`RELP_CURR_PROTOCOL_VERSION`).
pub const RELP_VERSION: u32 = 0;

/// Our `relp_software` offer: name, version and URL, as librelp gives its own.
pub const SOFTWARE: &str = concat!(
    "zerolog,",
    env!("CARGO_PKG_VERSION"),
    ",https://example.org/zerolog"
);

/// One RELP frame, borrowed from the input buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct RelpFrame<'a> {
    /// The transaction number (0 for a hint).
    pub txnr: u32,
    /// The command: 1 to 32 ASCII letters.
    pub command: &'a [u8],
    /// The data, DATALEN bytes (empty when DATALEN is 0).
    pub data: &'a [u8],
}

/// What [`parse`] found at the start of the buffer.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Parsed<'a> {
    /// A whole frame, and the number of bytes it took (its trailing LF included).
    Frame(RelpFrame<'a>, usize),
    /// The buffer ends before the frame does: call again with more bytes.
    Incomplete,
}

/// Why a frame, or an `open`, is refused. Each one ends the session.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum RelpError {
    /// The frame does not start with 1 to 9 digits and a space.
    #[error("RELP frame: the transaction number is not 1 to 9 digits followed by a space")]
    BadTxnr,
    /// The transaction number is not followed by 1 to 32 letters and a space.
    #[error("RELP frame: the command is not 1 to 32 ASCII letters followed by a space")]
    BadCommand,
    /// The command is not followed by 1 to 9 digits, then a space (or, for 0, the LF).
    #[error(
        "RELP frame: the data length is not 1 to 9 digits followed by a space before the data"
    )]
    BadLength,
    /// DATALEN is over the maximum.
    #[error("RELP frame: {len} bytes of data, over the maximum of {max}")]
    TooLong {
        /// DATALEN, as given.
        len: usize,
        /// The maximum.
        max: usize,
    },
    /// The byte after the data (or after a DATALEN of 0) is not LF.
    #[error("RELP frame: no LF after the data")]
    MissingTrailer,
    /// The client's `open` has no numeric `relp_version` offer.
    #[error("RELP open: no relp_version offer with a numeric value")]
    NoVersion,
    /// The client's `open` does not offer the `syslog` command.
    #[error("RELP open: required command syslog not offered by the client")]
    NoSyslog,
}

/// Parses the frame at the start of `buf`, whose data may be `max_data` bytes at most.
///
/// ```
/// use zerolog_proto::relp::{parse, Parsed, RelpFrame};
///
/// let buf = b"2 syslog 5 hello\n3 clo";
/// let Ok(Parsed::Frame(frame, used)) = parse(buf, 1024) else { panic!() };
/// assert_eq!(frame, RelpFrame { txnr: 2, command: b"syslog", data: b"hello" });
/// assert_eq!(parse(&buf[used..], 1024), Ok(Parsed::Incomplete));
/// ```
pub fn parse(buf: &[u8], max_data: usize) -> Result<Parsed<'_>, RelpError> {
    let Some(txnr_end) = field(buf, 0, MAX_DIGITS, u8::is_ascii_digit, RelpError::BadTxnr)? else {
        return Ok(Parsed::Incomplete);
    };
    expect(buf[txnr_end], b' ', RelpError::BadTxnr)?;
    let cmd_start = txnr_end + 1;
    let Some(cmd_end) = field(
        buf,
        cmd_start,
        MAX_COMMAND,
        u8::is_ascii_alphabetic,
        RelpError::BadCommand,
    )?
    else {
        return Ok(Parsed::Incomplete);
    };
    expect(buf[cmd_end], b' ', RelpError::BadCommand)?;
    let len_start = cmd_end + 1;
    let Some(len_end) = field(
        buf,
        len_start,
        MAX_DIGITS,
        u8::is_ascii_digit,
        RelpError::BadLength,
    )?
    else {
        return Ok(Parsed::Incomplete);
    };
    let len = decimal(&buf[len_start..len_end]);
    // DATALEN 0: no SP and no data, the trailer comes at once (librelp checks it as such).
    let data_start = if len == 0 {
        len_end
    } else {
        expect(buf[len_end], b' ', RelpError::BadLength)?;
        if len > max_data {
            return Err(RelpError::TooLong { len, max: max_data });
        }
        len_end + 1
    };
    let trailer = data_start + len;
    let Some(&last) = buf.get(trailer) else {
        return Ok(Parsed::Incomplete);
    };
    expect(last, b'\n', RelpError::MissingTrailer)?;
    let frame = RelpFrame {
        txnr: decimal(&buf[..txnr_end]) as u32,
        command: &buf[cmd_start..cmd_end],
        data: &buf[data_start..trailer],
    };
    Ok(Parsed::Frame(frame, trailer + 1))
}

/// The end of the run of 1 to `max` bytes matching `want` that starts at `start`: `None` when
/// the buffer ends inside it (it may go on), an error when it is empty or too long.
fn field(
    buf: &[u8],
    start: usize,
    max: usize,
    want: fn(&u8) -> bool,
    err: RelpError,
) -> Result<Option<usize>, RelpError> {
    let rest = &buf[start..];
    let n = rest.iter().take(max + 1).take_while(|b| want(b)).count();
    if n > max {
        Err(err)
    } else if n == rest.len() {
        Ok(None)
    } else if n == 0 {
        Err(err)
    } else {
        Ok(Some(start + n))
    }
}

fn expect(got: u8, want: u8, err: RelpError) -> Result<(), RelpError> {
    if got == want {
        Ok(())
    } else {
        Err(err)
    }
}

/// The value of at most 9 ASCII digits.
fn decimal(digits: &[u8]) -> usize {
    digits.iter().fold(0, |v, d| v * 10 + usize::from(d - b'0'))
}

/// The transaction number after `txnr`: 1 after [`MAX_TXNR`], as the specification says
/// (librelp itself goes on to 1,000,000,000, which it cannot send, and drops the session).
pub fn next_txnr(txnr: u32) -> u32 {
    if txnr >= MAX_TXNR {
        1
    } else {
        txnr + 1
    }
}

/// Appends a frame's header to `out`: `TXNR SP COMMAND SP DATALEN`, and the SP before the data
/// when `datalen` is not 0. The caller appends the `datalen` bytes of data, then LF. This is
/// [`write_frame`] for data that is built in place rather than copied.
pub fn write_head(out: &mut Vec<u8>, txnr: u32, command: &str, datalen: usize) {
    debug_assert!(txnr <= MAX_TXNR, "txnr {txnr} has more than 9 digits");
    debug_assert!(
        (1..=MAX_COMMAND).contains(&command.len())
            && command.bytes().all(|b| b.is_ascii_alphabetic()),
        "bad RELP command {command:?}"
    );
    push_decimal(out, txnr as usize);
    out.push(b' ');
    out.extend_from_slice(command.as_bytes());
    out.push(b' ');
    push_decimal(out, datalen);
    if datalen > 0 {
        out.push(b' ');
    }
}

/// Appends a whole frame to `out`, e.g. `0 serverclose 0\n` or `1 open 14 relp_version=0\n`.
pub fn write_frame(out: &mut Vec<u8>, txnr: u32, command: &str, data: &[u8]) {
    write_head(out, txnr, command, data.len());
    out.extend_from_slice(data);
    out.push(b'\n');
}

/// Appends an `rsp` frame for `txnr` to `out`, whose data is `CODE SP TEXT`, then, when
/// `extra` is not empty, LF and `extra`: `6 rsp 6 200 OK\n` for `(6, 200, "OK", b"")`.
/// `text` must not hold an LF (librelp reads 80 bytes of it at most).
pub fn write_rsp(out: &mut Vec<u8>, txnr: u32, code: u16, text: &str, extra: &[u8]) {
    debug_assert!(!text.contains('\n'), "LF in RELP response text {text:?}");
    let mut head = String::with_capacity(8 + text.len());
    let _ = write!(head, "{code} {text}");
    let extra_len = if extra.is_empty() { 0 } else { 1 + extra.len() };
    write_head(out, txnr, "rsp", head.len() + extra_len);
    out.extend_from_slice(head.as_bytes());
    if !extra.is_empty() {
        out.push(b'\n');
        out.extend_from_slice(extra);
    }
    out.push(b'\n');
}

/// The code and text of an `rsp`'s data: `(200, b"OK")` for `200 OK`. `None` when it does not
/// start with 3 digits and a space (librelp's reading): `close`'s response from librelp is
/// empty, and so `None`.
pub fn parse_rsp(data: &[u8]) -> Option<(u16, &[u8])> {
    split_rsp(data).map(|(code, text, _)| (code, text))
}

/// An `rsp`'s data split into code, text and the extra data after the first LF (empty if
/// none): `open`'s response carries the server's offers there.
pub fn split_rsp(data: &[u8]) -> Option<(u16, &[u8], &[u8])> {
    let (code, rest) = data.split_first_chunk::<3>()?;
    let rest = rest.strip_prefix(b" ")?;
    if !code.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let code = decimal(code) as u16;
    Some(match memchr::memchr(b'\n', rest) {
        Some(lf) => (code, &rest[..lf], &rest[lf + 1..]),
        None => (code, rest, &[][..]),
    })
}

/// The offers of an `open` (from the client) or of its response (from the server): lines of
/// `NAME=VALUE[,VALUE...]`. Those zerolog has no use for are ignored, as librelp does.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Offers<'a> {
    /// `relp_version`'s value, when given and a number.
    pub relp_version: Option<u32>,
    /// `relp_software`'s value as given: `NAME[,VERSION[,URL]]`.
    pub relp_software: Option<&'a [u8]>,
    /// `commands`'s values: `syslog` for rsyslog.
    pub commands: Vec<&'a [u8]>,
}

impl Offers<'_> {
    /// Whether `commands` names `command`.
    pub fn has_command(&self, command: &[u8]) -> bool {
        self.commands.contains(&command)
    }
}

/// Parses the offers in `data`, one per LF-separated line (empty lines and empty values are
/// skipped; a `relp_version` that is not a number counts as none).
pub fn parse_offers(data: &[u8]) -> Offers<'_> {
    let mut offers = Offers::default();
    for line in data.split(|&b| b == b'\n') {
        let (name, value) = match memchr::memchr(b'=', line) {
            Some(eq) => (&line[..eq], &line[eq + 1..]),
            None => (line, &[][..]),
        };
        let mut values = value.split(|&b| b == b',').filter(|v| !v.is_empty());
        match name {
            b"relp_version" => offers.relp_version = values.next().and_then(version),
            b"relp_software" => offers.relp_software = Some(value),
            b"commands" => offers.commands.extend(values),
            _ => {}
        }
    }
    offers
}

fn version(v: &[u8]) -> Option<u32> {
    let ok = (1..=MAX_DIGITS).contains(&v.len()) && v.iter().all(u8::is_ascii_digit);
    ok.then(|| decimal(v) as u32)
}

/// The data of our `rsp` to a client's `open` with offers `client`:
/// `200 OK\nrelp_version=0\nrelp_software=zerolog,VERSION,URL\ncommands=syslog`, in librelp's
/// order and separation (one offer a line, no LF at the end). Refused (answer with
/// `write_rsp(out, txnr, 500, &err.to_string(), b"")`, then close) when the client gives no
/// numeric `relp_version` (the specification requires it) or does not offer `syslog`
/// (librelp's server refuses that too).
pub fn our_open_response(client: &Offers<'_>) -> Result<Vec<u8>, RelpError> {
    // Whatever the client's version, ours is the answer: the lowest there is, the one every
    // librelp speaks (a newer client must then use it).
    client.relp_version.ok_or(RelpError::NoVersion)?;
    if !client.has_command(b"syslog") {
        return Err(RelpError::NoSyslog);
    }
    Ok(
        format!("200 OK\nrelp_version={RELP_VERSION}\nrelp_software={SOFTWARE}\ncommands=syslog")
            .into_bytes(),
    )
}

/// Appends the decimal digits of `n`.
fn push_decimal(out: &mut Vec<u8>, mut n: usize) {
    let mut buf = [0u8; 20];
    let mut at = buf.len();
    loop {
        at -= 1;
        buf[at] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            break;
        }
    }
    out.extend_from_slice(&buf[at..]);
}

#[cfg(test)]
mod tests {
    use super::*;
    use proptest::prelude::*;

    type Owned = (u32, Vec<u8>, Vec<u8>);

    /// Feeds `chunks` to a reader that keeps what it has not parsed, as a connection does;
    /// returns the frames and the error that ended the stream, if any.
    fn read_chunks(chunks: &[&[u8]], max: usize) -> (Vec<Owned>, Option<RelpError>) {
        let mut pending = Vec::new();
        let mut frames = Vec::new();
        for chunk in chunks {
            pending.extend_from_slice(chunk);
            loop {
                match parse(&pending, max) {
                    Ok(Parsed::Frame(f, used)) => {
                        assert!(used <= pending.len());
                        frames.push((f.txnr, f.command.to_vec(), f.data.to_vec()));
                        pending.drain(..used);
                    }
                    Ok(Parsed::Incomplete) => break,
                    Err(e) => return (frames, Some(e)),
                }
            }
        }
        (frames, None)
    }

    /// Every split in two and in three, and byte by byte, give what the whole does.
    fn assert_split_invariant(input: &[u8], max: usize) -> (Vec<Owned>, Option<RelpError>) {
        let whole = read_chunks(&[input], max);
        for i in 0..=input.len() {
            let (a, b) = input.split_at(i);
            assert_eq!(read_chunks(&[a, b], max), whole, "split at {i}");
            for j in i..=input.len() {
                let (b1, b2) = b.split_at(j - i);
                assert_eq!(read_chunks(&[a, b1, b2], max), whole, "split at {i},{j}");
            }
        }
        let bytes: Vec<&[u8]> = input.chunks(1).collect();
        assert_eq!(read_chunks(&bytes, max), whole, "byte by byte");
        whole
    }

    fn owned(txnr: u32, command: &str, data: &[u8]) -> Owned {
        (txnr, command.as_bytes().to_vec(), data.to_vec())
    }

    #[test]
    fn relp_every_split_gives_the_same_frames() {
        let input = b"1 open 46 relp_version=0\nrelp_software=x\ncommands=syslog\n\
            2 syslog 9 <13>a\nb \n\n3 close 0\n0 serverclose 0\n";
        let (frames, err) = assert_split_invariant(input, 1024);
        assert_eq!(err, None);
        assert_eq!(
            frames,
            [
                owned(
                    1,
                    "open",
                    b"relp_version=0\nrelp_software=x\ncommands=syslog"
                ),
                owned(2, "syslog", b"<13>a\nb \n"),
                owned(3, "close", b""),
                owned(0, "serverclose", b""),
            ]
        );
    }

    #[test]
    fn relp_zero_length_data() {
        assert_eq!(
            parse(b"7 close 0\nrest", 10),
            Ok(Parsed::Frame(
                RelpFrame {
                    txnr: 7,
                    command: b"close",
                    data: b""
                },
                10
            ))
        );
        assert_eq!(parse(b"7 close 0", 10), Ok(Parsed::Incomplete));
        // Leading zeros, as librelp reads them.
        let Ok(Parsed::Frame(f, 14)) = parse(b"007 close 000\n", 10) else {
            panic!()
        };
        assert_eq!((f.txnr, f.data), (7, &b""[..]));
        // librelp rejects a space after a length of 0, and so do we; no length at all either.
        assert_eq!(parse(b"7 close 0 \n", 10), Err(RelpError::MissingTrailer));
        assert_eq!(parse(b"7 close \n", 10), Err(RelpError::BadLength));
        assert_eq!(parse(b"7 close 0x", 10), Err(RelpError::MissingTrailer));
    }

    #[test]
    fn relp_max_length_and_oversize() {
        let frame = |n: usize| {
            let mut f = Vec::new();
            write_frame(&mut f, 5, "syslog", &vec![b'x'; n]);
            f
        };
        let at_max = frame(100);
        let Ok(Parsed::Frame(f, used)) = parse(&at_max, 100) else {
            panic!()
        };
        assert_eq!((f.data.len(), used), (100, at_max.len()));
        let over = frame(101);
        let err = RelpError::TooLong { len: 101, max: 100 };
        // Known from the header alone, before any data has come.
        assert_eq!(parse(&over[..13], 100), Err(err.clone()));
        assert_eq!(parse(&over[..12], 100), Ok(Parsed::Incomplete));
        assert_eq!(assert_split_invariant(&over, 100).1, Some(err.clone()));
        assert_eq!(
            err.to_string(),
            "RELP frame: 101 bytes of data, over the maximum of 100"
        );
        // 9 digits of length are fine (and too long for any maximum); 10 are not.
        assert_eq!(
            parse(b"1 syslog 999999999 ", usize::MAX),
            Ok(Parsed::Incomplete)
        );
        assert_eq!(
            parse(b"1 syslog 1000000000", usize::MAX),
            Err(RelpError::BadLength)
        );
    }

    #[test]
    fn relp_bad_txnr() {
        for bad in [
            &b"x 1 syslog"[..],
            b" 1 syslog",
            b"1x syslog",
            b"1234567890 syslog",
            b"1\n",
        ] {
            assert_eq!(parse(bad, 10), Err(RelpError::BadTxnr), "{bad:?}");
            assert_eq!(assert_split_invariant(bad, 10).1, Some(RelpError::BadTxnr));
        }
        assert_eq!(parse(b"123456789", 10), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"", 10), Ok(Parsed::Incomplete));
    }

    #[test]
    fn relp_bad_command() {
        let long = format!("1 {} 0\n", "a".repeat(33));
        let ok = format!("1 {} 0\n", "a".repeat(32));
        for bad in [
            &b"1  0\n"[..],
            b"1 sys1og 0\n",
            b"1 syslog\n",
            long.as_bytes(),
        ] {
            assert_eq!(parse(bad, 10), Err(RelpError::BadCommand), "{bad:?}");
            assert_split_invariant(bad, 10);
        }
        assert!(matches!(parse(ok.as_bytes(), 10), Ok(Parsed::Frame(_, _))));
    }

    #[test]
    fn relp_missing_trailer() {
        assert_eq!(
            parse(b"2 syslog 3 abcd\n", 10),
            Err(RelpError::MissingTrailer)
        );
        assert_eq!(parse(b"2 syslog 3 abc", 10), Ok(Parsed::Incomplete));
        assert_eq!(parse(b"2 syslog 3\nabc\n", 10), Err(RelpError::BadLength));
        let input = b"1 syslog 2 ok\n2 syslog 3 abc\r\n";
        let (frames, err) = assert_split_invariant(input, 10);
        assert_eq!(frames, [owned(1, "syslog", b"ok")]);
        assert_eq!(err, Some(RelpError::MissingTrailer));
    }

    #[test]
    fn relp_responses() {
        let mut out = Vec::new();
        write_rsp(&mut out, 6, 200, "OK", b"");
        assert_eq!(out, b"6 rsp 6 200 OK\n");
        out.clear();
        write_rsp(&mut out, 1, 200, "OK", b"relp_version=0");
        assert_eq!(out, b"1 rsp 21 200 OK\nrelp_version=0\n");
        let Ok(Parsed::Frame(f, _)) = parse(&out, 100) else {
            panic!()
        };
        assert_eq!(
            split_rsp(f.data),
            Some((200, &b"OK"[..], &b"relp_version=0"[..]))
        );
        assert_eq!(
            parse_rsp(b"500 command disabled"),
            Some((500, &b"command disabled"[..]))
        );
        assert_eq!(parse_rsp(b"200 "), Some((200, &b""[..])));
        for bad in [&b""[..], b"200", b"200OK", b"2x0 OK", b"20 OK"] {
            assert_eq!(parse_rsp(bad), None, "{bad:?}");
        }
        out.clear();
        write_frame(&mut out, 0, "serverclose", b"");
        assert_eq!(out, b"0 serverclose 0\n");
        assert_eq!(next_txnr(1), 2);
        assert_eq!(next_txnr(MAX_TXNR), 1);
    }

    #[test]
    fn relp_offers_and_our_answer() {
        // rsyslog's omrelp, as librelp builds it.
        let rsyslog = b"relp_version=0\nrelp_software=librelp,1.10.0,http://librelp.adiscon.com\ncommands=syslog";
        let offers = parse_offers(rsyslog);
        assert_eq!(offers.relp_version, Some(0));
        assert_eq!(
            offers.relp_software,
            Some(&b"librelp,1.10.0,http://librelp.adiscon.com"[..])
        );
        assert!(offers.has_command(b"syslog"));
        let answer = our_open_response(&offers).unwrap();
        let want = format!(
            "200 OK\nrelp_version=0\nrelp_software=zerolog,{},https://example.org/zerolog\ncommands=syslog",
            env!("CARGO_PKG_VERSION")
        );
        assert_eq!(answer, want.as_bytes());
        let (code, _, extra) = split_rsp(&answer).unwrap();
        assert_eq!((code, parse_offers(extra).relp_version), (200, Some(0)));
        // A newer client gets our version; extra lines and offers are ignored.
        let newer = parse_offers(b"\nrelp_version=1\nfoo=bar,baz\ncommands=,eventlog,syslog\n");
        assert_eq!(newer.commands, [&b"eventlog"[..], b"syslog"]);
        assert!(our_open_response(&newer)
            .unwrap()
            .starts_with(b"200 OK\nrelp_version=0\n"));
        assert_eq!(
            our_open_response(&parse_offers(b"relp_version=x\ncommands=syslog")),
            Err(RelpError::NoVersion)
        );
        assert_eq!(
            our_open_response(&parse_offers(b"relp_version=0\ncommands=eventlog")),
            Err(RelpError::NoSyslog)
        );
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(1000))]

        /// Frames written with write_frame come back identical, whatever the chunking.
        #[test]
        fn prop_relp_roundtrip(
            frames in proptest::collection::vec(
                (0u32..=MAX_TXNR, "[a-zA-Z]{1,32}", proptest::collection::vec(any::<u8>(), 0..80)),
                0..12),
            cuts in proptest::collection::vec(any::<usize>(), 0..6),
        ) {
            let mut input = Vec::new();
            for (txnr, command, data) in &frames {
                write_frame(&mut input, *txnr, command, data);
            }
            let mut points: Vec<usize> = cuts.iter().map(|c| c % (input.len() + 1)).collect();
            points.sort_unstable();
            let mut chunks = Vec::new();
            let mut last = 0;
            for p in points { chunks.push(&input[last..p]); last = p; }
            chunks.push(&input[last..]);
            let want: Vec<Owned> = frames.iter()
                .map(|(t, c, d)| (*t, c.as_bytes().to_vec(), d.clone())).collect();
            prop_assert_eq!(read_chunks(&chunks, 80), (want, None));
        }

        /// Arbitrary input: never panics, and the result does not depend on the split.
        #[test]
        fn prop_relp_any_input_split_invariant(
            input in proptest::collection::vec(
                prop_oneof![Just(b'\n'), Just(b' '), b'0'..=b'9', b'a'..=b'z', any::<u8>()], 0..80),
            split in any::<usize>(),
            max in 0usize..20,
        ) {
            let at = split % (input.len() + 1);
            prop_assert_eq!(
                read_chunks(&[&input], max),
                read_chunks(&[&input[..at], &input[at..]], max)
            );
        }
    }
}
