//! Acknowledged delivery through the journal: whatever is killed -9 (a receiver, a worker,
//! the forwarder, zerologd itself), every line the forwarder accepted reaches a worker at
//! least once, and the duplicates are no more than the redeliveries the counters show.

use std::collections::BTreeMap;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::load::{delivered, loggen_report, Load};
use crate::common::zerologd::*;
use crate::common::*;

const TOPOLOGY: &str = r#"
[forwarder]
tcp = ["127.0.0.1:{B}"]
relp = ["127.0.0.1:{R}"]
publish = "tcp://127.0.0.1:{F}"
restart_backoff = "50ms"

[[receiver]]
name = "all"
restart_backoff = "50ms"

[[worker]]
name = "w0"
receiver = "all"
command = ["file", "{DIR}/out.w0"]
restart_backoff = "50ms"

[[worker]]
name = "w1"
receiver = "all"
command = ["file", "{DIR}/out.w1"]
restart_backoff = "50ms"
"#;

fn topology(relp: u16) -> String {
    TOPOLOGY.replace("{R}", &relp.to_string())
}

/// Every line sent (connection c sent `sent[c]` lines, 0..) seen at least once; returns
/// (lines seen, duplicates).
fn assert_all_delivered(dir: &Path, sent: &BTreeMap<u64, u64>, procs: &[&Proc]) -> (u64, u64) {
    let want: u64 = sent.values().sum();
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    let mut seen = delivered(dir, "out.");
    while (seen.len() as u64) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        seen = delivered(dir, "out.");
    }
    let missing: Vec<_> = sent
        .iter()
        .flat_map(|(&c, &n)| (0..n).map(move |i| (c, i)))
        .filter(|k| !seen.contains_key(k))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {want} lines never arrived, e.g. {missing:?}\n{}",
        want - seen.len().min(want as usize) as u64,
        describe_all(procs)
    );
    let dups: u64 = seen.values().map(|&n| u64::from(n) - 1).sum();
    (seen.len() as u64, dups)
}

/// Redeliveries the counters of every incarnation of `program` show.
fn total(z: &Zerologd, program: &str, counter: &str) -> u64 {
    z.counters(program).1[counter].as_u64().unwrap_or(0)
}

fn kill(z: &Zerologd, program: &str) {
    let pid = z.pid_of(program).expect("running");
    kill9(pid);
    z.wait_new_pid(program, pid);
}

#[test]
fn a_burst_survives_its_receiver_and_workers_killed_twice_each() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &topology(free_port()));
    let load = Load {
        count: 2_000_000,
        rate: 0,
        connections: 1,
    };
    let loggen = load.start(dir.path(), z.backend);
    for (i, program) in ["all", "w0:0", "all", "w1:0"].iter().enumerate() {
        std::thread::sleep(Duration::from_millis(300 + 100 * i as u64));
        kill(&z, program);
    }
    loggen_report(&loggen, DELIVERY_TIMEOUT);
    let sent = BTreeMap::from([(0, load.count)]);
    let (seen, dups) = assert_all_delivered(dir.path(), &sent, &[&z.proc]);
    let again = total(&z, "w0:0", "redelivered") + total(&z, "w1:0", "redelivered");
    let restarts: u64 = ["all", "w0:0", "w1:0"]
        .iter()
        .map(|p| z.program_json(p)["restarts"].as_u64().unwrap())
        .sum();
    eprintln!("2,000,000 lines, 4 kills: {seen} distinct delivered, {dups} duplicates, {again} redeliveries counted by the workers");
    assert_eq!(restarts, 4, "{}", z.proc.describe());
    assert!(
        dups <= again,
        "{dups} duplicates but only {again} redeliveries counted"
    );
}

