//! The supervisor's state machine: which programs should run, in what state each one is, and
//! what to do next. No I/O here: events go in (a process started or exited, time passed, an
//! operator command), [`Action`]s come out, and the daemon loop carries them out. Time is
//! passed in, so every transition is testable without real processes.
//!
//! Per program:
//!
//! ```text
//!            spawn ok                 exit (policy says restart)
//!  Stopped ----------> Running ---------------------------------> Backoff --(delay)--> Running
//!     ^                  |  \  exit (no restart)                    |
//!     |   stop signal    |   `------------------> Exited            | too many quick failures
//!     `--- Stopping <----'                                          v
//!          (timeout: SIGKILL)                                     Fatal
//! ```
//!
//! The first restart after a crash is immediate; each further consecutive crash doubles the
//! delay from `backoff` up to `backoff_max`; a run of at least `min_uptime` resets the count;
//! more than `max_restarts` consecutive crashes make the program FATAL (others keep running).
//!
//! Shutdown stops tier by tier: the forwarder first, then receivers once it is gone, then
//! workers once they are gone, so each stage drains into the next.

use std::collections::BTreeMap;
use std::time::{Duration, Instant};

use nix::sys::signal::Signal;
use tracing::{error, info, warn};

use crate::topology::{ProcessSettings, RestartPolicy};

mod types;
pub use types::*;

/// What to do once a stopping program has exited.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AfterStop {
    Nothing,
    Restart,
    Remove,
}

#[derive(Debug)]
struct Program {
    spec: ProgramSpec,
    state: State,
    after_stop: AfterStop,
    /// Consecutive runs shorter than `min_uptime`.
    failures: u32,
    /// Times started after the first start.
    restarts: u32,
    starts: u32,
    last_exit: Option<ExitInfo>,
}

/// What an operator's command does: to each program, and the actions that do it.
#[derive(Debug, Default)]
pub struct Commanded {
    /// Each program NAME designates, and what happens to it.
    pub outcomes: Vec<(String, Outcome)>,
    /// For the daemon loop to carry out.
    pub actions: Vec<Action>,
}

/// The state of every program of the topology.
#[derive(Debug, Default)]
pub struct Supervisor {
    programs: BTreeMap<String, Program>,
    shutting_down: bool,
    exited: bool,
    /// Receivers told to pause (SIGUSR1), with the pid that was told.
    paused: BTreeMap<String, i32>,
}

impl Supervisor {
    /// A supervisor for these programs, all stopped; [`Supervisor::start_all`] starts them.
    pub fn new(specs: Vec<ProgramSpec>) -> Self {
        let mut s = Supervisor::default();
        for spec in specs {
            s.insert(spec);
        }
        s
    }

    fn insert(&mut self, spec: ProgramSpec) {
        self.programs.insert(
            spec.name.clone(),
            Program {
                spec,
                state: State::Stopped,
                after_stop: AfterStop::Nothing,
                failures: 0,
                restarts: 0,
                starts: 0,
                last_exit: None,
            },
        );
    }

    /// The name of the program whose process is `pid`.
    pub fn name_of_pid(&self, pid: i32) -> Option<String> {
        self.programs
            .values()
            .find(|p| p.state.pid() == Some(pid))
            .map(|p| p.spec.name.clone())
    }

    /// The spec of a program (for spawning it).
    pub fn spec(&self, name: &str) -> Option<&ProgramSpec> {
        self.programs.get(name).map(|p| &p.spec)
    }

    /// The state of a program, if the topology has one of that name.
    pub fn state(&self, name: &str) -> Option<State> {
        self.programs.get(name).map(|p| p.state)
    }

    /// Whether a shutdown was requested ([`Supervisor::shutdown`]).
    pub fn is_shutting_down(&self) -> bool {
        self.shutting_down
    }

    /// Starts every program: workers first, then receivers, then the forwarder.
    pub fn start_all(&mut self) -> Vec<Action> {
        let mut names: Vec<(Tier, String)> = self
            .programs
            .values()
            .map(|p| (p.spec.tier, p.spec.name.clone()))
            .collect();
        names.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        names.into_iter().map(|(_, n)| Action::Spawn(n)).collect()
    }

    /// The daemon started the program.
    pub fn spawned(&mut self, name: &str, pid: i32, now: Instant) {
        if let Some(p) = self.programs.get_mut(name) {
            if p.starts > 0 {
                p.restarts += 1;
            }
            p.starts += 1;
            p.state = State::Running {
                pid,
                since: now,
                ready: !p.spec.notifies,
            };
            info!(program = name, pid, "started");
        }
    }

