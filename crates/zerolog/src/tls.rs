//! The TLS input (syslog over TLS, RFC 5425): the server side's configuration, the check of
//! a client's certificate against `permitted_peers`, and the per-connection handshake; and
//! the sending side's configuration, [`client_config`].
//!
//! The forwarder reads [`TlsSettings`] from its configuration, builds a [`TlsServer`] from
//! them, and calls [`TlsServer::accept`] on each TCP connection; what comes out is a byte
//! stream like a plain TCP connection's, framed the same way (RFC 5425 uses octet counting,
//! RFC 6587 framing covers it). [`TlsServer::new`] reads the files afresh on each call, so a
//! reload (SIGHUP) picks up renewed certificates without a restart.
//!
//! With `ca` set, every client must present a certificate that chains to it (mutual TLS, as
//! rsyslog's `x509/name` mode); `permitted_peers` then narrows who may send, by name (the
//! certificate's DNS names, else its common name) or by SHA-256 fingerprint. Without `ca`, no
//! client certificate is asked for: the connection is encrypted, not authenticated.
//!
//! Only TLS 1.2 and 1.3 are spoken (rustls has nothing older). No error or refusal here shows
//! key material: they name files, certificates' names and fingerprints, never contents.

use std::fmt::Write as _;
use std::fs::File;
use std::io::{self, Read};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::Duration;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::{self, PemObject};
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::{Acceptor, WebPkiClientVerifier};
use rustls::{RootCertStore, ServerConfig};
use tokio::net::TcpStream;
use tokio_rustls::server::TlsStream;
use tokio_rustls::LazyConfigAcceptor;

/// Settings of a TLS input, as read from the configuration: paths, not contents, so that the
/// configuration can be shown or logged whole, and so that a reload reads renewed files.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TlsSettings {
    /// PEM certificate chain of this server, its own certificate first.
    pub cert: PathBuf,
    /// PEM private key of `cert` (PKCS#8, PKCS#1 or SEC1, not encrypted). The file must not be
    /// readable or writable by others than its owner and group (see [`check_key_file_mode`]).
    pub key: PathBuf,
    /// PEM CA bundle. When set, a client certificate is mandatory and must chain to one of
    /// these; when not, no client certificate is asked for.
    #[serde(default)]
    pub ca: Option<PathBuf>,
    /// Who may send, among the clients the CA accepts: DNS names (`host.example.com`, or
    /// `*.example.com` for exactly one more leftmost label), matched case-insensitively
    /// against the client certificate's DNS names, or its common name if it has none; or
    /// fingerprints of the client's own certificate, `SHA256:AB:CD:...` (hex, colons optional,
    /// any case), as rsyslog prints them. Empty: any client the CA accepts. Needs `ca`.
    #[serde(default)]
    pub permitted_peers: Vec<String>,
}

/// What is wrong with the TLS settings or their files. Each names the file or entry and what
/// was wrong with it, never what a key file holds.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// A file cannot be opened or read.
    #[error("cannot read {path}: {source}")]
    Read {
        /// The file.
        path: PathBuf,
        /// What the system said.
        source: io::Error,
    },
    /// A private key file that others than its owner and group may read or write.
    #[error(
        "private key file {path} has mode {mode:04o}: it must not be readable or writable \
         by others (chmod o-rwx {path})"
    )]
    KeyFileMode {
        /// The key file.
        path: PathBuf,
        /// Its permission bits.
        mode: u32,
    },
    /// A file is not well-formed PEM.
    #[error("{path}: {what}")]
    Pem {
        /// The file.
        path: PathBuf,
        /// What is malformed, in general terms (not the offending text).
        what: &'static str,
    },
    /// A certificate or CA file holds no certificate.
    #[error("{path}: no certificate in it (expected a PEM \"BEGIN CERTIFICATE\" section)")]
    NoCertificate {
        /// The file.
        path: PathBuf,
    },
    /// The key file holds no private key that can be used.
    #[error(
        "{path}: no private key in it (expected PEM \"BEGIN PRIVATE KEY\", \
         \"BEGIN RSA PRIVATE KEY\" or \"BEGIN EC PRIVATE KEY\"; encrypted keys are not supported)"
    )]
    NoKey {
        /// The key file.
        path: PathBuf,
    },
    /// The private key is not the key of the certificate.
    #[error("private key {key} does not match certificate {cert}")]
    KeyMismatch {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
    },
    /// The key or the certificate cannot be used (unsupported key type, malformed DER).
    #[error("certificate {cert} with private key {key}: {reason}")]
    Unusable {
        /// The certificate file.
        cert: PathBuf,
        /// The key file.
        key: PathBuf,
        /// What rustls said.
        reason: String,
    },
    /// A certificate of the CA bundle is not usable as a trust anchor.
    #[error("CA bundle {path}: certificate {index} (counting from 1): {reason}")]
    BadCa {
        /// The CA file.
        path: PathBuf,
        /// Its place in the file.
        index: usize,
        /// What rustls said.
        reason: String,
    },
    /// rustls refused the configuration as a whole.
    #[error("TLS configuration: {0}")]
    Config(String),
    /// An entry of `permitted_peers` that is neither a DNS name nor a SHA-256 fingerprint.
    #[error("permitted_peers entry {entry:?}: {reason}")]
    BadPeer {
        /// The entry, as given.
        entry: String,
        /// What is wrong with it.
        reason: &'static str,
    },
    /// `permitted_peers` without `ca`: no client certificate would be asked for, so every
    /// client would be refused.
    #[error("permitted_peers needs ca: without a CA no client certificate is asked for")]
    PeersWithoutCa,
}

