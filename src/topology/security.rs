//! The keys that encrypt and authenticate: CURVE on the ZeroMQ hops (`curve_*`), TLS on the
//! forwarder's inputs (`tls*`). Key and certificate files are read while the topology is read,
//! so a missing, malformed or exposed one is an error at its key's line, before anything
//! starts.

use std::path::PathBuf;

use zerolog::forwarder::ForwarderConfig;
use zerolog::tls::{TlsServer, TlsSettings};

use super::checks::*;
use super::diagnostics::*;
use super::sections::socket_addrs;
use super::{ReceiverSection, WorkerKind, WorkerSection};

/// Key `curve_secret_key`: the key file, read now so a missing, bad or exposed one is
/// reported at the key's line.
fn curve_secret_key(ctx: &mut Ctx<'_>, s: &Section<'_>) -> Option<PathBuf> {
    let f = s.field(ctx, "curve_secret_key")?;
    let path = PathBuf::from(ctx.string(&f)?);
    if let Err(e) = zerolog::curve::KeyPair::read(&path) {
        ctx.error(f.line, &f.key, e.to_string());
    }
    Some(path)
}

/// A public key option: Z85 text or a file holding it, checked now.
fn curve_public_key(ctx: &mut Ctx<'_>, key: &str, text: String, line: usize) -> Option<String> {
    match zerolog::curve::public_key(&text) {
        Ok(_) => Some(text),
        Err(e) => {
            ctx.error(line, key, e.to_string());
            None
        }
    }
}

/// `[forwarder]` keys `curve_secret_key` and `curve_clients`.
pub(super) fn curve_server(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
) -> Option<zerolog::curve::CurveServer> {
    let secret_key = curve_secret_key(ctx, s);
    let clients = public_keys(ctx, s, "curve_clients");
    match (secret_key, clients) {
        (Some(secret_key), clients) => Some(zerolog::curve::CurveServer {
            secret_key,
            clients: clients.map(|(_, keys)| keys).unwrap_or_default(),
        }),
        (None, Some((line, _))) => {
            let what = "curve_clients needs curve_secret_key (the forwarder's key file)";
            ctx.error(line, s.key_path("curve_clients"), what);
            None
        }
        (None, None) => None,
    }
}

/// `[[receiver]]` keys `curve_secret_key` (its key pair), `curve_server_key` (CURVE towards
/// the forwarder) and `curve_workers` (CURVE on its TCP output, these worker keys allowed, or
/// any when the list is empty): the key pair and at least one of the others.
pub(super) fn receiver_curve(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    output_endpoint: &zerolog::endpoint::Endpoint,
) -> (
    Option<zerolog::curve::CurveClient>,
    Option<zerolog::curve::CurveServer>,
) {
    let secret_key = curve_secret_key(ctx, s);
    let workers = public_keys(ctx, s, "curve_workers");
    // With curve_workers, the key pair may serve the output only.
    let alone_ok = workers.is_some();
    let whose = ("the forwarder", "this receiver");
    let client = client_pair(ctx, s, secret_key.clone(), whose, alone_ok);
    let output = match (secret_key, workers) {
        (Some(secret_key), Some((_, clients))) => Some(zerolog::curve::CurveServer {
            secret_key,
            clients,
        }),
        (None, Some((line, _))) => {
            let what = "curve_workers needs curve_secret_key (this receiver's key file)";
            ctx.error(line, s.key_path("curve_secret_key"), what);
            None
        }
        _ => None,
    };
    if output.is_some() && output_endpoint.port().is_none() {
        let line = s.key_line(ctx, "curve_workers");
        let what = "curve_workers applies to a TCP output (workers on other hosts): set output = \"tcp://ADDR:PORT\"";
        ctx.error(line, s.key_path("curve_workers"), what);
    }
    (client, output)
}

/// `[[worker]]` keys `curve_secret_key` and `curve_server_key` (the receiver's public key):
/// both or neither, on a stdin worker (a zmq worker connects by itself).
pub(super) fn worker_curve(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    kind: Option<WorkerKind>,
) -> Option<zerolog::curve::CurveClient> {
    let secret_key = curve_secret_key(ctx, s);
    let client = client_pair(ctx, s, secret_key, ("the receiver", "this worker"), false)?;
    if kind == Some(WorkerKind::Zmq) {
        let line = s.key_line(ctx, "curve_secret_key");
        let what = "a zmq worker connects by itself: give the program its keys (curve keys apply to stdin workers)";
        ctx.error(line, s.key_path("curve_secret_key"), what);
        return None;
    }
    Some(client)
}

/// A worker of `receiver` has CURVE keys exactly when the receiver's output has CURVE.
pub(super) fn check_worker_curve(
    ctx: &mut Ctx<'_>,
    w: &WorkerSection,
    receiver: Option<&ReceiverSection>,
    line: usize,
) {
    let Some(r) = receiver else {
        return;
    };
    let key = format!("worker \"{}\"", w.name);
    match (r.config.curve_output.is_some(), w.curve.is_some(), w.kind) {
        (true, false, WorkerKind::Stdin) => ctx.error(
            line,
            key,
            format!("receiver \"{}\" has CURVE on its output (curve_workers): set curve_secret_key and curve_server_key (its public key)", r.name),
        ),
        (false, true, _) => ctx.error(
            line,
            key,
            format!("receiver \"{}\" has no CURVE on its output: curve_secret_key and curve_server_key do not apply (set its curve_workers)", r.name),
        ),
        _ => {}
    }
}

