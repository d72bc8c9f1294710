//! The Prometheus endpoint (`[zerologd] metrics = "127.0.0.1:9464"`): `GET /metrics` answers
//! in the Prometheus text format with every program's state, restarts and counters (totals
//! over all its runs, so they only grow). The HTTP side is [`super::http`], off the daemon
//! loop; the loop only renders the text when asked ([`MetricsServer::serve`]).

use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::Instant;

use hyper::body::Bytes;
use tokio::sync::watch;

use super::http::{self, Snapshot};
use super::state::ProgramStatus;

/// The daemon loop's side of the endpoint.
pub struct MetricsServer {
    /// Set when a request wants a fresh rendering.
    wanted: Arc<AtomicBool>,
    snapshots: watch::Sender<Snapshot>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr`; `wake` gets a byte when a request wants a fresh rendering.
    pub fn start(addr: SocketAddr, wake: UnixStream) -> Result<Self, String> {
        let wanted = Arc::new(AtomicBool::new(false));
        // Old enough to be stale: the first request asks for a rendering.
        let never = Instant::now()
            .checked_sub(http::FRESH)
            .unwrap_or_else(Instant::now);
        let (snapshots, receiver) = watch::channel((never, Bytes::new()));
        let addr = http::start(addr, wake, wanted.clone(), receiver)?;
        Ok(MetricsServer {
            wanted,
            snapshots,
            addr,
        })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Renders a fresh snapshot with `render()` when a request wants one.
    pub fn serve(&self, render: impl Fn() -> String) {
        if self.wanted.swap(false, Ordering::Relaxed) {
            self.snapshots
                .send_replace((Instant::now(), Bytes::from(render())));
        }
    }
}

use zerolog::stats::GAUGES;

/// The Prometheus text exposition of `rows`.
pub fn render(rows: &[ProgramStatus]) -> String {
    let mut out = String::new();
    let labels = |r: &ProgramStatus| {
        format!(
            "program=\"{}\",group=\"{}\",tier=\"{}\"",
            escape(&r.name),
            escape(&r.group),
            tier_name(r)
        )
    };
    out.push_str("# HELP zerolog_program_up Whether the program runs (1) or not (0).\n");
    out.push_str("# TYPE zerolog_program_up gauge\n");
    for r in rows {
        let up = u8::from(r.state == super::state::ProgramState::Running);
        out.push_str(&format!("zerolog_program_up{{{}}} {up}\n", labels(r)));
    }
    out.push_str("# HELP zerolog_program_restarts_total Times zerologd restarted the program.\n");
    out.push_str("# TYPE zerolog_program_restarts_total counter\n");
    for r in rows {
        out.push_str(&format!(
            "zerolog_program_restarts_total{{{}}} {}\n",
            labels(r),
            r.restarts
        ));
    }
    // One metric family per element counter, over every program of that element.
    let mut families: std::collections::BTreeMap<String, Vec<(String, u64)>> = Default::default();
    for r in rows {
        let Some(c) = &r.counters else { continue };
        for (name, value) in &c.total {
            let gauge = GAUGES.contains(&name.as_str());
            let family = format!(
                "zerolog_{}_{}{}",
                c.element,
                name,
                if gauge { "" } else { "_total" }
            );
            families
                .entry(family)
                .or_default()
                .push((labels(r), *value));
        }
    }
    for (family, samples) in families {
        let kind = if family.ends_with("_total") {
            "counter"
        } else {
            "gauge"
        };
        out.push_str(&format!(
            "# HELP {family} See docs/counters.md.\n# TYPE {family} {kind}\n"
        ));
        for (labels, value) in samples {
            out.push_str(&format!("{family}{{{labels}}} {value}\n"));
        }
    }
    out
}

fn tier_name(r: &ProgramStatus) -> &'static str {
    match r.tier {
        super::state::Tier::Forwarder => "forwarder",
        super::state::Tier::Receiver => "receiver",
        super::state::Tier::Worker => "worker",
    }
}

/// Escapes a label value (backslash, double quote, newline).
fn escape(s: &str) -> String {
    s.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}