impl TlsError {
    /// The file the error is about, if it is about one.
    pub fn path(&self) -> Option<&Path> {
        match self {
            TlsError::Read { path, .. }
            | TlsError::KeyFileMode { path, .. }
            | TlsError::Pem { path, .. }
            | TlsError::NoCertificate { path }
            | TlsError::NoKey { path }
            | TlsError::BadCa { path, .. } => Some(path),
            TlsError::KeyMismatch { key, .. } | TlsError::Unusable { key, .. } => Some(key),
            TlsError::Config(_) | TlsError::BadPeer { .. } | TlsError::PeersWithoutCa => None,
        }
    }
}

/// Refuses a private key file that others than its owner and group may read or write
/// ([`crate::process::exposed_secret`]): such a key is as good as public.
pub fn check_key_file_mode(path: &Path) -> Result<(), TlsError> {
    let meta = std::fs::metadata(path).map_err(|e| read_error(path, e))?;
    check_mode(path, meta.permissions().mode())
}

fn check_mode(path: &Path, mode: u32) -> Result<(), TlsError> {
    if !crate::process::exposed_secret(mode) {
        return Ok(());
    }
    Err(TlsError::KeyFileMode {
        path: path.to_owned(),
        mode: mode & 0o7777,
    })
}

/// The rustls configuration of a TLS input, from its files, read afresh on each call (so that
/// a reload takes renewed certificates). TLS 1.2 and 1.3; client certificates mandatory and
/// verified against `ca` when it is set, not asked for otherwise.
pub fn server_config(s: &TlsSettings) -> Result<Arc<ServerConfig>, TlsError> {
    server_config_with(s, read_certs(&s.cert)?)
}

/// [`server_config`] with the certificate chain already read.
fn server_config_with(
    s: &TlsSettings,
    certs: Vec<CertificateDer<'static>>,
) -> Result<Arc<ServerConfig>, TlsError> {
    if s.ca.is_none() && !s.permitted_peers.is_empty() {
        return Err(TlsError::PeersWithoutCa);
    }
    let key = read_key(&s.key)?;
    let provider = provider();
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?;
    let builder = match &s.ca {
        Some(ca) => builder.with_client_cert_verifier(client_verifier(ca, provider)?),
        None => builder.with_no_client_auth(),
    };
    let config = builder
        .with_single_cert(certs, key)
        .map_err(|e| cert_key_error(&s.cert, &s.key, e))?;
    Ok(Arc::new(config))
}

/// The server side of a TLS input, built from its settings' files: the rustls configuration,
/// the names its certificate carries, and the `permitted_peers` check. A reload builds a new
/// one; connections keep the one they were accepted with.
pub struct TlsServer {
    config: Arc<ServerConfig>,
    /// The DNS names (else the CN) of the server's certificate: a client that asks for another
    /// name by SNI is refused, as it is talking to the wrong server (or was pointed here).
    names: Vec<NamePattern>,
    check: PeerCheck,
}

impl std::fmt::Debug for TlsServer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("TlsServer")
            .field("names", &self.names)
            .field("check", &self.check)
            .finish_non_exhaustive()
    }
}

impl TlsServer {
    /// Reads the certificate, key and CA files and parses `permitted_peers`.
    pub fn new(s: &TlsSettings) -> Result<Self, TlsError> {
        let check = PeerCheck::from_settings(s)?;
        let certs = read_certs(&s.cert)?;
        // Names that are not DNS names (an IP address as CN) are no use against SNI, which
        // only carries DNS names.
        let names = CertNames::of(&certs[0])
            .map(|n| n.list().iter().filter_map(|n| parse_name(n).ok()).collect())
            .unwrap_or_default();
        Ok(TlsServer {
            config: server_config_with(s, certs)?,
            names,
            check,
        })
    }

    /// The server side of one connection's handshake, within `timeout`, then the check of the
    /// client's certificate against `permitted_peers`. A refused connection is dropped
    /// (closed); the caller logs the refusal with the peer's address.
    pub async fn accept(
        &self,
        stream: TcpStream,
        timeout: Duration,
    ) -> Result<TlsStream<TcpStream>, Refused> {
        let handshake = async {
            let start = LazyConfigAcceptor::new(Acceptor::default(), stream)
                .await
                .map_err(Refused::Handshake)?;
            if let Some(name) = start.client_hello().server_name() {
                if !self.serves(name) {
                    return Err(Refused::WrongName(name.to_owned()));
                }
            }
            start
                .into_stream(self.config.clone())
                .await
                .map_err(Refused::Handshake)
        };
        let tls = tokio::time::timeout(timeout, handshake)
            .await
            .map_err(|_| Refused::Timeout(timeout))??;
        check_peer(&tls, &self.check)?;
        Ok(tls)
    }

