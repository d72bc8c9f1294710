//! What an operator, a client, a child or the system can do to zerologd: it never accepts
//! what it cannot deliver, never stalls, and refuses what it cannot do with a clear reply.

use std::time::{Duration, Instant};

use crate::common::load::*;
use crate::common::zerologd::*;
use crate::common::*;

/// A pipeline whose receiver cannot start (its output port is taken) refuses syslog
/// connections instead of accepting data it cannot deliver; once the receiver can start, the
/// same input accepts and delivers.
#[test]
fn the_input_refuses_connections_until_the_pipeline_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let output = free_port();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", output)).unwrap();
    let topology = format!(
        "[forwarder]\ntcp = [\"127.0.0.1:{{B}}\"]\npublish = \"tcp://127.0.0.1:{{F}}\"\n\n\
         [[receiver]]\nname = \"all\"\noutput = \"tcp://127.0.0.1:{output}\"\n\
         restart_backoff = \"50ms\"\nrestart_backoff_max = \"200ms\"\nmax_restarts = 1000\n\n\
         [[worker]]\nname = \"out\"\nreceiver = \"all\"\ncommand = [\"file\", \"{{DIR}}/out.txt\"]\n"
    );
    let z = Zerologd::start_unready(dir.path(), &topology);
    // The receiver crash-loops; for two seconds every connection attempt is refused.
    let until = Instant::now() + Duration::from_secs(2);
    let mut attempts = 0;
    while Instant::now() < until {
        match std::net::TcpStream::connect(("127.0.0.1", z.backend)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => attempts += 1,
            other => panic!("connection attempt {attempts}: {other:?}, not refused"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(z.program_json("all")["restarts"].as_u64().unwrap() > 0);
    let fwd = z.program_json("forwarder");
    assert_eq!(fwd["ready"], false, "{fwd}");
    assert_eq!(
        fwd["counters"]["current"]["connections_accepted"], 0,
        "{fwd}"
    );

    drop(squatter);
    z.wait_ready();
    z.deliver(&dir.path().join("out.txt"), "after", 1000);
}

/// A worker that ignores its stop signal: it stays STOPPING for its `stop_timeout` (1 s).
const STUBBORN: &str = "\n[[worker]]\nname = \"slow\"\nreceiver = \"all\"\ntype = \"zmq\"\n\
     command = [\"sh\", \"-c\", \"trap '' TERM; exec sleep 1000\"]\nstop_timeout = \"1s\"\n";

/// `stop` then `start` while the program is still stopping: it comes back; `restart` then
/// `stop`: it stays stopped. Each reply says what will happen.
#[test]
fn the_last_command_wins_while_a_program_stops() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &format!("{BASIC}{STUBBORN}"));
    let pid = z.pid_of("slow:0").unwrap();
    let (code, out, err) = z.ctl(&["stop", "slow"]);
    assert_eq!((code, out.as_str()), (0, "slow:0: stopping\n"), "{err}");
    let (code, out, err) = z.ctl(&["start", "slow"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "slow:0: stopping; starts again once it has stopped\n"),
        "{err}"
    );
    let pid = z.wait_new_pid("slow:0", pid);

    let (code, out, _) = z.ctl(&["restart", "slow"]);
    assert_eq!((code, out.as_str()), (0, "slow:0: restarting\n"));
    let (code, out, _) = z.ctl(&["stop", "slow"]);
    assert_eq!(
        (code, out.as_str()),
        (0, "slow:0: already stopping; stays stopped\n")
    );
    wait_until(READY_TIMEOUT, "slow:0 stopped", || {
        z.state_of("slow:0") == "STOPPED"
    });
    std::thread::sleep(Duration::from_millis(500));
    let p = z.program_json("slow:0");
    assert_eq!(p["state"], "STOPPED", "it stays stopped: {p}");
    assert_eq!(p["pid"], serde_json::Value::Null);
    assert!(!std::path::Path::new(&format!("/proc/{pid}")).exists());
}

