//! The zerologd topology file: which forwarder, receivers and workers this host runs.
//!
//! The file is TOML (see `zerolog.toml.example` for every key). It is walked by hand over a
//! [`toml_edit::ImDocument`], which keeps the byte span of every key and value, so that
//! validation can report **every** problem at once, each as `file:line: key: message`, rather
//! than stopping at the first one as serde would. Besides the shape and types of the values, it
//! checks what would otherwise only fail at start-up:
//!
//! - receiver and worker names are valid and unique (one namespace for both);
//! - every worker names an existing receiver;
//! - no two things this host binds share a TCP port (or UDP port, or ipc path);
//! - worker commands exist (built-ins `stdout`, `null`, `file PATH`, or a program on `PATH`);
//! - `cwd`, `user` and `group` exist;
//! - every receiver has somewhere to connect to (its `connect` list or the local forwarder).
//!
//! A topology without a `[forwarder]` is valid: its receivers connect to remote forwarders.

use std::collections::BTreeMap;
use std::fmt;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::time::Duration;

use nix::sys::signal::Signal;
use toml_edit::ImDocument;

use zerolog::delivery::Delivery;
use zerolog::forwarder::ForwarderConfig;
use zerolog::receiver::ReceiverConfig;
use zerolog::worker::OutputFraming;

mod checks;
mod diagnostics;
mod sections;
mod security;
#[cfg(test)]
mod tests;

use diagnostics::*;
use sections::*;

/// The topology zerologd runs when it is given no `-c`: a forwarder on 127.0.0.1:6000
/// publishing on 127.0.0.1:6001, one receiver of every topic, and one built-in stdout worker.
pub const EMBEDDED_DEFAULT: &str = r#"# zerologd's built-in topology, used when no -c is given.
[forwarder]
tcp = ["127.0.0.1:6000"]
publish = "tcp://127.0.0.1:6001"

[[receiver]]
name = "all"

[[worker]]
name = "stdout"
receiver = "all"
command = ["stdout"]
"#;

/// What [`Topology::source`] holds for the embedded default.
pub const EMBEDDED_SOURCE: &str = "(embedded default)";

/// A parsed and validated topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Topology {
    /// The file it was read from, or `(embedded default)`.
    pub source: PathBuf,
    /// `[zerologd]`: the supervisor's own settings.
    pub daemon: DaemonSection,
    /// `None`: this host runs no forwarder.
    pub forwarder: Option<ForwarderSection>,
    /// `[[receiver]]` entries, in file order.
    pub receivers: Vec<ReceiverSection>,
    /// `[[worker]]` entries, in file order.
    pub workers: Vec<WorkerSection>,
}

/// `[zerologd]`: the supervisor itself. Every key is optional.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DaemonSection {
    /// Default: see [`default_runtime_dir`].
    pub runtime_dir: PathBuf,
    /// Default: `<runtime_dir>/zerologd.sock`.
    pub control_socket: PathBuf,
    /// The `zerolog` binary; `None`: next to zerologd's own executable, then `PATH`.
    pub zerolog_bin: Option<PathBuf>,
    /// Address of the Prometheus metrics endpoint (`GET /metrics`); `None`: off.
    pub metrics: Option<SocketAddr>,
    /// Key `allow_empty`: a topology that runs nothing is an error unless this is true.
    pub allow_empty: bool,
    /// Where the forwarder keeps its journal; default: see [`default_state_dir`].
    pub state_dir: PathBuf,
}

impl DaemonSection {
    /// The keys whose values differ from `other`'s (`runtime_dir`, ...).
    pub fn changed_keys(&self, other: &DaemonSection) -> Vec<&'static str> {
        let mut keys = Vec::new();
        if self.runtime_dir != other.runtime_dir {
            keys.push("runtime_dir");
        }
        if self.control_socket != other.control_socket {
            keys.push("control_socket");
        }
        if self.zerolog_bin != other.zerolog_bin {
            keys.push("zerolog_bin");
        }
        if self.metrics != other.metrics {
            keys.push("metrics");
        }
        if self.state_dir != other.state_dir {
            keys.push("state_dir");
        }
        keys
    }
}

