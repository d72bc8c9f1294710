//! Crash under load: while a sender sends numbered lines at a steady rate, kill -9 a worker,
//! then the receiver, then the forwarder. zerologd restarts each, the pipeline delivers again,
//! no line is altered, every line the journal accepted arrives (a line twice only as a
//! counted redelivery), and the only loss is what the killed forwarder had not yet journaled,
//! as its counters show.

use std::collections::BTreeMap;
use std::io::Write;
use std::net::TcpStream;
use std::sync::atomic::{AtomicBool, AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

use crate::common::zerologd::*;
use crate::common::*;

fn line(n: u64) -> String {
    format!(
        "<13>1 2026-01-01T00:00:00Z host crash - - - seq=0.{n} {:040}",
        n
    )
}

/// Sends line after line at about `rate`/s, one write each; reconnects when the forwarder is
/// gone. Returns how many lines were written (accepted by the kernel): 0..returned.
fn sender(port: u16, rate: u64, stop: Arc<AtomicBool>, sent: Arc<AtomicU64>) {
    let mut conn: Option<TcpStream> = None;
    let start = Instant::now();
    let mut n = 0u64;
    while !stop.load(Ordering::Relaxed) {
        let due = start + Duration::from_secs_f64(n as f64 / rate as f64);
        if let Some(wait) = due.checked_duration_since(Instant::now()) {
            std::thread::sleep(wait);
        }
        let c = match &mut conn {
            Some(c) => c,
            None => match TcpStream::connect(("127.0.0.1", port)) {
                Ok(c) => conn.insert(c),
                Err(_) => {
                    std::thread::sleep(Duration::from_millis(10));
                    continue;
                }
            },
        };
        if c.write_all(format!("{}\n", line(n)).as_bytes()).is_ok() {
            n += 1;
            sent.store(n, Ordering::Relaxed);
        } else {
            // The line is not counted as sent; the same number goes on the next connection.
            conn = None;
        }
    }
}

fn totals(z: &Zerologd, name: &str) -> BTreeMap<String, u64> {
    serde_json::from_value(z.program_json(name)["counters"]["total"].clone()).unwrap()
}

/// Sequence numbers delivered, with their counts; panics on a line that is not one we sent.
fn delivered(dir: &std::path::Path) -> BTreeMap<u64, u32> {
    let mut seen = BTreeMap::new();
    for f in ["out.w0", "out.w1"] {
        for l in read_lines(&dir.join(f)) {
            let text = String::from_utf8(l).expect("UTF-8 line");
            let n: u64 = text
                .split("seq=0.")
                .nth(1)
                .and_then(|r| r.split(' ').next())
                .and_then(|n| n.parse().ok())
                .unwrap_or_else(|| panic!("not a line we sent: {text:?}"));
            assert_eq!(text, line(n), "line {n} arrived altered");
            *seen.entry(n).or_insert(0) += 1;
        }
    }
    seen
}

#[test]
fn kill_9_under_load_restarts_delivers_again_and_the_counters_account_for_the_loss() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), TWO_FILE_WORKERS);
    let stop = Arc::new(AtomicBool::new(false));
    let sent = Arc::new(AtomicU64::new(0));
    let port = z.backend;
    let load = {
        let (stop, sent) = (stop.clone(), sent.clone());
        std::thread::spawn(move || sender(port, 5_000, stop, sent))
    };

    let mut kills = Vec::new();
    for name in ["w0:0", "all", "forwarder"] {
        std::thread::sleep(Duration::from_secs(2));
        let pid = z.pid_of(name).unwrap();
        let at = sent.load(Ordering::Relaxed);
        kill9(pid);
        z.wait_new_pid(name, pid);
        // Delivering again: a line sent after the restart arrives.
        let after = sent.load(Ordering::Relaxed) + 100;
        wait_until(
            DELIVERY_TIMEOUT,
            &format!("delivery after killing {name}"),
            || delivered(dir.path()).range(after..).next().is_some(),
        );
        kills.push((name, at));
    }
    std::thread::sleep(Duration::from_secs(1));
    stop.store(true, Ordering::Relaxed);
    load.join().unwrap();
    let sent = sent.load(Ordering::Relaxed);

    // Quiet: nothing more arrives for 2 s.
    let mut last = usize::MAX;
    let mut seen = delivered(dir.path());
    let quiet_since = Instant::now();
    while seen.len() != last || quiet_since.elapsed() < Duration::from_secs(2) {
        last = seen.len();
        std::thread::sleep(Duration::from_millis(500));
        seen = delivered(dir.path());
        assert!(
            quiet_since.elapsed() < Duration::from_secs(60),
            "never quiet"
        );
    }

    let dups: u64 = seen.values().map(|&c| u64::from(c) - 1).sum();
    let delivered_n = seen.len() as u64;
    let lost = sent - delivered_n;

    let f = totals(&z, "forwarder");
    let w: Vec<_> = ["w0:0", "w1:0"].iter().map(|n| totals(&z, n)).collect();
    let wsum = |k: &str| w.iter().map(|m| m[k]).sum::<u64>();
    let report = format!(
        "sent {sent}, delivered {delivered_n} ({dups} twice), lost {lost}; kills at {kills:?}\n  \
         sender -> forwarder (kernel buffers of the killed forwarder's connection): {}\n  \
         framed, not yet in the journal when the forwarder was killed: {}\n  \
         redeliveries the workers counted: {}",
        sent - f["messages_received"],
        f["messages_received"] - f["journal_appended"],
        wsum("redelivered"),
    );
    eprintln!("{report}");
    // Once in the journal, a line is delivered whatever is killed: the only loss is what the
    // killed forwarder had read and not yet appended, or not read at all.
    assert_eq!(delivered_n, f["journal_appended"], "{report}");
    assert!(sent >= f["messages_received"], "{report}");
    // Every duplicate is a redelivery the counters show.
    assert!(dups <= wsum("redelivered"), "{report}");
    // Bounded by what the killed forwarder held in kernel buffers and its input channel.
    assert!(lost < 20_000, "{report}");
}
