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

/// [`TWO_FILE_WORKERS`] with a RELP input on `relp` too, and workers that write each
/// message's journal number (`with_seq`).
fn topology(relp: u16) -> String {
    let input = format!("relp = [\"127.0.0.1:{relp}\"]\npublish =");
    TWO_FILE_WORKERS.replacen("publish =", &input, 1).replace(
        "receiver = \"all\"\n",
        "receiver = \"all\"\nwith_seq = true\n",
    )
}

/// The copies the workers wrote, told apart by their journal numbers (`with_seq`).
#[derive(Debug, Default)]
struct Tally {
    /// Distinct lines seen.
    seen: u64,
    /// Copies beyond the first of each line.
    dups: u64,
    /// Copies of one journal record beyond its first: redeliveries.
    redelivered: u64,
    /// Copies beyond a line's first without the redelivery mark (`+`): none may be.
    unmarked: u64,
    /// Copies with a journal number of their own: the sender sent the line again.
    resent: u64,
    /// Copies written with the redelivery mark.
    marked: u64,
}

/// Each line's copies in the workers' files: `(journal number, marked)` per copy.
fn copies(dir: &Path) -> BTreeMap<(u64, u64), Vec<(u64, bool)>> {
    let mut all: BTreeMap<_, Vec<_>> = BTreeMap::new();
    for w in ["out.w0", "out.w1"] {
        for line in read_lines(&dir.join(w)) {
            let text = String::from_utf8_lossy(&line);
            let parsed = text.split_once(' ').and_then(|(num, rest)| {
                let (marked, num) = match num.strip_prefix('+') {
                    Some(n) => (true, n),
                    None => (false, num),
                };
                let (c, n) = rest
                    .split_once("seq=")?
                    .1
                    .split_whitespace()
                    .next()?
                    .split_once('.')?;
                Some((
                    num.parse().ok()?,
                    marked,
                    (c.parse().ok()?, n.parse().ok()?),
                ))
            });
            let (num, marked, id) =
                parsed.unwrap_or_else(|| panic!("not a numbered loggen line in {w}: {text:?}"));
            all.entry(id).or_default().push((num, marked));
        }
    }
    all
}

fn tally(all: &BTreeMap<(u64, u64), Vec<(u64, bool)>>) -> Tally {
    let mut t = Tally::default();
    for copies in all.values() {
        t.seen += 1;
        t.dups += copies.len() as u64 - 1;
        t.marked += copies.iter().filter(|c| c.1).count() as u64;
        let mut nums: BTreeMap<u64, (u64, u64)> = BTreeMap::new();
        for &(num, marked) in copies {
            let e = nums.entry(num).or_default();
            e.0 += 1;
            e.1 += u64::from(marked);
        }
        t.resent += nums.len() as u64 - 1;
        for (i, (n, m)) in nums.values().enumerate() {
            t.redelivered += n - 1;
            // The first copy of the line's first record may be unmarked; a re-sent line's
            // records are marked from their first copy.
            let first = u64::from(i == 0);
            t.unmarked += (n - first).saturating_sub(*m);
        }
    }
    t
}

