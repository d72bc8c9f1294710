//! Small helpers around rust-zmq: socket options it has no setter for, and error mapping.

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
        // SAFETY: zmq_errno has no preconditions.
        Err(zmq::Error::from_raw(unsafe { zmq_sys::zmq_errno() }))
    }
}

/// Makes an XPUB socket lossless and verbose about (un)subscriptions.
pub fn set_xpub_nodrop_verboser(socket: &mut zmq::Socket) -> Result<(), zmq::Error> {
    set_int_option(socket, ZMQ_XPUB_NODROP, 1)?;
    set_int_option(socket, ZMQ_XPUB_VERBOSER, 1)
}

/// Binds `socket` to `endpoint`, naming the endpoint in the error.
pub fn bind(socket: &zmq::Socket, endpoint: &str) -> Result<(), Error> {
    socket.bind(endpoint).map_err(|source| Error::Bind {
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

/// The endpoint a socket actually bound to (resolves port 0 and wildcards).
pub fn last_endpoint(socket: &zmq::Socket) -> String {
    match socket.get_last_endpoint() {
        Ok(Ok(s)) => s,
        _ => String::new(),
    }
}

/// Formats a TCP endpoint for `addr:port`, bracketing IPv6 addresses.
pub fn tcp_endpoint(addr: &str, port: u16) -> String {
    if addr.contains(':') && !addr.starts_with('[') {
        format!("tcp://[{addr}]:{port}")
    } else {
        format!("tcp://{addr}:{port}")
    }
}

/// Wraps a zmq error with what we were doing.
pub fn zerr(context: &'static str) -> impl FnOnce(zmq::Error) -> Error {
    move |source| Error::Zmq { context, source }
}
