//! Faults that last: workers slower than the input for 30 s, and the network between the
//! forwarder and the receiver cut for 10 s (two network namespaces joined by a veth pair);
//! with CURVE across that link, a capture of it shows none of the messages in clear text.
//! Every message sent is delivered exactly once, the sender is throttled by TCP rather than
//! dropped, and memory stays bounded.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::load::*;
use crate::common::zerologd::*;
use crate::common::*;

/// A worker program far slower than loggen: it keeps the first 200 bytes of each line, in the
/// file named by its first argument, and sleeps the seconds of its second after each.
const SLOW_WORKER: &str = r#"import sys, time
out = open(sys.argv[1], 'ab')
delay = float(sys.argv[2])
for line in sys.stdin.buffer:
    out.write(line[:200].rstrip(b"\n") + b"\n")
    out.flush()
    time.sleep(delay)
"#;

/// A forwarder, one receiver, and `numprocs` copies of [`SLOW_WORKER`] taking `delay` seconds
/// per message as its worker, each writing to `{DIR}/out.PID`.
fn slow_topology(dir: &Path, numprocs: u32, delay: f64) -> String {
    let script = write_file(dir, "slow.py", SLOW_WORKER);
    let command = format!(
        r#"["sh", "-c", "exec python3 {} {{DIR}}/out.$$ {delay}"]"#,
        script.display()
    );
    worker_topology("slow", numprocs, &command)
}

/// `topology` with an 8 MiB journal.
fn small_journal(topology: &str) -> String {
    topology.replacen(
        "[forwarder]\n",
        "[forwarder]\njournal_max_size = 8388608\n",
        1,
    )
}

/// Pids of zerologd's children (forwarder, receiver, worker wrappers and their programs).
fn descendants(root: u32) -> Vec<u32> {
    let mut out = vec![];
    let mut stack = vec![root];
    while let Some(pid) = stack.pop() {
        let children =
            std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children")).unwrap_or_default();
        for c in children.split_whitespace().filter_map(|c| c.parse().ok()) {
            out.push(c);
            stack.push(c);
        }
    }
    out
}

fn comm(pid: u32) -> String {
    std::fs::read_to_string(format!("/proc/{pid}/comm"))
        .unwrap_or_default()
        .trim()
        .to_string()
}

#[test]
fn slow_workers_for_30_s_get_everything_the_sender_is_throttled_memory_stays_bounded() {
    let dir = tempfile::tempdir().unwrap();
    // About 0.5 ms per message. A small journal, so that it fills and the sender is
    // throttled within the test (the default holds 1 GiB).
    let topology = small_journal(&slow_topology(dir.path(), 2, 0.0005));
    let z = Zerologd::start(dir.path(), &topology);

    // loggen as fast as it can for 30 s: the pipeline takes a few thousand lines a second.
    let mut cmd = Command::new(zerolog_bin());
    cmd.args(["loggen", "--json", "--app", "steady", "-d", "30", "-c", "2"])
        .args(["-P", &z.backend.to_string()]);
    let loggen = Proc::spawn(dir.path(), "loggen", cmd);

    // Memory of every process of the tree, sampled while the workers lag.
    let mut peak: std::collections::BTreeMap<String, u64> = Default::default();
    let zerologd_pid = z.proc.pid();
    let started = Instant::now();
    while loggen.is_running() {
        // loggen checks its 30 s between writes; a pipeline that stopped taking input would
        // block it in a write for ever.
        assert!(
            started.elapsed() < Duration::from_secs(90),
            "loggen still blocked after 90 s: the pipeline stopped taking input\n{}",
            z.proc.describe()
        );
        for pid in descendants(zerologd_pid).into_iter().chain([zerologd_pid]) {
            let e = peak.entry(comm(pid)).or_default();
            *e = (*e).max(status_kb(pid, "VmRSS"));
        }
        std::thread::sleep(Duration::from_millis(250));
    }
    let report = loggen_report(&loggen, Duration::from_secs(60));
    let sent = report["messages"].as_u64().unwrap();
    let rate = report["messages_per_s"].as_f64().unwrap();
    let load = Load {
        count: sent,
        rate: 0,
        connections: 2,
    };
    assert_all_delivered_once(dir.path(), "out.", &load, &[&z.proc]);
    eprintln!("slow consumer: loggen sent {sent} at {rate:.0}/s; peak RSS kB {peak:?}");

    // Throttled: loggen alone sends hundreds of thousands of lines a second; here it could
    // only go as fast as the workers (about 2 x 1,500/s) plus what the queues hold.
    assert!(
        rate < 20_000.0,
        "loggen was not throttled: {rate:.0} lines/s\n{}",
        z.proc.describe()
    );
    // Bounded: the queues are bounded by their high-water marks (10,000 messages per socket
    // by default), so no process grows with the 30 s backlog.
    assert_each_under_64_mb(peak.iter().map(|(n, kb)| (n.as_str(), *kb)), &z);
    assert!(
        peak.contains_key("zerolog"),
        "sampled the elements: {peak:?}"
    );
}

