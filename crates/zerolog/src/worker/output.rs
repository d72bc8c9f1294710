//! Where the built-in workers write: a buffer of whole records, and what happens when writing
//! fails. A file is cut back to its length before a failed write, so it never keeps part of
//! a record (a full disk leaves no half line for the next message to be glued to); the
//! records stay held, are counted as not processed ([`crate::worker::Worker::buffered`]),
//! and [`Retry`] waits, with backoff, before they are written again. Meanwhile the worker
//! takes no new message: back-pressure up the pipeline, not loss.

use std::fs::File;
use std::io::{self, Stdout, Write};
use std::path::Path;
use std::time::Duration;

use tracing::{info, warn};

use crate::events::RateLimit;
use crate::signals::Signals;

use super::OutputFraming;

/// Size at which an output buffer is written out even while messages keep coming.
pub(super) const OUT_BUFFER: usize = 64 * 1024;

/// What a [`MsgBuf`] writes to. A file can be cut back to a record boundary.
pub(super) trait Sink: Write {
    /// Where to cut back to if the next write fails; `None`: this sink cannot be cut back.
    fn mark(&mut self) -> Option<u64> {
        None
    }
    /// Cuts back to `mark`.
    fn cut(&mut self, _mark: u64) -> io::Result<()> {
        Ok(())
    }
}

impl Sink for File {
    fn mark(&mut self) -> Option<u64> {
        self.metadata().ok().map(|m| m.len())
    }
    fn cut(&mut self, mark: u64) -> io::Result<()> {
        self.set_len(mark)
    }
}

impl Sink for Stdout {}

/// An output buffer that knows how many messages it holds (for `Worker::buffered`): a
/// message counts as processed only once its bytes have been written to the file, stdout or
/// the program's stdin, so a worker killed with messages in here shows them as lost.
pub(super) struct MsgBuf<W: Sink> {
    pub(super) inner: W,
    buf: Vec<u8>,
    /// How much of `buf` a sink that cannot be cut back has already taken.
    sent: usize,
    pub(super) held: u64,
}

impl<W: Sink> MsgBuf<W> {
    pub(super) fn new(inner: W) -> Self {
        MsgBuf {
            inner,
            buf: Vec::with_capacity(OUT_BUFFER),
            sent: 0,
            held: 0,
        }
    }

    /// Adds a message; true when the buffer is full and should be written out.
    pub(super) fn push(&mut self, framing: OutputFraming, msg: &[u8]) -> bool {
        // Writing to a Vec cannot fail.
        let _ = framing.write(&mut self.buf, msg);
        self.held += 1;
        self.buf.len() >= OUT_BUFFER
    }

    /// The write that `msg` set off failed and ends the run: the runner counts `msg` as
    /// failed, so it is no longer counted held (the identity `received = processed + failed
    /// + held` counts each message once).
    pub(super) fn fail_last(&mut self) {
        self.held = self.held.saturating_sub(1);
    }

    /// Writes out everything held. On an error everything stays held: a file is cut back to
    /// where it was, another sink resumes where it stopped on the next call.
    pub(super) fn write_out(&mut self) -> io::Result<()> {
        if self.sent < self.buf.len() {
            let mark = self.inner.mark();
            if let Err(e) = self.write_rest() {
                if let Some(mark) = mark {
                    self.inner.cut(mark)?;
                    self.sent = 0;
                }
                return Err(e);
            }
        }
        self.buf.clear();
        self.sent = 0;
        self.held = 0;
        self.inner.flush()
    }

    fn write_rest(&mut self) -> io::Result<()> {
        write_from(&mut self.inner, &self.buf, &mut self.sent)
    }
}

/// Writes `buf` from `*sent` on, advancing `*sent` by what `w` took, so a failed write leaves
/// it where the next attempt resumes (`write_all` does not say how far it got).
pub(super) fn write_from(w: &mut impl Write, buf: &[u8], sent: &mut usize) -> io::Result<()> {
    while *sent < buf.len() {
        match w.write(&buf[*sent..]) {
            Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
            Ok(n) => *sent += n,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => return Err(e),
        }
    }
    Ok(())
}

/// First and longest wait between attempts.
const FIRST_DELAY: Duration = Duration::from_millis(100);
const MAX_DELAY: Duration = Duration::from_secs(5);
/// A failing output is logged at most this often.
pub(super) const WARN_INTERVAL: Duration = Duration::from_secs(10);

/// A wait that doubles after each use (up to [`MAX_DELAY`]) and is cut short by a stop.
pub(super) struct Backoff {
    stop: Signals,
    delay: Duration,
}

impl Backoff {
    pub(super) fn new(stop: Signals) -> Self {
        Backoff {
            stop,
            delay: FIRST_DELAY,
        }
    }

    /// The wait the next [`Backoff::sleep`] takes.
    pub(super) fn delay(&self) -> Duration {
        self.delay
    }

    /// Waits the current delay and doubles it; `Err` (at once) when a stop is requested.
    pub(super) fn sleep(&mut self) -> Result<(), ()> {
        let mut left = self.delay;
        loop {
            if self.stop.stop_requested().is_some() {
                return Err(());
            }
            if left.is_zero() {
                break;
            }
            let step = left.min(Duration::from_millis(50));
            std::thread::sleep(step);
            left -= step;
        }
        self.delay = (self.delay * 2).min(MAX_DELAY);
        Ok(())
    }

    /// Back to the first, short delay.
    pub(super) fn reset(&mut self) {
        self.delay = FIRST_DELAY;
    }
}

/// Waits between attempts to write a failing output, until it works or a stop is requested.
pub(super) struct Retry {
    backoff: Backoff,
    failing: bool,
    warnings: RateLimit,
}

impl Retry {
    /// Gives up (to let the worker stop) once `stop` says so.
    pub(super) fn new(stop: Signals) -> Self {
        Retry {
            backoff: Backoff::new(stop),
            failing: false,
            warnings: RateLimit::new(WARN_INTERVAL),
        }
    }

    /// Runs `attempt` until it works, waiting between failures; the error it gave up on.
    pub(super) fn until_done(
        &mut self,
        output: &Path,
        mut attempt: impl FnMut() -> io::Result<()>,
    ) -> io::Result<()> {
        loop {
            match attempt() {
                Ok(()) => {
                    self.succeeded(output);
                    return Ok(());
                }
                Err(e) => {
                    if self.wait(output, &e).is_err() {
                        return Err(e);
                    }
                }
            }
        }
    }

    /// After `error` writing `output`: waits before the next attempt. `Err` when there is no
    /// point (a reader gone for good, or a stop requested): the held messages stay unwritten.
    fn wait(&mut self, output: &Path, error: &io::Error) -> Result<(), ()> {
        if error.kind() == io::ErrorKind::BrokenPipe {
            return Err(());
        }
        self.failing = true;
        if self.warnings.allow() {
            warn!(
                output = %output.display(),
                %error,
                retry_in_ms = self.backoff.delay().as_millis() as u64,
                "cannot write the output; its messages are kept (no partial record) and written once it works again, taking no new ones meanwhile"
            );
        }
        self.backoff.sleep()
    }

    /// A write worked.
    fn succeeded(&mut self, output: &Path) {
        if self.failing {
            info!(output = %output.display(), "the output works again");
        }
        self.failing = false;
        self.backoff.reset();
    }
}