/// Every line sent (connection c sent `sent[c]` lines, 0..) seen at least once.
fn assert_all_delivered(dir: &Path, sent: &BTreeMap<u64, u64>, procs: &[&Proc]) -> Tally {
    let want: u64 = sent.values().sum();
    let started = Instant::now();
    let deadline = started + DELIVERY_TIMEOUT;
    let mut seen = delivered(dir, "out.");
    // How many had arrived 10 s before the end: a failure says whether lines were still
    // arriving (too slow) or had stopped (lost).
    let mut earlier = std::collections::VecDeque::from([(started, seen.len())]);
    while (seen.len() as u64) < want && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(250));
        seen = delivered(dir, "out.");
        earlier.push_back((Instant::now(), seen.len()));
        while earlier.len() > 1 && earlier[1].0.elapsed() >= Duration::from_secs(10) {
            earlier.pop_front();
        }
    }
    let arriving = seen.len() - earlier[0].1;
    let missing: Vec<_> = sent
        .iter()
        .flat_map(|(&c, &n)| (0..n).map(move |i| (c, i)))
        .filter(|k| !seen.contains_key(k))
        .take(10)
        .collect();
    assert!(
        missing.is_empty(),
        "{} of {want} lines never arrived in {:.0} s ({arriving} arrived in its last 10 s), e.g. {missing:?}\n{}",
        want - seen.len().min(want as usize) as u64,
        started.elapsed().as_secs_f64(),
        describe_all(procs)
    );
    let t = tally(&copies(dir));
    assert_eq!(t.unmarked, 0, "redeliveries without their mark: {t:?}");
    t
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
    let t = assert_all_delivered(dir.path(), &sent, &[&z.proc]);
    let again = total(&z, "w0:0", "redelivered") + total(&z, "w1:0", "redelivered");
    let restarts: u64 = ["all", "w0:0", "w1:0"]
        .iter()
        .map(|p| z.program_json(p)["restarts"].as_u64().unwrap())
        .sum();
    eprintln!("2,000,000 lines, 4 kills: {t:?}, {again} redeliveries counted by the workers");
    assert_eq!(restarts, 4, "{}", z.proc.describe());
    // loggen sends each line once over TCP: every duplicate is a redelivery, marked, counted.
    assert_eq!(t.resent, 0, "{t:?}");
    assert!(
        t.dups <= again,
        "{} duplicates but only {again} redeliveries counted",
        t.dups
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
    wait_until(READY_TIMEOUT, "the RELP input listening", || {
        tcp_accepts(relp)
    });
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

/// rsyslog's `omrelp` sends 1,000,000 lines as fast as it can while, every 0.7 s, the
/// forwarder, the receiver, a worker, zerologd itself (started again by the test, as systemd
/// would) and then all of them at once are killed -9, twice over: every line arrives.
#[test]
fn rsyslog_omrelp_loses_nothing_while_everything_is_killed_in_turn() {
    let Some(rsyslogd) = peer_or_skip(
        "rsyslogd with omrelp (Debian packages rsyslog, rsyslog-relp)",
        rsyslogd_with(&["omrelp"]),
    ) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let relp = free_port();
    let mut z = Zerologd::start(dir.path(), &topology(relp));
    let action = format!(
        r#"action(type="omrelp" target="127.0.0.1" port="{relp}" template="RSYSLOG_ForwardFormat"
         queue.type="LinkedList" queue.size="2000000" queue.discardSeverity="8"
         action.resumeRetryCount="-1" action.resumeInterval="1")"#
    );
    let rsyslog = Rsyslog::start_action(&rsyslogd, dir.path(), r#"module(load="omrelp")"#, &action);
    let load = Load {
        count: 1_000_000,
        rate: 0,
        connections: 1,
    };
    let loggen = load.start(dir.path(), rsyslog.input_port);
    // $ZEROLOG_TEST_KILLS (say "forwarder") kills one kind only, for a loss table per kind.
    let only = std::env::var("ZEROLOG_TEST_KILLS").ok();
    let all_kinds = ["forwarder", "all", "w0:0", "zerologd", "everything"];
    let kinds: Vec<&str> = match &only {
        Some(k) => all_kinds.iter().copied().filter(|a| a == k).collect(),
        None => all_kinds.to_vec(),
    };
    assert!(
        !kinds.is_empty(),
        "ZEROLOG_TEST_KILLS: one of {all_kinds:?}"
    );
    let mut kills = 0;
    let started = Instant::now();
    let mut round = 0;
    // Ten kills, 0.7 s apart, cover most of the time omrelp takes to send the million lines.
    while kills < 10 || (loggen.is_running() && started.elapsed() < Duration::from_secs(60)) {
        std::thread::sleep(Duration::from_millis(700));
        let kind = kinds[kills % kinds.len()];
        match kind {
            "zerologd" | "everything" => {
                if kind == "everything" {
                    for p in ["forwarder", "all", "w0:0", "w1:0"] {
                        if let Some(pid) = z.pid_of(p) {
                            kill9(pid);
                        }
                    }
                }
                kill9(z.proc.pid() as i32);
                z.proc.wait_exit(Duration::from_secs(10));
                wait_until(Duration::from_secs(10), "the old forwarder gone", || {
                    !tcp_accepts(relp)
                });
                round += 1;
                let config = z.config.clone();
                z = Zerologd::spawn(dir.path(), &format!("zerologd-{round}"), &config, z.backend);
                z.wait_ready();
            }
            program => kill(&z, program),
        }
        kills += 1;
    }
    loggen_report(&loggen, DELIVERY_TIMEOUT);
    let sent = BTreeMap::from([(0, load.count)]);
    let t = assert_all_delivered(dir.path(), &sent, &[&z.proc, &rsyslog.proc]);
    eprintln!(
        "rsyslog omrelp, 1,000,000 lines, {kills} kills ({kinds:?} in turn) in {:.1} s: {t:?}",
        started.elapsed().as_secs_f64(),
    );
    assert!(t.marked >= t.dups, "{t:?}");
}

fn current(z: &Zerologd, program: &str, counter: &str) -> u64 {
    z.counters(program).0[counter].as_u64().unwrap_or(0)
}

fn ctl_ok(z: &Zerologd, args: &[&str]) {
    let (code, out, err) = z.ctl(args);
    assert_eq!(code, 0, "zerologd {args:?}: {out}{err}");
}

/// Both workers stopped for 60 s under a steady load: the input is still accepted (into the
/// journal), the backlog shows, and everything arrives once they are back.
#[test]
fn workers_stopped_for_60_s_under_load_lose_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &topology(free_port()));
    let load = Load {
        count: 750_000,
        rate: 10_000,
        connections: 1,
    };
    let loggen = load.start(dir.path(), z.backend);
    std::thread::sleep(Duration::from_secs(2));
    ctl_ok(&z, &["stop", "w0"]);
    ctl_ok(&z, &["stop", "w1"]);
    let before = current(&z, "forwarder", "journal_appended");
    std::thread::sleep(Duration::from_secs(60));
    let after = current(&z, "forwarder", "journal_appended");
    let backlog = current(&z, "forwarder", "journal_backlog");
    let age = current(&z, "forwarder", "journal_oldest_age_ms");
    let receiver_backlog = current(&z, "all", "backlog");
    eprintln!("workers stopped 60 s: {} lines accepted meanwhile, journal backlog {backlog}, oldest {age} ms, receiver backlog {receiver_backlog}", after - before);
    // The sender was not held back: about 10,000 lines a second went into the journal.
    assert!(
        after - before > 500_000,
        "input throttled: {} lines in 60 s",
        after - before
    );
    assert!(
        backlog > 500_000 && age > 50_000,
        "backlog {backlog}, age {age} ms"
    );
    assert!(
        receiver_backlog > 400_000,
        "receiver backlog {receiver_backlog}"
    );
    // A receiver 30 s behind is warned about.
    let log = z.proc.stderr_text();
    assert!(
        log.contains("a receiver is behind") && log.contains("receiver=\"all\""),
        "no warning of the growing backlog:\n{}",
        z.proc.describe()
    );
    ctl_ok(&z, &["start", "w0"]);
    ctl_ok(&z, &["start", "w1"]);
    loggen_report(&loggen, DELIVERY_TIMEOUT);
    let sent = BTreeMap::from([(0, load.count)]);
    assert_all_delivered(dir.path(), &sent, &[&z.proc]);
    wait_until(DELIVERY_TIMEOUT, "the backlog drained", || {
        current(&z, "forwarder", "journal_backlog") == 0
    });
}

