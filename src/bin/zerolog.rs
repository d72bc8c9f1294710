//! `zerolog`: the pipeline elements (forwarder, receiver, worker) as one command.

use std::net::{IpAddr, SocketAddr};
use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use zerolog::forwarder::{Forwarder, ForwarderConfig};
use zerolog::framing::Framing;
use zerolog::receiver::{Receiver, ReceiverConfig};
use zerolog::signals::Signals;
use zerolog::syslog::TopicTemplate;
use zerolog::worker::{self, OutputFraming, WorkerSpec};
use zerolog::{logging, tcp_endpoint, Error};

#[derive(Parser)]
#[command(
    name = "zerolog",
    version,
    about = "Log aggregation over ZeroMQ: forwarder, receiver and worker elements",
    long_about = "Log aggregation over ZeroMQ.\n\n\
        Syslog senders (rsyslog, syslog-ng, logger, apps) send to a forwarder over TCP or UDP; \
        the forwarder publishes every message with a topic; receivers subscribe by topic and \
        hand the messages to a pool of workers, which process them.\n\n\
        Logs go to stderr (see -l and RUST_LOG). Exit status: 0 after a clean stop, 1 on a \
        runtime error, 2 on bad arguments, or the worker program's own status when it dies."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen for logs over TCP/UDP and publish them to receivers
    Forwarder(ForwarderArgs),
    /// Take messages from a forwarder, filtered by topic, and pass them to workers
    Receiver(ReceiverArgs),
    /// Take messages from a receiver and process them
    Worker(WorkerArgs),
    /// Generate syslog load over TCP or UDP and report the rate (for benchmarks)
    Loggen(LoggenArgs),
}

#[derive(Args)]
#[command(long_about = "Generate syslog load, like syslog-ng's loggen.\n\n\
    Sends RFC 5424 (or RFC 3164) lines whose APP-NAME is --app and whose body starts with \
    seq=CONN.N (the connection number and a sequence number from 0), padded to --size bytes, \
    over TCP (LF or octet-counted framing) or UDP, from --connections parallel connections. \
    The `null` worker checks those sequence numbers. Prints what it sent and at what rate.")]
struct LoggenArgs {
    /// Target address
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    host: IpAddr,
    /// Target port
    #[arg(short = 'P', long, default_value_t = 6000)]
    port: u16,
    /// Send UDP datagrams (one message each) instead of TCP
    #[arg(long)]
    udp: bool,
    /// TCP framing: lf or octet-counted
    #[arg(long, default_value = "lf", value_parser = ["lf", "octet-counted"])]
    framing: String,
    /// Size of each message in bytes, framing excluded
    #[arg(short = 's', long, default_value_t = 150)]
    size: usize,
    /// Number of messages to send in all
    #[arg(
        short = 'n',
        long,
        required_unless_present = "duration",
        conflicts_with = "duration"
    )]
    count: Option<u64>,
    /// Send for this many seconds
    #[arg(short = 'd', long, value_name = "SECONDS")]
    duration: Option<f64>,
    /// Messages per second in all (0: as fast as possible)
    #[arg(short = 'r', long, default_value_t = 0)]
    rate: u64,
    /// Parallel connections
    #[arg(short = 'c', long, default_value_t = 1)]
    connections: usize,
    /// Line format: rfc5424 or rfc3164
    #[arg(long, default_value = "rfc5424")]
    format: zerolog::loggen::LineFormat,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164) of every line: the default topic
    #[arg(long, default_value = "loggen")]
    app: String,
    /// Print the report as JSON
    #[arg(long)]
    json: bool,
}

#[derive(Args)]
#[command(long_about = "Listen for logs and publish them to receivers.\n\n\
    Accepts syslog over TCP on the backend port, splits the stream into messages (LF or \
    RFC 6587 octet-counted framing), and publishes each as [topic, message] on the frontend \
    port. Publishing never drops: when receivers fall behind, the forwarder stops reading \
    its connections and TCP slows the senders down.\n\n\
    The topic comes from the syslog header (default: the APP-NAME or TAG, so `logger -t nginx` \
    goes to topic `nginx`); a message with no such field gets `-`.")]
