//! A load generator for syslog pipelines, like syslog-ng's loggen: RFC 5424 or RFC 3164 lines
//! with an app-name and a per-connection sequence number (`seq=CONN.N`), over TCP (LF or
//! octet-counted framing), RELP (each line acknowledged) or UDP, from N parallel connections,
//! as fast as possible or at a target rate, for a count or a duration; TCP and RELP also over
//! TLS, where it can also measure a server's rate of full handshakes.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::path::Path;
use std::sync::Arc;
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::{ClientConnection, StreamOwned};

use zerolog::relp::{self, Parsed, RelpFrame};
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
    /// Send over RELP: each line a `syslog` command, and count the server's acknowledgements.
    pub relp: bool,
    /// RELP: the most frames sent and not yet acknowledged, per connection (at least 1).
    pub relp_window: usize,
    /// Send over TLS (TCP and RELP).
    pub tls: Option<TlsClient>,
    /// TLS: instead of `count` or `duration`, make this many connections in all, each a full
    /// handshake, one line (a RELP session of one line with `relp`) and a close; the
    /// `connections` run in parallel, each making its share one after another.
    pub handshakes: Option<u64>,
}

/// How loggen speaks TLS: whom it trusts, what it presents, and which name it checks.
#[derive(Debug, Clone)]
pub struct TlsClient {
    config: Arc<rustls::ClientConfig>,
    server_name: ServerName<'static>,
}

impl TlsClient {
    /// Trusts the CA bundle `ca`, presents `client` (certificate chain, key) to a server that
    /// asks, and checks the server's certificate for `server_name`, a DNS name (also sent as
    /// SNI) or an IP address (checked against the certificate's IP addresses; no SNI).
    pub fn new(
        ca: &Path,
        client: Option<(&Path, &Path)>,
        server_name: &str,
    ) -> Result<TlsClient, Error> {
        let server_name = ServerName::try_from(server_name.to_owned()).map_err(|_| {
            Error::Usage(format!(
                "TLS server name {server_name:?} is neither a DNS name nor an IP address"
            ))
        })?;
        Ok(TlsClient {
            config: zerolog::tls::client_config(ca, client)?,
            server_name,
        })
    }
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
    /// RELP: lines the server acknowledged (absent without RELP).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub acknowledged: Option<u64>,
    /// TLS handshakes made, each a connection of its own (absent unless measuring them).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshakes: Option<u64>,
    /// Handshakes per second over the run (each with its line and close).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub handshakes_per_s: Option<f64>,
}

impl LoggenReport {
    /// What the report adds to its line for RELP: `, N acknowledged over RELP` (empty without).
    pub fn relp_summary(&self) -> String {
        self.acknowledged
            .map(|a| format!(", {a} acknowledged over RELP"))
            .unwrap_or_default()
    }

    /// What the report adds to its line when measuring handshakes (empty otherwise).
    pub fn handshake_summary(&self) -> String {
        match (self.handshakes, self.handshakes_per_s) {
            (Some(n), Some(rate)) => format!(", {n} TLS handshakes: {rate:.0} handshakes/s"),
            _ => String::new(),
        }
    }

    fn add(&mut self, sent: Sent) {
        self.messages += sent.messages;
        self.bytes += sent.bytes;
        if let Some(a) = sent.acked {
            *self.acknowledged.get_or_insert(0) += a;
        }
    }
}

/// What one connection sent.
#[derive(Debug, Clone, Copy, Default)]
struct Sent {
    messages: u64,
    bytes: u64,
    /// RELP only: lines acknowledged.
    acked: Option<u64>,
}

impl Sent {
    fn add(&mut self, other: Sent) {
        self.messages += other.messages;
        self.bytes += other.bytes;
        if let Some(a) = other.acked {
            *self.acked.get_or_insert(0) += a;
        }
    }
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
    if config.count.is_none() && config.duration.is_none() && config.handshakes.is_none() {
        return Err(Error::Usage("give --count or --duration".into()));
    }
    if config.handshakes.is_some() && config.tls.is_none() {
        return Err(Error::Usage("handshakes are measured over TLS only".into()));
    }
    let n = config.connections.max(1);
    // Spread a total over the connections, the first ones taking one more.
    let share =
        |total: u64, conn: usize| total / n as u64 + u64::from((conn as u64) < total % n as u64);
    let start = Instant::now();
    let handles: Vec<_> = (0..n)
        .map(|conn| {
            let config = config.clone();
            let count = config.count.map(|c| share(c, conn));
            let rate = share(config.rate, conn);
            let handshakes = config.handshakes.map(|h| share(h, conn));
            std::thread::spawn(move || match handshakes {
                Some(h) => handshake_one_by_one(&config, conn, h),
                None => send_one(&config, conn, 0, count, rate),
            })
        })
        .collect();
    let mut report = LoggenReport {
        connections: n,
        ..LoggenReport::default()
    };
    // Every connection is waited for, so that a failed RELP session's report names them all.
    let mut failures = Vec::new();
    for h in handles {
        match h.join().map_err(|_| Error::Io {
            context: "loggen connection thread",
            source: std::io::Error::other("panicked"),
        })? {
            Ok(sent) => report.add(sent),
            Err(e) => failures.push(e),
        }
    }
    if let Some(e) = one_error(failures) {
        return Err(e);
    }
    report.seconds = start.elapsed().as_secs_f64();
    if report.seconds > 0.0 {
        report.messages_per_s = report.messages as f64 / report.seconds;
        report.mb_per_s = report.bytes as f64 / report.seconds / 1e6;
    }
    if config.handshakes.is_some() {
        // One line per connection: as many handshakes as lines.
        report.handshakes = Some(report.messages);
        report.handshakes_per_s = Some(report.messages_per_s);
    }
    Ok(report)
}

