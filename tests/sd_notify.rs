//! zerologd under a service manager (systemd `Type=notify`), with a fake notify socket: the
//! test binds the datagram socket systemd would, and points `NOTIFY_SOCKET` at it.

use crate::common::notify::NotifySocket;
use std::process::Command;
use std::time::{Duration, Instant};

use crate::common::zerologd::*;
use crate::common::*;

#[test]
fn ready_after_the_forwarder_reads_input_watchdog_pings_stopping_on_sigterm() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (backend, frontend) = (free_port(), free_port());
    let out = d.join("out.txt");
    let config = write_file(
        d,
        "zerolog.toml",
        &format!(
            r#"
[forwarder]
tcp = ["127.0.0.1:{backend}"]
publish = "tcp://127.0.0.1:{frontend}"

[[receiver]]
name = "all"

# Records its environment: the notify socket must not leak to the programs.
[[worker]]
name = "out"
receiver = "all"
command = ["/bin/sh", "-c", "env > '{env}'; exec cat >> '{out}'"]
"#,
            env = d.join("env.txt").display(),
            out = out.display(),
        ),
    );
    let notify = NotifySocket::bind(&d.join("notify.sock"));
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerologd"));
    cmd.args(["-c", config.to_str().unwrap()])
        .env("ZEROLOG_RUNTIME_DIR", d.join("run"))
        .env("ZEROLOG_STATE_DIR", d.join("state"))
        .env("RUST_LOG", "info")
        .env("NOTIFY_SOCKET", d.join("notify.sock"))
        // A 400 ms watchdog: zerologd must ping every 200 ms.
        .env("WATCHDOG_USEC", "400000")
        .env_remove("WATCHDOG_PID");
    let z = Proc::spawn(d, "zerologd", cmd);

    let (ready, before) = notify.until("READY=1", READY_TIMEOUT, &z);
    // Only watchdog pings may come before READY=1.
    for msg in &before {
        assert_eq!(
            msg, "WATCHDOG=1\n",
            "unexpected notification before READY=1"
        );
    }
    // At READY=1 the forwarder already reads its input: it said so, it accepts connections,
    // and what is sent now is delivered.
    let log = z.stderr_text();
    assert!(
        log.contains("forwarder ready, reading input"),
        "READY=1 came before the forwarder read input ({ready:?}):\n{log}"
    );
    assert!(
        tcp_accepts(backend),
        "READY=1 sent but the forwarder does not accept"
    );
    send_tcp(backend, b"<13>1 - host app - - - after ready\n");
    wait_for_line_count(&out, 1, DELIVERY_TIMEOUT, &[&z]);
    assert!(show(&std::fs::read(&out).unwrap()).contains("after ready"));

    // The watchdog keeps being pinged while the pipeline runs.
    let start = Instant::now();
    let mut pings = 0;
    while start.elapsed() < Duration::from_millis(1500) {
        if let Some(msg) = notify.recv() {
            assert_eq!(msg, "WATCHDOG=1\n", "unexpected notification while running");
            pings += 1;
        }
    }
    assert!(
        pings >= 4,
        "{pings} watchdog pings in 1.5 s, want one per 200 ms"
    );

    let env = std::fs::read_to_string(d.join("env.txt")).unwrap();
    for var in ["NOTIFY_SOCKET", "WATCHDOG_USEC"] {
        assert!(
            !env.contains(var),
            "{var} leaked to a program's environment:\n{env}"
        );
    }

    z.signal("TERM");
    let (stopping, _) = notify.until("STOPPING=1", READY_TIMEOUT, &z);
    assert!(!stopping.contains("READY=1"), "{stopping:?}");
    assert_eq!(
        z.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.describe()
    );
}