/// With the workers stopped, a small journal fills: the input stops (back-pressure, counted
/// as journal_full), and nothing is lost once they are back.
#[test]
fn a_full_journal_holds_the_input_back_and_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let topology = topology(free_port()).replacen(
        "[forwarder]\n",
        "[forwarder]\njournal_max_size = 4194304\n",
        1,
    );
    let z = Zerologd::start(dir.path(), &topology);
    ctl_ok(&z, &["stop", "w0"]);
    ctl_ok(&z, &["stop", "w1"]);
    let load = Load {
        count: 200_000,
        rate: 0,
        connections: 1,
    };
    let loggen = load.start(dir.path(), z.backend);
    wait_until(Duration::from_secs(20), "the journal full", || {
        current(&z, "forwarder", "journal_full") > 0
    });
    let held = current(&z, "forwarder", "journal_appended");
    std::thread::sleep(Duration::from_secs(1));
    assert_eq!(
        current(&z, "forwarder", "journal_appended"),
        held,
        "appended past full"
    );
    assert!(loggen.is_running(), "the sender was held back");
    let bytes = current(&z, "forwarder", "journal_bytes");
    assert!(bytes <= 4 << 20, "journal at {bytes} bytes, over its 4 MiB");
    eprintln!("full journal: {held} lines held in {bytes} bytes; the sender waits");
    ctl_ok(&z, &["start", "w0"]);
    ctl_ok(&z, &["start", "w1"]);
    loggen_report(&loggen, DELIVERY_TIMEOUT);
    let sent = BTreeMap::from([(0, load.count)]);
    assert_all_delivered(dir.path(), &sent, &[&z.proc]);
}

