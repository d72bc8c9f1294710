//! Syslog header scanning (RFC 5424 and RFC 3164) and topic templates.
//!
//! Only the header is looked at, never the message body, so routing stays cheap: a few dozen
//! bytes per message at most. The scanner is lenient; it never rejects a message, it only
//! reports which header fields it found. Fields it cannot find render as `-` (the RFC 5424
//! NILVALUE) in a topic.

use std::fmt;

/// Header fields found at the start of a syslog message. Borrowed from the message.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
pub struct Header<'a> {
    /// PRI value (facility * 8 + severity).
    pub pri: Option<u8>,
    /// HOSTNAME.
    pub hostname: Option<&'a [u8]>,
    /// RFC 5424 APP-NAME or RFC 3164 TAG (without `[pid]` and `:`).
    pub app: Option<&'a [u8]>,
    /// RFC 5424 PROCID, or the `pid` of an RFC 3164 `TAG[pid]:`.
    pub procid: Option<&'a [u8]>,
    /// RFC 5424 only.
    pub msgid: Option<&'a [u8]>,
}

impl Header<'_> {
    /// Facility number (PRI / 8), when the message has a PRI.
    pub fn facility(&self) -> Option<u8> {
        self.pri.map(|p| p >> 3)
    }
    /// Severity number (PRI % 8), when the message has a PRI.
    pub fn severity(&self) -> Option<u8> {
        self.pri.map(|p| p & 7)
    }
}

/// Longest header token accepted; a longer one means this is not a syslog header.
const MAX_TOKEN: usize = 255;

const MONTHS: [&[u8; 3]; 12] = [
    b"Jan", b"Feb", b"Mar", b"Apr", b"May", b"Jun", b"Jul", b"Aug", b"Sep", b"Oct", b"Nov", b"Dec",
];

/// Scans the header of `msg`. A message that is not syslog yields an all-empty header.
pub fn scan(msg: &[u8]) -> Header<'_> {
    let (pri, rest) = match parse_pri(msg) {
        Some((pri, rest)) => (Some(pri), rest),
        None => (None, msg),
    };
    if pri.is_some() {
        if let Some(h) = scan_5424(rest) {
            return Header { pri, ..h };
        }
    }
    match scan_3164(rest, pri.is_some()) {
        Some(h) => Header { pri, ..h },
        None => Header {
            pri,
            ..Header::default()
        },
    }
}

/// `<PRI>`: 1 to 3 digits, value at most 191.
fn parse_pri(msg: &[u8]) -> Option<(u8, &[u8])> {
    let rest = msg.strip_prefix(b"<")?;
    let end = rest.iter().take(4).position(|&b| b == b'>')?;
    if end == 0 || !rest[..end].iter().all(u8::is_ascii_digit) {
        return None;
    }
    let value: u32 = rest[..end]
        .iter()
        .fold(0, |v, &d| v * 10 + u32::from(d - b'0'));
    (value <= 191).then(|| (value as u8, &rest[end + 1..]))
}

/// Splits off one SP-terminated token. `None` if there is no SP or the token is too long.
fn token(s: &[u8]) -> Option<(&[u8], &[u8])> {
    let end = memchr::memchr(b' ', &s[..s.len().min(MAX_TOKEN + 1)])?;
    Some((&s[..end], &s[end + 1..]))
}

fn nil(t: &[u8]) -> Option<&[u8]> {
    (t != b"-" && !t.is_empty()).then_some(t)
}

/// `VERSION SP TIMESTAMP SP HOSTNAME SP APP-NAME SP PROCID SP MSGID SP ...`
fn scan_5424(s: &[u8]) -> Option<Header<'_>> {
    let (version, s) = token(s)?;
    if version.is_empty() || version.len() > 2 || !version.iter().all(u8::is_ascii_digit) {
        return None;
    }
    let (_ts, s) = token(s)?;
    let (host, s) = token(s)?;
    let (app, s) = token(s)?;
    let (procid, s) = token(s)?;
    // MSGID may be the last field when there is no structured data or message.
    let msgid = token(s).map_or(&s[..s.len().min(MAX_TOKEN)], |(m, _)| m);
    Some(Header {
        pri: None,
        hostname: nil(host),
        app: nil(app),
        procid: nil(procid),
        msgid: nil(msgid),
    })
}

