//! The TLS input (RFC 5425) of the real `zerolog forwarder`: LF-framed and octet-counted lines
//! over TLS all arrive once; with --tls-ca a client without a certificate is refused (and
//! counted in `tls_refused`), as is a CA-signed one outside --tls-permitted-peer, while one
//! inside gets in; a TCP client that connects and never starts its handshake holds up nobody.
//! `zerolog loggen --tls` delivers every line (LF, octet-counted, RELP, one per handshake)
//! with a client certificate, and fails with status 1 against a server its CA does not vouch for.
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

use crate::common::load::loggen_report;
use crate::common::zerologd::*;
use crate::common::*;

/// A CA, and the forwarder's certificate (for `localhost`) and key as files.
pub(crate) struct Pki {
    ca: CertifiedIssuer<'static, KeyPair>,
    pub(crate) ca_file: PathBuf,
    pub(crate) cert_file: PathBuf,
    pub(crate) key_file: PathBuf,
}

/// A client certificate and its key, as a TLS client holds them.
pub(crate) struct ClientCert {
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

pub(crate) fn pki(dir: &Path) -> Pki {
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
    /// A client certificate for `dns` signed by the CA, and its key, as PEM files in `dir`
    /// (for clients that read files: rsyslog, openssl).
    pub(crate) fn client_files(&self, dir: &Path, dns: &str) -> (PathBuf, PathBuf) {
        let (cert, key) = leaf(&self.ca, dns, ExtendedKeyUsagePurpose::ClientAuth);
        let (cert_file, key_file) = (
            dir.join(format!("{dns}.pem")),
            dir.join(format!("{dns}.key")),
        );
        write_file(&cert_file, &cert.pem(), 0o644);
        write_file(&key_file, &key.serialize_pem(), 0o600);
        (cert_file, key_file)
    }

    /// A new server certificate and key for `localhost` in place of the old files, as a
    /// renewal leaves them; the certificate's DER.
    fn renew(&self) -> Vec<u8> {
        let (cert, key) = leaf(&self.ca, "localhost", ExtendedKeyUsagePurpose::ServerAuth);
        write_file(&self.cert_file, &cert.pem(), 0o644);
        write_file(&self.key_file, &key.serialize_pem(), 0o600);
        cert.der().to_vec()
    }

    pub(crate) fn client_cert(&self, dns: &str) -> ClientCert {
        let (cert, key) = leaf(&self.ca, dns, ExtendedKeyUsagePurpose::ClientAuth);
        ClientCert {
            chain: vec![cert.der().clone()],
            key: PrivatePkcs8KeyDer::from(key.serialize_der()).into(),
        }
    }

    /// A client that trusts the test CA, with `cert` or without a certificate.
    pub(crate) fn client(&self, cert: Option<ClientCert>) -> Arc<ClientConfig> {
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

    /// `zerolog forwarder` with a TLS input and `extra` flags (--tls-ca ...), once it reads
    /// input: it, the TLS port, and its one subscriber (which it waited for).
    pub(crate) fn start(&self, dir: &Path, extra: &[&str]) -> (Proc, u16, zmq::Socket) {
        let (tcp, tls, publish) = (free_port(), free_port(), free_port());
        let (tcp, tls_addr, publish_port) = (
            format!("127.0.0.1:{tcp}"),
            format!("127.0.0.1:{tls}"),
            publish.to_string(),
        );
        let mut args = vec![
            "forwarder",
            "--listen",
            &tcp,
            "-f",
            &publish_port,
            "--wait-subscribers",
            "1",
            "--listen-tls",
            &tls_addr,
            "--tls-cert",
            self.cert_file.to_str().unwrap(),
            "--tls-key",
            self.key_file.to_str().unwrap(),
        ];
        args.extend_from_slice(extra);
        let forwarder = zerolog(dir, "forwarder", &args);
        let s = sub(&zmq::Context::new(), &format!("tcp://127.0.0.1:{publish}"));
        forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
        (forwarder, tls, s)
    }
}

/// Connects over TLS to 127.0.0.1:`port`, writes `bytes`, says close_notify and waits for the
/// server to close. An error is the server refusing us (at the handshake or just after).
pub(crate) fn send_tls(port: u16, config: Arc<ClientConfig>, bytes: &[u8]) -> std::io::Result<()> {
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

/// The certificate the TLS server on 127.0.0.1:`port` presents (DER), after a handshake.
fn server_cert(port: u16, config: Arc<ClientConfig>) -> Vec<u8> {
    let mut tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, port)).unwrap();
    tcp.set_read_timeout(Some(Duration::from_secs(30))).unwrap();
    let name = ServerName::try_from("localhost").unwrap();
    let mut conn = ClientConnection::new(config, name).unwrap();
    while conn.is_handshaking() {
        conn.complete_io(&mut tcp).expect("handshake");
    }
    conn.peer_certificates().unwrap()[0].to_vec()
}

pub(crate) fn line(tag: &str, i: usize) -> String {
    format!("<13>1 2026-01-01T00:00:00Z host app - - - {tag} {i}")
}

/// Receives messages until `n` arrived (or panics after DELIVERY_TIMEOUT).
pub(crate) fn receive(s: &zmq::Socket, n: usize, p: &Proc) -> Vec<String> {
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
pub(crate) fn refusal_of(log: &str) -> &str {
    log.lines()
        .find(|l| l.contains("TLS connection refused"))
        .unwrap_or_else(|| panic!("no refusal logged:\n{log}"))
}

#[test]
fn lf_and_octet_counted_lines_over_tls_all_arrive_once() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (forwarder, tls, s) = pki.start(dir.path(), &[]);
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
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let (forwarder, tls, s) = pki.start(dir.path(), &["--tls-ca", &ca]);

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
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let (forwarder, tls, s) = pki.start(
        dir.path(),
        &["--tls-ca", &ca, "--tls-permitted-peer", "*.example.com"],
    );

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
    let (forwarder, tls, s) = pki.start(dir.path(), &[]);

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

/// `zerolog loggen --tls` towards 127.0.0.1:`port` with the CA file `ca`, `extra` after.
fn loggen_tls(dir: &Path, name: &str, port: u16, ca: &Path, extra: &[&str]) -> Proc {
    let port = port.to_string();
    let mut args = vec![
        "loggen",
        "--json",
        "-P",
        &port,
        "--tls",
        "--tls-ca",
        ca.to_str().unwrap(),
    ];
    args.extend_from_slice(extra);
    zerolog(dir, name, &args)
}

/// (app, connection, sequence number) of a loggen line.
fn loggen_id(line: &str) -> (String, u64, u64) {
    let mut fields = line.split(' ');
    let app = fields.nth(3).unwrap().to_owned();
    let seq = line
        .split_once("seq=")
        .unwrap()
        .1
        .split(' ')
        .next()
        .unwrap();
    let (conn, n) = seq.split_once('.').unwrap();
    (app, conn.parse().unwrap(), n.parse().unwrap())
}

#[test]
fn loggen_over_tls_delivers_every_line_with_a_client_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (cert_file, key_file) = pki.client_files(dir.path(), "loggen.example.com");
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let relp = free_port();
    let relp_addr = format!("127.0.0.1:{relp}");
    let (forwarder, tls, s) = pki.start(
        dir.path(),
        &[
            "--tls-ca",
            &ca,
            "--tls-permitted-peer",
            "*.example.com",
            "--listen-relp-tls",
            &relp_addr,
        ],
    );

    let client = [
        "--tls-server-name",
        "localhost",
        "--tls-cert",
        cert_file.to_str().unwrap(),
        "--tls-key",
        key_file.to_str().unwrap(),
        "-c",
        "2",
    ];
    let runs: [(&str, u16, &[&str]); 5] = [
        ("lf", tls, &["-n", "1000"]),
        ("octet", tls, &["-n", "1000", "--framing", "octet-counted"]),
        ("hs", tls, &["--tls-handshakes", "20"]),
        ("relp", relp, &["-n", "1000", "--relp"]),
        ("relphs", relp, &["--tls-handshakes", "20", "--relp"]),
    ];
    let mut want = Vec::new();
    for (app, port, load) in runs {
        let mut args = vec!["--app", app];
        args.extend_from_slice(&client);
        args.extend_from_slice(load);
        let loggen = loggen_tls(dir.path(), app, port, &pki.ca_file, &args);
        let report = loggen_report(&loggen, DELIVERY_TIMEOUT);
        let n = if app.ends_with("hs") { 20 } else { 1000 };
        assert_eq!(report["messages"], n, "{report}");
        if app.starts_with("relp") {
            assert_eq!(report["acknowledged"], n, "{report}");
        }
        if app.ends_with("hs") {
            assert_eq!(report["handshakes"], 20, "{report}");
            assert!(
                report["handshakes_per_s"].as_f64().unwrap() > 0.0,
                "{report}"
            );
        } else {
            assert!(report.get("handshakes").is_none(), "{report}");
        }
        for conn in 0..2 {
            want.extend((0..n / 2).map(|i| (app.to_owned(), conn, i)));
        }
    }

    let mut got: Vec<_> = receive(&s, want.len(), &forwarder)
        .iter()
        .map(|l| loggen_id(l))
        .collect();
    std::thread::sleep(Duration::from_millis(300));
    while let Ok(parts) = s.recv_multipart(zmq::DONTWAIT) {
        got.push(loggen_id(&show(&parts[1])));
    }
    got.sort();
    want.sort();
    assert_eq!(got.len(), want.len(), "a line arrived twice");
    assert!(got == want, "the lines differ from those sent");
    let counters = forwarder.stop_and_find_line(" counters:");
    // TCP: 2 + 2 + 20 connections; RELP: 2 + 20.
    assert_eq!(counter(&counters, "tls_sessions"), 24 + 22, "{counters}");
    assert_eq!(counter(&counters, "relp_sessions"), 22, "{counters}");
    assert_eq!(counter(&counters, "tls_refused"), 0, "{counters}");
}

#[test]
fn loggen_refuses_a_server_its_ca_does_not_vouch_for() {
    let dir = tempfile::tempdir().unwrap();
    let other_dir = dir.path().join("other");
    std::fs::create_dir(&other_dir).unwrap();
    let other = pki(&other_dir);
    let pki = pki(dir.path());
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let (forwarder, tls, s) = pki.start(dir.path(), &["--tls-ca", &ca]);

    let failures: [(&str, &Path, &[&str], i32, &str); 4] = [
        // Another CA: the server's certificate is refused at the handshake.
        (
            "wrong-ca",
            &other.ca_file,
            &["--tls-server-name", "localhost"],
            1,
            "signed by a CA of --tls-ca?",
        ),
        // The right CA, but the certificate is for localhost, not 127.0.0.1 (the default).
        ("wrong-name", &pki.ca_file, &[], 1, "--tls-server-name"),
        // The server wants a client certificate: in TLS 1.3 its refusal comes after the
        // client's side of the handshake, and loggen waits for the server's close to see it.
        (
            "no-client-cert",
            &pki.ca_file,
            &["--tls-server-name", "localhost"],
            1,
            "the server wants a client certificate",
        ),
        // A CA file that is not there: a configuration error, before any connection.
        (
            "missing-ca",
            &dir.path().join("nowhere.pem"),
            &[],
            2,
            "cannot read",
        ),
    ];
    for (name, ca, extra, code, says) in failures {
        let mut args = vec!["-n", "10"];
        args.extend_from_slice(extra);
        let loggen = loggen_tls(dir.path(), name, tls, ca, &args);
        let status = loggen.wait_exit(DELIVERY_TIMEOUT);
        assert_eq!(status.code(), Some(code), "{name}\n{}", loggen.describe());
        let err = loggen.stderr_text();
        assert!(err.contains(says), "{name}: {err}");
        assert!(!err.contains("PRIVATE KEY"), "{err}");
    }
    assert!(
        s.recv_multipart(0).is_err(),
        "a line from a failed loggen arrived"
    );
    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(counter(&counters, "messages_received"), 0, "{counters}");
    // The server counts the refusals it saw: the bad certificate, the wrong name (each
    // ended by loggen's alert) and the missing client certificate.
    assert_eq!(counter(&counters, "tls_refused"), 3, "{counters}");
}

/// zerologd with a TLS input (`tls`, `tls_cert`, `tls_key`) on `port`, into a `file` worker.
fn tls_topology(pki: &Pki, port: u16) -> String {
    format!(
        r#"
[forwarder]
tcp = ["127.0.0.1:{{B}}"]
tls = ["127.0.0.1:{port}"]
tls_cert = "{}"
tls_key = "{}"

[[receiver]]
name = "all"

[[worker]]
name = "out"
receiver = "all"
command = ["file", "{{DIR}}/out.txt"]
"#,
        pki.cert_file.display(),
        pki.key_file.display()
    )
}

#[test]
fn zerologd_serves_tls_and_a_reload_takes_a_renewed_certificate() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let port = free_port();
    let z = Zerologd::start(dir.path(), &tls_topology(&pki, port));
    let out = dir.path().join("out.txt");
    let lines: String = (0..100).map(|i| line("tls", i) + "\n").collect();
    send_tls(port, pki.client(None), lines.as_bytes()).unwrap();
    wait_for_line_count(&out, 100, DELIVERY_TIMEOUT, &[&z.proc]);
    let first = server_cert(port, pki.client(None));