/// The journal on a 2 MiB tmpfs: the disk fills before the journal does. No crash, a clear
/// log line, the input waits; once the filesystem is grown, everything arrives.
#[test]
fn a_full_disk_pauses_the_input_and_recovers_when_space_returns() {
    if !root_or_skip("to mount a small tmpfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let state = dir.path().join("state");
    std::fs::create_dir_all(&state).unwrap();
    let mount = |opts: &str| {
        let status = Command::new("mount")
            .args(["-t", "tmpfs", "-o", opts, "tmpfs"])
            .arg(&state)
            .status()
            .unwrap();
        assert!(status.success(), "mount -o {opts}");
    };
    mount("size=2m");
    struct Unmount<'a>(&'a Path);
    impl Drop for Unmount<'_> {
        fn drop(&mut self) {
            let _ = Command::new("umount").arg("-l").arg(self.0).status();
        }
    }
    let _unmount = Unmount(&state);
    let z = Zerologd::start_logging(dir.path(), &topology(free_port()), "info");
    ctl_ok(&z, &["stop", "w0"]);
    ctl_ok(&z, &["stop", "w1"]);
    let load = Load {
        count: 100_000,
        rate: 0,
        connections: 1,
    };
    let loggen = load.start(dir.path(), z.backend);
    wait_until(Duration::from_secs(20), "a failed journal write", || {
        current(&z, "forwarder", "journal_write_errors") > 0
    });
    assert!(loggen.is_running(), "the sender was held back");
    assert!(z.proc.is_running(), "{}", z.proc.describe());
    let log = z.info_log().unwrap();
    assert!(log.contains("cannot append to the journal"), "{log}");
    let status = Command::new("mount")
        .args(["-o", "remount,size=64m"])
        .arg(&state)
        .status()
        .unwrap();
    assert!(status.success(), "remount");
    ctl_ok(&z, &["start", "w0"]);
    ctl_ok(&z, &["start", "w1"]);
    loggen_report(&loggen, DELIVERY_TIMEOUT);
    let sent = BTreeMap::from([(0, load.count)]);
    assert_all_delivered(dir.path(), &sent, &[&z.proc]);
    assert_eq!(current(&z, "forwarder", "journal_cut_bytes"), 0);
}

/// Reads from `conn` until `want` has arrived (or the peer closes); returns what came.
fn read_until(conn: &mut std::net::TcpStream, want: &[u8]) -> Vec<u8> {
    use std::io::Read;
    conn.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut got = Vec::new();
    let mut buf = [0u8; 4096];
    while !contains(&got, want) {
        match conn.read(&mut buf) {
            Ok(0) | Err(_) => break,
            Ok(n) => got.extend_from_slice(&buf[..n]),
        }
    }
    got
}

