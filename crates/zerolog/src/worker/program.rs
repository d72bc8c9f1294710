//! The program worker: every message to a program's stdin, and the program started again when
//! it dies, with every message it had not read.
//!
//! A message counts as processed once the program has read it from the pipe. The worker keeps
//! each record it wrote until the pipe says it was read (`FIONREAD`: the bytes still in the
//! pipe are the tail of what was written), so when the program dies the records it never
//! read, or read only in part, are written again, whole, to the next one. What a program had
//! read but not yet acted on (its own stdio buffer) is the program's to lose. Meanwhile the
//! worker's queue stays where it is: the worker process itself does not exit, so the
//! messages ZeroMQ queued for it are not lost with it.

use std::collections::VecDeque;
use std::io;
use std::os::fd::AsRawFd;
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::atomic::Ordering::Relaxed;
use std::sync::Arc;
use std::time::{Duration, Instant};

use tracing::{info, warn};

use crate::events::RateLimit;
use crate::signals::Signals;
use crate::stats::WorkerStats;
use crate::Error;

use super::output::{write_from, Backoff, OUT_BUFFER, WARN_INTERVAL};
use super::{OutputFraming, Worker};

/// The records written to a program's stdin that it may not have read yet, and those not
/// written yet, in order.
#[derive(Default)]
struct PipeFeed {
    /// Framed records, the first not known to be read at `head`.
    buf: Vec<u8>,
    head: usize,
    /// How far `buf` was written to the pipe.
    sent: usize,
    /// The length of each record from `head`.
    lens: VecDeque<usize>,
    /// Bytes the program has read, over all its runs.
    read: u64,
}

impl PipeFeed {
    /// Adds a record; true when enough waits to be written out.
    fn push(&mut self, framing: OutputFraming, msg: &[u8]) -> bool {
        let before = self.buf.len();
        // Writing to a Vec cannot fail.
        let _ = framing.write(&mut self.buf, msg);
        self.lens.push_back(self.buf.len() - before);
        self.buf.len() - self.sent >= OUT_BUFFER
    }

    #[cfg(test)]
    fn unsent(&self) -> &[u8] {
        &self.buf[self.sent..]
    }

    #[cfg(test)]
    fn advance(&mut self, written: usize) {
        self.sent += written;
    }

    /// Records not known to be read: written but still in the pipe, or not written yet.
    fn held(&self) -> u64 {
        self.lens.len() as u64
    }

    /// `unread` bytes of what was written are still in the pipe: forgets the records before
    /// them, which the program has read whole.
    fn settle(&mut self, unread: usize) {
        let read = (self.sent - self.head).saturating_sub(unread);
        // A record read in part stays, and is read again from its start if it must be.
        let mut whole = 0;
        while let Some(&len) = self.lens.front().filter(|&&len| whole + len <= read) {
            whole += len;
            self.lens.pop_front();
        }
        self.head += whole;
        self.read += whole as u64;
        if self.head == self.buf.len() {
            self.buf.clear();
            (self.head, self.sent) = (0, 0);
        } else if self.head >= OUT_BUFFER {
            // Compacted now and then, not on every settle: a copy of what is kept.
            self.buf.drain(..self.head);
            self.sent -= self.head;
            self.head = 0;
        }
    }

    /// The program is gone: every record it did not read whole is to be written again.
    fn rewind(&mut self) {
        self.sent = self.head;
    }
}

/// Runs a program and writes every message to its stdin. Its stdout and stderr are those of
/// this process. When the program dies (or stops reading), it is started again after a pause
/// (100 ms, doubling while it dies without reading anything, up to 5 s) and given the records
/// the dead one did not read; each start is counted in `program_restarts`.
pub struct ProgramWorker {
    program: PathBuf,
    args: Vec<String>,
    child: Child,
    stdin: Option<ChildStdin>,
    feed: PipeFeed,
    framing: OutputFraming,
    backoff: Backoff,
    /// `feed.read` when the program was started: it read something since if it grew.
    read_at_start: u64,
    /// Held records the runner counts as failed (the one whose `process` failed).
    failed: u64,
    stats: Arc<WorkerStats>,
    warnings: RateLimit,
}