/// `TIMESTAMP SP HOSTNAME SP TAG[PID]: MSG`, where TIMESTAMP is `Mmm dd hh:mm:ss` or an
/// RFC 3339 stamp (rsyslog's high-precision format). Senders often omit the hostname, and
/// local ones the timestamp too; the tag is recognised by its `:` or `[`.
fn scan_3164(s: &[u8], had_pri: bool) -> Option<Header<'_>> {
    let mut rest = s;
    let mut had_ts = false;
    if s.len() >= 16 && MONTHS.iter().any(|m| s.starts_with(*m)) && s[3] == b' ' && s[15] == b' ' {
        rest = &s[16..];
        had_ts = true;
    } else if s.first().is_some_and(u8::is_ascii_digit) {
        if let Some((ts, r)) = token(s) {
            if ts.len() >= 19 && ts[4] == b'-' && ts[10] == b'T' {
                rest = r;
                had_ts = true;
            }
        }
    }
    if !had_pri && !had_ts {
        return None;
    }
    let (first, after_first) = match token(rest) {
        Some(t) => t,
        None => (&rest[..rest.len().min(MAX_TOKEN)], &[][..]),
    };
    if let Some(h) = parse_tag(first) {
        return Some(h);
    }
    let host = nil(first);
    let second = token(after_first).map(|(t, _)| t);
    let tag = second.and_then(parse_tag).or_else(|| {
        // A tag without ':' or '[' directly after the hostname (rsyslog does this with
        // some templates): take the token itself.
        second.filter(|t| is_tag_text(t)).map(|t| Header {
            app: Some(t),
            ..Header::default()
        })
    });
    Some(Header {
        hostname: host,
        ..tag.unwrap_or_default()
    })
}

fn is_tag_text(t: &[u8]) -> bool {
    !t.is_empty()
        && t.len() <= 48
        && t.iter()
            .all(|&b| b.is_ascii_graphic() && b != b'[' && b != b':')
}

/// `app:`, `app[pid]:` or `app[pid]`.
fn parse_tag(t: &[u8]) -> Option<Header<'_>> {
    let t = t.strip_suffix(b":").map_or((t, false), |s| (s, true));
    let (body, had_colon) = t;
    if let Some(open) = memchr::memchr(b'[', body) {
        let pid = body[open + 1..].strip_suffix(b"]")?;
        let app = &body[..open];
        return is_tag_text(app).then_some(Header {
            app: Some(app),
            procid: nil(pid),
            ..Header::default()
        });
    }
    (had_colon && is_tag_text(body)).then_some(Header {
        app: Some(body),
        ..Header::default()
    })
}

const FACILITIES: [&str; 24] = [
    "kern",
    "user",
    "mail",
    "daemon",
    "auth",
    "syslog",
    "lpr",
    "news",
    "uucp",
    "cron",
    "authpriv",
    "ftp",
    "ntp",
    "security",
    "console",
    "solaris-cron",
    "local0",
    "local1",
    "local2",
    "local3",
    "local4",
    "local5",
    "local6",
    "local7",
];
const SEVERITIES: [&str; 8] = [
    "emerg", "alert", "crit", "err", "warning", "notice", "info", "debug",
];

/// A field a topic template can name.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Field {
    /// `{app}`: RFC 5424 APP-NAME or RFC 3164 TAG.
    App,
    /// `{hostname}`: HOSTNAME.
    Hostname,
    /// `{procid}`: PROCID, or the pid of `TAG[pid]`.
    ProcId,
    /// `{msgid}`: RFC 5424 MSGID.
    MsgId,
    /// `{facility}`: facility name, `kern` ... `local7`.
    Facility,
    /// `{severity}`: severity name, `emerg` ... `debug`.
    Severity,
    /// `{pri}`: the PRI number.
    Pri,
}

