//! Processes zerologd adopts: it is a child subreaper, so a process that a program started
//! and left behind in a session or group of its own (`setsid sleep 1000 &`, a daemon that
//! double-forks) is re-parented to zerologd when its parent exits. Such a process is part of
//! the service: zerologd lists it with its reaper (so `kill -9 zerologd` takes it too) and
//! stops it after the programs, at a clean stop. An adopted process that a program's stop
//! would take anyway (still in the program's group) is killed with that group.

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use nix::sys::signal::{kill, killpg, Signal};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::{getpgid, Pid};
use tracing::{info, warn};

/// How often the children are listed (adoption sends no signal).
pub const SCAN_INTERVAL: Duration = Duration::from_millis(250);

/// zerologd's direct children, from `/proc/self/task/*/children`.
fn children() -> Vec<i32> {
    let Ok(tasks) = std::fs::read_dir("/proc/self/task") else {
        return Vec::new();
    };
    tasks
        .flatten()
        .filter_map(|t| std::fs::read_to_string(t.path().join("children")).ok())
        .flat_map(|s| {
            s.split_whitespace()
                .filter_map(|p| p.parse().ok())
                .collect::<Vec<i32>>()
        })
        .collect()
}

/// The adopted processes still alive.
#[derive(Default)]
pub struct Adopted {
    pids: BTreeSet<i32>,
    last_scan: Option<Instant>,
}

impl Adopted {
    /// Lists the children that `known` does not claim (programs, the reaper) and returns
    /// those new since the last scan. Unless `always`, does nothing when the last scan is
    /// recent.
    pub fn scan(&mut self, now: Instant, always: bool, known: impl Fn(i32) -> bool) -> Vec<i32> {
        if !always && self.last_scan.is_some_and(|t| now < t + SCAN_INTERVAL) {
            return Vec::new();
        }
        self.last_scan = Some(now);
        let mut new = Vec::new();
        for pid in children() {
            if !known(pid) && self.pids.insert(pid) {
                info!(
                    pid,
                    "adopted a process left behind by a program: it is stopped with the service"
                );
                new.push(pid);
            }
        }
        new
    }

    /// A child that was reaped.
    pub fn forget(&mut self, pid: i32) {
        self.pids.remove(&pid);
    }

    /// Its own process group, when it leads one.
    fn group_of(pid: i32) -> Option<i32> {
        getpgid(Some(Pid::from_raw(pid)))
            .ok()
            .map(|g| g.as_raw())
            .filter(|&g| g == pid)
    }

    /// Stops every adopted process: SIGTERM (its group, when it leads one), then SIGKILL
    /// after `grace`; reaps them.
    pub fn stop_all(&mut self, grace: Duration) {
        if self.pids.is_empty() {
            return;
        }
        info!(count = self.pids.len(), "stopping adopted processes");
        for &pid in &self.pids {
            signal(pid, Signal::SIGTERM);
        }
        let deadline = Instant::now() + grace;
        while !self.pids.is_empty() && Instant::now() < deadline {
            self.reap();
            std::thread::sleep(Duration::from_millis(10));
        }
        for &pid in &self.pids {
            warn!(
                pid,
                "adopted process still running after the grace time: SIGKILL"
            );
            signal(pid, Signal::SIGKILL);
            let _ = waitpid(Pid::from_raw(pid), None);
        }
        self.pids.clear();
    }

    fn reap(&mut self) {
        self.pids.retain(|&pid| {
            !matches!(
                waitpid(Pid::from_raw(pid), Some(WaitPidFlag::WNOHANG)),
                Ok(WaitStatus::Exited(..) | WaitStatus::Signaled(..)) | Err(_)
            )
        });
    }
}

fn signal(pid: i32, sig: Signal) {
    let _ = match Adopted::group_of(pid) {
        Some(group) => killpg(Pid::from_raw(group), sig),
        None => kill(Pid::from_raw(pid), sig),
    };
}
