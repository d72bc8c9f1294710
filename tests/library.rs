//! The library as a Rust user sees it: the example workers (`examples/sqlite_worker.rs`,
//! `examples/count_worker.rs`) against a real pipeline and under zerologd, and the runner's
//! receive modes.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::sync::OnceLock;
use std::time::Duration;

use crate::common::*;
use zerolog::signals::Signals;
use zerolog::worker::{Receive, Runner, Worker};

/// The built example `name` (`target/<profile>/examples/NAME`). `cargo test` builds the
/// examples; when only this test target was built (`cargo test --test library`), build it.
fn example_bin(name: &str) -> PathBuf {
    static BUILT: OnceLock<()> = OnceLock::new();
    let profile_dir = Path::new(env!("CARGO_BIN_EXE_zerolog"))
        .parent()
        .expect("binary directory");
    let path = profile_dir.join("examples").join(name);
    if !path.exists() {
        BUILT.get_or_init(|| {
            let mut cmd = Command::new(option_env!("CARGO").unwrap_or("cargo"));
            cmd.args(["build", "-p", "zerolog", "--examples"])
                .current_dir(env!("CARGO_MANIFEST_DIR"));
            if profile_dir.ends_with("release") {
                cmd.arg("--release");
            }
            let status = cmd.status().expect("running cargo build --examples");
            assert!(status.success(), "cargo build --examples failed");
        });
    }
    assert!(path.exists(), "example {} not built", path.display());
    path
}

/// The rows of `logs`, in insertion order; empty while the table does not exist.
fn rows(db: &Path) -> Vec<String> {
    let read = || -> rusqlite::Result<Vec<String>> {
        let conn =
            rusqlite::Connection::open_with_flags(db, rusqlite::OpenFlags::SQLITE_OPEN_READ_ONLY)?;
        conn.busy_timeout(Duration::from_secs(10))?;
        let mut stmt = conn.prepare("SELECT message FROM logs ORDER BY rowid")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        rows.collect()
    };
    if !db.exists() {
        return Vec::new();
    }
    read().unwrap_or_default()
}

/// Syslog lines, some not ASCII and one not UTF-8 at all.
fn messages(n: usize, tag: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            let mut m =
                format!("<14>1 2026-01-01T00:00:00Z host app - - - {tag} {i} été").into_bytes();
            if i == n / 2 {
                m.extend_from_slice(b" latin-1 \xe9t\xe9");
            }
            m
        })
        .collect()
}

fn lf_joined(msgs: &[Vec<u8>]) -> Vec<u8> {
    msgs.iter()
        .flat_map(|m| m.iter().copied().chain([b'\n']))
        .collect()
}

/// What the worker stores: the text, invalid UTF-8 replaced by U+FFFD.
fn as_rows(msgs: &[Vec<u8>]) -> Vec<String> {
    msgs.iter()
        .map(|m| String::from_utf8_lossy(m).into_owned())
        .collect()
}

