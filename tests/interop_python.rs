//! Wire compatibility with the Python zerolog 0.3 (PyPI `zerolog==0.3`) and with any ZeroMQ
//! publisher of `[topic, message]`.
//!
//! Needs a Python with zerolog 0.3 and pyzmq: `$ZEROLOG_PYTHON`, else `<repo>/.venv/bin/python`
//! (`.ci/run` creates it). Without one these tests print `SKIP:` and pass, unless
//! `ZEROLOG_REQUIRE_INTEROP=1`.

use std::path::PathBuf;
use std::process::Command;

use crate::common::*;

fn python_or_skip() -> Option<PathBuf> {
    let name = format!(
        "python with zerolog 0.3 and pyzmq (tried {}; set ZEROLOG_PYTHON)",
        python_candidate().display()
    );
    peer_or_skip(&name, python())
}

/// `n` distinct RFC 5424 lines (no LF), some non-ASCII, as a sender would write them.
fn syslog_lines(n: usize, app: &str) -> Vec<Vec<u8>> {
    (0..n)
        .map(|i| {
            format!(
                "<134>1 2026-11-23T10:00:00.{i:06}Z web01 {app} 4242 ID{} - message {i:06} h\u{e9}llo w\u{f6}rld \u{2713}",
                i % 7
            )
            .into_bytes()
        })
        .collect()
}

fn lf_joined(lines: &[Vec<u8>]) -> Vec<u8> {
    let mut bytes = Vec::new();
    for line in lines {
        bytes.extend_from_slice(line);
        bytes.push(b'\n');
    }
    bytes
}

/// Compares delivered lines with the expected ones; the failure names the first difference.
fn assert_same_lines(what: &str, got: &[Vec<u8>], want: &[Vec<u8>]) {
    if let Some(i) = (0..got.len().min(want.len())).find(|&i| got[i] != want[i]) {
        panic!(
            "{what}: line {i} differs\n  got:  {}\n  want: {}",
            show(&got[i]),
            show(&want[i])
        );
    }
    assert_eq!(
        got.len(),
        want.len(),
        "{what}: {} lines delivered, {} sent (first extra or missing: {:?})",
        got.len(),
        want.len(),
        got.get(want.len()).or(want.get(got.len())).map(|l| show(l))
    );
}

const PY_WORKER: &str = r#"import os

from zerolog.worker import BaseWorker


class FileWorker(BaseWorker):
    """Appends every message to $ZL_TEST_OUT, one per line, flushed."""

    def __init__(self, backend, *args, **kwargs):
        super().__init__(backend, *args, **kwargs)
        self.out = open(os.environ["ZL_TEST_OUT"], "a", encoding="utf-8", newline="\n")

    def process_data(self, data):
        self.out.write(data + "\n")
        self.out.flush()
"#;

/// A zerolog 0.3 `BaseWorker` subclass, run by zerolog 0.3's own `zerolog worker` command,
/// PULLs every message our forwarder and receiver carry, byte for byte.
#[test]
fn python_base_worker_receives_every_message_from_our_receiver() {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let forwarder = Forwarder::spawn(dir, "forwarder", 1, &[]);
    let receiver = Receiver::start(dir, "receiver", forwarder.frontend_port, None);

    write_file(dir, "zl_interop_worker.py", PY_WORKER);
    let out = dir.join("py-worker.out");
    let mut cmd = zerolog_py(&py);
    cmd.args([
        "worker",
        &receiver.endpoint(),
        "zl_interop_worker.FileWorker",
        "-d",
    ])
    .arg(dir)
    .env("ZL_TEST_OUT", &out)
    .env("PYTHONDONTWRITEBYTECODE", "1");
    let py_worker = Proc::spawn(dir, "py-worker", cmd);
    forwarder.wait_ready();
    let procs = [&forwarder.proc, &receiver.proc, &py_worker];

    let lines = syslog_lines(5_000, "interop");
    send_tcp(forwarder.backend_port, &lf_joined(&lines));
    wait_for_line_count(&out, lines.len(), DELIVERY_TIMEOUT, &procs);
    let got = barrier(forwarder.backend_port, &out, None, &procs);

    assert_same_lines("zerolog 0.3 BaseWorker output", &got, &lines);
    assert!(
        py_worker.is_running(),
        "python worker died\n{}",
        py_worker.describe()
    );
}

/// zerolog 0.3's receiver (it SUBscribes and PUSHes frame 1 of each message) works against our
/// forwarder: every message reaches our `file` worker.
#[test]
fn python_receiver_forwards_every_message_from_our_forwarder() {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let forwarder = Forwarder::spawn(dir, "forwarder", 1, &[]);
    let output_port = free_port();
    let mut cmd = zerolog_py(&py);
    cmd.args([
        "receiver",
        "127.0.0.1",
        &forwarder.frontend_port.to_string(),
        "--output-port",
        &output_port.to_string(),
    ])
    .env("PYTHONDONTWRITEBYTECODE", "1");
    let py_receiver = Proc::spawn(dir, "py-receiver", cmd);
    let worker = FileWorker::start(dir, "worker", &format!("tcp://127.0.0.1:{output_port}"));
    // The 0.3 receiver logs nothing by default; its subscription reaching our forwarder is the
    // readiness signal.
    forwarder.wait_ready();
    let procs = [&forwarder.proc, &py_receiver, &worker.proc];

    let lines = syslog_lines(5_000, "interop");
    send_tcp(forwarder.backend_port, &lf_joined(&lines));
    wait_for_line_count(&worker.out, lines.len(), DELIVERY_TIMEOUT, &procs);
    let got = barrier(forwarder.backend_port, &worker.out, None, &procs);

    assert_same_lines("our worker behind the zerolog 0.3 receiver", &got, &lines);
    assert!(
        py_receiver.is_running(),
        "python receiver died\n{}",
        py_receiver.describe()
    );
}

