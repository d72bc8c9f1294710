//! Harness shared by the integration tests: real processes, free ports, deadlines.
//!
//! Every test gets its own temp dir and its own ports, every spawned process is killed when its
//! handle drops (also when the test panics), and every wait has a deadline whose failure message
//! carries the stderr of the processes involved.
//!
//! Peers from outside the project (Python zerolog 0.3, rsyslogd, logger) are found at run time;
//! a test whose peer is missing says `SKIP: ...` on stderr and passes, unless
//! `ZEROLOG_REQUIRE_INTEROP=1` (CI), where it fails.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::HashSet;
use std::env;
use std::ffi::OsStr;
use std::fs::{self, File, OpenOptions};
use std::io::Write;
use std::net::{Ipv4Addr, SocketAddr, TcpListener, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Mutex, OnceLock};
use std::thread;
use std::time::{Duration, Instant};

pub mod load;
pub mod notify;
pub mod zerologd;

/// How long a process gets to log its readiness line.
pub const READY_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a batch of messages gets to travel through a pipeline.
pub const DELIVERY_TIMEOUT: Duration = Duration::from_secs(90);
const POLL: Duration = Duration::from_millis(20);

/// Sends SIGKILL to `pid`.
pub fn kill9(pid: i32) {
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(pid),
        nix::sys::signal::Signal::SIGKILL,
    )
    .unwrap();
}

/// Path of the binary under test.
pub fn zerolog_bin() -> &'static str {
    env!("CARGO_BIN_EXE_zerolog")
}

/// A TCP port on 127.0.0.1 that was free a moment ago; never the same one twice in this process.
pub fn free_port() -> u16 {
    static HANDED_OUT: OnceLock<Mutex<HashSet<u16>>> = OnceLock::new();
    let handed_out = HANDED_OUT.get_or_init(|| Mutex::new(HashSet::new()));
    loop {
        let listener = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).expect("bind 127.0.0.1:0");
        let port = listener.local_addr().expect("local_addr").port();
        if handed_out.lock().unwrap().insert(port) {
            return port;
        }
    }
}

/// Polls `cond` every 20 ms until it holds; panics naming `what` after `timeout`.
pub fn wait_until(timeout: Duration, what: &str, mut cond: impl FnMut() -> bool) {
    let start = Instant::now();
    loop {
        if cond() {
            return;
        }
        if start.elapsed() > timeout {
            panic!("timed out after {timeout:?} waiting for {what}");
        }
        thread::sleep(POLL);
    }
}

/// The complete (LF-terminated) lines of a file, without their LF; empty if the file is missing.
/// A last line still being written (no LF yet) is not returned.
pub fn read_lines(path: &Path) -> Vec<Vec<u8>> {
    let data = fs::read(path).unwrap_or_default();
    let complete = match data.iter().rposition(|&b| b == b'\n') {
        Some(last_lf) => &data[..last_lf],
        None => return Vec::new(),
    };
    complete
        .split(|&b| b == b'\n')
        .map(<[u8]>::to_vec)
        .collect()
}

/// Number of complete lines of a file (0 if missing).
pub fn count_lines(path: &Path) -> usize {
    fs::read(path)
        .map(|data| data.iter().filter(|&&b| b == b'\n').count())
        .unwrap_or(0)
}

/// Shows bytes as text for failure messages.
pub fn show(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// Field `key` (`VmRSS`, `VmHWM`) of `pid`'s /proc status, in kB; 0 once it is gone.
pub fn status_kb(pid: u32, key: &str) -> u64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix(key)?.strip_prefix(':'))
                .and_then(|v| v.trim().trim_end_matches(" kB").parse().ok())
        })
        .unwrap_or(0)
}

/// Writes all of `bytes` to 127.0.0.1:`port` on one connection, then closes it.
pub fn send_tcp(port: u16, bytes: &[u8]) {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(10))
        .unwrap_or_else(|e| panic!("connect to {addr}: {e}"));
    stream
        .set_write_timeout(Some(DELIVERY_TIMEOUT))
        .expect("set_write_timeout");
    stream.write_all(bytes).unwrap_or_else(|e| {
        panic!(
            "writing {} bytes to {addr} (peer stopped reading?): {e}",
            bytes.len()
        )
    });
    stream.flush().expect("flush");
}