fn wait_for_rows(db: &Path, n: usize, procs: &[&Proc]) -> Vec<String> {
    let start = std::time::Instant::now();
    loop {
        let got = rows(db);
        if got.len() >= n {
            return got;
        }
        if start.elapsed() > DELIVERY_TIMEOUT {
            panic!(
                "timed out after {DELIVERY_TIMEOUT:?}: {} has {} of {n} rows\n{}",
                db.display(),
                got.len(),
                describe_all(procs)
            );
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

#[test]
fn sqlite_example_stores_every_message_of_a_real_pipeline() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("logs.db");
    let forwarder = Forwarder::spawn(dir, "forwarder", 1, &[]);
    let receiver = Receiver::start(dir, "receiver", forwarder.frontend_port, None);
    let mut cmd = Command::new(example_bin("sqlite_worker"));
    cmd.arg(receiver.endpoint()).arg(&db);
    let worker = Proc::spawn(dir, "sqlite_worker", cmd);
    forwarder.wait_ready();
    let procs = [&forwarder.proc, &receiver.proc, &worker];

    let msgs = messages(3_000, "real-pipeline");
    send_tcp(forwarder.backend_port, &lf_joined(&msgs));
    let got = wait_for_rows(&db, msgs.len(), &procs);
    assert_eq!(got.len(), msgs.len(), "row count\n{}", describe_all(&procs));
    assert_eq!(got, as_rows(&msgs), "rows differ\n{}", describe_all(&procs));
    assert!(got[msgs.len() / 2].ends_with("latin-1 \u{FFFD}t\u{FFFD}"));

    // SIGTERM: drains, commits, exits 0.
    worker.signal("TERM");
    let status = worker.wait_exit(READY_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", worker.describe());
    assert_eq!(rows(&db), as_rows(&msgs));
}

#[test]
fn sqlite_example_rejects_missing_arguments() {
    let out = Command::new(example_bin("sqlite_worker"))
        .arg("tcp://127.0.0.1:1")
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(show(&out.stderr).contains("usage: sqlite_worker BACKEND DB_PATH"));
}

#[test]
fn zerologd_runs_the_sqlite_example_as_a_zmq_worker() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let db = dir.join("logs.db");
    let backend = free_port();
    let topology = format!(
        r#"
[forwarder]
tcp = ["127.0.0.1:{backend}"]
publish = "tcp://127.0.0.1:{publish}"

[[receiver]]
name = "all"

[[worker]]
name = "db"
receiver = "all"
type = "zmq"
command = ["{worker}", "{{backend}}", "{db}"]
"#,
        publish = free_port(),
        worker = example_bin("sqlite_worker").display(),
        db = db.display(),
    );
    let config = write_file(dir, "zerolog.toml", &topology);
    let zd = crate::common::zerologd::Zerologd::spawn(dir, "zerologd", &config, backend);
    zd.wait_ready();
    let z = &zd.proc;

    let msgs = messages(2_000, "under-zerologd");
    send_tcp(backend, &lf_joined(&msgs));
    let got = wait_for_rows(&db, msgs.len(), &[z]);
    assert_eq!(got, as_rows(&msgs), "rows differ\n{}", z.describe());

    z.signal("TERM");
    assert_eq!(
        z.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.describe()
    );
    assert_eq!(rows(&db), as_rows(&msgs), "rows after stop");
}

#[test]
fn count_example_counts_and_reports_on_sigterm() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(0).unwrap();
    push.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = push.get_last_endpoint().unwrap().unwrap();
    let mut cmd = Command::new(example_bin("count_worker"));
    cmd.args([endpoint.as_str(), "--last-frame"]);
    let worker = Proc::spawn(dir, "count_worker", cmd);
    // PUSH waits for the worker to connect, then delivers in order.
    for i in 0..100 {
        push.send_multipart([&b"topic"[..], format!("message {i:03}").as_bytes()], 0)
            .unwrap();
    }
    wait_until(DELIVERY_TIMEOUT, "count_worker reporting progress", || {
        worker.stderr_text().contains("100 messages so far")
    });
    worker.signal("TERM");
    assert_eq!(
        worker.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        worker.describe()
    );
    // Only the last frame counts: 100 messages of 11 bytes.
    assert_eq!(
        worker.stdout_text(),
        "100 messages, 1100 bytes\n",
        "{}",
        worker.describe()
    );
}

/// Collects what it processes; asks for a stop after `n` messages.
struct Collect {
    seen: Vec<Vec<u8>>,
    n: usize,
    signals: Signals,
}

impl Worker for Collect {
    fn process(&mut self, msg: &[u8]) -> Result<(), zerolog::Error> {
        self.seen.push(msg.to_vec());
        if self.seen.len() == self.n {
            self.signals.request_stop();
        }
        Ok(())
    }
}

/// A PUSH socket bound on a free port; `send` runs on a thread of its own (a PUSH send waits
/// until a peer connects). Returns the endpoint and the thread.
fn push_peer(
    send: impl FnOnce(&zmq::Socket) + Send + 'static,
) -> (String, std::thread::JoinHandle<()>) {
    let ctx = zmq::Context::new();
    let push = ctx.socket(zmq::PUSH).unwrap();
    push.set_linger(5000).unwrap();
    push.set_sndtimeo(DELIVERY_TIMEOUT.as_millis() as i32)
        .unwrap();
    push.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = push.get_last_endpoint().unwrap().unwrap();
    let thread = std::thread::spawn(move || {
        send(&push);
        drop(push);
        drop(ctx);
    });
    (endpoint, thread)
}

/// Sends `[a, b, c]` twice and one single frame to a runner with `receive`, collecting `n`.
fn receive_with(receive: Receive, n: usize) -> Vec<Vec<u8>> {
    let (endpoint, sender) = push_peer(|push| {
        for _ in 0..2 {
            push.send_multipart([&b"a"[..], b"b", b"c"], 0).unwrap();
        }
        push.send(&b"single"[..], 0).unwrap();
    });
    let signals = Signals::none();
    let mut worker = Collect {
        seen: Vec::new(),
        n,
        signals: signals.clone(),
    };
    let runner = Runner::new(endpoint).receive(receive).signals(signals);
    let stats = runner.stats();
    runner.run(&mut worker).expect("runner");
    sender.join().unwrap();
    let bytes: u64 = worker.seen.iter().map(|m| m.len() as u64).sum();
    assert_eq!(
        stats.snapshot(),
        [
            ("received", n as u64),
            ("bytes_received", bytes),
            ("processed", n as u64),
            ("failed", 0),
            ("program_restarts", 0),
            ("redelivered", 0)
        ]
    );
    worker.seen
}

#[test]
fn runner_receive_modes() {
    let v =
        |items: &[&str]| -> Vec<Vec<u8>> { items.iter().map(|s| s.as_bytes().to_vec()).collect() };
    assert_eq!(
        receive_with(Receive::Frame, 7),
        v(&["a", "b", "c", "a", "b", "c", "single"])
    );
    assert_eq!(
        receive_with(Receive::Joined(b" ".to_vec()), 3),
        v(&["a b c", "a b c", "single"])
    );
    assert_eq!(
        receive_with(Receive::Joined(Vec::new()), 3),
        v(&["abc", "abc", "single"])
    );
    assert_eq!(
        receive_with(Receive::LastFrame, 3),
        v(&["c", "c", "single"])
    );
    assert_eq!(
        receive_with(Receive::FirstFrame, 3),
        v(&["a", "a", "single"])
    );
}

/// `zerolog worker --receive`: a PUSH peer sending `[topic, message]` straight to the
/// command-line worker gets its messages written without their topics (`last`), or with the
/// topic as a line of its own (`frame`, the default, as zerolog 0.3 does).
#[test]
fn the_command_line_worker_takes_the_receive_modes() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let run = |mode: &str| -> Vec<String> {
        let out = dir.join(format!("{mode}.out"));
        let (endpoint, sender) = push_peer(|push| {
            for i in 0..3 {
                push.send_multipart([&b"nginx"[..], format!("line {i}").as_bytes()], 0)
                    .unwrap();
            }
        });
        let w = zerolog(
            dir,
            &format!("worker-{mode}"),
            &[
                "worker",
                "--receive",
                mode,
                "--join-separator",
                ": ",
                &endpoint,
                "file",
                out.to_str().unwrap(),
            ],
        );
        sender.join().unwrap();
        let want = if mode == "frame" { 6 } else { 3 };
        wait_for_line_count(&out, want, DELIVERY_TIMEOUT, &[&w]);
        w.signal("TERM");
        assert_eq!(
            w.wait_exit(READY_TIMEOUT).code(),
            Some(0),
            "{}",
            w.describe()
        );
        std::fs::read_to_string(&out)
            .unwrap()
            .lines()
            .map(str::to_owned)
            .collect()
    };
    let s = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    assert_eq!(run("last"), s(&["line 0", "line 1", "line 2"]));
    assert_eq!(run("first"), s(&["nginx", "nginx", "nginx"]));
    assert_eq!(
        run("joined"),
        s(&["nginx: line 0", "nginx: line 1", "nginx: line 2"])
    );
    assert_eq!(
        run("frame"),
        s(&["nginx", "line 0", "nginx", "line 1", "nginx", "line 2"])
    );
}

