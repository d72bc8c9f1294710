//! The integration tests: one binary (one link of the static libzmq), a module per area.
//! Each drives the real `zerolog` and `zerologd` binaries; `common` is their harness.

mod common;

mod access;
mod crash;
mod curve;
mod delivery;
mod faults;
mod graceful;
mod hardening;
mod hostile;
mod interop_python;
mod library;
mod pipeline;
mod real_senders;
mod sd_notify;
mod tls;
mod tls_peers;
mod topics;
mod zerologd;