struct ForwarderArgs {
    /// Frontend port: receivers subscribe here
    #[arg(short = 'f', long, default_value_t = 6001, value_name = "FRONTEND")]
    frontend: u16,
    /// Backend port: logs are received here over TCP
    #[arg(short = 'b', long, default_value_t = 6000, value_name = "BACKEND")]
    backend: u16,
    /// Monitor port: a copy of every message is published here (lossy; off unless given)
    #[arg(short = 'm', long, value_name = "MONITOR")]
    monitor: Option<u16>,
    /// Address to listen and publish on; use 0.0.0.0 to accept from other hosts
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: IpAddr,
    /// Also receive syslog datagrams on this UDP port (one message per datagram)
    #[arg(long, value_name = "PORT")]
    udp: Option<u16>,
    /// How TCP input is split into messages: auto (per connection: octet-counted if the
    /// first byte is a digit), lf, octet-counted
    #[arg(long, default_value = "auto", value_name = "FRAMING")]
    framing: Framing,
    /// Longer messages are truncated to this size and counted
    #[arg(long, default_value_t = zerolog::framing::DEFAULT_MAX_SIZE, value_name = "BYTES",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..=(1 << 30)))]
    max_message_size: usize,
    /// Topic of each message, from its syslog header. Fields: {app} {hostname} {procid}
    /// {msgid} {facility} {severity} {pri}; a missing field renders as `-`
    #[arg(long, default_value = "{app}", value_name = "TEMPLATE")]
    topic_template: TopicTemplate,
    /// Read no input until this many subscriptions arrived (one per receiver and topic),
    /// so a fresh pipeline loses nothing to slow-joining receivers
    #[arg(long, default_value_t = 0, value_name = "N")]
    wait_subscribers: usize,
    /// Messages queued per receiver before publishing blocks (and input is throttled)
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    hwm: i32,
    /// TCP address to accept syslog on, instead of --bind and --backend (repeatable)
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Vec<SocketAddr>,
    /// UDP address to receive syslog on (repeatable)
    #[arg(long, value_name = "ADDR:PORT")]
    listen_udp: Vec<SocketAddr>,
    /// ZeroMQ endpoint to publish on, instead of --bind and --frontend
    #[arg(long, value_name = "ENDPOINT")]
    publish_endpoint: Option<String>,
    /// ZeroMQ endpoint for the monitor, instead of --bind and --monitor
    #[arg(long, value_name = "ENDPOINT")]
    monitor_endpoint: Option<String>,
    /// Logging configuration file (TOML; see the README). RUST_LOG overrides its level
    #[arg(short = 'l', long, value_name = "LOG_CONFIG")]
    log_config: Option<PathBuf>,
}

#[derive(Args)]
#[command(
    long_about = "Take messages from a forwarder and pass them to workers.\n\n\
    Subscribes to the forwarder's frontend (any publisher of [topic, message] works) and \
    pushes each message frame to the workers connected to its output, round-robin. When all \
    workers are busy it waits, which in turn slows the forwarder: nothing is dropped."
)]
struct ReceiverArgs {
    /// Address of the running forwarder
    forwarder_address: String,
    /// Frontend port of the running forwarder
    forwarder_port: u16,
    /// Topic prefix to subscribe to (repeatable; default: every message)
    #[arg(short = 't', long, value_name = "TOPIC")]
    topic: Vec<String>,
    /// Logging configuration file (TOML; see the README). The receiver logs an error through
    /// it when it fails or is interrupted
    #[arg(short = 'l', long, value_name = "LOG_CONFIG")]
    log_config: Option<PathBuf>,
    /// Output TCP port for workers (default 6200)
    #[arg(long, value_name = "OUTPUT_PORT", conflicts_with = "output_socket")]
    output_port: Option<u16>,
    /// Output unix socket for workers (binds ipc://OUTPUT_SOCKET)
    #[arg(long, value_name = "OUTPUT_SOCKET")]
    output_socket: Option<PathBuf>,
    /// Address the TCP output binds to
    #[arg(long, default_value = "127.0.0.1", value_name = "ADDR")]
    bind: String,
    /// Messages queued from the forwarder, and towards workers, before the receiver waits
    #[arg(long, default_value_t = 10_000, value_name = "N")]
    hwm: i32,
    /// Another publisher to subscribe to as well (repeatable; e.g. tcp://10.0.0.2:6001)
    #[arg(long, value_name = "ENDPOINT")]
    connect: Vec<String>,
}

