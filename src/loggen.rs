//! A load generator for syslog pipelines, like syslog-ng's loggen: RFC 5424 or RFC 3164 lines
//! with an app-name and a per-connection sequence number (`seq=CONN.N`), over TCP (LF or
//! octet-counted framing) or UDP, from N parallel connections, as fast as possible or at a
//! target rate, for a count or a duration.

use std::io::Write;
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use zerolog::Error;

/// Line format.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum LineFormat {
    /// RFC 5424: `<PRI>1 TIMESTAMP HOST APP PROCID MSGID SD MSG`.
    Rfc5424,
    /// RFC 3164 (BSD syslog): `<PRI>TIMESTAMP HOST TAG: MSG`.
    Rfc3164,
}

impl std::str::FromStr for LineFormat {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "rfc5424" | "5424" => Ok(LineFormat::Rfc5424),
            "rfc3164" | "3164" => Ok(LineFormat::Rfc3164),
            other => Err(format!(
                "unknown format '{other}': expected rfc5424 or rfc3164"
            )),
        }
    }
}

/// What to send.
#[derive(Debug, Clone)]
pub struct LoggenConfig {
    /// Where to send (the forwarder's input).
    pub target: SocketAddr,
    /// Send UDP datagrams instead of TCP.
    pub udp: bool,
    /// Octet counting instead of LF framing (TCP only).
    pub octet_counted: bool,
    /// Size of each message in bytes, framing excluded (at least the header's size).
    pub size: usize,
    /// Messages to send in all (split across connections); `None` with a duration.
    pub count: Option<u64>,
    /// How long to send, instead of a message count.
    pub duration: Option<Duration>,
    /// Messages per second in all; 0 = as fast as possible.
    pub rate: u64,
    /// TCP connections (or UDP sockets) to send on in parallel.
    pub connections: usize,
    /// Format of the generated lines.
    pub format: LineFormat,
    /// APP-NAME (or TAG) of the generated lines.
    pub app: String,
}

/// What was sent.
#[derive(Debug, Clone, Default, serde::Serialize)]
pub struct LoggenReport {
    /// Messages sent.
    pub messages: u64,
    /// Bytes sent, framing included.
    pub bytes: u64,
    /// Wall-clock time of the run, in seconds.
    pub seconds: f64,
    /// Messages per second over the run.
    pub messages_per_s: f64,
    /// Megabytes (10^6 bytes) per second over the run.
    pub mb_per_s: f64,
    /// Connections used.
    pub connections: usize,
}

/// Builds message `seq` of connection `conn`, `size` bytes long (padded with a repeating
/// printable pattern), into `out` (cleared first).
pub fn make_message(
    format: LineFormat,
    app: &str,
    conn: usize,
    seq: u64,
    size: usize,
    out: &mut Vec<u8>,
) {
    out.clear();
    LineMaker::new(format, app, conn).append(seq, size, out);
}

/// Makes the lines of one connection. Everything before the sequence number is the same on
/// every line, so it is formatted once: per line, only the number is written and the padding
/// copied (formatting each line with `write!` was half of loggen's CPU).
pub struct LineMaker {
    /// The line up to and including `seq=CONN.`.
    head: Vec<u8>,
}

impl LineMaker {
    /// The lines of connection `conn`.
    pub fn new(format: LineFormat, app: &str, conn: usize) -> Self {
        let head = match format {
            LineFormat::Rfc5424 => {
                format!("<134>1 2026-11-23T10:00:00.000000Z loggen {app} {conn} - - seq={conn}.")
            }
            LineFormat::Rfc3164 => {
                format!("<134>Nov 23 10:00:00 loggen {app}[{conn}]: seq={conn}.")
            }
        };
        LineMaker {
            head: head.into_bytes(),
        }
    }

    /// Length of line `seq` made for `size`: `size`, or the header's length if longer.
    pub fn len(&self, seq: u64, size: usize) -> usize {
        self.padded_len(&digits(seq), size)
    }