#[test]
fn without_notify_socket_nothing_is_sent_and_the_pipeline_runs() {
    // NOTIFY_SOCKET unset (zerologd run by hand): no error, no warning about notifying.
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let backend = free_port();
    let config = write_file(
        d,
        "zerolog.toml",
        &format!(
            "[forwarder]\ntcp = [\"127.0.0.1:{backend}\"]\npublish = \"tcp://127.0.0.1:{}\"\n\
             [[receiver]]\nname = \"all\"\n[[worker]]\nname = \"w\"\nreceiver = \"all\"\ncommand = [\"null\"]\n",
            free_port()
        ),
    );
    let mut cmd = Command::new(env!("CARGO_BIN_EXE_zerologd"));
    cmd.args(["-c", config.to_str().unwrap()])
        .env("ZEROLOG_RUNTIME_DIR", d.join("run"))
        .env("ZEROLOG_STATE_DIR", d.join("state"))
        .env("WATCHDOG_USEC", "400000")
        .env_remove("NOTIFY_SOCKET");
    let z = Proc::spawn(d, "zerologd", cmd);
    z.wait_for_stderr("pipeline ready", READY_TIMEOUT);
    std::thread::sleep(Duration::from_millis(500));
    z.signal("TERM");
    assert_eq!(
        z.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.describe()
    );
    assert!(!z.stderr_text().contains("notify"), "{}", z.stderr_text());
}

/// Readiness is a protocol, not log text: with `RUST_LOG=error` for zerologd and every child,
/// zerologd still says READY=1 once the forwarder reads input, shows each program ready, and
/// a restarted forwarder reports ready again.
#[test]
fn readiness_does_not_depend_on_the_log_level() {
    let dir = tempfile::tempdir().unwrap();
    let out = dir.path().join("out.txt");
    let z = Zerologd::start_logging(dir.path(), BASIC, "error");
    send_tcp(z.backend, b"<13>app: quiet one\n");
    wait_for_line_count(&out, 1, DELIVERY_TIMEOUT, &[&z.proc]);
    for name in ["forwarder", "all", "out:0"] {
        let p = z.program_json(name);
        assert_eq!(p["ready"], true, "{name}: {p}");
    }
    let old = z.pid_of("forwarder").unwrap();
    kill9(old);
    wait_until(READY_TIMEOUT, "the restarted forwarder ready", || {
        let p = z.program_json("forwarder");
        p["ready"] == true && p["pid"] != old
    });
    send_tcp(z.backend, b"<13>app: quiet two\n");
    wait_for_line_count(&out, 2, DELIVERY_TIMEOUT, &[&z.proc]);
    // Nothing was logged: the level held, and readiness came anyway.
    let log = z.proc.stderr_text();
    assert!(!log.contains("INFO"), "{log}");
    z.proc.signal("TERM");
    assert_eq!(
        z.proc.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        z.proc.describe()
    );
}

/// A receiver that connects to `localhost` is one the forwarder waits for: while it cannot
/// start (its output port is taken), the forwarder reads no input and zerologd is not ready.
#[test]
fn a_receiver_connecting_to_localhost_is_waited_for() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let (publish, taken) = (
        free_port(),
        std::net::TcpListener::bind("127.0.0.1:0").unwrap(),
    );
    let config = write_file(
        d,
        "zerolog.toml",
        &format!(
            r#"
[forwarder]
tcp = ["127.0.0.1:{}"]
publish = "tcp://127.0.0.1:{publish}"

[[receiver]]
name = "all"
connect = ["localhost:{publish}"]
output = "tcp://127.0.0.1:{}"
restart_backoff = "50ms"
max_restarts = 1000

[[worker]]
name = "w"
receiver = "all"
command = ["null"]
"#,
            free_port(),
            taken.local_addr().unwrap().port()
        ),
    );
    let z = Zerologd::spawn(d, "zerologd", &config, 0);
    wait_until(READY_TIMEOUT, "the receiver crash-looping", || {
        z.try_program_json("all")
            .is_some_and(|p| p["restarts"].as_u64().unwrap_or(0) >= 3)
    });
    let early = z.notify.recv();
    assert!(
        !early.as_deref().unwrap_or("").contains("READY=1"),
        "zerologd said READY=1 with no receiver subscribed: {early:?}"
    );
    assert_eq!(
        z.program_json("forwarder")["ready"],
        false,
        "the forwarder reads input before its only receiver subscribed"
    );
    // Once the port is free the receiver starts, subscribes, and the pipeline is ready.
    drop(taken);
    z.wait_ready();
    assert_eq!(z.program_json("forwarder")["ready"], true);
}

