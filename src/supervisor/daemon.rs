//! The daemon loop: the I/O edge around [`Supervisor`]. One thread polls the signal pipe,
//! the control socket and every child's stdout/stderr; it spawns and signals processes and
//! reaps them, feeding what happened into the state machine.
//!
//! One thread matters: the parent-death signal children get is tied to the thread that
//! spawned them.

use std::collections::VecDeque;
use std::fs::File;
use std::io::{ErrorKind, Read};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::fs::OpenOptionsExt;
use std::os::unix::net::{UnixListener, UnixStream};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::poll::{PollFd, PollFlags, PollTimeout};
use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use tracing::{error, info, warn};

use super::clients::Clients;
use super::control::{self, Reply, Request};
use super::counters::Counters;
use super::metrics::MetricsServer;
use super::orphans::Adopted;
use super::programs::{program_specs, zerolog_binary};
use super::readiness::NotifyServer;
use super::reaper::Reaper;
use super::state::{Action, ExitInfo, ProgramSpec, Supervisor, Tier};
use crate::topology::{DaemonSection, Topology};

/// Errors that keep the daemon from starting.
#[derive(Debug, thiserror::Error)]
pub enum DaemonError {
    /// The runtime directory (ipc sockets, control socket) cannot be created.
    #[error("cannot create runtime directory {path}: {source}")]
    RuntimeDir {
        /// The directory.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// A zerologd already answers on this topology's control socket.
    #[error("another zerologd is already running (control socket {0} answers)")]
    AlreadyRunning(PathBuf),
    /// The notify socket, on which children report readiness, cannot be bound.
    #[error("cannot bind notify socket {path}: {source}")]
    NotifySocket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The control socket cannot be bound.
    #[error("cannot bind control socket {path}: {source}")]
    ControlSocket {
        /// The socket's path.
        path: PathBuf,
        /// Why.
        source: std::io::Error,
    },
    /// The metrics endpoint cannot listen.
    #[error("cannot serve metrics on {addr}: {error}")]
    Metrics {
        /// The configured address.
        addr: std::net::SocketAddr,
        /// Why.
        error: String,
    },
    /// Another system call failed.
    #[error("{context}: {source}")]
    Io {
        /// What zerologd was doing.
        context: &'static str,
        /// The error.
        source: std::io::Error,
    },
}

/// Longest line taken from a child's output before it is logged anyway.
const MAX_LINE: usize = 64 * 1024;
/// How long adopted processes have between SIGTERM and SIGKILL at the end of a stop.
const ADOPTED_GRACE: Duration = Duration::from_secs(2);

struct Pipe {
    file: File,
    program: String,
    pid: i32,
    buf: Vec<u8>,
}

#[derive(Default)]
struct SignalFlags {
    term: Arc<AtomicBool>,
    int: Arc<AtomicBool>,
    hup: Arc<AtomicBool>,
}

/// The running daemon.
pub struct Daemon {
    sup: Supervisor,
    config_path: Option<PathBuf>,
    /// The `[zerologd]` section it runs with: a reload cannot change it.
    settings: DaemonSection,
    zerolog: PathBuf,
    control_path: PathBuf,
    /// Where children say `READY=1`.
    notify: NotifyServer,
    /// The control socket and its clients.
    clients: Clients,
    pipes: Vec<Pipe>,
    wake: UnixStream,
    flags: SignalFlags,
    ready: bool,
    on_ready: Option<Box<dyn FnMut()>>,
    stop_requests: u32,
    reaper: Option<Reaper>,
    /// Interval of the systemd watchdog pings (half of `WATCHDOG_USEC`), and the next one due.
    watchdog: Option<(Duration, Instant)>,
    /// Every program's counters (stats files under `<runtime_dir>/stats`).
    counters: Counters,
    /// The Prometheus endpoint, when configured.
    metrics: Option<MetricsServer>,
    /// Processes programs left behind, re-parented to zerologd.
    adopted: Adopted,
}

impl Daemon {
    /// Prepares the runtime directory and control socket and installs signal handlers.
    /// Nothing is started yet.
    pub fn new(topology: &Topology, config_path: Option<PathBuf>) -> Result<Self, DaemonError> {
        // First, while this process has one thread: fork the reaper.
        let reaper = match Reaper::start() {
            Ok(r) => Some(r),
            Err(e) => {
                warn!(error = %e, "cannot start the reaper process: descendants of killed programs may outlive zerologd if it is killed");
                None
            }
        };
        let runtime = &topology.daemon.runtime_dir;
        create_runtime_dir(runtime).map_err(|source| DaemonError::RuntimeDir {
            path: runtime.clone(),
            source,
        })?;
        if let Some(dir) = prepare_journal_dir(topology)
            .map_err(|(path, source)| DaemonError::RuntimeDir { path, source })?
        {
            info!(dir = %dir.display(), "journal directory");
        }
        let control_path = topology.daemon.control_socket.clone();
        let listener = bind_control(&control_path)?;
        let notify_path = runtime.join("notify.sock");
        let notify =
            NotifyServer::bind(&notify_path).map_err(|source| DaemonError::NotifySocket {
                path: notify_path,
                source,
            })?;

        // This process adopts orphaned descendants, so none escape being reaped.
        if let Err(e) = nix::sys::prctl::set_child_subreaper(true) {
            warn!(error = %e, "cannot become a child subreaper");
        }
        let (wake, wake_tx) = UnixStream::pair().map_err(|source| DaemonError::Io {
            context: "creating signal pipe",
            source,
        })?;
        wake.set_nonblocking(true).ok();
        let flags = install_signals(&wake_tx)?;
        // After the reaper fork: this starts a thread.
        let metrics = match topology.daemon.metrics {
            Some(addr) => Some(start_metrics(addr, &wake_tx)?),
            None => None,
        };
        let zerolog = zerolog_binary(topology.daemon.zerolog_bin.as_deref());
        let sup = Supervisor::new(program_specs(topology, &zerolog));
        let counters = Counters::new(runtime.join("stats"));
        Ok(Daemon {
            sup,
            config_path,
            settings: topology.daemon.clone(),
            zerolog,
            control_path,
            notify,
            clients: Clients::new(listener),
            pipes: Vec::new(),
            wake,
            flags,
            ready: topology.forwarder.is_none(),
            on_ready: None,
            stop_requests: 0,
            reaper,
            counters,
            metrics,
            adopted: Adopted::default(),
            watchdog: sd_notify::watchdog_enabled()
                .filter(|d| !d.is_zero())
                .map(|d| (d / 2, Instant::now())),
        })
    }