    /// The process `pid` said `READY=1`. Returns its program's name, if it is one of ours
    /// and running.
    pub fn notified_ready(&mut self, pid: i32) -> Option<String> {
        let p = self
            .programs
            .values_mut()
            .find(|p| matches!(p.state, State::Running { pid: q, .. } if q == pid))?;
        if let State::Running {
            ready: ready @ false,
            ..
        } = &mut p.state
        {
            *ready = true;
            info!(program = p.spec.name, pid, "ready");
        }
        Some(p.spec.name.clone())
    }

    /// The daemon could not start the program (counts as an immediate failure).
    pub fn spawn_failed(&mut self, name: &str, error: &str, now: Instant) -> Vec<Action> {
        let Some(p) = self.programs.get_mut(name) else {
            return vec![];
        };
        if p.starts > 0 {
            p.restarts += 1;
        }
        p.starts += 1;
        error!(program = name, error, "could not start");
        p.state = State::Running {
            pid: 0,
            since: now,
            ready: false,
        };
        let exit = ExitInfo {
            code: None,
            signal: None,
            text: format!("spawn failed: {error}"),
        };
        self.program_ended(name, exit, now)
    }

    /// A child process ended. Unknown pids (reaped orphans) are ignored.
    pub fn exited(&mut self, pid: i32, exit: ExitInfo, now: Instant) -> Vec<Action> {
        let Some(name) = self
            .programs
            .values()
            .find(|p| p.state.pid() == Some(pid))
            .map(|p| p.spec.name.clone())
        else {
            return vec![];
        };
        self.program_ended(&name, exit, now)
    }

    fn program_ended(&mut self, name: &str, exit: ExitInfo, now: Instant) -> Vec<Action> {
        let shutting_down = self.shutting_down;
        let p = self.programs.get_mut(name).expect("known program");
        let mut actions = Vec::new();
        match p.state {
            State::Stopping { .. } => {
                info!(program = name, exit = %exit.text, "stopped");
                p.last_exit = Some(exit);
                p.state = State::Stopped;
                match std::mem::replace(&mut p.after_stop, AfterStop::Nothing) {
                    AfterStop::Restart if !shutting_down => {
                        p.failures = 0;
                        actions.push(Action::Spawn(name.to_string()));
                    }
                    AfterStop::Remove => {
                        self.programs.remove(name);
                    }
                    _ => {}
                }
            }
            State::Running { since, .. } => {
                let settings = &p.spec.settings;
                let uptime = now.saturating_duration_since(since);
                if uptime >= settings.min_uptime {
                    p.failures = 0;
                }
                let restart = !shutting_down
                    && match settings.restart {
                        RestartPolicy::Always => true,
                        RestartPolicy::OnFailure => !exit.success(),
                        RestartPolicy::Never => false,
                    };
                if !restart {
                    info!(program = name, exit = %exit.text, "exited; not restarting (policy)");
                    p.state = if shutting_down {
                        State::Stopped
                    } else {
                        State::Exited
                    };
                } else {
                    p.failures += 1;
                    if p.failures > settings.max_restarts {
                        error!(
                            program = name,
                            exit = %exit.text,
                            failures = p.failures,
                            "crashed too often in a row: FATAL, not restarting (zerologd start {name} to try again)"
                        );
                        p.state = State::Fatal;
                    } else {
                        let delay = backoff_delay(settings, p.failures);
                        warn!(
                            program = name,
                            exit = %exit.text,
                            uptime_ms = uptime.as_millis() as u64,
                            restart_in_ms = delay.as_millis() as u64,
                            "exited unexpectedly; restarting"
                        );
                        if delay.is_zero() {
                            actions.push(Action::Spawn(name.to_string()));
                            p.state = State::Stopped;
                        } else {
                            p.state = State::Backoff { until: now + delay };
                        }
                    }
                }
                p.last_exit = Some(exit);
            }
            _ => {}
        }
        actions.extend(self.continue_shutdown(now));
        actions
    }

    /// Time passed: restart programs whose backoff ended, SIGKILL those that overstayed
    /// their stop timeout.
    pub fn tick(&mut self, now: Instant) -> Vec<Action> {
        let mut actions = Vec::new();
        for p in self.programs.values_mut() {
            match p.state {
                State::Backoff { until } if until <= now => {
                    p.state = State::Stopped;
                    actions.push(Action::Spawn(p.spec.name.clone()));
                }
                State::Stopping {
                    pid,
                    deadline,
                    killed: false,
                } if deadline <= now => {
                    warn!(program = %p.spec.name, pid, "did not stop in time: SIGKILL");
                    p.state = State::Stopping {
                        pid,
                        deadline,
                        killed: true,
                    };
                    actions.push(Action::Signal {
                        name: p.spec.name.clone(),
                        pid,
                        signal: Signal::SIGKILL,
                    });
                }
                _ => {}
            }
        }
        actions
    }

