//! CURVE (ZeroMQ's encryption and authentication, RFC 26) on the hops between hosts: key
//! pairs and their files, and the socket settings of each side. The side that binds (the
//! forwarder's publish and journal sockets) is the CURVE server, with a secret key; the side
//! that connects (a receiver) knows the server's public key, so it cannot be fooled by another
//! host, and has a key pair of its own, which the server's allow list checks (ZAP, see
//! [`crate::access`]).
//!
//! A secret key file (written by `zerolog keygen`) holds both keys as Z85 text:
//!
//! ```text
//! public-key = "rq:rM>}U?@Lns47E1%kR.o@n%FcmmsL/@{H8]yf7"
//! secret-key = "JTKVSB%%)wK0E.X)V>+}o?pNmC{O&4W4b!Ni{Lh6"
//! ```
//!
//! and must not be readable by others than its owner and group. A public key is given as its
//! 40 Z85 characters, or as the path of a file holding it (`NAME.pub`, or a secret key file).

use std::fs;
use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

/// Z85 text of a 32-byte key.
const Z85_LEN: usize = 40;

/// What can be wrong with a key or its file. None of them shows secret material.
#[derive(Debug, thiserror::Error)]
pub enum CurveError {
    /// libzmq was built without CURVE.
    #[error("this build of libzmq has no CURVE support")]
    Unsupported,
    /// The file cannot be read or written.
    #[error("{path}: {source}")]
    Io {
        /// The key file.
        path: PathBuf,
        /// What the system said.
        source: std::io::Error,
    },
    /// A secret key file that others than its owner and group may read.
    #[error(
        "{path}:{line}: the secret key is readable by others (mode {mode:04o}): chmod o-rwx {path}"
    )]
    Exposed {
        /// The key file.
        path: PathBuf,
        /// The line of its `secret-key`.
        line: usize,
        /// Its permission bits.
        mode: u32,
    },
    /// Not a key, or a file without the key expected.
    #[error("{what}: {why}")]
    Invalid {
        /// The file (and line) or the option.
        what: String,
        /// What was expected.
        why: String,
    },
}

/// A key pair, as libzmq takes it (32 bytes each).
#[derive(Clone, PartialEq, Eq)]
pub struct KeyPair {
    /// The public key.
    pub public: [u8; 32],
    secret: [u8; 32],
}

impl std::fmt::Debug for KeyPair {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "KeyPair {{ public: {}, secret: .. }}", z85(&self.public))
    }
}

impl KeyPair {
    /// A new random key pair (libsodium's generator, through libzmq).
    pub fn generate() -> Result<KeyPair, CurveError> {
        let pair = zmq::CurveKeyPair::new().map_err(|_| CurveError::Unsupported)?;
        Ok(KeyPair {
            public: pair.public_key,
            secret: pair.secret_key,
        })
    }

    /// The public key as Z85 text.
    pub fn public_z85(&self) -> String {
        z85(&self.public)
    }

    /// Writes the secret key file `path` (mode 0600, created or replaced) and the public key
    /// beside it, in `path.pub`.
    pub fn write(&self, path: &Path) -> Result<PathBuf, CurveError> {
        let text = format!(
            "public-key = \"{}\"\nsecret-key = \"{}\"\n",
            z85(&self.public),
            z85(&self.secret)
        );
        write_file(path, 0o600, &text)?;
        let public = PathBuf::from(format!("{}.pub", path.display()));
        write_file(&public, 0o644, &format!("{}\n", z85(&self.public)))?;
        Ok(public)
    }

    /// Reads a secret key file, refusing one that others may read.
    pub fn read(path: &Path) -> Result<KeyPair, CurveError> {
        let io = |source| CurveError::Io {
            path: path.to_owned(),
            source,
        };
        let text = fs::read_to_string(path).map_err(io)?;
        let (line, secret) = field(&text, "secret-key").ok_or_else(|| CurveError::Invalid {
            what: path.display().to_string(),
            why: "no secret-key = \"...\" line: not a key file of `zerolog keygen`".into(),
        })?;
        let mode = fs::metadata(path).map_err(io)?.permissions().mode() & 0o7777;
        if crate::process::exposed_secret(mode) {
            return Err(CurveError::Exposed {
                path: path.to_owned(),
                line,
                mode,
            });
        }
        let secret = decode(secret).map_err(|why| CurveError::Invalid {
            what: format!("{}:{line}", path.display()),
            why,
        })?;
        let public = public_of(&secret).ok_or(CurveError::Unsupported)?;
        Ok(KeyPair { public, secret })
    }

