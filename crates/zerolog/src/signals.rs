//! Signal handling for the blocking elements (receiver, worker): flags the main loop polls.
//!
//! The first SIGTERM or SIGINT asks for a graceful stop (drain, then exit 0); a second one ends
//! the process at once. SIGHUP sets a separate flag (the `file` worker reopens its file).
//! SIGUSR1 pauses the receiver and SIGUSR2 resumes it (zerologd pauses a receiver while one of
//! its workers stops, so nothing is pushed to a worker on its way out).

use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;

use signal_hook::consts::{SIGHUP, SIGINT, SIGTERM, SIGUSR1, SIGUSR2};

/// Flags set by signal handlers.
#[derive(Clone, Debug)]
pub struct Signals {
    stop: Arc<AtomicUsize>,
    hup: Arc<AtomicBool>,
    /// 1 after SIGUSR1, 0 after SIGUSR2.
    pause: Arc<AtomicUsize>,
}

impl Signals {
    /// Installs the handlers. Call once per process.
    pub fn install() -> std::io::Result<Self> {
        let stop = Arc::new(AtomicUsize::new(0));
        let hup = Arc::new(AtomicBool::new(false));
        let stopping = Arc::new(AtomicBool::new(false));
        for sig in [SIGTERM, SIGINT] {
            // Registered first, so it sees the flag as it was before this signal.
            signal_hook::flag::register_conditional_shutdown(sig, 1, stopping.clone())?;
            signal_hook::flag::register(sig, stopping.clone())?;
            signal_hook::flag::register_usize(sig, stop.clone(), sig as usize)?;
        }
        signal_hook::flag::register(SIGHUP, hup.clone())?;
        let pause = Arc::new(AtomicUsize::new(0));
        signal_hook::flag::register_usize(SIGUSR1, pause.clone(), 1)?;
        signal_hook::flag::register_usize(SIGUSR2, pause.clone(), 0)?;
        Ok(Signals { stop, hup, pause })
    }

    /// Flags that no signal will ever set (for embedding and tests).
    pub fn none() -> Self {
        Signals {
            stop: Arc::default(),
            hup: Arc::default(),
            pause: Arc::default(),
        }
    }

    /// The stop signal received, if any (SIGTERM or SIGINT).
    pub fn stop_requested(&self) -> Option<i32> {
        match self.stop.load(Ordering::Relaxed) {
            0 => None,
            s => Some(s as i32),
        }
    }

    /// Asks for a graceful stop, as a signal would.
    pub fn request_stop(&self) {
        self.stop.store(SIGTERM as usize, Ordering::Relaxed);
    }

    /// Whether a pause was asked for (SIGUSR1, or [`Signals::set_paused`]) and not lifted.
    pub fn paused(&self) -> bool {
        self.pause.load(Ordering::Relaxed) != 0
    }

    /// Pauses or resumes, as SIGUSR1 and SIGUSR2 do.
    pub fn set_paused(&self, paused: bool) {
        self.pause.store(usize::from(paused), Ordering::Relaxed);
    }

    /// Whether SIGHUP arrived since the last call.
    pub fn take_hup(&self) -> bool {
        // Checked per message by the worker: a plain load first, the locked swap only on a HUP.
        self.hup.load(Ordering::Relaxed) && self.hup.swap(false, Ordering::Relaxed)
    }
}

/// The name of a signal number, for logs.
pub fn name(sig: i32) -> String {
    nix::sys::signal::Signal::try_from(sig)
        .map(|s| s.as_str().to_string())
        .unwrap_or_else(|_| format!("signal {sig}"))
}
