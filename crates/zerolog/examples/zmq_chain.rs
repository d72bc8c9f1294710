//! The transport's ceiling for the benchmark: a bare libzmq chain of the pipeline's shape,
//! XPUB (NODROP) -> SUB/PUSH -> PULL x W, over loopback TCP, with `[topic, message]` frames of
//! the benchmark's size and zerolog's 64 KiB I/O batches. Each stage runs on its own thread with
//! its own context, as separate processes would. No framing, no parsing, no counters: what is
//! left is ZeroMQ itself.
//!
//! `cargo run --release --example zmq_chain -- [MESSAGES] [SIZE] [WORKERS]`; prints JSON.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

fn main() {
    let args: Vec<u64> = std::env::args()
        .skip(1)
        .map(|a| a.parse().expect("numbers: MESSAGES SIZE WORKERS"))
        .collect();
    let n = args.first().copied().unwrap_or(1_000_000);
    let size = args.get(1).copied().unwrap_or(150) as usize;
    let workers = args.get(2).copied().unwrap_or(2);

    let pub_ctx = zmq::Context::new();
    let mut xpub = pub_ctx.socket(zmq::XPUB).unwrap();
    // ZMQ_XPUB_NODROP, as the forwarder sets it: lossless, so the chain measures delivery.
    unsafe {
        let one: i32 = 1;
        zmq_sys::zmq_setsockopt(xpub.as_mut_ptr(), 69, (&one as *const i32).cast(), 4);
    }
    io_batch(&mut xpub);
    xpub.set_sndhwm(10_000).unwrap();
    xpub.bind("tcp://127.0.0.1:*").unwrap();
    let pub_ep = xpub.get_last_endpoint().unwrap().unwrap();

    let (push_ep, relay) = relay(&pub_ep, n);
    let received = Arc::new(AtomicU64::new(0));
    let done_at = Arc::new(std::sync::Mutex::new(None::<Instant>));
    let pullers: Vec<_> = (0..workers)
        .map(|_| {
            let (ep, received, done_at) = (push_ep.clone(), received.clone(), done_at.clone());
            std::thread::spawn(move || pull(&ep, n, &received, &done_at))
        })
        .collect();
    // Wait for the subscription, then publish as fast as the chain takes it.
    xpub.recv_bytes(0).unwrap();
    let body = vec![b'x'; size];
    let start = Instant::now();
    for _ in 0..n {
        xpub.send(&b"bench"[..], zmq::SNDMORE).unwrap();
        xpub.send(&body[..], 0).unwrap();
    }
    for p in pullers {
        p.join().unwrap();
    }
    relay.join().unwrap();
    let secs = done_at
        .lock()
        .unwrap()
        .expect("all received")
        .duration_since(start)
        .as_secs_f64();
    println!(
        "{{\"messages\": {n}, \"size\": {size}, \"workers\": {workers}, \"seconds\": {secs:.4}, \"messages_per_s\": {:.0}}}",
        n as f64 / secs
    );
}

/// The receiver's place: SUB from `pub_ep`, PUSH on a free port (returned), `n` messages.
fn relay(pub_ep: &str, n: u64) -> (String, std::thread::JoinHandle<()>) {
    let relay_ctx = zmq::Context::new();
    let mut push = relay_ctx.socket(zmq::PUSH).unwrap();
    io_batch(&mut push);
    push.set_sndhwm(10_000).unwrap();
    push.bind("tcp://127.0.0.1:*").unwrap();
    let push_ep = push.get_last_endpoint().unwrap().unwrap();
    let mut sub = relay_ctx.socket(zmq::SUB).unwrap();
    io_batch(&mut sub);
    sub.set_rcvhwm(10_000).unwrap();
    sub.set_subscribe(b"").unwrap();
    sub.connect(pub_ep).unwrap();
    let relay = std::thread::spawn(move || {
        let mut topic = zmq::Message::new();
        for _ in 0..n {
            sub.recv(&mut topic, 0).unwrap();
            let msg = sub.recv_msg(0).unwrap();
            push.send(msg, 0).unwrap();
        }
        std::thread::sleep(Duration::from_millis(500));
    });
    (push_ep, relay)
}

/// A worker's place: PULL from `ep` until the pullers together have `n`; the last one notes
/// the time.
fn pull(ep: &str, n: u64, received: &AtomicU64, done_at: &std::sync::Mutex<Option<Instant>>) {
    let ctx = zmq::Context::new();
    let mut pull = ctx.socket(zmq::PULL).unwrap();
    io_batch(&mut pull);
    pull.set_rcvtimeo(200).unwrap();
    pull.connect(ep).unwrap();
    let mut msg = zmq::Message::new();
    while received.load(Ordering::Relaxed) < n {
        if pull.recv(&mut msg, 0).is_ok() && received.fetch_add(1, Ordering::Relaxed) + 1 == n {
            *done_at.lock().unwrap() = Some(Instant::now());
        }
    }
}

/// zerolog's 64 KiB I/O batches (libzmq DRAFT API), so that the chain is the ceiling of the
/// same transport settings.
fn io_batch(socket: &mut zmq::Socket) {
    let set = zerolog::set_io_batch(socket).expect("setting the I/O batch size");
    assert!(set, "libzmq without its DRAFT API (see vendor/zmq-sys)");
}