    /// Whether a client asking for `name` by SNI reached the server it meant. A certificate
    /// without DNS names (IP addresses only) cannot tell, and takes any.
    fn serves(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names.is_empty() || self.names.iter().any(|p| p.matches(&name))
    }
}

/// A TLS client's configuration (`zerolog loggen --tls`, or a worker author's own sender):
/// the server's certificate must chain to a CA of the bundle `ca`, with `client` (certificate
/// chain, private key) presented when the server asks for one. No session resumption: each
/// connection makes a full handshake, which is what a benchmark of handshakes needs and what
/// long-lived syslog connections lose nothing by. TLS 1.2 and 1.3, as the server side.
pub fn client_config(
    ca: &Path,
    client: Option<(&Path, &Path)>,
) -> Result<Arc<rustls::ClientConfig>, TlsError> {
    let builder = rustls::ClientConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13, &rustls::version::TLS12])
        .map_err(|e| TlsError::Config(e.to_string()))?
        .with_root_certificates(roots(ca)?);
    let mut config = match client {
        Some((cert, key)) => builder
            .with_client_auth_cert(read_certs(cert)?, read_key(key)?)
            .map_err(|e| cert_key_error(cert, key, e))?,
        None => builder.with_no_client_auth(),
    };
    config.resumption = rustls::client::Resumption::disabled();
    Ok(Arc::new(config))
}

/// ring, named explicitly rather than rustls' process-wide default, which panics when a
/// build happens to enable two providers.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// A verifier that requires a client certificate chaining to one of the bundle's CAs.
fn client_verifier(
    ca: &Path,
    provider: Arc<CryptoProvider>,
) -> Result<Arc<dyn rustls::server::danger::ClientCertVerifier>, TlsError> {
    WebPkiClientVerifier::builder_with_provider(Arc::new(roots(ca)?), provider)
        .build()
        .map_err(|e| TlsError::Config(format!("CA bundle {}: {e}", ca.display())))
}

/// The trust anchors of a PEM CA bundle, each certificate checked.
fn roots(ca: &Path) -> Result<RootCertStore, TlsError> {
    let mut roots = RootCertStore::empty();
    for (i, cert) in read_certs(ca)?.into_iter().enumerate() {
        roots.add(cert).map_err(|e| TlsError::BadCa {
            path: ca.to_owned(),
            index: i + 1,
            reason: e.to_string(),
        })?;
    }
    Ok(roots)
}

/// Key mismatch gets its own variant: it is the usual mistake after a renewal (new
/// certificate, old key), and deserves a message that says so.
fn cert_key_error(cert: &Path, key: &Path, e: rustls::Error) -> TlsError {
    let (cert, key) = (cert.to_owned(), key.to_owned());
    if let rustls::Error::InconsistentKeys(rustls::InconsistentKeys::KeyMismatch) = e {
        return TlsError::KeyMismatch { cert, key };
    }
    TlsError::Unusable {
        cert,
        key,
        reason: e.to_string(),
    }
}

/// Every certificate of a PEM file, in order; an error if there is none.
fn read_certs(path: &Path) -> Result<Vec<CertificateDer<'static>>, TlsError> {
    let bytes = std::fs::read(path).map_err(|e| read_error(path, e))?;
    let certs = CertificateDer::pem_slice_iter(&bytes)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| pem_error(path, &e))?;
    if certs.is_empty() {
        return Err(TlsError::NoCertificate {
            path: path.to_owned(),
        });
    }
    Ok(certs)
}

/// The first private key of a PEM file, after checking the mode of the file opened (not of
/// the path, which could be replaced between the check and the read).
fn read_key(path: &Path) -> Result<PrivateKeyDer<'static>, TlsError> {
    let mut file = File::open(path).map_err(|e| read_error(path, e))?;
    let meta = file.metadata().map_err(|e| read_error(path, e))?;
    check_mode(path, meta.permissions().mode())?;
    let mut bytes = Vec::new();
    file.read_to_end(&mut bytes)
        .map_err(|e| read_error(path, e))?;
    PrivateKeyDer::from_pem_slice(&bytes).map_err(|e| match e {
        pem::Error::NoItemsFound => TlsError::NoKey {
            path: path.to_owned(),
        },
        e => pem_error(path, &e),
    })
}

fn read_error(path: &Path, source: io::Error) -> TlsError {
    TlsError::Read {
        path: path.to_owned(),
        source,
    }
}

/// What is wrong with a PEM file, in general terms: the parser's own messages quote the
/// offending line or bytes, which in a key file would be key material.
fn pem_error(path: &Path, e: &pem::Error) -> TlsError {
    let what = match e {
        pem::Error::MissingSectionEnd { .. } => "a PEM section has no END line",
        pem::Error::IllegalSectionStart { .. } => "a malformed PEM BEGIN line",
        pem::Error::Base64Decode(_) => "invalid base64 in a PEM section",
        pem::Error::NoItemsFound => "no PEM section in it",
        pem::Error::SectionTooLarge => "a PEM section is too large",
        _ => "not valid PEM",
    };
    TlsError::Pem {
        path: path.to_owned(),
        what,
    }
}

