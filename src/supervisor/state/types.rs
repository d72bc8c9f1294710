//! The state machine's vocabulary: programs' specs and states, the actions it asks for, and
//! the status it reports.

use std::collections::BTreeMap;
use std::path::PathBuf;
use std::time::Instant;

use nix::sys::signal::Signal;
use zerolog::element::ElementConfig;

use crate::topology::ProcessSettings;

/// Stop order: lower tiers stop first; start order is the reverse.
#[derive(
    Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, serde::Serialize, serde::Deserialize,
)]
#[serde(rename_all = "lowercase")]
pub enum Tier {
    /// The forwarder: stops first, starts last.
    Forwarder = 0,
    /// Receivers.
    Receiver = 1,
    /// Workers: start first, stop last.
    Worker = 2,
}

/// What to run for one process of the topology.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ProgramSpec {
    /// Unique name: `forwarder`, a receiver's name, or `worker:N`.
    pub name: String,
    /// The topology entry it comes from (a worker's processes share it).
    pub group: String,
    /// Start and stop order.
    pub tier: Tier,
    /// The command line: program and arguments.
    pub argv: Vec<String>,
    /// Extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Restart and stop settings.
    pub settings: ProcessSettings,
    /// For zerolog's own elements: the configuration to write, and where, before spawning
    /// (`--config FILE` in `argv`).
    pub config: Option<(ElementConfig, PathBuf)>,
    /// For a worker: the receiver program it takes messages from. That receiver is paused
    /// while the worker stops outside a shutdown, so nothing is pushed to it as it leaves.
    pub upstream: Option<String>,
    /// Whether it reports readiness (`READY=1` on zerologd's notify socket): zerolog's own
    /// elements do. One that does not counts as ready once started.
    pub notifies: bool,
}

impl ProgramSpec {
    /// Whether a running instance of `self` can stay when the topology now says `other`.
    pub fn same_program(&self, other: &ProgramSpec) -> bool {
        // The config's path is in argv.
        let restart_config = |s: &ProgramSpec| s.config.as_ref().map(|(c, _)| c.without_startup());
        self.argv == other.argv
            && restart_config(self) == restart_config(other)
            && self.env == other.env
            && self.settings == other.settings
            && self.tier == other.tier
            && self.group == other.group
    }
}

/// How a process ended.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited.
    pub code: Option<i32>,
    /// Signal number, when a signal ended it.
    pub signal: Option<i32>,
    /// For display: "exit status 3", "signal SIGKILL", "spawn failed: ...".
    pub text: String,
}

impl ExitInfo {
    /// Whether it exited with status 0.
    pub fn success(&self) -> bool {
        self.code == Some(0)
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
/// The state of one program.
pub enum State {
    /// Not running and not wanted.
    Stopped,
    /// Running since `since`.
    Running {
        /// Its pid (also its process group).
        pid: i32,
        /// When it was started.
        since: Instant,
        /// Whether it said `READY=1`, or needs not say ([`ProgramSpec::notifies`]).
        ready: bool,
    },
    /// Waiting to restart.
    Backoff {
        /// When to start it again.
        until: Instant,
    },
    /// Stop signal sent; SIGKILL at `deadline` unless `killed` already.
    Stopping {
        /// Its pid (also its process group).
        pid: i32,
        /// When to send SIGKILL.
        deadline: Instant,
        /// Whether SIGKILL was already sent.
        killed: bool,
    },
    /// Ended by itself and its policy says not to restart.
    Exited,
    /// Crashed too often in a row; left alone until an operator starts it.
    Fatal,
}

/// A program's state as status, metrics and JSON show it: [`State`] without its data.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "UPPERCASE")]
pub enum ProgramState {
    /// Not running and not wanted.
    Stopped,
    /// Running.
    Running,
    /// Waiting to restart.
    Backoff,
    /// Stop signal sent.
    Stopping,
    /// Ended by itself; its policy says not to restart.
    Exited,
    /// Crashed too often in a row.
    Fatal,
}

impl ProgramState {
    /// The name `zerologd status` shows (`RUNNING`, `BACKOFF`, ...).
    pub fn as_str(self) -> &'static str {
        match self {
            ProgramState::Stopped => "STOPPED",
            ProgramState::Running => "RUNNING",
            ProgramState::Backoff => "BACKOFF",
            ProgramState::Stopping => "STOPPING",
            ProgramState::Exited => "EXITED",
            ProgramState::Fatal => "FATAL",
        }
    }
}

impl std::fmt::Display for ProgramState {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        // `pad`, so the status table's widths apply.
        f.pad(self.as_str())
    }
}

