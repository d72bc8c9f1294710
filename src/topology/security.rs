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
    let clients = s.field(ctx, "curve_clients");
    let Some(secret_key) = curve_secret_key(ctx, s) else {
        if let Some(f) = clients {
            ctx.error(
                f.line,
                &f.key,
                "curve_clients needs curve_secret_key (the forwarder's key file)",
            );
        }
        return None;
    };
    let mut keys = Vec::new();
    if let Some(f) = clients {
        for (text, line) in ctx.strings(&f, true).unwrap_or_default() {
            keys.extend(curve_public_key(ctx, &f.key, text, line));
        }
    }
    Some(zerolog::curve::CurveServer {
        secret_key,
        clients: keys,
    })
}

/// `[[receiver]]` keys `curve_secret_key` and `curve_server_key`: both or neither.
pub(super) fn curve_client(
    ctx: &mut Ctx<'_>,
    s: &Section<'_>,
) -> Option<zerolog::curve::CurveClient> {
    let server = s.field(ctx, "curve_server_key");
    let given_server = server.is_some();
    let secret_key = curve_secret_key(ctx, s);
    let server_key = match server {
        Some(f) => {
            let text = ctx.string(&f)?;
            curve_public_key(ctx, &f.key, text, f.line)
        }
        None => None,
    };
    match (secret_key, server_key) {
        (Some(secret_key), Some(server_key)) => Some(zerolog::curve::CurveClient {
            secret_key,
            server_key,
        }),
        (Some(_), None) if !given_server => {
            let line = s.key_line(ctx, "curve_secret_key");
            ctx.error(
                line,
                s.key_path("curve_server_key"),
                "curve_secret_key needs curve_server_key (the forwarder's public key)",
            );
            None
        }
        (None, Some(_)) => {
            let line = s.key_line(ctx, "curve_server_key");
            ctx.error(
                line,
                s.key_path("curve_secret_key"),
                "curve_server_key needs curve_secret_key (this receiver's key file)",
            );
            None
        }
        _ => None,
    }
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
        let file = e.path().and_then(|p| {
            let mine = [
                Some(&settings.cert),
                Some(&settings.key),
                settings.ca.as_ref(),
            ];
            mine.iter().position(|m| *m == Some(&p.to_path_buf()))
        });
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
