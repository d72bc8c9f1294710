//! The command-line definitions of `zerolog` and `zerologd`, in the library so that the man
//! pages and shell completions are generated from the same clap definitions the binaries parse
//! (`cargo run -p zerolog-assets -- OUTDIR`, see `packaging/assets`).

use std::net::{IpAddr, SocketAddr};
use std::path::{Path, PathBuf};
use std::time::Duration;

use clap::{Args, CommandFactory, Parser, Subcommand};

use zerolog::curve::{CurveClient, CurveServer};
use zerolog::defaults;
use zerolog::delivery::Delivery;
use zerolog::element::ElementConfig;
use zerolog::endpoint::Endpoint;
use zerolog::forwarder::ForwarderConfig;
use zerolog::framing::Framing;
use zerolog::journal::{FsyncPolicy, JournalConfig};
use zerolog::receiver::ReceiverConfig;
use zerolog::syslog::TopicTemplate;
use zerolog::tls::TlsSettings;
use zerolog::worker::OutputFraming;
use zerolog::worker::WorkerConfig;
use zerolog::Error;

/// The `zerolog` command (the pipeline elements), as clap builds it from [`ZerologCli`].
pub fn zerolog_command() -> clap::Command {
    ZerologCli::command()
}

/// The `zerologd` command (the supervisor and its control client), from [`ZerologdCli`].
pub fn zerologd_command() -> clap::Command {
    ZerologdCli::command()
}

/// Writes `text` to stdout. A closed stdout (`zerologd --check | head -1`) is not an error:
/// the reader has what it wanted (ripgrep's rule); any other failure is returned.
pub fn print_stdout(text: &str) -> std::io::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    match out.write_all(text.as_bytes()).and_then(|()| out.flush()) {
        Err(e) if e.kind() == std::io::ErrorKind::BrokenPipe => Ok(()),
        other => other,
    }
}

/// `--version` (`-V` prints the first line only): the version, and how libzmq was built in.
const LONG_VERSION: &str = concat!(env!("CARGO_PKG_VERSION"), "\n", env!("ZEROLOG_LIBZMQ_LINK"));

#[derive(Parser)]
#[command(
    name = "zerolog",
    version,
    long_version = LONG_VERSION,
    about = "Log aggregation over ZeroMQ: forwarder, receiver and worker elements",
    long_about = "Log aggregation over ZeroMQ.\n\n\
        Syslog senders (rsyslog, syslog-ng, logger, apps) send to a forwarder over TCP or UDP; \
        the forwarder publishes every message with a topic; receivers subscribe by topic and \
        hand the messages to a pool of workers, which process them.\n\n\
        Logs go to stderr (see -l and RUST_LOG). Exit status: 0 after a clean stop, 1 on a \
        runtime error, 2 on bad arguments, or a worker program's own status when the stop came \
        while it was down."
)]
/// `zerolog`'s command line.
pub struct ZerologCli {
    /// The element to run.
    #[command(subcommand)]
    pub command: Element,
}

/// The elements `zerolog` runs, one per subcommand.
// Parsed once at start: the forwarder's many flags (the TLS ones pushed it over clippy's
// limit) cost nothing worth a Box.
#[allow(clippy::large_enum_variant)]
#[derive(Subcommand)]
pub enum Element {
    /// Listen for logs over TCP/UDP and publish them to receivers
    #[command(long_about = "Listen for logs and publish them to receivers.\n\n\
        Accepts syslog over TCP on the backend port, splits the stream into messages (LF or \
        RFC 6587 octet-counted framing), and publishes each as [topic, message] on the frontend \
        port. Publishing never drops: when receivers fall behind, the forwarder stops reading \
        its connections and TCP slows the senders down.\n\n\
        The topic comes from the syslog header (default: the APP-NAME or TAG, so `logger -t nginx` \
        goes to topic `nginx`); a message with no such field gets `-`.")]
    Forwarder(ForwarderArgs),
    /// Take messages from a forwarder, filtered by topic, and pass them to workers
    #[command(
        long_about = "Take messages from a forwarder and pass them to workers.\n\n\
        Subscribes to the forwarder's frontend (any publisher of [topic, message] works) and \
        pushes each message frame to the workers connected to its output, round-robin. When all \
        workers are busy it waits, which in turn slows the forwarder: nothing is dropped."
    )]
    Receiver(ReceiverArgs),
    /// Take messages from a receiver and process them
    #[command(long_about = "Take messages from a receiver and process them.\n\n\
        Connects to BACKEND (any ZeroMQ endpoint, e.g. tcp://127.0.0.1:6200 or ipc:///run/x.sock) \
        and hands every message to WORKER, one of:\n  \
        stdout       print one message per line\n  \
        file PATH    append one message per line to PATH; opened anew on SIGHUP and when \
        PATH no longer names the open file (renamed by logrotate, deleted); a failing write is \
        retried, never left half done\n  \
        null         count and discard (logs the count and rate at exit)\n  \
        PROGRAM ...  run PROGRAM with its arguments, writing the messages to its stdin\n\n\
        In the default lf framing a message never spans two lines: an LF inside it is written as \
        the four characters #012 (as rsyslog escapes control characters). Use --framing \
        octet-counted or nul to get the bytes raw.\n\n\
        When the program dies (or closes its stdin), the worker starts it again after 100 ms \
        (doubling while it dies without reading anything, up to 5 s) and gives it every message \
        it had not read; the worker itself stays up, keeping its queue, and counts the restarts \
        in program_restarts.")]
    Worker(WorkerArgs),
    /// Generate syslog load over TCP, TLS or UDP and report the rate (for benchmarks)
    #[command(long_about = "Generate syslog load, like syslog-ng's loggen.\n\n\
        Sends RFC 5424 (or RFC 3164) lines whose APP-NAME is --app and whose body starts with \
        seq=CONN.N (the connection number and a sequence number from 0), padded to --size bytes, \
        over TCP (LF or octet-counted framing), RELP (both also over TLS) or UDP, from \
        --connections parallel connections. The `null` worker checks those sequence numbers. \
        Prints what it sent and at what rate.\n\n\
        With --relp each connection opens a RELP session (as rsyslog's omrelp does), sends every \
        line as a syslog command with up to --relp-window of them unacknowledged, then closes \
        the session; it also prints how many lines were acknowledged. A refused line, or a \
        connection closed before every line is acknowledged, ends loggen with status 1 and says \
        how many were left unacknowledged.\n\n\
        With --tls each connection (TCP or RELP) is TLS 1.3 or 1.2 (RFC 5425), and the server's \
        certificate must chain to a CA of --tls-ca and be valid for --tls-server-name (there is \
        no way to skip the check). A failed handshake ends loggen with status 1 and says why. \
        Each connection ends with a TLS close_notify, and loggen waits for the server to close \
        it in turn, so a line it counts as sent has reached the server.\n\n\
        --tls-handshakes N measures a TLS input's handshake rate: N connections in all, each a \
        full handshake (no session resumption), one line (with --relp: a session of one line) \
        and the close above, one after another on each of --connections threads. The report \
        adds the handshakes and handshakes per second (the rate of whole connections: \
        handshake, line and close).")]
    Loggen(LoggenArgs),
    /// Make a CURVE key pair: the secret key file PATH (mode 0600) and PATH.pub
    #[command(
        long_about = "Make a CURVE key pair for the encrypted hops between hosts.\n\n\
        Writes the secret key file PATH (both keys, as Z85 text, mode 0600: give it to the \
        forwarder's --curve-secret-key or a receiver's) and the public key alone in PATH.pub \
        (give it to the other side: a receiver's --curve-server-key, or the forwarder's \
        --curve-client), and prints the public key. An existing PATH is replaced."
    )]
    Keygen(KeygenArgs),
}

