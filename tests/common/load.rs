//! Steady load from `zerolog loggen` and the end-to-end check of its sequence numbers: every
//! line `seq=CONN.N` sent must be found exactly once in the workers' output files.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use super::*;

/// What loggen is asked to send.
#[derive(Clone, Copy, Debug)]
pub struct Load {
    /// Lines in all.
    pub count: u64,
    /// Lines per second in all (0: as fast as possible).
    pub rate: u64,
    /// Parallel connections.
    pub connections: u64,
}

impl Load {
    /// The loggen arguments for this load towards `127.0.0.1:port` (prefix them with
    /// `ip netns exec ...` or run them as they are).
    pub fn args(&self, port: u16) -> Vec<String> {
        [
            "loggen",
            "--json",
            "--app",
            "steady",
            "-P",
            &port.to_string(),
            "-n",
            &self.count.to_string(),
            "-r",
            &self.rate.to_string(),
            "-c",
            &self.connections.to_string(),
        ]
        .iter()
        .map(|s| s.to_string())
        .collect()
    }

    /// Starts loggen on this machine.
    pub fn start(&self, dir: &Path, port: u16) -> Proc {
        let mut cmd = Command::new(zerolog_bin());
        cmd.args(self.args(port));
        Proc::spawn(dir, "loggen", cmd)
    }
}

/// Waits for loggen to finish; returns its JSON report.
pub fn loggen_report(loggen: &Proc, timeout: Duration) -> serde_json::Value {
    let status = loggen.wait_exit(timeout);
    assert!(status.success(), "loggen failed\n{}", loggen.describe());
    serde_json::from_str(loggen.stdout_text().trim())
        .unwrap_or_else(|e| panic!("loggen report: {e}\n{}", loggen.describe()))
}

/// Every `seq=C.N` in the files of `dir` whose names start with `prefix`, with how often each
/// was seen.
pub fn delivered(dir: &Path, prefix: &str) -> BTreeMap<(u64, u64), u32> {
    let mut seen = BTreeMap::new();
    for path in output_files(dir, prefix) {
        for line in read_lines(&path) {
            let text = String::from_utf8_lossy(&line);
            let seq = text
                .split_once("seq=")
                .and_then(|(_, rest)| rest.split_whitespace().next())
                .and_then(|s| s.split_once('.'))
                .and_then(|(c, n)| Some((c.parse().ok()?, n.parse().ok()?)))
                .unwrap_or_else(|| panic!("not a loggen line in {}: {text:?}", path.display()));
            *seen.entry(seq).or_insert(0) += 1;
        }
    }
    seen
}

fn output_files(dir: &Path, prefix: &str) -> Vec<PathBuf> {
    std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| {
            p.file_name()
                .is_some_and(|n| n.to_string_lossy().starts_with(prefix))
        })
        .collect()
}

/// Waits until the files of `dir` starting with `prefix` hold `load.count` lines, then checks
/// that each line loggen sent is there exactly once. `procs` are described on failure.
pub fn assert_all_delivered_once(dir: &Path, prefix: &str, load: &Load, procs: &[&Proc]) {
    let count = || -> usize {
        output_files(dir, prefix)
            .iter()
            .map(|p| count_lines(p))
            .sum()
    };
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while (count() as u64) < load.count && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    let seen = delivered(dir, prefix);
    // loggen sends 0, 1, 2, ... on each connection (how many on each depends on its speed when
    // it runs for a duration). Every line sent arrived exactly once iff each connection's
    // sequence numbers arrived once each, from 0 without a gap, and as many as were sent.
    let mut missing = Vec::new();
    let mut unexpected = Vec::new();
    let mut per_conn: BTreeMap<u64, u64> = BTreeMap::new();
    for &(c, n) in seen.keys() {
        if c >= load.connections {
            unexpected.push((c, n));
        }
        let top = per_conn.entry(c).or_default();
        *top = (*top).max(n + 1);
    }
    for (&c, &top) in &per_conn {
        missing.extend(
            (0..top)
                .filter(|&n| !seen.contains_key(&(c, n)))
                .map(|n| (c, n)),
        );
    }
    let twice: Vec<_> = seen.iter().filter(|(_, &n)| n > 1).collect();
    let complete = seen.len() as u64 == load.count;
    assert!(
        complete && missing.is_empty() && twice.is_empty() && unexpected.is_empty(),
        "sent {}, delivered {} distinct (per connection: {per_conn:?}): {} missing (first \
         {:?}), {} duplicated (first {:?}), {} from unknown connections\n{}",
        load.count,
        seen.len(),
        missing.len(),
        missing.iter().take(10).collect::<Vec<_>>(),
        twice.len(),
        twice.iter().take(10).collect::<Vec<_>>(),
        unexpected.len(),
        describe_all(procs)
    );
    eprintln!("sent {}, delivered {} exactly once", load.count, seen.len());
}