const PY_PUBLISHER: &str = r#"import sys
import time

import zmq

port, frames_path = int(sys.argv[1]), sys.argv[2]
frames = []
with open(frames_path, "rb") as f:
    for line in f.read().split(b"\n")[:-1]:
        topic, message = line.split(b"\t", 1)
        frames.append([topic, message])

ctx = zmq.Context()
pub = ctx.socket(zmq.XPUB)
pub.setsockopt(zmq.XPUB_NODROP, 1)
pub.bind("tcp://127.0.0.1:%d" % port)
print("bound", flush=True, file=sys.stderr)
if not pub.poll(30000):
    sys.exit("no subscription within 30 s")
print("subscription %r" % pub.recv(), flush=True, file=sys.stderr)

for parts in frames:
    deadline = time.monotonic() + 60
    while True:
        try:
            pub.send_multipart(parts, flags=zmq.NOBLOCK)
            break
        except zmq.Again:
            if time.monotonic() > deadline:
                sys.exit("subscriber stopped reading for 60 s")
            time.sleep(0.001)
print("sent %d" % len(frames), flush=True, file=sys.stderr)
# Stay up (the test kills us) so nothing queued is lost on close.
time.sleep(3600)
"#;

/// Our receiver takes `[topic, message]` from any publisher (here a plain pyzmq XPUB, as
/// logstash or rsyslog's omczmq would be) and PUSHes exactly the message frames to our worker.
#[test]
fn our_receiver_accepts_any_two_frame_publisher() {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let topics: [&[u8]; 4] = [b"app1", b"", b"-", b"nginx"];
    let n = 5_000;
    let mut frames_file = Vec::new();
    let mut want = Vec::new();
    for i in 0..n {
        let topic = topics[i % topics.len()];
        let message = format!("published {i:06} via topic {}", show(topic)).into_bytes();
        frames_file.extend_from_slice(topic);
        frames_file.push(b'\t');
        frames_file.extend_from_slice(&message);
        frames_file.push(b'\n');
        want.push(message);
    }
    // A last message tells when everything before it has arrived (the path is FIFO).
    want.push(b"end of publication".to_vec());
    frames_file.extend_from_slice(b"zz\tend of publication\n");
    let frames_path = dir.join("frames.txt");
    std::fs::write(&frames_path, &frames_file).unwrap();

    let script = write_file(dir, "publisher.py", PY_PUBLISHER);
    let port = free_port();
    let mut cmd = Command::new(&py);
    cmd.arg(&script).arg(port.to_string()).arg(&frames_path);
    let publisher = Proc::spawn(dir, "publisher", cmd);
    publisher.wait_for_stderr("bound", READY_TIMEOUT);

    let receiver = Receiver::start(dir, "receiver", port, None);
    let worker = FileWorker::start(dir, "worker", &receiver.endpoint());
    let procs = [&publisher, &receiver.proc, &worker.proc];

    wait_for_line_ending(&worker.out, b"end of publication", DELIVERY_TIMEOUT, &procs);
    let got = read_lines(&worker.out);
    assert_same_lines("our worker behind our receiver behind pyzmq", &got, &want);
}

/// zerologd runs a zerolog 0.3 Python worker unchanged, as a `type = "zmq"` worker: `{backend}`
/// in its command becomes the receiver's endpoint. Every message reaches it.
#[test]
fn zerologd_runs_a_zerolog_0_3_python_worker_unchanged() {
    let Some(py) = python_or_skip() else { return };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    write_file(dir, "zl_interop_worker.py", PY_WORKER);
    let out = dir.join("py-worker.out");
    let backend = free_port();
    let zerolog_script = py.with_file_name("zerolog");
    let topology = format!(
        r#"
[forwarder]
tcp = ["127.0.0.1:{backend}"]
publish = "tcp://127.0.0.1:{publish}"

[[receiver]]
name = "all"

[[worker]]
name = "py"
receiver = "all"
type = "zmq"
numprocs = 2
command = ["{script}", "worker", "{{backend}}", "zl_interop_worker.FileWorker", "-d", "{dir}"]
env = {{ ZL_TEST_OUT = "{out}", PYTHONDONTWRITEBYTECODE = "1" }}
"#,
        publish = free_port(),
        script = zerolog_script.display(),
        dir = dir.display(),
        out = out.display(),
    );
    let config = write_file(dir, "zerolog.toml", &topology);
    let zd = crate::common::zerologd::Zerologd::spawn(dir, "zerologd", &config, backend);
    zd.wait_ready();
    let z = &zd.proc;
    // The Python workers may connect after this burst: the receiver holds messages until a
    // worker takes them, so nothing is lost either way.
    let lines = syslog_lines(5_000, "under-zerologd");
    send_tcp(backend, &lf_joined(&lines));
    wait_for_line_count(&out, lines.len(), DELIVERY_TIMEOUT, &[z]);
    let mut got = read_lines(&out);
    // Two workers append to one file: compare as sets (each line exactly once).
    got.sort();
    let mut want = lines.clone();
    want.sort();
    assert_same_lines("zerolog 0.3 workers under zerologd", &got, &want);
    z.signal("TERM");
    assert_eq!(
        z.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.describe()
    );
}