#[derive(Args)]
/// `zerolog keygen`'s arguments.
pub struct KeygenArgs {
    /// The secret key file to write
    pub path: PathBuf,
}

#[derive(Args)]
/// `zerolog loggen`'s arguments.
pub struct LoggenArgs {
    /// Target address
    #[arg(long, default_value = defaults::BIND_HOST, value_name = "ADDR")]
    pub host: IpAddr,
    /// Target port
    #[arg(short = 'P', long, default_value_t = defaults::INPUT_PORT)]
    pub port: u16,
    /// Send UDP datagrams (one message each) instead of TCP
    #[arg(long, conflicts_with = "tls")]
    pub udp: bool,
    /// TCP framing: lf or octet-counted
    #[arg(long, default_value = "lf", value_parser = ["lf", "octet-counted"])]
    pub framing: String,
    /// Send over RELP, each line acknowledged by the server, instead of plain TCP
    #[arg(long, conflicts_with_all = ["udp", "framing"])]
    pub relp: bool,
    /// RELP: the most lines unacknowledged at a time, per connection
    #[arg(
        long,
        default_value_t = 128,
        value_name = "N",
        requires = "relp",
        value_parser = clap::value_parser!(u32).range(1..=65536)
    )]
    pub relp_window: u32,
    /// Send over TLS (syslog over TLS, RFC 5425; with --relp, RELP over TLS); needs --tls-ca
    #[arg(long, requires = "tls_ca")]
    pub tls: bool,
    /// PEM CA bundle the server's certificate must chain to
    #[arg(long, value_name = "FILE", requires = "tls")]
    pub tls_ca: Option<PathBuf>,
    /// Name the server's certificate must be valid for, sent as SNI if it is a DNS name
    /// (default: --host, checked against the certificate's IP addresses)
    #[arg(long, value_name = "NAME", requires = "tls")]
    pub tls_server_name: Option<String>,
    /// PEM certificate chain to present when the server asks for one (client
    /// authentication); needs --tls-key
    #[arg(long, value_name = "FILE", requires_all = ["tls", "tls_key"])]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (not readable by others)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// Measure TLS handshakes: N connections in all, each a full handshake, one line and a
    /// close, instead of --count or --duration
    #[arg(long, value_name = "N", requires = "tls", conflicts_with_all = ["count", "duration", "rate"],
          value_parser = clap::value_parser!(u64).range(1..))]
    pub tls_handshakes: Option<u64>,
    /// Size of each message in bytes, framing excluded
    #[arg(short = 's', long, default_value_t = 150)]
    pub size: usize,
    /// Number of messages to send in all
    #[arg(
        short = 'n',
        long,
        required_unless_present_any = ["duration", "tls_handshakes"],
        conflicts_with = "duration"
    )]
    pub count: Option<u64>,
    /// Send for this many seconds
    #[arg(short = 'd', long, value_name = "SECONDS")]
    pub duration: Option<f64>,
    /// Messages per second in all (0: as fast as possible)
    #[arg(short = 'r', long, default_value_t = 0)]
    pub rate: u64,
    /// Parallel connections
    #[arg(short = 'c', long, default_value_t = 1)]
    pub connections: usize,
    /// Line format: rfc5424 or rfc3164
    #[arg(long, default_value = "rfc5424")]
    pub format: crate::loggen::LineFormat,
    /// APP-NAME (RFC 5424) or TAG (RFC 3164) of every line: the default topic
    #[arg(long, default_value = "loggen")]
    pub app: String,
    /// Print the report as JSON
    #[arg(long)]
    pub json: bool,
}