/// The RELP session as librelp's client sees it: `open` answered with our offers, each
/// `syslog` answered `200 OK` in order, a frame that breaks the protocol ends the session and
/// is counted, and a stop sends `serverclose`.
#[test]
fn relp_sessions_answer_in_order_count_protocol_errors_and_end_with_serverclose() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let relp = free_port();
    let z = Zerologd::start(dir.path(), &topology(relp));
    let offers = "relp_version=0\nrelp_software=test\ncommands=syslog";
    let open = format!("1 open {} {offers}\n", offers.len());
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", relp)).unwrap();
    conn.write_all(open.as_bytes()).unwrap();
    let answer = read_until(&mut conn, b"commands=syslog\n");
    let text = String::from_utf8_lossy(&answer);
    assert!(
        text.starts_with("1 rsp ") && text.contains(" 200 OK\nrelp_version=0\n"),
        "{text:?}"
    );
    let msg = "<13>1 - h relptest - - - one";
    let frames = format!(
        "2 syslog {} {msg}\n3 syslog {} {msg}\n",
        msg.len(),
        msg.len()
    );
    conn.write_all(frames.as_bytes()).unwrap();
    let answer = read_until(&mut conn, b"3 rsp 6 200 OK\n");
    assert_eq!(
        String::from_utf8_lossy(&answer),
        "2 rsp 6 200 OK\n3 rsp 6 200 OK\n"
    );
    // Not a frame: the session ends, counted.
    conn.write_all(b"4 syslog x\n").unwrap();
    let rest = read_until(&mut conn, b"\n");
    assert!(
        rest.is_empty(),
        "answered a broken frame: {:?}",
        String::from_utf8_lossy(&rest)
    );
    wait_until(READY_TIMEOUT, "relp_errors counted", || {
        current(&z, "forwarder", "relp_errors") == 1
    });
    assert_eq!(current(&z, "forwarder", "relp_acked"), 2);
    // An open that does not offer the syslog command is refused with a 500.
    let bad = "relp_version=0\ncommands=other";
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", relp)).unwrap();
    conn.write_all(format!("1 open {} {bad}\n", bad.len()).as_bytes())
        .unwrap();
    let refused = String::from_utf8_lossy(&read_until(&mut conn, b"\n")).into_owned();
    assert!(
        refused.starts_with("1 rsp ") && refused.contains(" 500 "),
        "{refused:?}"
    );
    wait_until(READY_TIMEOUT, "the refused open counted", || {
        current(&z, "forwarder", "relp_errors") == 2
    });

    // A session open at a stop gets serverclose.
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", relp)).unwrap();
    conn.write_all(open.as_bytes()).unwrap();
    read_until(&mut conn, b"commands=syslog\n");
    z.proc.signal("TERM");
    let end = read_until(&mut conn, b"serverclose");
    assert_eq!(String::from_utf8_lossy(&end), "0 serverclose 0\n");
    z.proc.wait_exit(Duration::from_secs(20));
    let out: usize = ["out.w0", "out.w1"]
        .iter()
        .map(|f| count_lines(&dir.path().join(f)))
        .sum();
    assert_eq!(out, 2, "the two acknowledged messages were delivered");
}

/// One RELP session to `port` that sends loggen-like lines `seq=5.I` for each I of `lines`
/// and reads every answer.
fn relp_send(port: u16, lines: impl Iterator<Item = u64>) {
    use std::io::Write;
    let offers = "relp_version=0\nrelp_software=test\ncommands=syslog";
    let mut out = format!("1 open {} {offers}\n", offers.len());
    let mut last = 1;
    for (txnr, i) in (2..).zip(lines) {
        let msg = format!("<13>1 - h resend - - - seq=5.{i} x");
        out.push_str(&format!("{txnr} syslog {} {msg}\n", msg.len()));
        last = txnr;
    }
    let mut conn = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    conn.write_all(out.as_bytes()).unwrap();
    let want = format!("{last} rsp 6 200 OK\n");
    let answers = read_until(&mut conn, want.as_bytes());
    assert!(
        contains(&answers, want.as_bytes()),
        "{:?}",
        String::from_utf8_lossy(&answers)
    );
}