/// The only error, or one error naming every one of them.
fn one_error(mut errors: Vec<Error>) -> Option<Error> {
    if errors.len() <= 1 {
        return errors.pop();
    }
    let all: Vec<String> = errors.iter().map(Error::to_string).collect();
    Some(Error::Io {
        context: "loggen connections",
        source: std::io::Error::other(all.join("; ")),
    })
}

/// Makes `handshakes` connections one after another, each sending line `seq` (from 0) of
/// connection `conn` (so that a sink sees distinct lines) and closing.
fn handshake_one_by_one(
    config: &LoggenConfig,
    conn: usize,
    handshakes: u64,
) -> Result<Sent, Error> {
    let mut all = Sent::default();
    for seq in 0..handshakes {
        all.add(send_one(config, conn, seq, Some(1), 0)?);
    }
    Ok(all)
}

/// Sends connection `conn`'s lines `first`, `first + 1`, ... (`count` of them, or for the
/// configured duration) at `rate` (0: as fast as it can).
fn send_one(
    config: &LoggenConfig,
    conn: usize,
    first: u64,
    count: Option<u64>,
    rate: u64,
) -> Result<Sent, Error> {
    if config.relp {
        return relp_send_one(config, conn, first, count, rate);
    }
    let io = |context| move |source| Error::Io { context, source };
    enum Out {
        Tcp(Stream),
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
        Out::Tcp(Stream::connect(config)?)
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
                        send_all(s, &mut buf).map_err(|e| io("sending")(s.explain(e)))?;
                    }
                    std::thread::sleep(due - now);
                }
            }
        }
        match &mut out {
            Out::Tcp(s) => {
                let before = buf.len();
                if config.octet_counted {
                    lines.append_octet_counted(first + sent, config.size, &mut buf);
                } else {
                    lines.append(first + sent, config.size, &mut buf);
                    buf.push(b'\n');
                }
                bytes += (buf.len() - before) as u64;
                if buf.len() >= SEND_BUF {
                    send_all(s, &mut buf).map_err(|e| io("sending")(s.explain(e)))?;
                }
            }
            Out::Udp(s) => {
                buf.clear();
                lines.append(first + sent, config.size, &mut buf);
                s.send(&buf).map_err(io("sending"))?;
                bytes += buf.len() as u64;
            }
        }
        sent += 1;
    }
    if let Out::Tcp(mut s) = out {
        send_all(&mut s, &mut buf).map_err(|e| io("sending")(s.explain(e)))?;
        s.finish().map_err(io("closing the connection"))?;
    }
    Ok(Sent {
        messages: sent,
        bytes,
        acked: None,
    })
}

/// Writes out and empties the TCP send buffer.
fn send_all(s: &mut impl Write, buf: &mut Vec<u8>) -> std::io::Result<()> {
    s.write_all(buf)?;
    buf.clear();
    Ok(())
}

/// A connection to the target: plain TCP, or TLS over it.
enum Stream {
    Tcp(TcpStream),
    Tls(Box<StreamOwned<ClientConnection, TcpStream>>),
}

impl Stream {
    /// Connects to the target and, with TLS, makes the whole handshake here, so that a
    /// certificate the CA does not vouch for fails as such, before any line is counted.
    fn connect(config: &LoggenConfig) -> Result<Stream, Error> {
        let tcp = TcpStream::connect(config.target).map_err(|source| Error::Io {
            context: "connecting",
            source,
        })?;
        // Plain lines go out in large writes. RELP frames are batched here, and a handshake is
        // a conversation of small writes: Nagle would only hold back the last segment of
        // each until the server's delayed ACK.
        tcp.set_nodelay(config.relp || config.tls.is_some()).ok();
        let Some(tls) = &config.tls else {
            return Ok(Stream::Tcp(tcp));
        };
        let conn = ClientConnection::new(tls.config.clone(), tls.server_name.clone())
            .map_err(|e| handshake_error(config, std::io::Error::other(e)))?;
        let mut s = StreamOwned::new(conn, tcp);
        while s.conn.is_handshaking() {
            s.conn
                .complete_io(&mut s.sock)
                .map_err(|e| handshake_error(config, e))?;
        }
        Ok(Stream::Tls(Box::new(s)))
    }

