//! The metrics endpoint's HTTP side, on a thread of its own (hyper on a single-threaded tokio
//! runtime: no thread per connection), so that no client touches the daemon loop. At most
//! [`MAX_CONNECTIONS`] are open (more are closed on accept), a request's headers must arrive
//! within [`HEADER_TIMEOUT`] and a connection lasts [`CONNECTION_TIMEOUT`] at most, whatever
//! the client reads or sends. The body comes from the daemon loop as a snapshot: a request
//! asks for a fresh one (a flag and a byte on the wake pipe) unless the last is younger than
//! [`FRESH`], so a flood of scrapes costs the loop at most one rendering per [`FRESH`].

use std::convert::Infallible;
use std::io::Write;
use std::net::SocketAddr;
use std::os::unix::net::UnixStream;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use http_body_util::Full;
use hyper::body::{Bytes, Incoming};
use hyper::{Method, Request, Response, StatusCode};
use hyper_util::rt::{TokioIo, TokioTimer};
use tokio::sync::{watch, Semaphore};
use tracing::warn;
use zerolog::events::RateLimit;

/// Connections open at once.
pub const MAX_CONNECTIONS: usize = 64;
/// Time for a request's headers to arrive.
pub const HEADER_TIMEOUT: Duration = Duration::from_secs(5);
/// Time a connection may stay open, answers included.
pub const CONNECTION_TIMEOUT: Duration = Duration::from_secs(10);
/// A snapshot younger than this is served as it is.
pub const FRESH: Duration = Duration::from_millis(100);
/// How long a request waits for the daemon loop's snapshot before serving the last one.
const RENDER_WAIT: Duration = Duration::from_secs(2);

/// A rendering of the metrics (shared by every response, not copied), and when it was made.
pub type Snapshot = (Instant, Bytes);

/// Binds `addr` and serves it on a new thread. When a request wants a fresh snapshot it sets
/// `wanted` and writes a byte to `wake`. Returns the bound address.
pub fn start(
    addr: SocketAddr,
    wake: UnixStream,
    wanted: Arc<AtomicBool>,
    snapshots: watch::Receiver<Snapshot>,
) -> Result<SocketAddr, String> {
    let listener = std::net::TcpListener::bind(addr).map_err(|e| e.to_string())?;
    listener.set_nonblocking(true).map_err(|e| e.to_string())?;
    let bound = listener.local_addr().map_err(|e| e.to_string())?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    std::thread::Builder::new()
        .name("metrics".into())
        .spawn(move || runtime.block_on(serve(listener, wake, wanted, snapshots)))
        .map_err(|e| e.to_string())?;
    Ok(bound)
}

async fn serve(
    listener: std::net::TcpListener,
    wake: UnixStream,
    wanted: Arc<AtomicBool>,
    snapshots: watch::Receiver<Snapshot>,
) {
    let Ok(listener) = tokio::net::TcpListener::from_std(listener) else {
        return;
    };
    let wake = Arc::new(wake);
    let permits = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    let mut warnings = RateLimit::per_second();
    loop {
        let stream = match listener.accept().await {
            Ok((stream, _)) => stream,
            Err(e) => {
                // Out of descriptors, most likely: rest rather than spin.
                if warnings.allow() {
                    warn!(error = %e, "metrics endpoint: accept failed; pausing it briefly");
                }
                tokio::time::sleep(Duration::from_millis(100)).await;
                continue;
            }
        };
        let Ok(permit) = permits.clone().try_acquire_owned() else {
            if warnings.allow() {
                warn!(
                    max = MAX_CONNECTIONS,
                    "metrics endpoint: too many connections; closing new ones"
                );
            }
            continue;
        };
        let (wake, wanted, snapshots) = (wake.clone(), wanted.clone(), snapshots.clone());
        tokio::spawn(async move {
            let _permit = permit;
            let service = hyper::service::service_fn(move |request| {
                answer(request, wake.clone(), wanted.clone(), snapshots.clone())
            });
            let connection = hyper::server::conn::http1::Builder::new()
                .timer(TokioTimer::new())
                .header_read_timeout(HEADER_TIMEOUT)
                .serve_connection(TokioIo::new(stream), service);
            let _ = tokio::time::timeout(CONNECTION_TIMEOUT, connection).await;
        });
    }
}

async fn answer(
    request: Request<Incoming>,
    wake: Arc<UnixStream>,
    wanted: Arc<AtomicBool>,
    mut snapshots: watch::Receiver<Snapshot>,
) -> Result<Response<Full<Bytes>>, Infallible> {
    if request.method() != Method::GET || request.uri().path() != "/metrics" {
        let mut response = Response::new(Full::new(Bytes::from("only GET /metrics here\n")));
        *response.status_mut() = StatusCode::NOT_FOUND;
        return Ok(response);
    }
    let stale = snapshots.borrow_and_update().0.elapsed() >= FRESH;
    if stale {
        wanted.store(true, Ordering::Relaxed);
        let _ = (&*wake).write(&[0]);
        let _ = tokio::time::timeout(RENDER_WAIT, snapshots.changed()).await;
    }
    let body = snapshots.borrow().1.clone();
    let mut response = Response::new(Full::new(body));
    response.headers_mut().insert(
        hyper::header::CONTENT_TYPE,
        hyper::header::HeaderValue::from_static("text/plain; version=0.0.4; charset=utf-8"),
    );
    Ok(response)
}
