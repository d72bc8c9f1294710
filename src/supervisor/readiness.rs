//! The receiving side of the sd_notify protocol: zerologd's notify socket, on which its
//! children report readiness (`READY=1`, see [`zerolog::notify`]), as zerologd reports its own to
//! systemd. The sender is known by its credentials (`SO_PASSCRED`), which the kernel vouches
//! for, so a program can only speak for itself.

use std::io::IoSliceMut;
use std::os::fd::AsRawFd;
use std::os::unix::fs::PermissionsExt;
use std::os::unix::net::UnixDatagram;
use std::path::{Path, PathBuf};

use nix::sys::socket::{recvmsg, setsockopt, sockopt, ControlMessageOwned, MsgFlags};
use zerolog::endpoint::MAX_IPC_PATH;

/// Datagrams taken per call, so a flood cannot hold up the daemon loop.
const MAX_PER_CALL: usize = 256;

/// One notification: the sender's pid and its `KEY=VALUE` lines.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Notification {
    /// The process that sent it.
    pub pid: i32,
    /// Its lines, as sent.
    pub lines: Vec<String>,
}

impl Notification {
    /// Whether it says `READY=1`.
    pub fn ready(&self) -> bool {
        self.lines.iter().any(|l| l == zerolog::notify::READY)
    }
}

/// zerologd's notify socket, handed to every child as `NOTIFY_SOCKET`.
pub struct NotifyServer {
    sock: UnixDatagram,
    path: PathBuf,
}

impl NotifyServer {
    /// Binds the socket at `path` (a stale one is replaced), writable by every user a program
    /// may run as: credentials, not the file mode, say who sent what.
    pub fn bind(path: &Path) -> std::io::Result<NotifyServer> {
        if path.as_os_str().len() > MAX_IPC_PATH {
            return Err(std::io::Error::other(format!(
                "path longer than {MAX_IPC_PATH} bytes: choose a shorter runtime_dir"
            )));
        }
        let _ = std::fs::remove_file(path);
        let sock = UnixDatagram::bind(path)?;
        sock.set_nonblocking(true)?;
        setsockopt(&sock, sockopt::PassCred, &true)?;
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(0o666))?;
        Ok(NotifyServer {
            sock,
            path: path.to_path_buf(),
        })
    }

    /// The socket's path, for `NOTIFY_SOCKET`.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The socket, to poll.
    pub fn socket(&self) -> &UnixDatagram {
        &self.sock
    }

    /// Takes the notifications waiting (at most a bounded number); those without credentials
    /// are dropped.
    pub fn take(&self) -> Vec<Notification> {
        let mut out = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..MAX_PER_CALL {
            let mut iov = [IoSliceMut::new(&mut buf)];
            let mut space = nix::cmsg_space!(nix::sys::socket::UnixCredentials);
            let (pid, len) = match recvmsg::<()>(
                self.sock.as_raw_fd(),
                &mut iov,
                Some(&mut space),
                MsgFlags::MSG_DONTWAIT,
            ) {
                Ok(msg) => {
                    let pid = msg.cmsgs().ok().and_then(|mut c| {
                        c.find_map(|m| match m {
                            ControlMessageOwned::ScmCredentials(cred) => Some(cred.pid()),
                            _ => None,
                        })
                    });
                    (pid, msg.bytes)
                }
                Err(nix::errno::Errno::EINTR) => continue,
                Err(_) => break,
            };
            if let Some(pid) = pid {
                let text = String::from_utf8_lossy(&buf[..len]);
                out.push(Notification {
                    pid,
                    lines: text.lines().map(str::to_owned).collect(),
                });
            }
        }
        out
    }
}

impl Drop for NotifyServer {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.path);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_sender_is_known_by_its_pid() {
        let dir = tempfile::tempdir().unwrap();
        let server = NotifyServer::bind(&dir.path().join("notify.sock")).unwrap();
        assert!(server.take().is_empty());
        let client = UnixDatagram::unbound().unwrap();
        client
            .send_to(b"READY=1\nSTATUS=up", server.path())
            .unwrap();
        client.send_to(b"WATCHDOG=1\n", server.path()).unwrap();
        let got = server.take();
        let me = std::process::id() as i32;
        assert_eq!(
            got,
            [
                Notification {
                    pid: me,
                    lines: vec!["READY=1".into(), "STATUS=up".into()]
                },
                Notification {
                    pid: me,
                    lines: vec!["WATCHDOG=1".into()]
                }
            ]
        );
        assert!(got[0].ready() && !got[1].ready());
    }

    #[test]
    fn a_path_too_long_is_refused_with_a_reason() {
        let long = Path::new("/tmp").join("x".repeat(120));
        let e = NotifyServer::bind(&long).err().unwrap();
        assert!(e.to_string().contains("runtime_dir"), "{e}");
    }
}