    /// Ends the connection once every line is out. TLS: says close_notify, then waits for the
    /// server to close: closing with the server's unread records (session tickets) in our
    /// receive buffer would reset the connection, and a reset discards what the server has
    /// not read yet. A refusal the server sends after the handshake (no client certificate,
    /// say, in TLS 1.3) shows here too.
    fn finish(&mut self) -> std::io::Result<()> {
        let Stream::Tls(s) = self else {
            return Ok(());
        };
        s.conn.send_close_notify();
        // A server that refused us has closed already: its alert says more than the failed
        // write.
        let written = s
            .flush()
            .and_then(|()| s.sock.shutdown(std::net::Shutdown::Write));
        read_to_close(s)?;
        written
    }

    /// A failed write, explained by the server's alert if it sent one before it closed.
    fn explain(&mut self, e: std::io::Error) -> std::io::Error {
        let Stream::Tls(s) = self else {
            return e;
        };
        // The write failed because the server closed: what it said, if anything, is there.
        s.sock.set_read_timeout(Some(Duration::from_secs(5))).ok();
        read_to_close(s).err().unwrap_or(e)
    }
}

/// Reads what the server sends until it closes the connection (with close_notify or not: we
/// sent everything already); an alert it sent is the error, with a hint.
fn read_to_close(s: &mut StreamOwned<ClientConnection, TcpStream>) -> std::io::Result<()> {
    let mut scratch = [0; 4096];
    loop {
        match s.conn.read_tls(&mut s.sock) {
            Ok(0) => return Ok(()),
            Ok(_) => {}
            Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(e),
        }
        let state = s.conn.process_new_packets().map_err(|e| {
            let hint = tls_hint(&e);
            std::io::Error::other(format!("{e}{hint}"))
        })?;
        // A syslog server has nothing to say; whatever it says is dropped.
        while matches!(s.conn.reader().read(&mut scratch), Ok(1..)) {}
        if state.peer_has_closed() {
            return Ok(());
        }
    }
}

impl Read for Stream {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.read(buf),
            Stream::Tls(s) => s.read(buf),
        }
    }
}

impl Write for Stream {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        match self {
            Stream::Tcp(s) => s.write(buf),
            Stream::Tls(s) => s.write(buf),
        }
    }

    fn flush(&mut self) -> std::io::Result<()> {
        match self {
            Stream::Tcp(s) => s.flush(),
            Stream::Tls(s) => s.flush(),
        }
    }
}

/// A failed handshake, naming the server and the name checked.
fn handshake_error(config: &LoggenConfig, e: std::io::Error) -> Error {
    let name = config
        .tls
        .as_ref()
        .map(|t| t.server_name.to_str().into_owned())
        .unwrap_or_default();
    Error::Io {
        context: "TLS handshake failed",
        source: std::io::Error::other(format!(
            "with {} as server name {name}: {e}{}",
            config.target,
            e.get_ref()
                .and_then(|e| e.downcast_ref::<rustls::Error>())
                .map_or("", tls_hint)
        )),
    }
}

/// What to check for the usual TLS mistakes, said after rustls' own words.
fn tls_hint(e: &rustls::Error) -> &'static str {
    use rustls::{AlertDescription as A, CertificateError as C, Error as E};
    match e {
        // A CA of the bundle with the issuer's name, but not its key, fails the signature.
        E::InvalidCertificate(C::UnknownIssuer | C::BadSignature) => {
            " (is the server's certificate signed by a CA of --tls-ca?)"
        }
        E::InvalidCertificate(C::NotValidForName | C::NotValidForNameContext { .. }) => {
            " (see --tls-server-name)"
        }
        // A TLS 1.3 server refuses a missing client certificate after the handshake.
        E::AlertReceived(A::CertificateRequired) => {
            " (the server wants a client certificate: --tls-cert and --tls-key)"
        }
        _ => "",
    }
}

/// TCP output is written in chunks of about this many bytes.
const SEND_BUF: usize = 256 * 1024;

/// What loggen offers in its RELP `open`.
const RELP_OFFERS: &[u8] = b"relp_version=0\nrelp_software=zerolog-loggen\ncommands=syslog";

/// The longest reply data loggen takes from a RELP server (librelp's maximum).
const RELP_MAX_REPLY: usize = relp::DEFAULT_MAX_DATA;

/// Room for the longest reply with its header: a partial reply is always followed by room.
const RELP_INPUT: usize = RELP_MAX_REPLY + 64;

/// Sends one connection's lines over RELP: `open`, then each line as a `syslog` command with up
/// to `relp_window` of them unacknowledged, then `close`. Each read takes every reply that has
/// come, and the lines they make room for go out at once, in one write: waiting for more room
/// to write bigger batches stalled against librelp, which sends its replies one at a time,
/// most likely on TCP's delayed ACK (3,000 lines/s instead of 80,000). A refused frame, a reply out of
/// order or a connection closed before every line is acknowledged is an error naming how many
/// lines were left unacknowledged.
fn relp_send_one(
    config: &LoggenConfig,
    conn: usize,
    first: u64,
    count: Option<u64>,
    rate: u64,
) -> Result<Sent, Error> {
    let stream = Stream::connect(config)?;
    let mut session = RelpSession::new(stream, config.relp_window, first);
    let plan = Plan::new(count, config.duration, rate);
    let lines = LineMaker::new(config.format, &config.app, conn);
    let result = session
        .open()
        .and_then(|()| session.send_lines(&lines, config.size, &plan))
        .and_then(|()| session.close());
    // Every line is acknowledged (or the session failed): the TLS close is a courtesy.
    if let Stream::Tls(s) = &mut session.stream {
        s.conn.send_close_notify();
        let _ = s.flush();
    }
    match result {
        Ok(()) => Ok(Sent {
            messages: session.sent,
            bytes: session.bytes,
            acked: Some(session.acked),
        }),
        Err(why) => Err(Error::Io {
            context: "RELP session",
            source: std::io::Error::other(format!(
                "connection {conn}: {why}: {} of {} lines sent unacknowledged",
                session.sent - session.acked,
                session.sent
            )),
        }),
    }
}

