//! A load generator for syslog pipelines, like syslog-ng's loggen: RFC 5424 or RFC 3164 lines
//! with an app-name and a per-connection sequence number (`seq=CONN.N`), over TCP (LF or
//! octet-counted framing) or UDP, from N parallel connections, as fast as possible or at a
//! target rate, for a count or a duration.

use std::io::{BufWriter, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::Error;

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
    match format {
        LineFormat::Rfc5424 => {
            let _ = write!(
                out,
                "<134>1 2026-11-23T10:00:00.000000Z loggen {app} {conn} - - seq={conn}.{seq} "
            );
        }
        LineFormat::Rfc3164 => {
            let _ = write!(
                out,
                "<134>Nov 23 10:00:00 loggen {app}[{conn}]: seq={conn}.{seq} "
            );
        }
    }
    // Byte i of the padding is PAD[(seq + i) % PAD.len()], copied a slice at a time up to the
    // pattern's end (a byte at a time with a division each was a tenth of loggen's CPU).
    let mut at = (seq % PAD.len() as u64) as usize;
    while out.len() < size {
        let n = (size - out.len()).min(PAD.len() - at);
        out.extend_from_slice(&PAD[at..at + n]);
        at = (at + n) % PAD.len();
    }
}

/// The printable pattern that pads a message to its size.
const PAD: &[u8] = b"abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789";

/// Finds `seq=CONN.N` in a message: the sequence number loggen put there.
pub fn parse_seq(msg: &[u8]) -> Option<(u32, u64)> {
    // Built once: building a searcher per message showed in the counting sink's profile.
    static SEQ: std::sync::LazyLock<memchr::memmem::Finder<'static>> =
        std::sync::LazyLock::new(|| memchr::memmem::Finder::new(b"seq="));
    let at = SEQ.find(msg)? + 4;
    let rest = &msg[at..];
    let dot = rest.iter().position(|&b| b == b'.')?;
    let conn = std::str::from_utf8(&rest[..dot]).ok()?.parse().ok()?;
    let end = rest[dot + 1..]
        .iter()
        .position(|b| !b.is_ascii_digit())
        .map_or(rest.len(), |p| dot + 1 + p);
    let n = std::str::from_utf8(&rest[dot + 1..end])
        .ok()?
        .parse()
        .ok()?;
    Some((conn, n))
}

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
        Tcp(BufWriter<TcpStream>),
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
        Out::Tcp(BufWriter::with_capacity(256 * 1024, s))
    };
    let start = Instant::now();
    let deadline = config.duration.map(|d| start + d);
    let mut msg = Vec::with_capacity(config.size + 64);
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
                    if let Out::Tcp(w) = &mut out {
                        w.flush().map_err(io("sending"))?;
                    }
                    std::thread::sleep(due - now);
                }
            }
        }
        make_message(
            config.format,
            &config.app,
            conn,
            sent,
            config.size,
            &mut msg,
        );
        match &mut out {
            Out::Tcp(w) => {
                if config.octet_counted {
                    write!(w, "{} ", msg.len()).map_err(io("sending"))?;
                    w.write_all(&msg).map_err(io("sending"))?;
                    bytes += msg.len() as u64 + 1 + count_digits(msg.len());
                } else {
                    w.write_all(&msg).map_err(io("sending"))?;
                    w.write_all(b"\n").map_err(io("sending"))?;
                    bytes += msg.len() as u64 + 1;
                }
            }
            Out::Udp(s) => {
                s.send(&msg).map_err(io("sending"))?;
                bytes += msg.len() as u64;
            }
        }
        sent += 1;
    }
    if let Out::Tcp(mut w) = out {
        w.flush().map_err(io("sending"))?;
    }
    Ok((sent, bytes))
}

fn count_digits(n: usize) -> u64 {
    n.to_string().len() as u64
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_have_the_size_and_a_parsable_sequence() {
        let mut m = Vec::new();
        for format in [LineFormat::Rfc5424, LineFormat::Rfc3164] {
            make_message(format, "bench", 3, 123_456, 150, &mut m);
            assert_eq!(m.len(), 150);
            assert_eq!(parse_seq(&m), Some((3, 123_456)));
            let mut topic = Vec::new();
            crate::syslog::TopicTemplate::default().render(&crate::syslog::scan(&m), &mut topic);
            assert_eq!(topic, b"bench");
        }
        assert_eq!(parse_seq(b"no sequence"), None);
        assert_eq!(parse_seq(b"x seq=1.22"), Some((1, 22)));
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
