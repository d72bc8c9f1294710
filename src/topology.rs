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

use std::collections::{BTreeMap, HashMap};
use std::fmt;
use std::net::SocketAddr;
use std::ops::Range;
use std::path::{Path, PathBuf};
use std::str::FromStr;
use std::time::Duration;

use nix::sys::signal::Signal;
use toml_edit::{ImDocument, Item, TableLike, Value};

use zerolog::endpoint::{Endpoint, Host, MAX_IPC_PATH};
use zerolog::framing::Framing;
use zerolog::syslog::TopicTemplate;
use zerolog::worker::OutputFraming;

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
    /// Key `tcp`, default `["127.0.0.1:6000"]`.
    pub tcp: Vec<SocketAddr>,
    /// Key `udp`, default `[]`.
    pub udp: Vec<SocketAddr>,
    /// Key `publish`: ZeroMQ bind endpoint, default `tcp://127.0.0.1:6001`.
    pub publish: Endpoint,
    /// Key `monitor`: ZeroMQ bind endpoint of the lossy monitor PUB.
    pub monitor: Option<Endpoint>,
    /// Key `framing`: `auto` (default), `lf` or `octet-counted`.
    pub framing: Framing,
    /// Default [`zerolog::framing::DEFAULT_MAX_SIZE`]; 1 byte to 1 GiB.
    pub max_message_size: usize,
    /// Default `{app}`.
    pub topic_template: TopicTemplate,
    /// ZeroMQ high-water mark of the publish socket, default 10000.
    pub hwm: i32,
    /// Key `max_connections`: open TCP connections per input, default 4096.
    pub max_connections: usize,
    /// Key `idle_timeout`: close a TCP connection silent this long; default none ("0s").
    pub idle_timeout: Option<Duration>,
    /// Key `udp_recv_buffer`: SO_RCVBUF of the UDP sockets in bytes; default the system's.
    pub udp_recv_buffer: Option<usize>,
    /// Key `allow`: networks receivers may connect from; default any.
    pub allow: Vec<ipnet::IpNet>,
    /// Process keys (`restart`, `stop_signal`, `user`, ...).
    pub settings: ProcessSettings,
}

/// `[[receiver]]`: subscribes to topics and pushes messages to its workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ReceiverSection {
    /// Key `name`: unique among receivers; workers name it in `receiver`.
    pub name: String,
    /// Key `topic` (a string or a list); `[]` means every topic.
    pub topics: Vec<String>,
    /// Publisher endpoints. Default: the local forwarder's publish endpoint (a wildcard bind
    /// address replaced by loopback).
    pub connect: Vec<Endpoint>,
    /// Bind endpoint for workers, default `ipc://<runtime_dir>/<name>.sock`.
    pub output: Endpoint,
    /// Default 10000.
    pub hwm: i32,
    /// Key `allow`: networks workers may connect from (TCP output); default any.
    pub allow: Vec<ipnet::IpNet>,
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

    /// The topology of [`EMBEDDED_DEFAULT`].
    pub fn embedded_default() -> Topology {
        Topology::parse(EMBEDDED_DEFAULT, Path::new(EMBEDDED_SOURCE))
            .unwrap_or_else(|e| panic!("the embedded default topology is invalid:\n{e}"))
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

// ---------------------------------------------------------------------------------------------
// Keys

const SECTIONS: &[&str] = &["zerologd", "forwarder", "receiver", "worker"];
const ZEROLOGD_KEYS: &[&str] = &["runtime_dir", "control_socket", "zerolog_bin", "metrics"];
const FORWARDER_KEYS: &[&str] = &[
    "tcp",
    "udp",
    "publish",
    "monitor",
    "framing",
    "max_message_size",
    "topic_template",
    "hwm",
    "max_connections",
    "idle_timeout",
    "udp_recv_buffer",
    "allow",
];
const RECEIVER_KEYS: &[&str] = &["name", "topic", "connect", "output", "hwm", "allow"];
const WORKER_KEYS: &[&str] = &["name", "receiver", "type", "command", "numprocs", "framing"];
const SETTINGS_KEYS: &[&str] = &[
    "restart",
    "stop_signal",
    "stop_timeout",
    "restart_backoff",
    "restart_backoff_max",
    "max_restarts",
    "min_uptime",
    "env",
    "cwd",
    "user",
    "group",
];

/// Where each key belongs, for "did you mean" hints across sections.
fn home_of(key: &str) -> Option<&'static str> {
    if ZEROLOGD_KEYS.contains(&key) {
        Some("[zerologd]")
    } else if FORWARDER_KEYS.contains(&key) {
        Some("[forwarder]")
    } else if RECEIVER_KEYS.contains(&key) {
        Some("[[receiver]]")
    } else if WORKER_KEYS.contains(&key) {
        Some("[[worker]]")
    } else if SETTINGS_KEYS.contains(&key) {
        Some("[forwarder], [[receiver]] or [[worker]]")
    } else {
        None
    }
}

const MAX_MESSAGE_SIZE: i64 = 1 << 30;
const MAX_NUMPROCS: i64 = 1024;

// ---------------------------------------------------------------------------------------------
// Error collection and value access

struct Ctx<'a> {
    file: &'a Path,
    /// Byte offset of the start of every line.
    line_starts: Vec<usize>,
    errors: Vec<ConfigError>,
}

impl<'a> Ctx<'a> {
    fn new(text: &str, file: &'a Path) -> Self {
        let mut line_starts = vec![0];
        line_starts.extend(text.match_indices('\n').map(|(i, _)| i + 1));
        Ctx {
            file,
            line_starts,
            errors: Vec::new(),
        }
    }

    fn line_of(&self, span: Option<Range<usize>>) -> Option<usize> {
        span.map(|s| self.line_starts.partition_point(|&start| start <= s.start))
    }

    fn error(&mut self, line: usize, key: impl Into<String>, message: impl Into<String>) {
        self.errors.push(ConfigError {
            file: self.file.to_path_buf(),
            line,
            key: key.into(),
            message: message.into(),
        });
    }

    fn into_errors(mut self) -> ConfigErrors {
        self.errors.sort_by_key(|e| e.line);
        ConfigErrors(self.errors)
    }

    fn wrong_type(&mut self, f: &Field<'_>, expected: &str) {
        let found = describe(f.item);
        self.error(
            f.line,
            &f.key,
            format!("expected {expected}, found {found}"),
        );
    }

    fn string(&mut self, f: &Field<'_>) -> Option<String> {
        match f.item.as_str() {
            Some(s) => Some(s.to_owned()),
            None => {
                self.wrong_type(f, "a string");
                None
            }
        }
    }

    /// A string turned into a `T` by `parse`, whose error message is reported as is.
    fn parsed<T>(
        &mut self,
        f: &Field<'_>,
        parse: impl FnOnce(&str) -> Result<T, String>,
    ) -> Option<T> {
        let s = self.string(f)?;
        match parse(&s) {
            Ok(v) => Some(v),
            Err(message) => {
                self.error(f.line, &f.key, message);
                None
            }
        }
    }

    /// An integer in `min..=max`, converted to `T`.
    fn int_in<T: TryFrom<i64>>(&mut self, f: &Field<'_>, min: i64, max: i64) -> Option<T> {
        let Some(n) = f.item.as_integer() else {
            self.wrong_type(f, "an integer");
            return None;
        };
        if n < min || n > max {
            let message = if max == i64::from(i32::MAX) || max == i64::from(u32::MAX) {
                format!("must be at least {min}, found {n}")
            } else {
                format!("must be between {min} and {max}, found {n}")
            };
            self.error(f.line, &f.key, message);
            return None;
        }
        T::try_from(n).ok()
    }