/// True if something accepts TCP connections on 127.0.0.1:`port`.
pub fn tcp_accepts(port: u16) -> bool {
    let addr = SocketAddr::from((Ipv4Addr::LOCALHOST, port));
    TcpStream::connect_timeout(&addr, Duration::from_millis(200)).is_ok()
}

// ---------------------------------------------------------------------------------------------
// Processes

/// A child process whose stdout and stderr go to files in the test's dir (so nothing ever blocks
/// on a full pipe). Dropping it kills it (SIGKILL) and reaps it.
pub struct Proc {
    name: String,
    child: RefCell<Child>,
    stdout_path: PathBuf,
    stderr_path: PathBuf,
}

impl Proc {
    /// Spawns `cmd` with stdin closed and output in `<dir>/<name>.stdout|.stderr`.
    pub fn spawn(dir: &Path, name: &str, mut cmd: Command) -> Proc {
        let stdout_path = dir.join(format!("{name}.stdout"));
        let stderr_path = dir.join(format!("{name}.stderr"));
        let create = |path: &Path| {
            OpenOptions::new()
                .write(true)
                .create_new(true)
                .open(path)
                .unwrap_or_else(|e| {
                    panic!(
                        "{}: {e} (process names must be unique per dir)",
                        path.display()
                    )
                })
        };
        cmd.stdin(Stdio::null())
            .stdout(create(&stdout_path))
            .stderr(create(&stderr_path));
        let child = cmd
            .spawn()
            .unwrap_or_else(|e| panic!("cannot spawn {name} ({cmd:?}): {e}"));
        Proc {
            name: name.to_string(),
            child: RefCell::new(child),
            stdout_path,
            stderr_path,
        }
    }

    pub fn name(&self) -> &str {
        &self.name
    }

    pub fn pid(&self) -> u32 {
        self.child.borrow().id()
    }

    pub fn stdout_path(&self) -> &Path {
        &self.stdout_path
    }

    pub fn stderr_text(&self) -> String {
        show(&fs::read(&self.stderr_path).unwrap_or_default())
    }

    pub fn stdout_text(&self) -> String {
        show(&fs::read(&self.stdout_path).unwrap_or_default())
    }

    /// `None` while running, the exit status once it has exited.
    pub fn try_status(&self) -> Option<ExitStatus> {
        self.child
            .borrow_mut()
            .try_wait()
            .unwrap_or_else(|e| panic!("try_wait on {}: {e}", self.name))
    }

    pub fn is_running(&self) -> bool {
        self.try_status().is_none()
    }

    /// Sends a signal by name (`TERM`, `INT`, `HUP`, `KILL`, ...) with kill(1).
    pub fn signal(&self, sig: &str) {
        let status = Command::new("kill")
            .args(["-s", sig, &self.pid().to_string()])
            .status()
            .unwrap_or_else(|e| panic!("running kill -s {sig}: {e}"));
        assert!(
            status.success(),
            "kill -s {sig} {} ({}) failed",
            self.pid(),
            self.name
        );
    }

    /// Stops the process with SIGTERM and returns the first line of its log that contains
    /// `needle` (an element logs its counters as it exits: `forwarder counters: ...`).
    pub fn stop_and_find_line(&self, needle: &str) -> String {
        self.signal("TERM");
        self.wait_exit(Duration::from_secs(30));
        let log = self.stderr_text();
        log.lines()
            .find(|l| l.contains(needle))
            .unwrap_or_else(|| panic!("no line with {needle:?} in the log of {}\n{log}", self.name))
            .to_string()
    }

