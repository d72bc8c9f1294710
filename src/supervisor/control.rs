//! The control socket: a unix socket (mode 0600) that takes one request and answers it, each
//! a JSON object on one line. [`Request`] and [`Reply`] are the protocol, shared by zerologd
//! and its client (`zerologd status`, `start NAME`, ...).
//!
//! NAME is a program (`forwarder`, a receiver, `worker:N`) or a whole worker group.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use serde::{Deserialize, Serialize};

use super::state::{Outcome, ProgramStatus, ReloadSummary};

/// What a client asks.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "request", rename_all = "snake_case")]
pub enum Request {
    /// Every program's state and counters.
    Status,
    /// Start a program or group (also clears FATAL).
    Start {
        /// Program or group.
        name: String,
    },
    /// Stop a program or group; it stays stopped until started.
    Stop {
        /// Program or group.
        name: String,
    },
    /// Restart a program or group gracefully.
    Restart {
        /// Program or group.
        name: String,
    },
    /// Re-read the topology file and apply the difference.
    Reload,
    /// Every stdin worker (`zerolog worker`) reopens its output: SIGHUP.
    Reopen,
}

/// What zerologd answers.
#[derive(Debug, Clone, Serialize, Deserialize)]
#[serde(tag = "reply", rename_all = "snake_case")]
pub enum Reply {
    /// Every program, in stop order.
    Status {
        /// One row per program.
        programs: Vec<ProgramStatus>,
    },
    /// `start`, `stop` or `restart`: what happens to each program NAME designates.
    Commanded {
        /// Program or group.
        name: String,
        /// Each program and its outcome.
        outcomes: Vec<(String, Outcome)>,
    },
    /// `reload`: what changed.
    Reloaded {
        /// Started, restarted, stopped, unchanged.
        summary: ReloadSummary,
    },
    /// The request failed; nothing was done.
    Error {
        /// Why, for the operator.
        message: String,
    },
}

impl Reply {
    /// The answer as the operator reads it (the status table for `status`).
    pub fn text(&self) -> String {
        match self {
            Reply::Status { programs } => format_status(programs),
            Reply::Commanded { name, outcomes } if outcomes.is_empty() => {
                format!("{name}: none running\n")
            }
            Reply::Commanded { outcomes, .. } => outcomes
                .iter()
                .map(|(program, o)| format!("{program}: {}\n", o.as_str()))
                .collect(),
            Reply::Reloaded { summary: s } => format!(
                "reloaded: started {:?}, restarted {:?}, stopped {:?}, {} unchanged\n",
                s.started, s.restarted, s.stopped, s.unchanged
            ),
            Reply::Error { message } => format!("error: {message}\n"),
        }
    }
}

/// Sends one request to a running zerologd and returns its reply.
pub fn request(socket: &Path, request: &Request) -> std::io::Result<Reply> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    let mut line = serde_json::to_string(request)?;
    line.push('\n');
    stream.write_all(line.as_bytes())?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    serde_json::from_str(answer.trim_end()).map_err(|e| {
        std::io::Error::new(
            std::io::ErrorKind::InvalidData,
            format!("unreadable reply ({e}): {answer:?}"),
        )
    })
}

/// Reads a request line; a malformed one is an error reply for the client.
pub fn parse_request(line: &str) -> Result<Request, Reply> {
    serde_json::from_str(line.trim()).map_err(|e| Reply::Error {
        message: format!(
            "malformed request ({e}): expected a JSON object such as {{\"request\":\"status\"}}"
        ),
    })
}

/// The reply as sent: one JSON object and a newline.
pub fn encode_reply(reply: &Reply) -> String {
    let mut s = serde_json::to_string(reply).unwrap_or_else(|e| {
        format!(r#"{{"reply":"error","message":"cannot encode the reply: {e}"}}"#)
    });
    s.push('\n');
    s
}

fn format_uptime(s: f64) -> String {
    let s = s as u64;
    match (s / 86_400, s / 3600 % 24, s / 60 % 60, s % 60) {
        (0, 0, m, s) => format!("{m}m{s:02}s"),
        (0, h, m, s) => format!("{h}h{m:02}m{s:02}s"),
        (d, h, m, _) => format!("{d}d{h:02}h{m:02}m"),
    }
}

/// The human form of `zerologd status`.
pub fn format_status(rows: &[ProgramStatus]) -> String {
    let width = rows.iter().map(|r| r.name.len()).max().unwrap_or(4).max(4);
    let mut out = format!(
        "{:width$}  {:8}  {:>7}  {:>10}  {:>8}  LAST EXIT\n",
        "NAME", "STATE", "PID", "UPTIME", "RESTARTS"
    );
    for r in rows {
        out.push_str(&format!(
            "{:width$}  {:8}  {:>7}  {:>10}  {:>8}  {}\n",
            r.name,
            r.state,
            r.pid.map_or("-".to_string(), |p| p.to_string()),
            r.uptime_s.map_or("-".to_string(), format_uptime),
            r.restarts,
            r.last_exit.as_ref().map_or("-", |e| e.text.as_str()),
        ));
    }
    // Counters below the table: those of the running (or last) process, then, when the
    // program restarted, the totals over all its runs.
    let with_counters: Vec<_> = rows
        .iter()
        .filter_map(|r| Some((r, r.counters.as_ref()?)))
        .collect();
    if !with_counters.is_empty() {
        out.push_str("\nCOUNTERS\n");
    }
    for (r, c) in with_counters {
        let line = |v: &std::collections::BTreeMap<String, u64>| {
            v.iter()
                .map(|(k, v)| format!("{k}={v}"))
                .collect::<Vec<_>>()
                .join(" ")
        };
        out.push_str(&format!("{:width$}  {}\n", r.name, line(&c.current)));
        if r.restarts > 0 {
            out.push_str(&format!("{:width$}  total: {}\n", "", line(&c.total)));
        }
    }
    out
}

/// The JSON form of `zerologd status`: `{"programs": [...]}`.
pub fn format_status_json(rows: &[ProgramStatus]) -> String {
    let mut s = serde_json::json!({ "programs": rows }).to_string();
    s.push('\n');
    s
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn requests_and_replies_round_trip() {
        for r in [
            Request::Status,
            Request::Start { name: "db".into() },
            Request::Stop {
                name: "db:1".into(),
            },
            Request::Restart {
                name: "forwarder".into(),
            },
            Request::Reload,
            Request::Reopen,
        ] {
            let line = serde_json::to_string(&r).unwrap();
            assert_eq!(parse_request(&line).unwrap(), r);
        }
        assert_eq!(
            serde_json::to_string(&Request::Stop { name: "w".into() }).unwrap(),
            r#"{"request":"stop","name":"w"}"#
        );
        let reply = Reply::Commanded {
            name: "db".into(),
            outcomes: vec![
                ("db:0".into(), Outcome::Started),
                ("db:1".into(), Outcome::StartsOnceStopped),
            ],
        };
        let back: Reply = serde_json::from_str(encode_reply(&reply).trim()).unwrap();
        assert_eq!(
            back.text(),
            "db:0: started\ndb:1: stopping; starts again once it has stopped\n"
        );
    }

    #[test]
    fn a_malformed_request_is_answered_with_what_was_expected() {
        let Err(Reply::Error { message }) = parse_request("status") else {
            panic!("accepted");
        };
        assert!(message.contains(r#"{"request":"status"}"#), "{message}");
        let Err(Reply::Error { message }) = parse_request(r#"{"request":"launch"}"#) else {
            panic!("accepted");
        };
        assert!(message.contains("launch"), "{message}");
    }
}