/// How many lines may go, and when.
struct Plan {
    count: Option<u64>,
    deadline: Option<Instant>,
    rate: u64,
    start: Instant,
}

/// What [`Plan::allowed`] says.
enum Allowed {
    /// All lines are sent (or the time is up).
    Done,
    /// This many lines may go now (at least 1).
    Now(u64),
    /// The next line is due then.
    At(Instant),
}

impl Plan {
    fn new(count: Option<u64>, duration: Option<Duration>, rate: u64) -> Self {
        let start = Instant::now();
        Plan {
            count,
            deadline: duration.map(|d| start + d),
            rate,
            start,
        }
    }

    /// What may be sent once `sent` lines are.
    fn allowed(&self, sent: u64) -> Allowed {
        let left = self.count.map_or(u64::MAX, |c| c.saturating_sub(sent));
        let now = Instant::now();
        if left == 0 || self.deadline.is_some_and(|d| now >= d) {
            return Allowed::Done;
        }
        if self.rate == 0 {
            return Allowed::Now(left);
        }
        // Line k is due k/rate seconds after the start.
        let due = (now - self.start).as_secs_f64() * self.rate as f64;
        if due >= sent as f64 {
            Allowed::Now(left.min(due as u64 + 1 - sent))
        } else {
            Allowed::At(self.start + Duration::from_secs_f64(sent as f64 / self.rate as f64))
        }
    }
}

/// Why a RELP session failed.
#[derive(Debug)]
enum RelpFail {
    Io(std::io::Error),
    /// The server closed the connection (or said it would, with `serverclose`).
    Closed,
    /// The server answered a frame with a code other than 200.
    Refused {
        txnr: u32,
        reply: String,
    },
    /// The server broke the protocol.
    Protocol(String),
}

impl std::fmt::Display for RelpFail {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            RelpFail::Io(e) => write!(f, "{e}"),
            RelpFail::Closed => f.write_str("the server closed the connection"),
            RelpFail::Refused { txnr, reply } => {
                write!(f, "the server answered frame {txnr} with {reply:?}")
            }
            RelpFail::Protocol(why) => write!(f, "protocol error from the server: {why}"),
        }
    }
}

/// One connection's RELP client: the frames in flight and the replies read.
struct RelpSession {
    stream: Stream,
    window: usize,
    /// The sequence number of the first line.
    first: u64,
    /// Frames built and not written yet.
    out: Vec<u8>,
    /// Replies read: `input[..filled]`, the unparsed start of one at its front.
    input: Vec<u8>,
    filled: usize,
    /// The transaction number of the next frame.
    next: u32,
    /// Frames sent and not answered: `in_flight`, the oldest of them `oldest`.
    in_flight: usize,
    oldest: u32,
    /// `syslog` frames sent and acknowledged, bytes sent in them.
    sent: u64,
    acked: u64,
    bytes: u64,
}

impl RelpSession {
    fn new(stream: Stream, window: usize, first: u64) -> Self {
        let window = window.max(1);
        RelpSession {
            stream,
            window,
            first,
            out: Vec::with_capacity(SEND_BUF),
            input: vec![0; RELP_INPUT],
            filled: 0,
            next: 1,
            in_flight: 0,
            oldest: 1,
            sent: 0,
            acked: 0,
            bytes: 0,
        }
    }

    /// Sends `open` and checks the server's answer: 200, and `syslog` among its commands.
    fn open(&mut self) -> Result<(), RelpFail> {
        self.command("open", RELP_OFFERS)?;
        self.await_all(|txnr, data| {
            let (code, _, offers) = relp::split_rsp(data).ok_or_else(|| bad_reply(data))?;
            if code != 200 {
                return Err(refused(txnr, data));
            }
            let offers = relp::parse_offers(offers);
            if offers.relp_version.is_none() || !offers.has_command(b"syslog") {
                return Err(RelpFail::Protocol(format!(
                    "its open response offers no relp_version or no syslog: {:?}",
                    String::from_utf8_lossy(data)
                )));
            }
            Ok(())
        })
    }

    /// Sends `close` once every line is answered, and waits for its (possibly empty) reply.
    fn close(&mut self) -> Result<(), RelpFail> {
        self.command("close", b"")?;
        self.await_all(|_, _| Ok(()))
    }

    /// Sends one frame on its own.
    fn command(&mut self, command: &str, data: &[u8]) -> Result<(), RelpFail> {
        relp::write_frame(&mut self.out, self.next, command, data);
        self.next = relp::next_txnr(self.next);
        self.in_flight += 1;
        self.flush()
    }