/// A reload during the shutdown is refused: nothing already stopped comes back (the forwarder
/// would accept lines nobody delivers).
#[test]
fn a_reload_during_shutdown_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &format!("{BASIC}{STUBBORN}"));
    z.proc.signal("TERM");
    // The forwarder and receiver stop at once; the stubborn worker holds the shutdown 1 s.
    wait_until(READY_TIMEOUT, "forwarder stopped", || {
        z.try_program_json("forwarder")
            .is_some_and(|p| p["state"] == "STOPPED")
    });
    let (code, _, err) = z.ctl(&["reload"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("shutting down"), "{err}");
    let fwd = z.try_program_json("forwarder");
    assert!(
        fwd.as_ref().is_none_or(|p| p["state"] == "STOPPED"),
        "{fwd:?}"
    );
    assert!(std::net::TcpStream::connect(("127.0.0.1", z.backend)).is_err());
    assert_eq!(z.proc.wait_exit(DELIVERY_TIMEOUT).code(), Some(0));
}

/// A reload that changes `[zerologd]` is refused with what changed and what to do; the
/// pipeline runs on unchanged.
#[test]
fn a_reload_that_changes_the_daemon_section_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let before = z.status();
    let text = std::fs::read_to_string(&z.config).unwrap();
    let metrics = free_port();
    let changed = format!("[zerologd]\nmetrics = \"127.0.0.1:{metrics}\"\n{text}");
    std::fs::write(&z.config, changed).unwrap();
    let (code, _, err) = z.ctl(&["reload"]);
    assert_eq!(code, 1, "{err}");
    assert!(
        err.contains("[zerologd] metrics changed") && err.contains("restart of zerologd"),
        "{err}"
    );
    assert_eq!(z.status(), before, "nothing changed");
    assert!(std::net::TcpStream::connect(("127.0.0.1", metrics)).is_err());
    z.deliver(&dir.path().join("out.txt"), "still", 100);
}

/// `zerologd --check | head -1`: a reader that closes early is not an error.
#[test]
fn a_closed_stdout_is_not_an_error() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "zerolog.toml",
        &Zerologd::expand(dir.path(), BASIC, 6000),
    );
    let (reader, writer) = std::io::pipe().unwrap();
    drop(reader);
    let out = std::process::Command::new(zerologd_bin())
        .args(["--check", "-c", config.to_str().unwrap()])
        .env("ZEROLOG_RUNTIME_DIR", dir.path().join("run"))
        .env("ZEROLOG_STATE_DIR", dir.path().join("state"))
        .stdout(writer)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(0), "{err}");
    assert!(err.is_empty(), "{err}");
}

/// A topology that runs nothing is refused (exit 2), unless it says it means it.
#[test]
fn an_empty_topology_is_refused_unless_on_purpose() {
    let dir = tempfile::tempdir().unwrap();
    let run = |text: &str| {
        let config = write_file(dir.path(), "empty.toml", text);
        std::process::Command::new(zerologd_bin())
            .args(["--check", "-c", config.to_str().unwrap()])
            .env("ZEROLOG_RUNTIME_DIR", dir.path().join("run"))
            .env("ZEROLOG_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap()
    };
    let out = run("# nothing yet\n");
    let err = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains("empty.toml:1: the topology runs nothing"),
        "{err}"
    );
    let out = run("[zerologd]\nallow_empty = true\n");
    assert_eq!(out.status.code(), Some(0));
    assert!(String::from_utf8_lossy(&out.stdout).contains("OK, 0 processes"));
}

/// Limits `cmd`'s RLIMIT_NOFILE to `soft` and `hard`.
fn nofile(cmd: &mut std::process::Command, soft: u64, hard: u64) {
    use std::os::unix::process::CommandExt;
    // SAFETY: setrlimit is async-signal-safe; nothing else runs between fork and exec.
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::resource::setrlimit(nix::sys::resource::Resource::RLIMIT_NOFILE, soft, hard)
                .map_err(std::io::Error::from)
        });
    }
}