/// A CURVE client's keys: `secret_key` (already read) and `curve_server_key`, both or
/// neither; `whose` names the server and this side for the messages. `alone_ok`: the key pair
/// may come without a server key (a receiver's, for its output).
fn client_pair(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    secret_key: Option<PathBuf>,
    (server, me): (&str, &str),
    alone_ok: bool,
) -> Option<zerolog::curve::CurveClient> {
    let server_key = s.field(ctx, "curve_server_key").map(|f| {
        let key = ctx
            .string(&f)
            .and_then(|t| curve_public_key(ctx, &f.key, t, f.line));
        (key, f.line)
    });
    match (secret_key, server_key) {
        (Some(secret_key), Some((Some(server_key), _))) => Some(zerolog::curve::CurveClient {
            secret_key,
            server_key,
        }),
        (Some(_), None) if !alone_ok => {
            let line = s.key_line(ctx, "curve_secret_key");
            let what = format!("curve_secret_key needs curve_server_key ({server}'s public key)");
            ctx.error(line, s.key_path("curve_server_key"), what);
            None
        }
        (None, Some((_, line))) => {
            let what = format!("curve_server_key needs curve_secret_key ({me}'s key file)");
            ctx.error(line, s.key_path("curve_secret_key"), what);
            None
        }
        _ => None,
    }
}

/// A list of public keys (`curve_clients`, `curve_workers`), each checked: the key's line and
/// the keys, when it is given.
fn public_keys(ctx: &mut Ctx<'_>, s: &Section<'_>, key: &str) -> Option<(usize, Vec<String>)> {
    let f = s.field(ctx, key)?;
    let mut keys = Vec::new();
    for (text, line) in ctx.strings(&f, true).unwrap_or_default() {
        keys.extend(curve_public_key(ctx, &f.key, text, line));
    }
    Some((f.line, keys))
}

/// `[forwarder]` keys `tls` and `relp_tls` (the inputs), `tls_cert`, `tls_key`, `tls_ca` and
/// `tls_permitted_peers`; the files are read as the forwarder will read them.
pub(super) fn tls_inputs(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
    binds: &mut Vec<Bind>,
    c: &mut ForwarderConfig,
) {
    c.tls = socket_addrs(ctx, s, "tls", Proto::Tcp, binds).unwrap_or_default();
    c.relp_tls = socket_addrs(ctx, s, "relp_tls", Proto::Tcp, binds).unwrap_or_default();
    let inputs = !(c.tls.is_empty() && c.relp_tls.is_empty());
    let files: Vec<Option<Field<'_>>> = TLS_FILE_KEYS.iter().map(|k| s.field(ctx, k)).collect();
    let peers = s.field(ctx, "tls_permitted_peers");
    let (Some(cert), Some(key)) = (&files[0], &files[1]) else {
        let given = files.iter().flatten().next().or(peers.as_ref());
        match (inputs, given) {
            (false, None) => {}
            (false, Some(f)) => ctx.error(
                f.line,
                &f.key,
                "no TLS input (tls, relp_tls) to apply it to",
            ),
            (true, _) => {
                let line = s.key_line(ctx, if c.tls.is_empty() { "relp_tls" } else { "tls" });
                let missing = if files[0].is_none() {
                    "tls_cert"
                } else {
                    "tls_key"
                };
                let what =
                    "TLS inputs need tls_cert (a PEM certificate) and tls_key (its private key)";
                ctx.error(line, s.key_path(missing), what);
            }
        }
        return;
    };
    let (Some(cert_path), Some(key_path)) = (ctx.string(cert), ctx.string(key)) else {
        return;
    };
    let ca = files[2].as_ref().and_then(|f| ctx.string(f));
    let permitted_peers = match &peers {
        Some(f) => ctx
            .strings(f, true)
            .unwrap_or_default()
            .into_iter()
            .map(|(t, _)| t)
            .collect(),
        None => Vec::new(),
    };
    let settings = TlsSettings {
        cert: cert_path.into(),
        key: key_path.into(),
        ca: ca.map(PathBuf::from),
        permitted_peers,
    };
    if let Err(e) = TlsServer::new(&settings) {
        // At the key whose file the error is about; else at the list, or the certificate.
        let mine = [
            Some(settings.cert.as_path()),
            Some(settings.key.as_path()),
            settings.ca.as_deref(),
        ];
        let file = e
            .path()
            .and_then(|p| mine.iter().position(|m| *m == Some(p)));
        let at = match file {
            Some(i) => files[i].as_ref(),
            None => peers.as_ref(),
        };
        let at = at.unwrap_or(cert);
        ctx.error(at.line, &at.key, e.to_string());
    }
    if !inputs {
        let what =
            "tls_cert is set but there is no TLS input: add tls = [\"ADDR:PORT\"] or relp_tls";
        ctx.error(cert.line, &cert.key, what);
    }
    c.tls_settings = Some(settings);
}

/// The keys naming the TLS inputs' files, in [`TlsSettings`]' order.
const TLS_FILE_KEYS: [&str; 3] = ["tls_cert", "tls_key", "tls_ca"];