    /// A humantime string (`"10s"`, `"1m 30s"`, `"500ms"`) or a number of seconds.
    fn duration(&mut self, f: &Field<'_>) -> Option<Duration> {
        let result = match f.item.as_value() {
            Some(Value::String(s)) => humantime::parse_duration(s.value()).map_err(|e| {
                format!(
                    "invalid duration \"{}\": {e} (write e.g. \"10s\", \"500ms\" or \"1m 30s\")",
                    s.value()
                )
            }),
            Some(Value::Integer(n)) => u64::try_from(*n.value())
                .map(Duration::from_secs)
                .map_err(|_| format!("a duration cannot be negative, found {}", n.value())),
            Some(Value::Float(x)) => Duration::try_from_secs_f64(*x.value())
                .map_err(|_| format!("invalid duration {} seconds", x.value())),
            _ => {
                self.wrong_type(f, "a duration (a string such as \"10s\", or seconds)");
                return None;
            }
        };
        match result {
            Ok(d) => Some(d),
            Err(message) => {
                self.error(f.line, &f.key, message);
                None
            }
        }
    }

    /// A list of strings, each with its line. With `single`, a lone string is a list of one.
    fn strings(&mut self, f: &Field<'_>, single: bool) -> Option<Vec<(String, usize)>> {
        if single {
            if let Some(s) = f.item.as_str() {
                return Some(vec![(s.to_owned(), f.line)]);
            }
        }
        let Some(array) = f.item.as_array() else {
            let expected = if single {
                "a string or a list of strings"
            } else {
                "a list of strings"
            };
            self.wrong_type(f, expected);
            return None;
        };
        let mut out = Vec::with_capacity(array.len());
        let mut ok = true;
        for (i, v) in array.iter().enumerate() {
            let line = self.line_of(v.span()).unwrap_or(f.line);
            match v.as_str() {
                Some(s) => out.push((s.to_owned(), line)),
                None => {
                    ok = false;
                    let found = describe_value(v);
                    self.error(
                        line,
                        &f.key,
                        format!("expected a list of strings, but element {i} is {found}"),
                    );
                }
            }
        }
        ok.then_some(out)
    }
}

fn describe(item: &Item) -> &'static str {
    match item {
        Item::None => "nothing",
        Item::Value(v) => describe_value(v),
        Item::Table(_) => "a table",
        Item::ArrayOfTables(_) => "an array of tables",
    }
}

fn describe_value(v: &Value) -> &'static str {
    match v {
        Value::String(_) => "a string",
        Value::Integer(_) => "an integer",
        Value::Float(_) => "a float",
        Value::Boolean(_) => "a boolean",
        Value::Datetime(_) => "a date-time",
        Value::Array(_) => "an array",
        Value::InlineTable(_) => "an inline table",
    }
}

fn item_span(item: &Item) -> Option<Range<usize>> {
    match item {
        Item::Value(v) => v.span(),
        Item::Table(t) => t.span(),
        Item::ArrayOfTables(a) => a.span(),
        Item::None => None,
    }
}

/// One key's value, with its full key path and line.
struct Field<'d> {
    item: &'d Item,
    key: String,
    line: usize,
}

/// A table (standard, inline or dotted) being read.
struct Section<'d> {
    table: &'d dyn TableLike,
    /// Key path prefix: `forwarder`, `receiver[1]`, `worker "db"`.
    path: String,
    /// How messages name it: `[forwarder]`, `receiver[1]`, `worker "db"`.
    what: String,
    /// The line of its header (or of its first key when it has none).
    line: usize,
}

impl<'d> Section<'d> {
    fn new(
        ctx: &Ctx<'_>,
        table: &'d dyn TableLike,
        span: Option<Range<usize>>,
        fallback: usize,
    ) -> Self {
        let line = ctx
            .line_of(span)
            .or_else(|| {
                table
                    .iter()
                    .filter_map(|(k, _)| ctx.line_of(table.key(k).and_then(|k| k.span())))
                    .min()
            })
            .unwrap_or(fallback);
        Section {
            table,
            path: String::new(),
            what: String::new(),
            line,
        }
    }

    fn named(mut self, path: String, what: String) -> Self {
        self.path = path;
        self.what = what;
        self
    }

    fn key_path(&self, key: &str) -> String {
        format!("{}.{key}", self.path)
    }

    fn key_line(&self, ctx: &Ctx<'_>, key: &str) -> usize {
        let (k, item) = match self.table.get_key_value(key) {
            Some(kv) => kv,
            None => return self.line,
        };
        ctx.line_of(k.span())
            .or_else(|| ctx.line_of(item_span(item)))
            .unwrap_or(self.line)
    }

    fn field(&self, ctx: &Ctx<'_>, key: &str) -> Option<Field<'d>> {
        let item = self.table.get(key)?;
        if item.is_none() {
            return None;
        }
        Some(Field {
            item,
            key: self.key_path(key),
            line: self.key_line(ctx, key),
        })
    }

    /// Reports a required key that is missing.
    fn require(&self, ctx: &mut Ctx<'_>, key: &str, example: &str) -> Option<Field<'d>> {
        let f = self.field(ctx, key);
        if f.is_none() {
            ctx.error(
                self.line,
                self.key_path(key),
                format!("missing required key in {} (e.g. {example})", self.what),
            );
        }
        f
    }

    /// Reports every key not in `allowed`.
    fn check_keys(&self, ctx: &mut Ctx<'_>, allowed: &[&[&str]]) {
        for (key, _) in self.table.iter() {
            if allowed.iter().any(|keys| keys.contains(&key)) {
                continue;
            }
            let line = self.key_line(ctx, key);
            let candidates = allowed.iter().flat_map(|keys| keys.iter().copied());
            let hint = match (suggest(key, candidates), home_of(key)) {
                (Some(s), _) => format!("; did you mean `{s}`?"),
                (None, Some(home)) => format!("; `{key}` belongs in {home}"),
                (None, None) => String::new(),
            };
            ctx.error(
                line,
                self.key_path(key),
                format!("unknown key `{key}` in {}{hint}", self.what),
            );
        }
    }
}

/// The closest candidate to a misspelt `key`, if it is close enough.
fn suggest<'k>(key: &str, candidates: impl IntoIterator<Item = &'k str>) -> Option<&'k str> {
    let limit = (key.chars().count() / 3).clamp(1, 3);
    candidates
        .into_iter()
        .map(|c| (edit_distance(key, c), c))
        .filter(|&(d, _)| d <= limit)
        .min_by_key(|&(d, _)| d)
        .map(|(_, c)| c)
}

/// Levenshtein distance, by characters.
fn edit_distance(a: &str, b: &str) -> usize {
    let b: Vec<char> = b.chars().collect();
    let mut prev: Vec<usize> = (0..=b.len()).collect();
    let mut cur = vec![0; b.len() + 1];
    for (i, ca) in a.chars().enumerate() {
        cur[0] = i + 1;
        for (j, &cb) in b.iter().enumerate() {
            let substitute = prev[j] + usize::from(ca != cb);
            cur[j + 1] = substitute.min(prev[j + 1] + 1).min(cur[j] + 1);
        }
        std::mem::swap(&mut prev, &mut cur);
    }
    prev[b.len()]
}

// ---------------------------------------------------------------------------------------------
// Values

fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    match s {
        "always" => Ok(RestartPolicy::Always),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "never" => Ok(RestartPolicy::Never),
        other => Err(format!(
            "unknown restart policy \"{other}\": expected always, on-failure or never"
        )),
    }
}

fn parse_signal(s: &str) -> Result<Signal, String> {
    let upper = s.to_ascii_uppercase();
    let name = upper.strip_prefix("SIG").unwrap_or(&upper);
    Ok(match name {
        "TERM" => Signal::SIGTERM,
        "INT" => Signal::SIGINT,
        "HUP" => Signal::SIGHUP,
        "QUIT" => Signal::SIGQUIT,
        "KILL" => Signal::SIGKILL,
        "USR1" => Signal::SIGUSR1,
        "USR2" => Signal::SIGUSR2,
        _ => {
            return Err(format!(
                "unknown stop signal \"{s}\": expected TERM, INT, HUP, QUIT, KILL, USR1 or USR2"
            ))
        }
    })
}

