//! The Prometheus endpoint (`[zerologd] metrics = "127.0.0.1:9464"`): `GET /metrics` answers
//! in the Prometheus text format with every program's state, restarts and counters (totals
//! over all its runs, so they only grow). HTTP is tiny_http's, on a thread of its own that
//! hands each request to the daemon loop, which answers it from its current state.

use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::mpsc;

use super::state::ProgramStatus;

/// Requests from the HTTP thread.
pub struct MetricsServer {
    requests: mpsc::Receiver<tiny_http::Request>,
    addr: SocketAddr,
}

impl MetricsServer {
    /// Listens on `addr`; each request is queued and `wake` gets a byte so the daemon loop
    /// answers at once.
    pub fn start(addr: SocketAddr, wake: UnixStream) -> Result<Self, String> {
        let server = tiny_http::Server::http(addr).map_err(|e| e.to_string())?;
        let addr = server.server_addr().to_ip().unwrap_or(addr);
        let (tx, requests) = mpsc::channel();
        std::thread::Builder::new()
            .name("metrics".into())
            .spawn(move || {
                for request in server.incoming_requests() {
                    if tx.send(request).is_err() {
                        break;
                    }
                    let _ = (&wake).write(&[0]);
                }
            })
            .map_err(|e| e.to_string())?;
        Ok(MetricsServer { requests, addr })
    }

    /// The address it listens on.
    pub fn addr(&self) -> SocketAddr {
        self.addr
    }

    /// Answers every waiting request with `render()`'s text.
    pub fn serve(&self, render: impl Fn() -> String) {
        while let Ok(request) = self.requests.try_recv() {
            let (status, body, content_type) = match (request.method(), request.url()) {
                (tiny_http::Method::Get, "/metrics") => {
                    (200, render(), "text/plain; version=0.0.4; charset=utf-8")
                }
                _ => (404, "only GET /metrics here\n".to_string(), "text/plain"),
            };
            let header =
                tiny_http::Header::from_bytes("Content-Type", content_type).expect("valid header");
            let response = tiny_http::Response::from_string(body)
                .with_status_code(status)
                .with_header(header);
            let _ = request.respond(response);
        }
    }
}

/// Counters that are levels (gauges); the rest are totals.
const GAUGES: &[&str] = &["connections_open"];

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