/// The sequence numbers of app `app`'s lines in the workers' files.
fn seen_of(dir: &Path, app: &str) -> std::collections::BTreeSet<u64> {
    let mut seen = std::collections::BTreeSet::new();
    for entry in std::fs::read_dir(dir).unwrap() {
        let path = entry.unwrap().path();
        if !path
            .file_name()
            .unwrap()
            .to_string_lossy()
            .starts_with("out.")
        {
            continue;
        }
        for line in read_lines(&path) {
            let text = String::from_utf8_lossy(&line);
            if !text.contains(&format!(" {app} ")) {
                continue;
            }
            if let Some(n) = text
                .split_once("seq=0.")
                .and_then(|(_, r)| r.split_whitespace().next())
                .and_then(|n| n.parse().ok())
            {
                seen.insert(n);
            }
        }
    }
    seen
}

/// Runs a RELP loggen as `app` and, after 700 ms, `kill`; returns how many lines were
/// acknowledged (a prefix: RELP answers in order).
fn relp_round(dir: &Path, relp: u16, app: &str, kill: impl FnOnce()) -> u64 {
    let n = 300_000u64;
    let mut cmd = Command::new(zerolog_bin());
    cmd.args(["loggen", "--relp", "--app", app, "-P"])
        .arg(relp.to_string())
        .args(["-n", &n.to_string(), "-r", "100000"]);
    let loggen = Proc::spawn(dir, &format!("loggen-{app}"), cmd);
    std::thread::sleep(Duration::from_millis(700));
    kill();
    let status = loggen.wait_exit(DELIVERY_TIMEOUT);
    if status.success() {
        return n;
    }
    // "connection 0: ...: U of S lines sent unacknowledged"
    let err = loggen.stderr_text();
    let counts = err
        .split_once(" lines sent unacknowledged")
        .and_then(|(head, _)| head.rsplit_once(": "))
        .and_then(|(_, c)| c.split_once(" of "))
        .and_then(|(u, s)| Some((u.parse::<u64>().ok()?, s.parse::<u64>().ok()?)));
    let (unacked, sent) = counts.unwrap_or_else(|| panic!("loggen failed\n{}", loggen.describe()));
    sent - unacked
}

fn assert_arrived(dir: &Path, app: &str, acked: u64, z: &Zerologd) {
    let mut seen = seen_of(dir, app);
    let deadline = Instant::now() + DELIVERY_TIMEOUT;
    while !(0..acked).all(|i| seen.contains(&i)) && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        seen = seen_of(dir, app);
    }
    let missing = (0..acked).filter(|i| !seen.contains(i)).count();
    eprintln!("RELP round {app}: {acked} acknowledged, {missing} of them missing");
    assert_eq!(
        missing,
        0,
        "{missing} acknowledged lines of {app} lost\n{}",
        z.proc.describe()
    );
}

#[test]
fn relp_loses_nothing_acknowledged_when_the_forwarder_or_zerologd_is_killed() {
    let dir = tempfile::tempdir().unwrap();
    let relp = free_port();
    let mut z = Zerologd::start(dir.path(), &topology(relp));
    let acked = relp_round(dir.path(), relp, "killfwd", || kill(&z, "forwarder"));
    assert!(
        acked > 0 && acked < 300_000,
        "the kill came too late: {acked}"
    );
    assert_arrived(dir.path(), "killfwd", acked, &z);

    let pid = z.proc.pid() as i32;
    let acked = relp_round(dir.path(), relp, "killzerologd", || {
        kill9(pid);
        z.proc.wait_exit(Duration::from_secs(10));
    });
    assert!(
        acked > 0 && acked < 300_000,
        "the kill came too late: {acked}"
    );
    // Its children went with it; start it again, as systemd would.
    wait_until(Duration::from_secs(10), "the old forwarder gone", || {
        !tcp_accepts(relp)
    });
    let config = z.config.clone();
    z = Zerologd::spawn(dir.path(), "zerologd-2", &config, z.backend);
    z.wait_ready();
    assert_arrived(dir.path(), "killzerologd", acked, &z);
}
