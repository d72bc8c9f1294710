//! Each program's counters, as zerologd sees them: read from the stats file the program keeps
//! (`ZEROLOG_STATS_FILE`, see [`zerolog::stats`]) while it runs, kept in memory after it exits
//! (also after SIGKILL: the file holds the values it had), and summed over every run of the
//! program so the totals only grow, as Prometheus counters must.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use zerolog::stats::read_stats_file;

/// Counter name -> value.
pub type Values = BTreeMap<String, u64>;

/// Counters that are levels, not totals: not summed over runs.
use zerolog::stats::GAUGES;

#[derive(Debug, Default)]
struct Program {
    /// Element kind, from its stats file.
    element: String,
    /// Sum of the counters of the runs that ended.
    ended: Values,
    /// The counters of the last run that ended.
    last: Option<Values>,
}

/// The counters of every program, kept by the daemon.
#[derive(Debug)]
pub struct Counters {
    dir: PathBuf,
    programs: BTreeMap<String, Program>,
}

/// One program's counters for `zerologd status` and the metrics.
#[derive(Debug, Clone, Default, serde::Serialize, serde::Deserialize)]
pub struct ProgramCounters {
    /// `forwarder`, `receiver` or `worker` (zerolog elements only).
    pub element: String,
    /// The running process's counters, or the last run's once it ended.
    pub current: Values,
    /// Summed over every run of the program (gauges: the current value).
    pub total: Values,
}

impl Counters {
    /// Counters kept in stats files under `dir` (created if needed).
    pub fn new(dir: PathBuf) -> Self {
        let _ = std::fs::create_dir_all(&dir);
        Counters {
            dir,
            programs: BTreeMap::new(),
        }
    }

    /// The stats file of program `name` (given to it in `ZEROLOG_STATS_FILE`).
    pub fn file_of(&self, name: &str) -> PathBuf {
        self.dir.join(format!("{name}.stats"))
    }

    /// A process of `name` is about to start: it will truncate its file.
    pub fn starting(&mut self, name: &str) {
        let _ = std::fs::remove_file(self.file_of(name));
    }

    /// A process of `name` exited (or was killed): its last values join the totals. Returns
    /// them, for the log.
    pub fn ended(&mut self, name: &str) -> Option<Values> {
        let path = self.file_of(name);
        let (element, values) = read(&path)?;
        let _ = std::fs::remove_file(&path);
        let p = self.programs.entry(name.to_string()).or_default();
        p.element = element;
        for (k, v) in &values {
            if !GAUGES.contains(&k.as_str()) {
                *p.ended.entry(k.clone()).or_default() += v;
            }
        }
        p.last = Some(values.clone());
        Some(values)
    }

    /// A program left the topology.
    pub fn removed(&mut self, name: &str) {
        self.programs.remove(name);
        let _ = std::fs::remove_file(self.file_of(name));
    }

    /// The counters of `name`, if it is a zerolog element that kept any.
    pub fn get(&self, name: &str) -> Option<ProgramCounters> {
        let past = self.programs.get(name);
        let mut total = past.map(|p| p.ended.clone()).unwrap_or_default();
        let (element, current) = match read(&self.file_of(name)) {
            // Running: its file is live, and not in `ended` yet.
            Some((element, current)) => {
                for (k, v) in &current {
                    let t = total.entry(k.clone()).or_default();
                    *t = if GAUGES.contains(&k.as_str()) {
                        *v
                    } else {
                        *t + v
                    };
                }
                (element, current)
            }
            // Not running: the last run's values (already in `ended`); gauges are 0.
            None => {
                let p = past?;
                for g in GAUGES {
                    if let Some(t) = total.get_mut(*g) {
                        *t = 0;
                    }
                }
                (p.element.clone(), p.last.clone()?)
            }
        };
        Some(ProgramCounters {
            element,
            current,
            total,
        })
    }
}

fn read(path: &Path) -> Option<(String, Values)> {
    let f = read_stats_file(path)?;
    Some((f.element, f.counters.into_iter().collect()))
}