const MANY: &str = "\n[[receiver]]\nname = \"side\"\ntopic = \"side\"\n\n\
     [[worker]]\nname = \"many\"\nreceiver = \"side\"\nnumprocs = 150\ncommand = [\"null\"]\n";

/// With a soft descriptor limit of 256 (and a hard one above), zerologd lifts its own and
/// runs 150 workers; with a hard limit of 256 it refuses the topology at `--check` and at
/// start, saying what to raise, and starts nothing.
#[test]
fn the_descriptor_limit_is_raised_or_the_topology_refused() {
    let dir = tempfile::tempdir().unwrap();
    let topology = format!("{BASIC}{MANY}");
    let z = Zerologd::start_with(dir.path(), &topology, |cmd| nofile(cmd, 256, 4096));
    wait_until(READY_TIMEOUT, "150 workers running", || {
        let st = z.status();
        st.iter()
            .filter(|r| r.0.starts_with("many:") && r.1 == "RUNNING")
            .count()
            == 150
    });
    assert!(
        z.status().iter().all(|r| r.1 == "RUNNING"),
        "{:?}",
        z.status()
    );
    z.deliver(&dir.path().join("out.txt"), "fits", 100);
    drop(z);

    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "zerolog.toml",
        &Zerologd::expand(dir.path(), &topology, 6000),
    );
    for args in [&["--check", "-c"][..], &["-c"][..]] {
        let mut cmd = std::process::Command::new(zerologd_bin());
        cmd.args(args)
            .arg(&config)
            .env("ZEROLOG_RUNTIME_DIR", dir.path().join("run"))
            .env("ZEROLOG_STATE_DIR", dir.path().join("state"));
        nofile(&mut cmd, 256, 256);
        let out = cmd.output().unwrap();
        let err = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {err}");
        assert!(
            err.contains("154 processes")
                && err.contains("limit is 256")
                && err.contains("LimitNOFILE="),
            "{err}"
        );
        assert!(!dir.path().join("run/zerologd.sock").exists());
    }
}

/// Live processes (not zombies) whose command line contains `needle`.
fn processes_with(needle: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| e.file_name().to_str()?.parse::<i32>().ok())
        .filter(|&pid| {
            let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
            alive(pid)
                && String::from_utf8_lossy(&cmdline)
                    .replace('\0', " ")
                    .contains(needle)
        })
        .collect()
}

/// A program that leaves a process behind in a session of its own: that process is adopted
/// and stopped with the service, at a clean stop and when zerologd is killed.
#[test]
fn processes_left_behind_by_programs_are_stopped_with_the_service() {
    for how in ["TERM", "KILL"] {
        let dir = tempfile::tempdir().unwrap();
        // A duration nobody else sleeps: how this test finds its processes.
        let marker = format!("8888.{}{}", std::process::id(), how.len());
        let topology = format!(
            "{BASIC}\n[[worker]]\nname = \"forker\"\nreceiver = \"all\"\ntype = \"zmq\"\n\
             restart = \"never\"\n\
             command = [\"sh\", \"-c\", \"setsid sleep {marker} & setsid sh -c 'sleep {marker}' & sleep 0.2\"]\n"
        );
        let z = Zerologd::start(dir.path(), &topology);
        wait_until(READY_TIMEOUT, "forker exited", || {
            z.state_of("forker:0") == "EXITED"
        });
        let left = processes_with(&format!("sleep {marker}"));
        assert!(left.len() >= 2, "the orphans run: {left:?}");
        // Adoption is noticed at the forker's exit, or within a second.
        std::thread::sleep(Duration::from_millis(200));
        match how {
            "TERM" => {
                z.proc.signal("TERM");
                assert_eq!(z.proc.wait_exit(DELIVERY_TIMEOUT).code(), Some(0));
            }
            _ => {
                kill9(z.proc.pid() as i32);
                z.proc.wait_exit(DELIVERY_TIMEOUT);
            }
        }
        let what = format!("no orphan left after {how}");
        wait_until(Duration::from_secs(5), &what, || {
            processes_with(&format!("sleep {marker}")).is_empty()
        });
    }
}