/// What to do when a process ends: `always` | `on-failure` | `never`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum RestartPolicy {
    #[default]
    /// `always`: restart whenever it ends (default).
    Always,
    /// `on-failure`: restart when it exits non-zero or is killed by a signal.
    OnFailure,
    /// `never`: leave it stopped.
    Never,
}

/// How a process is run and restarted: the keys shared by `[forwarder]`, `[[receiver]]` and
/// `[[worker]]`.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct ProcessSettings {
    /// Key `restart`, default `always`.
    pub restart: RestartPolicy,
    /// Key `stop_signal`, default `TERM`.
    pub stop_signal: Signal,
    /// Key `stop_timeout`: how long to wait after `stop_signal` before SIGKILL; default 10s.
    pub stop_timeout: Duration,
    /// Key `restart_backoff`: the first restart delay, doubled up to `backoff_max`; default 100ms.
    pub backoff: Duration,
    /// Key `restart_backoff_max`, default 10s.
    pub backoff_max: Duration,
    /// Key `max_restarts`: consecutive quick failures before the process is FATAL; default 10.
    pub max_restarts: u32,
    /// Key `min_uptime`: running at least this long resets the backoff; default 5s.
    pub min_uptime: Duration,
    /// Key `env`: extra environment variables.
    pub env: BTreeMap<String, String>,
    /// Key `cwd`: working directory (checked to exist).
    pub cwd: Option<PathBuf>,
    /// Key `user`: run as this user (checked to exist).
    pub user: Option<String>,
    /// Key `group`: run as this group (checked to exist).
    pub group: Option<String>,
}

impl Default for ProcessSettings {
    fn default() -> Self {
        ProcessSettings {
            restart: RestartPolicy::Always,
            stop_signal: Signal::SIGTERM,
            stop_timeout: Duration::from_secs(10),
            backoff: Duration::from_millis(100),
            backoff_max: Duration::from_secs(10),
            max_restarts: 10,
            min_uptime: Duration::from_secs(5),
            env: BTreeMap::new(),
            cwd: None,
            user: None,
            group: None,
        }
    }
}

/// `[forwarder]`: syslog in over TCP/UDP, `[topic, message]` out on a ZeroMQ XPUB.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ForwarderSection {
    /// Every other key, read into the forwarder's own configuration, whose defaults are the
    /// section's: `tcp`, `udp`, `publish`, `monitor`, `framing`, `max_message_size`,
    /// `topic_template`, `hwm` (`send_hwm`), `queue_bytes`, `max_connections`, `idle_timeout`
    /// ("0s": none),
    /// `udp_recv_buffer`, `allow`. `wait_subscribers` is not a key: zerologd counts the
    /// receivers' subscriptions.
    pub config: ForwarderConfig,
    /// Process keys (`restart`, `stop_signal`, `user`, ...).
    pub settings: ProcessSettings,
}

/// `[[receiver]]`: subscribes to topics and pushes messages to its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverSection {
    /// Key `name`: unique among receivers; workers name it in `receiver`.
    pub name: String,
    /// Every other key, read into the receiver's own configuration: `topic` (a string or a
    /// list; none means every topic), `connect` (default: the local forwarder's publish
    /// endpoint, a wildcard bind address replaced by loopback), `output` (default
    /// `ipc://<runtime_dir>/<name>.sock`), `hwm`, `queue_bytes`, `allow`. Its
    /// `max_message_size` is set at start (see [`ReceiverSection::max_message_size`]).
    pub config: ReceiverConfig,
    /// Key `max_message_size`: the longest message its publishers send, which sizes its
    /// receiving queue (`queue_bytes / max_message_size` messages). Without it: the local
    /// forwarder's `max_message_size` when the receiver subscribes to it, else 64 KiB. Give it
    /// for another publisher that sends longer messages.
    pub max_message_size: Option<usize>,
    /// Key `external_workers`: its workers are not in this topology (zerolog 0.3 workers,
    /// another host); without it a receiver must have a `[[worker]]`.
    pub external_workers: bool,
    /// Key `delivery`, when given; see [`Topology::delivery`] for the default.
    pub delivery: Option<Delivery>,
    /// Process keys (`restart`, `stop_signal`, `user`, ...).
    pub settings: ProcessSettings,
}