    /// Called once the pipeline reads input (the forwarder notified READY=1, or there is no
    /// forwarder), after READY=1 went to the service manager.
    pub fn on_ready(&mut self, f: impl FnMut() + 'static) {
        self.on_ready = Some(Box::new(f));
    }

    /// Starts the topology and runs until every program has stopped after SIGTERM/SIGINT.
    pub fn run(mut self) -> Result<(), DaemonError> {
        info!(
            control = %self.control_path.display(),
            zerolog = %self.zerolog.display(),
            "zerologd starting"
        );
        let actions = self.sup.start_all();
        if self.execute(actions) {
            return Ok(());
        }
        if self.ready {
            self.mark_ready();
        }
        loop {
            self.ping_watchdog();
            let next = self.sup.next_deadline().into_iter();
            let timeout = next
                .chain(self.watchdog.map(|(_, due)| due))
                .chain(self.clients.next_deadline())
                .min()
                .map(|d| d.saturating_duration_since(Instant::now()))
                .unwrap_or(Duration::from_secs(1))
                .min(Duration::from_secs(1));
            self.poll_once(timeout)?;
            if self.handle_events() {
                break;
            }
            self.adopt(Instant::now(), false);
        }
        self.adopt(Instant::now(), true);
        self.adopted.stop_all(ADOPTED_GRACE);
        let _ = std::fs::remove_file(&self.control_path);
        // The reaper goes before zerologd does: systemd sees no process of the service left.
        drop(self.reaper.take());
        info!("zerologd stopped");
        Ok(())
    }

    fn mark_ready(&mut self) {
        info!("pipeline ready");
        notify(&[
            sd_notify::NotifyState::Ready,
            sd_notify::NotifyState::Status("pipeline ready"),
        ]);
        if let Some(f) = self.on_ready.as_mut() {
            f();
        }
    }

    /// Lists newly adopted processes (every [`super::orphans::SCAN_INTERVAL`], or now when `always`)
    /// with the reaper.
    fn adopt(&mut self, now: Instant, always: bool) {
        let reaper = self.reaper.as_ref().map(Reaper::pid);
        let sup = &self.sup;
        let known = |pid| Some(pid) == reaper || sup.name_of_pid(pid).is_some();
        let new = self.adopted.scan(now, always, known);
        if let Some(r) = self.reaper.as_mut() {
            for pid in new {
                r.watch(pid);
            }
        }
    }