    /// When the next [`Supervisor::tick`] has something to do.
    pub fn next_deadline(&self) -> Option<Instant> {
        self.programs
            .values()
            .filter_map(|p| match p.state {
                State::Backoff { until } => Some(until),
                State::Stopping {
                    deadline,
                    killed: false,
                    ..
                } => Some(deadline),
                _ => None,
            })
            .min()
    }

    fn stop_program(&mut self, name: &str, after: AfterStop, now: Instant) -> Vec<Action> {
        let Some(p) = self.programs.get_mut(name) else {
            return vec![];
        };
        match p.state {
            State::Running { pid, .. } => {
                p.after_stop = after;
                p.state = State::Stopping {
                    pid,
                    deadline: now + p.spec.settings.stop_timeout,
                    killed: false,
                };
                info!(program = name, pid, signal = %p.spec.settings.stop_signal, "stopping");
                vec![Action::Signal {
                    name: name.to_string(),
                    pid,
                    signal: p.spec.settings.stop_signal,
                }]
            }
            State::Stopping { .. } => {
                // Already on its way down; a restart or removal still applies afterwards (a
                // program leaving the topology is not brought back).
                if after != AfterStop::Nothing && p.after_stop != AfterStop::Remove {
                    p.after_stop = after;
                }
                vec![]
            }
            State::Backoff { .. } | State::Exited | State::Fatal | State::Stopped => {
                p.state = State::Stopped;
                match after {
                    AfterStop::Restart => {
                        p.failures = 0;
                        vec![Action::Spawn(name.to_string())]
                    }
                    AfterStop::Remove => {
                        self.programs.remove(name);
                        vec![]
                    }
                    AfterStop::Nothing => vec![],
                }
            }
        }
    }

    /// The programs an operator's NAME designates: one program, or every process of a group.
    pub fn resolve(&self, name: &str) -> Vec<String> {
        if self.programs.contains_key(name) {
            return vec![name.to_string()];
        }
        self.programs
            .values()
            .filter(|p| p.spec.group == name)
            .map(|p| p.spec.name.clone())
            .collect()
    }

    /// Operator: stop NAME (a program or a group). The last command wins: a program that is
    /// stopping to restart stays stopped.
    pub fn stop(&mut self, name: &str, now: Instant) -> Result<Commanded, String> {
        self.command(name, |sup, n| {
            let p = sup.programs.get_mut(n).expect("resolved");
            let outcome = match p.state {
                State::Running { .. } => Outcome::Stopping,
                State::Stopping { .. } => Outcome::StaysStopped,
                _ => Outcome::AlreadyStopped,
            };
            if p.after_stop == AfterStop::Restart {
                p.after_stop = AfterStop::Nothing;
            }
            (outcome, sup.stop_program(n, AfterStop::Nothing, now))
        })
    }

    /// Operator: start NAME if it is not running (also clears FATAL); one that is stopping
    /// starts again once it has stopped.
    pub fn start(&mut self, name: &str) -> Result<Commanded, String> {
        self.command(name, |sup, n| {
            let p = sup.programs.get_mut(n).expect("resolved");
            match p.state {
                State::Running { .. } => (Outcome::AlreadyRunning, vec![]),
                State::Stopping { .. } => {
                    if p.after_stop != AfterStop::Remove {
                        p.after_stop = AfterStop::Restart;
                    }
                    (Outcome::StartsOnceStopped, vec![])
                }
                State::Stopped | State::Exited | State::Fatal | State::Backoff { .. } => {
                    p.failures = 0;
                    p.state = State::Stopped;
                    (Outcome::Started, vec![Action::Spawn(n.to_string())])
                }
            }
        })
    }

    /// Operator: restart NAME (stop gracefully, then start).
    pub fn restart(&mut self, name: &str, now: Instant) -> Result<Commanded, String> {
        self.command(name, |sup, n| {
            (
                Outcome::Restarting,
                sup.stop_program(n, AfterStop::Restart, now),
            )
        })
    }