#[derive(Args)]
/// `zerolog forwarder`'s arguments.
pub struct ForwarderArgs {
    /// Frontend port: receivers subscribe here
    #[arg(short = 'f', long, default_value_t = defaults::PUBLISH_PORT, value_name = "FRONTEND")]
    pub frontend: u16,
    /// Backend port: logs are received here over TCP
    #[arg(short = 'b', long, default_value_t = defaults::INPUT_PORT, value_name = "BACKEND")]
    pub backend: u16,
    /// Monitor port: a copy of every message is published here (lossy; off unless given)
    #[arg(short = 'm', long, value_name = "MONITOR")]
    pub monitor: Option<u16>,
    /// Address to listen and publish on; use 0.0.0.0 to accept from other hosts
    #[arg(long, default_value = defaults::BIND_HOST, value_name = "ADDR")]
    pub bind: IpAddr,
    /// Also receive syslog datagrams on this UDP port (one message per datagram)
    #[arg(long, value_name = "PORT")]
    pub udp: Option<u16>,
    /// How TCP input is split into messages: auto (per connection: octet-counted if the
    /// first byte is a digit), lf, octet-counted
    #[arg(long, default_value = "auto", value_name = "FRAMING")]
    pub framing: Framing,
    /// Longer messages are truncated to this size and counted
    #[arg(long, default_value_t = zerolog::framing::DEFAULT_MAX_SIZE, value_name = "BYTES",
          value_parser = message_size())]
    pub max_message_size: usize,
    /// Topic of each message, from its syslog header. Fields: {app} {hostname} {procid}
    /// {msgid} {facility} {severity} {pri}; a missing field renders as `-`
    #[arg(long, default_value = "{app}", value_name = "TEMPLATE")]
    pub topic_template: TopicTemplate,
    /// Read no input until this many subscriptions arrived (one per receiver and topic),
    /// so a fresh pipeline loses nothing to slow-joining receivers
    #[arg(long, default_value_t = 0, value_name = "N")]
    pub wait_subscribers: usize,
    /// Messages queued per receiver before publishing blocks (and input is throttled)
    #[arg(long, default_value_t = defaults::HWM, value_name = "N")]
    pub hwm: i32,
    /// Bytes queued per receiver, at most BYTES/16: the queue holds fewer than --hwm
    /// messages when they are long
    #[arg(long, default_value_t = zerolog::queue::DEFAULT_QUEUE_BYTES, value_name = "BYTES",
          value_parser = queue_bytes())]
    pub queue_bytes: usize,
    /// Open TCP connections allowed per input; more are closed at once and counted
    #[arg(long, default_value_t = zerolog::forwarder::DEFAULT_MAX_CONNECTIONS, value_name = "N",
          value_parser = clap::builder::RangedU64ValueParser::<usize>::new().range(1..))]
    pub max_connections: usize,
    /// Close (and count) a TCP connection that sends nothing for this many seconds; 0: never
    #[arg(long, default_value_t = 0, value_name = "SECONDS")]
    pub idle_timeout: u64,
    /// Receive buffer of the UDP sockets in bytes (capped by net.core.rmem_max); default:
    /// the system's
    #[arg(long, value_name = "BYTES")]
    pub udp_recv_buffer: Option<usize>,
    /// Only receivers (and monitors) from this network or address may connect (repeatable,
    /// e.g. 10.0.0.0/8); default: any
    #[arg(long, value_name = "NET", value_parser = zerolog::access::parse_net)]
    pub allow: Vec<ipnet::IpNet>,
    /// Encrypt the TCP publish, journal and monitor sockets with CURVE, as the server whose
    /// secret key is in FILE (made by `zerolog keygen`; not readable by others)
    #[arg(long, value_name = "FILE")]
    pub curve_secret_key: Option<PathBuf>,
    /// With --curve-secret-key, only receivers with this public key may connect (Z85, or a
    /// file holding it; repeatable); default: any receiver that knows the server's key
    #[arg(
        long,
        value_name = "KEY",
        requires = "curve_secret_key",
        allow_hyphen_values = true
    )]
    pub curve_client: Vec<String>,
    /// Keep a durable journal in DIR/journal: every message is appended before it counts
    /// as accepted, and receivers started with --journal fetch from it with
    /// acknowledgements (at least once). Without it: zerolog 0.3's at-most-once forwarding
    #[arg(long, value_name = "DIR")]
    pub state_dir: Option<PathBuf>,
    /// Where receivers fetch from the journal
    #[arg(long, value_name = "ENDPOINT", value_parser = Endpoint::parse_bind,
          default_value_t = Endpoint::tcp(defaults::BIND_HOST, defaults::JOURNAL_PORT))]
    pub journal_endpoint: Endpoint,
    /// A receiver group whose offset keeps records in the journal until it is done with
    /// them (repeatable; the receivers' --group)
    #[arg(long, value_name = "NAME")]
    pub consumer: Vec<String>,
    /// When the journal is flushed to disk: interval (every --fsync-interval-ms), always
    /// (before a message counts as accepted), never (the kernel decides). A kill -9 loses
    /// nothing in any case; this bounds what a power loss can
    #[arg(long, value_enum, default_value_t = FsyncArg::Interval, value_name = "POLICY")]
    pub fsync: FsyncArg,
    /// The interval of --fsync interval
    #[arg(long, default_value_t = 500, value_name = "MS")]
    pub fsync_interval_ms: u64,
    /// Bytes of journal on disk at most; when full, input waits (nothing is dropped)
    #[arg(long, default_value_t = 1 << 30, value_name = "BYTES")]
    pub journal_max_size: u64,
    /// TCP address to accept syslog on, instead of --bind and --backend (repeatable)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Vec<SocketAddr>,
    /// UDP address to receive syslog on (repeatable)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen_udp: Vec<SocketAddr>,
    /// TCP address to accept RELP on (rsyslog's omrelp; repeatable): each message is
    /// acknowledged once it is in the journal (see --state-dir)
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen_relp: Vec<SocketAddr>,
    /// TCP address to accept syslog over TLS on (RFC 5425; repeatable); needs --tls-cert
    /// and --tls-key
    #[arg(long, value_name = "ADDR:PORT", requires_all = ["tls_cert", "tls_key"])]
    pub listen_tls: Vec<SocketAddr>,
    /// TCP address to accept RELP over TLS on (omrelp tls="on"; repeatable); needs
    /// --tls-cert and --tls-key
    #[arg(long, value_name = "ADDR:PORT", requires_all = ["tls_cert", "tls_key"])]
    pub listen_relp_tls: Vec<SocketAddr>,
    /// PEM certificate chain of the TLS inputs, their own certificate first; re-read with
    /// its key and CA on SIGHUP
    #[arg(long, value_name = "FILE", requires = "tls_key")]
    pub tls_cert: Option<PathBuf>,
    /// PEM private key of --tls-cert (not readable by others)
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_key: Option<PathBuf>,
    /// PEM CA bundle: TLS clients must present a certificate it signed; default: no client
    /// certificate is asked for
    #[arg(long, value_name = "FILE", requires = "tls_cert")]
    pub tls_ca: Option<PathBuf>,
    /// With --tls-ca, only clients whose certificate has this DNS name (*.example.com
    /// allowed) or SHA256 fingerprint may send (repeatable); default: any the CA signed
    #[arg(long, value_name = "NAME", requires = "tls_ca")]
    pub tls_permitted_peer: Vec<String>,
    /// ZeroMQ endpoint to publish on, instead of --bind and --frontend
    #[arg(long, value_name = "ENDPOINT", value_parser = Endpoint::parse_bind)]
    pub publish_endpoint: Option<Endpoint>,
    /// ZeroMQ endpoint for the monitor, instead of --bind and --monitor
    #[arg(long, value_name = "ENDPOINT", value_parser = Endpoint::parse_bind)]
    pub monitor_endpoint: Option<Endpoint>,
    /// Logging configuration file (TOML; see the README). RUST_LOG overrides its level
    #[arg(short = 'l', long, value_name = "LOG_CONFIG")]
    pub log_config: Option<PathBuf>,
    /// `--config FILE`
    #[command(flatten)]
    pub from_file: FromFile,
}

