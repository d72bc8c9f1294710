//! zerologd with real processes: start order, restarts and backoff, FATAL, drain on SIGTERM,
//! no orphans after kill -9, reload, control commands, config errors, the embedded default.

use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::zerologd::*;
use crate::common::*;

#[test]
fn kill_9_of_each_element_is_restarted_and_the_pipeline_delivers_again() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let out = dir.path().join("out.txt");
    z.deliver(&out, "first", 1000);
    for name in ["out:0", "all", "forwarder"] {
        let old = z.pid_of(name).unwrap();
        kill9(old);
        let t = Instant::now();
        let new = z.wait_new_pid(name, old);
        eprintln!("{name}: {old} -> {new} in {:?}", t.elapsed());
        if name == "forwarder" {
            // Running is not reading yet: wait for the new forwarder to notify READY=1.
            wait_until(READY_TIMEOUT, "restarted forwarder ready", || {
                let p = z.program_json("forwarder");
                p["pid"] == new && p["ready"] == true
            });
        }
        // Messages sent while the rest of the pipeline has not yet noticed the death (ZeroMQ
        // still queues to the dead peer for a moment) are lost with the process; "delivering
        // again" means: once a probe gets through, everything does.
        z.wait_delivering(&out, &format!("probe-{name}"));
        z.deliver(&out, &format!("after-{name}"), 1000);
    }
    let st = z.status();
    assert!(st.iter().all(|r| r.1 == "RUNNING"), "{st:?}");
    assert!(st.iter().all(|r| r.3 == 1), "each restarted once: {st:?}");
    for name in ["out:0", "all", "forwarder"] {
        let p = z.program_json(name);
        assert_eq!(p["last_exit"]["signal"], 9, "{name}: {p}");
    }
    if let Some(log) = z.info_log() {
        assert!(log.contains("exited unexpectedly; restarting"), "{log}");
    }
}

#[test]
fn crash_loop_backs_off_exponentially_then_goes_fatal_without_stopping_others() {
    let dir = tempfile::tempdir().unwrap();
    let topology = format!(
        "{BASIC}\n[[worker]]\nname = \"crashy\"\nreceiver = \"all\"\ntype = \"zmq\"\n\
         command = [\"sh\", \"-c\", \"exit 7\"]\nrestart_backoff = \"100ms\"\n\
         restart_backoff_max = \"400ms\"\nmax_restarts = 5\n"
    );
    let started = Instant::now();
    let z = Zerologd::start(dir.path(), &topology);
    wait_until(READY_TIMEOUT, "crashy FATAL", || {
        z.state_of("crashy:0") == "FATAL"
    });
    // Six starts, five delays between them: at least 0 + 100 + 200 + 400 + 400 ms.
    let fatal_after = started.elapsed();
    assert!(
        fatal_after >= Duration::from_millis(1100),
        "FATAL after {fatal_after:?}: no backoff"
    );
    let crashy = z.program_json("crashy:0");
    assert_eq!(crashy["restarts"], 5, "{crashy}");
    let (_, text, _) = z.ctl(&["status"]);
    assert!(
        text.contains("FATAL") && text.contains("exit status 7"),
        "{text}"
    );
    // Delays between consecutive starts, from zerologd's own log.
    if let Some(log) = z.info_log() {
        let delays: Vec<u64> = log
            .lines()
            .filter(|l| l.contains("crashy:0") && l.contains("restart_in_ms="))
            .map(|l| {
                let v = l.split("restart_in_ms=").nth(1).unwrap();
                v.split_whitespace().next().unwrap().parse().unwrap()
            })
            .collect();
        assert_eq!(delays, vec![0, 100, 200, 400, 400], "{log}");
        assert!(log.contains("FATAL"));
    }
    // The rest of the pipeline is unaffected.
    z.deliver(&dir.path().join("out.txt"), "still", 100);
    // start clears FATAL.
    let (code, _, err) = z.ctl(&["start", "crashy"]);
    assert_eq!(code, 0, "{err}");
}