    /// The secret key, for libzmq.
    pub(crate) fn secret(&self) -> &[u8; 32] {
        &self.secret
    }
}

/// A public key given as Z85 text, or as the path of a file holding it.
pub fn public_key(given: &str) -> Result<[u8; 32], CurveError> {
    let path = Path::new(given);
    // Z85 has '/' and '.' too: a key is 40 characters that do not name a file.
    if given.len() == Z85_LEN && !path.exists() {
        return decode(given).map_err(|why| CurveError::Invalid {
            what: format!("public key \"{given}\""),
            why,
        });
    }
    let text = fs::read_to_string(path).map_err(|source| CurveError::Io {
        path: path.to_owned(),
        source,
    })?;
    let (line, key) = field(&text, "public-key").unwrap_or((1, text.trim()));
    decode(key).map_err(|why| CurveError::Invalid {
        what: format!("{}:{line}", path.display()),
        why,
    })
}

/// Z85 text of a key.
pub fn z85(key: &[u8; 32]) -> String {
    zmq::z85_encode(key).expect("32 bytes encode")
}

fn decode(text: &str) -> Result<[u8; 32], String> {
    let expected = || format!("expected a key of {Z85_LEN} Z85 characters (zerolog keygen)");
    // libzmq's decoder does not check the alphabet.
    const Z85: &[u8] =
        b"0123456789abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ.-:+=^!/*?&<>()[]{}@%$#";
    if text.len() != Z85_LEN || !text.bytes().all(|b| Z85.contains(&b)) {
        return Err(expected());
    }
    let bytes = zmq::z85_decode(text).map_err(|_| expected())?;
    bytes.try_into().map_err(|_| expected())
}

/// The value of `name = "..."` in a key file, with its line number.
fn field<'a>(text: &'a str, name: &str) -> Option<(usize, &'a str)> {
    text.lines().enumerate().find_map(|(i, l)| {
        let (k, v) = l.split_once('=')?;
        (k.trim() == name).then(|| (i + 1, v.trim().trim_matches('"')))
    })
}

// libzmq's, linked with zmq-sys, which does not re-export it.
extern "C" {
    fn zmq_curve_public(public: *mut std::ffi::c_char, secret: *const std::ffi::c_char) -> i32;
}

/// The public key of a secret key (so a key file's public key cannot disagree with it).
fn public_of(secret: &[u8; 32]) -> Option<[u8; 32]> {
    let mut public_z85 = [0u8; Z85_LEN + 1];
    let mut secret_z85 = z85(secret).into_bytes();
    secret_z85.push(0);
    // SAFETY: both buffers are NUL-terminated Z85 texts of 40 characters, as libzmq expects.
    let rc =
        unsafe { zmq_curve_public(public_z85.as_mut_ptr().cast(), secret_z85.as_ptr().cast()) };
    if rc != 0 {
        return None;
    }
    let text = std::str::from_utf8(&public_z85[..Z85_LEN]).ok()?;
    decode(text).ok()
}

fn write_file(path: &Path, mode: u32, text: &str) -> Result<(), CurveError> {
    let io = |source| CurveError::Io {
        path: path.to_owned(),
        source,
    };
    let _ = fs::remove_file(path);
    let mut f = fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .mode(mode)
        .open(path)
        .map_err(io)?;
    f.write_all(text.as_bytes()).map_err(io)?;
    f.sync_all().map_err(io)
}

/// The binding side's settings: its secret key file, and the public keys of the clients it
/// lets in (empty: any client that completes the handshake; the traffic is encrypted either
/// way).
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveServer {
    /// The secret key file.
    pub secret_key: PathBuf,
    /// Public keys (Z85, or files holding them) allowed to connect.
    #[serde(default)]
    pub clients: Vec<String>,
}