/// How long a stopping program may take to exit after its stdin closes, before SIGTERM.
const PROGRAM_EXIT_GRACE: Duration = Duration::from_secs(10);
/// How long a program that closed its stdin may take to exit before it is killed.
const CLOSED_STDIN_GRACE: Duration = Duration::from_secs(1);

fn spawn(program: &Path, args: &[String]) -> Result<Child, Error> {
    let mut cmd = Command::new(program);
    // Readiness is this worker's to notify, not its program's.
    cmd.args(args)
        .stdin(Stdio::piped())
        .env_remove(crate::notify::NOTIFY_SOCKET_ENV);
    crate::process::die_with_parent(&mut cmd);
    let child = cmd.spawn().map_err(|source| Error::Spawn {
        program: program.to_path_buf(),
        source,
    })?;
    info!(program = %program.display(), pid = child.id(), "worker program started");
    Ok(child)
}

// nix wraps the ioctl (std has no FIONREAD); it generates a `pub fn`, documented here.
nix::ioctl_read_bad!(
    /// FIONREAD: how many bytes a pipe holds.
    fionread,
    nix::libc::FIONREAD,
    nix::libc::c_int
);

/// Bytes in the pipe of `fd` that its reader has not read.
fn unread(fd: &impl AsRawFd) -> usize {
    let mut n: nix::libc::c_int = 0;
    // SAFETY: FIONREAD writes one int through the pointer, which points at `n`.
    match unsafe { fionread(fd.as_raw_fd(), &mut n) } {
        Ok(_) => n.max(0) as usize,
        // Not a pipe (cannot happen with a piped stdin): nothing is known unread.
        Err(_) => 0,
    }
}

impl ProgramWorker {
    /// Starts `program` with `args`, its stdin a pipe this worker writes messages to in
    /// `framing`; counts its restarts in `stats`, and stops restarting it once `signals` ask
    /// to stop.
    pub fn spawn(
        program: &Path,
        args: &[String],
        framing: OutputFraming,
        signals: &Signals,
        stats: Arc<WorkerStats>,
    ) -> Result<Self, Error> {
        let mut child = spawn(program, args)?;
        Ok(ProgramWorker {
            program: program.to_path_buf(),
            args: args.to_vec(),
            stdin: child.stdin.take(),
            child,
            feed: PipeFeed::default(),
            framing,
            backoff: Backoff::new(signals.clone()),
            read_at_start: 0,
            failed: 0,
            stats,
            warnings: RateLimit::new(WARN_INTERVAL),
        })
    }

