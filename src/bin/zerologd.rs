//! `zerologd`: the supervisor of a zerolog topology, and its control client.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use zerolog::supervisor::control;
use zerolog::supervisor::daemon::Daemon;
use zerolog::supervisor::programs::{program_specs, zerolog_binary};
use zerolog::topology::Topology;

#[derive(Parser)]
#[command(
    name = "zerologd",
    version,
    about = "Run a whole zerolog topology (forwarder, receivers, workers) and keep it running",
    long_about = "Run a whole zerolog topology and keep it running.\n\n\
        zerologd reads a topology file (see zerolog.toml.example), starts every element as a \
        child process (workers, then receivers, then the forwarder), restarts what crashes \
        with exponential backoff, and on SIGTERM/SIGINT stops the forwarder first and the \
        workers last so that what is in flight is delivered. SIGHUP re-reads the file and \
        restarts only what changed. Without -c it runs an embedded default: a forwarder on \
        127.0.0.1:6000, one receiver for every topic, and a worker printing every message.\n\n\
        With a command (status, start, stop, restart, reload) it talks to a running zerologd \
        over its control socket instead.\n\n\
        Exit status: 0 after a clean stop, 1 on a runtime error, 2 on an invalid topology."
)]
struct Cli {
    /// Topology file (TOML); default: the embedded default topology
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    config: Option<PathBuf>,
    /// Validate the topology file, print what it would run, and exit
    #[arg(long)]
    check: bool,
    /// Control socket to talk to (default: the one the topology names)
    #[arg(long, value_name = "PATH", global = true)]
    socket: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Ctl>,
}

#[derive(Subcommand)]
enum Ctl {
    /// Show every program: state, pid, uptime, restarts, last exit
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Start a program or worker group (also clears FATAL)
    Start { name: String },
    /// Stop a program or worker group (it stays stopped until started)
    Stop { name: String },
    /// Restart a program or worker group gracefully
    Restart { name: String },
    /// Re-read the topology file (same as SIGHUP)
    Reload,
}

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
    let cli = Cli::parse();
    if let Some(cmd) = cli.command {
        return client(cmd, cli.config.as_ref(), cli.socket);
    }
    let topology = match load(cli.config.as_ref()) {
        Ok(t) => t,
        Err(code) => return code,
    };
    if cli.check {
        let zerolog = zerolog_binary(topology.daemon.zerolog_bin.as_deref());
        let specs = program_specs(&topology, &zerolog);
        println!(
            "{}: OK, {} processes:",
            topology.source.display(),
            specs.len()
        );
        for s in specs {
            println!("  {:<20} {}", s.name, s.argv.join(" "));
        }
        return ExitCode::SUCCESS;
    }
    if let Err(e) = zerolog::logging::init(None) {
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

fn client(cmd: Ctl, config: Option<&PathBuf>, socket: Option<PathBuf>) -> ExitCode {
    // The socket is found even when the file has since become invalid (a reload is how an
    // operator learns that), so only the [zerologd] section is looked at.
    let socket = socket.unwrap_or_else(|| Topology::control_socket_of(config.map(|p| p.as_path())));
    let line = match cmd {
        Ctl::Status { json: false } => "status".to_string(),
        Ctl::Status { json: true } => "status --json".to_string(),
        Ctl::Start { name } => format!("start {name}"),
        Ctl::Stop { name } => format!("stop {name}"),
        Ctl::Restart { name } => format!("restart {name}"),
        Ctl::Reload => "reload".to_string(),
    };
    match control::request(&socket, &line) {
        Ok(answer) if answer.starts_with("error:") => {
            eprint!("{answer}");
            ExitCode::from(1)
        }
        Ok(answer) => {
            print!("{answer}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!(
                "zerologd: cannot reach zerologd at {}: {e} (is it running? use -c or --socket)",
                socket.display()
            );
            ExitCode::from(1)
        }
    }
}
