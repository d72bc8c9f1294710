//! Workers: PULL messages from a receiver (or any PUSH peer) and process them.
//!
//! [`run`] drives any [`Worker`]. The built-in workers are `stdout`, `file PATH`, `null`, and
//! a program that gets every message on its stdin ([`ProgramWorker`]).
//!
//! Output framing for stdout, file and program stdin ([`OutputFraming`]):
//! - `lf` (default): one message per line; an LF inside a message is written as the four bytes
//!   `#012` (the convention of rsyslog's control-character escaping), so a message never spans
//!   two lines. Nothing else is changed.
//! - `octet-counted`: `LEN SP MSG`, as RFC 6587; bytes pass raw, LF included.
//! - `nul`: each message followed by a NUL byte; bytes pass raw.

use std::fs::{File, OpenOptions};
use std::io::{self, BufWriter, Write};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, Stdio};
use std::str::FromStr;
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::signals::Signals;
use crate::stats::WorkerStats;
use crate::zmqutil::{self, zerr};
use crate::Error;

/// How messages are delimited on a byte stream written by a worker.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum OutputFraming {
    /// One message per line, embedded LF written as `#012`.
    #[default]
    Lf,
    /// `LEN SP MSG` (RFC 6587 octet counting), raw bytes.
    OctetCounted,
    /// Message then NUL, raw bytes.
    Nul,
}

impl FromStr for OutputFraming {
    type Err = String;
    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "lf" => Ok(OutputFraming::Lf),
            "octet-counted" => Ok(OutputFraming::OctetCounted),
            "nul" => Ok(OutputFraming::Nul),
            other => Err(format!(
                "unknown framing '{other}': expected lf, octet-counted or nul"
            )),
        }
    }
}

impl std::fmt::Display for OutputFraming {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(match self {
            OutputFraming::Lf => "lf",
            OutputFraming::OctetCounted => "octet-counted",
            OutputFraming::Nul => "nul",
        })
    }
}

impl OutputFraming {
    /// Writes one message to `w` in this framing.
    pub fn write(self, w: &mut impl Write, msg: &[u8]) -> io::Result<()> {
        match self {
            OutputFraming::Lf => {
                let mut rest = msg;
                while let Some(i) = memchr::memchr(b'\n', rest) {
                    w.write_all(&rest[..i])?;
                    w.write_all(b"#012")?;
                    rest = &rest[i + 1..];
                }
                w.write_all(rest)?;
                w.write_all(b"\n")
            }
            OutputFraming::OctetCounted => {
                write!(w, "{} ", msg.len())?;
                w.write_all(msg)
            }
            OutputFraming::Nul => {
                w.write_all(msg)?;
                w.write_all(b"\0")
            }
        }
    }
}

/// Something that processes messages, one at a time.
///
/// Only [`Worker::process`] is required. The runner calls [`Worker::flush`] whenever no
/// further message is waiting, [`Worker::tick`] about ten times a second while idle,
/// [`Worker::reopen`] on SIGHUP, and [`Worker::stop`] once, after the last message.
pub trait Worker {
    /// Processes one message.
    fn process(&mut self, msg: &[u8]) -> Result<(), Error>;