/// The peak RSS (VmHWM, kB) of zerologd and each of its descendants, by [`label`].
fn peaks(z: &Zerologd) -> Vec<(String, u64)> {
    let root = z.proc.pid();
    descendants(root)
        .into_iter()
        .chain([root])
        .map(|pid| (label(pid), status_kb(pid, "VmHWM")))
        .collect()
}

/// Every (name, kB) is under 64 MB.
fn assert_each_under_64_mb<'a>(peak: impl IntoIterator<Item = (&'a str, u64)>, z: &Zerologd) {
    for (name, kb) in peak {
        assert!(
            kb < 64 * 1024,
            "{name} peaked at {kb} kB (bound: 64 MB)\n{}",
            z.proc.describe()
        );
    }
}

/// The command and its first argument (`zerolog receiver`), from /proc.
fn label(pid: u32) -> String {
    let cmdline = std::fs::read(format!("/proc/{pid}/cmdline")).unwrap_or_default();
    let mut args = cmdline.split(|&b| b == 0).map(String::from_utf8_lossy);
    let program = args.next().unwrap_or_default();
    let program = program.rsplit('/').next().unwrap_or_default().to_string();
    format!("{program} {}", args.next().unwrap_or_default())
}

/// Long lines into one slow worker: each queue holds at most its budget of bytes, not 10,000
/// messages (which is 640 MB of 64 KiB lines), so every process stays under 64 MB while the
/// queues are full, and everything sent is still delivered once.
#[test]
fn queues_of_long_lines_are_bounded_in_bytes() {
    let dir = tempfile::tempdir().unwrap();
    // About 2 ms per message.
    let topology = small_journal(&slow_topology(dir.path(), 1, 0.002));
    let z = Zerologd::start(dir.path(), &topology);
    // 65,000-byte lines for 8 s: the worker takes about 500 a second, so every queue of the
    // pipeline fills within the first second or two and stays full.
    let mut cmd = Command::new(zerolog_bin());
    cmd.args(["loggen", "--json", "--app", "long", "-d", "8", "-c", "2"])
        .args(["-s", "65000", "-P", &z.backend.to_string()]);
    let loggen = Proc::spawn(dir.path(), "loggen", cmd);
    let report = loggen_report(&loggen, Duration::from_secs(60));
    let sent = report["messages"].as_u64().unwrap();

    // The peaks, read while the queues are still full.
    let peak = peaks(&z);
    eprintln!("long lines: loggen sent {sent}; peak RSS kB {peak:?}");
    let load = Load {
        count: sent,
        rate: 0,
        connections: 2,
    };
    assert_all_delivered_once(dir.path(), "out.", &load, &[&z.proc]);
    // Throttled to the worker's pace plus what the queues hold (a few hundred lines each).
    assert!(
        sent < 10_000,
        "loggen was not throttled: {sent} lines\n{}",
        z.proc.describe()
    );
    assert_each_under_64_mb(peak.iter().map(|(n, kb)| (n.as_str(), *kb)), &z);
    let elements = peak
        .iter()
        .filter(|(n, _)| n.starts_with("zerolog "))
        .count();
    assert!(
        elements >= 3,
        "measured the forwarder, receiver and worker: {peak:?}"
    );
    let (_, total) = z.counters("forwarder");
    assert_eq!(
        total["truncated"], 0,
        "the lines fit max_message_size: {total}"
    );
    assert_eq!(total["messages_received"], sent, "{total}");
}