#[derive(Args)]
#[command(group(clap::ArgGroup::new("curve_roles").args(["curve_server_key", "curve_worker"]).multiple(true)))]
/// `zerolog receiver`'s arguments.
pub struct ReceiverArgs {
    /// Address of the running forwarder (may be left out, with its port, when --connect names
    /// the publisher instead, e.g. ipc:///run/zerolog/pub.sock)
    #[arg(requires = "forwarder_port", required_unless_present_any = ["connect", "config"])]
    pub forwarder_address: Option<String>,
    /// Frontend port of the running forwarder
    #[arg(requires = "forwarder_address")]
    pub forwarder_port: Option<u16>,
    /// Topic prefix to subscribe to (repeatable; default: every message)
    #[arg(short = 't', long, value_name = "TOPIC")]
    pub topic: Vec<String>,
    /// Logging configuration file (TOML; see the README). The receiver logs an error through
    /// it when it fails or is interrupted
    #[arg(short = 'l', long, value_name = "LOG_CONFIG")]
    pub log_config: Option<PathBuf>,
    /// Output TCP port for workers (default 6200)
    #[arg(long, value_name = "OUTPUT_PORT", conflicts_with = "output_socket")]
    pub output_port: Option<u16>,
    /// Output unix socket for workers (binds ipc://OUTPUT_SOCKET)
    #[arg(long, value_name = "OUTPUT_SOCKET")]
    pub output_socket: Option<PathBuf>,
    /// Address the TCP output binds to
    #[arg(long, default_value = defaults::BIND_HOST, value_name = "ADDR")]
    pub bind: String,
    /// Messages queued from the forwarder, and towards workers, before the receiver waits
    #[arg(long, default_value_t = defaults::HWM, value_name = "N")]
    pub hwm: i32,
    /// `--queue-bytes` and `--max-message-size`
    #[command(flatten)]
    pub queue: ReceiveQueueArgs,
    /// A publisher to subscribe to, besides or instead of FORWARDER_ADDRESS FORWARDER_PORT
    /// (repeatable; e.g. tcp://10.0.0.2:6001 or ipc:///run/zerolog/pub.sock)
    #[arg(long, value_name = "ENDPOINT", value_parser = Endpoint::parse_connect)]
    pub connect: Vec<Endpoint>,
    /// Only workers from this network or address may connect to a TCP output (repeatable,
    /// e.g. 10.0.0.0/8); default: any
    #[arg(long, value_name = "NET", value_parser = zerolog::access::parse_net)]
    pub allow: Vec<ipnet::IpNet>,
    /// This receiver's CURVE secret key, in FILE (made by `zerolog keygen`; not readable by
    /// others); needs --curve-server-key, --curve-worker, or both
    #[arg(long, value_name = "FILE", requires = "curve_roles")]
    pub curve_secret_key: Option<PathBuf>,
    /// Connect to the forwarder's TCP endpoints with CURVE: the forwarder's public key (Z85,
    /// or a file holding it)
    #[arg(
        long,
        value_name = "KEY",
        requires = "curve_secret_key",
        allow_hyphen_values = true
    )]
    pub curve_server_key: Option<String>,
    /// CURVE on a TCP output: only workers with this public key may connect (Z85, or a file
    /// holding it; repeatable)
    #[arg(
        long,
        value_name = "KEY",
        requires = "curve_secret_key",
        allow_hyphen_values = true
    )]
    pub curve_worker: Vec<String>,
    /// Fetch from this forwarder journal endpoint (its --journal-endpoint) with
    /// acknowledgements instead of subscribing (at least once instead of at most once)
    #[arg(long, value_name = "ENDPOINT", value_parser = Endpoint::parse_connect)]
    pub journal: Option<Endpoint>,
    /// The group the forwarder keeps this receiver's offset under (its --consumer)
    #[arg(long, default_value = "receiver", value_name = "NAME")]
    pub group: String,
    /// How workers get messages: push (zerolog 0.3 workers; at most once) or acked (workers
    /// acknowledge; needs --journal)
    #[arg(long, default_value_t = Delivery::Push, value_name = "DELIVERY")]
    pub delivery: Delivery,
    /// `--config FILE`
    #[command(flatten)]
    pub from_file: FromFile,
}