    /// Reads replies until every frame in flight is answered, each checked by `check`.
    fn await_all(
        &mut self,
        mut check: impl FnMut(u32, &[u8]) -> Result<(), RelpFail>,
    ) -> Result<(), RelpFail> {
        while self.in_flight > 0 {
            self.read()?;
            self.take_replies(&mut check)?;
        }
        Ok(())
    }

    /// Sends the lines the plan allows, keeping the window full, until all are acknowledged.
    fn send_lines(&mut self, lines: &LineMaker, size: usize, plan: &Plan) -> Result<(), RelpFail> {
        loop {
            let free = (self.window - self.in_flight) as u64;
            match plan.allowed(self.sent) {
                Allowed::Done if self.in_flight == 0 => return Ok(()),
                Allowed::Now(n) if free > 0 => {
                    self.send_batch(lines, size, n.min(free))?;
                }
                Allowed::At(due) if self.in_flight == 0 => {
                    std::thread::sleep(due.saturating_duration_since(Instant::now()));
                }
                // Frames are in flight (the window is full, or nothing else to do).
                _ => self.await_acks()?,
            }
        }
    }

    /// Writes the next `n` lines as `syslog` frames, in one write.
    fn send_batch(&mut self, lines: &LineMaker, size: usize, n: u64) -> Result<(), RelpFail> {
        for seq in self.first + self.sent..self.first + self.sent + n {
            relp::write_head(&mut self.out, self.next, "syslog", lines.len(seq, size));
            lines.append(seq, size, &mut self.out);
            self.out.push(b'\n');
            self.next = relp::next_txnr(self.next);
        }
        let bytes = self.out.len() as u64;
        self.flush()?;
        self.sent += n;
        self.bytes += bytes;
        self.in_flight += n as usize;
        Ok(())
    }

    /// Reads what replies have come (waiting for some) and counts the acknowledgements.
    fn await_acks(&mut self) -> Result<(), RelpFail> {
        self.read()?;
        let mut acked = 0;
        let result = self.take_replies(|txnr, data| match relp::parse_rsp(data) {
            Some((200, _)) => {
                acked += 1;
                Ok(())
            }
            Some(_) => Err(refused(txnr, data)),
            None => Err(bad_reply(data)),
        });
        self.acked += acked;
        result
    }

    fn flush(&mut self) -> Result<(), RelpFail> {
        let result = self.stream.write_all(&self.out);
        self.out.clear();
        result.map_err(RelpFail::Io)
    }

    /// Reads once, after the bytes held; the end of the connection is an error (frames are in
    /// flight whenever loggen reads).
    fn read(&mut self) -> Result<(), RelpFail> {
        let n = loop {
            match self.stream.read(&mut self.input[self.filled..]) {
                Err(e) if e.kind() == std::io::ErrorKind::Interrupted => continue,
                other => break other.map_err(RelpFail::Io)?,
            }
        };
        if n == 0 {
            return Err(RelpFail::Closed);
        }
        self.filled += n;
        Ok(())
    }

    /// Takes every whole reply read: each must be the `rsp` to the oldest frame in flight; its
    /// data goes to `check`. The start of an incomplete reply is kept for the next read.
    fn take_replies(
        &mut self,
        mut check: impl FnMut(u32, &[u8]) -> Result<(), RelpFail>,
    ) -> Result<(), RelpFail> {
        let mut at = 0;
        let result = loop {
            let frame = match relp::parse(&self.input[at..self.filled], RELP_MAX_REPLY) {
                Ok(Parsed::Frame(frame, used)) => {
                    at += used;
                    frame
                }
                Ok(Parsed::Incomplete) => break Ok(()),
                Err(e) => break Err(RelpFail::Protocol(e.to_string())),
            };
            match answers(&frame, self.oldest, self.in_flight) {
                Ok(true) => {}
                // librelp follows its reply to `close` with a `serverclose` hint.
                Ok(false) => continue,
                Err(e) => break Err(e),
            }
            if let Err(e) = check(frame.txnr, frame.data) {
                break Err(e);
            }
            self.oldest = relp::next_txnr(self.oldest);
            self.in_flight -= 1;
        };
        self.input.copy_within(at..self.filled, 0);
        self.filled -= at;
        result
    }
}

/// Whether `frame` is the reply to frame `oldest`, `in_flight` being unanswered (true), or a
/// `serverclose` hint with none unanswered, to skip (false). The same hint with frames
/// unanswered means they will not be: the session failed.
fn answers(frame: &RelpFrame<'_>, oldest: u32, in_flight: usize) -> Result<bool, RelpFail> {
    match frame.command {
        b"serverclose" if frame.txnr == 0 && in_flight == 0 => Ok(false),
        b"serverclose" if frame.txnr == 0 => Err(RelpFail::Closed),
        b"rsp" if in_flight > 0 && frame.txnr == oldest => Ok(true),
        b"rsp" if in_flight > 0 => Err(RelpFail::Protocol(format!(
            "reply to frame {} while frame {oldest} was the oldest unanswered",
            frame.txnr
        ))),
        b"rsp" => Err(RelpFail::Protocol(format!(
            "reply to frame {} with none unanswered",
            frame.txnr
        ))),
        other => Err(RelpFail::Protocol(format!(
            "unexpected command {:?}",
            String::from_utf8_lossy(other)
        ))),
    }
}