    /// Applies `each` to every program NAME designates.
    fn command(
        &mut self,
        name: &str,
        mut each: impl FnMut(&mut Self, &str) -> (Outcome, Vec<Action>),
    ) -> Result<Commanded, String> {
        let mut done = Commanded::default();
        for n in self.resolve_or_err(name)? {
            let (outcome, actions) = each(self, &n);
            done.outcomes.push((n, outcome));
            done.actions.extend(actions);
        }
        Ok(done)
    }

    fn resolve_or_err(&self, name: &str) -> Result<Vec<String>, String> {
        if self.shutting_down {
            return Err("zerologd is shutting down".into());
        }
        let names = self.resolve(name);
        if names.is_empty() {
            return Err(format!(
                "no program or group named '{name}' (see zerologd status)"
            ));
        }
        Ok(names)
    }

    /// Stop everything, tier by tier. Returns [`Action::Exit`] once all have stopped.
    pub fn shutdown(&mut self, now: Instant) -> Vec<Action> {
        if !self.shutting_down {
            info!("shutting down: forwarder first, then receivers, then workers");
            self.shutting_down = true;
        }
        for p in self.programs.values_mut() {
            if matches!(
                p.state,
                State::Backoff { .. } | State::Exited | State::Fatal
            ) {
                p.state = State::Stopped;
            }
        }
        self.continue_shutdown(now)
    }

    /// Pauses and resumes receivers so that a worker leaving outside a shutdown (`stop`,
    /// `restart`, a reload that removes or changes it) loses nothing. A PUSH socket drops what
    /// it queued for a peer that disconnects, so while one of its workers stops, the worker's
    /// receiver pushes nothing (SIGUSR1); the worker drains what was already on its way and
    /// exits; then the receiver resumes (SIGUSR2). Sender-side, the pause is back-pressure.
    /// Call after every change of state; the returned signals go before the change's other
    /// actions, so the pause reaches the receiver before the worker's stop signal.
    pub fn sync_pauses(&mut self) -> Vec<Action> {
        let want: std::collections::BTreeSet<&str> = if self.shutting_down {
            Default::default()
        } else {
            self.programs
                .values()
                .filter(|p| matches!(p.state, State::Stopping { .. }))
                .filter_map(|p| p.spec.upstream.as_deref())
                .collect()
        };
        let running_pid = |name: &str| match self.programs.get(name).map(|p| p.state) {
            Some(State::Running { pid, .. }) if pid > 0 => Some(pid),
            _ => None,
        };
        let mut actions = Vec::new();
        let mut paused = std::mem::take(&mut self.paused);
        paused.retain(|name, pid| {
            let same_process = running_pid(name) == Some(*pid);
            if want.contains(name.as_str()) && same_process {
                return true;
            }
            if same_process {
                info!(program = %name, pid = *pid, "resuming receiver: its worker has stopped");
                actions.push(Action::Signal {
                    name: name.clone(),
                    pid: *pid,
                    signal: Signal::SIGUSR2,
                });
            }
            false
        });
        for name in want {
            if let (Some(pid), false) = (running_pid(name), paused.contains_key(name)) {
                info!(
                    program = name,
                    pid, "pausing receiver while its worker stops"
                );
                paused.insert(name.to_string(), pid);
                actions.push(Action::Signal {
                    name: name.to_string(),
                    pid,
                    signal: Signal::SIGUSR1,
                });
            }
        }
        self.paused = paused;
        actions
    }

    /// Sends SIGKILL to every live process (a second stop signal: no more waiting).
    pub fn kill_all(&mut self) -> Vec<Action> {
        self.programs
            .values()
            .filter_map(|p| {
                p.state
                    .pid()
                    .filter(|&pid| pid > 0)
                    .map(|pid| Action::Signal {
                        name: p.spec.name.clone(),
                        pid,
                        signal: Signal::SIGKILL,
                    })
            })
            .collect()
    }

    fn continue_shutdown(&mut self, now: Instant) -> Vec<Action> {
        if !self.shutting_down || self.exited {
            return vec![];
        }
        // The lowest tier that still has live processes is the one being stopped.
        let live_tier = self
            .programs
            .values()
            .filter(|p| p.state.pid().is_some())
            .map(|p| p.spec.tier)
            .min();
        let Some(tier) = live_tier else {
            self.exited = true;
            info!("every program stopped");
            return vec![Action::Exit];
        };
        let names: Vec<String> = self
            .programs
            .values()
            .filter(|p| p.spec.tier == tier && matches!(p.state, State::Running { .. }))
            .map(|p| p.spec.name.clone())
            .collect();
        names
            .iter()
            .flat_map(|n| self.stop_program(n, AfterStop::Nothing, now))
            .collect()
    }