#[derive(Args)]
/// `zerolog worker`'s arguments.
pub struct WorkerArgs {
    /// Directory to look WORKER up in (default: PATH)
    #[arg(short = 'd', long, value_name = "DIRECTORY")]
    pub directory: Option<PathBuf>,
    /// How messages are delimited on stdout, in the file or on the program's stdin: lf,
    /// octet-counted, nul
    #[arg(long, default_value = "lf", value_name = "FRAMING")]
    pub framing: OutputFraming,
    /// Logging configuration file (TOML; see the README)
    #[arg(short = 'l', long, value_name = "LOG_CONFIG")]
    pub log_config: Option<PathBuf>,
    /// What a multipart ZeroMQ message (e.g. [topic, message] from a PUSH peer) becomes:
    /// frame (each frame a message of its own, as from a receiver), first or last (that frame
    /// alone), joined (all frames joined by --join-separator)
    #[arg(long, value_enum, default_value_t = ReceiveMode::Frame, value_name = "MODE")]
    pub receive: ReceiveMode,
    /// Separator of --receive joined
    #[arg(long, default_value = " ", value_name = "TEXT")]
    pub join_separator: String,
    /// `--queue-bytes` and `--max-message-size`
    #[command(flatten)]
    pub queue: ReceiveQueueArgs,
    /// How the receiver hands out messages (its --delivery): push or acked. Default:
    /// $ZEROLOG_DELIVERY (zerologd sets it for its workers), else push
    #[arg(long, value_name = "DELIVERY")]
    pub delivery: Option<Delivery>,
    /// A program gets each message's sequence number and a space before it (with --delivery
    /// acked), to drop the duplicates that follow a crash
    #[arg(long)]
    pub with_seq: bool,
    /// Connect to a receiver's TCP output with CURVE, with the secret key in FILE (made by
    /// `zerolog keygen`; not readable by others); needs --curve-server-key
    #[arg(long, value_name = "FILE", requires = "curve_server_key")]
    pub curve_secret_key: Option<PathBuf>,
    /// The receiver's CURVE public key (Z85, or a file holding it)
    #[arg(
        long,
        value_name = "KEY",
        requires = "curve_secret_key",
        allow_hyphen_values = true
    )]
    pub curve_server_key: Option<String>,
    /// ZeroMQ endpoint to receive messages from (e.g. tcp://127.0.0.1:6200 or
    /// ipc:///run/zerolog/all.sock)
    #[arg(required_unless_present = "config", value_parser = Endpoint::parse_connect)]
    pub backend: Option<Endpoint>,
    /// stdout | file PATH | null | a program
    #[arg(required_unless_present = "config")]
    pub worker: Option<String>,
    /// Arguments of WORKER
    #[arg(trailing_var_arg = true, allow_hyphen_values = true)]
    pub args: Vec<String>,
    /// `--config FILE`
    #[command(flatten)]
    pub from_file: FromFile,
}

/// How much a receiving queue (a receiver's from the forwarder, a worker's) holds.
#[derive(Args)]
pub struct ReceiveQueueArgs {
    /// Bytes queued from upstream, at most: the queue holds BYTES / --max-message-size
    /// messages (at most --hwm; and BYTES/16 towards each worker of a receiver)
    #[arg(long, default_value_t = zerolog::queue::DEFAULT_QUEUE_BYTES, value_name = "BYTES",
          value_parser = queue_bytes())]
    pub queue_bytes: usize,
    /// The longest message upstream sends (the forwarder's --max-message-size)
    #[arg(long, default_value_t = zerolog::framing::DEFAULT_MAX_SIZE, value_name = "BYTES",
          value_parser = message_size())]
    pub max_message_size: usize,
}

/// `--max-message-size`: 1 byte to 1 GiB.
fn message_size() -> clap::builder::RangedU64ValueParser<usize> {
    clap::builder::RangedU64ValueParser::new().range(1..=(1 << 30))
}

/// `--queue-bytes`: [`zerolog::queue::QUEUE_BYTES_RANGE`].
fn queue_bytes() -> clap::builder::RangedU64ValueParser<usize> {
    let range = zerolog::queue::QUEUE_BYTES_RANGE;
    clap::builder::RangedU64ValueParser::new().range(*range.start() as u64..=*range.end() as u64)
}

/// `--config FILE` of the elements: what zerologd runs them with.
#[derive(Args)]
pub struct FromFile {
    /// Take every setting from FILE (JSON, as zerologd writes it under its runtime directory)
    /// instead of from flags
    #[arg(long, value_name = "FILE", exclusive = true)]
    pub config: Option<PathBuf>,
}

/// `zerolog forwarder --fsync`.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum FsyncArg {
    /// Every --fsync-interval-ms.
    Interval,
    /// Before a message counts as accepted.
    Always,
    /// Left to the kernel.
    Never,
}

