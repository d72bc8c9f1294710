//! The control socket's clients, served from the daemon loop without ever blocking it: every
//! socket is non-blocking, a client has [`CLIENT_TIMEOUT`] to send its request and read the
//! whole reply (an idle or non-reading client is closed), at most [`MAX_CLIENTS`] are held
//! at once (a new one closes the oldest), and a failing `accept` (out of descriptors) pauses
//! the listener instead of spinning on it.

use std::io::{ErrorKind, Read, Write};
use std::os::fd::{AsFd, BorrowedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::time::{Duration, Instant};

use nix::poll::PollFlags;
use tracing::{debug, warn};
use zerolog::events::RateLimit;

/// Clients served at once.
pub const MAX_CLIENTS: usize = 64;
/// How long a client has for its whole exchange.
pub const CLIENT_TIMEOUT: Duration = Duration::from_secs(5);
/// A request is one line of at most this many bytes.
const MAX_REQUEST: usize = 4096;
/// How long the listener rests after a failed `accept`.
const ACCEPT_BACKOFF: Duration = Duration::from_millis(100);

/// One client: reading its request, then writing its reply.
struct Client {
    stream: UnixStream,
    input: Vec<u8>,
    /// The reply, once there is one, and how much of it went out.
    output: Option<(Vec<u8>, usize)>,
    deadline: Instant,
    /// It went away without a request, or was closed to make room.
    gone: bool,
}

/// Every client of the control socket.
pub struct Clients {
    listener: UnixListener,
    list: Vec<Client>,
    paused_until: Option<Instant>,
    warnings: RateLimit,
}

impl Clients {
    /// Serves `listener` (made non-blocking here).
    pub fn new(listener: UnixListener) -> Self {
        listener.set_nonblocking(true).ok();
        Clients {
            listener,
            list: Vec::new(),
            paused_until: None,
            warnings: RateLimit::per_second(),
        }
    }

    /// The descriptors to poll and what for: the listener (for nothing while paused), then
    /// each client.
    pub fn poll_fds(&self) -> Vec<(BorrowedFd<'_>, PollFlags)> {
        let mut fds = Vec::with_capacity(1 + self.list.len());
        let listen = match self.paused_until {
            None => PollFlags::POLLIN,
            Some(_) => PollFlags::empty(),
        };
        fds.push((self.listener.as_fd(), listen));
        for c in &self.list {
            let flags = match c.output {
                None => PollFlags::POLLIN,
                Some(_) => PollFlags::POLLOUT,
            };
            fds.push((c.stream.as_fd(), flags));
        }
        fds
    }

    /// When the loop must wake for a client deadline or the listener's pause to end.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.list
            .iter()
            .map(|c| c.deadline)
            .chain(self.paused_until)
            .min()
    }

    /// Ends a pause of the listener that is over (after handling, before the next poll).
    fn resume(&mut self, now: Instant) {
        if self.paused_until.is_some_and(|t| now >= t) {
            self.paused_until = None;
        }
    }

    /// Handles readiness: `ready` is in the order of [`Clients::poll_fds`]. Returns the
    /// requests that arrived (client id, request line), to be answered with [`Clients::reply`].
    pub fn handle(&mut self, now: Instant, ready: &[bool]) -> Vec<(usize, String)> {
        let Some((&listener_ready, clients_ready)) = ready.split_first() else {
            return Vec::new();
        };
        let requests = clients_ready
            .iter()
            .enumerate()
            .filter(|(_, r)| **r)
            .filter_map(|(id, _)| Some((id, self.progress(id)?)))
            .collect();
        if listener_ready && self.paused_until.is_none() {
            self.accept(now);
        }
        requests
    }

    /// Queues `reply` for client `id` and sends what the socket takes now.
    pub fn reply(&mut self, id: usize, reply: String) {
        if let Some(c) = self.list.get_mut(id) {
            c.output = Some((reply.into_bytes(), 0));
            self.progress(id);
        }
    }

    /// Closes finished clients and those past their deadline. Call after replies are queued.
    pub fn sweep(&mut self, now: Instant) {
        self.list.retain(|c| {
            let finished = matches!(&c.output, Some((out, sent)) if *sent >= out.len());
            if now >= c.deadline && !finished && !c.gone {
                debug!("control client timed out: closed");
            }
            !(finished || c.gone || now >= c.deadline)
        });
        self.resume(now);
    }

    /// Reads or writes what client `id` is ready for; a complete request line is returned.
    fn progress(&mut self, id: usize) -> Option<String> {
        let c = &mut self.list[id];
        match &mut c.output {
            Some((out, sent)) => {
                while *sent < out.len() {
                    match c.stream.write(&out[*sent..]) {
                        Ok(0) => break,
                        Ok(n) => *sent += n,
                        Err(e) if e.kind() == ErrorKind::WouldBlock => return None,
                        Err(_) => {
                            // Gone: counts as finished.
                            *sent = out.len();
                        }
                    }
                }
                None
            }
            None => {
                let mut chunk = [0u8; 1024];
                let eof = loop {
                    match c.stream.read(&mut chunk) {
                        Ok(0) => break true,
                        Ok(n) => {
                            c.input.extend_from_slice(&chunk[..n]);
                            if c.input.contains(&b'\n') || c.input.len() > MAX_REQUEST {
                                break false;
                            }
                        }
                        Err(e) if e.kind() == ErrorKind::WouldBlock => break false,
                        Err(_) => break true,
                    }
                };
                let complete = c.input.contains(&b'\n') || c.input.len() > MAX_REQUEST;
                if !complete && !eof {
                    return None;
                }
                if !complete && c.input.is_empty() {
                    c.gone = true;
                    return None;
                }
                let text = String::from_utf8_lossy(&c.input);
                Some(text.lines().next().unwrap_or("").to_owned())
            }
        }
    }

    fn accept(&mut self, now: Instant) {
        loop {
            match self.listener.accept() {
                Ok((stream, _)) => {
                    if self.list.iter().filter(|c| !c.gone).count() >= MAX_CLIENTS {
                        // The oldest makes room: a flood of idle clients cannot keep an
                        // operator's `zerologd status` out, and each client's exchange
                        // takes a moment.
                        if self.warnings.allow_at(now) {
                            warn!(
                                max = MAX_CLIENTS,
                                "too many control clients at once: closing the oldest"
                            );
                        }
                        // Marked, not removed: ids handed out by this round stay valid.
                        if let Some(oldest) = self.list.iter_mut().find(|c| !c.gone) {
                            oldest.gone = true;
                        }
                    }
                    stream.set_nonblocking(true).ok();
                    self.list.push(Client {
                        stream,
                        input: Vec::new(),
                        output: None,
                        deadline: now + CLIENT_TIMEOUT,
                        gone: false,
                    });
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(e) => {
                    if self.warnings.allow_at(now) {
                        warn!(error = %e, "control socket: accept failed; pausing it briefly");
                    }
                    self.paused_until = Some(now + ACCEPT_BACKOFF);
                    return;
                }
            }
        }
    }
}