    /// No message is waiting: make what was processed visible (flush buffers).
    fn flush(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Called periodically while idle, to notice failures (a dead child, say).
    fn tick(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// SIGHUP: reopen outputs (after logrotate).
    fn reopen(&mut self) -> Result<(), Error> {
        Ok(())
    }

    /// Last call: flush and release everything.
    fn stop(&mut self) -> Result<(), Error> {
        self.flush()
    }
}

/// How long a blocking receive waits before the runner looks at signals and ticks.
const TICK_MS: i32 = 100;

/// Connects a PULL socket to `backend` and feeds `worker` until a stop signal; then processes
/// messages until none arrived for a tick (100 ms), calls [`Worker::stop`], and returns. A
/// worker error ends the run.
pub fn run(
    backend: &str,
    worker: &mut dyn Worker,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    let ctx = zmq::Context::new();
    let pull = ctx
        .socket(zmq::PULL)
        .map_err(zerr("creating PULL socket"))?;
    pull.set_rcvtimeo(TICK_MS)
        .map_err(zerr("setting timeout"))?;
    pull.set_linger(0).map_err(zerr("setting linger"))?;
    // A small queue: what sits here is lost if this worker dies, and the receiver's
    // round-robin balances better across workers when it does not prefetch much.
    pull.set_rcvhwm(1000).map_err(zerr("setting hwm"))?;
    zmqutil::connect(&pull, backend)?;
    info!(backend, "worker connected");
    let result = pump(&pull, worker, signals, stats);
    let stopped = worker.stop();
    stats.log("worker");
    result.and(stopped)
}

fn pump(
    pull: &zmq::Socket,
    worker: &mut dyn Worker,
    signals: &Signals,
    stats: &WorkerStats,
) -> Result<(), Error> {
    let mut unflushed = false;
    let mut stopping = false;
    loop {
        if signals.take_hup() {
            worker.flush()?;
            worker.reopen()?;
        }
        if !stopping && signals.stop_requested().is_some() {
            stopping = true;
            info!("stop requested: processing what is queued, then exiting");
        }
        // After a message, poll without waiting so the output is flushed as soon as the
        // queue is empty. While stopping, the same holds: the runner returns only once
        // nothing arrived for a whole tick.
        let flags = if unflushed { zmq::DONTWAIT } else { 0 };
        match pull.recv_msg(flags) {
            Ok(msg) => {
                stats.received.fetch_add(1, Relaxed);
                if let Err(e) = worker.process(&msg) {
                    stats.failed.fetch_add(1, Relaxed);
                    return Err(e);
                }
                stats.processed.fetch_add(1, Relaxed);
                unflushed = true;
            }
            Err(zmq::Error::EAGAIN | zmq::Error::EINTR) => {
                if unflushed {
                    worker.flush()?;
                    unflushed = false;
                } else if stopping {
                    return Ok(());
                } else {
                    worker.tick()?;
                }
            }
            Err(e) => return Err(zerr("receiving from backend")(e)),
        }
    }
}

/// Writes messages to the process's stdout.
pub struct StdoutWorker {
    out: BufWriter<io::Stdout>,
    framing: OutputFraming,
}

impl StdoutWorker {
    pub fn new(framing: OutputFraming) -> Self {
        StdoutWorker {
            out: BufWriter::with_capacity(64 * 1024, io::stdout()),
            framing,
        }
    }
}

fn out_err(path: &Path) -> impl FnOnce(io::Error) -> Error + '_ {
    move |source| Error::Output {
        path: path.to_path_buf(),
        source,
    }
}

impl Worker for StdoutWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.framing
            .write(&mut self.out, msg)
            .map_err(out_err(Path::new("stdout")))
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(out_err(Path::new("stdout")))
    }
}

/// Appends messages to a file; reopens it on SIGHUP (for logrotate).
pub struct FileWorker {
    path: PathBuf,
    out: BufWriter<File>,
    framing: OutputFraming,
}

impl FileWorker {
    pub fn open(path: &Path, framing: OutputFraming) -> Result<Self, Error> {
        Ok(FileWorker {
            path: path.to_path_buf(),
            out: Self::open_file(path)?,
            framing,
        })
    }

    fn open_file(path: &Path) -> Result<BufWriter<File>, Error> {
        let f = OpenOptions::new()
            .create(true)
            .append(true)
            .open(path)
            .map_err(out_err(path))?;
        Ok(BufWriter::with_capacity(64 * 1024, f))
    }
}

impl Worker for FileWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.framing
            .write(&mut self.out, msg)
            .map_err(out_err(&self.path))
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.out.flush().map_err(out_err(&self.path))
    }
    fn reopen(&mut self) -> Result<(), Error> {
        self.out = Self::open_file(&self.path)?;
        info!(path = %self.path.display(), "reopened output file");
        Ok(())
    }
}

/// Counts messages and discards them: the sink for benchmarks. Logs the count and rate when
/// it stops and, given a report path, keeps a JSON report there (rewritten at most once a
/// second, and at the end): messages, bytes, the wall-clock time of the first and last message,
/// and per loggen connection (`seq=CONN.N` in the message) the count, highest sequence number,
/// missing numbers (below the highest, never seen here) and duplicates.
pub struct NullWorker {
    count: u64,
    bytes: u64,
    first: Option<(Instant, std::time::SystemTime)>,
    last: Option<std::time::SystemTime>,
    seqs: std::collections::BTreeMap<u32, SeqTrack>,
    report: Option<PathBuf>,
    last_report: Option<Instant>,
    dirty: bool,
}

