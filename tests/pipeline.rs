//! End-to-end behaviour of forwarder -> receiver -> worker with the real `zerolog` binary:
//! whole messages, no silent loss under back-pressure, bad input, and the command line.

use std::io::{Read, Write};
use std::net::{TcpStream, UdpSocket};
use std::time::{Duration, Instant};

use crate::common::*;

fn rfc5424_line(seq: usize) -> Vec<u8> {
    // Varied lengths and a leading digit in some bodies, so framing is really exercised.
    format!(
        "<14>1 2026-11-23T10:00:00.000Z host app{} {} - - seq={seq} {}",
        seq % 7,
        seq % 1000,
        "x".repeat(seq % 97)
    )
    .into_bytes()
}

#[test]
fn a_million_lf_lines_arrive_whole_and_identical() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &[]);
    const N: usize = 1_000_000;
    let mut input = Vec::with_capacity(N * 100);
    for i in 0..N {
        input.extend_from_slice(&rfc5424_line(i));
        input.push(b'\n');
    }
    let mut conn = TcpStream::connect(("127.0.0.1", p.backend_port())).unwrap();
    conn.write_all(&input).unwrap();
    drop(conn);
    p.wait_for_lines(N, DELIVERY_TIMEOUT);
    let out = std::fs::read(p.out()).unwrap();
    assert_eq!(
        out.len(),
        input.len(),
        "output size differs from input size\n{}",
        p.describe()
    );
    // Single connection, single path: order is kept, so the output is the input, byte for byte.
    assert!(out == input, "output differs from input");
}

#[test]
fn octet_counted_messages_with_newlines_arrive_whole() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &["--framing", "octet-counted"]);
    // A second worker on the same receiver would split the stream; instead read raw bytes
    // with a NUL-framed worker, so embedded LFs come out exactly as sent.
    let raw_out = dir.path().join("raw.out");
    let raw = zerolog(
        dir.path(),
        "raw-worker",
        &[
            "worker",
            "--framing",
            "nul",
            &p.receiver.endpoint(),
            "file",
            raw_out.to_str().unwrap(),
        ],
    );
    // Stop the LF file worker so every message goes to the raw one.
    p.worker.proc.signal("TERM");
    p.worker.proc.wait_exit(READY_TIMEOUT);
    const N: usize = 100_000;
    let mut input = Vec::new();
    let mut expect = Vec::new();
    for i in 0..N {
        let mut m = rfc5424_line(i);
        if i % 3 == 0 {
            m.extend_from_slice(b"\nsecond line\nthird");
        }
        input.extend_from_slice(format!("{} ", m.len()).as_bytes());
        input.extend_from_slice(&m);
        expect.extend_from_slice(&m);
        expect.push(0);
    }
    send_tcp(p.backend_port(), &input);
    wait_until(
        DELIVERY_TIMEOUT,
        "all octet-counted messages at the raw worker",
        || std::fs::metadata(&raw_out).map(|m| m.len()).unwrap_or(0) >= expect.len() as u64,
    );
    let out = std::fs::read(&raw_out).unwrap();
    assert!(
        out == expect,
        "raw output differs from the messages sent\n{}",
        raw.describe()
    );
}

