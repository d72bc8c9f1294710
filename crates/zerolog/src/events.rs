//! Internal events: each thing that can go wrong in an element is a type here whose one call,
//! `emit`, counts it, logs it, and keeps the log line to a bounded rate, so that counters and
//! logs always agree and a flood of bad input cannot flood the log (vector's internal events).

use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};
use std::time::{Duration, Instant};

use tracing::warn;

use crate::framing::FramerStats;
use crate::stats::ForwarderStats;

/// At most one log line per interval: the first event logs, the next ones within the interval
/// are only counted.
#[derive(Debug, Clone)]
pub struct RateLimit {
    interval: Duration,
    last: Option<Instant>,
}

impl RateLimit {
    /// One line per `interval`.
    pub const fn new(interval: Duration) -> Self {
        RateLimit {
            interval,
            last: None,
        }
    }

    /// One line a second, the usual rate for bad input.
    pub const fn per_second() -> Self {
        Self::new(Duration::from_secs(1))
    }

    /// Whether a line may be logged now (and if so, the interval starts again).
    pub fn allow(&mut self) -> bool {
        self.allow_at(Instant::now())
    }

    /// [`RateLimit::allow`] at a given time.
    pub fn allow_at(&mut self, now: Instant) -> bool {
        let due = self
            .last
            .is_none_or(|t| now.saturating_duration_since(t) >= self.interval);
        if due {
            self.last = Some(now);
        }
        due
    }
}

/// A TCP connection closed at once because its input has `max_connections` open.
pub struct ConnectionRefused {
    /// Who connected.
    pub peer: SocketAddr,
    /// The limit.
    pub max_connections: usize,
}

impl ConnectionRefused {
    /// Counts it in `connections_refused` and logs, rate-limited.
    pub fn emit(&self, refused: &AtomicU64, limit: &mut RateLimit) {
        refused.fetch_add(1, Relaxed);
        if limit.allow() {
            warn!(peer = %self.peer, max_connections = self.max_connections, "connection refused: the input has max_connections open (counted as connections_refused)");
        }
    }
}

/// Bad input on a connection: messages truncated to the maximum size, malformed octet counts,
/// messages cut by the end of the connection. The framer counts them; this adds what it
/// counted since `last` to the element's counters.
pub struct BadInput {
    /// Who sent it.
    pub peer: SocketAddr,
    /// The connection's framer counts now...
    pub now: FramerStats,
    /// ...and when they were last added.
    pub last: FramerStats,
    /// The maximum message size, for the log line.
    pub max_message_size: usize,
}

impl BadInput {
    /// Counts what is new, and logs (rate-limited) when there is any.
    pub fn emit(&self, stats: &ForwarderStats, limit: &mut RateLimit) {
        let (now, last) = (&self.now, &self.last);
        let truncated = now.truncated - last.truncated;
        let malformed = now.malformed_counts - last.malformed_counts;
        let incomplete = now.incomplete - last.incomplete;
        stats.truncated().fetch_add(truncated, Relaxed);
        stats.malformed_frames().fetch_add(malformed, Relaxed);
        stats.incomplete().fetch_add(incomplete, Relaxed);
        if truncated + malformed + incomplete > 0 && limit.allow() {
            warn!(
                peer = %self.peer,
                truncated_total = now.truncated,
                malformed_octet_counts_total = now.malformed_counts,
                incomplete_total = now.incomplete,
                max_message_size = self.max_message_size,
                "bad input on connection (oversized messages are truncated; a malformed octet count switches the connection to LF framing)"
            );
        }
    }
}

/// A ZeroMQ peer refused by the allowlist (ZAP).
pub struct ZapDenied<'a> {
    /// The peer's address.
    pub peer: &'a str,
    /// Why: "address not allowed", "key not allowed".
    pub why: &'a str,
    /// The client's CURVE public key (Z85), if it has one.
    pub key: Option<&'a str>,
}

impl ZapDenied<'_> {
    /// Counts it in `zap_denied` (through `count`) and logs, rate-limited.
    pub fn emit(&self, count: impl FnOnce(), limit: &mut RateLimit) {
        count();
        if limit.allow() {
            warn!(
                peer = self.peer,
                why = self.why,
                key = self.key.unwrap_or("-"),
                "connection refused by the allowlist (counted as zap_denied)"
            );
        }
    }
}

/// A send that has waited a while for a slow peer (nothing is dropped; input is throttled).
pub struct Blocked {
    /// Since when.
    pub since: Instant,
    /// What is waiting, for the log line.
    pub what: &'static str,
}

impl Blocked {
    /// Logs, once blocked for the limit's interval and then once per interval, how long.
    pub fn emit(&self, limit: &mut RateLimit) {
        if self.since.elapsed() >= limit.interval && limit.allow() {
            warn!(blocked_s = self.since.elapsed().as_secs(), "{}", self.what);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_line_per_interval() {
        let mut limit = RateLimit::new(Duration::from_secs(10));
        let t = Instant::now();
        assert!(limit.allow_at(t));
        assert!(!limit.allow_at(t + Duration::from_secs(9)));
        assert!(limit.allow_at(t + Duration::from_secs(10)));
        assert!(!limit.allow_at(t + Duration::from_secs(11)));
    }

    #[test]
    fn every_event_is_counted_whether_logged_or_not() {
        let refused = AtomicU64::new(0);
        let mut limit = RateLimit::per_second();
        let peer: SocketAddr = "127.0.0.1:1".parse().unwrap();
        for _ in 0..5 {
            ConnectionRefused {
                peer,
                max_connections: 1,
            }
            .emit(&refused, &mut limit);
        }
        assert_eq!(refused.load(Relaxed), 5);
    }
}
