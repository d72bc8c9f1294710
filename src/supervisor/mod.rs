//! zerologd, the supervisor: runs every element of a topology as a child process, restarts
//! what crashes, drains on stop, reloads on SIGHUP, and answers on a control socket.
//!
//! [`state`] is the pure state machine; [`daemon`] is the I/O loop around it; [`programs`]
//! turns a [`crate::topology::Topology`] into command lines; [`control`] is the control
//! socket protocol and client.

pub mod clients;
pub mod control;
pub mod counters;
pub mod daemon;
pub mod http;
pub mod limits;
pub mod metrics;
pub mod orphans;
pub mod programs;
pub mod readiness;
pub mod reaper;
pub mod state;