#[test]
fn slow_worker_gets_every_message_in_order_and_the_sender_is_throttled() {
    let dir = tempfile::tempdir().unwrap();
    let fwd = Forwarder::spawn(dir.path(), "forwarder", 1, &["--hwm", "100"]);
    let rcv = zerolog(
        dir.path(),
        "receiver",
        &[
            "receiver",
            "--hwm",
            "100",
            "--output-port",
            &free_port().to_string(),
            "127.0.0.1",
            &fwd.frontend_port.to_string(),
        ],
    );
    rcv.wait_for_stderr("receiver ready", READY_TIMEOUT);
    let endpoint = {
        let text = rcv.stderr_text();
        let i = text.find("output=\"").unwrap() + 8;
        text[i..i + text[i..].find('"').unwrap()].to_string()
    };
    // A worker program that takes 1 ms per message.
    let out = dir.path().join("slow.out");
    let script = write_file(
        dir.path(),
        "slow.py",
        "import sys, time\n\
         out = open(sys.argv[1], 'ab', buffering=0)\n\
         for line in sys.stdin.buffer:\n    time.sleep(0.001)\n    out.write(line)\n",
    );
    let wrk = zerolog(
        dir.path(),
        "slow-worker",
        &[
            "worker",
            &endpoint,
            "python3",
            script.to_str().unwrap(),
            out.to_str().unwrap(),
        ],
    );
    fwd.wait_ready();
    const N: usize = 20_000;
    // 4 KiB messages: 80 MB, more than every socket buffer and queue on the path can hold,
    // so the sender must be held back while the worker catches up.
    let body = "y".repeat(4096);
    let mut input = Vec::new();
    for i in 0..N {
        input.extend_from_slice(format!("<13>slow: {i:06} {body}\n").as_bytes());
    }
    let start = Instant::now();
    send_tcp(fwd.backend_port, &input);
    let send_time = start.elapsed();
    wait_for_line_count(&out, N, DELIVERY_TIMEOUT, &[&fwd.proc, &rcv, &wrk]);
    let total = start.elapsed();
    let lines = read_lines(&out);
    assert_eq!(lines.len(), N);
    for (i, l) in lines.iter().enumerate() {
        let expect = format!("<13>slow: {i:06} {body}");
        assert!(
            l == expect.as_bytes(),
            "line {i} is not message {i}: {}",
            show(&l[..40.min(l.len())])
        );
    }
    // The worker needs at least N ms; if the sender finished long before the worker did,
    // something buffered without bound or dropped. It must have been throttled.
    assert!(
        total >= Duration::from_millis(N as u64),
        "finished in {total:?}, faster than the worker can go"
    );
    assert!(
        send_time >= Duration::from_secs(5),
        "the sender wrote 80 MB in {send_time:?}: it was not throttled by TCP flow control"
    );
}

#[test]
fn oversized_messages_are_truncated_counted_and_the_connection_survives() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &["--max-message-size", "1000"]);
    let mut conn = TcpStream::connect(("127.0.0.1", p.backend_port())).unwrap();
    let big = "A".repeat(5000);
    conn.write_all(format!("{big}\nnext message intact\n").as_bytes())
        .unwrap();
    let lines = wait_for_line_ending(
        p.out(),
        b"next message intact",
        DELIVERY_TIMEOUT,
        &p.procs(),
    );
    assert_eq!(lines.len(), 2, "{lines:?}");
    assert_eq!(
        lines[0],
        "A".repeat(1000).as_bytes(),
        "truncated to the limit"
    );
    // The same connection still works.
    conn.write_all(b"third on same connection\n").unwrap();
    wait_for_line_ending(
        p.out(),
        b"third on same connection",
        DELIVERY_TIMEOUT,
        &p.procs(),
    );
    drop(conn);
    // Octet-counted oversize: the rest of the frame is skipped exactly.
    let mut frame = format!("3000 {}", "B".repeat(3000)).into_bytes();
    frame.extend_from_slice(b"10 after-big");
    send_tcp(p.backend_port(), &frame);
    let lines = wait_for_line_ending(p.out(), b"after-big", DELIVERY_TIMEOUT, &p.procs());
    assert_eq!(lines[3], "B".repeat(1000).as_bytes());
    assert_eq!(lines[4], b"after-big");
    assert!(p
        .forwarder
        .proc
        .stderr_text()
        .contains("bad input on connection"));
    p.forwarder.proc.signal("TERM");
    assert!(p.forwarder.proc.wait_exit(READY_TIMEOUT).success());
    let log = p.forwarder.proc.stderr_text();
    assert!(log.contains("truncated=2"), "counters at exit: {log}");
}