    /// The program's pid.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    fn name(&self) -> String {
        self.program.display().to_string()
    }

    /// Writes what is not written yet; `Err` when the program no longer reads.
    fn write_unsent(&mut self) -> io::Result<()> {
        let stdin = self.stdin.as_mut().ok_or(io::ErrorKind::BrokenPipe)?;
        write_from(stdin, &self.feed.buf, &mut self.feed.sent)
    }

    /// Forgets the records the program has read.
    fn settle(&mut self) {
        if let Some(stdin) = &self.stdin {
            self.feed.settle(unread(stdin));
        }
    }

    /// The program's exit status, killing it if it still runs after `grace`.
    fn reap(&mut self, grace: Duration) -> ExitStatus {
        let deadline = Instant::now() + grace;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                let _ = self.child.kill();
                if let Ok(status) = self.child.wait() {
                    return status;
                }
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// The program ended with `status`: keeps what it did not read and starts it again, after
    /// a pause. `Err` when a stop is requested meanwhile.
    fn restart(&mut self, status: ExitStatus) -> Result<(), Error> {
        self.settle();
        self.feed.rewind();
        drop(self.stdin.take());
        if self.feed.read > self.read_at_start {
            self.backoff.reset();
        }
        if self.warnings.allow() {
            warn!(
                program = %self.program.display(),
                %status,
                unread = self.feed.held(),
                restart_in_ms = self.backoff.delay().as_millis() as u64,
                "worker program ended; starting it again and giving it the messages it had not read"
            );
        }
        loop {
            if self.backoff.sleep().is_err() {
                return Err(Error::ProgramDied {
                    program: self.name(),
                    status: status.to_string(),
                    code: exit_code_for(status),
                });
            }
            match spawn(&self.program, &self.args) {
                Ok(mut child) => {
                    self.stdin = child.stdin.take();
                    self.child = child;
                    self.read_at_start = self.feed.read;
                    self.stats.program_restarts().fetch_add(1, Relaxed);
                    return Ok(());
                }
                Err(e) if self.warnings.allow() => {
                    warn!(error = %e, "cannot start the worker program; trying again")
                }
                Err(_) => {}
            }
        }
    }
}

/// The worker's exit code when its program ended with `status`: the program's own non-zero
/// code, 128 + signal for a signal, and 1 for a program that exited 0 (a worker program is
/// expected to run until its input ends).
pub fn exit_code_for(status: ExitStatus) -> i32 {
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
        if self.feed.push(self.framing, msg) {
            // It ends the run; the runner counts `msg` failed (see `MsgBuf::fail_last`).
            self.flush().inspect_err(|_| self.failed += 1)?;
        }
        Ok(())
    }

    fn buffered(&self) -> u64 {
        self.feed.held().saturating_sub(self.failed)
    }

    fn flush(&mut self) -> Result<(), Error> {
        while self.write_unsent().is_err() {
            // It closed its stdin, or died: either way it reads no more.
            let status = self.reap(CLOSED_STDIN_GRACE);
            self.restart(status)?;
        }
        self.settle();
        Ok(())
    }

    fn tick(&mut self) -> Result<(), Error> {
        if let Ok(Some(status)) = self.child.try_wait() {
            self.restart(status)?;
        }
        self.flush()
    }

    fn stop(&mut self) -> Result<(), Error> {
        let flushed = self.flush();
        // A reader of our own on the pipe, to see after the program exits what it left
        // unread; it does not keep the program from seeing the end of its input.
        let ours = self.stdin.as_ref().and_then(|stdin| {
            std::fs::OpenOptions::new()
                .read(true)
                .custom_flags(nix::libc::O_NONBLOCK)
                .open(format!("/proc/self/fd/{}", stdin.as_raw_fd()))
                .ok()
        });
        // EOF on stdin tells the program to finish.
        drop(self.stdin.take());
        let status = self.wait_for_exit();
        info!(program = %self.program.display(), %status, "worker program exited");
        if let Some(ours) = ours {
            self.feed.settle(unread(&ours));
            if self.feed.held() > 0 {
                warn!(program = %self.program.display(), unread = self.feed.held(), "the worker program exited before reading all its input");
            }
        }
        flushed
    }
}

