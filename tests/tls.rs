//! The TLS input (RFC 5425) of the real `zerolog forwarder`: LF-framed and octet-counted lines
//! over TLS all arrive once; with --tls-ca a client without a certificate is refused (and
//! counted in `tls_refused`), as is a CA-signed one outside --tls-permitted-peer, while one
//! inside gets in; a TCP client that connects and never starts its handshake holds up nobody.
//! The certificates are made with rcgen in the test's dir; the clients are rustls', blocking.

use std::io::{Read, Write};
use std::net::{Ipv4Addr, TcpStream};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, Instant};

use rcgen::{
    BasicConstraints, CertificateParams, CertifiedIssuer, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose,
};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName};
use rustls::{ClientConfig, ClientConnection, RootCertStore, StreamOwned};

use crate::common::*;

/// A CA, and the forwarder's certificate (for `localhost`) and key as files.
struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    ca_file: PathBuf,
    cert_file: PathBuf,
    key_file: PathBuf,
}

/// A client certificate and its key, as a TLS client holds them.
struct ClientCert {
    chain: Vec<CertificateDer<'static>>,
    key: PrivateKeyDer<'static>,
}

fn write_file(path: &Path, contents: &str, mode: u32) {
    std::fs::write(path, contents).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

fn leaf(
    ca: &CertifiedIssuer<'static, KeyPair>,
    dns: &str,
    usage: ExtendedKeyUsagePurpose,
) -> (rcgen::Certificate, KeyPair) {
    let mut params = CertificateParams::new(vec![dns.to_string()]).unwrap();
    params.distinguished_name.push(DnType::CommonName, dns);
    params.extended_key_usages = vec![usage];
    let key = KeyPair::generate().unwrap();
    let cert = params.signed_by(&key, ca).unwrap();
    (cert, key)
}

fn pki(dir: &Path) -> Pki {
    let mut params = CertificateParams::new(Vec::<String>::new()).unwrap();
    params
        .distinguished_name
        .push(DnType::CommonName, "zerolog test CA");
    params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::CrlSign];
    let ca = CertifiedIssuer::self_signed(params, KeyPair::generate().unwrap()).unwrap();
    let (cert, key) = leaf(&ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
    let pki = Pki {
        ca_file: dir.join("ca.pem"),
        cert_file: dir.join("server.pem"),
        key_file: dir.join("server.key"),
        ca,
    };
    write_file(&pki.ca_file, &pki.ca.pem(), 0o644);
    write_file(&pki.cert_file, &cert.pem(), 0o644);
    write_file(&pki.key_file, &key.serialize_pem(), 0o600);
    pki
}

impl Pki {
    fn client_cert(&self, dns: &str) -> ClientCert {
        let (cert, key) = leaf(&self.ca, dns, ExtendedKeyUsagePurpose::ClientAuth);
        ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// A client that trusts the test CA, with `cert` or without a certificate.
    fn client(&self, cert: Option<ClientCert>) -> Arc<ClientConfig> {
        let mut roots = RootCertStore::empty();
        roots.add(self.ca.der().clone()).unwrap();
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let builder = ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .unwrap()
            .with_root_certificates(roots);
        Arc::new(match cert {
            Some(c) => builder.with_client_auth_cert(c.chain, c.key).unwrap(),
            None => builder.with_no_client_auth(),
        })
    }

    /// `zerolog forwarder` with a TLS input on `tls`, publishing on `publish`, waiting for one
    /// subscriber; `extra` adds flags (--tls-ca ...).
    fn forwarder(&self, dir: &Path, tls: u16, publish: u16, extra: &[&str]) -> Proc {
        let tcp = format!("127.0.0.1:{}", free_port());
        let tls = format!("127.0.0.1:{tls}");
        let publish = publish.to_string();
        let mut args = vec![
            "forwarder",
            "--listen",
            &tcp,
            "-f",
            &publish,
            "--wait-subscribers",
            "1",
            "--listen-tls",
            &tls,
            "--tls-cert",
            self.cert_file.to_str().unwrap(),
            "--tls-key",
            self.key_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        zerolog(dir, "forwarder", &args)
    }
}

/// Connects over TLS to 127.0.0.1:`port`, writes `bytes`, says close_notify and waits for the
/// server to close. An error is the server refusing us (at the handshake or just after).
fn send_tls(port: u16, config: Arc<ClientConfig>, bytes: &[u8]) -> std::io::Result<()> {
    let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port))?;
    tcp.set_read_timeout(Some(Duration::from_secs(30)))?;
    let name = ServerName::try_from("localhost").unwrap();
    let conn = ClientConnection::new(config, name).map_err(std::io::Error::other)?;
    let mut tls = StreamOwned::new(conn, tcp);
    tls.write_all(bytes)?;
    tls.conn.send_close_notify();
    tls.flush()?;
    // The server's close (or its alert, when it refused us).
    let mut rest = Vec::new();
    tls.read_to_end(&mut rest)?;
    Ok(())
}

fn line(tag: &str, i: usize) -> String {
    format!("<13>1 2026-01-01T00:00:00Z host app - - - {tag} {i}")
}

/// Receives messages until `n` arrived (or panics after DELIVERY_TIMEOUT).
fn receive(s: &zmq::Socket, n: usize, p: &Proc) -> Vec<String> {
    let mut got = Vec::new();
    let start = Instant::now();
    while got.len() < n {
        if let Ok(parts) = s.recv_multipart(0) {
            got.push(show(&parts[1]));
        }
        assert!(
            start.elapsed() < DELIVERY_TIMEOUT,
            "got {} of {n}\n{}",
            got.len(),
            p.describe()
        );
    }
    got
}

/// The forwarder's log line of a refused TLS connection.
fn refusal_of(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("TLS connection refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"))
}