fn parse_kind(s: &str) -> Result<WorkerKind, String> {
    match s {
        "stdin" => Ok(WorkerKind::Stdin),
        "zmq" => Ok(WorkerKind::Zmq),
        other => Err(format!(
            "unknown worker type \"{other}\": expected stdin or zmq"
        )),
    }
}

fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(s).map_err(|_| {
        format!("invalid address \"{s}\": expected IP:PORT, e.g. 127.0.0.1:6000 or [::1]:6000")
    })
}

fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the name must not be empty".into());
    }
    if let Some(c) = s
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-')))
    {
        return Err(format!(
            "invalid name \"{s}\": {c:?} is not allowed; use letters, digits, `_`, `.` and `-`"
        ));
    }
    if s == "forwarder" {
        return Err("the name \"forwarder\" is reserved".into());
    }
    Ok(s.to_owned())
}

fn absolute_path(s: &str) -> Result<PathBuf, String> {
    let p = PathBuf::from(s);
    if p.is_absolute() {
        Ok(p)
    } else {
        Err(format!("\"{s}\" must be an absolute path"))
    }
}

// ---------------------------------------------------------------------------------------------
// Cross-checks

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Proto {
    Tcp,
    Udp,
}

#[derive(Debug)]
enum BindTarget {
    /// A ZeroMQ endpoint or a unix socket path (TCP counts as TCP).
    Endpoint(Endpoint),
    /// A UDP port.
    Udp(SocketAddr),
}

/// Something this host binds, for the duplicate check.
#[derive(Debug)]
struct Bind {
    target: BindTarget,
    key: String,
    line: usize,
    /// A default value (two defaults only clash when names clash, which is reported already).
    default: bool,
}

impl Bind {
    fn endpoint(ep: &Endpoint, key: String, line: usize, default: bool) -> Bind {
        Bind {
            target: BindTarget::Endpoint(ep.clone()),
            key,
            line,
            default,
        }
    }

    fn socket(proto: Proto, addr: SocketAddr, key: String, line: usize) -> Bind {
        let target = match proto {
            Proto::Tcp => BindTarget::Endpoint(Endpoint::Tcp {
                host: Host::Ip(addr.ip()),
                port: addr.port(),
            }),
            Proto::Udp => BindTarget::Udp(addr),
        };
        Bind {
            target,
            key,
            line,
            default: false,
        }
    }

    /// How it clashes with `other`, if it does.
    fn clash(&self, other: &Bind) -> Option<String> {
        if self.default && other.default {
            return None;
        }
        match (&self.target, &other.target) {
            (BindTarget::Endpoint(a), BindTarget::Endpoint(b)) if a.clashes(b) => Some(match a {
                Endpoint::Tcp { port, .. } => format!("TCP port {port}"),
                Endpoint::Ipc(path) => format!("ipc path {}", path.display()),
            }),
            (BindTarget::Udp(a), BindTarget::Udp(b)) => {
                let (a, b) = (udp_as_endpoint(a), udp_as_endpoint(b));
                a.clashes(&b)
                    .then(|| format!("UDP port {}", a.port().unwrap_or(0)))
            }
            _ => None,
        }
    }
}

/// A UDP address, compared as TCP ones are (same port, same host or a wildcard).
fn udp_as_endpoint(addr: &SocketAddr) -> Endpoint {
    Endpoint::Tcp {
        host: Host::Ip(addr.ip()),
        port: addr.port(),
    }
}

fn check_binds(ctx: &mut Ctx<'_>, binds: &[Bind]) {
    for (i, b) in binds.iter().enumerate() {
        if let Some((what, first)) = binds[..i]
            .iter()
            .find_map(|earlier| b.clash(earlier).map(|what| (what, earlier)))
        {
            let message = format!(
                "{what} is already bound by {} (line {})",
                first.key, first.line
            );
            ctx.error(b.line, &b.key, message);
        }
    }
}

/// A valid receiver or worker name, for the uniqueness check.
struct Name {
    name: String,
    kind: &'static str,
    key: String,
    line: usize,
}

fn check_names(ctx: &mut Ctx<'_>, names: &[Name]) {
    let mut seen: HashMap<&str, &Name> = HashMap::new();
    for n in names {
        match seen.get(n.name.as_str()) {
            Some(first) => {
                let message = format!(
                    "duplicate name \"{}\": already used by the {} on line {} (receivers and workers share one namespace)",
                    n.name, first.kind, first.line
                );
                ctx.error(n.line, &n.key, message);
            }
            None => {
                seen.insert(&n.name, n);
            }
        }
    }
}

// ---------------------------------------------------------------------------------------------
// Sections

fn build(ctx: &mut Ctx<'_>, root: &toml_edit::Table, source: &Path) -> Topology {
    let top = Section::new(ctx, root, None, 1).named(String::new(), "the file".into());
    for (key, _) in root.iter() {
        if SECTIONS.contains(&key) {
            continue;
        }
        let line = top.key_line(ctx, key);
        let hint = match (suggest(key, SECTIONS.iter().copied()), home_of(key)) {
            (Some(s), _) => format!("; did you mean `{s}`?"),
            (None, Some(home)) => format!("; `{key}` belongs in {home}"),
            (None, None) => "; expected [zerologd], [forwarder], [[receiver]] or [[worker]]".into(),
        };
        ctx.error(line, key, format!("unknown section `{key}`{hint}"));
    }

    let mut binds = Vec::new();
    let mut names = Vec::new();

    let daemon = daemon_section(ctx, &top, &mut binds);
    let forwarder =
        single_table(ctx, &top, "forwarder").map(|s| forwarder_section(ctx, &s, &mut binds));

    let default_connect = forwarder.as_ref().map(|f| f.publish.connect_target());
    let mut receivers = Vec::new();
    for s in table_array(ctx, &top, "receiver") {
        receivers.push(receiver_section(
            ctx,
            s,
            &daemon,
            default_connect.as_ref(),
            &mut names,
            &mut binds,
        ));
    }

    let mut receiver_names: Vec<String> = names.iter().map(|n| n.name.clone()).collect();
    let mut seen = std::collections::HashSet::new();
    receiver_names.retain(|n| seen.insert(n.clone()));
    let receiver_list = if receiver_names.is_empty() {
        "there are no [[receiver]] sections".to_owned()
    } else {
        format!("receivers: {}", receiver_names.join(", "))
    };
    let mut workers = Vec::new();
    for s in table_array(ctx, &top, "worker") {
        let (worker, receiver_ref) = worker_section(ctx, s, &mut names);
        if let Some((name, key, line)) = receiver_ref {
            if !receiver_names.contains(&name) {
                ctx.error(
                    line,
                    key,
                    format!("no receiver named \"{name}\"; {receiver_list}"),
                );
            }
        }
        workers.push(worker);
    }

    check_names(ctx, &names);
    check_binds(ctx, &binds);

    Topology {
        source: source.to_path_buf(),
        daemon,
        forwarder,
        receivers,
        workers,
    }
}

/// `[name]`: a table, or nothing.
fn single_table<'d>(ctx: &mut Ctx<'_>, top: &Section<'d>, name: &str) -> Option<Section<'d>> {
    let f = top.field(ctx, name)?;
    match f.item.as_table_like() {
        Some(t) => Some(
            Section::new(ctx, t, item_span(f.item), f.line)
                .named(name.to_owned(), format!("[{name}]")),
        ),
        None => {
            ctx.error(
                f.line,
                name,
                format!("expected a table [{name}], found {}", describe(f.item)),
            );
            None
        }
    }
}