fn refused(txnr: u32, data: &[u8]) -> RelpFail {
    RelpFail::Refused {
        txnr,
        reply: String::from_utf8_lossy(data).into_owned(),
    }
}

fn bad_reply(data: &[u8]) -> RelpFail {
    RelpFail::Protocol(format!(
        "a reply is not CODE SP TEXT: {:?}",
        String::from_utf8_lossy(data)
    ))
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
            assert_eq!(zerolog::seq::parse(&m), Some((3, 123_456)));
            let mut topic = Vec::new();
            zerolog::syslog::TopicTemplate::default()
                .render(&zerolog::syslog::scan(&m), &mut topic);
            assert_eq!(topic, b"bench");
        }
        assert_eq!(zerolog::seq::parse(b"no sequence"), None);
        assert_eq!(zerolog::seq::parse(b"x seq=1.22"), Some((1, 22)));
    }

    /// A CA (its PEM in `dir`/ca.pem) and a TLS server with a certificate for `localhost`.
    struct TestPki {
        dir: tempfile::TempDir,
        server: Arc<rustls::ServerConfig>,
    }

    fn test_pki() -> TestPki {
        use rcgen::{BasicConstraints, CertificateParams, CertifiedIssuer, IsCa, KeyPair};
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
        let key = KeyPair::generate().unwrap();
        let cert = CertificateParams::new(vec!["localhost".into()])
            .unwrap()
            .signed_by(&key, &ca)
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("ca.pem"), ca.pem()).unwrap();
        let key = rustls::pki_types::PrivatePkcs8KeyDer::from(key.serialize_der());
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_no_client_auth()
            .with_single_cert(vec![cert.der().clone()], key.into())
            .unwrap();
        TestPki {
            dir,
            server: Arc::new(server),
        }
    }

    impl TestPki {
        /// loggen's side: trusts the CA, checks `name`.
        fn client(&self, name: &str) -> TlsClient {
            TlsClient::new(&self.dir.path().join("ca.pem"), None, name).unwrap()
        }

        /// The server's side of an accepted connection (the handshake is made on first use).
        fn accept(&self, tcp: TcpStream) -> StreamOwned<rustls::ServerConnection, TcpStream> {
            let conn = rustls::ServerConnection::new(self.server.clone()).unwrap();
            StreamOwned::new(conn, tcp)
        }
    }

    /// Reads a connection until the client's close (close_notify over TLS), then closes it.
    fn read_all(s: TcpStream, pki: Option<&TestPki>) -> Vec<u8> {
        let mut all = Vec::new();
        match pki {
            None => {
                let mut s = s;
                s.read_to_end(&mut all).unwrap();
            }
            Some(pki) => {
                let mut tls = pki.accept(s);
                tls.read_to_end(&mut all).unwrap();
                tls.conn.send_close_notify();
                tls.flush().unwrap();
            }
        }
        all
    }

    /// Runs loggen (`count` lines over 2 connections) against a local listener (over TLS with
    /// `pki`) and returns what each connection sent, with the report.
    fn capture(
        octet_counted: bool,
        udp: bool,
        pki: Option<&TestPki>,
        count: u64,
    ) -> (Vec<Vec<u8>>, LoggenReport) {
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
            relp: false,
            relp_window: 128,
            tls: pki.map(|p| p.client("localhost")),
            handshakes: None,
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
            let (s, _) = listener.accept().unwrap();
            let all = read_all(s, pki);
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
        let pki = test_pki();
        for (octet, udp, tls, count) in [
            (false, false, false, 1001),
            (true, false, false, 1001),
            (false, true, false, 201),
            (false, false, true, 1001),
            (true, false, true, 1001),
        ] {
            let (got, report) = capture(octet, udp, tls.then_some(&pki), count);
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
                assert!(
                    *stream == want,
                    "octet {octet} udp {udp} tls {tls} conn {conn}"
                );
            }
            assert_eq!(report.bytes, bytes, "octet {octet} udp {udp} tls {tls}");
            assert_eq!(report.handshakes, None);
        }
    }

    /// LF-framed lines over TLS, 2 connections.
    fn tls_config(target: SocketAddr, count: Option<u64>, tls: TlsClient) -> LoggenConfig {
        LoggenConfig {
            target,
            udp: false,
            octet_counted: false,
            size: 100,
            count,
            duration: None,
            rate: 0,
            connections: 2,
            format: LineFormat::Rfc5424,
            app: "tls".into(),
            relp: false,
            relp_window: 1,
            tls: Some(tls),
            handshakes: None,
        }
    }

    #[test]
    fn tls_handshakes_each_carry_one_line_on_a_connection_of_their_own() {
        let pki = test_pki();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let config = LoggenConfig {
            handshakes: Some(5),
            ..tls_config(
                listener.local_addr().unwrap(),
                None,
                pki.client("localhost"),
            )
        };
        let sender = std::thread::spawn(move || run(&config).unwrap());
        let mut got = Vec::new();
        for _ in 0..5 {
            let (s, _) = listener.accept().unwrap();
            let all = read_all(s, Some(&pki));
            assert_eq!(all.iter().filter(|&&b| b == b'\n').count(), 1);
            got.push(zerolog::seq::parse(&all).unwrap());
        }
        let report = sender.join().unwrap();
        got.sort();
        assert_eq!(got, [(0, 0), (0, 1), (0, 2), (1, 0), (1, 1)]);
        assert_eq!((report.messages, report.handshakes), (5, Some(5)));
        assert_eq!(report.handshakes_per_s, Some(report.messages_per_s));
        assert!(report
            .handshake_summary()
            .starts_with(", 5 TLS handshakes: "));
    }

    #[test]
    fn a_server_certificate_outside_the_ca_or_the_name_fails_the_handshake() {
        let (pki, other) = (test_pki(), test_pki());
        for (client, hint) in [
            (other.client("localhost"), "signed by a CA of --tls-ca?"),
            (pki.client("elsewhere.example"), "see --tls-server-name"),
            (pki.client("127.0.0.1"), "see --tls-server-name"),
        ] {
            let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
            let config = LoggenConfig {
                connections: 1,
                ..tls_config(listener.local_addr().unwrap(), Some(10), client)
            };
            let sender = std::thread::spawn(move || run(&config));
            let (s, _) = listener.accept().unwrap();
            // The server's side of the handshake, which the client breaks off.
            let _ = pki.accept(s).read(&mut [0; 64]);
            let err = sender.join().unwrap().unwrap_err().to_string();
            assert!(
                err.starts_with("TLS handshake failed: with 127.0.0.1:"),
                "{err}"
            );
            assert!(err.contains(hint), "{err}");
        }
        let err = TlsClient::new(&pki.dir.path().join("ca.pem"), None, "not a name!");
        assert!(matches!(err, Err(Error::Usage(_))));
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

    /// How the test RELP server answers `syslog` frames.
    #[derive(Clone, Copy)]
    enum Serve {
        /// 200 to every one.
        All,
        /// 500 to the Nth (from 1), 200 to the others.
        Refuse(u64),
        /// Drops the connection on the Nth, unanswered, with the replies of that read.
        DropAt(u64),
    }

    /// What the test server got on one connection.
    #[derive(Default)]
    struct Served {
        /// The `syslog` data, each followed by LF.
        lines: Vec<u8>,
        /// The most `syslog` frames read and not answered yet (at most the window).
        max_unanswered: u64,
        closed: bool,
    }

    /// A RELP server on 127.0.0.1 for `conns` connections (a thread each): answers `open` with
    /// our offers, `syslog` as `serve` says (the frames of one read together, in one write),
    /// `close` as librelp does: an empty `rsp`, then a `serverclose` hint.
    fn relp_server(
        conns: usize,
        serve: Serve,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<Served>>) {
        relp_server_tls(conns, serve, None)
    }

    /// [`relp_server`], over TLS with `tls` (the server's configuration).
    fn relp_server_tls(
        conns: usize,
        serve: Serve,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> (SocketAddr, std::thread::JoinHandle<Vec<Served>>) {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap();
        let server = std::thread::spawn(move || {
            let threads: Vec<_> = (0..conns)
                .map(|_| {
                    let (s, _) = listener.accept().unwrap();
                    let tls = tls.clone();
                    std::thread::spawn(move || match tls {
                        Some(config) => {
                            let conn = rustls::ServerConnection::new(config).unwrap();
                            serve_relp(StreamOwned::new(conn, s), serve)
                        }
                        None => serve_relp(s, serve),
                    })
                })
                .collect();
            threads.into_iter().map(|t| t.join().unwrap()).collect()
        });
        (addr, server)
    }

    fn serve_relp(mut s: impl Read + Write, serve: Serve) -> Served {
        let mut served = Served::default();
        let (mut pending, mut buf, mut out) = (Vec::new(), vec![0; 65536], Vec::new());
        let mut syslogs = 0;
        while let Ok(n @ 1..) = s.read(&mut buf) {
            pending.extend_from_slice(&buf[..n]);
            let mut at = 0;
            let mut unanswered = 0;
            while let Parsed::Frame(f, used) = relp::parse(&pending[at..], 1 << 17).unwrap() {
                at += used;
                match f.command {
                    b"open" => {
                        let answer = relp::our_open_response(&relp::parse_offers(f.data));
                        relp::write_frame(&mut out, f.txnr, "rsp", &answer.unwrap());
                    }
                    b"syslog" => {
                        syslogs += 1;
                        unanswered += 1;
                        served.max_unanswered = served.max_unanswered.max(unanswered);
                        if matches!(serve, Serve::DropAt(n) if n == syslogs) {
                            return served;
                        }
                        served.lines.extend_from_slice(f.data);
                        served.lines.push(b'\n');
                        let refuse = matches!(serve, Serve::Refuse(n) if n == syslogs);
                        let (code, text) = if refuse {
                            (500, "refused")
                        } else {
                            (200, "OK")
                        };
                        relp::write_rsp(&mut out, f.txnr, code, text, b"");
                    }
                    b"close" => {
                        // As librelp answers it.
                        relp::write_frame(&mut out, f.txnr, "rsp", b"");
                        relp::write_frame(&mut out, 0, "serverclose", b"");
                        served.closed = true;
                    }
                    other => panic!("unexpected command {other:?}"),
                }
            }
            pending.drain(..at);
            if s.write_all(&out).is_err() || served.closed {
                return served;
            }
            out.clear();
        }
        served
    }

    fn relp_config(
        target: SocketAddr,
        count: u64,
        connections: usize,
        window: usize,
    ) -> LoggenConfig {
        LoggenConfig {
            target,
            udp: false,
            octet_counted: false,
            size: 100,
            count: Some(count),
            duration: None,
            rate: 0,
            connections,
            format: LineFormat::Rfc5424,
            app: "relp".into(),
            relp: true,
            relp_window: window,
            tls: None,
            handshakes: None,
        }
    }

    #[test]
    fn relp_sends_every_line_and_counts_the_acknowledgements() {
        for window in [1, 5, 128] {
            let (addr, server) = relp_server(2, Serve::All);
            let report = run(&relp_config(addr, 1001, 2, window)).unwrap();
            let served = server.join().unwrap();
            assert_eq!(report.messages, 1001);
            assert_eq!(report.acknowledged, Some(1001));
            assert_eq!(report.relp_summary(), ", 1001 acknowledged over RELP");
            let mut bytes = 0;
            for s in &served {
                assert!(s.closed, "window {window}: no close");
                assert!(s.max_unanswered <= window as u64, "window {window} overrun");
                let conn = u64::from(zerolog::seq::parse(&s.lines).unwrap().0);
                let (mut want, mut frames, mut m) = (Vec::new(), Vec::new(), Vec::new());
                for seq in 0..(1001 / 2 + 1 - conn) {
                    make_message(LineFormat::Rfc5424, "relp", conn as usize, seq, 100, &mut m);
                    want.extend_from_slice(&m);
                    want.push(b'\n');
                    // txnr 1 is the open.
                    relp::write_frame(&mut frames, seq as u32 + 2, "syslog", &m);
                }
                assert!(s.lines == want, "window {window} conn {conn}");
                bytes += frames.len() as u64;
            }
            assert_eq!(report.bytes, bytes, "window {window}");
        }
    }

    #[test]
    fn relp_over_tls_sends_every_line_and_one_session_per_handshake() {
        let pki = test_pki();
        let (addr, server) = relp_server_tls(2, Serve::All, Some(pki.server.clone()));
        let config = LoggenConfig {
            tls: Some(pki.client("localhost")),
            ..relp_config(addr, 1001, 2, 16)
        };
        let report = run(&config).unwrap();
        let served = server.join().unwrap();
        assert_eq!((report.messages, report.acknowledged), (1001, Some(1001)));
        let lines: usize = served
            .iter()
            .map(|s| s.lines.split(|&b| b == b'\n').count() - 1)
            .sum();
        assert_eq!(lines, 1001);
        assert!(served.iter().all(|s| s.closed));

        let (addr, server) = relp_server_tls(3, Serve::All, Some(pki.server.clone()));
        let config = LoggenConfig {
            count: None,
            tls: Some(pki.client("localhost")),
            handshakes: Some(3),
            ..relp_config(addr, 0, 1, 16)
        };
        let report = run(&config).unwrap();
        let served = server.join().unwrap();
        assert_eq!(report.handshakes, Some(3));
        assert_eq!(report.acknowledged, Some(3));
        let mut seqs: Vec<_> = served
            .iter()
            .map(|s| {
                assert!(s.closed);
                zerolog::seq::parse(&s.lines).unwrap()
            })
            .collect();
        seqs.sort();
        assert_eq!(seqs, [(0, 0), (0, 1), (0, 2)]);
    }

    #[test]
    fn relp_refused_or_dropped_lines_fail_the_run() {
        // The whole count goes out in one batch; the 10th line is refused after 9 acks.
        let (addr, server) = relp_server(1, Serve::Refuse(10));
        let err = run(&relp_config(addr, 100, 1, 128))
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "RELP session: connection 0: the server answered frame 11 with \"500 refused\": \
             91 of 100 lines sent unacknowledged"
        );
        server.join().unwrap();
        let (addr, server) = relp_server(2, Serve::DropAt(50));
        let err = run(&relp_config(addr, 400, 2, 16)).unwrap_err().to_string();
        server.join().unwrap();
        assert!(
            err.starts_with("loggen connections: RELP session: connection "),
            "{err}"
        );
        assert_eq!(err.matches("lines sent unacknowledged").count(), 2, "{err}");
    }

    #[test]
    fn relp_plan_spreads_lines_over_time() {
        let plan = Plan::new(Some(10), None, 1000);
        assert!(matches!(plan.allowed(0), Allowed::Now(1..=10)));
        assert!(matches!(plan.allowed(10), Allowed::Done));
        let Allowed::At(due) = plan.allowed(5) else {
            panic!("5 lines at once at 1000/s")
        };
        assert_eq!(due, plan.start + Duration::from_millis(5));
        let plan = Plan::new(None, Some(Duration::ZERO), 0);
        assert!(matches!(plan.allowed(0), Allowed::Done));
    }
}
