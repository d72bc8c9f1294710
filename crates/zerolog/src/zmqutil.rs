//! Small helpers around rust-zmq: socket options it has no setter for, and error mapping.

use crate::endpoint::Endpoint;
use crate::Error;

/// `ZMQ_XPUB_NODROP`: an XPUB whose subscriber is at its high-water mark returns EAGAIN
/// (blocks, for a blocking send) instead of dropping the message.
const ZMQ_XPUB_NODROP: i32 = 69;
/// `ZMQ_XPUB_VERBOSER`: pass every subscribe and unsubscribe, including duplicates and the
/// unsubscriptions of peers that disconnect, so we can count live subscriptions exactly.
const ZMQ_XPUB_VERBOSER: i32 = 78;

fn set_int_option(socket: &mut zmq::Socket, option: i32, value: i32) -> Result<(), zmq::Error> {
    // SAFETY: the socket pointer is valid for the lifetime of `socket`, and the option value is
    // a plain int passed by pointer with its size, as zmq_setsockopt expects.
    let rc = unsafe {
        zmq_sys::zmq_setsockopt(
            socket.as_mut_ptr(),
            option,
            (&value as *const i32).cast(),
            std::mem::size_of::<i32>(),
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(last_error())
    }
}

/// `ZMQ_IN_BATCH_SIZE` and `ZMQ_OUT_BATCH_SIZE` (libzmq DRAFT API): how many bytes libzmq reads
/// from, or gathers before writing to, a connection at once.
const ZMQ_IN_BATCH_SIZE: i32 = 101;
const ZMQ_OUT_BATCH_SIZE: i32 = 102;

/// The batch size zerolog's data sockets use, instead of libzmq's 8 KiB: at 150-byte messages,
/// 8 KiB is about 50 messages per system call and wake-up, and those dominated the profile.
pub const IO_BATCH_BYTES: i32 = 64 * 1024;

/// Sets `socket`'s read and write batches to [`IO_BATCH_BYTES`], before it binds or connects.
/// Returns false, changing nothing, when libzmq was built without its DRAFT API (the options
/// are refused with EINVAL): it then keeps its 8 KiB default, which works the same, on more CPU.
/// zerolog's own build enables the DRAFT API (`vendor/zmq-sys`).
pub fn set_io_batch(socket: &mut zmq::Socket) -> Result<bool, zmq::Error> {
    for option in [ZMQ_IN_BATCH_SIZE, ZMQ_OUT_BATCH_SIZE] {
        match set_int_option(socket, option, IO_BATCH_BYTES) {
            Ok(()) => {}
            Err(zmq::Error::EINVAL) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    Ok(true)
}

/// Makes an XPUB socket lossless and verbose about (un)subscriptions.
pub fn set_xpub_nodrop_verboser(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    set_int_option(socket, ZMQ_XPUB_NODROP, 1)?;
    set_int_option(socket, ZMQ_XPUB_VERBOSER, 1)
}

/// Binds `socket` to `endpoint`, naming the endpoint in the error.
pub fn bind(socket: &zmq::Socket, endpoint: &Endpoint) -> Result<(), Error> {
    let endpoint = endpoint.to_string();
    socket.bind(&endpoint).map_err(|source| Error::Bind {
        endpoint: endpoint.to_string(),
        source,
    })
}

/// Connects `socket` to `endpoint`, naming the endpoint in the error.
pub fn connect(socket: &zmq::Socket, endpoint: &str) -> Result<(), Error> {
    socket.connect(endpoint).map_err(|source| Error::Connect {
        endpoint: endpoint.to_string(),
        source,
    })
}

/// The endpoint a socket bound as `configured` actually has (port 0 resolved), or
/// `configured` when ZeroMQ does not say.
pub fn bound_endpoint(socket: &zmq::Socket, configured: &Endpoint) -> Endpoint {
    match socket.get_last_endpoint() {
        Ok(Ok(s)) => s.parse().unwrap_or_else(|_| configured.clone()),
        _ => configured.clone(),
    }
}

/// Wraps a zmq error with what we were doing.
pub fn zerr(context: &'static str) -> impl FnOnce(zmq::Error) -> Error {
    move |source| Error::Zmq { context, source }
}

/// A ZeroMQ message owned by us through the C API. Unlike rust-zmq's `Message`, a failed send
/// leaves it with us, so a send that times out or is interrupted by a signal can be retried
/// without copying or losing it.
pub struct RawMsg(zmq_sys::zmq_msg_t);

impl RawMsg {
    pub fn new() -> Self {
        let mut m = std::mem::MaybeUninit::<zmq_sys::zmq_msg_t>::uninit();
        // SAFETY: zmq_msg_init initialises the struct and cannot fail.
        unsafe {
            zmq_sys::zmq_msg_init(m.as_mut_ptr());
            RawMsg(m.assume_init())
        }
    }

    /// Receives the next frame into this message (replacing what it held).
    pub fn recv(&mut self, socket: RawSocket, flags: i32) -> Result<(), zmq::Error> {
        // SAFETY: the message is initialised, the socket is live (see RawSocket).
        let rc = unsafe { zmq_sys::zmq_msg_recv(&mut self.0, socket.0, flags) };
        if rc < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Sends this message; on success it is left empty, on failure it is unchanged.
    pub fn send(&mut self, socket: RawSocket, flags: i32) -> Result<(), zmq::Error> {
        // SAFETY: as for recv.
        let rc = unsafe { zmq_sys::zmq_msg_send(&mut self.0, socket.0, flags) };
        if rc < 0 {
            return Err(last_error());
        }
        Ok(())
    }

    /// Size of the frame in bytes.
    pub fn len(&self) -> usize {
        // SAFETY: the message is initialised; zmq_msg_size only reads it.
        unsafe { zmq_sys::zmq_msg_size(&self.0 as *const _ as *mut _) }
    }

    /// Whether more frames of the same message follow.
    pub fn more(&self) -> bool {
        // SAFETY: the message is initialised; zmq_msg_more only reads it.
        unsafe { zmq_sys::zmq_msg_more(&self.0 as *const _ as *mut _) != 0 }
    }
}

impl Default for RawMsg {
    fn default() -> Self {
        Self::new()
    }
}

impl Drop for RawMsg {
    fn drop(&mut self) {
        // SAFETY: the message is initialised and closed once.
        unsafe {
            zmq_sys::zmq_msg_close(&mut self.0);
        }
    }
}

fn last_error() -> zmq::Error {
    // SAFETY: zmq_errno has no preconditions.
    zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() })
}

/// The C handle of a socket, for [`RawMsg`]. Valid as long as the `zmq::Socket` it was taken
/// from; whoever holds one keeps that socket alive beside it and on the same thread.
#[derive(Clone, Copy)]
pub struct RawSocket(*mut std::ffi::c_void);

// SAFETY: a ZeroMQ socket may move between threads (rust-zmq's Socket is Send); RawSocket is
// only used by the owner of the Socket, never concurrently.
unsafe impl Send for RawSocket {}

impl RawSocket {
    pub fn of(socket: &mut zmq::Socket) -> Self {
        RawSocket(socket.as_mut_ptr())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn int_option(socket: &mut zmq::Socket, option: i32) -> i32 {
        let (mut value, mut len) = (0i32, std::mem::size_of::<i32>());
        // SAFETY: a valid socket, an int option read into an int with its size.
        let rc = unsafe {
            zmq_sys::zmq_getsockopt(
                socket.as_mut_ptr(),
                option,
                (&mut value as *mut i32).cast(),
                &mut len,
            )
        };
        assert_eq!(rc, 0, "{}", last_error());
        value
    }

    #[test]
    fn io_batch_is_set_in_this_build() {
        // zerolog's build has libzmq's DRAFT API (vendor/zmq-sys); without it this returns false
        // and the pipeline runs on 8 KiB batches.
        let ctx = zmq::Context::new();
        let mut socket = ctx.socket(zmq::PUSH).unwrap();
        assert_eq!(
            int_option(&mut socket, ZMQ_OUT_BATCH_SIZE),
            8192,
            "libzmq's default"
        );
        assert!(set_io_batch(&mut socket).unwrap(), "DRAFT options refused");
        assert_eq!(int_option(&mut socket, ZMQ_IN_BATCH_SIZE), IO_BATCH_BYTES);
        assert_eq!(int_option(&mut socket, ZMQ_OUT_BATCH_SIZE), IO_BATCH_BYTES);
    }

    #[test]
    fn curve_is_in_this_build() {
        // zerolog's build links libzmq with libsodium (vendor/zmq-sys); without it libzmq has no
        // CURVE and refuses to make keys (ENOTSUP).
        assert_eq!(zmq::has("curve"), Some(true), "libzmq built without CURVE");
        let keys = zmq::CurveKeyPair::new().expect("zmq_curve_keypair");
        assert_ne!(keys.public_key, keys.secret_key);
    }

    /// A PUSH client of a CURVE server bound on `endpoint`, which takes `server_key` as the
    /// server's public key. Linger 0: a message it could not deliver does not hold up the end of
    /// the context.
    fn curve_client(ctx: &zmq::Context, endpoint: &str, server_key: &[u8]) -> zmq::Socket {
        let keys = zmq::CurveKeyPair::new().unwrap();
        let client = ctx.socket(zmq::PUSH).unwrap();
        client.set_linger(0).unwrap();
        client.set_curve_serverkey(server_key).unwrap();
        client.set_curve_publickey(&keys.public_key).unwrap();
        client.set_curve_secretkey(&keys.secret_key).unwrap();
        client.connect(endpoint).unwrap();
        client
    }

    #[test]
    fn curve_server_takes_its_clients_only() {
        // Over TCP: inproc connections do not run a security handshake.
        let ctx = zmq::Context::new();
        let server_keys = zmq::CurveKeyPair::new().unwrap();
        let server = ctx.socket(zmq::PULL).unwrap();
        server.set_linger(0).unwrap();
        server.set_curve_server(true).unwrap();
        server.set_curve_secretkey(&server_keys.secret_key).unwrap();
        server.bind("tcp://127.0.0.1:0").unwrap();
        let endpoint = server.get_last_endpoint().unwrap().unwrap();
        assert_eq!(server.get_mechanism().unwrap(), zmq::Mechanism::ZMQ_CURVE);

        let client = curve_client(&ctx, &endpoint, &server_keys.public_key);
        client.send("over curve", 0).unwrap();
        server.set_rcvtimeo(10_000).unwrap();
        assert_eq!(server.recv_bytes(0).unwrap(), b"over curve");

        // A client that takes another key for the server's fails the handshake (the server
        // cannot open its box): the server gets nothing from it.
        let wrong = curve_client(
            &ctx,
            &endpoint,
            &zmq::CurveKeyPair::new().unwrap().public_key,
        );
        wrong.send("wrong server key", 0).unwrap();
        server.set_rcvtimeo(1_000).unwrap();
        assert_eq!(server.recv_bytes(0), Err(zmq::Error::EAGAIN));

        // The good client is still served after that.
        client.send("still there", 0).unwrap();
        server.set_rcvtimeo(10_000).unwrap();
        assert_eq!(server.recv_bytes(0).unwrap(), b"still there");
    }
}
