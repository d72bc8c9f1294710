//! Readiness, the sending side of the sd_notify protocol: an element tells its service manager
//! that it is ready by sending `READY=1` to the datagram socket named in `$NOTIFY_SOCKET`.
//!
//! zerologd serves this protocol to its children as systemd serves it to zerologd, so readiness
//! never depends on log text or log level. Each element notifies once it does its job: the
//! forwarder when it reads input (after the subscriptions it waits for), a receiver once it has
//! bound its output and subscribed, a worker (and [`crate::worker::Runner`]) once connected.
//! A program of your own run by zerologd may send `READY=1` the same way; one that never does
//! counts as ready once started.
//!
//! Written here rather than taken from the `sd-notify` crate: sending is one datagram, and the
//! library a worker author depends on stays free of daemon-side dependencies.

use std::os::unix::net::UnixDatagram;

/// The environment variable naming the service manager's socket.
pub const NOTIFY_SOCKET_ENV: &str = "NOTIFY_SOCKET";
/// The line that says an element is ready.
pub const READY: &str = "READY=1";

/// Sends `READY=1` when a service manager listens (`$NOTIFY_SOCKET` set); does nothing otherwise.
/// A failure is logged, never fatal: the element works the same, only its readiness is unseen.
pub fn ready() {
    if let Err(e) = send(&format!("{READY}\n")) {
        tracing::warn!(error = %e, "cannot notify readiness ({NOTIFY_SOCKET_ENV})");
    }
}

/// Sends `state` (newline-separated `KEY=VALUE` lines) to `$NOTIFY_SOCKET`. Returns whether a
/// socket was set.
pub fn send(state: &str) -> std::io::Result<bool> {
    let Some(path) = std::env::var_os(NOTIFY_SOCKET_ENV) else {
        return Ok(false);
    };
    let sock = UnixDatagram::unbound()?;
    let bytes = path.as_encoded_bytes();
    if let Some(name) = bytes.strip_prefix(b"@") {
        // An abstract socket, as systemd may hand out.
        use std::os::linux::net::SocketAddrExt;
        let addr = std::os::unix::net::SocketAddr::from_abstract_name(name)?;
        sock.send_to_addr(state.as_bytes(), &addr)?;
    } else {
        sock.send_to(state.as_bytes(), path)?;
    }
    Ok(true)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sends_to_the_named_socket_and_nothing_without_one() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify.sock");
        let server = UnixDatagram::bind(&path).unwrap();
        // One test owns the variable in this process.
        std::env::set_var(NOTIFY_SOCKET_ENV, &path);
        assert!(send("READY=1\n").unwrap());
        let mut buf = [0u8; 64];
        let n = server.recv(&mut buf).unwrap();
        assert_eq!(&buf[..n], b"READY=1\n");
        std::env::remove_var(NOTIFY_SOCKET_ENV);
        assert!(!send("READY=1\n").unwrap());
    }
}