    /// Waits for the process to exit; panics with its stderr after `timeout`.
    pub fn wait_exit(&self, timeout: Duration) -> ExitStatus {
        let start = Instant::now();
        loop {
            if let Some(status) = self.try_status() {
                return status;
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} did not exit within {timeout:?}\n{}",
                    self.name,
                    self.describe()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// Waits until stderr contains `needle`; panics with the stderr content on timeout or if the
    /// process exits first.
    pub fn wait_for_stderr(&self, needle: &str, timeout: Duration) {
        let start = Instant::now();
        loop {
            if self.stderr_text().contains(needle) {
                return;
            }
            if let Some(status) = self.try_status() {
                // It may have logged the line just before exiting.
                if self.stderr_text().contains(needle) {
                    return;
                }
                panic!(
                    "{} exited ({status}) before logging {needle:?}\n{}",
                    self.name,
                    self.describe()
                );
            }
            if start.elapsed() > timeout {
                panic!(
                    "{} did not log {needle:?} within {timeout:?}\n{}",
                    self.name,
                    self.describe()
                );
            }
            thread::sleep(POLL);
        }
    }

    /// State and output of the process, for failure messages.
    pub fn describe(&self) -> String {
        let state = match self.try_status() {
            None => "running".to_string(),
            Some(status) => format!("exited: {status}"),
        };
        format!(
            "--- {} (pid {}, {state}) stderr:\n{}\n--- {} stdout:\n{}\n---",
            self.name,
            self.pid(),
            tail(&self.stderr_text(), 6000),
            self.name,
            tail(&self.stdout_text(), 2000),
        )
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        let child = self.child.get_mut();
        let _ = child.kill();
        let _ = child.wait();
    }
}

fn tail(text: &str, max: usize) -> &str {
    if text.len() <= max {
        return text;
    }
    let mut start = text.len() - max;
    while !text.is_char_boundary(start) {
        start += 1;
    }
    &text[start..]
}

/// Describes several processes, for failure messages.
pub fn describe_all(procs: &[&Proc]) -> String {
    procs
        .iter()
        .map(|p| p.describe())
        .collect::<Vec<_>>()
        .join("\n")
}

/// Spawns the binary under test: `zerolog ARGS...`.
pub fn zerolog(dir: &Path, name: &str, args: &[&str]) -> Proc {
    let mut cmd = Command::new(zerolog_bin());
    cmd.args(args);
    Proc::spawn(dir, name, cmd)
}

/// Spawns `zerolog ARGS...` with a notify socket of the test's, on which it says READY=1.
pub fn zerolog_notified(dir: &Path, name: &str, args: &[&str]) -> (Proc, notify::NotifySocket) {
    let notify = notify::NotifySocket::bind(&dir.join(format!("{name}-notify.sock")));
    let mut cmd = Command::new(zerolog_bin());
    cmd.args(args).env("NOTIFY_SOCKET", notify.path());
    (Proc::spawn(dir, name, cmd), notify)
}

/// Waits until `path` has at least `n` complete lines; on timeout panics with the count reached
/// and the state of `procs`.
pub fn wait_for_line_count(path: &Path, n: usize, timeout: Duration, procs: &[&Proc]) {
    let start = Instant::now();
    loop {
        let count = count_lines(path);
        if count >= n {
            return;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?}: {} has {count} of {n} expected lines\n{}",
                path.display(),
                describe_all(procs)
            );
        }
        thread::sleep(POLL);
    }
}

/// Waits until some complete line of `path` ends with `suffix`.
pub fn wait_for_line_ending(
    path: &Path,
    suffix: &[u8],
    timeout: Duration,
    procs: &[&Proc],
) -> Vec<Vec<u8>> {
    let start = Instant::now();
    loop {
        let lines = read_lines(path);
        if lines.iter().any(|l| l.ends_with(suffix)) {
            return lines;
        }
        if start.elapsed() > timeout {
            panic!(
                "timed out after {timeout:?}: no line of {} ends with {:?} ({} lines)\n{}",
                path.display(),
                show(suffix),
                lines.len(),
                describe_all(procs)
            );
        }
        thread::sleep(POLL);
    }
}

// ---------------------------------------------------------------------------------------------
// Our elements

/// `zerolog forwarder` on free ports.
pub struct Forwarder {
    pub proc: Proc,
    pub backend_port: u16,
    pub frontend_port: u16,
    notify: notify::NotifySocket,
}