#[derive(Args)]
#[command(long_about = "Take messages from a receiver and process them.\n\n\
    Connects to BACKEND (any ZeroMQ endpoint, e.g. tcp://127.0.0.1:6200 or ipc:///run/x.sock) \
    and hands every message to WORKER, one of:\n  \
    stdout       print one message per line\n  \
    file PATH    append one message per line to PATH; reopened on SIGHUP (logrotate)\n  \
    null         count and discard (logs the count and rate at exit)\n  \
    PROGRAM ...  run PROGRAM with its arguments, writing the messages to its stdin\n\n\
    In the default lf framing a message never spans two lines: an LF inside it is written as \
    the four characters #012 (as rsyslog escapes control characters). Use --framing \
    octet-counted or nul to get the bytes raw.\n\n\
    The worker exits when its program dies, with the program's exit status (1 if it exited 0), \
    so that a supervisor restarts both.")]
struct WorkerArgs {
    /// Directory to look WORKER up in (default: PATH)
    #[arg(short = 'd', long, value_name = "DIRECTORY")]
    directory: Option<PathBuf>,
    /// How messages are delimited on stdout, in the file or on the program's stdin: lf,
    /// octet-counted, nul
    #[arg(long, default_value = "lf", value_name = "FRAMING")]
    framing: OutputFraming,
    /// Logging configuration file (TOML; see the README)
    #[arg(short = 'l', long, value_name = "LOG_CONFIG")]
    log_config: Option<PathBuf>,
    /// ZeroMQ endpoint to receive messages from (e.g. tcp://127.0.0.1:6200)
    backend: String,
    /// stdout | file PATH | null | a program
    worker: String,
    /// Arguments of WORKER
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    args: Vec<String>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let log_config = match &cli.command {
        Command::Forwarder(a) => a.log_config.clone(),
        Command::Receiver(a) => a.log_config.clone(),
        Command::Worker(a) => a.log_config.clone(),
        Command::Loggen(_) => None,
    };
    if let Err(e) = logging::init(log_config.as_deref()) {
        eprintln!("zerolog: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Command::Forwarder(a) => forwarder(a),
        Command::Receiver(a) => receiver(a),
        Command::Worker(a) => worker(a),
        Command::Loggen(a) => loggen(a),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            let code = match e {
                Error::Usage(_) | Error::ProgramNotFound { .. } => 2,
                Error::ProgramDied { code, .. } => code.clamp(1, 255),
                _ => 1,
            };
            ExitCode::from(code as u8)
        }
    }
}

fn forwarder(a: ForwarderArgs) -> Result<(), Error> {
    let bind = a.bind.to_string();
    let mut tcp = a.listen;
    if tcp.is_empty() {
        tcp.push(SocketAddr::new(a.bind, a.backend));
    }
    let mut udp = a.listen_udp;
    udp.extend(a.udp.map(|p| SocketAddr::new(a.bind, p)));
    let config = ForwarderConfig {
        tcp,
        udp,
        publish: a
            .publish_endpoint
            .unwrap_or_else(|| tcp_endpoint(&bind, a.frontend)),
        monitor: a
            .monitor_endpoint
            .or_else(|| a.monitor.map(|p| tcp_endpoint(&bind, p))),
        framing: a.framing,
        max_message_size: a.max_message_size,
        topic_template: a.topic_template,
        wait_subscribers: a.wait_subscribers,
        send_hwm: a.hwm,
    };
    raise_fd_limit();
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting runtime",
            source,
        })?;
    rt.block_on(async {
        let fwd = Forwarder::bind(config).await?;
        tracing::info!(publish = fwd.publish_endpoint(), "forwarder bound");
        fwd.run(shutdown_signal(), || {}).await
    })
}

