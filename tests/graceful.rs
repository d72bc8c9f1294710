//! The graceful paths lose nothing under a steady load: `zerologd restart` of workers, a
//! SIGHUP reload that changes a worker count, and SIGTERM of zerologd. `zerolog loggen` sends
//! numbered lines (`seq=CONN.N`) at a steady rate while the operation happens; every line must
//! reach a worker exactly once.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use crate::common::load::*;
use crate::common::zerologd::*;
use crate::common::*;

/// Two stdin workers, each appending to a file of its own (`out.PID`), so a restarted worker
/// process writes a new file and nothing is interleaved. A worker that does not stop within
/// 2 s is killed: a stop that waited for the load to end would hide a lossy one.
const TOPOLOGY: &str = r#"
[forwarder]
tcp = ["127.0.0.1:{B}"]
publish = "tcp://127.0.0.1:{F}"

[[receiver]]
name = "all"

[[worker]]
name = "w"
receiver = "all"
numprocs = NUMPROCS
command = ["sh", "-c", "exec cat >> {DIR}/out.$$"]
stop_timeout = "2s"
"#;

fn topology(numprocs: usize) -> String {
    TOPOLOGY.replace("NUMPROCS", &numprocs.to_string())
}

const RATE: u64 = 10_000;

/// `seconds` of steady load at [`RATE`] over 2 connections.
fn steady(seconds: u64) -> Load {
    Load {
        count: seconds * RATE,
        rate: RATE,
        connections: 2,
    }
}

fn loggen_sent(loggen: &Proc) -> u64 {
    loggen_report(loggen, Duration::from_secs(120))["messages"]
        .as_u64()
        .unwrap()
}

fn assert_all_delivered(dir: &Path, load: &Load, z: &Zerologd) {
    assert_all_delivered_once(dir, "out.", load, &[&z.proc]);
}

fn worker_pids(z: &Zerologd) -> BTreeMap<String, i32> {
    z.status()
        .into_iter()
        .filter(|r| r.0.starts_with("w:") && r.1 == "RUNNING")
        .filter_map(|r| Some((r.0, r.2?)))
        .collect()
}

#[test]
fn restarting_workers_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &topology(2));
    let load = steady(8);
    let loggen = load.start(dir.path(), z.backend);

    // Each restart must be over well before the load is: a graceful stop that only ends with
    // the load, or with SIGKILL after stop_timeout, would not show what it loses.
    std::thread::sleep(Duration::from_millis(1000));
    let before = worker_pids(&z);
    assert_eq!(before.len(), 2, "two workers run: {before:?}");
    let t = Instant::now();
    let (code, _, err) = z.ctl(&["restart", "w"]);
    assert_eq!(code, 0, "restart w: {err}");
    for (name, pid) in &before {
        z.wait_new_pid(name, *pid);
    }
    let group_restart = t.elapsed();

    std::thread::sleep(Duration::from_millis(1000));
    let w0 = z.pid_of("w:0").unwrap();
    let t = Instant::now();
    let (code, _, err) = z.ctl(&["restart", "w:0"]);
    assert_eq!(code, 0, "restart w:0: {err}");
    z.wait_new_pid("w:0", w0);
    let one_restart = t.elapsed();
    assert!(
        loggen.is_running(),
        "the restarts happened under load (loggen still sending)"
    );
    assert!(
        group_restart < Duration::from_millis(1500) && one_restart < Duration::from_millis(1500),
        "graceful restarts took {group_restart:?} and {one_restart:?}: workers did not drain \
         and exit promptly\n{}",
        z.proc.describe()
    );

    let sent = loggen_sent(&loggen);
    assert_eq!(sent, load.count);
    assert_all_delivered(dir.path(), &load, &z);
    if let Some(log) = z.info_log() {
        // Acknowledged delivery needs no pause: a stopping worker takes nothing new.
        assert!(
            !log.contains("pausing receiver while its worker stops"),
            "{}",
            z.proc.describe()
        );
    }
}

#[test]
fn reload_with_changed_worker_counts_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &topology(2));
    let forwarder = z.pid_of("forwarder").unwrap();
    let load = steady(8);
    let loggen = load.start(dir.path(), z.backend);

    // 2 -> 3 -> 1 -> 2 workers, one reload every 800 ms.
    let mut numprocs_now = 2;
    for numprocs in [3, 1, 2] {
        std::thread::sleep(Duration::from_millis(800));
        let text = std::fs::read_to_string(&z.config).unwrap().replace(
            &format!("numprocs = {numprocs_now}"),
            &format!("numprocs = {numprocs}"),
        );
        std::fs::write(&z.config, text).unwrap();
        numprocs_now = numprocs;
        let t = Instant::now();
        z.proc.signal("HUP");
        wait_until(
            READY_TIMEOUT,
            &format!("{numprocs} workers running after reload"),
            || worker_pids(&z).len() == numprocs && z.status().len() == 2 + numprocs,
        );
        assert!(
            t.elapsed() < Duration::from_millis(1500),
            "reload to {numprocs} workers took {:?}: removed workers did not drain and exit \
             promptly\n{}",
            t.elapsed(),
            z.proc.describe()
        );
    }
    assert!(
        loggen.is_running(),
        "the reloads happened under load (loggen still sending)"
    );

    assert_eq!(loggen_sent(&loggen), load.count);
    assert_all_delivered(dir.path(), &load, &z);
    assert_eq!(
        z.pid_of("forwarder"),
        Some(forwarder),
        "the forwarder kept running through the reloads"
    );
}

#[test]
fn sigterm_under_load_delivers_every_line_sent() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &topology(2));
    let load = steady(3);
    let loggen = load.start(dir.path(), z.backend);

    // The stop begins while loggen still has two seconds to send: the forwarder stops
    // accepting connections but reads the open ones until they end (up to 5 s).
    std::thread::sleep(Duration::from_millis(1000));
    z.proc.signal("TERM");

    let sent = loggen_sent(&loggen);
    assert_eq!(sent, load.count);
    let status = z.proc.wait_exit(Duration::from_secs(60));
    assert!(status.success(), "zerologd exit\n{}", z.proc.describe());
    assert_all_delivered(dir.path(), &load, &z);
}

#[test]
fn a_stop_drops_and_counts_a_message_its_sender_left_unfinished() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &[]);
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", p.backend_port())).unwrap();
    use std::io::Write;
    conn.write_all(b"<13>app: whole line\n<13>app: half a li")
        .unwrap();
    p.wait_for_lines(1, DELIVERY_TIMEOUT);

    // The sender keeps the connection open, mid-message: the stop drains it until it is quiet,
    // then closes it. The unfinished message must not be passed on as if it were whole.
    p.forwarder.proc.signal("TERM");
    let status = p.forwarder.proc.wait_exit(Duration::from_secs(30));
    assert!(status.success(), "{}", p.describe());
    let log = p.forwarder.proc.stderr_text();
    assert!(
        log.contains("cut_at_stop=1") && log.contains("messages_received=1 "),
        "the cut message is counted, not received\n{log}"
    );
    p.receiver.proc.signal("TERM");
    p.receiver.proc.wait_exit(Duration::from_secs(30));
    p.worker.proc.signal("TERM");
    p.worker.proc.wait_exit(Duration::from_secs(30));
    assert_eq!(
        read_lines(p.out()),
        vec![b"<13>app: whole line".to_vec()],
        "only the whole message was delivered\n{}",
        p.describe()
    );
    drop(conn);
}
