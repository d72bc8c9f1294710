//! Process plumbing shared by the worker and the supervisor.

use std::os::unix::process::CommandExt;
use std::process::Command;

/// Makes the child receive SIGKILL when this process dies, even by `kill -9`, so no element
/// or worker program outlives its parent. The signal is tied to the spawning thread: spawn
/// from a thread that lives as long as the child should (the main thread).
pub fn die_with_parent(cmd: &mut Command) {
    let parent = nix::unistd::getpid();
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (prctl, getppid, _exit).
    unsafe {
        cmd.pre_exec(move || {
            nix::sys::prctl::set_pdeathsig(nix::sys::signal::Signal::SIGKILL)
                .map_err(std::io::Error::from)?;
            // The parent may have died before prctl took effect.
            if nix::unistd::getppid() != parent {
                nix::libc::_exit(1);
            }
            Ok(())
        });
    }
}

/// Starts the child with SIGUSR1 and SIGUSR2 ignored (an ignored disposition survives exec), so
/// a pause or resume that arrives before the receiver installed its handlers is lost rather
/// than fatal: their default action is to terminate.
pub fn ignore_pause_signals(cmd: &mut Command) {
    use nix::sys::signal::{signal, SigHandler, Signal};
    // SAFETY: runs between fork and exec; sigaction is async-signal-safe.
    unsafe {
        cmd.pre_exec(|| {
            for sig in [Signal::SIGUSR1, Signal::SIGUSR2] {
                signal(sig, SigHandler::SigIgn).map_err(std::io::Error::from)?;
            }
            Ok(())
        });
    }
}