#[test]
fn hostile_input_does_not_crash_or_corrupt_other_connections() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &["--max-message-size", "4096"]);
    let port = p.backend_port();
    // 1000 idle connections stay open throughout.
    let idle: Vec<TcpStream> = (0..1000)
        .map(|_| TcpStream::connect(("127.0.0.1", port)).unwrap())
        .collect();
    let good = std::thread::spawn(move || {
        let mut c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        for i in 0..5000 {
            c.write_all(format!("<13>good: message {i:05}\n").as_bytes())
                .unwrap();
        }
    });
    // A garbage octet count, then LF lines: falls back to LF framing, loses nothing after.
    send_tcp(
        port,
        b"11 <13>ok: one99x99 garbage count\n<13>ok: after garbage\n",
    );
    // Binary junk with NULs, no newline, 1 MB.
    let junk: Vec<u8> = (0..1_000_000u32)
        .map(|i| (i.wrapping_mul(2654435761) >> 13) as u8)
        .filter(|b| *b != b'\n')
        .collect();
    send_tcp(port, &junk);
    // Connections that close mid-message, both framings.
    send_tcp(port, b"25 <13>cut: only part");
    send_tcp(port, b"<13>cut: no newline at close");
    // A connection that sends half and is reset.
    {
        let c = TcpStream::connect(("127.0.0.1", port)).unwrap();
        (&c).write_all(b"<13>reset: half a mess").unwrap();
        let _ = c.shutdown(std::net::Shutdown::Both);
    }
    good.join().unwrap();
    let lines = p.barrier();
    let goods: Vec<&Vec<u8>> = lines
        .iter()
        .filter(|l| l.starts_with(b"<13>good: "))
        .collect();
    assert_eq!(goods.len(), 5000, "{}", p.describe());
    for (i, l) in goods.iter().enumerate() {
        assert_eq!(**l, format!("<13>good: message {i:05}").into_bytes());
    }
    for expect in [
        &b"<13>ok: one"[..],
        b"99x99 garbage count",
        b"<13>ok: after garbage",
        b"<13>cut: only part",
        b"<13>cut: no newline at close",
    ] {
        assert!(
            lines.iter().any(|l| l == expect),
            "missing {:?}",
            show(expect)
        );
    }
    // The junk arrived as messages of at most the limit.
    assert!(lines.iter().all(|l| l.len() <= 4096));
    assert!(p.forwarder.proc.is_running());
    drop(idle);
    p.forwarder.proc.signal("TERM");
    assert!(p.forwarder.proc.wait_exit(READY_TIMEOUT).success());
    let log = p.forwarder.proc.stderr_text();
    assert!(log.contains("malformed_frames=1"), "{log}");
    assert!(log.contains("incomplete=1"), "{log}");
    assert!(log.contains("connections_accepted=1007"), "{log}");
}

#[test]
fn udp_input_ipc_output_and_monitor() {
    let dir = tempfile::tempdir().unwrap();
    let (b, f, m, u) = (free_port(), free_port(), free_port(), free_port());
    let fwd = zerolog(
        dir.path(),
        "forwarder",
        &[
            "forwarder",
            "-b",
            &b.to_string(),
            "-f",
            &f.to_string(),
            "-m",
            &m.to_string(),
            "--udp",
            &u.to_string(),
            "--wait-subscribers",
            "1",
        ],
    );
    let sock = dir.path().join("rcv.sock");
    let rcv = zerolog(
        dir.path(),
        "receiver",
        &[
            "receiver",
            "--output-socket",
            sock.to_str().unwrap(),
            "127.0.0.1",
            &f.to_string(),
        ],
    );
    rcv.wait_for_stderr("receiver ready", READY_TIMEOUT);
    let out = dir.path().join("out");
    let endpoint = format!("ipc://{}", sock.display());
    let _w = zerolog(
        dir.path(),
        "worker",
        &["worker", &endpoint, "file", out.to_str().unwrap()],
    );
    fwd.wait_for_stderr("forwarder ready", READY_TIMEOUT);

    let ctx = zmq::Context::new();
    let mon = ctx.socket(zmq::SUB).unwrap();
    mon.set_subscribe(b"").unwrap();
    mon.set_rcvtimeo(200).unwrap();
    mon.connect(&format!("tcp://127.0.0.1:{m}")).unwrap();

    let udp = UdpSocket::bind("127.0.0.1:0").unwrap();
    // The monitor is lossy and joins late: send until it has seen one, then check both.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut seen = None;
    let mut sent = 0;
    while seen.is_none() {
        assert!(Instant::now() < deadline, "monitor saw nothing");
        udp.send_to(
            format!("<13>udpapp: datagram {sent}\n").as_bytes(),
            ("127.0.0.1", u),
        )
        .unwrap();
        sent += 1;
        if let Ok(parts) = mon.recv_multipart(0) {
            seen = Some(parts);
        }
    }
    let parts = seen.unwrap();
    assert_eq!(parts.len(), 2);
    assert_eq!(parts[0], b"udpapp");
    assert!(parts[1].starts_with(b"<13>udpapp: datagram "));
    wait_for_line_count(&out, sent, DELIVERY_TIMEOUT, &[&fwd, &rcv]);
    let lines = read_lines(&out);
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("<13>udpapp: datagram {i}").into_bytes());
    }
}