    /// Applies a new topology: unchanged programs keep running, changed ones restart, new ones
    /// start, removed ones stop.
    pub fn reload(
        &mut self,
        specs: Vec<ProgramSpec>,
        now: Instant,
    ) -> (Vec<Action>, ReloadSummary) {
        let mut actions = Vec::new();
        let mut summary = ReloadSummary::default();
        let new_names: std::collections::BTreeSet<String> =
            specs.iter().map(|s| s.name.clone()).collect();
        let removed: Vec<String> = self
            .programs
            .keys()
            .filter(|n| !new_names.contains(*n))
            .cloned()
            .collect();
        for name in removed {
            summary.stopped.push(name.clone());
            actions.extend(self.stop_program(&name, AfterStop::Remove, now));
        }
        let mut to_start = Vec::new();
        for spec in specs {
            match self.programs.get_mut(&spec.name) {
                Some(p) if p.spec.same_program(&spec) => {
                    // What changed needs no restart (the forwarder's subscription count): it
                    // is for the next start.
                    p.spec.config = spec.config;
                    summary.unchanged += 1;
                    // The forwarder re-reads its TLS certificates and keys on SIGHUP: a
                    // renewed certificate is a reload, not a restart.
                    let element = p.spec.config.is_some();
                    if let (Tier::Forwarder, true, State::Running { pid, .. }) =
                        (p.spec.tier, element, p.state)
                    {
                        actions.push(Action::Signal {
                            name: p.spec.name.clone(),
                            pid,
                            signal: Signal::SIGHUP,
                        });
                    }
                }
                Some(p) => {
                    let name = spec.name.clone();
                    p.spec = spec;
                    summary.restarted.push(name.clone());
                    actions.extend(self.stop_program(&name, AfterStop::Restart, now));
                }
                None => {
                    summary.started.push(spec.name.clone());
                    to_start.push((spec.tier, spec.name.clone()));
                    self.insert(spec);
                }
            }
        }
        to_start.sort_by(|a, b| b.0.cmp(&a.0).then_with(|| a.1.cmp(&b.1)));
        actions.extend(to_start.into_iter().map(|(_, n)| Action::Spawn(n)));
        (actions, summary)
    }

    /// Operator: every running `zerolog worker` (a stdin worker) reopens its output.
    pub fn reopen(&self) -> Commanded {
        let mut done = Commanded::default();
        for p in self.programs.values() {
            let element_worker = p.spec.tier == Tier::Worker && p.spec.config.is_some();
            if let (true, State::Running { pid, .. }) = (element_worker, p.state) {
                done.outcomes
                    .push((p.spec.name.clone(), Outcome::Reopening));
                done.actions.push(Action::Signal {
                    name: p.spec.name.clone(),
                    pid,
                    signal: Signal::SIGHUP,
                });
            }
        }
        done
    }

    /// Every program's status, in stop order (forwarder, receivers, workers).
    pub fn status(&self, now: Instant) -> Vec<ProgramStatus> {
        let mut rows: Vec<ProgramStatus> = self
            .programs
            .values()
            .map(|p| ProgramStatus {
                name: p.spec.name.clone(),
                group: p.spec.group.clone(),
                tier: p.spec.tier,
                state: p.state.name(),
                pid: p.state.pid().filter(|&pid| pid > 0),
                uptime_s: match p.state {
                    State::Running { since, .. } => {
                        Some(now.saturating_duration_since(since).as_secs_f64())
                    }
                    _ => None,
                },
                ready: matches!(p.state, State::Running { ready: true, .. }),
                restarts: p.restarts,
                last_exit: p.last_exit.clone(),
                counters: None,
            })
            .collect();
        rows.sort_by(|a, b| a.tier.cmp(&b.tier).then_with(|| a.name.cmp(&b.name)));
        rows
    }
}

/// Delay before restart number `failures` (1-based) of a run of quick failures: none for
/// the first, then `backoff`, doubling, capped at `backoff_max`.
pub fn backoff_delay(settings: &ProcessSettings, failures: u32) -> Duration {
    if failures <= 1 {
        return Duration::ZERO;
    }
    let factor = 1u32.checked_shl(failures - 2).unwrap_or(u32::MAX);
    settings
        .backoff
        .checked_mul(factor)
        .unwrap_or(settings.backoff_max)
        .min(settings.backoff_max)
}

#[cfg(test)]
mod tests;