/// One `status` over the control socket, timed; the reply's programs.
fn timed_status(socket: &std::path::Path) -> (Duration, serde_json::Value) {
    use std::io::{Read, Write};
    let t = Instant::now();
    let mut s = std::os::unix::net::UnixStream::connect(socket).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    s.write_all(b"{\"request\":\"status\"}\n").unwrap();
    let mut reply = String::new();
    s.read_to_string(&mut reply).unwrap();
    let took = t.elapsed();
    let v: serde_json::Value = serde_json::from_str(reply.trim()).unwrap();
    (took, v["programs"].clone())
}

/// While an attack goes on: `status` answers in under 100 ms (the median of 10), and a killed
/// worker (`out:0`) is running again in under 100 ms.
fn assert_responsive(z: &Zerologd, attack: &str) {
    let socket = z.dir.join("run/zerologd.sock");
    let mut latencies: Vec<Duration> = (0..10).map(|_| timed_status(&socket).0).collect();
    latencies.sort();
    eprintln!(
        "{attack}: status median {:?}, max {:?}",
        latencies[5], latencies[9]
    );
    assert!(
        latencies[5] < Duration::from_millis(100),
        "status took {latencies:?}"
    );

    let old = z.pid_of("out:0").unwrap();
    kill9(old);
    let t = Instant::now();
    loop {
        let (_, programs) = timed_status(&socket);
        let p = programs
            .as_array()
            .unwrap()
            .iter()
            .find(|p| p["name"] == "out:0")
            .unwrap()
            .clone();
        if p["state"] == "RUNNING" && p["pid"] != old {
            break;
        }
        assert!(t.elapsed() < Duration::from_secs(5), "out:0 not back: {p}");
    }
    let back = t.elapsed();
    eprintln!("{attack}: killed worker back after {back:?}");
    assert!(
        back < Duration::from_millis(100),
        "the killed worker was back after {back:?}"
    );
}

/// 1,100 idle control clients and 10 that ask for a large status and never read it: status
/// still answers in under 100 ms, and a killed worker is back in under 100 ms.
#[test]
fn control_clients_cannot_stall_zerologd() {
    // This test process holds many connections.
    zerolog::process::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    // 1,000 cheap programs with long names: a status reply larger than a socket buffer.
    let group = "i".repeat(60);
    let topology = format!(
        "{BASIC}\n[[worker]]\nname = \"{group}\"\nreceiver = \"all\"\ntype = \"zmq\"\n\
         numprocs = 1000\ncommand = [\"sleep\", \"1000\"]\n"
    );
    let z = Zerologd::start(dir.path(), &topology);
    let socket = dir.path().join("run/zerologd.sock");
    wait_until(DELIVERY_TIMEOUT, "1,000 idle workers running", || {
        let (_, programs) = timed_status(&socket);
        programs
            .as_array()
            .unwrap()
            .iter()
            .filter(|p| p["state"] == "RUNNING")
            .count()
            == 1003
    });
    let size = serde_json::to_string(&timed_status(&socket).1)
        .unwrap()
        .len();
    let buffer: usize = std::fs::read_to_string("/proc/sys/net/core/wmem_default")
        .map_or(212_992, |s| s.trim().parse().unwrap_or(212_992));
    assert!(
        size > buffer,
        "a status reply ({size} bytes) larger than a socket buffer ({buffer})"
    );
    let mut held = Vec::new();
    for _ in 0..10 {
        use std::io::Write;
        let mut s = std::os::unix::net::UnixStream::connect(&socket).unwrap();
        s.write_all(b"{\"request\":\"status\"}\n").unwrap();
        held.push(s);
    }
    for _ in 0..1100 {
        held.push(std::os::unix::net::UnixStream::connect(&socket).unwrap());
    }
    assert_responsive(&z, "control clients");
    drop(held);
    z.deliver(&dir.path().join("out.txt"), "after", 100);
}

/// The threads of process `pid`.
fn threads_of(pid: u32) -> usize {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let line = status.lines().find(|l| l.starts_with("Threads:")).unwrap();
    line[8..].trim().parse().unwrap()
}

