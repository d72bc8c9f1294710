//! The TLS inputs against real peers: rsyslog's omfwd with its GnuTLS stream driver (Debian's
//! rsyslog-gnutls) and rsyslog's omrelp with `tls="on"` deliver a burst, every line once;
//! with client authentication, rsyslog with a certificate from the CA gets in while
//! `openssl s_client` without a certificate, or with one outside the permitted peers, does
//! not; `openssl s_client` offering TLS 1.0 or asking for another server name is refused;
//! 1,000 handshakes at once leave the forwarder's memory bounded.

use std::io::Write;
use std::net::{Ipv4Addr, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use rustls::pki_types::ServerName;
use rustls::ClientConnection;

use crate::common::*;
use crate::tls::{line, pki, receive, Pki};

const BURST: usize = 10_000;

fn rsyslog_tls_or_skip() -> Option<PathBuf> {
    peer_or_skip(
        "rsyslogd with GnuTLS and RELP (Debian packages rsyslog, rsyslog-gnutls, rsyslog-relp)",
        rsyslogd_with(&["lmnsd_gtls", "omrelp"]),
    )
}

fn openssl_or_skip() -> Option<PathBuf> {
    peer_or_skip("openssl (Debian package openssl)", openssl())
}

/// rsyslogd forwarding what its TCP input gets through `action`, with the test CA and, for
/// client authentication, `client` (a certificate and key file) as its TLS identity.
fn rsyslog_over_tls(
    rsyslogd: &Path,
    dir: &Path,
    pki: &Pki,
    client: &(PathBuf, PathBuf),
    action: &str,
) -> Rsyslog {
    let global = format!(
        r#"global(DefaultNetstreamDriverCAFile="{}" DefaultNetstreamDriverCertFile="{}"
       DefaultNetstreamDriverKeyFile="{}")
module(load="omrelp")"#,
        pki.ca_file.display(),
        client.0.display(),
        client.1.display(),
    );
    Rsyslog::start_action(rsyslogd, dir, &global, action)
}

/// omfwd over TLS to 127.0.0.1:`port`, checking that the server's certificate is for
/// `localhost` and from the CA.
fn omfwd_tls(port: u16) -> String {
    format!(
        r#"action(type="omfwd" target="127.0.0.1" port="{port}" protocol="tcp"
         TCP_Framing="octet-counted" StreamDriver="gtls" StreamDriverMode="1"
         StreamDriverAuthMode="x509/name" StreamDriverPermittedPeers="localhost"
         queue.type="LinkedList" queue.size="200000" queue.discardSeverity="8"
         action.resumeRetryCount="-1" action.resumeInterval="1")"#
    )
}

/// What rsyslog's imtcp gets: lines numbered 0..n.
fn burst(n: usize) -> Vec<u8> {
    (0..n)
        .map(|i| format!("<13>Nov 23 18:48:41 myhost tlsapp: seq={i:06}\n"))
        .collect::<String>()
        .into_bytes()
}

/// Every number 0..n exactly once among `got`, and nothing else.
fn assert_each_once(got: &[String], n: usize) {
    let mut seen = vec![0u32; n];
    for m in got {
        let seq = m
            .rsplit_once("seq=")
            .and_then(|(_, s)| s.parse::<usize>().ok())
            .filter(|&s| s < n)
            .unwrap_or_else(|| panic!("unexpected message {m:?}"));
        seen[seq] += 1;
    }
    let missing = seen.iter().filter(|&&c| c == 0).count();
    let twice = seen.iter().filter(|&&c| c > 1).count();
    assert!(
        missing == 0 && twice == 0 && got.len() == n,
        "{} messages for {n}: {missing} missing, {twice} more than once",
        got.len()
    );
}

/// Collects what arrives until nothing has for a second: a check that nothing more came.
fn drain(s: &zmq::Socket, got: &mut Vec<String>) {
    s.set_rcvtimeo(1000).unwrap();
    while let Ok(parts) = s.recv_multipart(0) {
        got.push(show(&parts[1]));
    }
}

/// rsyslog, as `relay1.example.com`, sends a burst through `action`: every line arrives at
/// `s` once, and nothing else.
fn burst_through(rsyslogd: &Path, dir: &Path, pki: &Pki, action: &str, to: (&Proc, &zmq::Socket)) {
    let client = pki.client_files(dir, "relay1.example.com");
    let rsyslog = rsyslog_over_tls(rsyslogd, dir, pki, &client, action);
    send_tcp(rsyslog.input_port, &burst(BURST));
    let (forwarder, s) = to;
    let mut got = receive(s, BURST, forwarder);
    drain(s, &mut got);
    assert_each_once(&got, BURST);
}

