//! Access control for the ZeroMQ sockets that other hosts connect to (the forwarder's publish
//! and monitor sockets, a receiver's TCP output): an allowlist of networks, enforced by a ZAP
//! handler (ZeroMQ's authentication protocol, RFC 27) with the NULL mechanism, so it needs no
//! keys. A peer whose address is not in the list is disconnected before it gets a message and
//! is counted. Without an allowlist every peer is accepted (the sockets bind to 127.0.0.1
//! unless configured otherwise).

use std::net::IpAddr;

use ipnet::IpNet;
use tracing::debug;

use crate::events::{RateLimit, ZapDenied};
use crate::zmqutil::zerr;
use crate::Error;

/// The ZAP domain our sockets ask about; setting one is what makes libzmq consult the handler
/// for NULL-mechanism peers.
const DOMAIN: &str = "zerolog";

/// Parses an allowlist entry: a network (`10.0.0.0/8`) or one address (`192.0.2.7`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("\"{s}\" is not an IP network (like 10.0.0.0/8) or address"))
}

/// Starts the ZAP handler of `ctx` for `allow` (does nothing when it is empty); `denied` is
/// called for each refused connection. Then mark each socket to protect with [`protect`]
/// before it binds.
pub fn start_zap(
    ctx: &zmq::Context,
    allow: &[IpNet],
    denied: impl Fn() + Send + 'static,
) -> Result<(), Error> {
    if allow.is_empty() {
        return Ok(());
    }
    let handler = ctx.socket(zmq::REP).map_err(zerr("creating ZAP socket"))?;
    handler.set_linger(0).map_err(zerr("setting ZAP linger"))?;
    handler
        .bind("inproc://zeromq.zap.01")
        .map_err(zerr("binding the ZAP handler"))?;
    let allow = allow.to_vec();
    std::thread::Builder::new()
        .name("zap".into())
        .spawn(move || serve(handler, &allow, &denied))
        .map_err(|source| Error::Io {
            context: "starting the ZAP thread",
            source,
        })?;
    Ok(())
}

/// Makes `socket` subject to the allowlist (call before bind).
pub fn protect(socket: &zmq::Socket, allow: &[IpNet]) -> Result<(), Error> {
    if allow.is_empty() {
        return Ok(());
    }
    socket
        .set_zap_domain(DOMAIN)
        .map_err(zerr("setting ZAP domain"))
}

fn serve(handler: zmq::Socket, allow: &[IpNet], denied: &dyn Fn()) {
    let mut denials = RateLimit::per_second();
    loop {
        let frames = match handler.recv_multipart(0) {
            Ok(f) => f,
            // ETERM: the context is closing.
            Err(_) => return,
        };
        // version, request id, domain, address, routing id, mechanism, credentials...
        let (version, request_id) = match (frames.first(), frames.get(1)) {
            (Some(v), Some(r)) => (v.clone(), r.clone()),
            _ => continue,
        };
        let address = frames
            .get(3)
            .and_then(|a| std::str::from_utf8(a).ok())
            .unwrap_or("");
        let ok = allowed(address, allow);
        if ok {
            debug!(peer = address, "ZAP: allowed");
        } else {
            ZapDenied { peer: address }.emit(denied, &mut denials);
        }
        let (code, text): (&[u8], &[u8]) = if ok {
            (b"200", b"OK")
        } else {
            (b"400", b"address not allowed")
        };
        let reply: [&[u8]; 6] = [&version, &request_id, code, text, b"", b""];
        if handler.send_multipart(reply, 0).is_err() {
            return;
        }
    }
}

fn allowed(address: &str, allow: &[IpNet]) -> bool {
    // IPv4 peers of a dual-stack socket may come as ::ffff:a.b.c.d.
    let ip = match address.parse::<IpAddr>() {
        Ok(IpAddr::V6(v6)) => v6.to_ipv4_mapped().map_or(IpAddr::V6(v6), IpAddr::V4),
        Ok(ip) => ip,
        Err(_) => return false,
    };
    allow.iter().any(|net| net.contains(&ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn allowlist_matching() {
        let allow: Vec<IpNet> = ["10.0.0.0/8", "192.0.2.7", "::1"]
            .iter()
            .map(|s| parse_net(s).unwrap())
            .collect();
        assert!(allowed("10.1.2.3", &allow));
        assert!(allowed("192.0.2.7", &allow));
        assert!(allowed("::ffff:10.9.9.9", &allow));
        assert!(allowed("::1", &allow));
        assert!(!allowed("192.0.2.8", &allow));
        assert!(!allowed("127.0.0.1", &allow));
        assert!(!allowed("", &allow));
        assert!(parse_net("10.0.0.0/33").is_err());
        assert!(parse_net("host").unwrap_err().contains("not an IP network"));
    }
}