/// A client pipelining 4 MB of `GET /metrics` without reading, 700 idle connections and
/// 3,000 slowloris ones: zerologd answers `status` and restarts a killed worker in under
/// 100 ms, runs no thread per connection, and serves `/metrics` again once they are gone.
#[test]
fn metrics_clients_cannot_stall_zerologd() {
    use std::io::Write;
    // This test process holds many connections.
    zerolog::process::raise_fd_limit();
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let topology = format!("[zerologd]\nmetrics = \"127.0.0.1:{port}\"\n{BASIC}");
    let z = Zerologd::start(dir.path(), &topology);
    assert!(
        http_get(port, "/metrics").contains("zerolog_program_up"),
        "served"
    );
    let threads = threads_of(z.proc.pid());

    // Pipelined requests, never read.
    let mut flood = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    flood
        .set_write_timeout(Some(Duration::from_secs(2)))
        .unwrap();
    let request = b"GET /metrics HTTP/1.1\r\nHost: localhost\r\n\r\n";
    let mut sent = 0;
    while sent < 4 << 20 && flood.write_all(request).is_ok() {
        sent += request.len();
    }
    assert_responsive(&z, "a pipelining client");

    let mut held = Vec::new();
    for i in 0..3700 {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i >= 700 {
            // Slowloris: a request begun, never finished.
            let _ = c.write_all(b"GET /metrics HTTP/1.1\r\nHost: loc");
        }
        held.push(c);
    }
    assert_responsive(&z, "3,700 idle and slowloris connections");
    let now = threads_of(z.proc.pid());
    assert!(
        now <= threads,
        "{now} threads, {threads} before the connections"
    );

    drop(held);
    drop(flood);
    wait_until(READY_TIMEOUT, "/metrics served again", || {
        http_get(port, "/metrics").contains("zerolog_program_up")
    });
    z.proc.signal("TERM");
    assert_eq!(z.proc.wait_exit(DELIVERY_TIMEOUT).code(), Some(0));
}

/// A tmpfs of `size` mounted on `dir` for the test's life.
struct Tmpfs(std::path::PathBuf);

impl Tmpfs {
    fn mount(dir: &std::path::Path, size: &str) -> Tmpfs {
        std::fs::create_dir_all(dir).unwrap();
        let ok = std::process::Command::new("mount")
            .args(["-t", "tmpfs", "-o", &format!("size={size}"), "tmpfs"])
            .arg(dir)
            .status()
            .unwrap()
            .success();
        assert!(ok, "mount tmpfs on {}", dir.display());
        Tmpfs(dir.to_path_buf())
    }

    fn resize(&self, size: &str) {
        let ok = std::process::Command::new("mount")
            .args(["-o", &format!("remount,size={size}")])
            .arg(&self.0)
            .status()
            .unwrap()
            .success();
        assert!(ok, "remount {}", self.0.display());
    }
}

impl Drop for Tmpfs {
    fn drop(&mut self) {
        let _ = std::process::Command::new("umount")
            .arg("-l")
            .arg(&self.0)
            .status();
    }
}

