//! `zerologd`: the supervisor of a zerolog topology, and its control client.

use std::path::{Path, PathBuf};
use std::process::ExitCode;

use clap::Parser;
use zerolog::element::ElementConfig;
use zerologd::cli::{print_stdout, Ctl, ZerologdCli};
use zerologd::supervisor::control::{self, Reply, Request};
use zerologd::supervisor::daemon::Daemon;
use zerologd::supervisor::programs::{program_specs, zerolog_binary};
use zerologd::topology::Topology;

fn load(config: Option<&PathBuf>) -> Result<Topology, ExitCode> {
    match config {
        None => Ok(Topology::embedded_default()),
        Some(path) => Topology::load(path).map_err(|errors| {
            eprintln!("{errors}");
            eprintln!(
                "zerologd: {} error(s) in {}; nothing started",
                errors.0.len(),
                path.display()
            );
            ExitCode::from(2)
        }),
    }
}

fn main() -> ExitCode {
    let cli = ZerologdCli::parse();
    if let Some(cmd) = cli.command {
        return client(cmd, cli.config.as_ref(), cli.socket);
    }
    let topology = match load(cli.config.as_ref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    let limit = zerolog::process::raise_fd_limit();
    let programs = program_specs(&topology, Path::new("zerolog")).len();
    if let Err(message) = zerologd::supervisor::limits::check(programs, limit) {
        eprintln!(
            "zerologd: {}: {message}; nothing started",
            topology.source.display()
        );
        return ExitCode::from(2);
    }
    if cli.check {
        return output(&check_report(&topology), ExitCode::SUCCESS);
    }
    if let Err(e) = zerologd::logging::init(None) {
        eprintln!("zerologd: {e}");
        return ExitCode::from(2);
    }
    let daemon = match Daemon::new(&topology, cli.config.clone()) {
        Ok(d) => d,
        Err(e) => {
            tracing::error!("{e}");
            return ExitCode::from(1);
        }
    };
    match daemon.run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            ExitCode::from(1)
        }
    }
}

/// What `--check` prints: every process, its command line and its configuration.
fn check_report(topology: &Topology) -> String {
    use std::fmt::Write;
    let zerolog = zerolog_binary(topology.daemon.zerolog_bin.as_deref());
    let specs = program_specs(topology, &zerolog);
    let mut text = format!(
        "{}: OK, {} processes:\n",
        topology.source.display(),
        specs.len()
    );
    let (mut deliveries, mut hops) = (Vec::new(), Vec::new());
    for s in specs {
        let _ = writeln!(text, "  {:<20} {}", s.name, s.argv.join(" "));
        // What the element's --config file will say.
        if let Some((config, _)) = &s.config {
            let json = serde_json::to_value(config).unwrap_or_default();
            let _ = writeln!(text, "  {:<20} {}", "", json["config"]);
        }
        match &s.config {
            Some((ElementConfig::Receiver(r), _)) => {
                deliveries.push(format!("  {:<20} {}", s.name, delivery_of(r)));
                hops.push(format!("  {:<20} {}", s.name, receiver_hops(r)));
            }
            Some((ElementConfig::Forwarder(f), _)) => {
                hops.push(format!("  {:<20} {}", s.name, forwarder_hops(f)));
            }
            _ => {}
        }
    }
    for (title, lines) in [("delivery", deliveries), ("encryption", hops)] {
        if !lines.is_empty() {
            let _ = writeln!(text, "{title}:\n{}", lines.join("\n"));
        }
    }
    text
}

/// How a hop to or from `ep` travels, for `--check`.
fn transport(ep: &zerolog::endpoint::Endpoint, curve: bool) -> &'static str {
    match (ep.port().is_some(), curve) {
        (false, _) => "IPC (this host)",
        (true, true) => "TCP with CURVE (encrypted, keys checked)",
        (true, false) => "TCP in plaintext",
    }
}

fn forwarder_hops(f: &zerolog::forwarder::ForwarderConfig) -> String {
    let curve = f.curve.is_some();
    let mut text = format!("publish {}", transport(&f.publish, curve));
    if f.journal.is_some() {
        text += &format!("; journal {}", transport(&f.journal_endpoint, curve));
    }
    if let Some(c) = &f.curve {
        text += &format!("; {}", allowed_keys(c, "client"));
    }
    text + "; " + &input_hops(f)
}