    /// Sends WATCHDOG=1 when the systemd watchdog is on (`WatchdogSec=`) and a ping is due.
    fn ping_watchdog(&mut self) {
        let Some((interval, due)) = self.watchdog else {
            return;
        };
        let now = Instant::now();
        if now >= due {
            notify(&[sd_notify::NotifyState::Watchdog]);
            self.watchdog = Some((interval, now + interval));
        }
    }

    /// Waits for input on any descriptor, then reads what is there.
    fn poll_once(&mut self, timeout: Duration) -> Result<(), DaemonError> {
        let ms = u16::try_from(timeout.as_millis())
            .unwrap_or(u16::MAX)
            .max(1);
        let now = Instant::now();
        let (wake_ready, notify_ready, client_ready, pipe_ready) = {
            let client_fds = self.clients.poll_fds();
            let nc = client_fds.len();
            let mut fds = Vec::with_capacity(2 + nc + self.pipes.len());
            fds.push(PollFd::new(self.wake.as_fd(), PollFlags::POLLIN));
            fds.push(PollFd::new(self.notify.socket().as_fd(), PollFlags::POLLIN));
            for (fd, flags) in client_fds {
                fds.push(PollFd::new(fd, flags));
            }
            for p in &self.pipes {
                fds.push(PollFd::new(p.file.as_fd(), PollFlags::POLLIN));
            }
            match nix::poll::poll(&mut fds, PollTimeout::from(ms)) {
                Ok(_) | Err(Errno::EINTR) => {}
                Err(e) => {
                    return Err(DaemonError::Io {
                        context: "poll",
                        source: e.into(),
                    })
                }
            }
            let ready: Vec<bool> = fds
                .iter()
                .map(|f| f.revents().is_some_and(|r| !r.is_empty()))
                .collect();
            (
                ready[0],
                ready[1],
                ready[2..2 + nc].to_vec(),
                ready[2 + nc..].to_vec(),
            )
        };
        if wake_ready {
            let mut buf = [0u8; 64];
            while matches!(self.wake.read(&mut buf), Ok(n) if n > 0) {}
        }
        // Child output first, so a program's last words are logged before its exit.
        for (i, ready) in pipe_ready.iter().enumerate().rev() {
            if *ready && !self.read_pipe(i) {
                let p = self.pipes.swap_remove(i);
                if !p.buf.is_empty() {
                    log_child_line(&p.program, p.pid, &p.buf);
                }
            }
        }
        if notify_ready {
            self.read_notifications();
        }
        for (id, line) in self.clients.handle(now, &client_ready) {
            let reply = match control::parse_request(&line) {
                Ok(request) => self.handle_request(request),
                Err(reply) => reply,
            };
            self.clients.reply(id, control::encode_reply(&reply));
        }
        self.clients.sweep(Instant::now());
        Ok(())
    }

    /// Takes the children's notifications: the pipeline is ready once the forwarder is.
    fn read_notifications(&mut self) {
        for n in self.notify.take() {
            if !n.ready() {
                continue;
            }
            if self.sup.notified_ready(n.pid).as_deref() == Some("forwarder") && !self.ready {
                self.ready = true;
                self.mark_ready();
            }
        }
    }

    /// Reads what a child wrote and logs complete lines. Returns false at end of file.
    fn read_pipe(&mut self, i: usize) -> bool {
        let mut chunk = [0u8; 16 * 1024];
        loop {
            let p = &mut self.pipes[i];
            match p.file.read(&mut chunk) {
                Ok(0) => break false,
                Ok(n) => {
                    p.buf.extend_from_slice(&chunk[..n]);
                    let mut start = 0;
                    while let Some(pos) = memchr::memchr(b'\n', &p.buf[start..]) {
                        let line = &p.buf[start..start + pos];
                        log_child_line(&p.program, p.pid, line);
                        start += pos + 1;
                    }
                    p.buf.drain(..start);
                    if p.buf.len() >= MAX_LINE {
                        log_child_line(&p.program, p.pid, &p.buf);
                        p.buf.clear();
                    }
                }
                Err(e) if e.kind() == ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == ErrorKind::Interrupted => continue,
                Err(_) => break false,
            }
        }
    }