    fn padded_len(&self, seq_digits: &Digits, size: usize) -> usize {
        size.max(self.head.len() + seq_digits.len() + 1)
    }

    /// Appends line `seq`, padded to `size` bytes, to `out`.
    pub fn append(&self, seq: u64, size: usize, out: &mut Vec<u8>) {
        let seq_digits = digits(seq);
        let len = self.padded_len(&seq_digits, size);
        self.write(seq, &seq_digits, len, out);
    }

    /// Appends line `seq` as [`LineMaker::append`] does, after its octet count and a space
    /// (RFC 6587 octet-counted framing).
    pub fn append_octet_counted(&self, seq: u64, size: usize, out: &mut Vec<u8>) {
        let seq_digits = digits(seq);
        let len = self.padded_len(&seq_digits, size);
        out.extend_from_slice(digits(len as u64).as_slice());
        out.push(b' ');
        self.write(seq, &seq_digits, len, out);
    }

    /// Writes line `seq` (`seq_digits` its digits, `len` its padded length) to `out`.
    fn write(&self, seq: u64, seq_digits: &Digits, len: usize, out: &mut Vec<u8>) {
        let end = out.len() + len;
        out.extend_from_slice(&self.head);
        out.extend_from_slice(seq_digits.as_slice());
        out.push(b' ');
        // Byte i of the padding is PAD[(seq + i) % PAD.len()], copied a slice at a time up to
        // the pattern's end (a byte at a time with a division each was a tenth of loggen's CPU).
        let mut at = (seq % PAD.len() as u64) as usize;
        while out.len() < end {
            let n = (end - out.len()).min(PAD.len() - at);
            out.extend_from_slice(&PAD[at..at + n]);
            at = (at + n) % PAD.len();
        }
    }
}

/// The decimal digits of `n`.
struct Digits {
    buf: [u8; 20],
    start: usize,
}

impl Digits {
    fn as_slice(&self) -> &[u8] {
        &self.buf[self.start..]
    }

    fn len(&self) -> usize {
        self.buf.len() - self.start
    }
}

fn digits(mut n: u64) -> Digits {
    let mut d = Digits {
        buf: [0; 20],
        start: 20,
    };
    loop {
        d.start -= 1;
        d.buf[d.start] = b'0' + (n % 10) as u8;
        n /= 10;
        if n == 0 {
            return d;
        }
    }
}

/// The printable pattern that pads a message to its size.
const PAD: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Sends the load; returns once every connection is done.
pub fn run(config: &LoggenConfig) -> Result<LoggenReport, Error> {
    if config.count.is_none() && config.duration.is_none() {
        return Err(Error::Usage("give --count or --duration".into()));
    }
    let n = config.connections.max(1);
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|conn| {
            let config = config.clone();
            // Spread the count and the rate over the connections.
            let count = config
                .count
                .map(|c| c / n as u64 + u64::from((conn as u64) < c % n as u64));
            let rate = config.rate / n as u64 + u64::from((conn as u64) < config.rate % n as u64);
            std::thread::spawn(move || send_one(&config, conn, count, rate))
        })
        .collect();
    let mut report = LoggenReport {
        connections: n,
        ..LoggenReport::default()
    };
    for h in handles {
        let (m, b) = h.join().map_err(|_| Error::Io {
            context: "loggen connection thread",
            source: std::io::Error::other("panicked"),
        })??;
        report.messages += m;
        report.bytes += b;
    }
    report.seconds = start.elapsed().as_secs_f64();
    if report.seconds > 0.0 {
        report.messages_per_s = report.messages as f64 / report.seconds;
        report.mb_per_s = report.bytes as f64 / report.seconds / 1e6;
    }
    Ok(report)
}