/// Sequence numbers seen from one loggen connection, as a bitmap.
#[derive(Default)]
struct SeqTrack {
    seen: Vec<u64>,
    count: u64,
    max: Option<u64>,
    duplicates: u64,
}

impl SeqTrack {
    fn add(&mut self, n: u64) {
        let (word, bit) = ((n / 64) as usize, n % 64);
        if word >= self.seen.len() {
            self.seen.resize(word + 1, 0);
        }
        if self.seen[word] & (1 << bit) != 0 {
            self.duplicates += 1;
            return;
        }
        self.seen[word] |= 1 << bit;
        self.count += 1;
        self.max = Some(self.max.map_or(n, |m| m.max(n)));
    }

    fn missing(&self) -> u64 {
        self.max.map_or(0, |m| m + 1 - self.count)
    }
}

impl NullWorker {
    pub fn new(report: Option<PathBuf>) -> Self {
        NullWorker {
            count: 0,
            bytes: 0,
            first: None,
            last: None,
            seqs: Default::default(),
            report,
            last_report: None,
            dirty: false,
        }
    }

    /// Messages counted so far.
    pub fn count(&self) -> u64 {
        self.count
    }

    /// The report, as JSON.
    pub fn report_json(&self) -> serde_json::Value {
        let ns = |t: Option<std::time::SystemTime>| {
            t.and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
                .map(|d| d.as_nanos() as u64)
        };
        let conns: serde_json::Map<String, serde_json::Value> = self
            .seqs
            .iter()
            .map(|(c, t)| {
                (
                    c.to_string(),
                    serde_json::json!({
                        "count": t.count,
                        "max_seq": t.max,
                        "missing": t.missing(),
                        "duplicates": t.duplicates,
                    }),
                )
            })
            .collect();
        serde_json::json!({
            "messages": self.count,
            "bytes": self.bytes,
            "first_unix_ns": ns(self.first.map(|f| f.1)),
            "last_unix_ns": ns(self.last),
            "missing": self.seqs.values().map(SeqTrack::missing).sum::<u64>(),
            "duplicates": self.seqs.values().map(|t| t.duplicates).sum::<u64>(),
            "connections": conns,
        })
    }

    fn write_report(&mut self) -> Result<(), Error> {
        let Some(path) = self.report.clone() else {
            return Ok(());
        };
        let tmp = path.with_extension("tmp");
        std::fs::write(&tmp, self.report_json().to_string())
            .and_then(|_| std::fs::rename(&tmp, &path))
            .map_err(out_err(&path))?;
        self.last_report = Some(Instant::now());
        self.dirty = false;
        Ok(())
    }
}