#[test]
fn sigterm_drains_a_burst_in_flight_and_exits_0() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    const N: usize = 200_000;
    let mut input = Vec::new();
    for i in 0..N {
        input.extend_from_slice(format!("<13>app: burst {i:06}\n").as_bytes());
    }
    send_tcp(z.backend, &input);
    // Stop while the burst is on its way through the pipeline.
    z.proc.signal("TERM");
    let status = z.proc.wait_exit(DELIVERY_TIMEOUT);
    assert_eq!(status.code(), Some(0), "{}", z.proc.describe());
    let lines = read_lines(&dir.path().join("out.txt"));
    assert_eq!(lines.len(), N, "messages delivered before exit");
    for (i, l) in lines.iter().enumerate() {
        assert_eq!(*l, format!("<13>app: burst {i:06}").into_bytes());
    }
    let Some(log) = z.info_log() else {
        return;
    };
    let fwd = log
        .find("program=\"forwarder\"")
        .map(|_| log.find("stopping").unwrap());
    assert!(fwd.is_some(), "{log}");
    // Stop order: forwarder, then the receiver, then the worker.
    let pos = |needle: &str| {
        log.lines()
            .position(|l| l.contains("stopping") && l.contains(needle))
            .unwrap_or_else(|| panic!("no 'stopping' line for {needle}\n{log}"))
    };
    assert!(pos("program=\"forwarder\"") < pos("program=\"all\""));
    assert!(pos("program=\"all\"") < pos("program=\"out:0\""));
}

#[test]
fn kill_9_of_zerologd_leaves_no_orphans_and_a_new_one_binds_again() {
    let dir = tempfile::tempdir().unwrap();
    // A stdin worker whose program is a separate process (cat), a zmq worker, the lot.
    let topology = format!(
        "{BASIC}\n[[receiver]]\nname = \"side\"\ntopic = \"side\"\n\n\
         [[worker]]\nname = \"cat\"\nreceiver = \"side\"\nnumprocs = 2\n\
         command = [\"/bin/cat\"]\n\n[[worker]]\nname = \"sleeper\"\nreceiver = \"side\"\n\
         type = \"zmq\"\ncommand = [\"sh\", \"-c\", \"sleep 1000 & sleep 1000\"]\n"
    );
    let z = Zerologd::start(dir.path(), &topology);
    let zpid = z.proc.pid() as i32;
    // Every descendant of zerologd, found through /proc.
    let descendants = descendants_of(zpid);
    assert!(
        descendants.len() >= 8,
        "expected the whole tree: {descendants:?}"
    );
    kill9(zpid);
    z.proc.wait_exit(READY_TIMEOUT);
    wait_until(
        Duration::from_secs(2),
        "every descendant gone within 2 s",
        || descendants.iter().all(|&p| !alive(p)),
    );
    // A new zerologd binds the same ports and control socket and delivers.
    let z2 = Zerologd::spawn(dir.path(), "zerologd-2", &z.config, z.backend);
    z2.wait_ready();
    z2.deliver(&dir.path().join("out.txt"), "again", 100);
}

fn descendants_of(root: i32) -> Vec<i32> {
    let mut parent_of: Vec<(i32, i32)> = Vec::new();
    for entry in std::fs::read_dir("/proc").unwrap().flatten() {
        let Ok(pid) = entry.file_name().to_string_lossy().parse::<i32>() else {
            continue;
        };
        if let Ok(stat) = std::fs::read_to_string(format!("/proc/{pid}/stat")) {
            let after = stat.rsplit(')').next().unwrap_or("");
            if let Some(ppid) = after.split_whitespace().nth(1).and_then(|s| s.parse().ok()) {
                parent_of.push((pid, ppid));
            }
        }
    }
    let mut found = vec![root];
    let mut i = 0;
    while i < found.len() {
        let p = found[i];
        found.extend(parent_of.iter().filter(|(_, pp)| *pp == p).map(|(c, _)| *c));
        i += 1;
    }
    found.remove(0);
    found
}