fn send_one(
    config: &LoggenConfig,
    conn: usize,
    count: Option<u64>,
    rate: u64,
) -> Result<(u64, u64), Error> {
    let io = |context| move |source| Error::Io { context, source };
    enum Out {
        Tcp(TcpStream),
        Udp(UdpSocket),
    }
    let mut out = if config.udp {
        let s = UdpSocket::bind(if config.target.is_ipv4() {
            "0.0.0.0:0"
        } else {
            "[::]:0"
        })
        .map_err(io("binding UDP socket"))?;
        s.connect(config.target)
            .map_err(io("connecting UDP socket"))?;
        Out::Udp(s)
    } else {
        let s = TcpStream::connect(config.target).map_err(io("connecting"))?;
        s.set_nodelay(false).ok();
        Out::Tcp(s)
    };
    let lines = LineMaker::new(config.format, &config.app, conn);
    let start = Instant::now();
    let deadline = config.duration.map(|d| start + d);
    // TCP lines are made, framed, straight into this buffer, written out when it is full.
    let mut buf = Vec::with_capacity(SEND_BUF + config.size + 64);
    let mut sent = 0u64;
    let mut bytes = 0u64;
    loop {
        if count.is_some_and(|c| sent >= c) {
            break;
        }
        if sent % 256 == 0 {
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            if rate > 0 {
                // Ahead of schedule: wait until message `sent` is due.
                let due = start + Duration::from_secs_f64(sent as f64 / rate as f64);
                let now = Instant::now();
                if due > now {
                    if let Out::Tcp(s) = &mut out {
                        send_all(s, &mut buf).map_err(io("sending"))?;
                    }
                    std::thread::sleep(due - now);
                }
            }
        }
        match &mut out {
            Out::Tcp(s) => {
                let before = buf.len();
                if config.octet_counted {
                    lines.append_octet_counted(sent, config.size, &mut buf);
                } else {
                    lines.append(sent, config.size, &mut buf);
                    buf.push(b'\n');
                }
                bytes += (buf.len() - before) as u64;
                if buf.len() >= SEND_BUF {
                    send_all(s, &mut buf).map_err(io("sending"))?;
                }
            }
            Out::Udp(s) => {
                buf.clear();
                lines.append(sent, config.size, &mut buf);
                s.send(&buf).map_err(io("sending"))?;
                bytes += buf.len() as u64;
            }
        }
        sent += 1;
    }
    if let Out::Tcp(mut s) = out {
        send_all(&mut s, &mut buf).map_err(io("sending"))?;
    }
    Ok((sent, bytes))
}

/// Writes out and empties the TCP send buffer.
fn send_all(s: &mut TcpStream, buf: &mut Vec<u8>) -> std::io::Result<()> {
    s.write_all(buf)?;
    buf.clear();
    Ok(())
}