/// `[[name]]`: an array of tables (or an array of inline tables).
fn table_array<'d>(ctx: &mut Ctx<'_>, top: &Section<'d>, name: &str) -> Vec<Section<'d>> {
    let Some(f) = top.field(ctx, name) else {
        return Vec::new();
    };
    let section = |ctx: &Ctx<'_>, i: usize, t: &'d dyn TableLike, span| {
        Section::new(ctx, t, span, f.line).named(format!("{name}[{i}]"), format!("{name}[{i}]"))
    };
    match f.item {
        Item::ArrayOfTables(a) => a
            .iter()
            .enumerate()
            .map(|(i, t)| section(ctx, i, t as &dyn TableLike, t.span()))
            .collect(),
        Item::Value(Value::Array(a)) if a.iter().all(|v| v.is_inline_table()) => a
            .iter()
            .enumerate()
            .filter_map(|(i, v)| {
                v.as_inline_table()
                    .map(|t| section(ctx, i, t as &dyn TableLike, v.span()))
            })
            .collect(),
        other => {
            let hint = if other.is_table_like() {
                format!("; write [[{name}]] (double brackets), one per {name}")
            } else {
                String::new()
            };
            ctx.error(
                f.line,
                name,
                format!(
                    "expected an array of tables [[{name}]], found {}{hint}",
                    describe(other)
                ),
            );
            Vec::new()
        }
    }
}

fn daemon_section(ctx: &mut Ctx<'_>, top: &Section<'_>, binds: &mut Vec<Bind>) -> DaemonSection {
    let section = single_table(ctx, top, "zerologd");
    let mut runtime_dir = None;
    let mut control_socket = None;
    let mut zerolog_bin = None;
    let mut metrics = None;
    let mut socket_line = None;
    if let Some(s) = &section {
        s.check_keys(ctx, &[ZEROLOGD_KEYS]);
        if let Some(f) = s.field(ctx, "runtime_dir") {
            runtime_dir = ctx.parsed(&f, absolute_path);
        }
        if let Some(f) = s.field(ctx, "control_socket") {
            control_socket = ctx.parsed(&f, absolute_path);
            socket_line = Some((f.key, f.line));
        }
        if let Some(f) = s.field(ctx, "zerolog_bin") {
            zerolog_bin = ctx.parsed(&f, |p| {
                zerolog::worker::find_program(p, None)
                    .map(|_| PathBuf::from(p))
                    .map_err(|_| format!("no executable zerolog binary at \"{p}\""))
            });
        }
        if let Some(f) = s.field(ctx, "metrics") {
            metrics = ctx.parsed(&f, parse_socket_addr);
            if let Some(addr) = metrics {
                binds.push(Bind::socket(Proto::Tcp, addr, f.key.clone(), f.line));
            }
        }
    }
    let runtime_dir = runtime_dir.unwrap_or_else(default_runtime_dir);
    let control_socket = control_socket.unwrap_or_else(|| runtime_dir.join("zerologd.sock"));
    let (key, line, default) = match socket_line {
        Some((key, line)) => (key, line, false),
        None => (
            "zerologd.control_socket".to_owned(),
            section.as_ref().map_or(0, |s| s.line),
            true,
        ),
    };
    let path = control_socket.to_string_lossy().into_owned();
    if path.len() > MAX_IPC_PATH {
        ctx.error(
            line,
            &key,
            format!(
                "control socket path \"{path}\" is {} bytes long; a Unix socket path may have at most {MAX_IPC_PATH}",
                path.len()
            ),
        );
    }
    binds.push(Bind::endpoint(
        &Endpoint::Ipc(control_socket.clone()),
        key,
        line,
        default,
    ));
    DaemonSection {
        runtime_dir,
        control_socket,
        zerolog_bin,
        metrics,
    }
}

fn settings_section(ctx: &mut Ctx<'_>, s: &Section<'_>) -> ProcessSettings {
    let mut p = ProcessSettings::default();
    if let Some(f) = s.field(ctx, "restart") {
        p.restart = ctx.parsed(&f, parse_restart).unwrap_or(p.restart);
    }
    if let Some(f) = s.field(ctx, "stop_signal") {
        p.stop_signal = ctx.parsed(&f, parse_signal).unwrap_or(p.stop_signal);
    }
    if let Some(f) = s.field(ctx, "stop_timeout") {
        p.stop_timeout = ctx.duration(&f).unwrap_or(p.stop_timeout);
    }
    let backoff = s.field(ctx, "restart_backoff");
    if let Some(f) = &backoff {
        p.backoff = ctx.duration(f).unwrap_or(p.backoff);
    }
    let backoff_max = s.field(ctx, "restart_backoff_max");
    if let Some(f) = &backoff_max {
        p.backoff_max = ctx.duration(f).unwrap_or(p.backoff_max);
    }
    if p.backoff > p.backoff_max {
        if let Some(f) = backoff_max.as_ref().or(backoff.as_ref()) {
            let message = format!(
                "restart_backoff ({}) is longer than restart_backoff_max ({})",
                humantime::format_duration(p.backoff),
                humantime::format_duration(p.backoff_max)
            );
            ctx.error(f.line, &f.key, message);
        }
    }
    if let Some(f) = s.field(ctx, "max_restarts") {
        p.max_restarts = ctx
            .int_in(&f, 0, i64::from(u32::MAX))
            .unwrap_or(p.max_restarts);
    }
    if let Some(f) = s.field(ctx, "min_uptime") {
        p.min_uptime = ctx.duration(&f).unwrap_or(p.min_uptime);
    }
    if let Some(f) = s.field(ctx, "env") {
        match f.item.as_table_like() {
            Some(table) => {
                let env = Section::new(ctx, table, item_span(f.item), f.line)
                    .named(f.key.clone(), f.key.clone());
                for (name, _) in table.iter() {
                    let Some(v) = env.field(ctx, name) else {
                        continue;
                    };
                    if name.is_empty() || name.contains('=') || name.contains('\0') {
                        ctx.error(
                            v.line,
                            &v.key,
                            format!("invalid environment variable name \"{name}\""),
                        );
                        continue;
                    }
                    if let Some(value) = ctx.string(&v) {
                        if value.contains('\0') {
                            ctx.error(v.line, &v.key, "the value must not contain a NUL byte");
                        } else {
                            p.env.insert(name.to_owned(), value);
                        }
                    }
                }
            }
            None => ctx.wrong_type(&f, "a table of strings, e.g. env = { LANG = \"C\" }"),
        }
    }
    if let Some(f) = s.field(ctx, "cwd") {
        p.cwd = ctx.parsed(&f, |d| {
            if Path::new(d).is_dir() {
                Ok(PathBuf::from(d))
            } else {
                Err(format!("no directory \"{d}\""))
            }
        });
    }
    if let Some(f) = s.field(ctx, "user") {
        p.user = ctx.parsed(&f, |u| match nix::unistd::User::from_name(u) {
            Ok(Some(_)) => Ok(u.to_owned()),
            Ok(None) => Err(format!("no user named \"{u}\"")),
            Err(e) => Err(format!("cannot look up user \"{u}\": {e}")),
        });
    }
    if let Some(f) = s.field(ctx, "group") {
        p.group = ctx.parsed(&f, |g| match nix::unistd::Group::from_name(g) {
            Ok(Some(_)) => Ok(g.to_owned()),
            Ok(None) => Err(format!("no group named \"{g}\"")),
            Err(e) => Err(format!("cannot look up group \"{g}\": {e}")),
        });
    }
    p
}

fn hwm(ctx: &mut Ctx<'_>, s: &Section<'_>) -> i32 {
    s.field(ctx, "hwm")
        .and_then(|f| ctx.int_in(&f, 1, i64::from(i32::MAX)))
        .unwrap_or(zerolog::defaults::HWM)
}

fn socket_addrs(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    key: &str,
    proto: Proto,
    binds: &mut Vec<Bind>,
) -> Option<Vec<SocketAddr>> {
    let f = s.field(ctx, key)?;
    let mut addrs = Vec::new();
    for (text, line) in ctx.strings(&f, true)? {
        match parse_socket_addr(&text) {
            Ok(addr) => {
                binds.push(Bind::socket(proto, addr, f.key.clone(), line));
                addrs.push(addr);
            }
            Err(message) => ctx.error(line, &f.key, message),
        }
    }
    Some(addrs)
}