impl Forwarder {
    /// Spawns a forwarder that waits for `wait_subscribers` subscriptions before reading input.
    /// Does not wait for it: call [`Forwarder::wait_ready`] once its subscribers are started.
    pub fn spawn(dir: &Path, name: &str, wait_subscribers: usize, extra: &[&str]) -> Forwarder {
        let backend_port = free_port();
        let frontend_port = free_port();
        let (b, f, w) = (
            backend_port.to_string(),
            frontend_port.to_string(),
            wait_subscribers.to_string(),
        );
        let mut args = vec!["forwarder", "-b", &b, "-f", &f, "--wait-subscribers", &w];
        args.extend_from_slice(extra);
        let (proc, notify) = zerolog_notified(dir, name, &args);
        Forwarder {
            proc,
            backend_port,
            frontend_port,
            notify,
        }
    }

    /// Waits for its READY=1 (it then reads its input port).
    pub fn wait_ready(&self) {
        self.notify.until("READY=1", READY_TIMEOUT, &self.proc);
    }
}

/// `zerolog receiver` with a TCP output port.
pub struct Receiver {
    pub proc: Proc,
    pub output_port: u16,
}

impl Receiver {
    /// Starts a receiver on `127.0.0.1:forwarder_port` and waits for its READY=1.
    pub fn start(dir: &Path, name: &str, forwarder_port: u16, topic: Option<&str>) -> Receiver {
        let output_port = free_port();
        let (o, f) = (output_port.to_string(), forwarder_port.to_string());
        let mut args = vec!["receiver"];
        if let Some(topic) = topic {
            args.extend_from_slice(&["-t", topic]);
        }
        args.extend_from_slice(&["--output-port", &o, "127.0.0.1", &f]);
        let (proc, notify) = zerolog_notified(dir, name, &args);
        notify.until("READY=1", READY_TIMEOUT, &proc);
        Receiver { proc, output_port }
    }

    pub fn endpoint(&self) -> String {
        format!("tcp://127.0.0.1:{}", self.output_port)
    }
}

/// `zerolog worker ENDPOINT file <dir>/<name>.out`.
pub struct FileWorker {
    pub proc: Proc,
    pub out: PathBuf,
}

impl FileWorker {
    pub fn start(dir: &Path, name: &str, endpoint: &str) -> FileWorker {
        let out = dir.join(format!("{name}.out"));
        let out_arg = out.to_str().expect("utf-8 temp path");
        let proc = zerolog(dir, name, &["worker", endpoint, "file", out_arg]);
        FileWorker { proc, out }
    }
}

/// forwarder (`--wait-subscribers 1`) -> one receiver -> one `file` worker writing `out`.
pub struct Pipeline {
    pub forwarder: Forwarder,
    pub receiver: Receiver,
    pub worker: FileWorker,
    pub topic: Option<String>,
}

impl Pipeline {
    /// Starts the three elements in `dir` and waits until the forwarder reads input.
    pub fn start(dir: &Path, topic: Option<&str>, forwarder_args: &[&str]) -> Pipeline {
        let forwarder = Forwarder::spawn(dir, "forwarder", 1, forwarder_args);
        let receiver = Receiver::start(dir, "receiver", forwarder.frontend_port, topic);
        let worker = FileWorker::start(dir, "worker", &receiver.endpoint());
        forwarder.wait_ready();
        Pipeline {
            forwarder,
            receiver,
            worker,
            topic: topic.map(str::to_string),
        }
    }

    pub fn backend_port(&self) -> u16 {
        self.forwarder.backend_port
    }

    pub fn out(&self) -> &Path {
        &self.worker.out
    }

    pub fn procs(&self) -> [&Proc; 3] {
        [&self.forwarder.proc, &self.receiver.proc, &self.worker.proc]
    }

    pub fn describe(&self) -> String {
        describe_all(&self.procs())
    }

    /// Waits until the output has at least `n` lines.
    pub fn wait_for_lines(&self, n: usize, timeout: Duration) {
        wait_for_line_count(self.out(), n, timeout, &self.procs());
    }

    /// Sends a marker message on a new connection and waits for it at the worker; returns the
    /// output lines without any marker. Everything that had reached the worker, or had been
    /// published before the marker, is in the result: the path is FIFO end to end. Assumes the
    /// default topic template.
    pub fn barrier(&self) -> Vec<Vec<u8>> {
        barrier(
            self.backend_port(),
            self.out(),
            self.topic.as_deref(),
            &self.procs(),
        )
    }
}

