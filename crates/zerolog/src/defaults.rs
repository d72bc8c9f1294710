//! The defaults every element, the topology file and the command line share, in one place.
//! The ports are zerolog 0.3's.

/// The forwarder's TCP input (zerolog 0.3's backend port).
pub const INPUT_PORT: u16 = 6000;
/// The forwarder's publish socket (zerolog 0.3's frontend port).
pub const PUBLISH_PORT: u16 = 6001;
/// A receiver's TCP output, for workers (zerolog 0.3's worker port).
pub const OUTPUT_PORT: u16 = 6200;
/// Where the elements bind by default: loopback; other interfaces are the operator's choice.
pub const BIND_HOST: &str = "127.0.0.1";
/// ZeroMQ high-water mark of the forwarder's publish socket and a receiver's sockets, in
/// messages.
pub const HWM: i32 = 10_000;
/// The forwarder's journal endpoint, where receivers fetch with acknowledgements (zerolog's
/// own; 0.3 had none).
pub const JOURNAL_PORT: u16 = 6002;
