//! Each section of the file, read into its schema type: the keys it allows, their defaults
//! and their checks.

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use toml_edit::{Item, TableLike, Value};

use zerolog::delivery::Delivery;
use zerolog::endpoint::{Endpoint, MAX_IPC_PATH};
use zerolog::forwarder::ForwarderConfig;
use zerolog::framing::Framing;
use zerolog::journal::{FsyncPolicy, JournalConfig};
use zerolog::receiver::ReceiverConfig;
use zerolog::syslog::TopicTemplate;
use zerolog::worker::OutputFraming;

use super::checks::*;
use super::diagnostics::*;
use super::*;

// ---------------------------------------------------------------------------------------------
// Keys

pub(super) const SECTIONS: &[&str] = &["zerologd", "forwarder", "receiver", "worker"];
pub(super) const ZEROLOGD_KEYS: &[&str] = &[
    "runtime_dir",
    "control_socket",
    "zerolog_bin",
    "metrics",
    "allow_empty",
    "state_dir",
];
pub(super) const FORWARDER_KEYS: &[&str] = &[
    "tcp",
    "udp",
    "publish",
    "monitor",
    "framing",
    "max_message_size",
    "topic_template",
    "hwm",
    "queue_bytes",
    "max_connections",
    "idle_timeout",
    "udp_recv_buffer",
    "allow",
    "curve_secret_key",
    "curve_clients",
    "relp",
    "tls",
    "relp_tls",
    "tls_cert",
    "tls_key",
    "tls_ca",
    "tls_permitted_peers",
    "journal",
    "journal_endpoint",
    "journal_max_size",
    "fsync",
    "fsync_interval",
];
pub(super) const RECEIVER_KEYS: &[&str] = &[
    "name",
    "topic",
    "connect",
    "output",
    "hwm",
    "queue_bytes",
    "max_message_size",
    "allow",
    "curve_secret_key",
    "curve_server_key",
    "curve_workers",
    "external_workers",
    "delivery",
];
pub(super) const WORKER_KEYS: &[&str] = &[
    "name",
    "receiver",
    "type",
    "command",
    "numprocs",
    "framing",
    "with_seq",
    "curve_secret_key",
    "curve_server_key",
];
pub(super) const SETTINGS_KEYS: &[&str] = &[
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
pub(super) fn home_of(key: &str) -> Option<&'static str> {
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

pub(super) const MAX_MESSAGE_SIZE: i64 = 1 << 30;
pub(super) const MAX_NUMPROCS: i64 = 1024;

// ---------------------------------------------------------------------------------------------
// Sections

pub(super) fn build(ctx: &mut Ctx<'_>, root: &toml_edit::Table, source: &Path) -> Topology {
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
    let forwarder = single_table(ctx, &top, "forwarder")
        .map(|s| forwarder_section(ctx, &s, &daemon, &mut binds));

    let default_connect = forwarder
        .as_ref()
        .map(|f| f.config.publish.connect_target());
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
            let receiver = receivers.iter().find(|r| r.name == name);
            super::security::check_worker_curve(ctx, &worker, receiver, line);
        }
        workers.push(worker);
    }

    check_names(ctx, &names);
    check_binds(ctx, &binds);
    check_receivers_have_workers(ctx, &receivers, &workers, &names);
    if forwarder.is_none() && receivers.is_empty() && workers.is_empty() && !daemon.allow_empty {
        ctx.error(
            1,
            "",
            "the topology runs nothing: add a [forwarder], [[receiver]] or [[worker]] section (or, to run zerologd with nothing on purpose, [zerologd] allow_empty = true)",
        );
    }

    Topology {
        source: source.to_path_buf(),
        daemon,
        forwarder,
        receivers,
        workers,
    }
}

/// `[name]`: a table, or nothing.
pub(super) fn single_table<'d>(
    ctx: &mut Ctx<'_>,
    top: &Section<'d>,
    name: &str,
) -> Option<Section<'d>> {
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
pub(super) fn table_array<'d>(
    ctx: &mut Ctx<'_>,
    top: &Section<'d>,
    name: &str,
) -> Vec<Section<'d>> {
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

pub(super) fn daemon_section(
    ctx: &mut Ctx<'_>,
    top: &Section<'_>,
    binds: &mut Vec<Bind>,
) -> DaemonSection {
    let section = single_table(ctx, top, "zerologd");
    let mut runtime_dir = None;
    let mut control_socket = None;
    let mut zerolog_bin = None;
    let mut metrics = None;
    let mut allow_empty = false;
    let mut socket_line = None;
    let mut state_dir = None;
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
        if let Some(f) = s.field(ctx, "state_dir") {
            state_dir = ctx.parsed(&f, absolute_path);
        }
        if let Some(f) = s.field(ctx, "allow_empty") {
            allow_empty = ctx.boolean(&f).unwrap_or(false);
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
        allow_empty,
        state_dir: state_dir.unwrap_or_else(default_state_dir),
    }
}