/// Sends a marker message to the forwarder on `backend_port` on a new connection and waits until
/// it is the end of a line of `out`; returns the lines of `out` without any marker.
///
/// Everything that had reached `out` before, or had been published before the marker, is then in
/// `out`: one forwarder -> receiver -> worker path is FIFO. `topic` is the receiver's
/// subscription (the marker is built to match it under the default topic template).
pub fn barrier(
    backend_port: u16,
    out: &Path,
    topic: Option<&str>,
    procs: &[&Proc],
) -> Vec<Vec<u8>> {
    static BARRIERS: AtomicU32 = AtomicU32::new(0);
    let n = BARRIERS.fetch_add(1, Ordering::Relaxed);
    let marker = format!("{BARRIER_PREFIX}{n}");
    send_tcp(backend_port, &barrier_line(topic, &marker));
    let lines = wait_for_line_ending(out, marker.as_bytes(), DELIVERY_TIMEOUT, procs);
    strip_barriers(lines)
}

pub const BARRIER_PREFIX: &str = "zerolog-test-barrier-";

/// A line whose topic (default template) matches the subscription `topic`, ending with `marker`.
pub fn barrier_line(topic: Option<&str>, marker: &str) -> Vec<u8> {
    match topic {
        None | Some("") | Some("-") => format!("{marker}\n").into_bytes(),
        Some(app) => {
            format!("<13>1 2026-01-01T00:00:00Z zerolog-test {app} - - - {marker}\n").into_bytes()
        }
    }
}

/// Drops the barrier markers from output lines.
pub fn strip_barriers(lines: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
    lines
        .into_iter()
        .filter(|l| !contains(l, BARRIER_PREFIX.as_bytes()))
        .collect()
}

pub fn contains(haystack: &[u8], needle: &[u8]) -> bool {
    needle.is_empty() || haystack.windows(needle.len()).any(|w| w == needle)
}

// ---------------------------------------------------------------------------------------------
// Peers

/// Returns `peer` or, when it is missing, either panics (`ZEROLOG_REQUIRE_INTEROP=1`) or prints
/// a visible `SKIP:` line and returns `None`.
pub fn peer_or_skip<T>(name: &str, peer: Option<T>) -> Option<T> {
    if peer.is_some() {
        return peer;
    }
    if env::var("ZEROLOG_REQUIRE_INTEROP").as_deref() == Ok("1") {
        panic!("interop peer {name} missing and ZEROLOG_REQUIRE_INTEROP=1");
    }
    // Written to the real stderr, not through eprintln!, so the test harness does not swallow
    // it for a passing test.
    let _ = writeln!(
        std::io::stderr(),
        "SKIP: interop peer {name} missing; test not run (ZEROLOG_REQUIRE_INTEROP=1 makes this fail)"
    );
    None
}

/// Where [`python`] looks: `$ZEROLOG_PYTHON`, else `<repo>/.venv/bin/python`.
pub fn python_candidate() -> PathBuf {
    match env::var_os("ZEROLOG_PYTHON") {
        Some(p) => PathBuf::from(p),
        None => Path::new(env!("CARGO_MANIFEST_DIR")).join(".venv/bin/python"),
    }
}

