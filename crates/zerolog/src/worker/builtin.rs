//! The built-in workers of `zerolog worker` (stdout, file, null, a program fed on stdin) and
//! how the command line names them.

use std::fs::{File, OpenOptions};
use std::io;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::endpoint::Endpoint;
use crate::signals::Signals;
use crate::stats::WorkerStats;
use crate::Error;

use super::output::{MsgBuf, Retry};
use super::{OutputFraming, ProgramWorker, Receive, Worker};

/// Writes messages to the process's stdout; retries a failing write (stdout redirected to a
/// full disk, say) until it works or a stop is requested.
pub struct StdoutWorker {
    out: MsgBuf<io::Stdout>,
    framing: OutputFraming,
    retry: Retry,
}

impl StdoutWorker {
    /// A stdout worker writing in `framing`; it gives up retrying a failing write once
    /// `signals` ask to stop.
    pub fn new(framing: OutputFraming, signals: &Signals) -> Self {
        StdoutWorker {
            out: MsgBuf::new(io::stdout()),
            framing,
            retry: Retry::new(signals.clone()),
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
        if self.out.push(self.framing, msg) {
            self.flush().inspect_err(|_| self.out.fail_last())?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        let path = Path::new("stdout");
        let out = &mut self.out;
        self.retry
            .until_done(path, || out.write_out())
            .map_err(out_err(path))
    }
    fn buffered(&self) -> u64 {
        self.out.held
    }
}

/// Appends messages to a file; opens the path anew on SIGHUP, and on its own when the path no
/// longer names the open file (renamed by logrotate, replaced, or deleted). A failing write (a full disk) is
/// cut back to the last whole record and retried until it works or a stop is requested.
pub struct FileWorker {
    path: PathBuf,
    out: MsgBuf<File>,
    framing: OutputFraming,
    retry: Retry,
}

impl FileWorker {
    /// Opens `path` for appending (creating it if missing); gives up retrying a failing
    /// write once `signals` ask to stop.
    pub fn open(path: &Path, framing: OutputFraming, signals: &Signals) -> Result<Self, Error> {
        Ok(FileWorker {
            path: path.to_path_buf(),
            out: MsgBuf::new(open_append(path, framing).map_err(out_err(path))?),
            framing,
            retry: Retry::new(signals.clone()),
        })
    }
}

/// `path` opened for appending, created if missing. A file whose last record is cut short
/// (its writer was killed mid-write: the kernel ends a write early for SIGKILL) is first ended
/// with the framing's delimiter, so that the fragment does not swallow the next record; the
/// fragment's message was not acknowledged, and comes again whole.
fn open_append(path: &Path, framing: OutputFraming) -> io::Result<File> {
    use std::io::Write;
    use std::os::unix::fs::FileExt;
    let mut file = OpenOptions::new()
        .create(true)
        .read(true)
        .append(true)
        .open(path)?;
    let len = file.metadata()?.len();
    let (Some(end), true) = (framing.delimiter(), len > 0) else {
        return Ok(file);
    };
    let mut last = [0];
    file.read_at(&mut last, len - 1)?;
    if last[0] != end {
        warn!(path = %path.display(), "the output file ends in a partial record (its writer was killed while writing): ending it, the message comes again whole");
        file.write_all(&[end])?;
    }
    Ok(file)
}

/// Opens `path` anew when it no longer names `out`'s file: renamed away (by logrotate, say),
/// replaced, or deleted (its directory removed). Checked before each write-out, so nothing is
/// written to a file nobody will read, and rotation needs no signal.
fn reopen_if_moved(path: &Path, out: &mut MsgBuf<File>, framing: OutputFraming) -> io::Result<()> {
    use std::os::unix::fs::MetadataExt;
    let open = out.inner.metadata()?;
    let named = std::fs::metadata(path);
    if named.is_ok_and(|m| (m.dev(), m.ino()) == (open.dev(), open.ino())) {
        return Ok(());
    }
    if open.nlink() == 0 {
        warn!(path = %path.display(), "the output file was deleted: opening it anew");
    } else {
        info!(path = %path.display(), "the output file was renamed or replaced: opening the path anew");
    }
    out.inner = open_append(path, framing)?;
    Ok(())
}

impl Worker for FileWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        if self.out.push(self.framing, msg) {
            self.flush().inspect_err(|_| self.out.fail_last())?;
        }
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        let (path, out, framing) = (&self.path, &mut self.out, self.framing);
        self.retry
            .until_done(path, || {
                reopen_if_moved(path, out, framing)?;
                out.write_out()
            })
            .map_err(out_err(path))
    }
    fn buffered(&self) -> u64 {
        self.out.held
    }
    fn reopen(&mut self) -> Result<(), Error> {
        // Nothing held may be dropped with the old file (the runner has flushed already).
        self.flush()?;
        self.out.inner = open_append(&self.path, self.framing).map_err(out_err(&self.path))?;
        info!(path = %self.path.display(), "reopened output file");
        Ok(())
    }
}