#[test]
fn receiver_rejects_both_outputs_and_version_works() {
    let out = std::process::Command::new(zerolog_bin())
        .args([
            "receiver",
            "--output-port",
            "7000",
            "--output-socket",
            "/tmp/x",
            "127.0.0.1",
            "6001",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(
        err.contains("--output-port") && err.contains("cannot be used with"),
        "{err}"
    );

    let out = std::process::Command::new(zerolog_bin())
        .args(["receiver", "127.0.0.1"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "FORWARDER_PORT is required");

    let out = std::process::Command::new(zerolog_bin())
        .arg("--version")
        .output()
        .unwrap();
    assert!(out.status.success());
    let version = String::from_utf8_lossy(&out.stdout);
    let lines: Vec<&str> = version.lines().collect();
    assert_eq!(lines.len(), 2, "{version}");
    assert_eq!(lines[0], concat!("zerolog ", env!("CARGO_PKG_VERSION")));
    assert!(lines[1].starts_with("libzmq: "), "{version}");
    // -V stays one line, for scripts that read the version.
    let out = std::process::Command::new(zerolog_bin())
        .arg("-V")
        .output()
        .unwrap();
    assert_eq!(
        String::from_utf8_lossy(&out.stdout),
        concat!("zerolog ", env!("CARGO_PKG_VERSION"), "\n")
    );

    for sub in ["forwarder", "receiver", "worker"] {
        let out = std::process::Command::new(zerolog_bin())
            .args([sub, "--help"])
            .output()
            .unwrap();
        assert!(out.status.success());
        assert!(String::from_utf8_lossy(&out.stdout).contains("Usage: zerolog"));
    }
}

#[test]
fn receiver_logs_an_error_through_its_log_config_when_interrupted() {
    let dir = tempfile::tempdir().unwrap();
    let logfile = dir.path().join("receiver.log");
    let conf = write_file(
        dir.path(),
        "log.toml",
        &format!(
            "level = \"info\"\nformat = \"json\"\noutput = \"{}\"\n",
            logfile.display()
        ),
    );
    let rcv = zerolog(
        dir.path(),
        "receiver",
        &[
            "receiver",
            "-l",
            conf.to_str().unwrap(),
            "--output-port",
            &free_port().to_string(),
            "127.0.0.1",
            &free_port().to_string(),
        ],
    );
    wait_until(READY_TIMEOUT, "receiver ready in its log file", || {
        std::fs::read_to_string(&logfile).is_ok_and(|t| t.contains("receiver ready"))
    });
    rcv.signal("INT");
    assert!(rcv.wait_exit(READY_TIMEOUT).success());
    let log = std::fs::read_to_string(&logfile).unwrap();
    let line = log
        .lines()
        .find(|l| l.contains("interrupted"))
        .unwrap_or_else(|| panic!("{log}"));
    assert!(
        line.contains("\"level\":\"ERROR\"") && line.contains("SIGINT"),
        "{line}"
    );

    // A bad log config is an error naming the file and line.
    let bad = write_file(dir.path(), "bad.toml", "level = \"info\"\nformat = 3\n");
    let out = std::process::Command::new(zerolog_bin())
        .args(["receiver", "-l", bad.to_str().unwrap(), "127.0.0.1", "6001"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    let err = String::from_utf8_lossy(&out.stderr);
    assert!(err.contains("bad.toml") && err.contains("line 2"), "{err}");
}

#[test]
fn a_worker_starts_its_program_again_when_it_dies() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &[]);
    p.worker.proc.signal("TERM");
    p.worker.proc.wait_exit(READY_TIMEOUT);
    // The only worker now: its program takes one line, writes it out and exits with status 3.
    let out = dir.path().join("dying.out");
    let script = format!(
        "read line || exit 0; echo \"$line\" >> {}; exit 3",
        out.display()
    );
    let w = zerolog(
        dir.path(),
        "dying",
        &["worker", &p.receiver.endpoint(), "sh", "-c", &script],
    );
    let input: String = (0..5).map(|i| format!("<13>x: {i}\n")).collect();
    send_tcp(p.backend_port(), input.as_bytes());
    // Each run of the program takes one line; the worker itself stays up.
    wait_for_line_count(&out, 5, DELIVERY_TIMEOUT, &[&w]);
    let want: Vec<Vec<u8>> = (0..5).map(|i| format!("<13>x: {i}").into_bytes()).collect();
    assert_eq!(read_lines(&out), want);
    wait_until(DELIVERY_TIMEOUT, "the sixth run of the program", || {
        w.stderr_text().matches("worker program started").count() == 6
    });
    assert!(w.try_status().is_none(), "{}", w.describe());
    w.signal("TERM");
    assert!(w.wait_exit(READY_TIMEOUT).success(), "{}", w.describe());
    let log = w.stderr_text();
    assert!(
        log.contains("worker program ended") && log.contains("exit status: 3"),
        "{log}"
    );
    assert!(
        log.contains("processed=5 failed=0 program_restarts=5"),
        "{log}"
    );

    // A program that does not exist: exit 2 with a clear message, before connecting.
    let out = std::process::Command::new(zerolog_bin())
        .args([
            "worker",
            "-d",
            dir.path().to_str().unwrap(),
            "tcp://127.0.0.1:1",
            "nope.sh",
        ])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2));
    assert!(String::from_utf8_lossy(&out.stderr).contains("nope.sh not found in directory"));
}

#[test]
fn stdout_worker_prints_one_message_per_line() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &[]);
    let w = zerolog(
        dir.path(),
        "stdout-worker",
        &["worker", &p.receiver.endpoint(), "stdout"],
    );
    p.worker.proc.signal("TERM");
    p.worker.proc.wait_exit(READY_TIMEOUT);
    // Two connections have no order between them: send the second after the first arrived.
    send_tcp(p.backend_port(), b"5 a\nb\nc");
    wait_until(DELIVERY_TIMEOUT, "first line on stdout", || {
        w.stdout_text().lines().count() >= 1
    });
    send_tcp(p.backend_port(), b"<13>x: plain\n");
    wait_until(DELIVERY_TIMEOUT, "two lines on stdout", || {
        w.stdout_text().lines().count() >= 2
    });
    assert_eq!(w.stdout_text(), "a#012b#012c\n<13>x: plain\n");
    let mut s = String::new();
    std::fs::File::open(w.stdout_path())
        .unwrap()
        .read_to_string(&mut s)
        .unwrap();
    assert!(!s.contains("INFO"), "logs must not go to stdout");
}

