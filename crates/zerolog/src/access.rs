//! Access control for the ZeroMQ sockets that other hosts connect to (the forwarder's publish,
//! journal and monitor sockets, a receiver's TCP output): an allowlist of networks, and with
//! CURVE an allowlist of client public keys, enforced by a ZAP handler (ZeroMQ's
//! authentication protocol, RFC 27). A peer whose address or key is not in its list is
//! disconnected before it gets a message and is counted. Without lists every peer is accepted
//! (the sockets bind to 127.0.0.1 unless configured otherwise).

use std::net::IpAddr;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering::Relaxed};
use std::sync::Arc;

use ipnet::IpNet;
use tracing::{debug, warn};

use crate::events::{RateLimit, ZapDenied};
use crate::zmqutil::zerr;
use crate::Error;

/// The ZAP domain our sockets ask about; setting one is what makes libzmq consult the handler
/// for NULL-mechanism peers.
const DOMAIN: &str = "zerolog";

/// Who may connect: empty lists let anyone in.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Policy {
    /// The networks peers may connect from.
    pub nets: Vec<IpNet>,
    /// The CURVE public keys clients must have (the socket being a CURVE server).
    pub keys: Vec<[u8; 32]>,
}

impl Policy {
    fn is_open(&self) -> bool {
        self.nets.is_empty() && self.keys.is_empty()
    }

    /// Why a peer at `address`, with `mechanism` and its `credentials`, is refused, if it is.
    fn refuses(&self, address: &str, mechanism: &[u8], credentials: &[u8]) -> Option<&'static str> {
        if !self.nets.is_empty() && !allowed(address, &self.nets) {
            return Some("address not allowed");
        }
        // A CURVE server socket takes CURVE clients only (the handshake fails otherwise);
        // the keys do not concern the IPC sockets that ask with NULL.
        if self.keys.is_empty() || mechanism != b"CURVE" {
            return None;
        }
        (!self.keys.iter().any(|k| k[..] == *credentials)).then_some("key not allowed")
    }
}

/// The counters a [`Guard`] counts its refusals in (a process's stats).
pub trait Refusals: Send + Sync + 'static {
    /// Connections the ZAP handler refused: an address or a CURVE key not allowed.
    fn zap_denied(&self) -> &AtomicU64;
    /// CURVE handshakes that failed before ZAP was asked: a client with another server key,
    /// or without CURVE.
    fn curve_handshakes_failed(&self) -> &AtomicU64;
}

/// What guards the sockets a process binds: its ZAP policy, and its CURVE key pair when it is
/// a CURVE server (whose failed handshakes it counts).
pub struct Guard {
    policy: Policy,
    curve: Option<(crate::curve::KeyPair, zmq::Context)>,
    counters: Arc<dyn Refusals>,
}

impl std::fmt::Debug for Guard {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Guard")
            .field("policy", &self.policy)
            .field("curve", &self.curve.is_some())
            .finish_non_exhaustive()
    }
}

impl Guard {
    /// Reads the CURVE keys, if any, and starts the ZAP handler of `ctx` if anything is to be
    /// checked; refusals are counted in `counters`.
    pub fn start(
        ctx: &zmq::Context,
        allow: &[IpNet],
        curve: Option<&crate::curve::CurveServer>,
        counters: Arc<dyn Refusals>,
    ) -> Result<Guard, Error> {
        let (curve, keys) = match curve {
            Some(c) => {
                let (pair, clients) = c.load()?;
                (Some((pair, ctx.clone())), clients)
            }
            None => (None, Vec::new()),
        };
        let policy = Policy {
            nets: allow.to_vec(),
            keys,
        };
        let denied = counters.clone();
        start_zap(ctx, &policy, move || {
            denied.zap_denied().fetch_add(1, Relaxed);
        })?;
        Ok(Guard {
            policy,
            curve,
            counters,
        })
    }

    /// Guards `socket`, which will bind `endpoint` (call before bind). CURVE applies to TCP
    /// endpoints, the ones other hosts reach; an IPC socket is guarded by its file's mode.
    pub fn apply(
        &self,
        socket: &zmq::Socket,
        endpoint: &crate::endpoint::Endpoint,
    ) -> Result<(), Error> {
        if let Some((pair, ctx)) = self.curve.as_ref().filter(|_| endpoint.port().is_some()) {
            crate::curve::serve(socket, pair).map_err(zerr("setting the CURVE server key"))?;
            watch_handshakes(ctx, socket, endpoint, self.counters.clone())?;
        }
        protect(socket, &self.policy)
    }
}