/// The SHA-256 fingerprint of a DER certificate as rsyslog prints it, `SHA256:AB:CD:...`, so
/// that an operator can copy it from either program's log into `permitted_peers`.
pub fn fingerprint(der: &[u8]) -> String {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut s = String::from("SHA256");
    for b in digest.as_ref() {
        let _ = write!(s, ":{b:02X}");
    }
    s
}

fn sha256(der: &[u8]) -> [u8; 32] {
    let digest = ring::digest::digest(&ring::digest::SHA256, der);
    let mut out = [0; 32];
    out.copy_from_slice(digest.as_ref());
    out
}

/// The `permitted_peers` of a TLS input, parsed once, so that a bad entry is an error at
/// start (or reload) rather than a refusal of every client.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct PeerCheck {
    names: Vec<NamePattern>,
    fingerprints: Vec<[u8; 32]>,
}

/// A name entry, lowercased: DNS names compare case-insensitively.
#[derive(Debug, Clone, PartialEq, Eq)]
enum NamePattern {
    /// `host.example.com`.
    Exact(String),
    /// `*.example.com`, kept as `example.com`.
    Wildcard(String),
}

impl PeerCheck {
    /// Parses `permitted_peers` entries; the error names the first bad one.
    pub fn new(entries: &[String]) -> Result<Self, TlsError> {
        let mut check = PeerCheck::default();
        for entry in entries {
            check.add(entry).map_err(|reason| TlsError::BadPeer {
                entry: entry.clone(),
                reason,
            })?;
        }
        Ok(check)
    }

    /// [`PeerCheck::new`] of the settings' `permitted_peers`, refusing entries without `ca`
    /// (no client certificate would be asked for, so none could be permitted).
    pub fn from_settings(s: &TlsSettings) -> Result<Self, TlsError> {
        if s.ca.is_none() && !s.permitted_peers.is_empty() {
            return Err(TlsError::PeersWithoutCa);
        }
        PeerCheck::new(&s.permitted_peers)
    }

    /// True when there is no entry: any client the CA accepts may send.
    pub fn is_empty(&self) -> bool {
        self.names.is_empty() && self.fingerprints.is_empty()
    }

    fn add(&mut self, entry: &str) -> Result<(), &'static str> {
        match entry.split_once(':') {
            Some((kind, hex)) if kind.eq_ignore_ascii_case("sha256") => {
                self.fingerprints.push(parse_sha256(hex)?);
            }
            Some((kind, _)) if kind.eq_ignore_ascii_case("sha1") => {
                return Err("SHA1 fingerprints are not supported: give the SHA256 one");
            }
            Some(_) => return Err("unknown fingerprint type (expected SHA256:...)"),
            None => self.names.push(parse_name(entry)?),
        }
        Ok(())
    }

    /// Whether the client with this end-entity certificate (DER) may send. The refusal says
    /// why, with the certificate's names and fingerprint, for the operator to fix either side.
    pub fn permits(&self, end_entity_der: &[u8]) -> Result<(), String> {
        if self.is_empty() || self.fingerprints.contains(&sha256(end_entity_der)) {
            return Ok(());
        }
        let names = match CertNames::of(end_entity_der) {
            Ok(names) => names,
            Err(why) => return Err(format!("{why} ({})", fingerprint(end_entity_der))),
        };
        if names.list().iter().any(|n| self.matches(n)) {
            return Ok(());
        }
        Err(format!(
            "client certificate with {names} ({}) matches no permitted_peers entry",
            fingerprint(end_entity_der)
        ))
    }

    fn matches(&self, name: &str) -> bool {
        let name = name.to_ascii_lowercase();
        self.names.iter().any(|p| p.matches(&name))
    }
}

/// 32 bytes from 64 hex digits, colons anywhere.
fn parse_sha256(hex: &str) -> Result<[u8; 32], &'static str> {
    const BAD: &str = "a SHA256 fingerprint is 32 bytes in hex (64 digits, colons optional)";
    let digits: Vec<u8> = hex.bytes().filter(|&b| b != b':').collect();
    if digits.len() != 64 {
        return Err(BAD);
    }
    let mut out = [0; 32];
    for (byte, pair) in out.iter_mut().zip(digits.chunks(2)) {
        let pair = std::str::from_utf8(pair).map_err(|_| BAD)?;
        *byte = u8::from_str_radix(pair, 16).map_err(|_| BAD)?;
    }
    Ok(out)
}

fn parse_name(entry: &str) -> Result<NamePattern, &'static str> {
    let lower = entry.to_ascii_lowercase();
    let (wildcard, rest) = match lower.strip_prefix("*.") {
        Some(rest) => (true, rest),
        None => (false, lower.as_str()),
    };
    if rest.contains('*') {
        return Err("a wildcard may only be the whole leftmost label, as in *.example.com");
    }
    if !rest.split('.').all(is_label) {
        return Err("not a DNS name, nor SHA256:... (labels of letters, digits, '-' and '_')");
    }
    Ok(match wildcard {
        true => NamePattern::Wildcard(rest.to_owned()),
        false => NamePattern::Exact(rest.to_owned()),
    })
}

fn is_label(label: &str) -> bool {
    !label.is_empty()
        && label
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_')
}