/// A receiver of another publisher (a plain ZeroMQ PUB here, as logstash or omczmq) that
/// sends 1 MiB messages, its `max_message_size` saying so: its queue from the publisher is
/// `queue_bytes` / 1 MiB = 32 messages long, not 512, and so is its worker's, so both stay
/// under 64 MB while the worker lags (the publisher drops what does not fit: at most once, as
/// PUB does).
#[test]
fn a_receiver_of_long_foreign_messages_is_bounded_by_its_max_message_size() {
    let dir = tempfile::tempdir().unwrap();
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::PUB).unwrap();
    publisher.set_sndhwm(4).unwrap();
    publisher.set_linger(0).unwrap();
    publisher.bind("tcp://127.0.0.1:*").unwrap();
    let endpoint = publisher.get_last_endpoint().unwrap().unwrap();
    let script = write_file(dir.path(), "slow.py", SLOW_WORKER);
    let topology = format!(
        r#"
[[receiver]]
name = "foreign"
connect = "{endpoint}"
max_message_size = 1048576

[[worker]]
name = "slow"
receiver = "foreign"
command = ["python3", "{}", "{{DIR}}/out.slow", "0.01"]
"#,
        script.display()
    );
    let z = Zerologd::start(dir.path(), &topology);
    // 1 MiB messages, 200 a second for 6 s: the worker takes about 100 a second.
    let mut body = vec![b'x'; 1 << 20];
    let started = Instant::now();
    let mut sent = 0u64;
    while started.elapsed() < Duration::from_secs(6) {
        body[..8].copy_from_slice(format!("{sent:08}").as_bytes());
        publisher.send_multipart([&b"big"[..], &body], 0).unwrap();
        sent += 1;
        std::thread::sleep(Duration::from_millis(5));
    }
    let peak = peaks(&z);
    let (_, receiver) = z.counters("foreign");
    eprintln!("foreign 1 MiB messages: {sent} sent, receiver {receiver}; peak RSS kB {peak:?}");
    let received = receiver["received"].as_u64().unwrap();
    assert!(
        received > 100 && received < sent,
        "the receiver took some, not all: {received} of {sent}"
    );
    // The receiver, and its worker (handed the same size): 400 MB and 470 MB without the key.
    let elements: Vec<(&str, u64)> = peak
        .iter()
        .filter(|(n, _)| n.starts_with("zerolog "))
        .map(|(n, kb)| (n.as_str(), *kb))
        .collect();
    assert_eq!(
        elements.len(),
        2,
        "measured the receiver and the worker: {peak:?}"
    );
    assert_each_under_64_mb(elements, &z);
}

/// Two network namespaces joined by a veth pair, removed on drop.
struct Netns {
    a: String,
    b: String,
    a_dev: String,
}

impl Netns {
    /// `None` (with a visible skip, or a failure under ZEROLOG_REQUIRE_INTEROP=1) when this
    /// machine cannot create network namespaces (not root, no `ip`).
    fn create() -> Option<Netns> {
        let id = std::process::id();
        let n = Netns {
            a: format!("zl-a-{id}"),
            b: format!("zl-b-{id}"),
            a_dev: format!("zla{id}"),
        };
        let b_dev = format!("zlb{id}");
        let ok = ip(&["netns", "add", &n.a]);
        let n = peer_or_skip("ip netns (root and iproute2)", ok.then_some(n))?;
        assert!(ip(&["netns", "add", &n.b]));
        assert!(ip(&[
            "link", "add", &n.a_dev, "netns", &n.a, "type", "veth", "peer", "name", &b_dev,
            "netns", &n.b
        ]));
        for (ns, dev, addr) in [
            (&n.a, &n.a_dev, "10.213.0.1/24"),
            (&n.b, &b_dev, "10.213.0.2/24"),
        ] {
            assert!(ip(&["-n", ns, "addr", "add", addr, "dev", dev]));
            assert!(ip(&["-n", ns, "link", "set", dev, "up"]));
            assert!(ip(&["-n", ns, "link", "set", "lo", "up"]));
        }
        Some(n)
    }