/// `zerolog worker --receive`: how multipart messages are taken.
#[derive(Clone, Copy, Debug, PartialEq, Eq, clap::ValueEnum)]
pub enum ReceiveMode {
    /// Each frame is a message.
    Frame,
    /// The first frame is the message.
    First,
    /// The last frame is the message.
    Last,
    /// All frames, joined, are the message.
    Joined,
}

/// Reads the element configuration of `--config`, which must be for `element`.
fn config_file<T>(
    path: &Path,
    element: &str,
    pick: impl FnOnce(ElementConfig) -> Option<T>,
) -> Result<T, Error> {
    let config = ElementConfig::load(path).map_err(Error::ConfigFile)?;
    let found = config.element();
    pick(config).ok_or_else(|| {
        Error::Usage(format!(
            "{} is a {found} configuration, not a {element} one",
            path.display()
        ))
    })
}

impl ForwarderArgs {
    /// The forwarder's configuration: the file of `--config`, or zerolog 0.3's flags.
    pub fn into_config(self) -> Result<ForwarderConfig, Error> {
        if let Some(path) = &self.from_file.config {
            return config_file(path, "forwarder", |c| match c {
                ElementConfig::Forwarder(f) => Some(f),
                _ => None,
            });
        }
        let bind = self.bind.to_string();
        let tcp_endpoint = |port| Endpoint::tcp(&bind, port);
        let mut tcp = self.listen;
        if tcp.is_empty() {
            tcp.push(SocketAddr::new(self.bind, self.backend));
        }
        let mut udp = self.listen_udp;
        udp.extend(self.udp.map(|p| SocketAddr::new(self.bind, p)));
        Ok(ForwarderConfig {
            tcp,
            udp,
            relp: self.listen_relp,
            tls: self.listen_tls,
            relp_tls: self.listen_relp_tls,
            tls_settings: self
                .tls_cert
                .zip(self.tls_key)
                .map(|(cert, key)| TlsSettings {
                    cert,
                    key,
                    ca: self.tls_ca,
                    permitted_peers: self.tls_permitted_peer,
                }),
            publish: self
                .publish_endpoint
                .unwrap_or_else(|| tcp_endpoint(self.frontend)),
            monitor: self
                .monitor_endpoint
                .or_else(|| self.monitor.map(tcp_endpoint)),
            framing: self.framing,
            max_message_size: self.max_message_size,
            topic_template: self.topic_template,
            wait_subscribers: self.wait_subscribers,
            send_hwm: self.hwm,
            queue_bytes: self.queue_bytes,
            max_connections: self.max_connections,
            idle_timeout: (self.idle_timeout > 0).then(|| Duration::from_secs(self.idle_timeout)),
            udp_recv_buffer: self.udp_recv_buffer,
            allow: self.allow,
            curve: self.curve_secret_key.map(|secret_key| CurveServer {
                secret_key,
                clients: self.curve_client,
            }),
            journal: self.state_dir.map(|dir| JournalConfig {
                dir: dir.join("journal"),
                fsync: match self.fsync {
                    FsyncArg::Interval => FsyncPolicy::Interval,
                    FsyncArg::Always => FsyncPolicy::Always,
                    FsyncArg::Never => FsyncPolicy::Never,
                },
                fsync_interval_ms: self.fsync_interval_ms,
                max_size: self.journal_max_size,
                segment_size: zerolog::journal::segment_size_for(self.journal_max_size),
                consumers: self.consumer,
            }),
            journal_endpoint: self.journal_endpoint,
        })
    }
}

impl ReceiverArgs {
    /// The receiver's configuration: the file of `--config`, or zerolog 0.3's arguments.
    pub fn into_config(self) -> Result<ReceiverConfig, Error> {
        if let Some(path) = &self.from_file.config {
            return config_file(path, "receiver", |c| match c {
                ElementConfig::Receiver(r) => Some(r),
                _ => None,
            });
        }
        let output = match (self.output_port, self.output_socket) {
            (_, Some(path)) => Endpoint::Ipc(path),
            (port, None) => Endpoint::tcp(&self.bind, port.unwrap_or(defaults::OUTPUT_PORT)),
        };
        Ok(ReceiverConfig {
            connect: self
                .forwarder_address
                .zip(self.forwarder_port)
                .map(|(addr, port)| Endpoint::tcp(&addr, port))
                .into_iter()
                .chain(self.connect)
                .collect(),
            topics: self.topic.into_iter().map(String::into_bytes).collect(),
            output,
            hwm: self.hwm,
            queue_bytes: self.queue.queue_bytes,
            max_message_size: self.queue.max_message_size,
            allow: self.allow,
            curve: curve_client(self.curve_secret_key.clone(), self.curve_server_key),
            curve_output: self
                .curve_secret_key
                .filter(|_| !self.curve_worker.is_empty())
                .map(|secret_key| CurveServer {
                    secret_key,
                    clients: self.curve_worker,
                }),
            journal: self.journal,
            group: self.group,
            delivery: self.delivery,
        })
    }
}

/// A CURVE client's keys from `--curve-secret-key` and `--curve-server-key` (clap requires
/// both or neither).
fn curve_client(secret_key: Option<PathBuf>, server_key: Option<String>) -> Option<CurveClient> {
    let (secret_key, server_key) = secret_key.zip(server_key)?;
    Some(CurveClient {
        secret_key,
        server_key,
    })
}