pub(super) fn settings_section(ctx: &mut Ctx<'_>, s: &Section<'_>) -> ProcessSettings {
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
    backoff(ctx, s, &mut p);
    if let Some(f) = s.field(ctx, "max_restarts") {
        p.max_restarts = ctx
            .int_in(&f, 0, i64::from(u32::MAX))
            .unwrap_or(p.max_restarts);
    }
    if let Some(f) = s.field(ctx, "min_uptime") {
        p.min_uptime = ctx.duration(&f).unwrap_or(p.min_uptime);
    }
    if let Some(f) = s.field(ctx, "env") {
        p.env = env_table(ctx, &f);
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

/// Keys `restart_backoff` and `restart_backoff_max`, checked against each other.
fn backoff(ctx: &mut Ctx<'_>, s: &Section<'_>, p: &mut ProcessSettings) {
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
}

/// Key `env`: a table of strings, every name and value checked.
fn env_table(ctx: &mut Ctx<'_>, f: &Field<'_>) -> BTreeMap<String, String> {
    let mut env = BTreeMap::new();
    let Some(table) = f.item.as_table_like() else {
        ctx.wrong_type(f, "a table of strings, e.g. env = { LANG = \"C\" }");
        return env;
    };
    let section =
        Section::new(ctx, table, item_span(f.item), f.line).named(f.key.clone(), f.key.clone());
    for (name, _) in table.iter() {
        let Some(v) = section.field(ctx, name) else {
            continue;
        };
        if name.is_empty() || name.contains('=') || name.contains('\0') {
            let message = format!("invalid environment variable name \"{name}\"");
            ctx.error(v.line, &v.key, message);
            continue;
        }
        if let Some(value) = ctx.string(&v) {
            if value.contains('\0') {
                ctx.error(v.line, &v.key, "the value must not contain a NUL byte");
            } else {
                env.insert(name.to_owned(), value);
            }
        }
    }
    env
}

/// Key `hwm`, when given and valid.
pub(super) fn hwm(ctx: &mut Ctx<'_>, s: &Section<'_>) -> Option<i32> {
    s.field(ctx, "hwm")
        .and_then(|f| ctx.int_in(&f, 1, i64::from(i32::MAX)))
}

/// Key `max_message_size`, when given and valid.
fn max_message_size(ctx: &mut Ctx<'_>, s: &Section<'_>) -> Option<usize> {
    s.field(ctx, "max_message_size")
        .and_then(|f| ctx.int_in(&f, 1, MAX_MESSAGE_SIZE))
}

/// Key `queue_bytes`, when given and valid.
fn queue_bytes(ctx: &mut Ctx<'_>, s: &Section<'_>) -> Option<usize> {
    let range = zerolog::queue::QUEUE_BYTES_RANGE;
    let (low, high) = (*range.start() as i64, *range.end() as i64);
    s.field(ctx, "queue_bytes")
        .and_then(|f| ctx.int_in(&f, low, high))
}

pub(super) fn socket_addrs(
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
pub(super) fn allow_list(ctx: &mut Ctx<'_>, s: &Section<'_>) -> Vec<ipnet::IpNet> {
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

pub(super) fn bind_endpoint(
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

/// `[forwarder]`: each key given replaces the forwarder's own default.
pub(super) fn forwarder_section(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    daemon: &DaemonSection,
    binds: &mut Vec<Bind>,
) -> ForwarderSection {
    s.check_keys(ctx, &[FORWARDER_KEYS, SETTINGS_KEYS]);
    let mut c = ForwarderConfig::default();
    forwarder_inputs(ctx, s, binds, &mut c);
    match bind_endpoint(ctx, s, "publish", binds) {
        Some(ep) => c.publish = ep,
        None if s.field(ctx, "publish").is_none() => {
            let key = s.key_path("publish");
            binds.push(Bind::endpoint(&c.publish, key, s.line, false));
        }
        None => {}
    }
    c.monitor = bind_endpoint(ctx, s, "monitor", binds);
    if let Some(f) = s.field(ctx, "framing") {
        c.framing = ctx.parsed(&f, Framing::from_str).unwrap_or(c.framing);
    }
    c.max_message_size = max_message_size(ctx, s).unwrap_or(c.max_message_size);
    if let Some(f) = s.field(ctx, "topic_template") {
        let parse = |t: &str| TopicTemplate::parse(t).map_err(|e| e.to_string());
        c.topic_template = ctx.parsed(&f, parse).unwrap_or(c.topic_template);
    }
    c.send_hwm = hwm(ctx, s).unwrap_or(c.send_hwm);
    c.queue_bytes = queue_bytes(ctx, s).unwrap_or(c.queue_bytes);
    if let Some(f) = s.field(ctx, "max_connections") {
        c.max_connections = ctx.int_in(&f, 1, 1 << 20).unwrap_or(c.max_connections);
    }
    if let Some(f) = s.field(ctx, "idle_timeout") {
        c.idle_timeout = ctx.duration(&f).filter(|d| !d.is_zero());
    }
    if let Some(f) = s.field(ctx, "udp_recv_buffer") {
        c.udp_recv_buffer = ctx.int_in(&f, 4096, 1 << 30);
    }
    c.allow = allow_list(ctx, s);
    c.curve = super::security::curve_server(ctx, s);
    let settings = settings_section(ctx, s);
    journal_keys(ctx, s, daemon, binds, &mut c);
    if c.journal.is_some() && settings.user.is_some() && s.field(ctx, "journal_endpoint").is_none()
    {
        let line = s.key_line(ctx, "user");
        ctx.error(
            line,
            s.key_path("journal_endpoint"),
            "the forwarder runs as another user, who cannot bind the default journal endpoint in zerologd's runtime directory: set journal_endpoint = \"tcp://127.0.0.1:6002\" (or journal = false)",
        );
    }
    ForwarderSection {
        config: c,
        settings,
    }
}

/// Keys `journal` (default true), `journal_endpoint` (default `ipc://<runtime_dir>/journal.sock`),
/// `journal_max_size`, `fsync` and `fsync_interval`. The journal lives in
/// `<state_dir>/journal`; its consumers are filled in from the receivers.
fn journal_keys(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    daemon: &DaemonSection,
    binds: &mut Vec<Bind>,
    c: &mut ForwarderConfig,
) {
    let on = s
        .field(ctx, "journal")
        .and_then(|f| ctx.boolean(&f))
        .unwrap_or(true);
    let mut j = JournalConfig {
        dir: daemon.state_dir.join("journal"),
        ..JournalConfig::default()
    };
    if let Some(f) = s.field(ctx, "journal_max_size") {
        j.max_size = ctx
            .int_in(&f, 1 << 20, i64::MAX)
            .unwrap_or(j.max_size as usize) as u64;
    }
    if let Some(f) = s.field(ctx, "fsync") {
        j.fsync = ctx.parsed(&f, parse_fsync).unwrap_or(j.fsync);
    }
    if let Some(f) = s.field(ctx, "fsync_interval") {
        if let Some(d) = ctx.duration(&f).filter(|d| !d.is_zero()) {
            j.fsync_interval_ms = d.as_millis() as u64;
        }
    }
    match bind_endpoint(ctx, s, "journal_endpoint", binds) {
        Some(ep) => c.journal_endpoint = ep,
        None => {
            let path = daemon.runtime_dir.join("journal.sock");
            if let Ok(ep) = Endpoint::parse_bind(&format!("ipc://{}", path.display())) {
                c.journal_endpoint = ep;
            }
        }
    }
    j.segment_size = zerolog::journal::segment_size_for(j.max_size);
    c.journal = on.then_some(j);
}

fn parse_fsync(text: &str) -> Result<FsyncPolicy, String> {
    match text {
        "interval" => Ok(FsyncPolicy::Interval),
        "always" => Ok(FsyncPolicy::Always),
        "never" => Ok(FsyncPolicy::Never),
        other => Err(format!(
            "unknown fsync policy \"{other}\": expected interval, always or never"
        )),
    }
}

/// Keys `tcp` and `udp`: at least one input.
fn forwarder_inputs(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    binds: &mut Vec<Bind>,
    c: &mut ForwarderConfig,
) {
    let tcp_given = s.field(ctx, "tcp").is_some();
    match socket_addrs(ctx, s, "tcp", Proto::Tcp, binds) {
        Some(addrs) => c.tcp = addrs,
        None if tcp_given => c.tcp = Vec::new(),
        None => {
            for addr in &c.tcp {
                binds.push(Bind::socket(Proto::Tcp, *addr, s.key_path("tcp"), s.line));
            }
        }
    }
    c.udp = socket_addrs(ctx, s, "udp", Proto::Udp, binds).unwrap_or_default();
    c.relp = socket_addrs(ctx, s, "relp", Proto::Tcp, binds).unwrap_or_default();
    super::security::tls_inputs(ctx, s, binds, c);
    let empty = |ctx: &mut Ctx<'_>, key: &str| {
        s.field(ctx, key)
            .map(|f| f.item.as_array().is_some_and(|a| a.is_empty()))
    };
    let tcp_empty = empty(ctx, "tcp") == Some(true);
    let others = ["udp", "relp", "tls", "relp_tls"];
    let others_empty = others.iter().all(|k| empty(ctx, k) != Some(false));
    if tcp_empty && others_empty {
        let line = s.key_line(ctx, "tcp");
        ctx.error(
            line,
            s.key_path("tcp"),
            "the forwarder has no inputs: tcp is empty, and so are udp, relp, tls and relp_tls",
        );
    }
}

/// Reads `name` and renames the section after it when it is valid.
pub(super) fn section_name(
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

/// `[[receiver]]`: each key given replaces the receiver's own default; `connect` and `output`
/// default to this host's forwarder and runtime directory.
pub(super) fn receiver_section(
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
        .map(|t| t.into_iter().map(|(t, _)| t.into_bytes()).collect())
        .unwrap_or_default();
    let connect = receiver_connect(ctx, &s, default_connect);
    // Only a topology with errors, never returned, keeps the placeholder.
    let placeholder = || Endpoint::Ipc(PathBuf::new());
    let output = match (s.field(ctx, "output"), &name) {
        (Some(_), _) => bind_endpoint(ctx, &s, "output", binds).unwrap_or_else(placeholder),
        (None, Some(name)) => {
            default_output(ctx, &s, daemon, name, binds).unwrap_or_else(placeholder)
        }
        (None, None) => placeholder(),
    };
    let defaults = ReceiverConfig::default();
    let (curve, curve_output) = super::security::receiver_curve(ctx, &s, &output);
    let c = ReceiverConfig {
        topics,
        connect,
        output,
        hwm: hwm(ctx, &s).unwrap_or(defaults.hwm),
        queue_bytes: queue_bytes(ctx, &s).unwrap_or(defaults.queue_bytes),
        allow: allow_list(ctx, &s),
        curve,
        curve_output,
        ..defaults
    };
    let external_workers = s
        .field(ctx, "external_workers")
        .and_then(|f| ctx.boolean(&f))
        .unwrap_or(false);
    let max_message_size = max_message_size(ctx, &s);
    let delivery = s
        .field(ctx, "delivery")
        .and_then(|f| ctx.parsed(&f, |t: &str| t.parse::<Delivery>()));
    let c = ReceiverConfig {
        group: name.clone().unwrap_or_default(),
        ..c
    };
    let settings = settings_section(ctx, &s);
    ReceiverSection {
        name: name.unwrap_or_default(),
        config: c,
        max_message_size,
        external_workers,
        delivery,
        settings,
    }
}

/// Key `connect`, else the local forwarder.
fn receiver_connect(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    default_connect: Option<&Endpoint>,
) -> Vec<Endpoint> {
    let Some(f) = s.field(ctx, "connect") else {
        if let Some(ep) = default_connect {
            return vec![ep.clone()];
        }
        ctx.error(
            s.line,
            s.key_path("connect"),
            "no connect endpoints and no [forwarder] to default to: add connect = [\"tcp://HOST:6001\"] or a [forwarder] section",
        );
        return Vec::new();
    };
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

/// `ipc://<runtime_dir>/<name>.sock`, when that path fits a unix socket address.
fn default_output(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    daemon: &DaemonSection,
    name: &str,
    binds: &mut Vec<Bind>,
) -> Option<Endpoint> {
    let path = daemon.runtime_dir.join(format!("{name}.sock"));
    match Endpoint::parse_bind(&format!("ipc://{}", path.display())) {
        Ok(ep) => {
            binds.push(Bind::endpoint(&ep, s.key_path("output"), s.line, true));
            Some(ep)
        }
        Err(message) => {
            let message = format!("default output: {message}; set output or a shorter runtime_dir");
            ctx.error(s.line, s.key_path("output"), message);
            None
        }
    }
}

/// A worker section, and the receiver it names (name, key, line) when that is a string.
pub(super) fn worker_section(
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
    let with_seq = s
        .field(ctx, "with_seq")
        .and_then(|f| ctx.boolean(&f))
        .unwrap_or(false);
    let curve = super::security::worker_curve(ctx, &s, kind);
    let worker = WorkerSection {
        curve,
        with_seq,
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