/// Counts and logs (at most once a second per socket) the failed handshakes of a CURVE server
/// `socket`, from libzmq's monitor events, on a thread that ends when the socket closes. ZAP
/// refusals are not among them: the ZAP handler counts those.
fn watch_handshakes(
    ctx: &zmq::Context,
    socket: &zmq::Socket,
    endpoint: &crate::endpoint::Endpoint,
    counters: Arc<dyn Refusals>,
) -> Result<(), Error> {
    static MONITORS: AtomicUsize = AtomicUsize::new(0);
    let inproc = format!(
        "inproc://zerolog-monitor-{}",
        MONITORS.fetch_add(1, Relaxed)
    );
    let events = zmq::SocketEvent::HANDSHAKE_FAILED_NO_DETAIL as i32
        | zmq::SocketEvent::HANDSHAKE_FAILED_PROTOCOL as i32
        | zmq::SocketEvent::MONITOR_STOPPED as i32;
    socket
        .monitor(&inproc, events)
        .map_err(zerr("monitoring CURVE handshakes"))?;
    let events = ctx
        .socket(zmq::PAIR)
        .map_err(zerr("creating a monitor socket"))?;
    events
        .connect(&inproc)
        .map_err(zerr("connecting the monitor socket"))?;
    let endpoint = endpoint.to_string();
    std::thread::Builder::new()
        .name("zerolog-handshakes".into())
        .spawn(move || {
            let mut log = RateLimit::per_second();
            while let Ok(frames) = events.recv_multipart(0) {
                let Some((event, value)) = frames.first().and_then(|f| parse_event(f)) else {
                    continue;
                };
                if event == zmq::SocketEvent::MONITOR_STOPPED {
                    return;
                }
                counters.curve_handshakes_failed().fetch_add(1, Relaxed);
                if log.allow() {
                    warn!(
                        endpoint = %endpoint,
                        reason = handshake_failure(value),
                        code = format_args!("{value:#x}"),
                        "CURVE handshake failed (counted as curve_handshakes_failed)"
                    );
                }
            }
        })
        .map_err(|source| Error::Io {
            context: "starting the handshake monitor thread",
            source,
        })?;
    Ok(())
}

/// A monitor event's first frame: the event (u16) and its value (u32), native byte order.
fn parse_event(frame: &[u8]) -> Option<(zmq::SocketEvent, u32)> {
    let event = u16::from_ne_bytes(frame.get(..2)?.try_into().ok()?);
    let value = u32::from_ne_bytes(frame.get(2..6)?.try_into().ok()?);
    Some((zmq::SocketEvent::from_raw(event), value))
}

/// What a failed handshake's protocol error most likely means, for the operator.
fn handshake_failure(code: u32) -> &'static str {
    match code {
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_MECHANISM_MISMATCH => {
            "the client does not use CURVE (no curve keys, or a zerolog 0.3 peer)"
        }
        zmq_sys::ZMQ_PROTOCOL_ERROR_ZMTP_CRYPTOGRAPHIC => {
            "the client's handshake does not decrypt: it has another server key"
        }
        _ => "a malformed or interrupted handshake",
    }
}

/// Parses an allowlist entry: a network (`10.0.0.0/8`) or one address (`192.0.2.7`).
pub fn parse_net(s: &str) -> Result<IpNet, String> {
    s.parse::<IpNet>()
        .or_else(|_| s.parse::<IpAddr>().map(IpNet::from))
        .map_err(|_| format!("\"{s}\" is not an IP network (like 10.0.0.0/8) or address"))
}

/// Starts the ZAP handler of `ctx` for `policy` (does nothing when it lets anyone in);
/// `denied` is called for each refused connection. Then mark each socket to protect with
/// [`protect`] before it binds.
fn start_zap(
    ctx: &zmq::Context,
    policy: &Policy,
    denied: impl Fn() + Send + 'static,
) -> Result<(), Error> {
    if policy.is_open() {
        return Ok(());
    }
    let handler = ctx.socket(zmq::REP).map_err(zerr("creating ZAP socket"))?;
    handler.set_linger(0).map_err(zerr("setting ZAP linger"))?;
    handler
        .bind("inproc://zeromq.zap.01")
        .map_err(zerr("binding the ZAP handler"))?;
    let policy = policy.clone();
    std::thread::Builder::new()
        .name("zap".into())
        .spawn(move || serve(handler, &policy, &denied))
        .map_err(|source| Error::Io {
            context: "starting the ZAP thread",
            source,
        })?;
    Ok(())
}

/// Makes `socket` subject to `policy` (call before bind).
fn protect(socket: &zmq::Socket, policy: &Policy) -> Result<(), Error> {
    if policy.is_open() {
        return Ok(());
    }
    socket
        .set_zap_domain(DOMAIN)
        .map_err(zerr("setting ZAP domain"))
}

fn serve(handler: zmq::Socket, policy: &Policy, denied: &dyn Fn()) {
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
        let frame = |i: usize| frames.get(i).map_or(&[][..], Vec::as_slice);
        let refused = policy.refuses(address, frame(5), frame(6));
        let key = (frame(5) == b"CURVE" && frame(6).len() == 32)
            .then(|| zmq::z85_encode(frame(6)).unwrap_or_default());
        match refused {
            None => debug!(peer = address, "ZAP: allowed"),
            Some(why) => ZapDenied {
                peer: address,
                why,
                key: key.as_deref(),
            }
            .emit(denied, &mut denials),
        }
        let (code, text): (&[u8], &[u8]) = match refused {
            None => (b"200", b"OK"),
            Some(why) => (b"400", why.as_bytes()),
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
    fn key_and_address_lists() {
        let key = [7u8; 32];
        let p = Policy {
            nets: vec![parse_net("127.0.0.1").unwrap()],
            keys: vec![key],
        };
        assert_eq!(p.refuses("127.0.0.1", b"CURVE", &key), None);
        assert_eq!(
            p.refuses("127.0.0.1", b"CURVE", &[8u8; 32]),
            Some("key not allowed")
        );
        assert_eq!(p.refuses("127.0.0.1", b"NULL", b""), None);
        assert_eq!(
            p.refuses("10.0.0.1", b"CURVE", &key),
            Some("address not allowed")
        );
        let any_key = Policy {
            keys: Vec::new(),
            ..p.clone()
        };
        assert_eq!(any_key.refuses("127.0.0.1", b"CURVE", &[8u8; 32]), None);
    }

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
