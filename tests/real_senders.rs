//! Real syslog senders into our forwarder: rsyslog's omfwd over TCP (LF and octet-counted
//! framing) and util-linux `logger`. The forwarder runs with its default `--framing auto`.
//!
//! Facts these tests rely on (rsyslog 8.2302, util-linux 2.38 logger):
//! - omfwd with `TCP_Framing="traditional"` appends an LF unless the template already ends with
//!   one (RSYSLOG_SyslogProtocol23Format does; RSYSLOG_ForwardFormat does not).
//! - omfwd with `TCP_Framing="octet-counted"` puts the template output as is inside the frame,
//!   so RSYSLOG_SyslogProtocol23Format's trailing LF is *inside* the counted frame.
//! - `logger -T` sends `<13>1 TIMESTAMP HOST TAG - - [timeQuality ...] MSG` + LF; with
//!   `--octet-count` it sends `LEN SP MSG` without LF, and an LF inside MSG is sent as is.

use std::fmt::Write as _;
use std::path::{Path, PathBuf};

use crate::common::*;

const BURST: usize = 10_000;

fn rsyslogd_or_skip() -> Option<PathBuf> {
    peer_or_skip("rsyslogd (Debian package rsyslog)", rsyslogd())
}

fn logger_or_skip() -> Option<PathBuf> {
    peer_or_skip("logger (util-linux, Debian package bsdutils)", logger())
}

/// What rsyslog's imtcp receives: RFC 3164 lines, each with its sequence number.
fn burst_input(n: usize) -> Vec<u8> {
    let mut text = String::with_capacity(n * 48);
    for seq in 0..n {
        writeln!(text, "<13>Nov 23 18:48:41 myhost seqapp: seq={seq:06}").unwrap();
    }
    text.into_bytes()
}

/// The sequence number of a delivered line that contains `header` and exactly one `seq=NNNNNN`,
/// at its very end; `trailing` is the one suffix allowed after the number.
fn parse_seq(line: &[u8], header: &[u8], trailing: &[u8]) -> Option<usize> {
    let line = line.strip_suffix(trailing).unwrap_or(line);
    if !contains(line, header) || line.windows(4).filter(|w| *w == b"seq=").count() != 1 {
        return None;
    }
    let digits = line.get(line.len().checked_sub(6)?..)?;
    if line[..line.len() - 6].ends_with(b"seq=") && digits.iter().all(u8::is_ascii_digit) {
        std::str::from_utf8(digits).ok()?.parse().ok()
    } else {
        None
    }
}

/// Every sequence number 0..n exactly once, and nothing else.
fn assert_complete_burst(lines: &[Vec<u8>], n: usize, parse: impl Fn(&[u8]) -> Option<usize>) {
    let mut seen = vec![0u32; n];
    let mut malformed = Vec::new();
    for line in lines {
        match parse(line) {
            Some(seq) if seq < n => seen[seq] += 1,
            _ => malformed.push(show(line)),
        }
    }
    let missing: Vec<usize> = (0..n).filter(|&s| seen[s] == 0).collect();
    let duplicated: Vec<usize> = (0..n).filter(|&s| seen[s] > 1).collect();
    assert!(
        malformed.is_empty() && missing.is_empty() && duplicated.is_empty(),
        "{} lines for {n} messages: {} malformed (first: {:?}), {} missing (first: {:?}), \
         {} duplicated (first: {:?})",
        lines.len(),
        malformed.len(),
        &malformed[..malformed.len().min(5)],
        missing.len(),
        &missing[..missing.len().min(10)],
        duplicated.len(),
        &duplicated[..duplicated.len().min(10)],
    );
    assert_eq!(lines.len(), n);
}

/// rsyslog -> our pipeline with `framing` and `template`; returns the delivered lines once all
/// `BURST` messages (or more) are in and a barrier has passed.
fn rsyslog_burst(
    rsyslogd: &Path,
    dir: &Path,
    framing: RsyslogFraming,
    template: &str,
) -> Vec<Vec<u8>> {
    let pipeline = Pipeline::start(dir, None, &[]);
    let rsyslog = Rsyslog::start(rsyslogd, dir, pipeline.backend_port(), framing, template);
    send_tcp(rsyslog.input_port, &burst_input(BURST));

    let mut procs = pipeline.procs().to_vec();
    procs.push(&rsyslog.proc);
    wait_for_line_count(pipeline.out(), BURST, DELIVERY_TIMEOUT, &procs);
    pipeline.barrier()
}

/// rsyslog omfwd, LF ("traditional") framing, RFC 5424 template: every message of a burst
/// arrives exactly once, whole.
#[test]
fn rsyslog_lf_framing_burst_arrives_complete() {
    let Some(rsyslogd) = rsyslogd_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = rsyslog_burst(
        &rsyslogd,
        tmp.path(),
        RsyslogFraming::Traditional,
        RSYSLOG_RFC5424,
    );
    // `<13>1 2026-11-23T18:48:41+00:00 myhost seqapp - - -  seq=000042`
    assert_complete_burst(&got, BURST, |l| {
        l.starts_with(b"<13>1 ")
            .then(|| parse_seq(l, b" myhost seqapp - - - ", b""))
            .flatten()
    });
}

