//! ZeroMQ endpoints, the one definition: parsing (`tcp://HOST:PORT`, `ipc://PATH`), the text
//! ZeroMQ takes, and the questions the topology and zerologd ask of them (do two binds clash,
//! does a connect reach a bind, where does a peer connect to reach a wildcard bind). No I/O.

use std::fmt;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Longest path a unix socket address holds (`sun_path` less its terminating NUL).
pub const MAX_IPC_PATH: usize = 107;

/// A host of a TCP endpoint.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Host {
    /// `*`: every interface (ZeroMQ's own wildcard).
    Any,
    /// An address; `0.0.0.0` and `::` are wildcards too.
    Ip(IpAddr),
    /// A name, lowercased.
    Name(String),
}

impl Host {
    /// Parses a host as written in an endpoint: `*`, an address (IPv6 in brackets or not), a
    /// name.
    pub fn parse(s: &str) -> Host {
        let bare = s
            .strip_prefix('[')
            .and_then(|h| h.strip_suffix(']'))
            .unwrap_or(s);
        if bare == "*" {
            return Host::Any;
        }
        match bare.parse::<IpAddr>() {
            Ok(ip) => Host::Ip(ip),
            Err(_) => Host::Name(bare.to_ascii_lowercase()),
        }
    }

    /// Whether it stands for every interface (`*`, `0.0.0.0`, `::`).
    pub fn is_wildcard(&self) -> bool {
        match self {
            Host::Any => true,
            Host::Ip(ip) => ip.is_unspecified(),
            Host::Name(_) => false,
        }
    }

    /// The host compared for sameness: `localhost` is the IPv4 loopback (as libzmq resolves
    /// it), and a wildcard is the same whatever its spelling.
    fn canonical(&self) -> Host {
        match self {
            h if h.is_wildcard() => Host::Any,
            Host::Name(n) if n == "localhost" => Host::Ip(Ipv4Addr::LOCALHOST.into()),
            Host::Ip(IpAddr::V6(v6)) => match v6.to_ipv4_mapped() {
                Some(v4) => Host::Ip(v4.into()),
                None => self.clone(),
            },
            h => h.clone(),
        }
    }

    /// Whether the two name the same host (`localhost` and `127.0.0.1` do).
    pub fn same_as(&self, other: &Host) -> bool {
        self.canonical() == other.canonical()
    }
}

impl fmt::Display for Host {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Host::Any => f.write_str("*"),
            Host::Ip(IpAddr::V6(ip)) => write!(f, "[{ip}]"),
            Host::Ip(ip) => write!(f, "{ip}"),
            Host::Name(n) => f.write_str(n),
        }
    }
}

/// A ZeroMQ endpoint of ours: TCP or a unix socket.
#[derive(Debug, Clone, PartialEq, Eq, Hash)]
pub enum Endpoint {
    /// `tcp://HOST:PORT`.
    Tcp {
        /// The host.
        host: Host,
        /// The port; 0 only where ZeroMQ picks one (`tcp://127.0.0.1:*` in code).
        port: u16,
    },
    /// `ipc://PATH`.
    Ipc(PathBuf),
}

/// Why a text is not an endpoint; says what was expected.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct EndpointError(String);

impl Endpoint {
    /// `tcp://HOST:PORT`.
    pub fn tcp(host: &str, port: u16) -> Endpoint {
        Endpoint::Tcp {
            host: Host::parse(host),
            port,
        }
    }

    /// Parses an endpoint to bind: `tcp://HOST:PORT` (HOST may be `*`; the port must be known
    /// to peers, so not 0) or `ipc://PATH`.
    pub fn parse_bind(s: &str) -> Result<Endpoint, EndpointError> {
        let ep: Endpoint = s.parse()?;
        if let Endpoint::Tcp { port: 0, .. } = ep {
            return Err(err(format!(
                "\"{s}\": port 0 is not allowed here: peers must know the port"
            )));
        }
        Ok(ep)
    }

    /// Parses an endpoint to connect to: `tcp://HOST:PORT`, `HOST:PORT` or `ipc://PATH`.
    pub fn parse_connect(s: &str) -> Result<Endpoint, EndpointError> {
        let ep: Endpoint = if s.starts_with("tcp://") || s.starts_with("ipc://") {
            s.parse()?
        } else if s.contains("://") {
            return Err(err(format!(
                "invalid endpoint \"{s}\": expected tcp://HOST:PORT, HOST:PORT or ipc://PATH"
            )));
        } else {
            format!("tcp://{s}").parse()?
        };
        match &ep {
            Endpoint::Tcp { host, .. } if *host == Host::Any => {
                Err(err(format!("\"{s}\": cannot connect to `*`; name a host")))
            }
            Endpoint::Tcp { port: 0, .. } => Err(err(format!("\"{s}\": cannot connect to port 0"))),
            _ => Ok(ep),
        }
    }