    fn handle_request(&mut self, request: Request) -> Reply {
        let now = Instant::now();
        let (result, name) = match request {
            Request::Status => {
                return Reply::Status {
                    programs: self.status(now),
                }
            }
            Request::Reload => {
                return match self.reload() {
                    Ok(summary) => Reply::Reloaded { summary },
                    Err(message) => Reply::Error { message },
                }
            }
            Request::Reopen => (Ok(self.sup.reopen()), "stdin workers".to_owned()),
            Request::Start { name } => (self.sup.start(&name), name),
            Request::Stop { name } => (self.sup.stop(&name, now), name),
            Request::Restart { name } => (self.sup.restart(&name, now), name),
        };
        match result {
            Ok(done) => {
                self.execute(done.actions);
                Reply::Commanded {
                    name,
                    outcomes: done.outcomes,
                }
            }
            Err(message) => Reply::Error { message },
        }
    }

    /// Every program's state, with its counters.
    fn status(&self, now: Instant) -> Vec<super::state::ProgramStatus> {
        let mut rows = self.sup.status(now);
        for r in &mut rows {
            r.counters = self.counters.get(&r.name);
        }
        rows
    }

    /// Re-reads the topology file and applies the difference, telling the service manager
    /// (RELOADING=1, then READY=1 once the reload is through, applied or rejected).
    fn reload(&mut self) -> Result<super::state::ReloadSummary, String> {
        // Before the pipeline was first ready, READY=1 belongs to that moment alone.
        let told = self.ready;
        if told {
            notify(&[
                sd_notify::NotifyState::Reloading,
                sd_notify::NotifyState::Status("reloading the topology"),
            ]);
        }
        let result = self.apply_reload();
        if told {
            let status = match &result {
                Ok(_) => "pipeline ready (topology reloaded)",
                Err(_) => "pipeline ready (reload rejected: the topology is unchanged)",
            };
            notify(&[
                sd_notify::NotifyState::Ready,
                sd_notify::NotifyState::Status(status),
            ]);
        }
        result
    }

    /// Re-reads the topology file and applies the difference. An invalid file changes
    /// nothing.
    fn apply_reload(&mut self) -> Result<super::state::ReloadSummary, String> {
        let Some(path) = self.config_path.clone() else {
            return Err("running the embedded default topology: nothing to reload".into());
        };
        if self.sup.is_shutting_down() {
            warn!("reload refused: zerologd is shutting down");
            return Err("zerologd is shutting down: reload refused".into());
        }
        info!(file = %path.display(), "reloading topology");
        let topology = match Topology::load(&path) {
            Ok(t) => t,
            Err(errors) => {
                for e in &errors.0 {
                    error!("{e}");
                }
                error!("reload rejected: the running topology is unchanged");
                return Err(format!("reload rejected, nothing changed:\n{errors}"));
            }
        };
        let changed = self.settings.changed_keys(&topology.daemon);
        if !changed.is_empty() {
            let message = format!(
                "reload rejected, nothing changed: [zerologd] {} changed, which takes a restart of zerologd (systemctl restart zerologd)",
                changed.join(", ")
            );
            error!("{message}");
            return Err(message);
        }
        let specs = program_specs(&topology, &self.zerolog);
        let limit = zerolog::process::raise_fd_limit();
        if let Err(message) = super::limits::check(specs.len(), limit) {
            error!("reload rejected: {message}");
            return Err(format!("reload rejected, nothing changed: {message}"));
        }
        let (actions, summary) = self.sup.reload(specs, Instant::now());
        info!(
            started = ?summary.started,
            restarted = ?summary.restarted,
            stopped = ?summary.stopped,
            unchanged = summary.unchanged,
            "topology reloaded"
        );
        self.execute(actions);
        Ok(summary)
    }

    /// Handles signals, reaps children and runs timers. Returns true when it is time to exit.
    fn handle_events(&mut self) -> bool {
        let now = Instant::now();
        let mut actions = Vec::new();
        let term = self.flags.term.swap(false, Ordering::Relaxed);
        let int = self.flags.int.swap(false, Ordering::Relaxed);
        if term || int {
            self.stop_requests += 1;
            let sig = if term { "SIGTERM" } else { "SIGINT" };
            if self.stop_requests == 1 {
                info!(signal = sig, "stop requested");
                notify(&[
                    sd_notify::NotifyState::Stopping,
                    sd_notify::NotifyState::Status("stopping: draining the pipeline"),
                ]);
                actions.extend(self.sup.shutdown(now));
            } else {
                warn!(
                    signal = sig,
                    "second stop request: killing every program now"
                );
                actions.extend(self.sup.kill_all());
            }
        }
        if self.flags.hup.swap(false, Ordering::Relaxed) {
            info!("SIGHUP received");
            let _ = self.reload();
        }
        actions.extend(self.reap(now));
        actions.extend(self.sup.tick(now));
        if let Some(m) = &self.metrics {
            m.serve(|| super::metrics::render(&self.status(now)));
        }
        self.execute(actions)
    }

