//! The last line of defence against orphans: a tiny process forked from zerologd at startup
//! that knows every process group zerologd runs. When zerologd dies, however it dies (even
//! `kill -9`), the pipe between them reaches end of file and the reaper SIGKILLs every group
//! still listed, then exits.
//!
//! The parent-death signal already takes zerologd's direct children; the reaper takes what
//! they started themselves (a shell's background jobs, a worker program's helpers), which
//! would otherwise be re-parented to init and live on.

use std::fs::File;
use std::io::Write;
use std::os::fd::{AsRawFd, OwnedFd};

use nix::sys::signal::{killpg, signal, SigHandler, Signal};
use nix::sys::wait::waitpid;
use nix::unistd::{fork, ForkResult, Pid};

/// zerologd's end of the pipe to its reaper. Dropping it ends the reaper and waits for it, so
/// no process of the service outlives zerologd's exit.
pub struct Reaper {
    pipe: Option<File>,
    pid: Pid,
}

impl Reaper {
    /// Forks the reaper. Call while the process has a single thread (before anything else).
    pub fn start() -> std::io::Result<Reaper> {
        let (read, write) = nix::unistd::pipe2(nix::fcntl::OFlag::O_CLOEXEC)?;
        // SAFETY: zerologd is single-threaded at this point, so the child may do anything;
        // it nevertheless sticks to plain system calls.
        match unsafe { fork() }? {
            ForkResult::Child => {
                drop(write);
                reaper_main(read)
            }
            ForkResult::Parent { child } => {
                drop(read);
                Ok(Reaper {
                    pipe: Some(File::from(write)),
                    pid: child,
                })
            }
        }
    }

    /// The reaper's own pid (a child of zerologd, not a program).
    pub fn pid(&self) -> i32 {
        self.pid.as_raw()
    }

    /// A new process group (or a process that leads none) to kill if zerologd dies.
    pub fn watch(&mut self, pgid: i32) {
        self.send(b'+', pgid);
    }

    /// A process group that is gone.
    pub fn forget(&mut self, pgid: i32) {
        self.send(b'-', pgid);
    }

    fn send(&mut self, op: u8, pgid: i32) {
        let mut record = [0u8; 5];
        record[0] = op;
        record[1..].copy_from_slice(&pgid.to_le_bytes());
        // A 5-byte write to a pipe is atomic; if the reaper is gone there is nothing to do.
        if let Some(pipe) = self.pipe.as_mut() {
            let _ = pipe.write_all(&record);
        }
    }
}

impl Drop for Reaper {
    fn drop(&mut self) {
        // End of file tells the reaper to kill what is still listed and exit; then reap it
        // (ECHILD if the daemon loop already did).
        drop(self.pipe.take());
        while let Err(nix::errno::Errno::EINTR) = waitpid(self.pid, None) {}
    }
}

fn reaper_main(pipe: OwnedFd) -> ! {
    // Only the end of the pipe stops the reaper: ^C in a terminal reaches the whole
    // foreground group, and a stop signal meant for zerologd must not take it first.
    for sig in [
        Signal::SIGINT,
        Signal::SIGTERM,
        Signal::SIGHUP,
        Signal::SIGQUIT,
    ] {
        // SAFETY: installing SIG_IGN has no handler code to be unsafe about.
        let _ = unsafe { signal(sig, SigHandler::SigIgn) };
    }
    let _ = nix::sys::prctl::set_name(c"zerologd-reaper");
    // Hold none of zerologd's stdio open (a pipe to a log collector would never close).
    if let Ok(null) = nix::fcntl::open(
        "/dev/null",
        nix::fcntl::OFlag::O_RDWR,
        nix::sys::stat::Mode::empty(),
    ) {
        for target in 0..=2 {
            let _ = nix::unistd::dup2(null, target);
        }
    }
    let fd = pipe.as_raw_fd();
    let mut groups: Vec<i32> = Vec::new();
    let mut buf = [0u8; 5 * 256];
    let mut pending: Vec<u8> = Vec::new();
    loop {
        match nix::unistd::read(fd, &mut buf) {
            Ok(0) => break,
            Ok(n) => {
                pending.extend_from_slice(&buf[..n]);
                let whole = pending.len() / 5 * 5;
                for rec in pending[..whole].chunks_exact(5) {
                    let pgid = i32::from_le_bytes([rec[1], rec[2], rec[3], rec[4]]);
                    match rec[0] {
                        b'+' => groups.push(pgid),
                        b'-' => groups.retain(|&g| g != pgid),
                        _ => {}
                    }
                }
                pending.drain(..whole);
            }
            Err(nix::errno::Errno::EINTR) => continue,
            Err(_) => break,
        }
    }
    for g in groups {
        // A program's group, or an adopted process that leads none.
        let _ = killpg(Pid::from_raw(g), Signal::SIGKILL);
        let _ = nix::sys::signal::kill(Pid::from_raw(g), Signal::SIGKILL);
    }
    // SAFETY: ends this forked process without running the parent's atexit handlers.
    unsafe { nix::libc::_exit(0) }
}
