//! zerologd under a service manager (systemd `Type=notify`), with a fake notify socket: the
//! test binds the datagram socket systemd would, and points `NOTIFY_SOCKET` at it.

mod common;

use std::os::unix::net::UnixDatagram;
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use common::*;

/// The notify socket a service manager listens on.
struct NotifySocket(UnixDatagram);

impl NotifySocket {
    fn bind(path: &Path) -> NotifySocket {
        let sock = UnixDatagram::bind(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket(sock)
    }

    /// The next datagram, or `None` if none arrives within 100 ms.
    fn recv(&self) -> Option<String> {
        let mut buf = [0u8; 4096];
        match self.0.recv(&mut buf) {
            Ok(n) => Some(String::from_utf8_lossy(&buf[..n]).into_owned()),
            Err(e)
                if matches!(
                    e.kind(),
                    std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut
                ) =>
            {
                None
            }
            Err(e) => panic!("recv on the notify socket: {e}"),
        }
    }

    /// Receives datagrams until one has the line `want`; returns that one and those before it.
    fn until(&self, want: &str, timeout: Duration, z: &Proc) -> (String, Vec<String>) {
        let start = Instant::now();
        let mut before = Vec::new();
        while start.elapsed() < timeout {
            if let Some(msg) = self.recv() {
                if msg.lines().any(|l| l == want) {
                    return (msg, before);
                }
                before.push(msg);
            }
            assert!(
                z.is_running(),
                "zerologd exited before sending {want}:\n{}",
                z.describe()
            );
        }
        panic!(
            "no {want} on the notify socket after {timeout:?} (got {before:?}):\n{}",
            z.describe()
        );
    }
}

#[test]
fn ready_after_the_forwarder_reads_input_watchdog_pings_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (backend, frontend) = (free_port(), free_port());
    let out = d.join("out.txt");
    let config = write_file(
        d,
        "zerolog.toml",
        &format!(
            r#"
[forwarder]
tcp = ["127.0.0.1:{backend}"]
publish = "tcp://127.0.0.1:{frontend}"

[[receiver]]
name = "all"

# Records its environment: the notify socket must not leak to the programs.
[[worker]]
name = "out"
receiver = "all"
command = ["/bin/sh", "-c", "env > '{env}'; exec cat >> '{out}'"]
"#,
            env = d.join("env.txt").display(),
            out = out.display(),
        ),
    );
    let notify = NotifySocket::bind(&d.join("notify.sock"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerologd"));
    cmd.args(["-c", config.to_str().unwrap()])
        .env("ZEROLOG_RUNTIME_DIR", d.join("run"))
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", d.join("notify.sock"))
        // A 400 ms watchdog: zerologd must ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID");
    let z = Proc::spawn(d, "zerologd", cmd);

    let (ready, before) = notify.until("READY=1", READY_TIMEOUT, &z);
    // Only watchdog pings may come before READY=1.
    for msg in &before {
        assert_eq!(
            msg, "WATCHDOG=1\n",
            "unexpected notification before READY=1"
        );
    }
    // At READY=1 the forwarder already reads its input: it said so, it accepts connections,
    // and what is sent now is delivered.
    let log = z.stderr_text();
    assert!(
        log.contains("forwarder ready, reading input"),
        "READY=1 came before the forwarder read input ({ready:?}):\n{log}"
    );
    assert!(
        tcp_accepts(backend),
        "READY=1 sent but the forwarder does not accept"
    );
    send_tcp(backend, b"<13>1 - host app - - - after ready\n");
    wait_for_line_count(&out, 1, DELIVERY_TIMEOUT, &[&z]);
    assert!(show(&std::fs::read(&out).unwrap()).contains("after ready"));

    // The watchdog keeps being pinged while the pipeline runs.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        if let Some(msg) = notify.recv() {
            assert_eq!(msg, "WATCHDOG=1\n", "unexpected notification while running");
            pings += 1;
        }
    }
    assert!(
        pings >= 4,
        "{pings} watchdog pings in 1.5 s, want one per 200 ms"
    );

    let env = std::fs::read_to_string(d.join("env.txt")).unwrap();
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(
            !env.contains(var),
            "{var} leaked to a program's environment:\n{env}"
        );
    }

    z.signal("TERM");
    let (stopping, _) = notify.until("STOPPING=1", READY_TIMEOUT, &z);
    assert!(!stopping.contains("READY=1"), "{stopping:?}");
    assert_eq!(
        z.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.describe()
    );
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_pipeline_runs() {
    // NOTIFY_SOCKET unset (zerologd run by hand): no error, no warning about notifying.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let backend = free_port();
    let config = write_file(
        d,
        "zerolog.toml",
        &format!(
            "[forwarder]\ntcp = [\"127.0.0.1:{backend}\"]\npublish = \"tcp://127.0.0.1:{}\"\n\
             [[receiver]]\nname = \"all\"\n[[worker]]\nname = \"w\"\nreceiver = \"all\"\ncommand = [\"null\"]\n",
            free_port()
        ),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerologd"));
    cmd.args(["-c", config.to_str().unwrap()])
        .env("ZEROLOG_RUNTIME_DIR", d.join("run"))
        .env("WATCHDOG_USEC", "400000")
        .env_remove("NOTIFY_SOCKET");
    let z = Proc::spawn(d, "zerologd", cmd);
    z.wait_for_stderr("pipeline ready", READY_TIMEOUT);
    std::thread::sleep(Duration::from_millis(500));
    z.signal("TERM");
    assert_eq!(
        z.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.describe()
    );
    assert!(!z.stderr_text().contains("notify"), "{}", z.stderr_text());
}