/// Key `allow`: a list of networks or addresses (every entry checked).
fn allow_list(ctx: &mut Ctx<'_>, s: &Section<'_>) -> Vec<ipnet::IpNet> {
    let Some(f) = s.field(ctx, "allow") else {
        return Vec::new();
    };
    let mut nets = Vec::new();
    for (text, line) in ctx.strings(&f, true).unwrap_or_default() {
        match zerolog::access::parse_net(&text) {
            Ok(net) => nets.push(net),
            Err(message) => ctx.error(line, &f.key, message),
        }
    }
    nets
}

fn bind_endpoint(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    key: &str,
    binds: &mut Vec<Bind>,
) -> Option<Endpoint> {
    let f = s.field(ctx, key)?;
    let text = ctx.string(&f)?;
    match Endpoint::parse_bind(&text) {
        Ok(ep) => {
            binds.push(Bind::endpoint(&ep, f.key.clone(), f.line, false));
            Some(ep)
        }
        Err(message) => {
            ctx.error(f.line, &f.key, message.to_string());
            None
        }
    }
}

fn forwarder_section(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    binds: &mut Vec<Bind>,
) -> ForwarderSection {
    s.check_keys(ctx, &[FORWARDER_KEYS, SETTINGS_KEYS]);
    let tcp_given = s.field(ctx, "tcp").is_some();
    let tcp = match socket_addrs(ctx, s, "tcp", Proto::Tcp, binds) {
        Some(addrs) => addrs,
        None if tcp_given => Vec::new(),
        None => {
            let addr = SocketAddr::from(([127, 0, 0, 1], zerolog::defaults::INPUT_PORT));
            binds.push(Bind::socket(Proto::Tcp, addr, s.key_path("tcp"), s.line));
            vec![addr]
        }
    };
    let udp = socket_addrs(ctx, s, "udp", Proto::Udp, binds).unwrap_or_default();
    let empty_list = |key: &str| {
        s.field(ctx, key)
            .is_some_and(|f| f.item.as_array().is_some_and(|a| a.is_empty()))
    };
    if empty_list("tcp") && (empty_list("udp") || s.field(ctx, "udp").is_none()) {
        let line = s.key_line(ctx, "tcp");
        ctx.error(
            line,
            s.key_path("tcp"),
            "the forwarder has no inputs: tcp is empty and so is udp",
        );
    }
    let publish = bind_endpoint(ctx, s, "publish", binds).unwrap_or_else(|| {
        let ep = Endpoint::tcp(
            zerolog::defaults::BIND_HOST,
            zerolog::defaults::PUBLISH_PORT,
        );
        if s.field(ctx, "publish").is_none() {
            binds.push(Bind::endpoint(&ep, s.key_path("publish"), s.line, false));
        }
        ep
    });
    let monitor = bind_endpoint(ctx, s, "monitor", binds);
    let framing = s
        .field(ctx, "framing")
        .and_then(|f| ctx.parsed(&f, Framing::from_str))
        .unwrap_or_default();
    let max_message_size = s
        .field(ctx, "max_message_size")
        .and_then(|f| ctx.int_in(&f, 1, MAX_MESSAGE_SIZE))
        .unwrap_or(zerolog::framing::DEFAULT_MAX_SIZE);
    let topic_template = s
        .field(ctx, "topic_template")
        .and_then(|f| ctx.parsed(&f, |t| TopicTemplate::parse(t).map_err(|e| e.to_string())))
        .unwrap_or_default();
    let hwm = hwm(ctx, s);
    let max_connections = s
        .field(ctx, "max_connections")
        .and_then(|f| ctx.int_in(&f, 1, 1 << 20))
        .unwrap_or(zerolog::forwarder::DEFAULT_MAX_CONNECTIONS);
    let idle_timeout = s
        .field(ctx, "idle_timeout")
        .and_then(|f| ctx.duration(&f))
        .filter(|d| !d.is_zero());
    let udp_recv_buffer = s
        .field(ctx, "udp_recv_buffer")
        .and_then(|f| ctx.int_in(&f, 4096, 1 << 30));
    let allow = allow_list(ctx, s);
    let settings = settings_section(ctx, s);
    ForwarderSection {
        allow,
        max_connections,
        idle_timeout,
        udp_recv_buffer,
        tcp,
        udp,
        publish,
        monitor,
        framing,
        max_message_size,
        topic_template,
        hwm,
        settings,
    }
}

/// Reads `name` and renames the section after it when it is valid.
fn section_name(
    ctx: &mut Ctx<'_>,
    s: &mut Section<'_>,
    kind: &'static str,
    names: &mut Vec<Name>,
) -> Option<String> {
    let f = s.require(ctx, "name", &format!("name = \"my-{kind}\""))?;
    let name = ctx.parsed(&f, parse_name)?;
    s.path = format!("{kind} \"{name}\"");
    s.what = s.path.clone();
    names.push(Name {
        name: name.clone(),
        kind,
        key: s.key_path("name"),
        line: f.line,
    });
    Some(name)
}

fn receiver_section(
    ctx: &mut Ctx<'_>,
    mut s: Section<'_>,
    daemon: &DaemonSection,
    default_connect: Option<&Endpoint>,
    names: &mut Vec<Name>,
    binds: &mut Vec<Bind>,
) -> ReceiverSection {
    let name = section_name(ctx, &mut s, "receiver", names);
    s.check_keys(ctx, &[RECEIVER_KEYS, SETTINGS_KEYS]);
    let topics = s
        .field(ctx, "topic")
        .and_then(|f| ctx.strings(&f, true))
        .map(|t| t.into_iter().map(|(t, _)| t).collect())
        .unwrap_or_default();
    let connect = match s.field(ctx, "connect") {
        Some(f) => {
            let list = ctx.strings(&f, true).unwrap_or_default();
            if list.is_empty() && f.item.is_array() {
                ctx.error(
                    f.line,
                    &f.key,
                    "the list is empty: the receiver would receive nothing",
                );
            }
            list.into_iter()
                .filter_map(|(text, line)| match Endpoint::parse_connect(&text) {
                    Ok(ep) => Some(ep),
                    Err(message) => {
                        ctx.error(line, &f.key, message.to_string());
                        None
                    }
                })
                .collect()
        }
        None => match default_connect {
            Some(ep) => vec![ep.clone()],
            None => {
                ctx.error(
                    s.line,
                    s.key_path("connect"),
                    "no connect endpoints and no [forwarder] to default to: add connect = [\"tcp://HOST:6001\"] or a [forwarder] section",
                );
                Vec::new()
            }
        },
    };
    // Only a topology with errors, never returned, keeps the placeholder.
    let placeholder = || Endpoint::Ipc(PathBuf::new());
    let output = match s.field(ctx, "output") {
        Some(_) => bind_endpoint(ctx, &s, "output", binds).unwrap_or_else(placeholder),
        None => match &name {
            Some(name) => {
                let path = daemon.runtime_dir.join(format!("{name}.sock"));
                let text = format!("ipc://{}", path.display());
                match Endpoint::parse_bind(&text) {
                    Ok(ep) => {
                        binds.push(Bind::endpoint(&ep, s.key_path("output"), s.line, true));
                        ep
                    }
                    Err(message) => {
                        ctx.error(
                            s.line,
                            s.key_path("output"),
                            format!(
                                "default output: {message}; set output or a shorter runtime_dir"
                            ),
                        );
                        placeholder()
                    }
                }
            }
            None => placeholder(),
        },
    };
    let hwm = hwm(ctx, &s);
    let allow = allow_list(ctx, &s);
    let settings = settings_section(ctx, &s);
    ReceiverSection {
        allow,
        name: name.unwrap_or_default(),
        topics,
        connect,
        output,
        hwm,
        settings,
    }
}

