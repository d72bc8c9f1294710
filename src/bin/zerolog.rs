//! `zerolog`: the pipeline elements (forwarder, receiver, worker) as one command.

use std::net::SocketAddr;
use std::process::ExitCode;

use clap::Parser;
use zerolog::forwarder::Forwarder;
use zerolog::receiver::Receiver;
use zerolog::signals::Signals;
use zerolog::Error;
use zerologd::cli::{Element, ForwarderArgs, LoggenArgs, ReceiverArgs, WorkerArgs, ZerologCli};
use zerologd::logging;

fn main() -> ExitCode {
    // Before the first allocation that matters (see its documentation).
    zerolog::process::tune_malloc();
    let cli = ZerologCli::parse();
    let log_config = match &cli.command {
        Element::Forwarder(a) => a.log_config.clone(),
        Element::Receiver(a) => a.log_config.clone(),
        Element::Worker(a) => a.log_config.clone(),
        Element::Loggen(_) | Element::Keygen(_) => None,
    };
    if let Err(e) = logging::init(log_config.as_deref()) {
        eprintln!("zerolog: {e}");
        return ExitCode::from(2);
    }
    let result = match cli.command {
        Element::Forwarder(a) => forwarder(a),
        Element::Receiver(a) => receiver(a),
        Element::Worker(a) => worker(a),
        Element::Loggen(a) => loggen(a),
        Element::Keygen(a) => keygen(&a.path),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            let code = match e {
                Error::Usage(_)
                | Error::ProgramNotFound { .. }
                | Error::ConfigFile(_)
                | Error::Curve(_)
                | Error::Tls(_) => 2,
                Error::ProgramDied { code, .. } => code.clamp(1, 255),
                _ => 1,
            };
            ExitCode::from(code as u8)
        }
    }
}

fn forwarder(a: ForwarderArgs) -> Result<(), Error> {
    let config = a.into_config()?;
    // Many idle connections need many descriptors.
    zerolog::process::raise_fd_limit();
    // One thread reads and frames every connection; the publisher has its own. On a machine
    // where the pipeline's processes share a few cores, work-stealing threads only add
    // wake-ups and cross-thread hand-offs.
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|source| Error::Io {
            context: "starting runtime",
            source,
        })?;
    rt.block_on(async {
        let fwd = Forwarder::bind(config).await?;
        tracing::info!(
            publish = fwd.publish_endpoint().to_string().as_str(),
            "forwarder bound"
        );
        // Registered before the forwarder is ready: zerologd may send SIGHUP from then on.
        let hup = tokio::signal::unix::signal(tokio::signal::unix::SignalKind::hangup()).map_err(
            |source| Error::Io {
                context: "installing the SIGHUP handler",
                source,
            },
        )?;
        tokio::spawn(reload_tls_on_sighup(hup, fwd.tls_reloader()));
        fwd.run(shutdown_signal(), zerolog::notify::ready).await
    })
}

/// Re-reads the TLS inputs' certificate, key and CA on each SIGHUP (zerologd sends one on
/// reload); a file that does not read keeps the ones in use. Without TLS inputs, SIGHUP
/// changes nothing (rather than ending the process, its default).
async fn reload_tls_on_sighup(
    mut hup: tokio::signal::unix::Signal,
    reloader: Option<zerolog::forwarder::TlsReloader>,
) {
    while hup.recv().await.is_some() {
        let Some(reloader) = &reloader else {
            tracing::info!("SIGHUP: no TLS input, nothing to re-read");
            continue;
        };
        if let Err(e) = reloader.reload() {
            tracing::error!(error = %e, "SIGHUP: the TLS files do not read; the inputs keep the certificate they had");
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
    let config = a.into_config()?;
    let signals = install_signals()?;
    let receiver = Receiver::bind(&config)?;
    tracing::info!(
        forwarder = %config.connect.iter().map(ToString::to_string).collect::<Vec<_>>().join(","),
        topics = ?config.topics.iter().map(|t| String::from_utf8_lossy(t).into_owned()).collect::<Vec<_>>(),
        output = receiver.output_endpoint().to_string().as_str(),
        "receiver ready"
    );
    zerolog::notify::ready();
    receiver.run(&signals)
}

fn worker(a: WorkerArgs) -> Result<(), Error> {
    let config = a.into_config()?;
    config.run(&install_signals()?)
}

fn keygen(path: &std::path::Path) -> Result<(), Error> {
    let pair = zerolog::curve::KeyPair::generate()?;
    let public = pair.write(path)?;
    let text = format!(
        "{}\n# secret key: {} (keep it on this host); public key: {}\n",
        pair.public_z85(),
        path.display(),
        public.display()
    );
    zerologd::cli::print_stdout(&text).map_err(|source| Error::Io {
        context: "writing to stdout",
        source,
    })
}

fn loggen(a: LoggenArgs) -> Result<(), Error> {
    let tls = match &a.tls_ca {
        Some(ca) if a.tls => {
            let name = a.tls_server_name.clone().unwrap_or(a.host.to_string());
            let client = a.tls_cert.as_deref().zip(a.tls_key.as_deref());
            Some(zerologd::loggen::TlsClient::new(ca, client, &name)?)
        }
        _ => None,
    };
    let config = zerologd::loggen::LoggenConfig {
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
        relp: a.relp,
        relp_window: a.relp_window as usize,
        tls,
        handshakes: a.tls_handshakes,
    };
    let r = zerologd::loggen::run(&config)?;
    let report = if a.json {
        serde_json::to_string(&r).unwrap_or_default()
    } else {
        format!(
            "sent {} messages ({} bytes) over {} connection(s) in {:.3} s: {:.0} msg/s, {:.1} MB/s{}{}",
            r.messages,
            r.bytes,
            r.connections,
            r.seconds,
            r.messages_per_s,
            r.mb_per_s,
            r.relp_summary(),
            r.handshake_summary()
        )
    };
    zerologd::cli::print_stdout(&format!("{report}\n")).map_err(|source| Error::Io {
        context: "writing the report",
        source,
    })
}