impl Worker for NullWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        let now = std::time::SystemTime::now();
        self.first.get_or_insert_with(|| (Instant::now(), now));
        self.last = Some(now);
        self.count += 1;
        self.bytes += msg.len() as u64;
        if let Some((conn, n)) = crate::loggen::parse_seq(msg) {
            self.seqs.entry(conn).or_default().add(n);
        }
        self.dirty = true;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        if self.dirty
            && self
                .last_report
                .is_none_or(|t| t.elapsed() >= Duration::from_secs(1))
        {
            self.write_report()?;
        }
        Ok(())
    }
    fn tick(&mut self) -> Result<(), Error> {
        if self.dirty {
            self.write_report()?;
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<(), Error> {
        let secs = self.first.map_or(0.0, |t| t.0.elapsed().as_secs_f64());
        let rate = if secs > 0.0 {
            self.count as f64 / secs
        } else {
            0.0
        };
        let missing: u64 = self.seqs.values().map(SeqTrack::missing).sum();
        let duplicates: u64 = self.seqs.values().map(|t| t.duplicates).sum();
        info!(
            messages = self.count,
            bytes = self.bytes,
            rate_per_s = rate as u64,
            missing,
            duplicates,
            "null worker counted"
        );
        self.write_report()
    }
}

/// Runs a program and writes every message to its stdin. Its stdout and stderr are those of
/// this process. The worker fails (and so exits) when the program dies.
pub struct ProgramWorker {
    name: String,
    child: Child,
    stdin: Option<BufWriter<ChildStdin>>,
    framing: OutputFraming,
}

/// How long a stopping program may take to exit after its stdin closes, before SIGTERM.
const PROGRAM_EXIT_GRACE: Duration = Duration::from_secs(10);

impl ProgramWorker {
    pub fn spawn(program: &Path, args: &[String], framing: OutputFraming) -> Result<Self, Error> {
        let mut cmd = Command::new(program);
        cmd.args(args).stdin(Stdio::piped());
        crate::process::die_with_parent(&mut cmd);
        let mut child = cmd.spawn().map_err(|source| Error::Spawn {
            program: program.to_path_buf(),
            source,
        })?;
        let stdin = child
            .stdin
            .take()
            .map(|s| BufWriter::with_capacity(64 * 1024, s));
        info!(program = %program.display(), pid = child.id(), "worker program started");
        Ok(ProgramWorker {
            name: program.display().to_string(),
            child,
            stdin,
            framing,
        })
    }

    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn died(&mut self, status: std::process::ExitStatus) -> Error {
        Error::ProgramDied {
            program: self.name.clone(),
            status: status.to_string(),
            code: exit_code_for(status),
        }
    }

    /// The program failed to take input: report how it died (waiting briefly for it).
    fn write_failed(&mut self, e: io::Error) -> Error {
        let deadline = Instant::now() + Duration::from_secs(1);
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return self.died(status);
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        Error::Output {
            path: PathBuf::from(format!("stdin of {}", self.name)),
            source: e,
        }
    }
}

/// The worker's exit code when its program ended with `status`: the program's own non-zero
/// code, 128 + signal for a signal, and 1 for a program that exited 0 (a worker program is
/// expected to run until its input ends, so a supervisor must restart it).
pub fn exit_code_for(status: std::process::ExitStatus) -> i32 {
    use std::os::unix::process::ExitStatusExt;
    match (status.code(), status.signal()) {
        (Some(0), _) => 1,
        (Some(c), _) => c,
        (None, Some(s)) => 128 + s,
        (None, None) => 1,
    }
}

impl Worker for ProgramWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        let Some(stdin) = self.stdin.as_mut() else {
            return Ok(());
        };
        if let Err(e) = self.framing.write(stdin, msg) {
            return Err(self.write_failed(e));
        }
        Ok(())
    }

    fn flush(&mut self) -> Result<(), Error> {
        if let Some(stdin) = self.stdin.as_mut() {
            if let Err(e) = stdin.flush() {
                return Err(self.write_failed(e));
            }
        }
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Error> {
        match self.child.try_wait() {
            Ok(Some(status)) => Err(self.died(status)),
            _ => Ok(()),
        }
    }

    fn stop(&mut self) -> Result<(), Error> {
        let flushed = self.flush();
        // EOF on stdin tells the program to finish.
        drop(self.stdin.take());
        let deadline = Instant::now() + PROGRAM_EXIT_GRACE;
        let mut termed = false;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                info!(program = %self.name, %status, "worker program exited");
                return flushed;
            }
            if Instant::now() >= deadline {
                if termed {
                    warn!(program = %self.name, "worker program ignored SIGTERM; killing it");
                    let _ = self.child.kill();
                    let _ = self.child.wait();
                    return flushed;
                }
                warn!(program = %self.name, "worker program did not exit after end of input; sending SIGTERM");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                termed = true;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

/// A worker as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSpec {
    Stdout,
    File(PathBuf),
    /// With the path of a JSON report to keep.
    Null(Option<PathBuf>),
    Program {
        path: PathBuf,
        args: Vec<String>,
    },
}

impl WorkerSpec {
    /// Resolves `WORKER [ARGS...]`. The built-in names (`stdout`, `file`, `null`) win; to run
    /// a program of that name, give a path containing `/`. Other names are looked up in
    /// `directory` when given, on `PATH` otherwise.
    pub fn resolve(
        worker: &str,
        args: &[String],
        directory: Option<&Path>,
    ) -> Result<WorkerSpec, Error> {
        let no_args = |spec: WorkerSpec| {
            if args.is_empty() {
                Ok(spec)
            } else {
                Err(Error::Usage(format!(
                    "the built-in worker '{worker}' takes no arguments (got {args:?})"
                )))
            }
        };
        match worker {
            "stdout" => return no_args(WorkerSpec::Stdout),
            "null" => {
                return match args {
                    [] => Ok(WorkerSpec::Null(None)),
                    [report] => Ok(WorkerSpec::Null(Some(PathBuf::from(report)))),
                    _ => Err(Error::Usage(
                        "the built-in worker 'null' takes at most one argument: REPORT_PATH".into(),
                    )),
                }
            }
            "file" => {
                return match args {
                    [path] => Ok(WorkerSpec::File(PathBuf::from(path))),
                    _ => Err(Error::Usage(
                        "the built-in worker 'file' takes exactly one argument: PATH".into(),
                    )),
                }
            }
            _ => {}
        }
        let path = find_program(worker, directory)?;
        Ok(WorkerSpec::Program {
            path,
            args: args.to_vec(),
        })
    }

    /// Starts the worker this spec names.
    pub fn start(&self, framing: OutputFraming) -> Result<Box<dyn Worker>, Error> {
        Ok(match self {
            WorkerSpec::Stdout => Box::new(StdoutWorker::new(framing)),
            WorkerSpec::File(p) => Box::new(FileWorker::open(p, framing)?),
            WorkerSpec::Null(report) => Box::new(NullWorker::new(report.clone())),
            WorkerSpec::Program { path, args } => {
                Box::new(ProgramWorker::spawn(path, args, framing)?)
            }
        })
    }
}

fn is_executable(p: &Path) -> bool {
    use std::os::unix::fs::PermissionsExt;
    p.metadata()
        .map(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        .unwrap_or(false)
}

/// Finds a worker program: a path as given when it contains `/`, else in `directory`, else on
/// `PATH`.
pub fn find_program(name: &str, directory: Option<&Path>) -> Result<PathBuf, Error> {
    let not_found = |where_: String| Error::ProgramNotFound {
        program: name.to_string(),
        where_,
    };
    if name.contains('/') {
        let p = PathBuf::from(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_found(" (no executable file at that path)".into()))
        };
    }
    if let Some(dir) = directory {
        let p = dir.join(name);
        return if is_executable(&p) {
            Ok(p)
        } else {
            Err(not_found(format!(" in directory {}", dir.display())))
        };
    }
    let path = std::env::var_os("PATH").unwrap_or_default();
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| is_executable(p))
        .ok_or_else(|| not_found(" on PATH".into()))
}

