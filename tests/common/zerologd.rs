//! A zerologd under test: a topology file in the test's temp dir, free ports, its control
//! commands and status.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::{Duration, Instant};

use super::notify::NotifySocket;
use super::*;

/// The log level of zerologd and its children: info, or `$ZEROLOG_TEST_RUST_LOG`
/// (`error` runs them with logging off, to find the tests that depend on log text).
fn test_log_level() -> String {
    std::env::var("ZEROLOG_TEST_RUST_LOG").unwrap_or_else(|_| "info".into())
}

pub fn zerologd_bin() -> &'static str {
    env!("CARGO_BIN_EXE_zerologd")
}

/// One forwarder, one receiver of every topic, one `file` worker writing `{DIR}/out.txt`.
pub const BASIC: &str = r#"
[forwarder]
tcp = ["127.0.0.1:{B}"]
publish = "tcp://127.0.0.1:{F}"

[[receiver]]
name = "all"

[[worker]]
name = "out"
receiver = "all"
command = ["file", "{DIR}/out.txt"]
restart_backoff = "50ms"
"#;

/// A forwarder, one receiver of every topic, and two file workers writing `{DIR}/out.w0` and
/// `{DIR}/out.w1`, each restarted after 50 ms.
pub const TWO_FILE_WORKERS: &str = r#"
[forwarder]
tcp = ["127.0.0.1:{B}"]
publish = "tcp://127.0.0.1:{F}"
restart_backoff = "50ms"

[[receiver]]
name = "all"
restart_backoff = "50ms"

[[worker]]
name = "w0"
receiver = "all"
command = ["file", "{DIR}/out.w0"]
restart_backoff = "50ms"

[[worker]]
name = "w1"
receiver = "all"
command = ["file", "{DIR}/out.w1"]
restart_backoff = "50ms"
"#;

/// A forwarder, one receiver `all`, and `numprocs` processes of worker `name` running
/// `command` (a TOML array, placeholders as in any topology here).
pub fn worker_topology(name: &str, numprocs: u32, command: &str) -> String {
    format!(
        r#"
[forwarder]
tcp = ["127.0.0.1:{{B}}"]
publish = "tcp://127.0.0.1:{{F}}"

[[receiver]]
name = "all"

[[worker]]
name = "{name}"
receiver = "all"
numprocs = {numprocs}
command = {command}
"#
    )
}

/// A zerologd running a topology file written into a temp dir, on free ports.
/// `zerologd --check -c config`: what it printed, and how it exited.
pub fn zerologd_check(config: &Path) -> std::process::Output {
    Command::new(zerologd_bin())
        .args(["--check", "-c"])
        .arg(config)
        .output()
        .expect("run zerologd --check")
}

pub struct Zerologd {
    pub proc: Proc,
    pub dir: PathBuf,
    pub config: PathBuf,
    pub backend: u16,
    /// The notify socket zerologd reports to, as it would to systemd.
    pub notify: NotifySocket,
    /// `RUST_LOG` of zerologd and its children.
    pub log_level: String,
}

impl Zerologd {
    /// Writes `topology` (with `{B}` = TCP input port, `{F}` = publish port, `{DIR}` = temp dir)
    /// and starts zerologd on it; waits for its READY=1.
    pub fn start(dir: &Path, topology: &str) -> Zerologd {
        Self::start_logging(dir, topology, &test_log_level())
    }