impl ProgramWorker {
    /// After the end of input: the program's status, once it exited (SIGTERM after
    /// [`PROGRAM_EXIT_GRACE`], SIGKILL after as long again).
    fn wait_for_exit(&mut self) -> ExitStatus {
        let deadline = Instant::now() + PROGRAM_EXIT_GRACE;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return status;
            }
            if Instant::now() >= deadline {
                warn!(program = %self.program.display(), "worker program did not exit after end of input; sending SIGTERM");
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(self.child.id() as i32),
                    nix::sys::signal::Signal::SIGTERM,
                );
                let status = self.reap(PROGRAM_EXIT_GRACE);
                if !status.success() {
                    warn!(program = %self.program.display(), %status, "worker program ended after SIGTERM (or was killed)");
                }
                return status;
            }
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// Records 0..n of 1 to 40 bytes, framed (LF) in one feed; their framed lengths.
    fn feed_of(n: usize) -> (PipeFeed, Vec<usize>) {
        let mut feed = PipeFeed::default();
        let lens: Vec<usize> = (0..n).map(|i| 1 + (i * 7) % 40).collect();
        for (i, &len) in lens.iter().enumerate() {
            feed.push(OutputFraming::Lf, &vec![b'a' + (i % 26) as u8; len]);
        }
        (feed, lens.iter().map(|l| l + 1).collect())
    }

    #[test]
    fn what_the_program_did_not_read_whole_is_written_again_from_a_record_start() {
        let (template, lens) = feed_of(50);
        let total: usize = lens.iter().sum();
        let all = template.buf.clone();
        // Written up to `sent`, of which the program read `read`: at every pair.
        for sent in 0..=total {
            for read in 0..=sent {
                let mut feed = PipeFeed {
                    buf: all.clone(),
                    lens: lens.iter().copied().collect(),
                    ..Default::default()
                };
                feed.advance(sent);
                feed.settle(sent - read);
                // Whole records read are gone; the one read in part and all after stay.
                let whole = lens
                    .iter()
                    .scan(0, |end, l| {
                        *end += l;
                        Some(*end)
                    })
                    .filter(|&end| end <= read)
                    .count();
                assert_eq!(feed.held() as usize, lens.len() - whole, "{sent} {read}");
                let start: usize = lens[..whole].iter().sum();
                assert_eq!(feed.read as usize, start, "{sent} {read}");
                feed.rewind();
                assert_eq!(feed.unsent(), &all[start..], "{sent} {read}");
            }
        }
    }

    /// A program that reads two lines and exits, then a stop while it is down: the message
    /// whose `process` fails counts as failed, not also as held.
    #[test]
    fn a_stop_while_the_program_is_down_counts_each_message_once() {
        let signals = Signals::none();
        let stats = Arc::new(WorkerStats::new());
        let args = ["-c".to_string(), "read a; read b".to_string()];
        let mut w = ProgramWorker::spawn(
            Path::new("/bin/sh"),
            &args,
            OutputFraming::Lf,
            &signals,
            stats.clone(),
        )
        .unwrap();
        w.process(b"one").unwrap();
        w.process(b"two").unwrap();
        w.flush().unwrap();
        let deadline = Instant::now() + Duration::from_secs(10);
        while w.child.try_wait().unwrap().is_none() {
            assert!(Instant::now() < deadline, "sh never exited");
            std::thread::sleep(Duration::from_millis(10));
        }
        signals.request_stop();
        let e = w.process(&[b'x'; OUT_BUFFER]).unwrap_err();
        assert!(matches!(e, Error::ProgramDied { .. }), "{e}");
        // As the runner counts: 3 received, 1 failed, so processed = 3 - 1 - held.
        assert_eq!(w.buffered(), 0);
        assert_eq!(3 - 1 - w.buffered(), 2, "the two lines sh read");
        assert_eq!(stats.program_restarts().load(Relaxed), 0);
    }

    #[test]
    fn a_long_feed_keeps_only_what_may_be_unread() {
        let mut feed = PipeFeed::default();
        let msg = [b'x'; 99];
        for _ in 0..2000 {
            feed.push(OutputFraming::Lf, &msg);
            feed.advance(feed.unsent().len());
            // The program lags 10 records behind.
            feed.settle((feed.sent - feed.head).min(10 * 100));
            assert!(feed.held() <= 10, "{}", feed.held());
            assert!(
                feed.buf.len() <= OUT_BUFFER + 10 * 100,
                "{}",
                feed.buf.len()
            );
        }
        feed.settle(0);
        assert_eq!((feed.held(), feed.read), (0, 2000 * 100));
    }
}