/// rsyslog omfwd, octet-counted framing, forward (RFC 3164 style) template: every message of a
/// burst arrives exactly once, whole.
#[test]
fn rsyslog_octet_counted_burst_arrives_complete() {
    let Some(rsyslogd) = rsyslogd_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = rsyslog_burst(
        &rsyslogd,
        tmp.path(),
        RsyslogFraming::OctetCounted,
        RSYSLOG_FORWARD,
    );
    // `<13>2026-11-23T18:48:41+00:00 myhost seqapp: seq=000042`
    assert_complete_burst(&got, BURST, |l| {
        l.starts_with(b"<13>")
            .then(|| parse_seq(l, b" myhost seqapp: ", b""))
            .flatten()
    });
}

/// rsyslog omfwd, octet-counted framing, stock RFC 5424 template, whose LF ends up inside each
/// counted frame: still one message per frame, none lost or split. Whether that LF is kept
/// (`#012` in the file worker) or dropped is not specified, so either is accepted here.
#[test]
fn rsyslog_octet_counted_rfc5424_burst_arrives_complete() {
    let Some(rsyslogd) = rsyslogd_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = rsyslog_burst(
        &rsyslogd,
        tmp.path(),
        RsyslogFraming::OctetCounted,
        RSYSLOG_RFC5424,
    );
    assert_complete_burst(&got, BURST, |l| {
        l.starts_with(b"<13>1 ")
            .then(|| parse_seq(l, b" myhost seqapp - - - ", b"#012"))
            .flatten()
    });
}

/// Runs `logger -T -n 127.0.0.1 -P PORT -t app [extra...] MESSAGE` into a fresh pipeline and
/// returns everything delivered.
fn logger_into_pipeline(
    logger: &Path,
    dir: &Path,
    extra: &[&str],
    message: &str,
    expect: usize,
) -> Vec<Vec<u8>> {
    let pipeline = Pipeline::start(dir, None, &[]);
    let port = pipeline.backend_port().to_string();
    let mut args = vec!["-T", "-n", "127.0.0.1", "-P", &port, "-t", "app"];
    args.extend_from_slice(extra);
    args.push(message);
    run_logger(logger, dir, "logger", &args);
    pipeline.wait_for_lines(expect, DELIVERY_TIMEOUT);
    pipeline.barrier()
}

/// A message as logger sends it: `<13>1 TIMESTAMP HOST app - - [timeQuality ...] MSG`.
fn assert_logger_message(line: &[u8], text: &str) {
    assert!(
        line.starts_with(b"<13>1 ")
            && contains(line, b" app - - ")
            && line.ends_with(format!("] {text}").as_bytes()),
        "unexpected message {:?} (wanted logger's `<13>1 ... app - - [...] {text}`)",
        show(line)
    );
}

/// Exactly one message arrived, and it is logger's with `text`.
fn assert_only_logger_message(got: &[Vec<u8>], text: &str) {
    assert_eq!(
        got.len(),
        1,
        "one message expected, got {:?}",
        got.iter().map(|l| show(l)).collect::<Vec<_>>()
    );
    assert_logger_message(&got[0], text);
}

#[test]
fn logger_lf_framed_message_arrives() {
    let Some(logger) = logger_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = logger_into_pipeline(&logger, tmp.path(), &[], "hello over lf framing", 1);
    assert_only_logger_message(&got, "hello over lf framing");
}

#[test]
fn logger_octet_counted_message_arrives() {
    let Some(logger) = logger_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = logger_into_pipeline(
        &logger,
        tmp.path(),
        &["--octet-count"],
        "hello octet counted",
        1,
    );
    assert_only_logger_message(&got, "hello octet counted");
}

/// Octet counting carries an LF inside a message: it stays one message, and the `file` worker
/// writes the LF as `#012`.
#[test]
fn logger_octet_counted_message_with_lf_stays_one_message() {
    let Some(logger) = logger_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = logger_into_pipeline(
        &logger,
        tmp.path(),
        &["--octet-count"],
        "first part\nsecond part",
        1,
    );
    assert_only_logger_message(&got, "first part#012second part");
}

/// LF framing ends a message at the LF: logger's embedded LF makes two messages, the second one
/// a bare (non-syslog) line.
#[test]
fn logger_lf_framed_message_with_lf_is_two_messages() {
    let Some(logger) = logger_or_skip() else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let got = logger_into_pipeline(&logger, tmp.path(), &[], "first part\nsecond part", 2);
    assert_eq!(
        got.len(),
        2,
        "two messages expected, got {:?}",
        got.iter().map(|l| show(l)).collect::<Vec<_>>()
    );
    assert_logger_message(&got[0], "first part");
    assert_eq!(show(&got[1]), "second part");
}