/// Which syslog inputs are encrypted, for `--check`.
fn input_hops(f: &zerolog::forwarder::ForwarderConfig) -> String {
    fn names(inputs: &[(&str, &[std::net::SocketAddr])]) -> Vec<String> {
        let each = |(scheme, addrs): &(&str, &[_])| {
            addrs
                .iter()
                .map(move |a| format!("{scheme}:{a}"))
                .collect::<Vec<_>>()
        };
        inputs.iter().flat_map(each).collect()
    }
    let plain = names(&[("tcp", &f.tcp), ("udp", &f.udp), ("relp", &f.relp)]);
    let tls = names(&[("tls", &f.tls), ("relp_tls", &f.relp_tls)]);
    let mut parts = Vec::new();
    if !plain.is_empty() {
        parts.push(format!("inputs {} in plaintext", plain.join(" ")));
    }
    if let (false, Some(t)) = (tls.is_empty(), &f.tls_settings) {
        let clients = match (&t.ca, t.permitted_peers.len()) {
            (None, _) => "no client certificate asked for".to_string(),
            (Some(_), 0) => "client certificates required (any the CA signed)".to_string(),
            (Some(_), n) => format!("client certificates required, {n} permitted peer(s)"),
        };
        parts.push(format!("inputs {} over TLS ({clients})", tls.join(" ")));
    }
    parts.join("; ")
}

/// Which `who` keys a CURVE server lets in, for `--check`.
fn allowed_keys(c: &zerolog::curve::CurveServer, who: &str) -> String {
    match c.clients.len() {
        0 => format!("any CURVE {who} key"),
        n => format!("{n} {who} key(s) allowed"),
    }
}

fn receiver_hops(r: &zerolog::receiver::ReceiverConfig) -> String {
    let upstream = r.journal.as_ref().or(r.connect.first());
    let from = upstream.map_or("-", |ep| transport(ep, r.curve.is_some()));
    let mut to = transport(&r.output, r.curve_output.is_some()).to_string();
    if let Some(c) = r
        .curve_output
        .as_ref()
        .filter(|_| r.output.port().is_some())
    {
        to += &format!(", {}", allowed_keys(c, "worker"));
    }
    format!("from the forwarder: {from}; to workers: {to}")
}

/// How a receiver's messages travel, for `--check`.
fn delivery_of(r: &zerolog::receiver::ReceiverConfig) -> String {
    use zerolog::delivery::Delivery;
    let upstream = match &r.journal {
        Some(ep) => format!("fetches from the journal at {ep} (at least once)"),
        None => "subscribes to the publisher (at most once: no journal)".into(),
    };
    let workers = match r.delivery {
        Delivery::Acked => "workers acknowledge (at least once)",
        Delivery::Push => "PUSH to workers, for zerolog 0.3 ones (at most once on that hop)",
    };
    format!("{upstream}; {workers}")
}

/// Prints `text` and exits with `code`, or 1 when stdout fails (other than closed).
fn output(text: &str, code: ExitCode) -> ExitCode {
    match print_stdout(text) {
        Ok(()) => code,
        Err(e) => {
            eprintln!("zerologd: cannot write to stdout: {e}");
            ExitCode::from(1)
        }
    }
}

fn client(cmd: Ctl, config: Option<&PathBuf>, socket: Option<PathBuf>) -> ExitCode {
    // The socket is found even when the file has since become invalid (a reload is how an
    // operator learns that), so only the [zerologd] section is looked at.
    let socket = socket.unwrap_or_else(|| Topology::control_socket_of(config.map(|p| p.as_path())));
    let (request, json) = match cmd {
        Ctl::Status { json } => (Request::Status, json),
        Ctl::Start { name } => (Request::Start { name }, false),
        Ctl::Stop { name } => (Request::Stop { name }, false),
        Ctl::Restart { name } => (Request::Restart { name }, false),
        Ctl::Reload => (Request::Reload, false),
        Ctl::Reopen => (Request::Reopen, false),
    };
    match control::request(&socket, &request) {
        Ok(reply @ Reply::Error { .. }) => {
            eprint!("{}", reply.text());
            ExitCode::from(1)
        }
        Ok(Reply::Status { programs }) if json => {
            output(&control::format_status_json(&programs), ExitCode::SUCCESS)
        }
        Ok(reply) => output(&reply.text(), ExitCode::SUCCESS),
        Err(e) => {
            eprintln!(
                "zerologd: cannot reach zerologd at {}: {e} (is it running? use -c or --socket)",
                socket.display()
            );
            ExitCode::from(1)
        }
    }
}