    /// Collects every exited child (ours, or orphans we adopted as subreaper).
    fn reap(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        let mut reaped = false;
        loop {
            let (pid, exit) = match waitpid(None, Some(WaitPidFlag::WNOHANG)) {
                Ok(WaitStatus::Exited(pid, code)) => (
                    pid,
                    ExitInfo {
                        code: Some(code),
                        signal: None,
                        text: format!("exit status {code}"),
                    },
                ),
                Ok(WaitStatus::Signaled(pid, sig, _)) => (
                    pid,
                    ExitInfo {
                        code: None,
                        signal: Some(sig as i32),
                        text: format!("killed by {}", sig.as_str()),
                    },
                ),
                Ok(WaitStatus::StillAlive) | Err(_) => break,
                Ok(_) => continue,
            };
            // Whatever the program left behind in its process group goes with it.
            let _ = killpg(pid, Signal::SIGKILL);
            if let Some(r) = self.reaper.as_mut() {
                r.forget(pid.as_raw());
            }
            self.adopted.forget(pid.as_raw());
            reaped = true;
            if let Some(name) = self.sup.name_of_pid(pid.as_raw()) {
                if let Some(values) = self.counters.ended(&name) {
                    let line: Vec<String> =
                        values.iter().map(|(k, v)| format!("{k}={v}")).collect();
                    info!(
                        program = name,
                        pid = pid.as_raw(),
                        "counters at exit: {}",
                        line.join(" ")
                    );
                }
            }
            actions.extend(self.sup.exited(pid.as_raw(), exit, now));
        }
        if reaped {
            // What a program left behind was re-parented to zerologd at its exit.
            self.adopt(now, true);
        }
        actions
    }

    /// Carries out actions (and the actions they lead to). Returns true on [`Action::Exit`].
    fn execute(&mut self, actions: Vec<Action>) -> bool {
        // Receiver pauses first: a worker's stop signal must find its receiver paused.
        let mut queue: VecDeque<Action> = self.sup.sync_pauses().into();
        queue.extend(actions);
        let mut exit = false;
        loop {
            let Some(action) = queue.pop_front() else {
                queue.extend(self.sup.sync_pauses());
                if queue.is_empty() {
                    break;
                }
                continue;
            };
            match action {
                Action::Spawn(name) => queue.extend(self.spawn(&name)),
                Action::Signal { name, pid, signal } => {
                    // Graceful signals go to the process itself: zerolog elements drain and
                    // stop their own children. SIGKILL takes the whole group.
                    let r = if signal == Signal::SIGKILL {
                        killpg(Pid::from_raw(pid), signal)
                    } else {
                        kill(Pid::from_raw(pid), signal)
                    };
                    if let Err(e) = r {
                        if e != Errno::ESRCH {
                            warn!(program = name, pid, error = %e, "cannot signal");
                        }
                    }
                }
                Action::Exit => exit = true,
            }
        }
        exit
    }