impl WorkerArgs {
    /// The worker's configuration: the file of `--config`, or the command line.
    pub fn into_config(self) -> Result<WorkerConfig, Error> {
        if let Some(path) = &self.from_file.config {
            return config_file(path, "worker", |c| match c {
                ElementConfig::Worker(w) => Some(w),
                _ => None,
            });
        }
        use zerolog::worker::Receive;
        let receive = match self.receive {
            ReceiveMode::Frame => Receive::Frame,
            ReceiveMode::First => Receive::FirstFrame,
            ReceiveMode::Last => Receive::LastFrame,
            ReceiveMode::Joined => Receive::Joined(self.join_separator.into_bytes()),
        };
        // clap requires both unless --config is given.
        let missing = || Error::Usage("BACKEND and WORKER are required".into());
        let mut command = vec![self.worker.ok_or_else(missing)?];
        command.extend(self.args);
        Ok(WorkerConfig {
            backend: self.backend.ok_or_else(missing)?,
            command,
            directory: self.directory,
            framing: self.framing,
            receive,
            queue_bytes: self.queue.queue_bytes,
            max_message_size: self.queue.max_message_size,
            delivery: self
                .delivery
                .unwrap_or_else(zerolog::worker::delivery_from_env),
            with_seq: self.with_seq,
            curve: curve_client(self.curve_secret_key, self.curve_server_key),
        })
    }
}

#[derive(Parser)]
#[command(
    name = "zerologd",
    version,
    long_version = LONG_VERSION,
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
/// `zerologd`'s command line.
pub struct ZerologdCli {
    /// Topology file (TOML); default: the embedded default topology
    #[arg(short = 'c', long = "config", value_name = "FILE", global = true)]
    pub config: Option<PathBuf>,
    /// Validate the topology file, print what it would run, and exit
    #[arg(long)]
    pub check: bool,
    /// Control socket to talk to (default: the one the topology names)
    #[arg(long, value_name = "PATH", global = true)]
    pub socket: Option<PathBuf>,
    /// A control command for a running zerologd; none runs the daemon.
    #[command(subcommand)]
    pub command: Option<Ctl>,
}

/// `zerologd`'s control commands.
#[derive(Subcommand)]
pub enum Ctl {
    /// Show every program: state, pid, uptime, restarts, last exit
    Status {
        /// Print JSON instead of a table
        #[arg(long)]
        json: bool,
    },
    /// Start a program or worker group (also clears FATAL)
    Start {
        /// Program (e.g. forwarder, db:1) or worker group (e.g. db)
        name: String,
    },
    /// Stop a program or worker group (it stays stopped until started)
    Stop {
        /// Program (e.g. forwarder, db:1) or worker group (e.g. db)
        name: String,
    },
    /// Restart a program or worker group gracefully
    Restart {
        /// Program (e.g. forwarder, db:1) or worker group (e.g. db)
        name: String,
    },
    /// Re-read the topology file (same as SIGHUP)
    Reload,
    /// Make every stdin worker reopen its output (a file worker also notices a rename itself)
    Reopen,
}

#[cfg(test)]
mod tests {
    use super::*;
    use zerolog::worker::Receive;

    #[test]
    fn command_definitions_are_consistent() {
        super::zerolog_command().debug_assert();
        super::zerologd_command().debug_assert();
    }

    /// `zerolog ELEMENT --help` shows the element's long description.
    #[test]
    fn every_element_has_its_long_help() {
        let mut cmd = super::zerolog_command();
        for (name, needle) in [
            ("forwarder", "APP-NAME"),
            ("receiver", "round-robin"),
            ("worker", "logrotate"),
            ("loggen", "seq=CONN.N"),
        ] {
            let sub = cmd.find_subcommand_mut(name).unwrap();
            let help = sub.render_long_help().to_string();
            assert!(help.contains(needle), "{name} --help:\n{help}");
        }
    }

    /// `zerolog NAME ARGS...`, parsed.
    fn element(name: &str, args: &[&str]) -> Element {
        let argv = ["zerolog", name].into_iter().chain(args.iter().copied());
        ZerologCli::try_parse_from(argv)
            .unwrap_or_else(|e| panic!("{e}"))
            .command
    }

    fn forwarder(args: &[&str]) -> ForwarderConfig {
        let Element::Forwarder(a) = element("forwarder", args) else {
            unreachable!()
        };
        a.into_config().unwrap()
    }

    /// Z85 keys may begin with '-': as values of the key options they are keys, not flags.
    #[test]
    fn curve_keys_may_begin_with_a_dash() {
        let key = "-*Z.kbn0V@:S2)e?3hL}5#VRwa4X9wEr]F(zT!*f";
        let f = forwarder(&["--curve-secret-key", "f.key", "--curve-client", key]);
        assert_eq!(f.curve.unwrap().clients, [key]);
        let r = receiver(&[
            "--curve-secret-key",
            "r.key",
            "--curve-server-key",
            key,
            "--curve-worker",
            key,
            "127.0.0.1",
            "6001",
        ]);
        assert_eq!(r.curve.unwrap().server_key, key);
        assert_eq!(r.curve_output.unwrap().clients, [key]);
    }

    fn receiver(args: &[&str]) -> ReceiverConfig {
        let Element::Receiver(a) = element("receiver", args) else {
            unreachable!()
        };
        a.into_config().unwrap()
    }

    fn worker(args: &[&str]) -> WorkerConfig {
        let Element::Worker(a) = element("worker", args) else {
            unreachable!()
        };
        a.into_config().unwrap()
    }

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    /// The flags' defaults are the elements' own: one definition.
    #[test]
    fn without_flags_the_elements_run_their_defaults() {
        assert_eq!(forwarder(&[]), ForwarderConfig::default());
        assert_eq!(receiver(&["127.0.0.1", "6001"]), ReceiverConfig::default());
    }