/// zerologd waits for its reaper process before it exits: once zerologd has exited, no
/// process it started is left. A subreaper above it (here a Python parent) would adopt one.
#[test]
fn nothing_of_zerologd_outlives_its_exit() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path();
    let config = write_file(d, "zerolog.toml", &Zerologd::expand(d, BASIC, free_port()));
    // The parent becomes a subreaper, starts zerologd, says its pid, waits for it, then looks
    // for any other child it inherited (alive or a zombie).
    let script = r#"
import ctypes, os, subprocess, sys
ctypes.CDLL(None, use_errno=True).prctl(36, 1, 0, 0, 0)
p = subprocess.Popen(sys.argv[1:])
print(p.pid, flush=True)
p.wait()
try:
    pid, _ = os.waitpid(-1, os.WNOHANG)
    print("left behind" if pid == 0 else "left behind (exited after zerologd)", flush=True)
except ChildProcessError:
    print("nothing left", flush=True)
"#;
    let notify = NotifySocket::bind(&d.join("notify.sock"));
    let mut cmd = Command::new("python3");
    cmd.args(["-c", script, env!("CARGO_BIN_EXE_zerologd"), "-c"])
        .arg(&config)
        .env("ZEROLOG_RUNTIME_DIR", d.join("run"))
        .env("ZEROLOG_STATE_DIR", d.join("state"))
        .env("NOTIFY_SOCKET", notify.path());
    let parent = Proc::spawn(d, "subreaper", cmd);
    notify.until("READY=1", READY_TIMEOUT, &parent);
    let zpid: i32 = parent.stdout_text().trim().parse().unwrap();
    nix::sys::signal::kill(
        nix::unistd::Pid::from_raw(zpid),
        nix::sys::signal::Signal::SIGTERM,
    )
    .unwrap();
    assert_eq!(
        parent.wait_exit(READY_TIMEOUT).code(),
        Some(0),
        "{}",
        parent.describe()
    );
    let lines: Vec<String> = parent.stdout_text().lines().map(str::to_owned).collect();
    assert_eq!(lines[1], "nothing left", "{}", parent.describe());
}

/// A reload tells the service manager: RELOADING=1, then READY=1 once it is through, for an
/// applied reload and for a rejected one (whose `zerologd reload` exits 1 with file:line), so
/// `systemctl reload` waits for the outcome.
#[test]
fn a_reload_sends_reloading_then_ready() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), BASIC);
    let text = std::fs::read_to_string(&z.config).unwrap();
    std::fs::write(
        &z.config,
        text.replace("name = \"out\"\n", "name = \"out\"\nnumprocs = 2\n"),
    )
    .unwrap();
    let (code, reply, err) = z.ctl(&["reload"]);
    assert_eq!(code, 0, "{reply}{err}");
    // The READY=1 that ends a reload, after its RELOADING=1.
    let reloaded = || {
        let (ready, before) = z.notify.until("READY=1", READY_TIMEOUT, &z.proc);
        let reloading = before
            .iter()
            .chain([&ready])
            .any(|m| m.lines().any(|l| l == "RELOADING=1"));
        assert!(
            reloading,
            "no RELOADING=1 before READY=1: {before:?} {ready}"
        );
        ready
    };
    let ready = reloaded();
    assert!(
        ready.contains("STATUS=pipeline ready (topology reloaded)"),
        "{ready}"
    );

    std::fs::write(&z.config, format!("{text}\nnumprocs = \"many\"\n")).unwrap();
    let (code, _, err) = z.ctl(&["reload"]);
    assert_eq!(code, 1, "{err}");
    assert!(err.contains("zerolog.toml:"), "{err}");
    let ready = reloaded();
    assert!(ready.contains("reload rejected"), "{ready}");
    assert_eq!(
        z.state_of("out:1"),
        "RUNNING",
        "the rejected reload changed nothing"
    );
}