impl NamePattern {
    /// `name` is lowercased. A wildcard stands for exactly one label: `*.example.com` takes
    /// `a.example.com`, not `example.com` nor `a.b.example.com` (as in RFC 6125).
    fn matches(&self, name: &str) -> bool {
        match self {
            NamePattern::Exact(exact) => name == exact,
            NamePattern::Wildcard(suffix) => name
                .strip_suffix(suffix.as_str())
                .and_then(|head| head.strip_suffix('.'))
                .is_some_and(is_label),
        }
    }
}

/// The names of a certificate that `permitted_peers` (or a client's SNI) is matched against:
/// its DNS names, or its common names if it has no DNS name (older certificates carry the host
/// name only there, and rsyslog falls back to it too).
enum CertNames {
    Dns(Vec<String>),
    CommonName(Vec<String>),
}

impl CertNames {
    fn of(der: &[u8]) -> Result<Self, String> {
        let (_, cert) = x509_parser::parse_x509_certificate(der)
            .map_err(|e| format!("client certificate cannot be parsed: {e}"))?;
        let san = cert
            .subject_alternative_name()
            .map_err(|e| format!("client certificate's subjectAltName cannot be parsed: {e}"))?;
        let dns: Vec<String> = san
            .iter()
            .flat_map(|ext| ext.value.general_names.iter())
            .filter_map(|n| match n {
                x509_parser::extensions::GeneralName::DNSName(d) => Some((*d).to_owned()),
                _ => None,
            })
            .collect();
        if !dns.is_empty() {
            return Ok(CertNames::Dns(dns));
        }
        let cns = cert
            .subject()
            .iter_common_name()
            .filter_map(|cn| cn.as_str().ok())
            .map(str::to_owned)
            .collect();
        Ok(CertNames::CommonName(cns))
    }

    fn list(&self) -> &[String] {
        match self {
            CertNames::Dns(v) | CertNames::CommonName(v) => v,
        }
    }
}

/// Names quoted with `{:?}`: they come from the client, and must not forge log lines.
impl std::fmt::Display for CertNames {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            CertNames::Dns(v) => write!(f, "DNS names {v:?}"),
            CertNames::CommonName(v) if v.is_empty() => f.write_str("no DNS name and no CN"),
            CertNames::CommonName(v) => write!(f, "no DNS name, CN {v:?}"),
        }
    }
}

/// Why [`accept`] turned a connection away. Handshake errors are rustls' descriptions (alerts,
/// verification failures), never key material.
#[derive(Debug, thiserror::Error)]
pub enum Refused {
    /// The TLS handshake failed: not TLS, no or a bad client certificate, no common version
    /// or cipher suite, the client went away.
    #[error("TLS handshake failed: {0}")]
    Handshake(io::Error),
    /// The handshake did not finish in time: a client that connects and sends nothing must
    /// not hold a connection slot for ever.
    #[error("TLS handshake not done within {0:?}")]
    Timeout(Duration),
    /// `permitted_peers` is set and the client presented no certificate (only possible
    /// with a configuration that does not ask for one).
    #[error("client presented no certificate, and permitted_peers requires one")]
    NoCertificate,
    /// The client's certificate matches no `permitted_peers` entry: its names and
    /// fingerprint.
    #[error("{0}")]
    NotPermitted(String),
    /// The client asked by SNI for a name this server's certificate does not carry.
    #[error("client asked (SNI) for {0:?}, a name the server's certificate does not carry")]
    WrongName(String),
}

fn check_peer(tls: &TlsStream<TcpStream>, check: &PeerCheck) -> Result<(), Refused> {
    if check.is_empty() {
        return Ok(());
    }
    let certs = tls.get_ref().1.peer_certificates().unwrap_or_default();
    let end_entity = certs.first().ok_or(Refused::NoCertificate)?;
    check.permits(end_entity).map_err(Refused::NotPermitted)
}

#[cfg(test)]
mod tests {
    use super::*;
    use rcgen::{
        BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose,
        IsCa, KeyPair, KeyUsagePurpose,
    };
    use rustls::pki_types::PrivatePkcs8KeyDer;
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    use tokio::io::{AsyncReadExt, AsyncWriteExt};
    use tokio::net::TcpListener;

    const LONG: Duration = Duration::from_secs(10);

    /// A CA and a server certificate for `localhost`, as files in a tempdir.
    struct Pki {
        dir: tempfile::TempDir,
        ca: CertifiedIssuer<'static, KeyPair>,
        settings: TlsSettings,
    }

    /// A client certificate and key, in memory, as a TLS client holds them.
    struct Client {
        chain: Vec<CertificateDer<'static>>,
        key: PrivateKeyDer<'static>,
    }

    fn write_file(path: &Path, contents: &str, mode: u32) {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(mode)
            .open(path)
            .unwrap();
        f.write_all(contents.as_bytes()).unwrap();
        // The umask may have taken bits away; the tests want exactly `mode`.
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    fn ca() -> CertifiedIssuer<'static, KeyPair> {
        let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
        params
            .distinguished_name
            .push(DnType::CommonName, "zerolog test CA");
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
        CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap()
    }