/// How a worker gets its messages: key `type`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Default)]
pub enum WorkerKind {
    /// `stdin` (default): zerologd runs `zerolog worker`, which feeds the command's stdin (or
    /// runs a built-in).
    #[default]
    Stdin,
    /// `zmq`: the command PULLs from the receiver itself (its arguments may use `{backend}`).
    Zmq,
}

/// `[[worker]]`: a pool of `numprocs` processes running `command`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct WorkerSection {
    /// Key `name`: unique among workers; its processes are `NAME:0`, `NAME:1`, ...
    pub name: String,
    /// The `[[receiver]]` it pulls from.
    pub receiver: String,
    /// Key `type`: `stdin` (default) or `zmq`.
    pub kind: WorkerKind,
    /// Program and arguments, unsubstituted (`{backend}` is left to the supervisor).
    pub command: Vec<String>,
    /// Default 1, at most 1024.
    pub numprocs: u32,
    /// stdin workers only.
    pub framing: OutputFraming,
    /// Key `with_seq` (stdin workers: programs and the built-ins): each record starts with
    /// the message's sequence number and a space.
    pub with_seq: bool,
    /// Keys `curve_secret_key` and `curve_server_key` (stdin workers): CURVE towards a
    /// receiver whose TCP output has it.
    pub curve: Option<zerolog::curve::CurveClient>,
    /// Process keys (`restart`, `stop_signal`, `user`, ...).
    pub settings: ProcessSettings,
}

/// One problem in a topology file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigError {
    /// The topology file.
    pub file: PathBuf,
    /// 1-based; 0 when the problem is not on a line (the file cannot be read).
    pub line: usize,
    /// The key path, such as `forwarder.tcp` or `worker "db".numprocs`; empty when none applies.
    pub key: String,
    /// What is wrong.
    pub message: String,
}

impl fmt::Display for ConfigError {
    /// `{file}:{line}: {key}: {message}`, leaving out a line of 0 and an empty key.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.file.display())?;
        if self.line > 0 {
            write!(f, ":{}", self.line)?;
        }
        if !self.key.is_empty() {
            write!(f, ": {}", self.key)?;
        }
        write!(f, ": {}", self.message)
    }
}

impl std::error::Error for ConfigError {}

/// Every problem found in a topology file, in line order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConfigErrors(pub Vec<ConfigError>);

impl fmt::Display for ConfigErrors {
    /// One error per line.
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for (i, e) in self.0.iter().enumerate() {
            if i > 0 {
                writeln!(f)?;
            }
            write!(f, "{e}")?;
        }
        Ok(())
    }
}

impl std::error::Error for ConfigErrors {}

impl Topology {
    /// Reads and validates a topology file.
    pub fn load(path: &Path) -> Result<Topology, ConfigErrors> {
        match std::fs::read_to_string(path) {
            Ok(text) => Topology::parse(&text, path),
            Err(e) => Err(ConfigErrors(vec![ConfigError {
                file: path.to_path_buf(),
                line: 0,
                key: String::new(),
                message: format!("cannot read the topology file: {e}"),
            }])),
        }
    }

    /// Parses and validates the text of a topology file; `source` names it in errors.
    pub fn parse(text: &str, source: &Path) -> Result<Topology, ConfigErrors> {
        let mut ctx = Ctx::new(text, source);
        let doc = match ImDocument::parse(text) {
            Ok(doc) => doc,
            Err(e) => {
                let line = ctx.line_of(e.span()).unwrap_or(0);
                let message = e
                    .message()
                    .lines()
                    .map(str::trim)
                    .filter(|l| !l.is_empty())
                    .collect::<Vec<_>>()
                    .join("; ");
                ctx.error(line, "syntax error", message);
                return Err(ctx.into_errors());
            }
        };
        let topology = build(&mut ctx, doc.as_table(), source);
        if ctx.errors.is_empty() {
            Ok(topology)
        } else {
            Err(ctx.into_errors())
        }
    }