    /// `zerolog ARGS` inside namespace `ns`.
    fn zerolog(&self, dir: &Path, ns: &str, name: &str, args: &[String]) -> Proc {
        let mut cmd = Command::new("ip");
        cmd.args(["netns", "exec", ns, zerolog_bin()]).args(args);
        Proc::spawn(dir, name, cmd)
    }

    /// Host A (namespace `a`): a forwarder, TCP input on port 6000 of its loopback, publishing
    /// on the veth address, waiting for one subscriber. Host B: a receiver connected across
    /// the link, and a `file` worker writing `dir`/out.txt. `forwarder` and `receiver` add
    /// flags. Returns (forwarder, receiver, worker) once the forwarder reads input.
    fn pipeline(&self, d: &Path, forwarder: &[String], receiver: &[String]) -> [Proc; 3] {
        let s = |x: &str| x.to_string();
        let mut args = [
            "forwarder",
            "-b",
            "6000",
            "--publish-endpoint",
            "tcp://10.213.0.1:6001",
            "--wait-subscribers",
            "1",
        ]
        .map(s)
        .to_vec();
        args.extend_from_slice(forwarder);
        let forwarder = self.zerolog(d, &self.a, "forwarder", &args);
        let sock = d.join("receiver.sock");
        let mut args = vec![
            s("receiver"),
            s("--output-socket"),
            sock.display().to_string(),
        ];
        args.extend_from_slice(receiver);
        args.extend([s("10.213.0.1"), s("6001")]);
        let receiver = self.zerolog(d, &self.b, "receiver", &args);
        let worker = self.zerolog(
            d,
            &self.b,
            "worker",
            &[
                s("worker"),
                format!("ipc://{}", sock.display()),
                s("file"),
                d.join("out.txt").display().to_string(),
            ],
        );
        forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
        [forwarder, receiver, worker]
    }

    fn link(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        assert!(ip(&["-n", &self.a, "link", "set", &self.a_dev, state]));
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        for ns in [&self.a, &self.b] {
            ip(&["netns", "del", ns]);
        }
    }
}

fn ip(args: &[&str]) -> bool {
    Command::new("ip")
        .args(args)
        .output()
        .map(|o| o.status.success())
        .unwrap_or(false)
}

#[test]
fn cutting_the_link_between_hosts_for_10_s_throttles_and_recovers_without_loss() {
    let Some(net) = Netns::create() else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let [forwarder, receiver, worker] = net.pipeline(d, &[], &[]);
    let out = d.join("out.txt");
    let procs = [&forwarder, &receiver, &worker];

    // 20,000 lines/s for 30 s; the link is down from 5 s to 15 s.
    let load = Load {
        count: 600_000,
        rate: 20_000,
        connections: 1,
    };
    let loggen = net.zerolog(d, &net.a, "loggen", &load.args(6000));
    std::thread::sleep(Duration::from_secs(5));
    net.link(false);
    let cut = Instant::now();
    let lines_at_cut = count_lines(&out);
    std::thread::sleep(Duration::from_secs(10));
    let lines_during = count_lines(&out);
    net.link(true);
    eprintln!(
        "link cut for {:?}: {lines_at_cut} lines delivered at the cut, {lines_during} at its end",
        cut.elapsed()
    );

    let report = loggen_report(&loggen, Duration::from_secs(120));
    assert_eq!(report["messages"].as_u64(), Some(load.count));
    assert_all_delivered_once(d, "out.txt", &load, &procs);

    // Nothing crossed the cut link (the last lines in flight at most), and the forwarder
    // held its input rather than dropping: it says how long publishing waited.
    assert!(
        lines_during - lines_at_cut < 50_000,
        "delivery went on while the link was down: {lines_at_cut} -> {lines_during}"
    );
    let log = forwarder.stderr_text();
    let waited_ms: u64 = log
        .lines()
        .filter(|l| l.contains("publishing resumed"))
        .filter_map(|l| {
            l.split("waited_ms=")
                .nth(1)?
                .split_whitespace()
                .next()?
                .parse()
                .ok()
        })
        .max()
        .unwrap_or(0);
    assert!(
        waited_ms >= 5_000,
        "the forwarder was blocked (input throttled) for most of the cut: waited {waited_ms} ms\n{}",
        describe_all(&procs)
    );
    // The sender was throttled: at 20,000/s, 600,000 lines take 30 s; the 10 s stall made it
    // late (it catches up as fast as it can afterwards, so by less than 10 s).
    let seconds = report["seconds"].as_f64().unwrap();
    eprintln!(
        "loggen took {seconds:.1} s for {} lines; forwarder publishing waited {waited_ms} ms",
        load.count
    );
}