impl Field {
    const ALL: [(&'static str, Field); 7] = [
        ("app", Field::App),
        ("hostname", Field::Hostname),
        ("procid", Field::ProcId),
        ("msgid", Field::MsgId),
        ("facility", Field::Facility),
        ("severity", Field::Severity),
        ("pri", Field::Pri),
    ];
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Part {
    Literal(Vec<u8>),
    Field(Field),
}

/// A topic template such as `{app}` or `{hostname}.{facility}`.
///
/// ```
/// use zerolog_proto::syslog::{scan, TopicTemplate};
///
/// let template = TopicTemplate::parse("{hostname}.{app}").unwrap();
/// let mut topic = Vec::new();
/// template.render(&scan(b"<13>Nov 23 10:00:00 web1 nginx[42]: GET /"), &mut topic);
/// assert_eq!(topic, b"web1.nginx");
///
/// // A message without a syslog header: missing fields render as `-`.
/// topic.clear();
/// template.render(&scan(b"plain text"), &mut topic);
/// assert_eq!(topic, b"-.-");
/// ```
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TopicTemplate {
    source: String,
    parts: Vec<Part>,
}

/// A topic template that does not parse.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("invalid topic template '{template}': {reason}")]
pub struct TemplateError {
    /// The template, as given.
    pub template: String,
    /// What is wrong with it.
    pub reason: String,
}

impl TopicTemplate {
    /// Parses a template: literal text with `{field}` placeholders, `{{` and `}}` for braces.
    /// Fields: app, hostname, procid, msgid, facility, severity, pri.
    pub fn parse(source: &str) -> Result<Self, TemplateError> {
        let err = |reason: String| TemplateError {
            template: source.to_string(),
            reason,
        };
        let mut parts = Vec::new();
        let mut lit = Vec::new();
        let mut rest = source;
        while let Some(c) = rest.chars().next() {
            if rest.starts_with("{{") || rest.starts_with("}}") {
                lit.push(c as u8);
                rest = &rest[2..];
            } else if c == '{' {
                let end = rest
                    .find('}')
                    .ok_or_else(|| err("unclosed '{'".to_string()))?;
                let name = &rest[1..end];
                let field = Field::ALL
                    .iter()
                    .find(|(n, _)| *n == name)
                    .map(|(_, f)| *f)
                    .ok_or_else(|| {
                        err(format!(
                            "unknown field '{{{name}}}'; known fields: app, hostname, procid, msgid, facility, severity, pri"
                        ))
                    })?;
                if !lit.is_empty() {
                    parts.push(Part::Literal(std::mem::take(&mut lit)));
                }
                parts.push(Part::Field(field));
                rest = &rest[end + 1..];
            } else if c == '}' {
                return Err(err(
                    "unmatched '}' (write '}}' for a literal brace)".to_string()
                ));
            } else {
                let mut buf = [0; 4];
                lit.extend_from_slice(c.encode_utf8(&mut buf).as_bytes());
                rest = &rest[c.len_utf8()..];
            }
        }
        if !lit.is_empty() {
            parts.push(Part::Literal(lit));
        }
        Ok(TopicTemplate {
            source: source.to_string(),
            parts,
        })
    }

    /// Appends the topic of the message with header `h` to `out`.
    pub fn render(&self, h: &Header<'_>, out: &mut Vec<u8>) {
        for part in &self.parts {
            match part {
                Part::Literal(l) => out.extend_from_slice(l),
                Part::Field(f) => {
                    let start = out.len();
                    match f {
                        Field::App => out.extend_from_slice(h.app.unwrap_or(b"")),
                        Field::Hostname => out.extend_from_slice(h.hostname.unwrap_or(b"")),
                        Field::ProcId => out.extend_from_slice(h.procid.unwrap_or(b"")),
                        Field::MsgId => out.extend_from_slice(h.msgid.unwrap_or(b"")),
                        Field::Facility => {
                            if let Some(f) = h.facility() {
                                out.extend_from_slice(FACILITIES[usize::from(f)].as_bytes());
                            }
                        }
                        Field::Severity => {
                            if let Some(s) = h.severity() {
                                out.extend_from_slice(SEVERITIES[usize::from(s)].as_bytes());
                            }
                        }
                        Field::Pri => {
                            if let Some(p) = h.pri {
                                out.extend_from_slice(p.to_string().as_bytes());
                            }
                        }
                    }
                    if out.len() == start {
                        out.push(b'-');
                    }
                }
            }
        }
    }

    /// Whether rendering needs the header at all (a constant template does not).
    pub fn needs_header(&self) -> bool {
        self.parts.iter().any(|p| matches!(p, Part::Field(_)))
    }
}

impl Default for TopicTemplate {
    fn default() -> Self {
        TopicTemplate::parse("{app}").expect("default template parses")
    }
}

impl fmt::Display for TopicTemplate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.source)
    }
}