/// Counters shared with a running worker.
pub fn new_stats() -> Arc<WorkerStats> {
    Arc::default()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn enc(f: OutputFraming, m: &[u8]) -> Vec<u8> {
        let mut v = Vec::new();
        f.write(&mut v, m).unwrap();
        v
    }

    #[test]
    fn lf_framing_escapes_only_newlines() {
        assert_eq!(enc(OutputFraming::Lf, b"a\nb\\n\n"), b"a#012b\\n#012\n");
        assert_eq!(enc(OutputFraming::Lf, b"plain"), b"plain\n");
        assert_eq!(enc(OutputFraming::OctetCounted, b"a\nb"), b"3 a\nb");
        assert_eq!(enc(OutputFraming::Nul, b"a\nb"), b"a\nb\0");
    }

    #[test]
    fn resolve_builtins_and_programs() {
        assert_eq!(
            WorkerSpec::resolve("stdout", &[], None).unwrap(),
            WorkerSpec::Stdout
        );
        assert!(WorkerSpec::resolve("stdout", &["x".into()], None).is_err());
        assert!(WorkerSpec::resolve("file", &[], None).is_err());
        assert!(matches!(
            WorkerSpec::resolve("sh", &[], None).unwrap(),
            WorkerSpec::Program { .. }
        ));
        let e = WorkerSpec::resolve("sh", &[], Some(Path::new("/nonexistent"))).unwrap_err();
        assert!(e.to_string().contains("in directory /nonexistent"), "{e}");
        assert!(WorkerSpec::resolve("no-such-program-zl", &[], None).is_err());
    }
}