#[test]
fn sighup_with_changed_numprocs_keeps_the_forwarder_and_unchanged_workers() {
    let dir = tempfile::tempdir().unwrap();
    let topology = format!(
        "{BASIC}\n[[receiver]]\nname = \"side\"\ntopic = \"side\"\n\n\
         [[worker]]\nname = \"pool\"\nreceiver = \"side\"\nnumprocs = 2\ncommand = [\"null\"]\n"
    );
    let z = Zerologd::start(dir.path(), &topology);
    let before = z.status();
    let pid = |rows: &[(String, String, Option<i32>, u64)], n: &str| {
        rows.iter().find(|r| r.0 == n).and_then(|r| r.2)
    };
    // numprocs 2 -> 4, and a new worker group.
    let text = std::fs::read_to_string(&z.config)
        .unwrap()
        .replace("numprocs = 2", "numprocs = 4")
        + "\n[[worker]]\nname = \"extra\"\nreceiver = \"side\"\ncommand = [\"null\"]\n";
    std::fs::write(&z.config, text).unwrap();
    z.proc.signal("HUP");
    wait_until(READY_TIMEOUT, "4 pool workers and extra running", || {
        let st = z.status();
        ["pool:2", "pool:3", "extra:0"]
            .iter()
            .all(|n| st.iter().any(|r| r.0 == *n && r.1 == "RUNNING"))
    });
    let after = z.status();
    for n in ["forwarder", "all", "side", "out:0", "pool:0", "pool:1"] {
        assert_eq!(pid(&before, n), pid(&after, n), "{n} must keep its pid");
    }
    // numprocs 4 -> 1 via the control client: only pool:1..3 stop.
    let text = std::fs::read_to_string(&z.config)
        .unwrap()
        .replace("numprocs = 4", "numprocs = 1");
    std::fs::write(&z.config, text).unwrap();
    let (code, out, err) = z.ctl(&["reload"]);
    assert_eq!(code, 0, "{err}");
    assert!(out.contains("reloaded"), "{out}");
    wait_until(READY_TIMEOUT, "pool:1..3 removed", || {
        let st = z.status();
        !st.iter()
            .any(|r| r.0 == "pool:1" || r.0 == "pool:2" || r.0 == "pool:3")
    });
    assert_eq!(pid(&before, "pool:0"), z.pid_of("pool:0"));
    assert_eq!(pid(&before, "forwarder"), z.pid_of("forwarder"));
    // An invalid file is rejected and nothing changes.
    std::fs::write(&z.config, "[[worker]]\nname = 3\n").unwrap();
    let (code, _, err) = z.ctl(&["reload"]);
    assert_eq!(code, 1);
    assert!(err.contains("zerolog.toml:2"), "{err}");
    assert_eq!(pid(&before, "forwarder"), z.pid_of("forwarder"));
    z.deliver(&dir.path().join("out.txt"), "after-reload", 100);
}

