//! Values (restart policies, signals, names, paths) and the checks across sections: no two
//! binds clash, names are unique, every receiver has a worker, worker commands can run.

use std::collections::HashMap;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::str::FromStr;

use nix::sys::signal::Signal;

use zerolog::endpoint::Endpoint;

use super::diagnostics::*;
use super::*;

// ---------------------------------------------------------------------------------------------
// Values

pub(super) fn parse_restart(s: &str) -> Result<RestartPolicy, String> {
    match s {
        "always" => Ok(RestartPolicy::Always),
        "on-failure" => Ok(RestartPolicy::OnFailure),
        "never" => Ok(RestartPolicy::Never),
        other => Err(format!(
            "unknown restart policy \"{other}\": expected always, on-failure or never"
        )),
    }
}

pub(super) fn parse_signal(s: &str) -> Result<Signal, String> {
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

pub(super) fn parse_kind(s: &str) -> Result<WorkerKind, String> {
    match s {
        "stdin" => Ok(WorkerKind::Stdin),
        "zmq" => Ok(WorkerKind::Zmq),
        other => Err(format!(
            "unknown worker type \"{other}\": expected stdin or zmq"
        )),
    }
}

pub(super) fn parse_socket_addr(s: &str) -> Result<SocketAddr, String> {
    SocketAddr::from_str(s).map_err(|_| {
        format!("invalid address \"{s}\": expected IP:PORT, e.g. 127.0.0.1:6000 or [::1]:6000")
    })
}

/// Longest receiver or worker name.
pub(super) const MAX_NAME: usize = 64;

pub(super) fn parse_name(s: &str) -> Result<String, String> {
    if s.is_empty() {
        return Err("the name must not be empty".into());
    }
    // Names become file names (stats, ipc sockets, configuration) with a suffix.
    if s.len() > MAX_NAME {
        return Err(format!(
            "the name \"{s}\" is {} characters long; at most {MAX_NAME} are allowed",
            s.len()
        ));
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

pub(super) fn absolute_path(s: &str) -> Result<PathBuf, String> {
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
pub(super) enum Proto {
    Tcp,
    Udp,
}

/// Something this host binds, for the duplicate check: an endpoint (a TCP address, an ipc
/// path) of one protocol.
#[derive(Debug)]
pub(super) struct Bind {
    pub(super) proto: Proto,
    pub(super) target: Endpoint,
    pub(super) key: String,
    pub(super) line: usize,
    /// A default value (two defaults only clash when names clash, which is reported already).
    pub(super) default: bool,
}

impl Bind {
    /// A ZeroMQ endpoint (TCP or ipc) or the control socket.
    pub(super) fn endpoint(ep: &Endpoint, key: String, line: usize, default: bool) -> Bind {
        Bind {
            proto: Proto::Tcp,
            target: ep.clone(),
            key,
            line,
            default,
        }
    }

    /// A TCP or UDP listening address.
    pub(super) fn socket(proto: Proto, addr: SocketAddr, key: String, line: usize) -> Bind {
        Bind {
            proto,
            target: Endpoint::from(addr),
            key,
            line,
            default: false,
        }
    }

    /// How it clashes with `other`, if it does.
    pub(super) fn clash(&self, other: &Bind) -> Option<String> {
        if (self.default && other.default)
            || self.proto != other.proto
            || !self.target.clashes(&other.target)
        {
            return None;
        }
        Some(match (self.proto, &self.target) {
            (_, Endpoint::Ipc(path)) => format!("ipc path {}", path.display()),
            (Proto::Tcp, Endpoint::Tcp { port, .. }) => format!("TCP port {port}"),
            (Proto::Udp, Endpoint::Tcp { port, .. }) => format!("UDP port {port}"),
        })
    }
}

pub(super) fn check_binds(ctx: &mut Ctx<'_>, binds: &[Bind]) {
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
pub(super) struct Name {
    pub(super) name: String,
    pub(super) kind: &'static str,
    pub(super) key: String,
    pub(super) line: usize,
}

pub(super) fn check_names(ctx: &mut Ctx<'_>, names: &[Name]) {
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

/// Checks that a worker's command can run: a built-in (stdin workers) or an existing program.
pub(super) fn check_command(
    command: &[String],
    kind: WorkerKind,
    cwd: Option<&Path>,
) -> Result<(), String> {
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

/// Every receiver has a `[[worker]]`, or says its workers run elsewhere: a receiver nobody
/// takes from fills up, and the forwarder, which waits for every subscriber, stops for all.
pub(super) fn check_receivers_have_workers(
    ctx: &mut Ctx<'_>,
    receivers: &[ReceiverSection],
    workers: &[WorkerSection],
    names: &[Name],
) {
    for r in receivers.iter().filter(|r| !r.external_workers) {
        if workers.iter().any(|w| w.receiver == r.name) {
            continue;
        }
        let Some(n) = names
            .iter()
            .find(|n| n.kind == "receiver" && n.name == r.name)
        else {
            continue;
        };
        ctx.error(
            n.line,
            &n.key,
            format!(
                "receiver \"{}\" has no [[worker]]: its messages would wait with nowhere to go, and hold up every other receiver; add a [[worker]] with receiver = \"{}\", or external_workers = true when its workers run elsewhere",
                r.name, r.name
            ),
        );
    }
}
