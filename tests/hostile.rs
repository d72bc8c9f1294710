//! A corpus of hostile input against the real forwarder, all at once, while a well-behaved
//! connection sends numbered messages: random bytes, huge and overflowing octet counts, NUL
//! bytes, invalid UTF-8, a 10 MB line without LF, 10,000 connections opened and dropped, and a
//! slowloris sending one byte per second. The forwarder must not crash, its memory and file
//! descriptors must stay bounded, and the good connection's messages must arrive intact, in
//! order and without waiting for the slow one. (The framer and the header scanner are also
//! fuzzed: `fuzz/run.sh`.)

use std::io::Write;
use std::net::TcpStream;
use std::time::Duration;

use crate::common::*;

const MAX: usize = 4096;

/// Deterministic pseudo-random bytes (xorshift64*), so a failure can be replayed.
fn random_bytes(seed: u64, n: usize) -> Vec<u8> {
    let mut x = seed | 1;
    (0..n)
        .map(|_| {
            x ^= x >> 12;
            x ^= x << 25;
            x ^= x >> 27;
            (x.wrapping_mul(0x2545_F491_4F6C_DD1D) >> 56) as u8
        })
        .collect()
}

fn open_fds(pid: u32) -> usize {
    std::fs::read_dir(format!("/proc/{pid}/fd"))
        .unwrap()
        .count()
}

fn send(port: u16, bytes: &[u8]) {
    let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
    // The forwarder may close a connection it gave up on; that is not a failure here.
    let _ = c.write_all(bytes);
}

#[test]
fn hostile_corpus_leaves_the_forwarder_up_bounded_and_other_connections_intact() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &["--max-message-size", &MAX.to_string()]);
    let port = p.backend_port();
    let fwd_pid = p.forwarder.proc.pid();
    let fds_before = open_fds(fwd_pid);

    // The well-behaved connection: 20,000 numbered messages over the whole run.
    let good = std::thread::spawn(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for i in 0..20_000 {
            c.write_all(format!("<13>good: message {i:05}\n").as_bytes())
                .unwrap();
            if i % 1000 == 0 {
                std::thread::sleep(Duration::from_millis(100));
            }
        }
    });

    // Slowloris: one byte per second for 15 s; meanwhile the others are served. It finishes
    // its message at the end, which then arrives whole.
    let slow = std::thread::spawn(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for b in b"<13>slow: loris\n" {
            c.write_all(&[*b]).unwrap();
            std::thread::sleep(Duration::from_secs(1));
        }
    });

    // Random bytes, LF framing and octet counting (a leading digit), 8 connections.
    for seed in 0..8u64 {
        let mut bytes = random_bytes(seed + 1, 256 * 1024);
        if seed % 2 == 1 {
            bytes.splice(0..0, b"12 ".iter().copied());
        }
        send(port, &bytes);
    }
    // Octet counts that are huge, overflow every integer type, or are all digits.
    send(port, b"4294967296 <13>huge: count of 4 GiB\n");
    send(port, b"99999999999999999999999999999 <13>huge: overflows\n");
    send(port, &b"9".repeat(100_000));
    send(
        port,
        b"18446744073709551616 x\n<13>after: an overflowing count\n",
    );
    // NUL bytes and invalid UTF-8: passed on byte for byte.
    send(port, b"<13>nul: a\0b\0c\n<13>utf8: \xff\xfe\xc3\x28 bad\n");
    // 10 MB without LF: truncated to the limit, the rest skipped, memory bounded.
    send(port, &vec![b'x'; 10 * 1024 * 1024]);
    // 10,000 connections opened and dropped, some mid-message.
    for i in 0..10_000u32 {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        if i % 3 == 0 {
            let _ = c.write_all(b"<13>dropped: mid-mess");
        }
    }

    good.join().unwrap();
    let before_slow = p.barrier();
    assert!(
        !slow.is_finished(),
        "everything above was delivered while the slowloris was still mid-message"
    );
    let good_count = |lines: &[Vec<u8>]| {
        lines
            .iter()
            .filter(|l| l.starts_with(b"<13>good: "))
            .count()
    };
    assert_eq!(good_count(&before_slow), 20_000, "{}", p.describe());
    slow.join().unwrap();
    let lines = p.barrier();

    let goods: Vec<&Vec<u8>> = lines
        .iter()
        .filter(|l| l.starts_with(b"<13>good: "))
        .collect();
    assert_eq!(goods.len(), 20_000, "{}", p.describe());
    for (i, l) in goods.iter().enumerate() {
        assert_eq!(
            **l,
            format!("<13>good: message {i:05}").into_bytes(),
            "good message {i} intact and in order"
        );
    }
    for expect in [
        &b"<13>slow: loris"[..],
        b"<13>nul: a\0b\0c",
        b"<13>utf8: \xff\xfe\xc3\x28 bad",
        b"<13>after: an overflowing count",
    ] {
        assert!(
            lines.iter().any(|l| l == expect),
            "missing {:?}\n{}",
            show(expect),
            p.describe()
        );
    }
    assert!(
        lines.iter().all(|l| l.len() <= MAX),
        "every message within the limit"
    );
    let truncated_10mb = lines
        .iter()
        .filter(|l| l.len() == MAX && l.iter().all(|&b| b == b'x'))
        .count();
    assert_eq!(truncated_10mb, 1, "the 10 MB line arrives once, truncated");

    assert!(p.forwarder.proc.is_running(), "{}", p.describe());
    // Bounded: what the forwarder ever held is far below what it was sent (~25 MB), and
    // every dropped connection's descriptor was closed.
    let peak_kb = status_kb(fwd_pid, "VmHWM");
    assert!(
        peak_kb < 64 * 1024,
        "forwarder peak RSS {peak_kb} kB (bound: 64 MB)"
    );
    wait_until(
        Duration::from_secs(10),
        "forwarder fds back to baseline",
        || open_fds(fwd_pid) <= fds_before + 2,
    );
    eprintln!(
        "hostile corpus: forwarder peak RSS {peak_kb} kB, fds {} (before {fds_before})",
        open_fds(fwd_pid)
    );
}