/// Counts messages and discards them: the sink for benchmarks. Logs the count and rate when
/// it stops and, given a report path, keeps a JSON report there (rewritten at most once a
/// second, and at the end): messages, bytes, the wall-clock time of the first message and of
/// the last (read when the queue next runs empty, not per message: the clock is not free at a
/// million messages a second), and per loggen connection (`seq=CONN.N` in the message) the
/// count, highest sequence number, missing numbers (below the highest, never seen here) and
/// duplicates.
pub struct NullWorker {
    count: u64,
    bytes: u64,
    first: Option<(Instant, std::time::SystemTime)>,
    last: Option<std::time::SystemTime>,
    /// Messages were counted since `last` was read.
    unstamped: bool,
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
    /// A null worker; with `report`, it keeps a JSON report at that path.
    pub fn new(report: Option<PathBuf>) -> Self {
        NullWorker {
            count: 0,
            bytes: 0,
            first: None,
            last: None,
            unstamped: false,
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

    /// Records now as the time of the last message, if any arrived since the last stamp.
    fn stamp(&mut self) {
        if self.unstamped {
            self.last = Some(std::time::SystemTime::now());
            self.unstamped = false;
        }
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
        if self.first.is_none() {
            self.first = Some((Instant::now(), std::time::SystemTime::now()));
        }
        self.unstamped = true;
        self.count += 1;
        self.bytes += msg.len() as u64;
        if let Some((conn, n)) = zerolog_proto::seq::parse(msg) {
            self.seqs.entry(conn).or_default().add(n);
        }
        self.dirty = true;
        Ok(())
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.stamp();
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
        self.stamp();
        if self.dirty {
            self.write_report()?;
        }
        Ok(())
    }
    fn stop(&mut self) -> Result<(), Error> {
        self.stamp();
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

/// A worker as named on the command line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum WorkerSpec {
    /// `stdout`: [`StdoutWorker`].
    Stdout,
    /// `file PATH`: [`FileWorker`].
    File(PathBuf),
    /// With the path of a JSON report to keep.
    Null(Option<PathBuf>),
    /// Any other program, fed on its stdin: [`ProgramWorker`].
    Program {
        /// The program's path.
        path: PathBuf,
        /// Its arguments.
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

    /// Starts the worker this spec names; a failing output (or a program's restart) is
    /// retried until `signals` ask to stop; a program's restarts are counted in `stats`.
    pub fn start(
        &self,
        framing: OutputFraming,
        signals: &Signals,
        stats: &Arc<WorkerStats>,
        with_seq: bool,
    ) -> Result<Box<dyn Worker>, Error> {
        let worker: Box<dyn Worker> = match self {
            WorkerSpec::Stdout => Box::new(StdoutWorker::new(framing, signals)),
            WorkerSpec::File(p) => Box::new(FileWorker::open(p, framing, signals)?),
            WorkerSpec::Null(report) => Box::new(NullWorker::new(report.clone())),
            WorkerSpec::Program { path, args } => Box::new(ProgramWorker::spawn(
                path,
                args,
                framing,
                signals,
                stats.clone(),
            )?),
        };
        Ok(if with_seq {
            Box::new(WithSeq::new(worker))
        } else {
            worker
        })
    }
}

/// With acknowledged delivery, starts each record with the message's sequence number and a
/// space (`1234 <13>1 ...`), so whatever reads the output can drop the duplicates that follow
/// a crash: a redelivered message keeps its number, and has a `+` before it (`+1234 `, which
/// still parses as the number) when it may have been delivered before.
pub struct WithSeq {
    inner: Box<dyn Worker>,
    record: Vec<u8>,
}

impl WithSeq {
    /// Wraps `inner`, which gets each record with its number in front.
    pub fn new(inner: Box<dyn Worker>) -> Self {
        WithSeq {
            inner,
            record: Vec::new(),
        }
    }
}

impl Worker for WithSeq {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.inner.process(msg)
    }
    fn process_message(&mut self, msg: &super::Message<'_>) -> Result<(), Error> {
        let Some(seq) = msg.seq() else {
            return self.inner.process(msg.data());
        };
        self.record.clear();
        // Writing to a Vec cannot fail.
        let again = if msg.is_redelivery() { "+" } else { "" };
        let _ = std::io::Write::write_fmt(&mut self.record, format_args!("{again}{seq} "));
        self.record.extend_from_slice(msg.data());
        self.inner.process(&self.record)
    }
    fn flush(&mut self) -> Result<(), Error> {
        self.inner.flush()
    }
    fn buffered(&self) -> u64 {
        self.inner.buffered()
    }
    fn tick(&mut self) -> Result<(), Error> {
        self.inner.tick()
    }
    fn reopen(&mut self) -> Result<(), Error> {
        self.inner.reopen()
    }
    fn stop(&mut self) -> Result<(), Error> {
        self.inner.stop()
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

/// Everything `zerolog worker` needs to know: built from its command line, or read from the
/// file zerologd hands it ([`crate::element::ElementConfig`]).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WorkerConfig {
    /// The receiver's endpoint to PULL from.
    pub backend: Endpoint,
    /// `WORKER [ARGS...]`: a built-in (`stdout`, `file PATH`, `null [REPORT]`) or a program.
    pub command: Vec<String>,
    /// Where to look the program up (default: `PATH`).
    #[serde(default)]
    pub directory: Option<PathBuf>,
    /// How messages are delimited on the output.
    #[serde(default, with = "crate::as_text")]
    pub framing: OutputFraming,
    /// What a multipart message becomes.
    #[serde(default)]
    pub receive: Receive,
    /// Byte budget of the queue ahead of the worker (the receiver's `queue_bytes`).
    #[serde(default = "default_queue_bytes")]
    pub queue_bytes: usize,
    /// The longest message that can arrive (the forwarder's `max_message_size`).
    #[serde(default = "default_max_message_size")]
    pub max_message_size: usize,
    /// How the receiver hands out messages; it must match the receiver's.
    #[serde(default)]
    pub delivery: crate::delivery::Delivery,
    /// Each record starts with the message's sequence number and a space (acknowledged
    /// delivery only; see [`WithSeq`]).
    #[serde(default)]
    pub with_seq: bool,
    /// CURVE towards the receiver (a TCP backend whose output has it): this worker's key file
    /// and the receiver's public key. `None`: plaintext.
    #[serde(default)]
    pub curve: Option<crate::curve::CurveClient>,
}

fn default_queue_bytes() -> usize {
    crate::queue::DEFAULT_QUEUE_BYTES
}

fn default_max_message_size() -> usize {
    crate::framing::DEFAULT_MAX_SIZE
}

impl WorkerConfig {
    /// Resolves the command, starts the worker and runs it until a stop signal.
    pub fn run(&self, signals: &Signals) -> Result<(), Error> {
        let (worker, args) = self
            .command
            .split_first()
            .ok_or_else(|| Error::Usage("the worker has no command".into()))?;
        let spec = WorkerSpec::resolve(worker, args, self.directory.as_deref())?;
        let mut runner = super::Runner::new(self.backend.to_string())
            .receive(self.receive.clone())
            .signals(signals.clone())
            .queue_bytes(self.queue_bytes)
            .max_message_size(self.max_message_size)
            .delivery(self.delivery);
        if let Some(curve) = &self.curve {
            runner = runner.curve(curve.clone());
        }
        let mut w = spec.start(self.framing, signals, &runner.stats(), self.with_seq)?;
        runner.run(w.as_mut())
    }
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
    fn a_record_cut_short_by_a_killed_writer_does_not_swallow_the_next() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        std::fs::write(&path, "whole\ncut sho").unwrap();
        let mut w = FileWorker::open(&path, OutputFraming::Lf, &Signals::none()).unwrap();
        w.process(b"next").unwrap();
        w.stop().unwrap();
        assert_eq!(std::fs::read(&path).unwrap(), b"whole\ncut sho\nnext\n");
        // A whole file is left as it is.
        let mut w = FileWorker::open(&path, OutputFraming::Lf, &Signals::none()).unwrap();
        w.process(b"last").unwrap();
        w.stop().unwrap();
        assert_eq!(
            std::fs::read(&path).unwrap(),
            b"whole\ncut sho\nnext\nlast\n"
        );
    }

    #[test]
    fn file_worker_reports_what_it_still_holds() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("out.log");
        let lines = |p: &Path| std::fs::read(p).unwrap().split(|&b| b == b'\n').count() - 1;
        let mut w = FileWorker::open(&path, OutputFraming::Lf, &Signals::none()).unwrap();
        let msg = [b'x'; 99];
        for _ in 0..10 {
            w.process(&msg).unwrap();
        }
        // Held, not written: a kill now would lose 10 messages, and the counters say so.
        assert_eq!(w.buffered(), 10);
        assert_eq!(lines(&path), 0);
        w.flush().unwrap();
        assert_eq!(w.buffered(), 0);
        assert_eq!(lines(&path), 10);
        // Past the buffer size it writes on its own; what it reports held is exactly what the
        // file lacks.
        for given in 1..=2000u64 {
            w.process(&msg).unwrap();
            assert_eq!(
                lines(&path) as u64,
                10 + given - w.buffered(),
                "after {given}"
            );
        }
        assert!(w.buffered() < 2000, "wrote out before the end");
        w.stop().unwrap();
        assert_eq!((w.buffered(), lines(&path)), (0, 2010));
    }

    /// A write that fails (here: /dev/full) and is not retried (a stop was requested): the
    /// message being processed counts as failed, the others as held, none as both.
    #[test]
    fn a_failed_write_counts_each_message_once() {
        let signals = Signals::none();
        let mut w = FileWorker::open(Path::new("/dev/full"), OutputFraming::Lf, &signals).unwrap();
        signals.request_stop();
        let msg = [b'x'; 99];
        let mut given = 0u64;
        while w.process(&msg).is_ok() {
            given += 1;
            assert!(given < 10_000, "never wrote out");
        }
        // `given` went in before the one that failed: they are held, the failed one is not.
        assert_eq!(w.buffered(), given);
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

    #[test]
    fn with_seq_numbers_each_record_and_marks_redeliveries() {
        use super::super::Message;
        use std::{cell::RefCell, rc::Rc};
        struct Keep(Rc<RefCell<Vec<String>>>);
        impl Worker for Keep {
            fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
                self.0
                    .borrow_mut()
                    .push(String::from_utf8_lossy(msg).into());
                Ok(())
            }
        }
        let written = Rc::new(RefCell::new(Vec::new()));
        let mut w = WithSeq::new(Box::new(Keep(written.clone())));
        w.process_message(&Message::with_seq(b"<13>1 a", 7, false))
            .unwrap();
        w.process_message(&Message::with_seq(b"<13>1 b", 7, true))
            .unwrap();
        // Without a number (PUSH delivery) the record is the message.
        w.process_message(&Message::new(b"c")).unwrap();
        assert_eq!(*written.borrow(), ["7 <13>1 a", "+7 <13>1 b", "c"]);
    }
}
