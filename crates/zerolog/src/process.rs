//! Process plumbing shared by the elements and the supervisor.

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

/// Gives the child `fd` as descriptor `target` (open across exec; `fd` itself stays
/// close-on-exec). Written here rather than with the command-fds crate, which would bring a
/// second version of nix for these few lines.
pub fn pass_fd(cmd: &mut Command, fd: std::os::fd::RawFd, target: std::os::fd::RawFd) {
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
    // system calls (dup2, fcntl).
    unsafe {
        cmd.pre_exec(move || {
            if fd == target {
                // dup2 onto itself would keep FD_CLOEXEC: clear it.
                let flags = nix::libc::fcntl(fd, nix::libc::F_GETFD);
                if flags < 0
                    || nix::libc::fcntl(fd, nix::libc::F_SETFD, flags & !nix::libc::FD_CLOEXEC) < 0
                {
                    return Err(std::io::Error::last_os_error());
                }
            } else if nix::libc::dup2(fd, target) < 0 {
                return Err(std::io::Error::last_os_error());
            }
            Ok(())
        });
    }
}

/// Lifts the soft `RLIMIT_NOFILE` to the hard limit (many connections, many children need
/// many descriptors); returns the limit now in force.
pub fn raise_fd_limit() -> u64 {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    match getrlimit(Resource::RLIMIT_NOFILE) {
        Ok((soft, hard)) if soft < hard => match setrlimit(Resource::RLIMIT_NOFILE, hard, hard) {
            Ok(()) => hard,
            Err(_) => soft,
        },
        Ok((soft, _)) => soft,
        Err(_) => u64::MAX,
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

/// Heap blocks up to this size come from the heap, not from a fresh mapping each.
const MMAP_THRESHOLD: i32 = 1 << 20;
/// Free memory at the top of a heap is handed back to the kernel only beyond this.
const TRIM_THRESHOLD: i32 = 4 << 20;

/// Keeps freed heap memory for reuse instead of handing it back to the kernel at once. Call
/// it first thing in `main`; returns whether the settings were applied.
///
/// libzmq's receive path (64 KiB I/O batches, zero-copy) allocates a buffer of about 143 KiB
/// per batch and frees it, on another thread, once the last message in it is gone. glibc's
/// adaptive defaults serve such a block from a fresh mapping, then trim the heap whenever a
/// couple of them are free, so every batch faults in new pages: some 50,000 page faults per
/// 2M messages in a receiver's I/O thread, and about 5 % of the pipeline's CPU. Fixed
/// thresholds keep those pages: blocks up to 1 MiB come from the heap, and a heap keeps up to
/// 4 MiB free before trimming (8 MiB was no faster and held 3 MB more across the pipeline).
/// Malloc settings the operator gave in `GLIBC_TUNABLES` win: then nothing changes. Other C
/// libraries: nothing changes.
pub fn tune_malloc() -> bool {
    if std::env::var("GLIBC_TUNABLES").is_ok_and(|t| t.contains("glibc.malloc.")) {
        return false;
    }
    tune_malloc_now()
}

#[cfg(all(target_os = "linux", target_env = "gnu"))]
fn tune_malloc_now() -> bool {
    use nix::libc::{mallopt, M_MMAP_THRESHOLD, M_TRIM_THRESHOLD};
    // SAFETY: mallopt only changes allocator parameters; it is safe to call at any time.
    unsafe {
        mallopt(M_MMAP_THRESHOLD, MMAP_THRESHOLD) == 1
            && mallopt(M_TRIM_THRESHOLD, TRIM_THRESHOLD) == 1
    }
}

#[cfg(not(all(target_os = "linux", target_env = "gnu")))]
fn tune_malloc_now() -> bool {
    false
}

#[cfg(all(test, target_os = "linux", target_env = "gnu"))]
mod tests {
    use nix::sys::resource::{getrusage, UsageWho};

    /// Page faults of the calling thread while it allocates, touches and frees blocks the size
    /// of libzmq's receive buffers, eight at a time, `rounds` times.
    fn faults_cycling_receive_buffers(rounds: usize) -> i64 {
        const SIZE: usize = 143 * 1024;
        let faults = || {
            getrusage(UsageWho::RUSAGE_THREAD)
                .unwrap()
                .minor_page_faults()
        };
        // A first round grows the heap: its faults are not the point.
        let cycle = || {
            let bufs: Vec<Vec<u8>> = (0..8).map(|i| vec![i as u8; SIZE]).collect();
            std::hint::black_box(&bufs);
        };
        cycle();
        let before = faults();
        for _ in 0..rounds {
            cycle();
        }
        faults() - before
    }

    #[test]
    fn freed_receive_buffers_are_reused_without_page_faults() {
        assert!(super::tune_malloc_now());
        // On its own thread: a fresh arena, and faults counted for this work only.
        let faults = std::thread::spawn(|| faults_cycling_receive_buffers(100))
            .join()
            .unwrap();
        // 100 rounds of 8 x 143 KiB: returned to the kernel each round, that is some 29,000
        // faults; kept, next to none.
        assert!(faults < 500, "{faults} page faults");
    }
}

/// Whether a secret (a private key file) with permission bits `mode` is exposed: readable or
/// writable by others than its owner and group, as ssh refuses. Group access is allowed, for a
/// key shared with the `zerolog` group by a certificate manager.
pub fn exposed_secret(mode: u32) -> bool {
    mode & 0o007 != 0
}