/// A `file` worker on a full filesystem keeps its messages, writes no partial record, and
/// writes them all once there is room again; its counters say what it wrote.
#[test]
fn a_full_disk_loses_nothing_and_leaves_no_partial_record() {
    if !root_or_skip("to mount a small tmpfs") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let disk = Tmpfs::mount(&dir.path().join("disk"), "256k");
    let topology = BASIC.replace("{DIR}/out.txt", "{DIR}/disk/out.txt");
    let z = Zerologd::start(dir.path(), &topology);
    const N: usize = 30_000;
    let mut input = Vec::new();
    for i in 0..N {
        input.extend_from_slice(format!("<13>app: full disk {i:05}\n").as_bytes());
    }
    let out = dir.path().join("disk/out.txt");
    let sender = {
        let port = z.backend;
        std::thread::spawn(move || send_tcp(port, &input))
    };
    // The disk fills: the worker keeps waiting and writing nothing more, and stays up.
    wait_until(DELIVERY_TIMEOUT, "the disk full", || {
        std::fs::metadata(&out).is_ok_and(|m| m.len() > 200_000)
    });
    std::thread::sleep(Duration::from_millis(1500));
    let worker = z.program_json("out:0");
    assert_eq!(worker["restarts"], 0, "the worker did not crash: {worker}");
    let written = read_lines(&out);
    assert!(written.len() < N, "the disk was full before the end");
    let bytes = std::fs::read(&out).unwrap();
    assert!(bytes.ends_with(b"\n"), "no partial record at the end");
    assert_eq!(
        z.counters("out:0").0["processed"],
        written.len(),
        "exact counters"
    );

    disk.resize("16m");
    sender.join().unwrap();
    wait_for_line_count(&out, N, DELIVERY_TIMEOUT, &[&z.proc]);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), N);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("<13>app: full disk {i:05}").into_bytes());
    }
    wait_until(READY_TIMEOUT, "every message counted processed", || {
        z.counters("out:0").0["processed"] == N
    });
    assert_eq!(z.program_json("out:0")["restarts"], 0);
}

/// A `file` worker whose directory is removed notices (the file's link count), keeps its
/// messages while the directory is missing, and writes them to a new file once it is back.
#[test]
fn a_file_worker_whose_directory_is_removed_writes_to_a_new_file() {
    let dir = tempfile::tempdir().unwrap();
    let sub = dir.path().join("logs");
    std::fs::create_dir(&sub).unwrap();
    let topology = BASIC.replace("{DIR}/out.txt", "{DIR}/logs/out.txt");
    let z = Zerologd::start(dir.path(), &topology);
    let out = sub.join("out.txt");
    z.deliver(&out, "before", 100);
    std::fs::remove_dir_all(&sub).unwrap();
    let mut input = Vec::new();
    for i in 0..100 {
        input.extend_from_slice(format!("<13>app: after {i}\n").as_bytes());
    }
    send_tcp(z.backend, &input);
    std::thread::sleep(Duration::from_millis(500));
    let processed = z.counters("out:0").0["processed"].as_u64().unwrap();
    assert_eq!(
        processed, 100,
        "nothing counted as written to the deleted file"
    );
    std::fs::create_dir(&sub).unwrap();
    wait_for_line_count(&out, 100, DELIVERY_TIMEOUT, &[&z.proc]);
    let lines = read_lines(&out);
    let want: Vec<Vec<u8>> = (0..100)
        .map(|i| format!("<13>app: after {i}").into_bytes())
        .collect();
    assert_eq!(lines, want);
    assert_eq!(z.counters("out:0").0["processed"], 200);
    assert_eq!(z.program_json("out:0")["restarts"], 0);
}

/// Delivers 10 lines to `{DIR}/out.txt`, then renames it as logrotate does: (out.txt, out.txt.1).
fn deliver_then_rotate(
    z: &Zerologd,
    dir: &std::path::Path,
) -> (std::path::PathBuf, std::path::PathBuf) {
    let out = dir.join("out.txt");
    z.deliver(&out, "before", 10);
    let rotated = dir.join("out.txt.1");
    std::fs::rename(&out, &rotated).unwrap();
    (out, rotated)
}

/// `zerologd reopen` (logrotate's postrotate) makes every file worker reopen its file: after
/// a rename, new messages go to a new file, none lost.
#[test]
fn reopen_makes_file_workers_reopen_their_files() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let (out, rotated) = deliver_then_rotate(&z, dir.path());
    let (code, text, err) = z.ctl(&["reopen"]);
    assert_eq!(
        (code, text.as_str()),
        (0, "out:0: reopening its output\n"),
        "{err}"
    );
    wait_until(READY_TIMEOUT, "the file reopened", || out.exists());
    z.deliver(&out, "after", 10);
    assert_eq!(read_lines(&rotated).len(), 10);
    assert_eq!(read_lines(&out).len(), 10);
}