    // Renewed on disk: served from the next connection on, after a reload, with no restart.
    let forwarder = z.pid_of("forwarder");
    let renewed = pki.renew();
    assert_ne!(renewed, first);
    assert_eq!(
        server_cert(port, pki.client(None)),
        first,
        "re-read before the reload"
    );
    let (code, text, err) = z.ctl(&["reload"]);
    assert_eq!(code, 0, "{text}{err}");
    wait_until(READY_TIMEOUT, "the renewed certificate served", || {
        server_cert(port, pki.client(None)) == renewed
    });
    assert_eq!(
        z.pid_of("forwarder"),
        forwarder,
        "the forwarder was restarted"
    );
    send_tls(
        port,
        pki.client(None),
        (line("renewed", 0) + "\n").as_bytes(),
    )
    .unwrap();
    wait_for_line_count(&out, 101, DELIVERY_TIMEOUT, &[&z.proc]);

    // A broken renewal: zerologd refuses the reload, naming the file's line; a SIGHUP straight
    // to the forwarder leaves it with the certificate it has.
    write_file(&pki.key_file, "not a key", 0o600);
    let (code, text, err) = z.ctl(&["reload"]);
    assert_ne!(code, 0, "{text}{err}");
    assert!(
        err.contains(":6: forwarder.tls_key") && err.contains("no private key"),
        "{err}"
    );
    let pid = nix::unistd::Pid::from_raw(forwarder.unwrap());
    nix::sys::signal::kill(pid, nix::sys::signal::Signal::SIGHUP).unwrap();
    z.proc
        .wait_for_stderr("the inputs keep the certificate they had", READY_TIMEOUT);
    assert_eq!(server_cert(port, pki.client(None)), renewed);
    assert_eq!(z.pid_of("forwarder"), forwarder);
}