    /// Every flag reaches its field; the expected configurations name every field, so a new
    /// option must be added here too.
    #[test]
    fn every_flag_reaches_the_configuration() {
        let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
        let f = forwarder(&[
            "-f",
            "7001",
            "-b",
            "7000",
            "-m",
            "7002",
            "--bind",
            "::1",
            "--udp",
            "7514",
            "--framing",
            "lf",
            "--max-message-size",
            "100",
            "--topic-template",
            "{hostname}",
            "--wait-subscribers",
            "3",
            "--hwm",
            "9",
            "--queue-bytes",
            "2000000",
            "--max-connections",
            "5",
            "--idle-timeout",
            "60",
            "--udp-recv-buffer",
            "65536",
            "--allow",
            "10.0.0.0/8",
            "--listen-udp",
            "127.0.0.1:7515",
        ]);
        let want = ForwarderConfig {
            curve: None,
            tcp: vec!["[::1]:7000".parse().unwrap()],
            udp: vec![
                "127.0.0.1:7515".parse().unwrap(),
                "[::1]:7514".parse().unwrap(),
            ],
            publish: ep("tcp://[::1]:7001"),
            monitor: Some(ep("tcp://[::1]:7002")),
            framing: Framing::Lf,
            max_message_size: 100,
            topic_template: "{hostname}".parse().unwrap(),
            wait_subscribers: 3,
            send_hwm: 9,
            queue_bytes: 2_000_000,
            max_connections: 5,
            idle_timeout: Some(Duration::from_secs(60)),
            udp_recv_buffer: Some(65536),
            allow: vec![net("10.0.0.0/8")],
            relp: vec![],
            tls: vec![],
            relp_tls: vec![],
            tls_settings: None,
            journal: None,
            journal_endpoint: ep("tcp://127.0.0.1:6002"),
        };
        assert_eq!(f, want);
        let f = forwarder(&[
            "--listen",
            "127.0.0.1:7000",
            "--publish-endpoint",
            "ipc:///run/p.sock",
            "--monitor-endpoint",
            "tcp://*:7002",
        ]);
        assert_eq!(f.tcp, ["127.0.0.1:7000".parse().unwrap()]);
        assert_eq!(
            (f.publish, f.monitor),
            (ep("ipc:///run/p.sock"), Some(ep("tcp://*:7002")))
        );
        let f = forwarder(&[
            "--listen-tls",
            "127.0.0.1:6514",
            "--listen-tls",
            "[::1]:6514",
            "--tls-cert",
            "/etc/zl/cert.pem",
            "--tls-key",
            "/etc/zl/key.pem",
            "--tls-ca",
            "/etc/zl/ca.pem",
            "--tls-permitted-peer",
            "*.example.com",
            "--tls-permitted-peer",
            "log.example.net",
        ]);
        assert_eq!(
            f.tls,
            [
                "127.0.0.1:6514".parse::<SocketAddr>().unwrap(),
                "[::1]:6514".parse().unwrap()
            ]
        );
        assert_eq!(
            f.tls_settings,
            Some(TlsSettings {
                cert: "/etc/zl/cert.pem".into(),
                key: "/etc/zl/key.pem".into(),
                ca: Some("/etc/zl/ca.pem".into()),
                permitted_peers: vec!["*.example.com".into(), "log.example.net".into()],
            })
        );

        let r = receiver(&[
            "log1",
            "7001",
            "-t",
            "nginx",
            "-t",
            "kernel",
            "--output-port",
            "7200",
            "--bind",
            "0.0.0.0",
            "--hwm",
            "8",
            "--queue-bytes",
            "3000000",
            "--max-message-size",
            "1000",
            "--connect",
            "ipc:///run/p.sock",
            "--allow",
            "10.0.0.0/8",
        ]);
        let want = ReceiverConfig {
            curve: None,
            curve_output: None,
            connect: vec![ep("tcp://log1:7001"), ep("ipc:///run/p.sock")],
            topics: vec![b"nginx".to_vec(), b"kernel".to_vec()],
            output: ep("tcp://0.0.0.0:7200"),
            hwm: 8,
            queue_bytes: 3_000_000,
            max_message_size: 1000,
            allow: vec![net("10.0.0.0/8")],
            journal: None,
            group: "receiver".into(),
            delivery: zerolog::delivery::Delivery::Push,
        };
        assert_eq!(r, want);
        let r = receiver(&[
            "--connect",
            "localhost:7001",
            "--output-socket",
            "/run/r.sock",
        ]);
        assert_eq!(r.connect, [ep("tcp://localhost:7001")]);
        assert_eq!(r.output, ep("ipc:///run/r.sock"));

        let w = worker(&[
            "-d",
            "/opt/w",
            "--framing",
            "nul",
            "--receive",
            "joined",
            "--join-separator",
            "|",
            "--queue-bytes",
            "4000000",
            "--max-message-size",
            "2000",
            "tcp://127.0.0.1:7200",
            "prog",
            "--verbose",
            "x",
        ]);
        let want = WorkerConfig {
            backend: ep("tcp://127.0.0.1:7200"),
            command: vec!["prog".into(), "--verbose".into(), "x".into()],
            directory: Some("/opt/w".into()),
            framing: OutputFraming::Nul,
            receive: Receive::Joined(b"|".to_vec()),
            queue_bytes: 4_000_000,
            max_message_size: 2000,
            delivery: zerolog::delivery::Delivery::Push,
            with_seq: false,
            curve: None,
        };
        assert_eq!(w, want);
    }

    #[test]
    fn a_bad_endpoint_is_a_usage_error_naming_it() {
        let argv = ["zerolog", "worker", "udp://127.0.0.1:7200", "stdout"];
        let e = ZerologCli::try_parse_from(argv).err().expect("refused");
        assert_eq!(e.kind(), clap::error::ErrorKind::ValueValidation);
        assert!(e.to_string().contains("udp://127.0.0.1:7200"), "{e}");
    }
}