impl std::str::FromStr for TopicTemplate {
    type Err = TemplateError;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        TopicTemplate::parse(s)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn topic(template: &str, msg: &str) -> String {
        let t = TopicTemplate::parse(template).unwrap();
        let mut out = Vec::new();
        t.render(&scan(msg.as_bytes()), &mut out);
        String::from_utf8(out).unwrap()
    }

    #[test]
    fn rfc5424() {
        let m = "<165>1 2003-10-11T22:14:15.003Z mymachine.example.com evntslog 1234 ID47 [x] msg";
        let h = scan(m.as_bytes());
        assert_eq!(h.pri, Some(165));
        assert_eq!(h.hostname, Some(&b"mymachine.example.com"[..]));
        assert_eq!(h.app, Some(&b"evntslog"[..]));
        assert_eq!(h.procid, Some(&b"1234"[..]));
        assert_eq!(h.msgid, Some(&b"ID47"[..]));
        assert_eq!(topic("{facility}.{severity}", m), "local4.notice");
        assert_eq!(topic("{app}", "<13>1 - host - - - -"), "-");
    }

    #[test]
    fn logger_rfc5424_output() {
        // What util-linux logger -T sends.
        let m = "<13>1 2026-11-23T18:50:01.123456+00:00 myhost nginx - - [timeQuality tzKnown=\"1\"] hello";
        assert_eq!(topic("{app}", m), "nginx");
        assert_eq!(topic("{hostname}", m), "myhost");
    }

    #[test]
    fn rfc3164_variants() {
        assert_eq!(
            topic(
                "{app}",
                "<34>Oct 11 22:14:15 mymachine su: 'su root' failed"
            ),
            "su"
        );
        assert_eq!(
            topic("{app}", "<34>Oct  1 22:14:15 mymachine sshd[42]: hi"),
            "sshd"
        );
        assert_eq!(
            topic("{procid}", "<34>Oct  1 22:14:15 mymachine sshd[42]: hi"),
            "42"
        );
        assert_eq!(
            topic("{hostname}", "<34>Oct  1 22:14:15 mymachine sshd[42]: hi"),
            "mymachine"
        );
        // No hostname.
        assert_eq!(
            topic("{app}", "<13>Nov 23 18:50:01 postgres: ready"),
            "postgres"
        );
        assert_eq!(
            topic("{hostname}", "<13>Nov 23 18:50:01 postgres: ready"),
            "-"
        );
        // No timestamp, no hostname.
        assert_eq!(topic("{app}", "<13>cron[7]: job"), "cron");
        // RFC 3339 timestamp (rsyslog high precision).
        assert_eq!(
            topic("{app}", "<13>2026-11-23T18:50:01.1+00:00 host nginx: GET /"),
            "nginx"
        );
        // No PRI, traditional file format.
        assert_eq!(
            topic("{app}", "Nov 23 18:50:01 host kernel: boot"),
            "kernel"
        );
    }

    #[test]
    fn not_syslog() {
        assert_eq!(topic("{app}", "just some text"), "-");
        assert_eq!(topic("{app}", ""), "-");
        assert_eq!(topic("{app}", "<999>x"), "-");
        assert_eq!(topic("{app}", "\u{0}\u{1}binary"), "-");
        assert_eq!(topic("{severity}", "<>oops"), "-");
    }

    #[test]
    fn templates() {
        assert_eq!(topic("logs.{app}", "<13>cron: x"), "logs.cron");
        assert_eq!(topic("{{literal}}", "<13>cron: x"), "{literal}");
        assert!(TopicTemplate::parse("{nope}")
            .unwrap_err()
            .to_string()
            .contains("unknown field"));
        assert!(TopicTemplate::parse("{app").is_err());
        assert!(TopicTemplate::parse("app}").is_err());
        assert!(!TopicTemplate::parse("fixed").unwrap().needs_header());
    }

    #[test]
    fn long_tokens_are_not_headers() {
        let long = format!("<13>{} rest", "x".repeat(1000));
        assert_eq!(topic("{app}", &long), "-");
    }
}