/// A Python with zerolog 0.3 and pyzmq at [`python_candidate`]: `python -c "import zerolog, zmq"`
/// must succeed.
pub fn python() -> Option<PathBuf> {
    static PYTHON: OnceLock<Option<PathBuf>> = OnceLock::new();
    PYTHON
        .get_or_init(|| {
            let candidate = python_candidate();
            let ok = Command::new(&candidate)
                .args(["-c", "import zerolog, zmq"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .status()
                .is_ok_and(|s| s.success());
            ok.then_some(candidate)
        })
        .clone()
}

/// The zerolog 0.3 command line: the `zerolog` console script next to `python`, else the same
/// entry point through `python -c`.
pub fn zerolog_py(python: &Path) -> Command {
    let script = python.with_file_name("zerolog");
    if is_executable(&script) {
        Command::new(script)
    } else {
        let mut cmd = Command::new(python);
        cmd.args([
            "-c",
            "import sys; from zerolog.commands.main import main; sys.argv[0] = 'zerolog'; main()",
        ]);
        cmd
    }
}

pub fn rsyslogd() -> Option<PathBuf> {
    find_program("rsyslogd", &["/usr/sbin/rsyslogd", "/sbin/rsyslogd"])
}

/// rsyslogd, if each of `modules` (`omrelp`, `lmnsd_gtls`: Debian's rsyslog-relp,
/// rsyslog-gnutls) is installed too.
pub fn rsyslogd_with(modules: &[&str]) -> Option<PathBuf> {
    let dirs = [
        "/usr/lib/x86_64-linux-gnu/rsyslog",
        "/usr/lib/rsyslog",
        "/usr/lib64/rsyslog",
    ];
    let has = |m: &&str| {
        dirs.iter()
            .any(|d| Path::new(d).join(format!("{m}.so")).exists())
    };
    rsyslogd().filter(|_| modules.iter().all(has))
}

/// The `openssl` command line tool (Debian package openssl).
pub fn openssl() -> Option<PathBuf> {
    find_program("openssl", &["/usr/bin/openssl"])
}

pub fn logger() -> Option<PathBuf> {
    find_program("logger", &["/usr/bin/logger", "/bin/logger"])
}

fn find_program(name: &str, fallbacks: &[&str]) -> Option<PathBuf> {
    let path = env::var_os("PATH").unwrap_or_default();
    env::split_paths(&path)
        .map(|dir| dir.join(name))
        .chain(fallbacks.iter().map(PathBuf::from))
        .find(|p| is_executable(p))
}

fn is_executable(path: &Path) -> bool {
    fs::metadata(path).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
}

/// Runs `logger ARGS...` to completion (deadline 10 s) and asserts it succeeded.
pub fn run_logger(logger: &Path, dir: &Path, name: &str, args: &[&str]) {
    let mut cmd = Command::new(logger);
    cmd.args(args);
    let proc = Proc::spawn(dir, name, cmd);
    let status = proc.wait_exit(Duration::from_secs(10));
    assert!(
        status.success(),
        "logger {args:?} failed\n{}",
        proc.describe()
    );
}

// ---------------------------------------------------------------------------------------------
// rsyslog

/// How rsyslog's omfwd frames messages over TCP.
#[derive(Clone, Copy, Debug)]
pub enum RsyslogFraming {
    /// LF after each message (omfwd `TCP_Framing="traditional"`).
    Traditional,
    /// RFC 6587 octet counting (omfwd `TCP_Framing="octet-counted"`).
    OctetCounted,
}

/// RFC 5424 output; ends with an LF, which omfwd does not double in traditional framing and
/// keeps inside the frame in octet-counted framing.
pub const RSYSLOG_RFC5424: &str = "RSYSLOG_SyslogProtocol23Format";
/// `<PRI>TIMESTAMP HOST TAG MSG` with an RFC 3339 timestamp; no trailing LF.
pub const RSYSLOG_FORWARD: &str = "RSYSLOG_ForwardFormat";

/// An rsyslogd of our own: imtcp on `input_port`, everything received there forwarded by omfwd
/// over TCP to 127.0.0.1:`target_port`. Queues are in memory, never discard, retry forever.
pub struct Rsyslog {
    pub proc: Proc,
    pub input_port: u16,
    pub conf: PathBuf,
}

impl Rsyslog {
    pub fn start(
        rsyslogd: &Path,
        dir: &Path,
        target_port: u16,
        framing: RsyslogFraming,
        template: &str,
    ) -> Rsyslog {
        let framing = match framing {
            RsyslogFraming::Traditional => "traditional",
            RsyslogFraming::OctetCounted => "octet-counted",
        };
        let action = format!(
            r#"action(type="omfwd" target="127.0.0.1" port="{target_port}" protocol="tcp"
         TCP_Framing="{framing}" template="{template}"
         queue.type="LinkedList" queue.size="200000" queue.discardSeverity="8"
         action.resumeRetryCount="-1" action.resumeInterval="1")"#
        );
        Self::start_action(rsyslogd, dir, "", &action)
    }

    /// rsyslogd forwarding what its TCP input gets through `action` (after loading `modules`).
    pub fn start_action(rsyslogd: &Path, dir: &Path, modules: &str, action: &str) -> Rsyslog {
        let home = dir.join("rsyslog");
        let work = home.join("work");
        fs::create_dir_all(&work).expect("create rsyslog dirs");
        let input_port = free_port();
        // The input has its own ruleset so rsyslogd's own messages (start-up notice, errors)
        // are not forwarded. No imuxsock/imklog: nothing touches /dev/log or the kernel log.
        let conf_text = format!(
            r#"global(workDirectory="{work}" net.enableDNS="off")
main_queue(queue.type="LinkedList" queue.size="200000" queue.discardSeverity="8")
module(load="imtcp")
{modules}
input(type="imtcp" address="127.0.0.1" port="{input_port}" ruleset="forward")
ruleset(name="forward") {{
  {action}
}}
"#,
            work = work.display(),
        );
        let conf = home.join("rsyslog.conf");
        fs::write(&conf, conf_text).expect("write rsyslog.conf");
        let mut cmd = Command::new(rsyslogd);
        cmd.arg("-n")
            .arg("-f")
            .arg(&conf)
            .arg("-i")
            .arg(home.join("rsyslogd.pid"));
        let proc = Proc::spawn(dir, "rsyslogd", cmd);
        let start = Instant::now();
        while !tcp_accepts(input_port) {
            if !proc.is_running() || start.elapsed() > READY_TIMEOUT {
                panic!(
                    "rsyslogd did not listen on 127.0.0.1:{input_port} within {READY_TIMEOUT:?}\n\
                     config {}:\n{}\n{}",
                    conf.display(),
                    fs::read_to_string(&conf).unwrap_or_default(),
                    proc.describe()
                );
            }
            thread::sleep(POLL);
        }
        Rsyslog {
            proc,
            input_port,
            conf,
        }
    }
}

/// Writes `text` to a file named `name` in `dir` and returns its path.
pub fn write_file(dir: &Path, name: impl AsRef<OsStr>, text: &str) -> PathBuf {
    let path = dir.join(name.as_ref());
    let mut file = File::create(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    file.write_all(text.as_bytes()).expect("write");
    path
}

/// Whether process `pid` lives (a zombie does not).
pub fn alive(pid: i32) -> bool {
    // A zombie is not alive; /proc/PID/stat's third field is the state.
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .map(|s| {
            let state = s.rsplit(')').next().unwrap_or("").split_whitespace().next();
            state != Some("Z")
        })
        .unwrap_or(false)
}

/// `GET path` over HTTP/1.0 from 127.0.0.1:`port`: the whole answer, or what came of it.
pub fn http_get(port: u16, path: &str) -> String {
    use std::io::{Read, Write};
    let mut c = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    c.set_read_timeout(Some(Duration::from_secs(10))).unwrap();
    write!(c, "GET {path} HTTP/1.0\r\nHost: localhost\r\n\r\n").unwrap();
    let mut answer = String::new();
    let _ = c.read_to_string(&mut answer);
    answer
}

/// Whether this test runs as root (it needs to for `why`); otherwise a visible skip, or a
/// failure under ZEROLOG_REQUIRE_INTEROP=1, as for a missing peer.
pub fn root_or_skip(why: &str) -> bool {
    let root = nix::unistd::geteuid().is_root().then_some(());
    peer_or_skip(&format!("root privileges ({why})"), root).is_some()
}

/// A SUB socket of every topic connected to `endpoint`, receiving with a 200 ms timeout.
pub fn sub(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::SUB).unwrap();
    s.set_subscribe(b"").unwrap();
    s.set_rcvtimeo(200).unwrap();
    s.connect(endpoint).unwrap();
    s
}

/// The value of counter `name` in an element's ` counters:` log line.
pub fn counter(line: &str, name: &str) -> u64 {
    line.split(&format!(" {name}="))
        .nth(1)
        .and_then(|v| v.split_whitespace().next()?.parse().ok())
        .unwrap_or_else(|| panic!("no {name} in {line}"))
}