/// The connecting side's settings: its own secret key file, and the server's public key.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(deny_unknown_fields)]
pub struct CurveClient {
    /// The secret key file.
    pub secret_key: PathBuf,
    /// The server's public key (Z85, or a file holding it).
    pub server_key: String,
}

impl CurveServer {
    /// Reads the key and the client keys.
    pub fn load(&self) -> Result<(KeyPair, Vec<[u8; 32]>), CurveError> {
        let pair = KeyPair::read(&self.secret_key)?;
        let clients = self
            .clients
            .iter()
            .map(|c| public_key(c))
            .collect::<Result<_, _>>()?;
        Ok((pair, clients))
    }
}

/// Makes `socket` a CURVE server with `pair` (call before bind).
pub fn serve(socket: &zmq::Socket, pair: &KeyPair) -> zmq::Result<()> {
    socket.set_curve_server(true)?;
    socket.set_curve_secretkey(pair.secret())
}

impl CurveClient {
    /// Reads both keys.
    pub fn load(&self) -> Result<(KeyPair, [u8; 32]), CurveError> {
        Ok((
            KeyPair::read(&self.secret_key)?,
            public_key(&self.server_key)?,
        ))
    }
}

/// Makes `socket`, about to connect to `endpoint`, a CURVE client when `curve` says so and the
/// endpoint is TCP (another host may be behind it; IPC stays on this one).
pub fn guard_client(
    socket: &zmq::Socket,
    curve: Option<&CurveClient>,
    endpoint: &crate::endpoint::Endpoint,
) -> Result<(), crate::Error> {
    let Some(curve) = curve.filter(|_| endpoint.port().is_some()) else {
        return Ok(());
    };
    let (pair, server) = curve.load()?;
    connect_as(socket, &pair, &server).map_err(crate::zmqutil::zerr("setting the CURVE keys"))
}

/// Makes `socket` a CURVE client of the server `server` (call before connect).
pub fn connect_as(socket: &zmq::Socket, pair: &KeyPair, server: &[u8; 32]) -> zmq::Result<()> {
    socket.set_curve_serverkey(server)?;
    socket.set_curve_publickey(&pair.public)?;
    socket.set_curve_secretkey(pair.secret())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_written_pair_reads_back_and_its_public_file_too() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("fwd.key");
        let pair = KeyPair::generate().unwrap();
        let public = pair.write(&path).unwrap();
        assert_eq!(KeyPair::read(&path).unwrap(), pair);
        assert_eq!(public_key(public.to_str().unwrap()).unwrap(), pair.public);
        assert_eq!(public_key(path.to_str().unwrap()).unwrap(), pair.public);
        assert_eq!(public_key(&pair.public_z85()).unwrap(), pair.public);
        let mode = fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o600);
        // The secret is in no Debug output.
        let secret = z85(pair.secret());
        assert!(!format!("{pair:?}").contains(&secret));
    }

    #[test]
    fn a_key_file_others_can_read_is_refused_with_its_line() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        let pair = KeyPair::generate().unwrap();
        pair.write(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o640)).unwrap();
        KeyPair::read(&path).unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o644)).unwrap();
        let e = KeyPair::read(&path).unwrap_err().to_string();
        assert!(
            e.starts_with(&format!("{}:2: ", path.display())) && e.contains("0644"),
            "{e}"
        );
        assert!(!e.contains(&z85(pair.secret())), "{e}");
    }

    #[test]
    fn a_key_with_a_slash_is_a_key() {
        let pair = (0..)
            .map(|_| KeyPair::generate().unwrap())
            .find(|p| p.public_z85().contains('/'))
            .unwrap();
        assert_eq!(public_key(&pair.public_z85()).unwrap(), pair.public);
    }

    #[test]
    fn bad_keys_say_what_was_expected() {
        let e = public_key("short").unwrap_err().to_string();
        assert!(e.contains("short"), "{e}");
        let e = public_key(&"~".repeat(40)).unwrap_err().to_string();
        assert!(e.contains("40 Z85 characters"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("k");
        fs::write(&path, "nothing here\n").unwrap();
        fs::set_permissions(&path, fs::Permissions::from_mode(0o600)).unwrap();
        let e = KeyPair::read(&path).unwrap_err().to_string();
        assert!(e.contains("no secret-key"), "{e}");
    }
}
