//! zerologd, the supervisor of a zerolog topology, and the `zerolog` command line.
//!
//! The layers of the workspace: `zerolog-proto` (framing, syslog header scan, endpoints; no
//! I/O), `zerolog` (the pipeline elements and the worker runtime a worker author depends on),
//! and this crate: the topology file ([`topology`]), the supervisor ([`supervisor`]: a state
//! machine apart from its daemon loop), the command-line definitions ([`cli`]), logging
//! ([`logging`]) and the load generator ([`loggen`]), under the `zerolog` and `zerologd`
//! binaries.

#![warn(missing_docs)]

pub mod cli;
pub mod loggen;
pub mod logging;
pub mod supervisor;
pub mod topology;

/// Formats a TOML error as `line L, column C: message`.
pub(crate) fn config_error_message(text: &str, e: &toml::de::Error) -> String {
    match e.span() {
        Some(span) => {
            let before = &text[..span.start.min(text.len())];
            let line = before.matches('\n').count() + 1;
            let col = before.len() - before.rfind('\n').map_or(0, |i| i + 1) + 1;
            format!("line {line}, column {col}: {}", e.message())
        }
        None => e.message().to_string(),
    }
}