/// A worker section, and the receiver it names (name, key, line) when that is a string.
fn worker_section(
    ctx: &mut Ctx<'_>,
    mut s: Section<'_>,
    names: &mut Vec<Name>,
) -> (WorkerSection, Option<(String, String, usize)>) {
    let name = section_name(ctx, &mut s, "worker", names);
    s.check_keys(ctx, &[WORKER_KEYS, SETTINGS_KEYS]);
    let settings = settings_section(ctx, &s);
    let receiver = s
        .require(ctx, "receiver", "receiver = \"all\"")
        .and_then(|f| ctx.string(&f).map(|r| (r, f.key, f.line)));
    let kind_field = s.field(ctx, "type");
    let kind = match &kind_field {
        Some(f) => ctx.parsed(f, parse_kind),
        None => Some(WorkerKind::Stdin),
    };
    let mut framing = OutputFraming::default();
    if let Some(f) = s.field(ctx, "framing") {
        if kind == Some(WorkerKind::Zmq) {
            ctx.error(
                f.line,
                &f.key,
                "framing applies to stdin workers only; a zmq worker reads messages from ZeroMQ",
            );
        } else if let Some(v) = ctx.parsed(&f, OutputFraming::from_str) {
            framing = v;
        }
    }
    let mut command = Vec::new();
    if let Some(f) = s.require(
        ctx,
        "command",
        "command = [\"/usr/local/bin/my-worker\", \"--verbose\"]",
    ) {
        if let Some(text) = f.item.as_str() {
            let words: Vec<String> = text
                .split_whitespace()
                .map(|w| format!("\"{w}\""))
                .collect();
            ctx.error(
                f.line,
                &f.key,
                format!(
                    "expected a list of strings, found a string; write command = [{}]",
                    words.join(", ")
                ),
            );
        } else if let Some(list) = ctx.strings(&f, false) {
            command = list.into_iter().map(|(w, _)| w).collect();
            if let Some(kind) = kind {
                if let Err(message) = check_command(&command, kind, settings.cwd.as_deref()) {
                    ctx.error(f.line, &f.key, message);
                }
            }
        }
    }
    let numprocs = s
        .field(ctx, "numprocs")
        .and_then(|f| ctx.int_in(&f, 1, MAX_NUMPROCS))
        .unwrap_or(1);
    let worker = WorkerSection {
        name: name.unwrap_or_default(),
        receiver: receiver.as_ref().map(|r| r.0.clone()).unwrap_or_default(),
        kind: kind.unwrap_or_default(),
        command,
        numprocs,
        framing,
        settings,
    };
    (worker, receiver)
}