impl State {
    /// The state as status shows it.
    pub fn name(&self) -> ProgramState {
        match self {
            State::Stopped => ProgramState::Stopped,
            State::Running { .. } => ProgramState::Running,
            State::Backoff { .. } => ProgramState::Backoff,
            State::Stopping { .. } => ProgramState::Stopping,
            State::Exited => ProgramState::Exited,
            State::Fatal => ProgramState::Fatal,
        }
    }

    /// The process that exists for this state, if any.
    pub fn pid(&self) -> Option<i32> {
        match *self {
            State::Running { pid, .. } | State::Stopping { pid, .. } => Some(pid),
            _ => None,
        }
    }
}

/// Something the daemon loop must do.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Action {
    /// Start the program with its current spec; report back with `spawned` or `spawn_failed`.
    Spawn(String),
    /// Send `signal` to the process group of `pid`.
    Signal {
        /// The program's name.
        name: String,
        /// The pid whose process group gets the signal.
        pid: i32,
        /// The signal to send.
        signal: Signal,
    },
    /// Shutdown complete: every program has stopped.
    Exit,
}

/// One row of `zerologd status`.
#[derive(Debug, Clone, serde::Serialize, serde::Deserialize)]
pub struct ProgramStatus {
    /// The program's name (`forwarder`, a receiver's name, `worker:N`).
    pub name: String,
    /// Its topology entry.
    pub group: String,
    /// Its tier.
    pub tier: Tier,
    /// Its state.
    pub state: ProgramState,
    /// Its pid, when running or stopping.
    pub pid: Option<i32>,
    /// Seconds since it started, when running.
    pub uptime_s: Option<f64>,
    /// Whether it runs and said it is ready (`READY=1`), or runs and needs not say.
    pub ready: bool,
    /// How many times it was restarted.
    pub restarts: u32,
    /// How it last ended, if it did.
    pub last_exit: Option<ExitInfo>,
    /// Its counters, for zerolog elements and library workers (filled in by the daemon).
    #[serde(skip_serializing_if = "Option::is_none")]
    pub counters: Option<crate::supervisor::counters::ProgramCounters>,
}

/// The result of a reload, for the operator.
#[derive(Debug, Default, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
pub struct ReloadSummary {
    /// Programs that are new in the topology, started.
    pub started: Vec<String>,
    /// Programs whose definition changed, restarted.
    pub restarted: Vec<String>,
    /// Programs no longer in the topology, stopped.
    pub stopped: Vec<String>,
    /// How many programs were left running as they were.
    pub unchanged: usize,
}

/// What an operator's `start`, `stop` or `restart` does to one program: the reply says it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Outcome {
    /// Started now.
    Started,
    /// Already running: nothing to do.
    AlreadyRunning,
    /// It is stopping; it starts again once it has stopped.
    StartsOnceStopped,
    /// The stop signal went out.
    Stopping,
    /// It was already stopping; it stays stopped (a pending restart is cancelled).
    StaysStopped,
    /// It was not running; it stays so.
    AlreadyStopped,
    /// It stops gracefully, then starts again (at once if it was not running).
    Restarting,
    /// Asked to reopen its output.
    Reopening,
}

impl Outcome {
    /// For the operator: `started`, `starts once it has stopped`, ...
    pub fn as_str(self) -> &'static str {
        match self {
            Outcome::Started => "started",
            Outcome::AlreadyRunning => "already running",
            Outcome::StartsOnceStopped => "stopping; starts again once it has stopped",
            Outcome::Stopping => "stopping",
            Outcome::StaysStopped => "already stopping; stays stopped",
            Outcome::AlreadyStopped => "not running; stays stopped",
            Outcome::Restarting => "restarting",
            Outcome::Reopening => "reopening its output",
        }
    }
}