#[test]
fn control_commands_stop_start_restart() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let old = z.pid_of("out:0").unwrap();
    let (code, _, err) = z.ctl(&["restart", "out"]);
    assert_eq!(code, 0, "{err}");
    z.wait_new_pid("out:0", old);
    let (code, _, _) = z.ctl(&["stop", "out:0"]);
    assert_eq!(code, 0);
    wait_until(READY_TIMEOUT, "out:0 stopped", || {
        z.state_of("out:0") == "STOPPED"
    });
    let (code, _, _) = z.ctl(&["start", "out:0"]);
    assert_eq!(code, 0);
    wait_until(READY_TIMEOUT, "out:0 running", || {
        z.state_of("out:0") == "RUNNING"
    });
    let (code, _, err) = z.ctl(&["restart", "nonexistent"]);
    assert_eq!(code, 1);
    assert!(
        err.contains("no program or group named 'nonexistent'"),
        "{err}"
    );
    // The text form has a header and a row per program.
    let (_, text, _) = z.ctl(&["status"]);
    assert!(text.starts_with("NAME"), "{text}");
    assert_eq!(
        text.lines().take_while(|l| !l.is_empty()).count(),
        4,
        "{text}"
    );
    assert!(
        text.contains("\nCOUNTERS\nforwarder  bytes_received="),
        "{text}"
    );
    // The control socket is private.
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(dir.path().join("run/zerologd.sock"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    // Children's output is logged with program name and pid.
    if let Some(log) = z.info_log() {
        assert!(
            log.lines().any(|l| l.contains("receiver ready")
                && l.contains("program=\"all\"")
                && l.contains("pid=")),
            "{log}"
        );
    }
}

#[test]
fn config_errors_are_all_reported_with_lines_and_nothing_starts() {
    let dir = tempfile::tempdir().unwrap();
    let config = write_file(
        dir.path(),
        "bad.toml",
        "[forwarder]\ntcp = [\"127.0.0.1:7000\"]\npublish = \"tcp://127.0.0.1:7000\"\n\n\
         [[receiver]]\nname = \"all\"\nbogus = 1\n\n[[worker]]\nname = \"w\"\nreceiver = \"nope\"\n\
         command = [\"no-such-program-xyz\"]\nnumprocs = \"two\"\n",
    );
    for args in [vec!["--check", "-c"], vec!["-c"]] {
        let out = Command::new(zerologd_bin())
            .args(&args)
            .arg(&config)
            .env("ZEROLOG_RUNTIME_DIR", dir.path().join("run"))
            .env("ZEROLOG_STATE_DIR", dir.path().join("state"))
            .output()
            .unwrap();
        assert_eq!(out.status.code(), Some(2));
        let err = String::from_utf8_lossy(&out.stderr);
        for (line, key) in [
            (7, "bogus"),
            (11, "receiver"),
            (12, "command"),
            (13, "numprocs"),
        ] {
            assert!(
                err.lines()
                    .any(|l| l.contains(&format!("bad.toml:{line}:")) && l.contains(key)),
                "no error for {key} at line {line}:\n{err}"
            );
        }
        assert!(err.contains("7000"), "duplicate port reported:\n{err}");
        assert!(
            !dir.path().join("run/zerologd.sock").exists(),
            "nothing started"
        );
    }
    // The example file is valid.
    let example = Path::new(env!("CARGO_MANIFEST_DIR")).join("zerolog.toml.example");
    let out = zerologd_check(&example);
    assert!(
        out.status.success(),
        "{}",
        String::from_utf8_lossy(&out.stderr)
    );
}

#[test]
fn embedded_default_prints_what_logger_sends() {
    let Some(logger) = peer_or_skip("logger", logger()) else {
        return;
    };
    // The embedded default listens on the fixed port 6000; skip if something else has it.
    if tcp_accepts(6000) || tcp_accepts(6001) {
        panic!("ports 6000/6001 are in use: the embedded default needs them");
    }
    let dir = tempfile::tempdir().unwrap();
    let mut cmd = Command::new(zerologd_bin());
    cmd.env("ZEROLOG_RUNTIME_DIR", dir.path().join("run"))
        .env("ZEROLOG_STATE_DIR", dir.path().join("state"));
    let z = Proc::spawn(dir.path(), "zerologd", cmd);
    z.wait_for_stderr("pipeline ready", READY_TIMEOUT);
    run_logger(
        &logger,
        dir.path(),
        "logger",
        &["-T", "-n", "127.0.0.1", "-P", "6000", "hello from logger"],
    );
    z.wait_for_stderr("hello from logger", DELIVERY_TIMEOUT);
    let line = z
        .stderr_text()
        .lines()
        .find(|l| l.contains("hello from logger"))
        .unwrap()
        .to_string();
    assert!(line.contains("program=\"stdout:0\""), "{line}");
    z.signal("TERM");
    assert_eq!(z.wait_exit(READY_TIMEOUT).code(), Some(0));
}

#[test]
fn a_burst_sent_right_at_startup_is_not_lost() {
    let dir = tempfile::tempdir().unwrap();
    let backend = free_port();
    let config = write_file(
        dir.path(),
        "zerolog.toml",
        &Zerologd::expand(dir.path(), BASIC, backend),
    );
    let z = Zerologd::spawn(dir.path(), "zerologd", &config, backend);
    // No waiting for readiness: connect as soon as the port accepts, like a sender retrying.
    let deadline = Instant::now() + READY_TIMEOUT;
    let mut conn = loop {
        match std::net::TcpStream::connect(("127.0.0.1", backend)) {
            Ok(c) => break c,
            Err(_) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(1)),
            Err(e) => panic!("forwarder never accepted: {e}\n{}", z.proc.describe()),
        }
    };
    const N: usize = 20_000;
    let mut input = Vec::new();
    for i in 0..N {
        input.extend_from_slice(format!("<13>app: early {i:05}\n").as_bytes());
    }
    std::io::Write::write_all(&mut conn, &input).unwrap();
    drop(conn);
    let out = dir.path().join("out.txt");
    wait_for_line_count(&out, N, DELIVERY_TIMEOUT, &[&z.proc]);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), N);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| *l == format!("<13>app: early {i:05}").into_bytes()));
}