    fn spawn(&mut self, name: &str) -> Vec<Action> {
        let now = Instant::now();
        let Some(spec) = self.sup.spec(name).cloned() else {
            return vec![];
        };
        let stats_file = self.counters.file_of(name);
        self.counters.starting(name);
        match spawn_process(&spec, &stats_file, self.notify.path()) {
            Ok((pid, out, err)) => {
                if let Some(r) = self.reaper.as_mut() {
                    r.watch(pid);
                }
                self.sup.spawned(name, pid, now);
                for fd in [out, err] {
                    self.pipes.push(Pipe {
                        file: File::from(fd),
                        program: name.to_string(),
                        pid,
                        buf: Vec::new(),
                    });
                }
                vec![]
            }
            Err(e) => self.sup.spawn_failed(name, &e, now),
        }
    }
}

/// TERM, INT and HUP set their flags; they and CHLD also write to `wake_tx`, which wakes the
/// daemon loop.
fn install_signals(wake_tx: &UnixStream) -> Result<SignalFlags, DaemonError> {
    use signal_hook::consts::{SIGCHLD, SIGHUP, SIGINT, SIGTERM};
    let io_err = |source| DaemonError::Io {
        context: "installing signal handlers",
        source,
    };
    let flags = SignalFlags::default();
    signal_hook::flag::register(SIGTERM, flags.term.clone()).map_err(io_err)?;
    signal_hook::flag::register(SIGINT, flags.int.clone()).map_err(io_err)?;
    signal_hook::flag::register(SIGHUP, flags.hup.clone()).map_err(io_err)?;
    for sig in [SIGTERM, SIGINT, SIGHUP, SIGCHLD] {
        let tx = wake_tx.try_clone().map_err(io_err)?;
        signal_hook::low_level::pipe::register(sig, tx).map_err(io_err)?;
    }
    Ok(flags)
}

/// The metrics endpoint on `addr`; it wakes the daemon loop through `wake_tx`.
fn start_metrics(
    addr: std::net::SocketAddr,
    wake_tx: &UnixStream,
) -> Result<MetricsServer, DaemonError> {
    let wake = wake_tx.try_clone().map_err(|source| DaemonError::Io {
        context: "starting the metrics endpoint",
        source,
    })?;
    let server =
        MetricsServer::start(addr, wake).map_err(|e| DaemonError::Metrics { addr, error: e })?;
    info!(address = %server.addr(), "metrics endpoint: GET /metrics");
    Ok(server)
}

/// Creates the runtime directory if it is missing, 0755 whatever the umask: programs running as
/// other users reach their notify socket and configuration files through it. An existing one
/// is left as the operator made it.
fn create_runtime_dir(dir: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    if dir.is_dir() {
        return Ok(());
    }
    std::fs::create_dir_all(dir)?;
    std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o755))
}

/// Creates the forwarder's journal directory (0750) if it is missing, owned by the forwarder's
/// user and group when it runs as another user, so that it can write there. Returns it.
/// Without CAP_CHOWN (the packaged unit has none) that chown fails: the package creates the
/// directory instead, and zerologd only warns.
fn prepare_journal_dir(topology: &Topology) -> Result<Option<PathBuf>, (PathBuf, std::io::Error)> {
    use std::os::unix::fs::PermissionsExt;
    let Some(f) = &topology.forwarder else {
        return Ok(None);
    };
    let Some(journal) = &f.config.journal else {
        return Ok(None);
    };
    let dir = journal.dir.clone();
    let err = |e: std::io::Error| (dir.clone(), e);
    if dir.is_dir() {
        return Ok(Some(dir));
    }
    std::fs::create_dir_all(&dir).map_err(err)?;
    std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o750)).map_err(err)?;
    let uid = f.settings.user.as_deref().and_then(|u| {
        nix::unistd::User::from_name(u)
            .ok()
            .flatten()
            .map(|u| u.uid)
    });
    let gid = f.settings.group.as_deref().and_then(|g| {
        nix::unistd::Group::from_name(g)
            .ok()
            .flatten()
            .map(|g| g.gid)
    });
    if uid.is_some() || gid.is_some() {
        if let Err(e) = nix::unistd::chown(&dir, uid, gid) {
            warn!(dir = %dir.display(), error = %e, "cannot give the journal directory to the forwarder's user: create it owned by that user");
            return Ok(Some(dir));
        }
        // Its parent must let that user through.
        if let Some(parent) = dir.parent() {
            let mode = std::fs::metadata(parent).map_err(err)?.permissions().mode();
            if mode & 0o001 == 0 {
                warn!(dir = %parent.display(), "the forwarder runs as another user and may not reach its journal through this directory (no search permission for others)");
            }
        }
    }
    Ok(Some(dir))
}

fn bind_control(path: &Path) -> Result<UnixListener, DaemonError> {
    if path.exists() {
        if UnixStream::connect(path).is_ok() {
            return Err(DaemonError::AlreadyRunning(path.to_path_buf()));
        }
        let _ = std::fs::remove_file(path);
    }
    if let Some(dir) = path.parent() {
        let _ = std::fs::create_dir_all(dir);
    }
    let err = |source| DaemonError::ControlSocket {
        path: path.to_path_buf(),
        source,
    };
    // Created 0600 from the start: no window in which others could connect.
    let old = nix::sys::stat::umask(nix::sys::stat::Mode::from_bits_truncate(0o177));
    let listener = UnixListener::bind(path);
    nix::sys::stat::umask(old);
    let listener = listener.map_err(err)?;
    listener.set_nonblocking(true).map_err(err)?;
    Ok(listener)
}