/// TCP output is written in chunks of about this many bytes.
const SEND_BUF: usize = 256 * 1024;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_size_and_a_parsable_sequence() {
        let mut m = Vec::new();
        for format in [LineFormat::Rfc5424, LineFormat::Rfc3164] {
            make_message(format, "bench", 3, 123_456, 150, &mut m);
            assert_eq!(m.len(), 150);
            assert_eq!(zerolog::seq::parse(&m), Some((3, 123_456)));
            let mut topic = Vec::new();
            zerolog::syslog::TopicTemplate::default()
                .render(&zerolog::syslog::scan(&m), &mut topic);
            assert_eq!(topic, b"bench");
        }
        assert_eq!(zerolog::seq::parse(b"no sequence"), None);
        assert_eq!(zerolog::seq::parse(b"x seq=1.22"), Some((1, 22)));
    }

    /// Runs loggen (`count` lines over 2 connections) against a local listener and returns
    /// what each connection sent, with the report.
    fn capture(octet_counted: bool, udp: bool, count: u64) -> (Vec<Vec<u8>>, LoggenReport) {
        use std::io::Read;
        let config = |target| LoggenConfig {
            target,
            udp,
            octet_counted,
            size: 100,
            count: Some(count),
            duration: None,
            rate: 0,
            connections: 2,
            format: LineFormat::Rfc5424,
            app: "cap".into(),
        };
        if udp {
            let sock = UdpSocket::bind("127.0.0.1:0").unwrap();
            let cfg = config(sock.local_addr().unwrap());
            let sender = std::thread::spawn(move || run(&cfg).unwrap());
            sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
            let mut got = vec![Vec::new(), Vec::new()];
            let mut buf = [0u8; 2048];
            for _ in 0..count {
                let n = sock.recv(&mut buf).unwrap();
                let (conn, _) = zerolog::seq::parse(&buf[..n]).unwrap();
                got[conn as usize].extend_from_slice(&buf[..n]);
                got[conn as usize].push(b'|');
            }
            return (got, sender.join().unwrap());
        }
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let cfg = config(listener.local_addr().unwrap());
        let sender = std::thread::spawn(move || run(&cfg).unwrap());
        let mut got = vec![Vec::new(), Vec::new()];
        for _ in 0..2 {
            let (mut s, _) = listener.accept().unwrap();
            let mut all = Vec::new();
            s.read_to_end(&mut all).unwrap();
            let (conn, _) = zerolog::seq::parse(&all).unwrap();
            got[conn as usize] = all;
        }
        (got, sender.join().unwrap())
    }

    #[test]
    fn every_line_goes_out_framed_and_in_order() {
        // UDP: 201 lines, which a default socket buffer holds (256 datagrams of this size)
        // even if the reader is late: loggen sends up to 256 lines per connection in a burst
        // before it looks at the rate, so two connections of 500 overflowed it at times.
        for (octet, udp, count) in [
            (false, false, 1001),
            (true, false, 1001),
            (false, true, 201),
        ] {
            let (got, report) = capture(octet, udp, count);
            assert_eq!(report.messages, count);
            assert_eq!(report.connections, 2);
            let mut bytes = 0;
            for (conn, stream) in got.iter().enumerate() {
                // An odd count over 2 connections: one more line on the first.
                let mut want = Vec::new();
                for seq in 0..(count / 2 + 1 - conn as u64) {
                    let mut m = Vec::new();
                    make_message(LineFormat::Rfc5424, "cap", conn, seq, 100, &mut m);
                    if octet {
                        want.extend_from_slice(format!("{} ", m.len()).as_bytes());
                    }
                    want.extend_from_slice(&m);
                    // The framing: "100 " before, or LF after; UDP: none (`|` marks datagrams).
                    bytes += m.len() as u64 + [1, 4, 0][usize::from(octet) + 2 * usize::from(udp)];
                    if !octet {
                        want.push(if udp { b'|' } else { b'\n' });
                    }
                }
                assert!(*stream == want, "octet {octet} udp {udp} conn {conn}");
            }
            assert_eq!(report.bytes, bytes, "octet {octet} udp {udp}");
        }
    }

    #[test]
    fn long_sequence_numbers_grow_the_line_past_a_small_size() {
        let lines = LineMaker::new(LineFormat::Rfc3164, "a", 7);
        for seq in [0, 9, 10, 99_999, u64::MAX] {
            let mut m = b"keep".to_vec();
            lines.append(seq, 10, &mut m);
            let head = format!("<134>Nov 23 10:00:00 loggen a[7]: seq=7.{seq} ");
            assert_eq!(&m[..4], b"keep");
            assert_eq!(m[4..], *head.as_bytes());
            assert_eq!(lines.len(seq, 10), head.len());
        }
    }

    #[test]
    fn padding_continues_the_pattern_from_the_sequence_number() {
        let mut m = Vec::new();
        for seq in [0, 1, 61, 62, 63, 1_000_003] {
            for size in [0, 40, 150, 200, 1000] {
                make_message(LineFormat::Rfc5424, "p", 0, seq, size, &mut m);
                let head =
                    format!("<134>1 2026-11-23T10:00:00.000000Z loggen p 0 - - seq=0.{seq} ");
                assert_eq!(&m[..head.len()], head.as_bytes());
                assert_eq!(m.len(), size.max(head.len()));
                for (i, &b) in m[head.len()..].iter().enumerate() {
                    assert_eq!(
                        b,
                        PAD[(seq as usize + i) % PAD.len()],
                        "seq {seq} size {size} byte {i}"
                    );
                }
            }
        }
    }
}
