//! Native journald output, used when stderr is the journal (`JOURNAL_STREAM`): each event is
//! one journal entry with the priority of its level, and the program it is about in a field
//! of its own, so `journalctl -u zerologd ZEROLOG_PROGRAM=forwarder` shows one program.
//!
//! Written here rather than with tracing-journald, which puts the event's message alone in
//! `MESSAGE` (losing the `program=... pid=...` an operator reads in `journalctl -u zerologd`)
//! and names fields with its own prefix scheme. The protocol itself is small: `NAME=value`
//! lines in one datagram, a value with a newline length-prefixed (systemd's
//! `sd_journal_sendv` format, "Native Journal Protocol").

use std::fmt::Write as _;
use std::os::unix::net::UnixDatagram;

use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::fmt::format::{DefaultFields, Writer};
use tracing_subscriber::fmt::FormatFields;
use tracing_subscriber::layer::{Context, Layer};

/// journald's socket for native entries.
const SOCKET: &str = "/run/systemd/journal/socket";
/// The field naming the program an entry is about (a child's line, or zerologd's own event
/// with a `program` field).
pub const PROGRAM_FIELD: &str = "ZEROLOG_PROGRAM";
/// Longest `MESSAGE` sent: a datagram must fit the socket's send buffer (about 200 KiB).
const MAX_MESSAGE: usize = 64 * 1024;

/// Whether stderr is the journal: `JOURNAL_STREAM` names its device and inode (as systemd
/// sets it for a unit whose stderr goes to the journal; a child with stderr on a pipe inherits
/// the variable, not the stream).
pub fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt;
    let Some(stream) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(stderr) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    stream.to_str() == Some(&format!("{}:{}", stderr.dev(), stderr.ino()))
}

/// The layer: one datagram per event.
pub struct Journal {
    socket: UnixDatagram,
    identifier: String,
}

impl Journal {
    /// A layer sending to journald as `identifier` (`SYSLOG_IDENTIFIER`, what `journalctl -t`
    /// selects).
    pub fn new(identifier: &str) -> std::io::Result<Self> {
        let socket = UnixDatagram::unbound()?;
        socket.connect(SOCKET)?;
        Ok(Journal {
            socket,
            identifier: identifier.to_owned(),
        })
    }
}

/// syslog priorities: err, warning, info, debug.
fn priority(level: &Level) -> &'static [u8] {
    match *level {
        Level::ERROR => b"3",
        Level::WARN => b"4",
        Level::INFO => b"6",
        _ => b"7",
    }
}

/// Appends field `name` with `value` in the native protocol.
fn put(buf: &mut Vec<u8>, name: &str, value: &[u8]) {
    buf.extend_from_slice(name.as_bytes());
    if value.contains(&b'\n') {
        buf.push(b'\n');
        buf.extend_from_slice(&(value.len() as u64).to_le_bytes());
    } else {
        buf.push(b'=');
    }
    buf.extend_from_slice(value);
    buf.push(b'\n');
}

/// The event's `program` field, if it has one.
#[derive(Default)]
struct Program(Option<String>);

impl Visit for Program {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "program" {
            self.0 = Some(value.to_owned());
        }
    }
    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "program" {
            let mut s = String::new();
            let _ = write!(s, "{value:?}");
            self.0 = Some(s.trim_matches('"').to_owned());
        }
    }
}

impl<S: Subscriber> Layer<S> for Journal {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        // The message and fields as the text format writes them: what the operator reads.
        let mut text = String::new();
        let _ = DefaultFields::new().format_fields(Writer::new(&mut text), event);
        if text.len() > MAX_MESSAGE {
            let mut end = MAX_MESSAGE;
            while !text.is_char_boundary(end) {
                end -= 1;
            }
            text.truncate(end);
        }
        let mut program = Program::default();
        event.record(&mut program);
        let meta = event.metadata();
        let mut buf = Vec::with_capacity(text.len() + 128);
        put(&mut buf, "MESSAGE", text.as_bytes());
        put(&mut buf, "PRIORITY", priority(meta.level()));
        put(&mut buf, "SYSLOG_IDENTIFIER", self.identifier.as_bytes());
        put(&mut buf, "ZEROLOG_TARGET", meta.target().as_bytes());
        if let Some(p) = program.0 {
            put(&mut buf, PROGRAM_FIELD, p.as_bytes());
        }
        // Logging never blocks or fails the caller: an entry journald cannot take is lost.
        let _ = self.socket.send(&buf);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_value_with_a_newline_is_length_prefixed() {
        let mut buf = Vec::new();
        put(&mut buf, "A", b"x");
        put(&mut buf, "B", b"y\nz");
        let mut want = b"A=x\nB\n".to_vec();
        want.extend_from_slice(&3u64.to_le_bytes());
        want.extend_from_slice(b"y\nz\n");
        assert_eq!(buf, want);
    }
}