#[test]
fn rsyslog_omfwd_with_gnutls_delivers_a_burst_once() {
    let Some(rsyslogd) = rsyslog_tls_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (forwarder, tls, s) = pki.start(dir.path(), &[]);
    burst_through(
        &rsyslogd,
        dir.path(),
        &pki,
        &omfwd_tls(tls),
        (&forwarder, &s),
    );
    let counters = forwarder.stop_and_find_line(" counters:");
    assert!(counter(&counters, "tls_sessions") >= 1, "{counters}");
    assert_eq!(counter(&counters, "tls_refused"), 0, "{counters}");
}

#[test]
fn rsyslog_omrelp_over_tls_delivers_every_line() {
    let Some(rsyslogd) = rsyslog_tls_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let relp_tls = free_port();
    let listen = format!("127.0.0.1:{relp_tls}");
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    // Client certificates required: omrelp presents its own.
    let args = ["--listen-relp-tls", &listen, "--tls-ca", &ca];
    let (forwarder, _, s) = pki.start(dir.path(), &args);
    let client = pki.client_files(dir.path(), "relay1.example.com");
    let action = format!(
        r#"action(type="omrelp" target="127.0.0.1" port="{relp_tls}" tls="on"
         tls.caCert="{ca}" tls.myCert="{}" tls.myPrivKey="{}"
         tls.authMode="name" tls.permittedPeer=["localhost"]
         queue.type="LinkedList" queue.size="200000" queue.discardSeverity="8"
         action.resumeRetryCount="-1" action.resumeInterval="1")"#,
        client.0.display(),
        client.1.display(),
    );
    burst_through(&rsyslogd, dir.path(), &pki, &action, (&forwarder, &s));
    let counters = forwarder.stop_and_find_line(" counters:");
    assert!(counter(&counters, "relp_sessions") >= 1, "{counters}");
    assert!(counter(&counters, "tls_sessions") >= 1, "{counters}");
    assert_eq!(counter(&counters, "relp_acked"), BURST as u64, "{counters}");
}