/// Many idle connections need many descriptors: lift the soft limit to the hard one.
fn raise_fd_limit() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    if let Ok((soft, hard)) = getrlimit(Resource::RLIMIT_NOFILE) {
        if soft < hard {
            let _ = setrlimit(Resource::RLIMIT_NOFILE, hard, hard);
        }
    }
}

/// Completes on the first SIGTERM or SIGINT.
async fn shutdown_signal() {
    use tokio::signal::unix::{signal, SignalKind};
    let (Ok(mut term), Ok(mut int)) = (
        signal(SignalKind::terminate()),
        signal(SignalKind::interrupt()),
    ) else {
        return std::future::pending().await;
    };
    tokio::select! {
        _ = term.recv() => tracing::info!("SIGTERM received"),
        _ = int.recv() => tracing::info!("SIGINT received"),
    }
}

fn install_signals() -> Result<Signals, Error> {
    Signals::install().map_err(|source| Error::Io {
        context: "installing signal handlers",
        source,
    })
}

fn receiver(a: ReceiverArgs) -> Result<(), Error> {
    let output = match (a.output_port, a.output_socket) {
        (_, Some(path)) => format!("ipc://{}", path.display()),
        (port, None) => tcp_endpoint(&a.bind, port.unwrap_or(6200)),
    };
    let config = ReceiverConfig {
        connect: std::iter::once(tcp_endpoint(&a.forwarder_address, a.forwarder_port))
            .chain(a.connect)
            .collect(),
        topics: a.topic.into_iter().map(String::into_bytes).collect(),
        output,
        hwm: a.hwm,
    };
    let signals = install_signals()?;
    let receiver = Receiver::bind(&config)?;
    tracing::info!(
        forwarder = %config.connect.join(","),
        topics = ?config.topics.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect::<Vec<_>>(),
        output = receiver.output_endpoint(),
        "receiver ready"
    );
    receiver.run(&signals)
}

fn worker(a: WorkerArgs) -> Result<(), Error> {
    let spec = WorkerSpec::resolve(&a.worker, &a.args, a.directory.as_deref())?;
    let signals = install_signals()?;
    let mut w = spec.start(a.framing)?;
    let stats = worker::new_stats();
    worker::run(&a.backend, w.as_mut(), &signals, &stats)
}

fn loggen(a: LoggenArgs) -> Result<(), Error> {
    let config = zerolog::loggen::LoggenConfig {
        target: SocketAddr::new(a.host, a.port),
        udp: a.udp,
        octet_counted: a.framing == "octet-counted",
        size: a.size,
        count: a.count,
        duration: a.duration.map(std::time::Duration::from_secs_f64),
        rate: a.rate,
        connections: a.connections,
        format: a.format,
        app: a.app,
    };
    let r = zerolog::loggen::run(&config)?;
    if a.json {
        println!("{}", serde_json::to_string(&r).unwrap_or_default());
    } else {
        println!(
            "sent {} messages ({} bytes) over {} connection(s) in {:.3} s: {:.0} msg/s, {:.1} MB/s",
            r.messages, r.bytes, r.connections, r.seconds, r.messages_per_s, r.mb_per_s
        );
    }
    Ok(())
}