    /// A leaf signed by `ca`, with these DNS names and CN.
    fn leaf(
        ca: &CertifiedIssuer<'static, KeyPair>,
        dns: &[&str],
        cn: &str,
        usage: ExtendedKeyUsagePurpose,
    ) -> (rcgen::Certificate, KeyPair) {
        let names: Vec<String> = dns.iter().map(|s| s.to_string()).collect();
        let mut params = CertificateParams::new(names).unwrap();
        params.distinguished_name.push(DnType::CommonName, cn);
        params.extended_key_usages = vec![usage];
        let key = KeyPair::generate().unwrap();
        let cert = params.signed_by(&key, ca).unwrap();
        (cert, key)
    }

    fn pki() -> Pki {
        let dir = tempfile::tempdir().unwrap();
        let ca = ca();
        let (cert, key) = leaf(
            &ca,
            &["localhost"],
            "localhost",
            ExtendedKeyUsagePurpose::ServerAuth,
        );
        let settings = TlsSettings {
            cert: dir.path().join("server.pem"),
            key: dir.path().join("server.key"),
            ca: Some(dir.path().join("ca.pem")),
            permitted_peers: vec![],
        };
        write_file(&settings.cert, &cert.pem(), 0o644);
        write_file(&settings.key, &key.serialize_pem(), 0o600);
        write_file(settings.ca.as_ref().unwrap(), &ca.pem(), 0o644);
        Pki { dir, ca, settings }
    }

    impl Pki {
        fn client(&self, dns: &[&str], cn: &str) -> Client {
            let (cert, key) = leaf(&self.ca, dns, cn, ExtendedKeyUsagePurpose::ClientAuth);
            Client {
                chain: vec![cert.der().clone()],
                key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
            }
        }

        fn client_config(&self, client: Option<Client>) -> Arc<rustls::ClientConfig> {
            let mut roots = RootCertStore::empty();
            roots.add(self.ca.der().clone()).unwrap();
            let builder = rustls::ClientConfig::builder_with_provider(provider())
                .with_safe_default_protocol_versions()
                .unwrap()
                .with_root_certificates(roots);
            Arc::new(match client {
                Some(c) => builder.with_client_auth_cert(c.chain, c.key).unwrap(),
                None => builder.with_no_client_auth(),
            })
        }
    }

    /// One connection from a client with `client` (or none) to a server with `settings`:
    /// the server's outcome, and what it read (the client sends one line and closes).
    async fn connect(
        pki: &Pki,
        settings: &TlsSettings,
        client: Option<Client>,
    ) -> Result<Vec<u8>, Refused> {
        connect_to("localhost", pki, settings, client).await
    }

    /// [`connect`], asking for the server `name` (SNI).
    async fn connect_to(
        name: &'static str,
        pki: &Pki,
        settings: &TlsSettings,
        client: Option<Client>,
    ) -> Result<Vec<u8>, Refused> {
        let server = TlsServer::new(settings).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        let connector = tokio_rustls::TlsConnector::from(pki.client_config(client));
        let sender = tokio::spawn(async move {
            let tcp = TcpStream::connect(addr).await?;
            let name = rustls::pki_types::ServerName::try_from(name).unwrap();
            let mut tls = connector.connect(name, tcp).await?;
            tls.write_all(b"<13>1 2026-01-01T00:00:00Z host app - - - over TLS\n")
                .await?;
            tls.shutdown().await
        });
        let (tcp, _) = listener.accept().await.unwrap();
        match server.accept(tcp, LONG).await {
            Ok(mut tls) => {
                let mut got = Vec::new();
                tls.read_to_end(&mut got).await.unwrap();
                sender.await.unwrap().unwrap();
                Ok(got)
            }
            Err(refused) => {
                sender.abort();
                Err(refused)
            }
        }
    }

    #[tokio::test]
    async fn permitted_client_gets_through_and_data_flows() {
        let pki = pki();
        let mut settings = pki.settings.clone();
        settings.permitted_peers = vec!["*.example.com".into()];
        let client = pki.client(&["relay1.example.com"], "relay1");
        let got = connect(&pki, &settings, Some(client)).await.unwrap();
        assert_eq!(got, b"<13>1 2026-01-01T00:00:00Z host app - - - over TLS\n");
    }

    #[tokio::test]
    async fn any_client_of_the_ca_without_permitted_peers() {
        let pki = pki();
        let client = pki.client(&["whoever.example.org"], "whoever");
        let got = connect(&pki, &pki.settings, Some(client)).await.unwrap();
        assert!(got.ends_with(b"over TLS\n"));
    }

    #[tokio::test]
    async fn no_client_auth_without_ca() {
        let pki = pki();
        let mut settings = pki.settings.clone();
        settings.ca = None;
        let got = connect(&pki, &settings, None).await.unwrap();
        assert!(got.ends_with(b"over TLS\n"));
    }

    #[tokio::test]
    async fn client_asking_for_another_name_is_refused() {
        let pki = pki();
        let mut settings = pki.settings.clone();
        settings.ca = None;
        let err = connect_to("logs.example.org", &pki, &settings, None)
            .await
            .unwrap_err();
        assert!(
            matches!(err, Refused::WrongName(ref n) if n == "logs.example.org"),
            "{err}"
        );
        // The name is matched case-insensitively, as DNS names are.
        let got = connect_to("LocalHost", &pki, &settings, None)
            .await
            .unwrap();
        assert!(got.ends_with(b"over TLS\n"));
    }