    /// The control socket a topology file names, read leniently: only `[zerologd]` is looked
    /// at, and an unreadable or invalid file gives the default. For the control client.
    pub fn control_socket_of(path: Option<&Path>) -> PathBuf {
        let section = path
            .and_then(|p| std::fs::read_to_string(p).ok())
            .and_then(|text| text.parse::<toml::Table>().ok())
            .and_then(|mut t| match t.remove("zerologd") {
                Some(toml::Value::Table(z)) => Some(z),
                _ => None,
            })
            .unwrap_or_default();
        if let Some(toml::Value::String(s)) = section.get("control_socket") {
            return PathBuf::from(s);
        }
        let runtime = match section.get("runtime_dir") {
            Some(toml::Value::String(s)) => PathBuf::from(s),
            _ => default_runtime_dir(),
        };
        runtime.join("zerologd.sock")
    }

    /// How receiver `r` hands out messages: its `delivery` key; else `push` when some of its
    /// workers may be zerolog 0.3 ones (a `type = "zmq"` worker, or `external_workers`),
    /// which take PUSH only; else `acked`. Only a receiver fetching from the local
    /// forwarder's journal can acknowledge: any other pushes.
    pub fn delivery(&self, r: &ReceiverSection) -> Delivery {
        let foreign = self
            .workers
            .iter()
            .any(|w| w.receiver == r.name && w.kind == WorkerKind::Zmq);
        r.delivery.unwrap_or(if foreign || r.external_workers {
            Delivery::Push
        } else {
            Delivery::Acked
        })
    }

    /// The topology of [`EMBEDDED_DEFAULT`].
    pub fn embedded_default() -> Topology {
        Topology::parse(EMBEDDED_DEFAULT, Path::new(EMBEDDED_SOURCE))
            .unwrap_or_else(|e| panic!("the embedded default topology is invalid:\n{e}"))
    }
}

/// The default `[zerologd] state_dir`: `$ZEROLOG_STATE_DIR` if set; else `/var/lib/zerolog` as root (the unit's `StateDirectory=`),
/// else `$XDG_STATE_HOME/zerolog`, else `~/.local/state/zerolog`.
pub fn default_state_dir() -> PathBuf {
    if let Some(dir) = std::env::var_os("ZEROLOG_STATE_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    if nix::unistd::geteuid().is_root() {
        return PathBuf::from("/var/lib/zerolog");
    }
    let absolute = |v: &str| std::env::var_os(v).filter(|d| Path::new(d).is_absolute());
    match (absolute("XDG_STATE_HOME"), absolute("HOME")) {
        (Some(dir), _) => Path::new(&dir).join("zerolog"),
        (None, Some(home)) => Path::new(&home).join(".local/state/zerolog"),
        (None, None) => PathBuf::from(format!("/tmp/zerolog-state-{}", nix::unistd::geteuid())),
    }
}

/// The default `[zerologd] runtime_dir`: `$ZEROLOG_RUNTIME_DIR` when set, else `/run/zerolog` for
/// root, else
/// `$XDG_RUNTIME_DIR/zerolog` when that is set, else `/tmp/zerolog-<euid>`.
pub fn default_runtime_dir() -> PathBuf {
    // An explicit override first: several zerologd instances (tests, a trial next to a
    // packaged one) each need their own.
    if let Some(dir) = std::env::var_os("ZEROLOG_RUNTIME_DIR").filter(|d| !d.is_empty()) {
        return PathBuf::from(dir);
    }
    let euid = nix::unistd::geteuid();
    if euid.is_root() {
        return PathBuf::from("/run/zerolog");
    }
    match std::env::var_os("XDG_RUNTIME_DIR") {
        Some(dir) if !dir.is_empty() && Path::new(&dir).is_absolute() => {
            Path::new(&dir).join("zerolog")
        }
        _ => PathBuf::from(format!("/tmp/zerolog-{euid}")),
    }
}