/// `openssl s_client` to 127.0.0.1:`port` with `args`, sending `input` then closing; its
/// combined output. Killed after 20 s.
fn s_client(openssl: &Path, port: u16, args: &[&str], input: &str) -> String {
    let connect = format!("127.0.0.1:{port}");
    let mut child = Command::new(openssl)
        .args(["s_client", "-connect", &connect])
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run openssl s_client");
    let mut stdin = child.stdin.take().unwrap();
    let _ = stdin.write_all(input.as_bytes());
    // s_client closes the connection at the end of its input; give it time to read the
    // server's answer (an alert) first.
    std::thread::sleep(Duration::from_millis(500));
    drop(stdin);
    let start = Instant::now();
    while child.try_wait().unwrap().is_none() {
        if start.elapsed() > Duration::from_secs(20) {
            let _ = child.kill();
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let out = child.wait_with_output().unwrap();
    show(&out.stdout) + &show(&out.stderr)
}

#[test]
fn with_client_authentication_only_a_permitted_certificate_gets_in() {
    let (Some(rsyslogd), Some(openssl)) = (rsyslog_tls_or_skip(), openssl_or_skip()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let ca = pki.ca_file.to_str().unwrap().to_owned();
    let args = ["--tls-ca", &ca, "--tls-permitted-peer", "*.example.com"];
    let (forwarder, tls, s) = pki.start(dir.path(), &args);

    // A certificate from the CA, for a name outside the permitted peers; then none at all.
    let (cert, key) = pki.client_files(dir.path(), "intruder.example.org");
    let (cert, key) = (cert.to_str().unwrap(), key.to_str().unwrap());
    let intruder = line("intruder", 0) + "\n";
    let common = ["-CAfile", &ca, "-servername", "localhost"];
    let mut with_cert = common.to_vec();
    with_cert.extend(["-cert", cert, "-key", key]);
    s_client(&openssl, tls, &with_cert, &intruder);
    forwarder.wait_for_stderr("TLS connection refused", READY_TIMEOUT);
    let out = s_client(&openssl, tls, &common, &(line("anonymous", 0) + "\n"));
    assert!(out.contains("certificate required"), "{out}");

    // Only rsyslog's lines arrive: neither refused client's.
    burst_through(
        &rsyslogd,
        dir.path(),
        &pki,
        &omfwd_tls(tls),
        (&forwarder, &s),
    );
    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(counter(&counters, "tls_refused"), 2, "{counters}");
    let log = forwarder.stderr_text();
    let refusal = crate::tls::refusal_of(&log);
    assert!(refusal.contains("intruder.example.org"), "{refusal}");
    assert!(refusal.contains("permitted_peers"), "{refusal}");
}

#[test]
fn tls_1_0_and_a_wrong_server_name_are_refused() {
    let Some(openssl) = openssl_or_skip() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (forwarder, tls, s) = pki.start(dir.path(), &[]);
    let ca = pki.ca_file.to_str().unwrap();

    // OpenSSL 3 offers TLS 1.0 only at security level 0.
    let old = ["-tls1", "-cipher", "DEFAULT:@SECLEVEL=0", "-CAfile", ca];
    let out = s_client(&openssl, tls, &old, &(line("tls1.0", 0) + "\n"));
    assert!(out.contains("alert"), "TLS 1.0 was not refused:\n{out}");
    let wrong = ["-servername", "logs.example.org", "-CAfile", ca];
    s_client(&openssl, tls, &wrong, &(line("wrong-name", 0) + "\n"));
    let right = ["-servername", "localhost", "-CAfile", ca];
    let out = s_client(&openssl, tls, &right, &(line("right-name", 0) + "\n"));
    assert!(out.contains("Verify return code: 0 (ok)"), "{out}");

    let mut got = receive(&s, 1, &forwarder);
    drain(&s, &mut got);
    assert_eq!(got, [line("right-name", 0)]);
    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(counter(&counters, "tls_refused"), 2, "{counters}");
    assert_eq!(counter(&counters, "tls_sessions"), 1, "{counters}");
}

/// Handshakes started at once, all open together.
const HANDSHAKES: usize = 1000;

#[test]
fn a_thousand_handshakes_at_once_leave_memory_bounded() {
    let dir = tempfile::tempdir().unwrap();
    let pki = pki(dir.path());
    let (forwarder, tls, s) = pki.start(dir.path(), &[]);
    let before_kb = status_kb(forwarder.pid(), "VmRSS");
    // This process holds a thousand sockets too.
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    let (_, hard) = getrlimit(Resource::RLIMIT_NOFILE).unwrap();
    setrlimit(Resource::RLIMIT_NOFILE, hard, hard).unwrap();

    // Every connection's ClientHello is sent before any handshake is finished: the forwarder
    // has all of them in flight at once. Then each finishes and sends one line; all stay open.
    let config = pki.client(None);
    let mut conns: Vec<(ClientConnection, TcpStream)> = (0..HANDSHAKES)
        .map(|_| {
            let tcp = TcpStream::connect((Ipv4Addr::LOCALHOST, tls)).expect("connect");
            tcp.set_read_timeout(Some(DELIVERY_TIMEOUT)).unwrap();
            let name = ServerName::try_from("localhost").unwrap();
            let mut conn = ClientConnection::new(config.clone(), name).unwrap();
            let mut tcp_ref = &tcp;
            conn.write_tls(&mut tcp_ref).expect("send ClientHello");
            (conn, tcp)
        })
        .collect();
    let started = Instant::now();
    for (i, (conn, tcp)) in conns.iter_mut().enumerate() {
        while conn.is_handshaking() {
            conn.complete_io(tcp).expect("handshake");
        }
        conn.writer()
            .write_all((line("many", i) + "\n").as_bytes())
            .unwrap();
        conn.complete_io(tcp).expect("send a line");
    }
    let took = started.elapsed();
    let mut got = receive(&s, HANDSHAKES, &forwarder);
    drain(&s, &mut got);
    assert_eq!(got.len(), HANDSHAKES, "a line is missing or came twice");
    let held_kb = status_kb(forwarder.pid(), "VmRSS");
    let peak_kb = status_kb(forwarder.pid(), "VmHWM");
    eprintln!(
        "{HANDSHAKES} TLS handshakes in {:.2} s ({:.0}/s); forwarder RSS {before_kb} kB before, \
         {held_kb} kB with all open, peak {peak_kb} kB",
        took.as_secs_f64(),
        HANDSHAKES as f64 / took.as_secs_f64()
    );
    // About 20 KiB per open session (a TLS record's buffer each way, rustls' state) and
    // nothing per handshake that outlives it.
    assert!(
        peak_kb < before_kb + 64 * 1024,
        "forwarder peak RSS {peak_kb} kB, {before_kb} kB before (bound: 64 MB more)"
    );
    for (mut conn, mut tcp) in conns.drain(..) {
        conn.send_close_notify();
        let _ = conn.complete_io(&mut tcp);
    }
    let counters = forwarder.stop_and_find_line(" counters:");
    assert_eq!(
        counter(&counters, "tls_sessions"),
        HANDSHAKES as u64,
        "{counters}"
    );
}