    /// The TCP port, if it is a TCP endpoint.
    pub fn port(&self) -> Option<u16> {
        match self {
            Endpoint::Tcp { port, .. } => Some(*port),
            Endpoint::Ipc(_) => None,
        }
    }

    /// The host, if it is a TCP endpoint.
    pub fn host(&self) -> Option<&Host> {
        match self {
            Endpoint::Tcp { host, .. } => Some(host),
            Endpoint::Ipc(_) => None,
        }
    }

    /// The socket path, if it is an ipc endpoint.
    pub fn ipc_path(&self) -> Option<&Path> {
        match self {
            Endpoint::Ipc(p) => Some(p),
            Endpoint::Tcp { .. } => None,
        }
    }

    /// Where a peer on this host connects to reach this bound endpoint: a wildcard becomes
    /// loopback (`::` the IPv6 one).
    pub fn connect_target(&self) -> Endpoint {
        match self {
            Endpoint::Tcp { host, port } if host.is_wildcard() => {
                let ip: IpAddr = match host {
                    Host::Ip(IpAddr::V6(_)) => Ipv6Addr::LOCALHOST.into(),
                    _ => Ipv4Addr::LOCALHOST.into(),
                };
                Endpoint::Tcp {
                    host: Host::Ip(ip),
                    port: *port,
                }
            }
            other => other.clone(),
        }
    }

    /// Whether connecting to `self` reaches a socket bound on `bound`.
    pub fn reaches(&self, bound: &Endpoint) -> bool {
        match (self, bound) {
            (Endpoint::Tcp { host: c, port: cp }, Endpoint::Tcp { host: b, port: bp }) => {
                cp == bp && (b.is_wildcard() || c.same_as(b))
            }
            (Endpoint::Ipc(a), Endpoint::Ipc(b)) => a == b,
            _ => false,
        }
    }

    /// Whether binding both on one host fails: the same path, or the same port on the same
    /// host or a wildcard.
    pub fn clashes(&self, other: &Endpoint) -> bool {
        match (self, other) {
            (Endpoint::Tcp { host: a, port: p }, Endpoint::Tcp { host: b, port: q }) => {
                p == q && *p != 0 && (a.is_wildcard() || b.is_wildcard() || a.same_as(b))
            }
            (Endpoint::Ipc(a), Endpoint::Ipc(b)) => a == b,
            _ => false,
        }
    }
}

/// A socket address as a TCP endpoint (for comparing listening addresses, UDP ones too).
impl From<std::net::SocketAddr> for Endpoint {
    fn from(addr: std::net::SocketAddr) -> Endpoint {
        Endpoint::Tcp {
            host: Host::Ip(addr.ip()),
            port: addr.port(),
        }
    }
}

fn err(message: String) -> EndpointError {
    EndpointError(message)
}

impl FromStr for Endpoint {
    type Err = EndpointError;

    /// `tcp://HOST:PORT` (IPv6 hosts in brackets; port 0 allowed) or `ipc://PATH`.
    fn from_str(s: &str) -> Result<Endpoint, EndpointError> {
        if let Some(rest) = s.strip_prefix("tcp://") {
            let (host, port) = split_host_port(rest)?;
            return Ok(Endpoint::Tcp {
                host: Host::parse(host),
                port,
            });
        }
        if let Some(path) = s.strip_prefix("ipc://") {
            if path.is_empty() {
                return Err(err(format!("\"{s}\" has no path")));
            }
            if path.len() > MAX_IPC_PATH {
                return Err(err(format!(
                    "ipc path \"{path}\" is {} bytes long; a Unix socket path may have at most {MAX_IPC_PATH}",
                    path.len()
                )));
            }
            return Ok(Endpoint::Ipc(PathBuf::from(path)));
        }
        Err(err(format!(
            "invalid endpoint \"{s}\": expected tcp://ADDR:PORT or ipc://PATH"
        )))
    }
}

/// Splits `HOST:PORT`; IPv6 hosts must be bracketed.
fn split_host_port(s: &str) -> Result<(&str, u16), EndpointError> {
    let (host, port) = s
        .rsplit_once(':')
        .ok_or_else(|| err(format!("\"{s}\" has no port: expected HOST:PORT")))?;
    if host.is_empty() {
        return Err(err(format!("\"{s}\" has no host: expected HOST:PORT")));
    }
    if host.contains(':') && !(host.starts_with('[') && host.ends_with(']')) {
        return Err(err(format!(
            "\"{s}\": write IPv6 addresses in brackets, e.g. tcp://[::1]:6001"
        )));
    }
    let port = port
        .parse::<u16>()
        .map_err(|_| err(format!("\"{s}\": invalid port \"{port}\"")))?;
    Ok((host, port))
}

