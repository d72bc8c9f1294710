//! zerolog's protocol layer, with no I/O: RFC 6587 framing of a syslog byte stream
//! ([`framing`]), the syslog header scan and topic templates ([`syslog`]), ZeroMQ endpoints
//! ([`endpoint`]), the acknowledged-delivery protocol between zerolog's own elements
//! ([`delivery`]) and the sequence numbers of `zerolog loggen`'s lines ([`seq`]). Each is
//! tested (and the first two fuzzed) on its own; the pipeline elements in the `zerolog` crate
//! put them on sockets.

#![warn(missing_docs)]

pub mod delivery;
pub mod endpoint;
pub mod framing;
pub mod relp;
pub mod seq;
pub mod syslog;