fn wait_copies(dir: &Path, n: usize) -> Tally {
    wait_until(DELIVERY_TIMEOUT, &format!("{n} copies written"), || {
        copies(dir).values().map(Vec::len).sum::<usize>() >= n
    });
    tally(&copies(dir))
}

/// A RELP sender sends again, first thing in its next session, what it had no answer for.
/// When the forwarder died with those messages already in its journal, the copies are
/// duplicates with journal numbers of their own: they reach the workers marked as
/// redeliveries and are counted in `relp_resent`; the messages after them are not marked.
#[test]
fn relp_resends_after_a_forwarder_kill_are_marked_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let relp = free_port();
    let z = Zerologd::start(dir.path(), &topology(relp));
    relp_send(relp, 0..100);
    wait_copies(dir.path(), 100);
    kill(&z, "forwarder");
    wait_until(READY_TIMEOUT, "the new forwarder listening", || {
        tcp_accepts(relp)
    });
    // As omrelp does after the kill: the 100 it had no answer for (say), then new ones.
    relp_send(relp, 0..150);
    let t = wait_copies(dir.path(), 250);
    assert_eq!((t.seen, t.resent, t.unmarked), (150, 100, 0), "{t:?}");
    assert_eq!(current(&z, "forwarder", "relp_resent"), 100);
    // A session that starts with new messages marks nothing, even a repeat further on.
    relp_send(relp, (150..160).chain(0..10));
    let t = wait_copies(dir.path(), 270);
    assert_eq!((t.seen, t.resent, t.unmarked), (160, 110, 10), "{t:?}");
    assert_eq!(current(&z, "forwarder", "relp_resent"), 100);
}

/// The monitor of a journaled forwarder gets a copy of every message, several per batch (a
/// burst small enough for the monitor's queue, which drops beyond it by design).
#[test]
fn a_journaled_forwarders_monitor_gets_every_message() {
    let dir = tempfile::tempdir().unwrap();
    let monitor = free_port();
    let topology = topology(free_port()).replacen(
        "[forwarder]\n",
        &format!("[forwarder]\nmonitor = \"tcp://127.0.0.1:{monitor}\"\n"),
        1,
    );
    let z = Zerologd::start(dir.path(), &topology);
    let ctx = zmq::Context::new();
    let sub = ctx.socket(zmq::SUB).unwrap();
    sub.set_subscribe(b"").unwrap();
    sub.set_rcvtimeo(100).unwrap();
    sub.connect(&format!("tcp://127.0.0.1:{monitor}")).unwrap();
    // The monitor is a plain PUB: wait until the subscription has reached it.
    let mut joined = false;
    for i in 0..100 {
        send_tcp(z.backend, format!("<13>app: probe {i}\n").as_bytes());
        if sub.recv_multipart(0).is_ok() {
            joined = true;
            break;
        }
    }
    assert!(joined, "the monitor never sent anything");
    while sub.recv_multipart(0).is_ok() {}
    // One write: the forwarder frames it into batches of many messages.
    let burst: String = (0..25).map(|i| format!("<13>app: burst {i}\n")).collect();
    send_tcp(z.backend, burst.as_bytes());
    let mut seen = 0;
    let deadline = Instant::now() + Duration::from_secs(10);
    while seen < 25 && Instant::now() < deadline {
        let Ok(frames) = sub.recv_multipart(0) else {
            continue;
        };
        assert_eq!(frames.len(), 2, "[topic, message]");
        if contains(&frames[1], b" burst ") {
            seen += 1;
        }
    }
    assert_eq!(seen, 25, "monitor copies of a 25-line burst");
}