/// The text ZeroMQ takes: `tcp://HOST:PORT` (IPv6 in brackets), `ipc://PATH`.
impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Endpoint::Tcp { host, port } => write!(f, "tcp://{host}:{port}"),
            Endpoint::Ipc(path) => write!(f, "ipc://{}", path.display()),
        }
    }
}

impl serde::Serialize for Endpoint {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> serde::Deserialize<'de> for Endpoint {
    fn deserialize<D: serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        let text = String::deserialize(d)?;
        text.parse().map_err(serde::de::Error::custom)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    #[test]
    fn parse_and_display_round_trip() {
        for s in [
            "tcp://127.0.0.1:6001",
            "tcp://*:6001",
            "tcp://[::1]:6001",
            "tcp://[::]:6001",
            "tcp://logs.example.com:6001",
            "ipc:///run/zerolog/all.sock",
        ] {
            assert_eq!(ep(s).to_string(), s);
        }
        assert_eq!(ep("tcp://LocalHost:1").to_string(), "tcp://localhost:1");
        assert_eq!(Endpoint::tcp("::1", 6200).to_string(), "tcp://[::1]:6200");
        assert_eq!(Endpoint::tcp("[::1]", 6200).to_string(), "tcp://[::1]:6200");
    }

    #[test]
    fn malformed_endpoints_say_what_was_expected() {
        let e = |s: &str| s.parse::<Endpoint>().unwrap_err().to_string();
        assert!(e("udp://x:1").contains("expected tcp://ADDR:PORT or ipc://PATH"));
        assert!(e("tcp://::1:6001").contains("in brackets"));
        assert!(e("tcp://host").contains("has no port"));
        assert!(e("tcp://:6001").contains("has no host"));
        assert!(e("tcp://h:99999").contains("invalid port"));
        assert!(e("ipc://").contains("has no path"));
        assert!(e(&format!("ipc:///{}", "x".repeat(120))).contains("at most 107"));
        let b = Endpoint::parse_bind("tcp://*:0").unwrap_err().to_string();
        assert!(b.contains("port 0 is not allowed"));
        let c = |s: &str| Endpoint::parse_connect(s).unwrap_err().to_string();
        assert!(c("tcp://*:6001").contains("cannot connect to `*`"));
        assert!(c("127.0.0.1:0").contains("port 0"));
        assert!(c("udp://x:1").contains("expected tcp://HOST:PORT, HOST:PORT or ipc://PATH"));
        // The reason, not just "invalid".
        assert!(c("::1:6001").contains("in brackets"));
        assert!(c("tcp://host").contains("has no port"));
        assert_eq!(
            Endpoint::parse_connect("10.0.0.1:6001").unwrap(),
            ep("tcp://10.0.0.1:6001")
        );
    }

    #[test]
    fn localhost_is_loopback_wherever_hosts_are_compared() {
        let bound = ep("tcp://127.0.0.1:6001");
        assert!(ep("tcp://localhost:6001").reaches(&bound));
        assert!(ep("tcp://localhost:6001").clashes(&bound));
        assert!(ep("tcp://127.0.0.1:6001").reaches(&ep("tcp://localhost:6001")));
        assert!(!ep("tcp://localhost:6002").reaches(&bound));
        assert!(!ep("tcp://10.0.0.2:6001").reaches(&bound));
    }

    #[test]
    fn wildcards() {
        for w in ["tcp://*:6001", "tcp://0.0.0.0:6001", "tcp://[::]:6001"] {
            assert!(ep("tcp://127.0.0.1:6001").reaches(&ep(w)), "{w}");
            assert!(ep("tcp://10.1.2.3:6001").clashes(&ep(w)), "{w}");
            assert!(ep(w).clashes(&ep("tcp://*:6001")), "{w}");
        }
        assert_eq!(
            ep("tcp://0.0.0.0:6200").connect_target(),
            ep("tcp://127.0.0.1:6200")
        );
        assert_eq!(
            ep("tcp://*:6200").connect_target(),
            ep("tcp://127.0.0.1:6200")
        );
        assert_eq!(
            ep("tcp://[::]:6200").connect_target(),
            ep("tcp://[::1]:6200")
        );
        let ipc = ep("ipc:///run/zerolog/all.sock");
        assert_eq!(ipc.connect_target(), ipc);
        assert!(ipc.reaches(&ipc) && ipc.clashes(&ipc));
        assert!(!ipc.reaches(&ep("tcp://127.0.0.1:6001")));
    }
}