/// Checks that a worker's command can run: a built-in (stdin workers) or an existing program.
fn check_command(command: &[String], kind: WorkerKind, cwd: Option<&Path>) -> Result<(), String> {
    let Some((program, args)) = command.split_first() else {
        return Err("the command is empty; give at least the program".into());
    };
    if program.is_empty() {
        return Err("the program name is empty".into());
    }
    if kind == WorkerKind::Stdin && matches!(program.as_str(), "stdout" | "null" | "file") {
        // The built-ins, checked by the same code that runs them.
        use zerolog::worker::WorkerSpec;
        let spec = WorkerSpec::resolve(program, args, None).map_err(|e| e.to_string())?;
        if let WorkerSpec::File(path) | WorkerSpec::Null(Some(path)) = &spec {
            let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
            if let Some(dir) = dir.filter(|d| path.is_absolute() && !d.is_dir()) {
                return Err(format!(
                    "the directory of the output file, {}, does not exist",
                    dir.display()
                ));
            }
        }
        return Ok(());
    }
    let relative = program.contains('/') && Path::new(program).is_relative();
    let found = match cwd {
        Some(dir) if relative => {
            zerolog::worker::find_program(&dir.join(program).to_string_lossy(), None)
        }
        _ => zerolog::worker::find_program(program, None),
    };
    found.map(|_| ()).map_err(|e| {
        let builtins = if kind == WorkerKind::Stdin {
            " (built-in workers: stdout, null [REPORT], file PATH)"
        } else {
            ""
        };
        format!("{e}{builtins}")
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn parse(text: &str) -> Result<Topology, ConfigErrors> {
        Topology::parse(text, Path::new("test.toml"))
    }

    fn errors(text: &str) -> Vec<ConfigError> {
        match parse(text) {
            Ok(t) => panic!("expected errors, got {t:#?}"),
            Err(e) => e.0,
        }
    }

    /// Asserts that an error on `line` for `key` contains `needle`.
    fn has(errors: &[ConfigError], line: usize, key: &str, needle: &str) {
        assert!(
            errors
                .iter()
                .any(|e| e.line == line && e.key == key && e.message.contains(needle)),
            "no error at line {line} for {key} containing {needle:?}; errors:\n{}",
            ConfigErrors(errors.to_vec())
        );
    }

    fn sh() -> String {
        if Path::new("/bin/sh").exists() {
            "/bin/sh".into()
        } else {
            "sh".into()
        }
    }

    #[test]
    fn full_topology() {
        let shell = sh();
        let text = format!(
            r#"
[zerologd]
runtime_dir = "/tmp/zl-test"
control_socket = "/tmp/zl-test/ctl.sock"

[forwarder]
tcp = ["127.0.0.1:7000", "[::1]:7000"]
udp = ["0.0.0.0:7514"]
publish = "tcp://*:7001"
monitor = "ipc:///tmp/zl-test/monitor.sock"
framing = "octet-counted"
max_message_size = 131072
topic_template = "{{hostname}}.{{app}}"
hwm = 500
max_connections = 100
idle_timeout = "5m"
udp_recv_buffer = 4194304
allow = ["192.0.2.0/24", "198.51.100.7"]
restart = "on-failure"
stop_signal = "INT"
stop_timeout = "2s 500ms"
restart_backoff = "250ms"
restart_backoff_max = 30
max_restarts = 3
min_uptime = 1.5
env = {{ LANG = "C", TZ = "UTC" }}
cwd = "/"

[[receiver]]
name = "nginx"
topic = "nginx"
output = "tcp://127.0.0.1:7200"
hwm = 20
allow = ["10.0.0.0/8"]

[[receiver]]
name = "rest"
topic = ["", "kernel"]
connect = ["otherhost:6001", "tcp://[::1]:6001", "ipc:///tmp/zl-test/pub.sock"]

[[worker]]
name = "db"
receiver = "nginx"
command = ["{shell}", "-c", "cat > /dev/null"]
numprocs = 4
framing = "nul"
stop_signal = "SIGUSR1"

[[worker]]
name = "py"
receiver = "rest"
type = "zmq"
command = ["{shell}", "-c", "exec my-worker {{backend}}"]
restart = "never"

[[worker]]
name = "archive"
receiver = "rest"
command = ["file", "/tmp/archive.log"]
"#
        );
        let t = parse(&text).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(t.source, PathBuf::from("test.toml"));
        assert_eq!(
            t.daemon,
            DaemonSection {
                runtime_dir: "/tmp/zl-test".into(),
                control_socket: "/tmp/zl-test/ctl.sock".into(),
                zerolog_bin: None,
                metrics: None,
            }
        );
        let f = t.forwarder.as_ref().expect("forwarder");
        let expected = ForwarderSection {
            tcp: vec![
                "127.0.0.1:7000".parse().unwrap(),
                "[::1]:7000".parse().unwrap(),
            ],
            udp: vec!["0.0.0.0:7514".parse().unwrap()],
            publish: ep("tcp://*:7001"),
            monitor: Some(ep("ipc:///tmp/zl-test/monitor.sock")),
            framing: Framing::OctetCounted,
            max_message_size: 131072,
            topic_template: TopicTemplate::parse("{hostname}.{app}").unwrap(),
            hwm: 500,
            max_connections: 100,
            idle_timeout: Some(Duration::from_secs(300)),
            udp_recv_buffer: Some(4_194_304),
            allow: vec![
                "192.0.2.0/24".parse().unwrap(),
                "198.51.100.7/32".parse().unwrap(),
            ],
            settings: ProcessSettings {
                restart: RestartPolicy::OnFailure,
                stop_signal: Signal::SIGINT,
                stop_timeout: Duration::from_millis(2500),
                backoff: Duration::from_millis(250),
                backoff_max: Duration::from_secs(30),
                max_restarts: 3,
                min_uptime: Duration::from_millis(1500),
                env: [("LANG", "C"), ("TZ", "UTC")]
                    .into_iter()
                    .map(|(k, v)| (k.to_owned(), v.to_owned()))
                    .collect(),
                cwd: Some("/".into()),
                user: None,
                group: None,
            },
        };
        assert_eq!(*f, expected);
        assert_eq!(
            t.receivers,
            vec![
                ReceiverSection {
                    name: "nginx".into(),
                    topics: vec!["nginx".into()],
                    connect: vec![ep("tcp://127.0.0.1:7001")],
                    output: ep("tcp://127.0.0.1:7200"),
                    hwm: 20,
                    allow: vec!["10.0.0.0/8".parse().unwrap()],
                    settings: ProcessSettings::default(),
                },
                ReceiverSection {
                    name: "rest".into(),
                    topics: vec!["".into(), "kernel".into()],
                    connect: vec![
                        ep("tcp://otherhost:6001"),
                        ep("tcp://[::1]:6001"),
                        ep("ipc:///tmp/zl-test/pub.sock")
                    ],
                    output: ep("ipc:///tmp/zl-test/rest.sock"),
                    hwm: zerolog::defaults::HWM,
                    allow: vec![],
                    settings: ProcessSettings::default(),
                },
            ]
        );
        assert_eq!(
            t.workers,
            vec![
                WorkerSection {
                    name: "db".into(),
                    receiver: "nginx".into(),
                    kind: WorkerKind::Stdin,
                    command: vec![sh(), "-c".into(), "cat > /dev/null".into()],
                    numprocs: 4,
                    framing: OutputFraming::Nul,
                    settings: ProcessSettings {
                        stop_signal: Signal::SIGUSR1,
                        ..ProcessSettings::default()
                    },
                },
                WorkerSection {
                    name: "py".into(),
                    receiver: "rest".into(),
                    kind: WorkerKind::Zmq,
                    command: vec![sh(), "-c".into(), "exec my-worker {backend}".into()],
                    numprocs: 1,
                    framing: OutputFraming::Lf,
                    settings: ProcessSettings {
                        restart: RestartPolicy::Never,
                        ..ProcessSettings::default()
                    },
                },
                WorkerSection {
                    name: "archive".into(),
                    receiver: "rest".into(),
                    kind: WorkerKind::Stdin,
                    command: vec!["file".into(), "/tmp/archive.log".into()],
                    numprocs: 1,
                    framing: OutputFraming::Lf,
                    settings: ProcessSettings::default(),
                },
            ]
        );
    }

    #[test]
    fn embedded_default_parses() {
        let t = Topology::embedded_default();
        assert_eq!(t.source, PathBuf::from(EMBEDDED_SOURCE));
        let runtime_dir = default_runtime_dir();
        assert_eq!(t.daemon.runtime_dir, runtime_dir);
        assert_eq!(t.daemon.control_socket, runtime_dir.join("zerologd.sock"));
        let f = t.forwarder.expect("forwarder");
        assert_eq!(f.tcp, vec![SocketAddr::from(([127, 0, 0, 1], 6000))]);
        assert!(f.udp.is_empty());
        assert_eq!(f.publish, ep("tcp://127.0.0.1:6001"));
        assert_eq!(f.monitor, None);
        assert_eq!(f.framing, Framing::Auto);
        assert_eq!(f.max_message_size, zerolog::framing::DEFAULT_MAX_SIZE);
        assert_eq!(f.topic_template, TopicTemplate::default());
        assert_eq!(f.hwm, zerolog::defaults::HWM);
        assert_eq!(f.settings, ProcessSettings::default());
        assert_eq!(t.receivers.len(), 1);
        let r = &t.receivers[0];
        assert_eq!(r.name, "all");
        assert!(r.topics.is_empty());
        assert_eq!(r.connect, vec![ep("tcp://127.0.0.1:6001")]);
        assert_eq!(
            r.output,
            ep(&format!("ipc://{}/all.sock", runtime_dir.display()))
        );
        assert_eq!(t.workers.len(), 1);
        let w = &t.workers[0];
        assert_eq!(w.name, "stdout");
        assert_eq!(w.receiver, "all");
        assert_eq!(w.kind, WorkerKind::Stdin);
        assert_eq!(w.command, vec!["stdout".to_owned()]);
        assert_eq!(w.numprocs, 1);
    }

    #[test]
    fn example_file_parses() {
        let t = Topology::parse(
            include_str!("../zerolog.toml.example"),
            Path::new("zerolog.toml.example"),
        )
        .unwrap_or_else(|e| panic!("zerolog.toml.example is invalid:\n{e}"));
        assert!(t.forwarder.is_some());
        assert_eq!(t.receivers.len(), 2);
        assert!(t.workers.len() >= 2);
    }

    #[test]
    fn every_mistake_is_reported_with_its_line() {
        let text = r#"[zerologd]
runtime_dir = "/tmp/zl-test"

[forwarder]
tcp = ["127.0.0.1:7000", "not-an-address"]
publish = "tcp://127.0.0.1:7000"
hwm = "lots"
stop_signal = "SIGSTOP"
stop_timeout = "ten seconds"
colour = "blue"

[[receiver]]
name = "web"
topic = 5
output = "tcp://0.0.0.0:7001"

[[receiver]]
name = "web"
output = "tcp://127.0.0.1:7001"

[[worker]]
name = "db"
receiver = "nope"
command = ["no-such-program-xyz", "--flag"]
numproc = 3

[[worker]]
name = "bad name"
receiver = "web"
command = "stdout"

[[worker]]
name = "zmq"
receiver = "web"
type = "zmq"
framing = "lf"
command = ["stdout"]
numprocs = 0
restart = "sometimes"
"#;
        let errs = errors(text);
        has(
            &errs,
            5,
            "forwarder.tcp",
            "invalid address \"not-an-address\"",
        );
        has(
            &errs,
            6,
            "forwarder.publish",
            "TCP port 7000 is already bound by forwarder.tcp (line 5)",
        );
        has(
            &errs,
            7,
            "forwarder.hwm",
            "expected an integer, found a string",
        );
        has(
            &errs,
            8,
            "forwarder.stop_signal",
            "unknown stop signal \"SIGSTOP\"",
        );
        has(
            &errs,
            9,
            "forwarder.stop_timeout",
            "invalid duration \"ten seconds\"",
        );
        has(
            &errs,
            10,
            "forwarder.colour",
            "unknown key `colour` in [forwarder]",
        );
        has(
            &errs,
            14,
            "receiver \"web\".topic",
            "expected a string or a list of strings, found an integer",
        );
        has(
            &errs,
            18,
            "receiver \"web\".name",
            "duplicate name \"web\": already used by the receiver on line 13",
        );
        has(
            &errs,
            19,
            "receiver \"web\".output",
            "TCP port 7001 is already bound by receiver \"web\".output (line 15)",
        );
        has(
            &errs,
            23,
            "worker \"db\".receiver",
            "no receiver named \"nope\"; receivers: web",
        );
        has(
            &errs,
            24,
            "worker \"db\".command",
            "worker program no-such-program-xyz not found on PATH",
        );
        has(
            &errs,
            25,
            "worker \"db\".numproc",
            "unknown key `numproc` in worker \"db\"; did you mean `numprocs`?",
        );
        has(&errs, 28, "worker[1].name", "invalid name \"bad name\"");
        has(
            &errs,
            30,
            "worker[1].command",
            "expected a list of strings, found a string; write command = [\"stdout\"]",
        );
        has(&errs, 36, "worker \"zmq\".framing", "stdin workers only");
        has(
            &errs,
            37,
            "worker \"zmq\".command",
            "worker program stdout not found",
        );
        has(
            &errs,
            38,
            "worker \"zmq\".numprocs",
            "must be between 1 and 1024, found 0",
        );
        has(
            &errs,
            39,
            "worker \"zmq\".restart",
            "unknown restart policy \"sometimes\"",
        );
        assert_eq!(errs.len(), 18, "{}", ConfigErrors(errs.clone()));
        // In line order, each rendered as file:line: key: message.
        assert!(errs.windows(2).all(|w| w[0].line <= w[1].line));
        assert_eq!(
            errs[0].to_string(),
            "test.toml:5: forwarder.tcp: invalid address \"not-an-address\": expected IP:PORT, e.g. 127.0.0.1:6000 or [::1]:6000"
        );
    }

    #[test]
    fn more_mistakes() {
        let text = r#"runtime_dir = "/tmp"
[zerologd]
runtime_dir = "relative/dir"
zerolog_bin = "/no/such/zerolog"

[forwarder]
udp = ["127.0.0.1:7514"]
monitor = "tcp://127.0.0.1:7514"
framing = "crlf"
topic_template = "{nope}"
max_message_size = 0
restart_backoff = "20s"
env = { A = 1 }
cwd = "/no/such/dir"
user = "no-such-user-xyz"
group = "no-such-group-xyz"

[receiver]
name = "x"
"#;
        let errs = errors(text);
        has(
            &errs,
            1,
            "runtime_dir",
            "unknown section `runtime_dir`; `runtime_dir` belongs in [zerologd]",
        );
        has(&errs, 3, "zerologd.runtime_dir", "must be an absolute path");
        has(
            &errs,
            4,
            "zerologd.zerolog_bin",
            "no executable zerolog binary",
        );
        has(&errs, 9, "forwarder.framing", "unknown framing 'crlf'");
        has(
            &errs,
            10,
            "forwarder.topic_template",
            "unknown field '{nope}'",
        );
        has(
            &errs,
            11,
            "forwarder.max_message_size",
            "must be between 1 and 1073741824",
        );
        has(
            &errs,
            12,
            "forwarder.restart_backoff",
            "longer than restart_backoff_max",
        );
        has(
            &errs,
            13,
            "forwarder.env.A",
            "expected a string, found an integer",
        );
        has(&errs, 14, "forwarder.cwd", "no directory");
        has(&errs, 15, "forwarder.user", "no user named");
        has(&errs, 16, "forwarder.group", "no group named");
        has(
            &errs,
            18,
            "receiver",
            "write [[receiver]] (double brackets)",
        );
        // UDP and TCP ports are separate namespaces.
        assert!(
            !errs.iter().any(|e| e.key == "forwarder.monitor"),
            "{}",
            ConfigErrors(errs.clone())
        );
        assert_eq!(errs.len(), 12, "{}", ConfigErrors(errs.clone()));
    }

    #[test]
    fn wildcard_addresses_clash_with_any_address() {
        let text = r#"[zerologd]
runtime_dir = "/tmp/zl-test"
[forwarder]
tcp = ["0.0.0.0:7000", "[::]:7002"]
publish = "tcp://127.0.0.1:7000"
monitor = "tcp://192.0.2.1:7002"
[[receiver]]
name = "a"
[[receiver]]
name = "b"
output = "tcp://127.0.0.2:7100"
[[receiver]]
name = "c"
output = "tcp://127.0.0.3:7100"
[[receiver]]
name = "d"
output = "ipc:///tmp/zl-test/a.sock"
"#;
        let errs = errors(text);
        has(
            &errs,
            5,
            "forwarder.publish",
            "TCP port 7000 is already bound by forwarder.tcp (line 4)",
        );
        has(
            &errs,
            6,
            "forwarder.monitor",
            "TCP port 7002 is already bound by forwarder.tcp (line 4)",
        );
        has(
            &errs,
            17,
            "receiver \"d\".output",
            "ipc path /tmp/zl-test/a.sock is already bound by receiver \"a\".output (line 7)",
        );
        // Different specific addresses on the same port do not clash.
        assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
    }

    #[test]
    fn syntax_error_has_its_line() {
        let errs =
            errors("[forwarder]\ntcp = [\"127.0.0.1:6000\"]\npublish = \"tcp://x:1\nhwm = 3\n");
        assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
        assert_eq!(errs[0].line, 3);
        assert_eq!(errs[0].key, "syntax error");
        assert!(!errs[0].message.is_empty());

        let errs = errors("[[worker]]\nname = \"a\"\nname = \"b\"\n");
        assert_eq!(errs.len(), 1);
        assert_eq!(errs[0].line, 3, "{}", errs[0]);
    }

    #[test]
    fn forwarderless_topology_connects_to_remote_forwarders() {
        let text = r#"
[zerologd]
runtime_dir = "/tmp/zl-test"

[[receiver]]
name = "edge"
connect = ["log1.example.com:6001", "tcp://10.0.0.2:6001"]

[[receiver]]
name = "orphan"

[[worker]]
name = "out"
receiver = "edge"
command = ["null"]
"#;
        let errs = errors(text);
        has(&errs, 9, "receiver \"orphan\".connect", "no [forwarder]");
        assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));

        let valid = text.replace(
            "name = \"orphan\"",
            "name = \"orphan\"\nconnect = \"log2:6001\"",
        );
        let t = parse(&valid).unwrap_or_else(|e| panic!("{e}"));
        assert!(t.forwarder.is_none());
        assert_eq!(
            t.receivers[0].connect,
            vec![ep("tcp://log1.example.com:6001"), ep("tcp://10.0.0.2:6001")]
        );
        assert_eq!(t.receivers[1].connect, vec![ep("tcp://log2:6001")]);
        assert_eq!(t.receivers[0].output, ep("ipc:///tmp/zl-test/edge.sock"));
    }

    #[test]
    fn commands_are_checked() {
        let check = |cmd: &[&str], kind, cwd: Option<&str>| {
            let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
            check_command(&cmd, kind, cwd.map(Path::new))
        };
        assert!(check(&["stdout"], WorkerKind::Stdin, None).is_ok());
        assert!(check(&["null"], WorkerKind::Stdin, None).is_ok());
        assert!(check(&["stdout", "x"], WorkerKind::Stdin, None).is_err());
        assert!(check(&["file"], WorkerKind::Stdin, None).is_err());
        assert!(check(&["file", "/tmp/x.log"], WorkerKind::Stdin, None).is_ok());
        assert!(check(&["file", "/no/such/dir/x.log"], WorkerKind::Stdin, None).is_err());
        assert!(check(&["sh", "-c", "true"], WorkerKind::Stdin, None).is_ok());
        assert!(check(&["sh", "{backend}"], WorkerKind::Zmq, None).is_ok());
        assert!(check(&["no-such-program-xyz"], WorkerKind::Zmq, None).is_err());
        assert!(check(&[], WorkerKind::Stdin, None).is_err());
        // A relative path is resolved against the worker's cwd.
        assert!(check(&["bin/sh"], WorkerKind::Stdin, Some("/")).is_ok());
        assert!(check(&["./sh"], WorkerKind::Stdin, Some("/bin")).is_ok());
        assert!(check(&["./no-such-program-xyz"], WorkerKind::Stdin, Some("/bin")).is_err());
    }

    #[test]
    fn read_error_has_line_zero() {
        let e = Topology::load(Path::new("/no/such/zerolog.toml")).unwrap_err();
        assert_eq!(e.0.len(), 1);
        assert_eq!(e.0[0].line, 0);
        assert!(
            e.to_string()
                .starts_with("/no/such/zerolog.toml: cannot read"),
            "{e}"
        );
    }

    #[test]
    fn suggestions() {
        assert_eq!(
            suggest("numproc", WORKER_KEYS.iter().copied()),
            Some("numprocs")
        );
        assert_eq!(
            suggest("recevier", SECTIONS.iter().copied()),
            Some("receiver")
        );
        assert_eq!(suggest("zzz", SECTIONS.iter().copied()), None);
        assert_eq!(edit_distance("kitten", "sitting"), 3);
    }
}