#[test]
fn lf_and_octet_counted_lines_over_tls_all_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (tls, publish) = (free_port(), free_port());
    let forwarder = pki.forwarder(dir.path(), tls, publish, &[]);
    let ctx = zmq::Context::new();
    let s = sub(&ctx, &format!("tcp://127.0.0.1:{publish}"));
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
    assert!(
        forwarder
            .stderr_text()
            .contains(&format!("tls:127.0.0.1:{tls}")),
        "{}",
        forwarder.describe()
    );

    let lf: String = (0..1000).map(|i| line("lf", i) + "\n").collect();
    let counted: String = (0..1000)
        .map(|i| {
            let m = line("counted", i);
            format!("{} {m}", m.len())
        })
        .collect();
    send_tls(tls, pki.client(None), lf.as_bytes()).unwrap();
    send_tls(tls, pki.client(None), counted.as_bytes()).unwrap();

    let mut got = receive(&s, 2000, &forwarder);
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(parts) = s.recv_multipart(zmq::DONTWAIT) {
        got.push(show(&parts[1]));
    }
    let mut want: Vec<String> = (0..1000)
        .map(|i| line("lf", i))
        .chain((0..1000).map(|i| line("counted", i)))
        .collect();
    got.sort();
    want.sort();
    assert_eq!(got.len(), 2000, "a message arrived twice");
    assert!(got == want, "the messages differ from those sent");

    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(counter(&counters, "tls_sessions"), 2, "{counters}");
    assert_eq!(counter(&counters, "tls_refused"), 0, "{counters}");
    assert_eq!(counter(&counters, "messages_received"), 2000, "{counters}");
    let plaintext = (lf.len() + counted.len()) as u64;
    assert_eq!(
        counter(&counters, "bytes_received"),
        plaintext,
        "{counters}"
    );
}

#[test]
fn with_a_ca_a_client_without_certificate_is_refused_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (tls, publish) = (free_port(), free_port());
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let forwarder = pki.forwarder(dir.path(), tls, publish, &["--tls-ca", &ca]);
    let ctx = zmq::Context::new();
    let s = sub(&ctx, &format!("tcp://127.0.0.1:{publish}"));
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);

    let sent = send_tls(tls, pki.client(None), (line("anon", 0) + "\n").as_bytes());
    assert!(
        sent.is_err(),
        "the server took a client without certificate"
    );
    forwarder.wait_for_stderr("TLS connection refused", READY_TIMEOUT);
    assert!(
        s.recv_multipart(0).is_err(),
        "a refused client's message arrived"
    );

    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(counter(&counters, "tls_refused"), 1, "{counters}");
    assert_eq!(counter(&counters, "tls_sessions"), 0, "{counters}");
    assert_eq!(counter(&counters, "messages_received"), 0, "{counters}");
    let log = forwarder.stderr_text();
    let refusal = refusal_of(&log);
    assert!(refusal.contains("127.0.0.1:"), "no peer in {refusal}");
    assert!(refusal.contains("certificate"), "no reason in {refusal}");
    assert!(!log.contains("PRIVATE KEY"), "{log}");
}

#[test]
fn only_permitted_peers_get_in() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (tls, publish) = (free_port(), free_port());
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let forwarder = pki.forwarder(
        dir.path(),
        tls,
        publish,
        &["--tls-ca", &ca, "--tls-permitted-peer", "*.example.com"],
    );
    let ctx = zmq::Context::new();
    let s = sub(&ctx, &format!("tcp://127.0.0.1:{publish}"));
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);

    let intruder = pki.client(Some(pki.client_cert("intruder.example.org")));
    let _ = send_tls(tls, intruder, (line("intruder", 0) + "\n").as_bytes());
    forwarder.wait_for_stderr("TLS connection refused", READY_TIMEOUT);
    let relay = pki.client(Some(pki.client_cert("relay1.example.com")));
    send_tls(tls, relay, (line("relay", 0) + "\n").as_bytes()).unwrap();

    let got = receive(&s, 1, &forwarder);
    assert_eq!(got, [line("relay", 0)]);
    assert!(
        s.recv_multipart(0).is_err(),
        "the intruder's message arrived"
    );
    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(counter(&counters, "tls_refused"), 1, "{counters}");
    assert_eq!(counter(&counters, "tls_sessions"), 1, "{counters}");
    let log = forwarder.stderr_text();
    let refusal = refusal_of(&log);
    assert!(refusal.contains("intruder.example.org"), "{refusal}");
    assert!(refusal.contains("permitted_peers"), "{refusal}");
}

#[test]
fn a_silent_tcp_client_on_the_tls_port_holds_up_nobody() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (tls, publish) = (free_port(), free_port());
    let forwarder = pki.forwarder(dir.path(), tls, publish, &[]);
    let ctx = zmq::Context::new();
    let s = sub(&ctx, &format!("tcp://127.0.0.1:{publish}"));
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);

    let silent = TcpStream::connect((Ipv4Addr::LOCALHOST, tls)).unwrap();
    std::thread::sleep(Duration::from_millis(100));
    let start = Instant::now();
    send_tls(tls, pki.client(None), (line("good", 0) + "\n").as_bytes()).unwrap();
    let got = receive(&s, 1, &forwarder);
    let took = start.elapsed();
    assert_eq!(got, [line("good", 0)]);
    // The silent client's handshake deadline is 10 s: the good one did not wait for it.
    assert!(took < Duration::from_secs(5), "took {took:?}");
    drop(silent);
}