#[test]
fn a_pipeline_on_unix_sockets_delivers() {
    // Both internal hops on ipc://: the receiver must be pointed at the forwarder's socket
    // (zerolog 0.3's `receiver ADDRESS PORT` can only name a TCP one). BASIC's receiver
    // output is already the default ipc socket in the runtime directory.
    let dir = tempfile::tempdir().unwrap();
    let topology = BASIC.replace("tcp://127.0.0.1:{F}", "ipc://{DIR}/pub.sock");
    let z = Zerologd::start(dir.path(), &topology);
    let out = dir.path().join("out.txt");
    z.deliver(&out, "unix", 1000);
    let lines = read_lines(&out);
    assert_eq!(lines.len(), 1000);
    assert!(lines
        .iter()
        .enumerate()
        .all(|(i, l)| *l == format!("<13>app: unix {i}").into_bytes()));
    z.proc.signal("TERM");
    assert_eq!(z.proc.wait_exit(READY_TIMEOUT).code(), Some(0));
}

#[test]
fn programs_run_as_their_configured_user_and_group() {
    if !root_or_skip("to switch users") {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let topology = format!(
        "{BASIC}\n[[worker]]\nname = \"unpriv\"\nreceiver = \"all\"\ntype = \"zmq\"\n\
         user = \"nobody\"\ngroup = \"nogroup\"\n\
         command = [\"sh\", \"-c\", \"echo who=$(id -un):$(id -gn); exec sleep 1000\"]\n"
    );
    let z = Zerologd::start(dir.path(), &topology);
    if z.info_log().is_some() {
        z.proc.wait_for_stderr("who=nobody:nogroup", READY_TIMEOUT);
    }
    let pid = z.pid_of("unpriv:0").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    let ids = |field: &str| {
        let line = status.lines().find(|l| l.starts_with(field)).unwrap();
        line.split_whitespace()
            .skip(1)
            .map(str::to_owned)
            .collect::<Vec<_>>()
    };
    let nobody = nix::unistd::User::from_name("nobody").unwrap().unwrap();
    let nogroup = nix::unistd::Group::from_name("nogroup").unwrap().unwrap();
    // Real, effective, saved and filesystem ids; no supplementary group of root's.
    assert_eq!(ids("Uid:"), vec![nobody.uid.to_string(); 4], "{status}");
    assert_eq!(ids("Gid:"), vec![nogroup.gid.to_string(); 4], "{status}");
    assert!(!ids("Groups:").contains(&"0".to_string()), "{status}");
    // Other programs keep zerologd's user.
    let fwd = z.pid_of("forwarder").unwrap();
    let status = std::fs::read_to_string(format!("/proc/{fwd}/status")).unwrap();
    assert!(
        status.lines().any(|l| l.starts_with("Uid:\t0\t")),
        "forwarder runs as root"
    );
}

#[test]
fn scale_out_a_host_without_forwarder_takes_its_messages_from_another() {
    let input_dir = tempfile::tempdir().unwrap();
    let work_dir = tempfile::tempdir().unwrap();
    let publish = free_port();
    // The input host: a forwarder that waits for the remote receiver, and no receiver of its own.
    let input = Zerologd::start_unready(
        input_dir.path(),
        &format!(
            "[forwarder]\ntcp = [\"127.0.0.1:{{B}}\"]\npublish = \"tcp://127.0.0.1:{publish}\"\n"
        ),
    );
    // The work host: no forwarder; its receiver connects to the input host's.
    let work = Zerologd::start(
        work_dir.path(),
        &format!(
            "[[receiver]]\nname = \"remote\"\nconnect = [\"tcp://127.0.0.1:{publish}\"]\n\n\
             [[worker]]\nname = \"out\"\nreceiver = \"remote\"\ncommand = [\"file\", \"{{DIR}}/out.txt\"]\n"
        ),
    );
    let st = work.status();
    assert!(!st.iter().any(|r| r.0 == "forwarder"), "{st:?}");
    // The input host listens once the remote receiver has subscribed (it can take a while
    // on a busy machine).
    wait_until(READY_TIMEOUT, "the input host listening", || {
        tcp_accepts(input.backend)
    });
    input.deliver(&work_dir.path().join("out.txt"), "across", 5000);
}

#[test]
fn status_shows_every_elements_counters_and_keeps_a_killed_ones() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let out = dir.path().join("out.txt");
    z.deliver(&out, "counted", 1000);
    // The worker counted them as it wrote them; the others before.
    wait_until(READY_TIMEOUT, "worker counters at 1000", || {
        z.counters("out:0").0["processed"] == 1000
    });
    let (fwd, _) = z.counters("forwarder");
    assert_eq!(fwd["messages_received"], 1000, "{fwd}");
    assert_eq!(fwd["published"], 1000, "{fwd}");
    assert_eq!(fwd["connections_accepted"], 1, "{fwd}");
    assert_eq!(fwd["connections_open"], 0, "{fwd}");
    let (rcv, _) = z.counters("all");
    assert_eq!(
        (&rcv["received"], &rcv["pushed"]),
        (&1000.into(), &1000.into()),
        "{rcv}"
    );
    let bytes: u64 = read_lines(&out).iter().map(|l| l.len() as u64).sum();
    assert_eq!(rcv["bytes_received"], bytes, "{rcv}");
    let (wrk, _) = z.counters("out:0");
    assert_eq!(wrk["received"], 1000, "{wrk}");
    assert_eq!(wrk["bytes_received"], bytes, "{wrk}");

    // kill -9 of the receiver: the new process counts from 0; the total keeps what the
    // killed one counted, and zerologd logs it.
    let old = z.pid_of("all").unwrap();
    kill9(old);
    z.wait_new_pid("all", old);
    let (current, total) = z.counters("all");
    assert_eq!(current["received"], 0, "{current}");
    assert_eq!(total["received"], 1000, "{total}");
    assert_eq!(total["pushed"], 1000, "{total}");
    if let Some(log) = z.info_log() {
        assert!(
            log.lines().any(|l| l.contains("counters at exit")
                && l.contains("program=\"all\"")
                && l.contains("received=1000")),
            "{log}"
        );
    }
    z.deliver(&out, "after-kill", 10);
    wait_until(READY_TIMEOUT, "receiver total at 1010", || {
        z.counters("all").1["received"] == 1010
    });
    let (_, text, _) = z.ctl(&["status"]);
    assert!(
        text.contains("COUNTERS") && text.contains("total: acked="),
        "{text}"
    );
}