/// The descriptor of the stats file in each program ([`zerolog::stats::STATS_FD_ENV`]).
const STATS_FD: i32 = 3;

/// Starts one program in its own process group, with a parent-death signal, its output on
/// pipes, and the configured user, group, directory and environment.
fn spawn_process(
    spec: &ProgramSpec,
    stats_file: &Path,
    notify: &Path,
) -> Result<(i32, OwnedFd, OwnedFd), String> {
    let (argv, env, settings) = (&spec.argv, &spec.env, &spec.settings);
    if let Some((config, path)) = &spec.config {
        config
            .save(path)
            .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    }
    let (program, args) = argv.split_first().ok_or("empty command")?;
    let mut cmd = Command::new(program);
    cmd.args(args)
        // The service manager's watchdog is zerologd's; its notify socket, zerologd's own.
        .env_remove("WATCHDOG_USEC")
        .env_remove("WATCHDOG_PID")
        .envs(env)
        .env(zerolog::notify::NOTIFY_SOCKET_ENV, notify)
        .env(zerolog::stats::STATS_FILE_ENV, stats_file)
        .env(zerolog::stats::STATS_FD_ENV, STATS_FD.to_string())
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .process_group(0);
    if let Some(cwd) = &settings.cwd {
        cmd.current_dir(cwd);
    }
    if let Some(user) = &settings.user {
        let u = nix::unistd::User::from_name(user)
            .ok()
            .flatten()
            .ok_or_else(|| format!("no user named {user}"))?;
        cmd.uid(u.uid.as_raw()).gid(u.gid.as_raw());
        cmd.env("USER", &u.name)
            .env("LOGNAME", &u.name)
            .env("HOME", &u.dir);
    }
    if let Some(group) = &settings.group {
        let g = nix::unistd::Group::from_name(group)
            .ok()
            .flatten()
            .ok_or_else(|| format!("no group named {group}"))?;
        cmd.gid(g.gid.as_raw());
    }
    // The stats file, opened here and handed over open: a program running as another user
    // may not create or open it in zerologd's directory (closed again once it has started).
    let stats = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .create(true)
        .truncate(false)
        .mode(0o600)
        .open(stats_file)
        .map_err(|e| format!("cannot open {}: {e}", stats_file.display()))?;
    zerolog::process::pass_fd(&mut cmd, stats.as_raw_fd(), STATS_FD);
    zerolog::process::die_with_parent(&mut cmd);
    if spec.tier == Tier::Receiver {
        zerolog::process::ignore_pause_signals(&mut cmd);
    }
    let mut child = cmd.spawn().map_err(|e| format!("{program}: {e}"))?;
    let pid = child.id() as i32;
    let out: OwnedFd = child.stdout.take().expect("piped").into();
    let err: OwnedFd = child.stderr.take().expect("piped").into();
    for fd in [&out, &err] {
        let _ = nix::fcntl::fcntl(
            std::os::fd::AsRawFd::as_raw_fd(fd),
            nix::fcntl::FcntlArg::F_SETFL(nix::fcntl::OFlag::O_NONBLOCK),
        );
    }
    // The child is reaped by waitpid(-1) in the loop, not through this handle.
    drop(child);
    Ok((pid, out, err))
}

/// Tells the service manager (`$NOTIFY_SOCKET`, set by systemd for `Type=notify`) about a state
/// change; nothing happens when it is not set.
fn notify(state: &[sd_notify::NotifyState]) {
    if let Err(e) = sd_notify::notify(state) {
        warn!(error = %e, "cannot notify the service manager (NOTIFY_SOCKET)");
    }
}

/// Logs one line of a child's output, at the level the child gave it when it is one of ours.
fn log_child_line(program: &str, pid: i32, line: &[u8]) {
    let text = String::from_utf8_lossy(line);
    let text = text.trim_end_matches('\r');
    let level = text.split_whitespace().next().unwrap_or("");
    match level {
        "ERROR" => error!(target: "child", program, pid, "{text}"),
        "WARN" => warn!(target: "child", program, pid, "{text}"),
        _ => info!(target: "child", program, pid, "{text}"),
    }
}