#[test]
fn file_worker_reopens_its_file_on_sighup_as_logrotate_expects() {
    let dir = tempfile::tempdir().unwrap();
    let p = Pipeline::start(dir.path(), None, &[]);
    let lines = |tag: &str, n: usize| -> Vec<u8> {
        (0..n)
            .flat_map(|i| format!("<14>1 - host app - - - {tag}-{i}\n").into_bytes())
            .collect()
    };
    let before = lines("before", 100);
    send_tcp(p.backend_port(), &before);
    p.wait_for_lines(100, DELIVERY_TIMEOUT);

    // logrotate's default: rename the file, then signal the writer.
    let rotated = dir.path().join("worker.out.1");
    std::fs::rename(p.out(), &rotated).unwrap();
    p.worker.proc.signal("HUP");
    wait_until(
        Duration::from_secs(10),
        "the worker to reopen its file",
        || p.out().exists(),
    );

    let after = lines("after", 50);
    send_tcp(p.backend_port(), &after);
    p.wait_for_lines(50, DELIVERY_TIMEOUT);
    assert_eq!(
        show(&std::fs::read(&rotated).unwrap()),
        show(&before),
        "the rotated file keeps what came before the signal, whole"
    );
    assert_eq!(
        show(&std::fs::read(p.out()).unwrap()),
        show(&after),
        "the new file has what came after"
    );
    assert!(p.worker.proc.is_running(), "{}", p.describe());
    assert!(
        p.worker.proc.stderr_text().contains("reopened output file"),
        "{}",
        p.describe()
    );
}