#[test]
fn zerologd_check_shows_the_tls_input_and_refuses_bad_key_files() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let text = Zerologd::expand(dir.path(), &tls_topology(&pki, free_port()), free_port());
    let config = crate::common::write_file(dir.path(), "zerolog.toml", &text);
    let check = || zerologd_check(&config);
    let out = check();
    let shown = show(&out.stdout);
    assert!(out.status.success(), "{shown}{}", show(&out.stderr));
    assert!(
        shown
            .lines()
            .skip_while(|l| *l != "encryption:")
            .any(|l| l.contains("over TLS (no client certificate asked for)")
                && l.contains("in plaintext")),
        "{shown}"
    );

    // The key readable by all: refused at tls_key's line (6), exit 2.
    std::fs::set_permissions(&pki.key_file, std::fs::Permissions::from_mode(0o644)).unwrap();
    let out = check();
    let err = show(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:6:", config.display())) && err.contains("mode 0644"),
        "{err}"
    );
    assert!(!err.contains("PRIVATE KEY"), "{err}");

    // A TLS input without its key.
    let no_key: String = text
        .lines()
        .filter(|l| !l.starts_with("tls_key"))
        .map(|l| format!("{l}\n"))
        .collect();
    std::fs::write(&config, no_key).unwrap();
    let out = check();
    let err = show(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:4:", config.display())) && err.contains("tls_key"),
        "{err}"
    );
}

#[test]
fn a_tls_address_in_use_is_named_as_the_tls_input() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let taken = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = taken.local_addr().unwrap().to_string();
    let args = [
        "forwarder",
        "--listen",
        "127.0.0.1:0",
        "-f",
        "0",
        "--listen-relp-tls",
        &addr,
        "--tls-cert",
        pki.cert_file.to_str().unwrap(),
        "--tls-key",
        pki.key_file.to_str().unwrap(),
    ];
    let forwarder = zerolog(dir.path(), "forwarder", &args);
    let status = forwarder.wait_exit(READY_TIMEOUT);
    assert_eq!(status.code(), Some(1), "{}", forwarder.describe());
    let log = forwarder.stderr_text();
    assert!(log.contains(&format!("relp+tls:{addr}")), "{log}");
}