/// `tcpdump` (Debian package tcpdump).
fn tcpdump() -> Option<&'static str> {
    let ok = Command::new("tcpdump").arg("--version").output();
    ok.is_ok_and(|o| o.status.success()).then_some("tcpdump")
}

/// A forwarder on one host and a receiver with its worker on another, CURVE between them:
/// a burst arrives whole, and a capture of the link holds none of it in clear text (only
/// the ZMTP greeting, which names the mechanism).
#[test]
fn with_curve_between_hosts_a_burst_arrives_whole_and_the_link_shows_none_of_it() {
    let Some(net) = Netns::create() else {
        return;
    };
    let Some(tcpdump) = peer_or_skip("tcpdump (Debian package tcpdump)", tcpdump()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let s = |x: &str| x.to_string();
    let (fwd_key, fwd_pub) = crate::curve::keygen(d, "fwd");
    let (rcv_key, rcv_pub) = crate::curve::keygen(d, "rcv");
    let pcap = d.join("link.pcap");
    // Packet-buffered (-U), so that what was captured is in the file when it stops; as root
    // (-Z root): the test's directory is not the tcpdump user's.
    let mut cmd = Command::new("ip");
    cmd.args([
        "netns", "exec", &net.a, tcpdump, "-i", &net.a_dev, "-U", "-Z", "root", "-w",
    ])
    .arg(&pcap);
    let capture = Proc::spawn(d, "tcpdump", cmd);
    wait_until(READY_TIMEOUT, "tcpdump listening", || {
        capture.stderr_text().contains("listening on")
    });
    let [forwarder, receiver, worker] = net.pipeline(
        d,
        &[
            s("--curve-secret-key"),
            fwd_key.display().to_string(),
            s("--curve-client"),
            rcv_pub,
        ],
        &[
            s("--curve-secret-key"),
            rcv_key.display().to_string(),
            s("--curve-server-key"),
            fwd_pub,
        ],
    );
    let out = d.join("out.txt");
    let procs = [&forwarder, &receiver, &worker];

    let load = Load {
        count: 20_000,
        rate: 0,
        connections: 1,
    };
    let mut args = load.args(6000);
    let app = args.iter().position(|a| a == "--app").unwrap() + 1;
    args[app] = s("TOPSECRET");
    let loggen = net.zerolog(d, &net.a, "loggen", &args);
    let report = loggen_report(&loggen, Duration::from_secs(60));
    assert_eq!(report["messages"].as_u64(), Some(load.count));
    wait_for_line_count(&out, load.count as usize, DELIVERY_TIMEOUT, &procs);
    assert!(read_lines(&out).iter().all(|l| contains(l, b"TOPSECRET")));
    assert_all_delivered_once(d, "out.txt", &load, &procs);

    capture.signal("INT");
    capture.wait_exit(READY_TIMEOUT);
    let captured = std::fs::read(&pcap).unwrap();
    let sent = report["bytes"].as_u64().unwrap() as usize;
    assert!(
        captured.len() > sent,
        "the capture ({} bytes) is smaller than what crossed the link ({sent} bytes of lines)",
        captured.len()
    );
    assert!(contains(&captured, b"CURVE"), "no ZMTP greeting captured");
    for clear in [&b"TOPSECRET"[..], b"seq=0.", b"2026-11-23T10:00:00"] {
        assert!(
            !contains(&captured, clear),
            "{:?} crossed the link in clear text",
            show(clear)
        );
    }
}