/// A `file` worker whose file is renamed (logrotate without `copytruncate`) opens its path
/// anew by itself: what comes after goes to a new file, none lost, and no signal is needed.
#[test]
fn a_file_worker_notices_a_rename_by_itself() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let (out, rotated) = deliver_then_rotate(&z, dir.path());
    z.deliver(&out, "after", 10);
    assert_eq!(read_lines(&rotated).len(), 10);
    assert_eq!(read_lines(&out).len(), 10);
    assert_eq!(z.counters("out:0").0["processed"], 20);
    assert_eq!(z.program_json("out:0")["restarts"], 0);
}

/// A forwarder restarted while a sender never stops sending: its stop ends after the drain
/// time, the connection closed is counted (`closed_sending_at_stop`), and every message the
/// forwarder counted as received is delivered, in order, without a gap.
#[test]
fn a_forwarder_restart_under_load_delivers_all_it_received_and_counts_the_close() {
    use std::io::Write;
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let port = z.backend;
    let sender = std::thread::spawn(move || {
        let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        let mut sent = 0u64;
        loop {
            let mut chunk = Vec::new();
            for _ in 0..50 {
                chunk.extend_from_slice(format!("<13>app: steady {sent:07}\n").as_bytes());
                sent += 1;
            }
            if c.write_all(&chunk).is_err() {
                return sent;
            }
            std::thread::sleep(Duration::from_micros(200));
        }
    });
    std::thread::sleep(Duration::from_millis(500));
    let old = z.pid_of("forwarder").unwrap();
    let (code, _, err) = z.ctl(&["restart", "forwarder"]);
    assert_eq!(code, 0, "{err}");
    z.wait_new_pid("forwarder", old);
    let sent = sender.join().unwrap();
    let total = z.program_json("forwarder")["counters"]["total"].clone();
    assert_eq!(total["closed_sending_at_stop"], 1, "{total}");
    let received = total["messages_received"].as_u64().unwrap();
    assert!(received > 0 && received <= sent, "{received} of {sent}");
    eprintln!(
        "forwarder restart: sent {sent}, received {received}: {} lost in TCP",
        sent - received
    );
    let out = dir.path().join("out.txt");
    wait_for_line_count(&out, received as usize, DELIVERY_TIMEOUT, &[&z.proc]);
    let lines = read_lines(&out);
    assert_eq!(
        lines.len() as u64,
        received,
        "every message received was delivered"
    );
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("<13>app: steady {i:07}").into_bytes());
    }
}

/// A worker program that writes each line it reads to `$1.PID` and kills itself (SIGKILL)
/// after 500 to 1,499 lines. bash reads a pipe one byte at a time: what it read is exactly
/// what it wrote out.
const DYING_PROGRAM: &str = r#"exec 3>>"$1.$$"
n=0
limit=$((500 + RANDOM % 1000))
while IFS= read -r line; do
    printf '%s\n' "$line" >&3
    n=$((n + 1))
    if [ "$n" -ge "$limit" ]; then kill -9 $$; fi
done
"#;