#[test]
fn prometheus_endpoint_serves_states_restarts_and_counters() {
    let dir = tempfile::tempdir().unwrap();
    let port = free_port();
    let topology = format!("[zerologd]\nmetrics = \"127.0.0.1:{port}\"\n{BASIC}");
    let z = Zerologd::start(dir.path(), &topology);
    z.deliver(&dir.path().join("out.txt"), "scraped", 100);
    wait_until(READY_TIMEOUT, "worker counted 100", || {
        z.counters("out:0").0["processed"] == 100
    });
    let old = z.pid_of("out:0").unwrap();
    kill9(old);
    z.wait_new_pid("out:0", old);

    let answer = http_get(port, "/metrics");
    assert!(
        answer.starts_with("HTTP/1.0 200") || answer.starts_with("HTTP/1.1 200"),
        "{answer}"
    );
    // Header names are case-insensitive.
    assert!(
        answer
            .to_ascii_lowercase()
            .contains("content-type: text/plain; version=0.0.4"),
        "{answer}"
    );
    for line in [
        "# TYPE zerolog_forwarder_messages_received_total counter",
        "zerolog_forwarder_messages_received_total{program=\"forwarder\",group=\"forwarder\",tier=\"forwarder\"} 100",
        "zerolog_forwarder_published_total{program=\"forwarder\",group=\"forwarder\",tier=\"forwarder\"} 100",
        "zerolog_receiver_pushed_total{program=\"all\",group=\"all\",tier=\"receiver\"} 100",
        // The killed worker's count is kept in the total.
        "zerolog_worker_processed_total{program=\"out:0\",group=\"out\",tier=\"worker\"} 100",
        "zerolog_program_restarts_total{program=\"out:0\",group=\"out\",tier=\"worker\"} 1",
        "zerolog_program_up{program=\"all\",group=\"all\",tier=\"receiver\"} 1",
        "# TYPE zerolog_forwarder_connections_open gauge",
    ] {
        assert!(answer.lines().any(|l| l == line), "no line {line:?} in\n{answer}");
    }
    assert!(http_get(port, "/other").contains(" 404 "));
}