    /// [`Zerologd::start`] with `configure` applied to zerologd's command first.
    pub fn start_with(
        dir: &Path,
        topology: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Zerologd {
        Self::start_configured(dir, topology, &test_log_level(), configure)
    }

    /// [`Zerologd::start`] with `RUST_LOG=level` for zerologd and its children.
    pub fn start_logging(dir: &Path, topology: &str, level: &str) -> Zerologd {
        Self::start_configured(dir, topology, level, |_| {})
    }

    fn start_configured(
        dir: &Path,
        topology: &str,
        level: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Zerologd {
        let backend = free_port();
        let config = write_file(dir, "zerolog.toml", &Self::expand(dir, topology, backend));
        let z = Self::spawn_with(dir, "zerologd", &config, backend, level, configure);
        z.wait_ready();
        z
    }

    /// Like [`Zerologd::start`] without waiting for readiness (a forwarder whose receivers
    /// run elsewhere only reads input once they subscribe): waits until the forwarder runs.
    pub fn start_unready(dir: &Path, topology: &str) -> Zerologd {
        let backend = free_port();
        let config = write_file(dir, "zerolog.toml", &Self::expand(dir, topology, backend));
        let z = Self::spawn(dir, "zerologd", &config, backend);
        wait_until(READY_TIMEOUT, "the forwarder running", || {
            z.try_program_json("forwarder")
                .is_some_and(|p| p["state"] == "RUNNING")
        });
        z
    }

    /// Waits for READY=1 on the notify socket: the pipeline reads input.
    pub fn wait_ready(&self) {
        self.notify.until("READY=1", READY_TIMEOUT, &self.proc);
    }

    pub fn expand(dir: &Path, topology: &str, backend: u16) -> String {
        static FRONT: std::sync::OnceLock<u16> = std::sync::OnceLock::new();
        let _ = &FRONT;
        let text = topology
            .replace("{B}", &backend.to_string())
            .replace("{DIR}", dir.to_str().unwrap());
        if text.contains("{F}") {
            text.replace("{F}", &free_port().to_string())
        } else {
            text
        }
    }

    pub fn spawn(dir: &Path, name: &str, config: &Path, backend: u16) -> Zerologd {
        Self::spawn_with(dir, name, config, backend, &test_log_level(), |_| {})
    }

    fn spawn_with(
        dir: &Path,
        name: &str,
        config: &Path,
        backend: u16,
        level: &str,
        configure: impl FnOnce(&mut Command),
    ) -> Zerologd {
        let notify = NotifySocket::bind(&dir.join(format!("{name}-notify.sock")));
        let mut cmd = Command::new(zerologd_bin());
        cmd.args(["-c", config.to_str().unwrap()])
            .env("ZEROLOG_RUNTIME_DIR", dir.join("run"))
            .env("ZEROLOG_STATE_DIR", dir.join("state"))
            .env("RUST_LOG", level)
            .env("NOTIFY_SOCKET", notify.path());
        configure(&mut cmd);
        Zerologd {
            proc: Proc::spawn(dir, name, cmd),
            dir: dir.to_path_buf(),
            config: config.to_path_buf(),
            backend,
            notify,
            log_level: level.to_owned(),
        }
    }

    /// zerologd's log, when it logs at info or more: what the operator reads. Behaviour is
    /// asserted from status, counters and output, at any level; log text only through this.
    pub fn info_log(&self) -> Option<String> {
        matches!(self.log_level.as_str(), "info" | "debug" | "trace")
            .then(|| self.proc.stderr_text())
    }

    pub fn ctl(&self, args: &[&str]) -> (i32, String, String) {
        let out = Command::new(zerologd_bin())
            .args(["-c", self.config.to_str().unwrap()])
            .args(args)
            .env("ZEROLOG_RUNTIME_DIR", self.dir.join("run"))
            .env("ZEROLOG_STATE_DIR", self.dir.join("state"))
            .output()
            .unwrap();
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }

    /// `zerologd status --json`, parsed.
    pub fn status_json(&self) -> serde_json::Value {
        let (code, out, err) = self.ctl(&["status", "--json"]);
        assert_eq!(code, 0, "status failed: {err}");
        serde_json::from_str(&out).unwrap_or_else(|e| panic!("status --json: {e}: {out}"))
    }

    /// One program's entry of `zerologd status --json`, if zerologd answers and has it.
    pub fn try_program_json(&self, name: &str) -> Option<serde_json::Value> {
        let (code, out, _) = self.ctl(&["status", "--json"]);
        let v: serde_json::Value = serde_json::from_str(&out).ok().filter(|_| code == 0)?;
        find_program(&v, name)
    }

    /// One program's entry of `zerologd status --json`.
    pub fn program_json(&self, name: &str) -> serde_json::Value {
        let v = self.status_json();
        find_program(&v, name).unwrap_or_else(|| panic!("no {name} in {v}"))
    }

    /// `zerologd status --json`, as (name, state, pid, restarts) rows.
    pub fn status(&self) -> Vec<(String, String, Option<i32>, u64)> {
        self.status_json()["programs"]
            .as_array()
            .unwrap()
            .iter()
            .map(|p| {
                (
                    p["name"].as_str().unwrap().to_string(),
                    p["state"].as_str().unwrap().to_string(),
                    p["pid"].as_i64().map(|x| x as i32),
                    p["restarts"].as_u64().unwrap(),
                )
            })
            .collect()
    }

    pub fn pid_of(&self, name: &str) -> Option<i32> {
        self.status()
            .into_iter()
            .find(|r| r.0 == name)
            .and_then(|r| r.2)
    }

    pub fn state_of(&self, name: &str) -> String {
        self.status()
            .into_iter()
            .find(|r| r.0 == name)
            .map(|r| r.1)
            .unwrap_or_default()
    }

    /// Waits until `name` runs with a pid other than `old`; returns the new pid.
    pub fn wait_new_pid(&self, name: &str, old: i32) -> i32 {
        let mut new = None;
        wait_until(READY_TIMEOUT, &format!("{name} restarted"), || {
            new = self.pid_of(name).filter(|&p| p != old);
            new.is_some() && self.state_of(name) == "RUNNING"
        });
        new.unwrap()
    }

    /// `status --json` counters of program `name`: (current, total).
    pub fn counters(&self, name: &str) -> (serde_json::Value, serde_json::Value) {
        let p = self.program_json(name);
        (
            p["counters"]["current"].clone(),
            p["counters"]["total"].clone(),
        )
    }

    /// Sends probe messages until one reaches `out`.
    pub fn wait_delivering(&self, out: &Path, tag: &str) {
        let deadline = Instant::now() + DELIVERY_TIMEOUT;
        for i in 0.. {
            assert!(
                Instant::now() < deadline,
                "pipeline never delivered again\n{}",
                self.proc.describe()
            );
            send_tcp(self.backend, format!("<13>app: {tag} {i}\n").as_bytes());
            let t = Instant::now();
            while t.elapsed() < Duration::from_millis(100) {
                if read_lines(out).iter().any(|l| contains(l, tag.as_bytes())) {
                    return;
                }
                std::thread::sleep(Duration::from_millis(5));
            }
        }
    }

    /// Sends a numbered burst on one connection and waits for all of it in `out`.
    pub fn deliver(&self, out: &Path, tag: &str, n: usize) {
        let mut input = Vec::new();
        for i in 0..n {
            input.extend_from_slice(format!("<13>app: {tag} {i}\n").as_bytes());
        }
        send_tcp(self.backend, &input);
        wait_until(
            DELIVERY_TIMEOUT,
            &format!("{n} '{tag}' messages delivered"),
            || {
                read_lines(out)
                    .iter()
                    .filter(|l| contains(l, format!(" {tag} ").as_bytes()))
                    .count()
                    >= n
            },
        );
    }
}

/// The entry of program `name` in a `status --json` answer.
fn find_program(status: &serde_json::Value, name: &str) -> Option<serde_json::Value> {
    status["programs"]
        .as_array()?
        .iter()
        .find(|p| p["name"] == name)
        .cloned()
}
