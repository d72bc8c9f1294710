//! A service manager's notify socket (systemd `Type=notify`), played by the test: it binds the
//! datagram socket and points `NOTIFY_SOCKET` at it, so readiness is read from the protocol,
//! never from log text.

use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::Proc;

/// The notify socket a service manager listens on.
pub struct NotifySocket(UnixDatagram, PathBuf);

impl NotifySocket {
    pub fn bind(path: &Path) -> NotifySocket {
        let sock = UnixDatagram::bind(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
        sock.set_read_timeout(Some(Duration::from_millis(100)))
            .unwrap();
        NotifySocket(sock, path.to_path_buf())
    }

    /// The next datagram, or `None` if none arrives within 100 ms.
    pub fn recv(&self) -> Option<String> {
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
    pub fn until(&self, want: &str, timeout: Duration, z: &Proc) -> (String, Vec<String>) {
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

impl NotifySocket {
    /// The socket's path, for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.1
    }
}