    #[tokio::test]
    async fn client_without_certificate_is_refused_when_ca_is_set() {
        let pki = pki();
        let err = connect(&pki, &pki.settings, None).await.unwrap_err();
        assert!(matches!(err, Refused::Handshake(_)), "{err}");
        assert!(err.to_string().contains("certificate"), "{err}");
    }

    #[tokio::test]
    async fn client_of_another_ca_is_refused() {
        let pki = pki();
        let other = pki_client_of_other_ca();
        let err = connect(&pki, &pki.settings, Some(other)).await.unwrap_err();
        assert!(matches!(err, Refused::Handshake(_)), "{err}");
    }

    fn pki_client_of_other_ca() -> Client {
        let other = ca();
        let (cert, key) = leaf(
            &other,
            &["relay1.example.com"],
            "relay1",
            ExtendedKeyUsagePurpose::ClientAuth,
        );
        Client {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    #[tokio::test]
    async fn client_with_a_name_outside_permitted_peers_is_refused() {
        let pki = pki();
        let mut settings = pki.settings.clone();
        settings.permitted_peers = vec!["*.example.com".into(), "log.example.net".into()];
        let client = pki.client(&["intruder.example.org"], "intruder");
        let fp = fingerprint(&client.chain[0]);
        let err = connect(&pki, &settings, Some(client)).await.unwrap_err();
        assert!(matches!(err, Refused::NotPermitted(_)), "{err}");
        let msg = err.to_string();
        assert!(msg.contains("\"intruder.example.org\""), "{msg}");
        assert!(msg.contains(&fp), "{msg}");
    }

    #[tokio::test]
    async fn handshake_that_never_starts_times_out() {
        let pki = pki();
        let server = TlsServer::new(&pki.settings).unwrap();
        let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
        let silent = TcpStream::connect(listener.local_addr().unwrap())
            .await
            .unwrap();
        let (tcp, _) = listener.accept().await.unwrap();
        let timeout = Duration::from_millis(200);
        let started = std::time::Instant::now();
        let err = server.accept(tcp, timeout).await.unwrap_err();
        assert!(matches!(err, Refused::Timeout(t) if t == timeout), "{err}");
        assert!(started.elapsed() < LONG);
        drop(silent);
    }

    #[test]
    fn fingerprint_entry_permits_exactly_that_certificate() {
        let pki = pki();
        let mine = pki.client(&["a.example.com"], "a");
        let other = pki.client(&["a.example.com"], "a");
        let fp = fingerprint(&mine.chain[0]);
        assert!(fp.starts_with("SHA256:"));
        assert_eq!(fp.len(), "SHA256".len() + 32 * 3);
        let bare = fp.trim_start_matches("SHA256:").replace(':', "");
        for entry in [fp.clone(), fp.to_lowercase(), format!("sha256:{bare}")] {
            let check = PeerCheck::new(std::slice::from_ref(&entry)).unwrap();
            assert_eq!(check.permits(&mine.chain[0]), Ok(()), "{entry}");
            let refusal = check.permits(&other.chain[0]).unwrap_err();
            assert!(refusal.contains(&fingerprint(&other.chain[0])), "{refusal}");
            assert!(refusal.contains("\"a.example.com\""), "{refusal}");
        }
    }

    #[test]
    fn wildcard_matches_exactly_one_leftmost_label() {
        let check = PeerCheck::new(&["*.Example.COM".into()]).unwrap();
        assert!(check.matches("a.example.com"));
        assert!(check.matches("Relay-1.EXAMPLE.com"));
        assert!(!check.matches("example.com"));
        assert!(!check.matches("a.b.example.com"));
        assert!(!check.matches(".example.com"));
        assert!(!check.matches("aexample.com"));
        assert!(!check.matches("a.example.com.evil.org"));
        assert!(!check.matches("*.example.com"));
        let exact = PeerCheck::new(&["Host.example.com".into()]).unwrap();
        assert!(exact.matches("host.EXAMPLE.com"));
        assert!(!exact.matches("a.host.example.com"));
    }

    #[test]
    fn common_name_counts_only_without_dns_names() {
        let pki = pki();
        let check = PeerCheck::new(&["legacy.example.com".into()]).unwrap();
        let cn_only = pki.client(&[], "legacy.example.com");
        assert_eq!(check.permits(&cn_only.chain[0]), Ok(()));
        let with_san = pki.client(&["other.example.com"], "legacy.example.com");
        let refusal = check.permits(&with_san.chain[0]).unwrap_err();
        assert!(
            refusal.contains("DNS names [\"other.example.com\"]"),
            "{refusal}"
        );
    }

    #[test]
    fn bad_permitted_peers_entries_are_named() {
        for (entry, why) in [
            ("sha256:AB:CD", "32 bytes"),
            (&*format!("SHA256:{}", "zz".repeat(32)), "32 bytes"),
            (&*format!("SHA1:{}", "ab".repeat(20)), "SHA1"),
            ("md5:00", "unknown fingerprint type"),
            ("a.*.example.com", "leftmost"),
            ("*", "leftmost"),
            ("*.", "not a DNS name"),
            ("host..example.com", "not a DNS name"),
            ("", "not a DNS name"),
        ] {
            let err = PeerCheck::new(&["ok.example.com".into(), entry.into()]).unwrap_err();
            let msg = err.to_string();
            assert!(msg.contains(&format!("{entry:?}")), "{msg}");
            assert!(msg.contains(why), "{entry}: {msg}");
        }
    }

    #[test]
    fn permitted_peers_without_ca_is_an_error() {
        let pki = pki();
        let mut settings = pki.settings.clone();
        settings.ca = None;
        settings.permitted_peers = vec!["a.example.com".into()];
        assert!(matches!(
            server_config(&settings),
            Err(TlsError::PeersWithoutCa)
        ));
        assert!(matches!(
            PeerCheck::from_settings(&settings),
            Err(TlsError::PeersWithoutCa)
        ));
    }

    #[test]
    fn key_file_readable_by_others_is_refused_group_is_allowed() {
        let pki = pki();
        let key = &pki.settings.key;
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o644)).unwrap();
        let err = server_config(&pki.settings).unwrap_err();
        let msg = err.to_string();
        assert!(
            matches!(err, TlsError::KeyFileMode { mode: 0o644, .. }),
            "{msg}"
        );
        assert!(msg.contains(&key.display().to_string()), "{msg}");
        assert!(msg.contains("0644"), "{msg}");
        assert!(check_key_file_mode(key).is_err());
        for mode in [0o002, 0o004, 0o001] {
            std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o600 | mode)).unwrap();
            assert!(check_key_file_mode(key).is_err(), "{mode:o}");
        }
        std::fs::set_permissions(key, std::fs::Permissions::from_mode(0o640)).unwrap();
        check_key_file_mode(key).unwrap();
        server_config(&pki.settings).unwrap();
    }

    #[test]
    fn cert_file_without_certificate_is_a_clear_error() {
        let pki = pki();
        let key_pem = std::fs::read_to_string(&pki.settings.key).unwrap();
        write_file(&pki.settings.cert, &key_pem, 0o600);
        let err = server_config(&pki.settings).unwrap_err();
        let msg = err.to_string();
        assert!(matches!(err, TlsError::NoCertificate { .. }), "{msg}");
        assert!(
            msg.contains(&pki.settings.cert.display().to_string()),
            "{msg}"
        );
        assert!(msg.contains("no certificate"), "{msg}");
        // Nothing of the key in the message.
        let body = key_pem.lines().nth(1).unwrap();
        assert!(!msg.contains(&body[..16]), "{msg}");
    }

    #[test]
    fn key_errors_name_the_file_and_show_no_key_material() {
        let pki = pki();
        let s = &pki.settings;
        write_file(&s.key, "nothing here\n", 0o600);
        let err = server_config(s).unwrap_err();
        assert!(matches!(err, TlsError::NoKey { .. }), "{err}");
        assert!(err.to_string().contains(&s.key.display().to_string()));

        let secret = "-----BEGIN PRIVATE KEY-----\nc2VjcmV0IG!!!\n-----END PRIVATE KEY-----\n";
        write_file(&s.key, secret, 0o600);
        let msg = server_config(s).unwrap_err().to_string();
        assert!(msg.contains(&s.key.display().to_string()), "{msg}");
        assert!(!msg.contains("c2VjcmV0"), "{msg}");

        std::fs::remove_file(&s.key).unwrap();
        let err = server_config(s).unwrap_err();
        assert!(matches!(err, TlsError::Read { .. }), "{err}");
        assert!(err.to_string().contains(&s.key.display().to_string()));
    }

    #[test]
    fn key_of_another_certificate_is_a_mismatch() {
        let pki = pki();
        let other = KeyPair::generate().unwrap();
        write_file(&pki.settings.key, &other.serialize_pem(), 0o600);
        let err = server_config(&pki.settings).unwrap_err();
        assert!(matches!(err, TlsError::KeyMismatch { .. }), "{err}");
        assert!(err.to_string().contains("does not match"), "{err}");
    }

    #[test]
    fn ca_file_without_certificate_is_named() {
        let pki = pki();
        let ca = pki.dir.path().join("empty-ca.pem");
        write_file(&ca, "", 0o644);
        let mut settings = pki.settings.clone();
        settings.ca = Some(ca.clone());
        let err = server_config(&settings).unwrap_err();
        assert!(
            matches!(err, TlsError::NoCertificate { ref path } if *path == ca),
            "{err}"
        );
    }

    #[test]
    fn settings_deserialize_with_defaults() {
        let s: TlsSettings = serde_json::from_str(
            r#"{"cert": "/etc/zerolog/tls.pem", "key": "/etc/zerolog/tls.key"}"#,
        )
        .unwrap();
        assert_eq!(s.ca, None);
        assert!(s.permitted_peers.is_empty());
        assert!(
            serde_json::from_str::<TlsSettings>(r#"{"cert": "a", "key": "b", "x": 1}"#).is_err()
        );
    }
}