/// A worker error ends the run: it is returned, `stop` is still called, the message counts as
/// failed.
#[test]
fn runner_returns_the_worker_error() {
    struct Fails {
        stopped: bool,
    }
    impl Worker for Fails {
        fn process(&mut self, _msg: &[u8]) -> Result<(), zerolog::Error> {
            Err(zerolog::Error::worker("no space left in the database"))
        }
        fn stop(&mut self) -> Result<(), zerolog::Error> {
            self.stopped = true;
            Ok(())
        }
    }
    let (endpoint, sender) = push_peer(|push| push.send(&b"x"[..], 0).unwrap());
    let mut worker = Fails { stopped: false };
    let runner = Runner::new(endpoint).signals(Signals::none());
    let stats = runner.stats();
    let err = runner.run(&mut worker).unwrap_err();
    assert!(matches!(err, zerolog::Error::Worker(_)), "{err:?}");
    assert_eq!(
        err.to_string(),
        "worker failed: no space left in the database"
    );
    sender.join().unwrap();
    assert!(worker.stopped);
    assert_eq!(stats.failed().load(std::sync::atomic::Ordering::Relaxed), 1);
}

/// A worker that holds messages (uncommitted rows, a batch) has them counted as held, not as
/// processed, when it runs through `Runner::run`: the runner asks the worker's own `buffered`.
#[test]
fn runner_counts_what_the_worker_holds_as_not_processed() {
    struct Holds {
        batch: Vec<Vec<u8>>,
        signals: Signals,
    }
    impl Worker for Holds {
        fn process(&mut self, msg: &[u8]) -> Result<(), zerolog::Error> {
            self.batch.push(msg.to_vec());
            if self.batch.len() == 5 {
                self.signals.request_stop();
            }
            Ok(())
        }
        fn buffered(&self) -> u64 {
            self.batch.len() as u64
        }
    }
    let (endpoint, sender) = push_peer(|push| {
        for i in 0..5 {
            push.send(format!("m{i}").as_bytes(), 0).unwrap();
        }
    });
    let signals = Signals::none();
    let mut worker = Holds {
        batch: Vec::new(),
        signals: signals.clone(),
    };
    let runner = Runner::new(endpoint).signals(signals);
    let stats = runner.stats();
    runner.run(&mut worker).expect("runner");
    sender.join().unwrap();
    assert_eq!(worker.batch.len(), 5);
    assert_eq!(
        stats.snapshot(),
        [
            ("received", 5),
            ("bytes_received", 10),
            ("processed", 0),
            ("failed", 0),
            ("program_restarts", 0),
            ("redelivered", 0)
        ],
        "held messages reported as processed"
    );
}
