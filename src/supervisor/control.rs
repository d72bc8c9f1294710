//! The control socket: a unix socket (mode 0600) that takes one request line and answers.
//!
//! Requests: `status`, `status --json`, `start NAME`, `stop NAME`, `restart NAME`, `reload`.
//! NAME is a program (`forwarder`, a receiver, `worker:N`) or a whole worker group. An answer
//! that starts with `error:` means the request failed.

use std::io::{Read, Write};
use std::os::unix::net::UnixStream;
use std::path::Path;
use std::time::Duration;

use super::state::ProgramStatus;

/// Sends one request to a running zerologd and returns its answer.
pub fn request(socket: &Path, line: &str) -> std::io::Result<String> {
    let mut stream = UnixStream::connect(socket)?;
    stream.set_read_timeout(Some(Duration::from_secs(30)))?;
    stream.write_all(line.as_bytes())?;
    stream.write_all(b"\n")?;
    stream.shutdown(std::net::Shutdown::Write)?;
    let mut answer = String::new();
    stream.read_to_string(&mut answer)?;
    Ok(answer)
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