/// Waits until the forwarder closes `c` (a read gets end-of-stream or a reset).
fn closed_by_peer(c: &mut TcpStream, within: Duration) -> bool {
    use std::io::Read;
    c.set_read_timeout(Some(within)).unwrap();
    let mut buf = [0u8; 16];
    matches!(c.read(&mut buf), Ok(0) | Err(_)) && {
        // A timeout is an error too: tell them apart.
        c.set_read_timeout(Some(Duration::from_millis(1))).unwrap();
        !matches!(c.read(&mut buf), Err(ref e) if e.kind() == std::io::ErrorKind::WouldBlock)
    }
}

fn stop_and_counters(p: &Pipeline) -> String {
    p.forwarder.proc.stop_and_find_line("forwarder counters:")
}

#[test]
fn max_connections_refuses_extra_connections_and_spares_the_open_ones() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &["--max-connections", "3"]);
    let port = p.backend_port();
    let mut open: Vec<TcpStream> = (0..3)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    // Let the forwarder accept those three before the extra ones arrive.
    std::thread::sleep(Duration::from_millis(200));
    for _ in 0..2 {
        let mut extra = TcpStream::connect(("127.0.0.1", port)).unwrap();
        assert!(
            closed_by_peer(&mut extra, Duration::from_secs(5)),
            "an extra connection is closed at once"
        );
    }
    for (i, c) in open.iter_mut().enumerate() {
        c.write_all(format!("<13>kept: connection {i}\n").as_bytes())
            .unwrap();
    }
    p.wait_for_lines(3, DELIVERY_TIMEOUT);
    drop(open);
    let counters = stop_and_counters(&p);
    assert!(
        counters.contains("connections_refused=2") && counters.contains("connections_accepted=5"),
        "{counters}"
    );
}

#[test]
fn idle_timeout_closes_silent_connections_only() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &["--idle-timeout", "1"]);
    let port = p.backend_port();
    let mut silent = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut chatty = TcpStream::connect(("127.0.0.1", port)).unwrap();
    let talker = std::thread::spawn(move || {
        for i in 0..10 {
            chatty
                .write_all(format!("<13>chatty: {i}\n").as_bytes())
                .unwrap();
            std::thread::sleep(Duration::from_millis(300));
        }
        chatty
    });
    assert!(
        closed_by_peer(&mut silent, Duration::from_secs(5)),
        "the silent connection is closed after 1 s"
    );
    let _chatty = talker.join().unwrap();
    p.wait_for_lines(10, DELIVERY_TIMEOUT);
    let counters = stop_and_counters(&p);
    assert!(counters.contains("connections_idle_closed=1"), "{counters}");
}

#[test]
fn udp_receive_buffer_is_set_and_reported() {
    let dir = tempfile::tempdir().unwrap();
    let (b, f, u) = (free_port(), free_port(), free_port());
    let forwarder = zerolog(
        dir.path(),
        "forwarder",
        &[
            "forwarder",
            "-b",
            &b.to_string(),
            "-f",
            &f.to_string(),
            "--udp",
            &u.to_string(),
            "--udp-recv-buffer",
            "65536",
        ],
    );
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
    let log = forwarder.stderr_text();
    let line = log
        .lines()
        .find(|l| l.contains("UDP receive buffer"))
        .unwrap_or_else(|| panic!("no UDP receive buffer line\n{log}"));
    // 64 KiB is below every kernel's cap, so it is granted as asked.
    assert!(
        line.contains("requested=65536") && line.contains("granted=65536"),
        "{line}"
    );
}