/// A program worker whose program dies again and again under load: the worker starts it
/// again with what it had not read, the worker process itself never exits (its queue is not
/// lost), every line arrives exactly once, and its counters say so.
#[test]
fn a_program_that_dies_under_load_loses_nothing() {
    let dir = tempfile::tempdir().unwrap();
    let script = write_file(dir.path(), "dying.sh", DYING_PROGRAM);
    let command = format!(r#"["bash", "{}", "{{DIR}}/out"]"#, script.display());
    let topology = worker_topology("prog", 1, &command);
    let z = Zerologd::start(dir.path(), &topology);
    let load = Load {
        count: 20_000,
        rate: 0,
        connections: 2,
    };
    let loggen = load.start(dir.path(), z.backend);
    loggen_report(&loggen, DELIVERY_TIMEOUT);
    assert_all_delivered_once(dir.path(), "out.", &load, &[&z.proc]);
    let worker = z.program_json("prog:0");
    assert_eq!(worker["restarts"], 0, "the worker never exited: {worker}");
    let (current, _) = z.counters("prog:0");
    wait_until(READY_TIMEOUT, "every line counted processed", || {
        z.counters("prog:0").0["processed"] == load.count
    });
    assert_eq!(current["received"], load.count, "{current}");
    assert_eq!(current["failed"], 0, "{current}");
    let restarts = current["program_restarts"].as_u64().unwrap();
    assert!(
        restarts >= 13,
        "20,000 lines, at most 1,499 per run: {current}"
    );
    eprintln!("a dying program: 20,000 lines over {restarts} restarts, none lost");
}

/// Every element running as `nobody`, under zerologd started with umask 027 and the
/// capabilities of the packaged unit (its `UMask=` and `CapabilityBoundingSet=`): each reads the configuration zerologd wrote for it and keeps its counters
/// in the stats file zerologd opened for it; the pipeline delivers and `status` counts.
#[test]
fn elements_running_as_another_user_read_their_config_and_keep_their_counters() {
    use std::os::unix::fs::PermissionsExt;
    use std::os::unix::process::CommandExt;
    if !root_or_skip("to run the elements as nobody") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let open = |p: &std::path::Path, mode| {
        std::fs::set_permissions(p, std::fs::Permissions::from_mode(mode)).unwrap()
    };
    open(dir.path(), 0o755);
    let logs = dir.path().join("logs");
    std::fs::create_dir(&logs).unwrap();
    open(&logs, 0o777);
    // As the package does for /var/lib/zerolog/journal: zerologd, without CAP_CHOWN, cannot.
    let journal = dir.path().join("state/journal");
    std::fs::create_dir_all(&journal).unwrap();
    open(&dir.path().join("state"), 0o755);
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    nix::unistd::chown(&journal, Some(nobody.uid), None).unwrap();
    let as_nobody = "user = \"nobody\"\ngroup = \"nogroup\"\n";
    let topology = BASIC
        .replace("{DIR}/out.txt", "{DIR}/logs/out.txt")
        .replace(
            "publish = \"tcp://127.0.0.1:{F}\"\n",
            &format!(
                "publish = \"tcp://127.0.0.1:{{F}}\"\njournal_endpoint = \"tcp://127.0.0.1:{}\"\n{as_nobody}",
                free_port()
            ),
        )
        // Its default ipc output would be in zerologd's runtime directory, root's.
        .replace(
            "name = \"all\"\n",
            &format!(
                "name = \"all\"\noutput = \"tcp://127.0.0.1:{}\"\n{as_nobody}",
                free_port()
            ),
        )
        .replace(
            "restart_backoff = \"50ms\"\n",
            &format!("restart_backoff = \"50ms\"\n{as_nobody}"),
        );
    assert_eq!(topology.matches("nobody").count(), 3, "{topology}");
    let z = Zerologd::start_with(dir.path(), &topology, |cmd| {
        // SAFETY: umask and prctl are async-signal-safe.
        unsafe {
            cmd.pre_exec(|| {
                nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o027));
                // The unit's CapabilityBoundingSet: no CAP_CHOWN, no CAP_DAC_OVERRIDE, ...
                // CAP_KILL 5, CAP_SETGID 6, CAP_SETUID 7, CAP_NET_BIND_SERVICE 10
                // (linux/capability.h).
                let keep = [5, 6, 7, 10];
                for cap in (0..=40).filter(|c| !keep.contains(c)) {
                    nix::libc::prctl(nix::libc::PR_CAPBSET_DROP, cap, 0, 0, 0);
                }
                Ok(())
            });
        }
    });
    z.deliver(&logs.join("out.txt"), "as nobody", 100);
    for (program, counter) in [
        ("forwarder", "messages_received"),
        ("all", "received"),
        ("out:0", "processed"),
    ] {
        let pid = z.pid_of(program).unwrap();
        let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
        assert!(
            status.contains(&format!("Uid:\t{}\t", nobody.uid)),
            "{program} runs as nobody"
        );
        wait_until(READY_TIMEOUT, "the counters in status", || {
            z.counters(program).0[counter] == 100
        });
    }
}
