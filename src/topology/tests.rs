use super::checks::check_command;
use super::*;

use std::net::SocketAddr;

use zerolog::delivery::Delivery;
use zerolog::endpoint::Endpoint;
use zerolog::framing::Framing;
use zerolog::syslog::TopicTemplate;

fn ep(s: &str) -> Endpoint {
    s.parse().unwrap()
}

fn parse(text: &str) -> Result<Topology, ConfigErrors> {
    Topology::parse(text, Path::new("test.toml"))
}

fn errors(text: &str) -> Vec<ConfigError> {
    match parse(text) {
        Ok(t) => panic!("expected errors, got {t:#?}"),
        Err(e) => e.0,
    }
}

/// Asserts that an error on `line` for `key` contains `needle`.
fn has(errors: &[ConfigError], line: usize, key: &str, needle: &str) {
    assert!(
        errors
            .iter()
            .any(|e| e.line == line && e.key == key && e.message.contains(needle)),
        "no error at line {line} for {key} containing {needle:?}; errors:\n{}",
        ConfigErrors(errors.to_vec())
    );
}

fn sh() -> String {
    if Path::new("/bin/sh").exists() {
        "/bin/sh".into()
    } else {
        "sh".into()
    }
}

#[test]
fn full_topology() {
    let shell = sh();
    let text = format!(
        r#"
[zerologd]
runtime_dir = "/tmp/zl-test"
control_socket = "/tmp/zl-test/ctl.sock"
state_dir = "/var/lib/zl-test"

[forwarder]
tcp = ["127.0.0.1:7000", "[::1]:7000"]
udp = ["0.0.0.0:7514"]
publish = "tcp://*:7001"
monitor = "ipc:///tmp/zl-test/monitor.sock"
framing = "octet-counted"
max_message_size = 131072
topic_template = "{{hostname}}.{{app}}"
hwm = 500
queue_bytes = 8388608
max_connections = 100
idle_timeout = "5m"
udp_recv_buffer = 4194304
allow = ["192.0.2.0/24", "198.51.100.7"]
fsync = "always"
journal_max_size = 67108864
restart = "on-failure"
stop_signal = "INT"
stop_timeout = "2s 500ms"
restart_backoff = "250ms"
restart_backoff_max = 30
max_restarts = 3
min_uptime = 1.5
env = {{ LANG = "C", TZ = "UTC" }}
cwd = "/"

[[receiver]]
name = "nginx"
topic = "nginx"
output = "tcp://127.0.0.1:7200"
hwm = 20
queue_bytes = 1048576
allow = ["10.0.0.0/8"]

[[receiver]]
name = "rest"
topic = ["", "kernel"]
connect = ["otherhost:6001", "tcp://[::1]:6001", "ipc:///tmp/zl-test/pub.sock"]
max_message_size = 1048576
delivery = "push"

[[worker]]
name = "db"
receiver = "nginx"
command = ["{shell}", "-c", "cat > /dev/null"]
numprocs = 4
framing = "nul"
with_seq = true
stop_signal = "SIGUSR1"

[[worker]]
name = "py"
receiver = "rest"
type = "zmq"
command = ["{shell}", "-c", "exec my-worker {{backend}}"]
restart = "never"

[[worker]]
name = "archive"
receiver = "rest"
command = ["file", "/tmp/archive.log"]
"#
    );
    let t = parse(&text).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(t.source, PathBuf::from("test.toml"));
    assert_eq!(
        t.daemon,
        DaemonSection {
            runtime_dir: "/tmp/zl-test".into(),
            control_socket: "/tmp/zl-test/ctl.sock".into(),
            zerolog_bin: None,
            metrics: None,
            allow_empty: false,
            state_dir: "/var/lib/zl-test".into(),
        }
    );
    let f = t.forwarder.as_ref().expect("forwarder");
    let expected = ForwarderSection {
        config: ForwarderConfig {
            curve: None,
            tcp: vec![
                "127.0.0.1:7000".parse().unwrap(),
                "[::1]:7000".parse().unwrap(),
            ],
            udp: vec!["0.0.0.0:7514".parse().unwrap()],
            relp: vec![],
            tls: vec![],
            relp_tls: vec![],
            tls_settings: None,
            publish: ep("tcp://*:7001"),
            monitor: Some(ep("ipc:///tmp/zl-test/monitor.sock")),
            framing: Framing::OctetCounted,
            max_message_size: 131072,
            topic_template: TopicTemplate::parse("{hostname}.{app}").unwrap(),
            wait_subscribers: 0,
            send_hwm: 500,
            queue_bytes: 8 << 20,
            max_connections: 100,
            idle_timeout: Some(Duration::from_secs(300)),
            udp_recv_buffer: Some(4_194_304),
            allow: vec![
                "192.0.2.0/24".parse().unwrap(),
                "198.51.100.7/32".parse().unwrap(),
            ],
            journal: Some(zerolog::journal::JournalConfig {
                dir: "/var/lib/zl-test/journal".into(),
                fsync: zerolog::journal::FsyncPolicy::Always,
                max_size: 64 << 20,
                segment_size: 8 << 20,
                ..Default::default()
            }),
            journal_endpoint: ep("ipc:///tmp/zl-test/journal.sock"),
        },
        settings: ProcessSettings {
            restart: RestartPolicy::OnFailure,
            stop_signal: Signal::SIGINT,
            stop_timeout: Duration::from_millis(2500),
            backoff: Duration::from_millis(250),
            backoff_max: Duration::from_secs(30),
            max_restarts: 3,
            min_uptime: Duration::from_millis(1500),
            env: [("LANG", "C"), ("TZ", "UTC")]
                .into_iter()
                .map(|(k, v)| (k.to_owned(), v.to_owned()))
                .collect(),
            cwd: Some("/".into()),
            user: None,
            group: None,
        },
    };
    assert_eq!(*f, expected);
    assert_eq!(
        t.receivers,
        vec![
            ReceiverSection {
                name: "nginx".into(),
                config: ReceiverConfig {
                    curve: None,
                    curve_output: None,
                    topics: vec![b"nginx".to_vec()],
                    connect: vec![ep("tcp://127.0.0.1:7001")],
                    output: ep("tcp://127.0.0.1:7200"),
                    hwm: 20,
                    queue_bytes: 1 << 20,
                    // The forwarder's is handed to it at start (not part of the section).
                    max_message_size: zerolog::framing::DEFAULT_MAX_SIZE,
                    allow: vec!["10.0.0.0/8".parse().unwrap()],
                    journal: None,
                    group: "nginx".into(),
                    delivery: Delivery::Push,
                },
                max_message_size: None,
                external_workers: false,
                delivery: None,
                settings: ProcessSettings::default(),
            },
            ReceiverSection {
                name: "rest".into(),
                config: ReceiverConfig {
                    curve: None,
                    curve_output: None,
                    topics: vec![b"".to_vec(), b"kernel".to_vec()],
                    connect: vec![
                        ep("tcp://otherhost:6001"),
                        ep("tcp://[::1]:6001"),
                        ep("ipc:///tmp/zl-test/pub.sock")
                    ],
                    output: ep("ipc:///tmp/zl-test/rest.sock"),
                    hwm: zerolog::defaults::HWM,
                    queue_bytes: zerolog::queue::DEFAULT_QUEUE_BYTES,
                    max_message_size: zerolog::framing::DEFAULT_MAX_SIZE,
                    allow: vec![],
                    journal: None,
                    group: "rest".into(),
                    delivery: Delivery::Push,
                },
                max_message_size: Some(1 << 20),
                delivery: Some(Delivery::Push),
                external_workers: false,
                settings: ProcessSettings::default(),
            },
        ]
    );
    assert_eq!(
        t.workers,
        vec![
            WorkerSection {
                name: "db".into(),
                receiver: "nginx".into(),
                kind: WorkerKind::Stdin,
                command: vec![sh(), "-c".into(), "cat > /dev/null".into()],
                numprocs: 4,
                framing: OutputFraming::Nul,
                with_seq: true,
                curve: None,
                settings: ProcessSettings {
                    stop_signal: Signal::SIGUSR1,
                    ..ProcessSettings::default()
                },
            },
            WorkerSection {
                name: "py".into(),
                receiver: "rest".into(),
                kind: WorkerKind::Zmq,
                command: vec![sh(), "-c".into(), "exec my-worker {backend}".into()],
                numprocs: 1,
                framing: OutputFraming::Lf,
                with_seq: false,
                curve: None,
                settings: ProcessSettings {
                    restart: RestartPolicy::Never,
                    ..ProcessSettings::default()
                },
            },
            WorkerSection {
                name: "archive".into(),
                receiver: "rest".into(),
                kind: WorkerKind::Stdin,
                command: vec!["file".into(), "/tmp/archive.log".into()],
                numprocs: 1,
                framing: OutputFraming::Lf,
                with_seq: false,
                curve: None,
                settings: ProcessSettings::default(),
            },
        ]
    );
}

#[test]
fn embedded_default_parses() {
    let t = Topology::embedded_default();
    assert_eq!(t.source, PathBuf::from(EMBEDDED_SOURCE));
    let runtime_dir = default_runtime_dir();
    assert_eq!(t.daemon.runtime_dir, runtime_dir);
    assert_eq!(t.daemon.control_socket, runtime_dir.join("zerologd.sock"));
    let f = t.forwarder.expect("forwarder");
    let journal = zerolog::journal::JournalConfig {
        dir: default_state_dir().join("journal"),
        ..Default::default()
    };
    let journal_endpoint = ep(&format!(
        "ipc://{}",
        runtime_dir.join("journal.sock").display()
    ));
    let want = ForwarderConfig {
        journal: Some(journal),
        journal_endpoint,
        ..ForwarderConfig::default()
    };
    assert_eq!(f.config, want);
    let settings = f.settings;
    let f = f.config;
    assert_eq!(f.tcp, vec![SocketAddr::from(([127, 0, 0, 1], 6000))]);
    assert!(f.udp.is_empty());
    assert_eq!(f.publish, ep("tcp://127.0.0.1:6001"));
    assert_eq!(f.monitor, None);
    assert_eq!(f.framing, Framing::Auto);
    assert_eq!(f.max_message_size, zerolog::framing::DEFAULT_MAX_SIZE);
    assert_eq!(f.topic_template, TopicTemplate::default());
    assert_eq!(f.send_hwm, zerolog::defaults::HWM);
    assert_eq!(settings, ProcessSettings::default());
    assert_eq!(t.receivers.len(), 1);
    assert_eq!(t.receivers[0].name, "all");
    let r = &t.receivers[0].config;
    assert!(r.topics.is_empty());
    assert_eq!(r.connect, vec![ep("tcp://127.0.0.1:6001")]);
    assert_eq!(
        r.output,
        ep(&format!("ipc://{}/all.sock", runtime_dir.display()))
    );
    assert_eq!(t.workers.len(), 1);
    let w = &t.workers[0];
    assert_eq!(w.name, "stdout");
    assert_eq!(w.receiver, "all");
    assert_eq!(w.kind, WorkerKind::Stdin);
    assert_eq!(w.command, vec!["stdout".to_owned()]);
    assert_eq!(w.numprocs, 1);
}

#[test]
fn example_file_parses() {
    let t = Topology::parse(
        include_str!("../../zerolog.toml.example"),
        Path::new("zerolog.toml.example"),
    )
    .unwrap_or_else(|e| panic!("zerolog.toml.example is invalid:\n{e}"));
    assert!(t.forwarder.is_some());
    assert_eq!(t.receivers.len(), 2);
    assert!(t.workers.len() >= 2);
}

#[test]
fn every_mistake_is_reported_with_its_line() {
    let text = r#"[zerologd]
runtime_dir = "/tmp/zl-test"

[forwarder]
tcp = ["127.0.0.1:7000", "not-an-address"]
publish = "tcp://127.0.0.1:7000"
hwm = "lots"
stop_signal = "SIGSTOP"
stop_timeout = "ten seconds"
colour = "blue"

[[receiver]]
name = "web"
topic = 5
output = "tcp://0.0.0.0:7001"

[[receiver]]
name = "web"
output = "tcp://127.0.0.1:7001"

[[worker]]
name = "db"
receiver = "nope"
command = ["no-such-program-xyz", "--flag"]
numproc = 3

[[worker]]
name = "bad name"
receiver = "web"
command = "stdout"

[[worker]]
name = "zmq"
receiver = "web"
type = "zmq"
framing = "lf"
command = ["stdout"]
numprocs = 0
restart = "sometimes"
"#;
    let errs = errors(text);
    has(
        &errs,
        5,
        "forwarder.tcp",
        "invalid address \"not-an-address\"",
    );
    has(
        &errs,
        6,
        "forwarder.publish",
        "TCP port 7000 is already bound by forwarder.tcp (line 5)",
    );
    has(
        &errs,
        7,
        "forwarder.hwm",
        "expected an integer, found a string",
    );
    has(
        &errs,
        8,
        "forwarder.stop_signal",
        "unknown stop signal \"SIGSTOP\"",
    );
    has(
        &errs,
        9,
        "forwarder.stop_timeout",
        "invalid duration \"ten seconds\"",
    );
    has(
        &errs,
        10,
        "forwarder.colour",
        "unknown key `colour` in [forwarder]",
    );
    has(
        &errs,
        14,
        "receiver \"web\".topic",
        "expected a string or a list of strings, found an integer",
    );
    has(
        &errs,
        18,
        "receiver \"web\".name",
        "duplicate name \"web\": already used by the receiver on line 13",
    );
    has(
        &errs,
        19,
        "receiver \"web\".output",
        "TCP port 7001 is already bound by receiver \"web\".output (line 15)",
    );
    has(
        &errs,
        23,
        "worker \"db\".receiver",
        "no receiver named \"nope\"; receivers: web",
    );
    has(
        &errs,
        24,
        "worker \"db\".command",
        "worker program no-such-program-xyz not found on PATH",
    );
    has(
        &errs,
        25,
        "worker \"db\".numproc",
        "unknown key `numproc` in worker \"db\"; did you mean `numprocs`?",
    );
    has(&errs, 28, "worker[1].name", "invalid name \"bad name\"");
    has(
        &errs,
        30,
        "worker[1].command",
        "expected a list of strings, found a string; write command = [\"stdout\"]",
    );
    has(&errs, 36, "worker \"zmq\".framing", "stdin workers only");
    has(
        &errs,
        37,
        "worker \"zmq\".command",
        "worker program stdout not found",
    );
    has(
        &errs,
        38,
        "worker \"zmq\".numprocs",
        "must be between 1 and 1024, found 0",
    );
    has(
        &errs,
        39,
        "worker \"zmq\".restart",
        "unknown restart policy \"sometimes\"",
    );
    assert_eq!(errs.len(), 18, "{}", ConfigErrors(errs.clone()));
    // In line order, each rendered as file:line: key: message.
    assert!(errs.windows(2).all(|w| w[0].line <= w[1].line));
    assert_eq!(
        errs[0].to_string(),
        "test.toml:5: forwarder.tcp: invalid address \"not-an-address\": expected IP:PORT, e.g. 127.0.0.1:6000 or [::1]:6000"
    );
}

#[test]
fn more_mistakes() {
    let text = r#"runtime_dir = "/tmp"
[zerologd]
runtime_dir = "relative/dir"
zerolog_bin = "/no/such/zerolog"

[forwarder]
udp = ["127.0.0.1:7514"]
monitor = "tcp://127.0.0.1:7514"
framing = "crlf"
topic_template = "{nope}"
max_message_size = 0
restart_backoff = "20s"
env = { A = 1 }
cwd = "/no/such/dir"
user = "no-such-user-xyz"
group = "no-such-group-xyz"

[receiver]
name = "x"
"#;
    let errs = errors(text);
    has(
        &errs,
        1,
        "runtime_dir",
        "unknown section `runtime_dir`; `runtime_dir` belongs in [zerologd]",
    );
    has(&errs, 3, "zerologd.runtime_dir", "must be an absolute path");
    has(
        &errs,
        4,
        "zerologd.zerolog_bin",
        "no executable zerolog binary",
    );
    has(&errs, 9, "forwarder.framing", "unknown framing 'crlf'");
    has(
        &errs,
        10,
        "forwarder.topic_template",
        "unknown field '{nope}'",
    );
    has(
        &errs,
        11,
        "forwarder.max_message_size",
        "must be between 1 and 1073741824",
    );
    has(
        &errs,
        12,
        "forwarder.restart_backoff",
        "longer than restart_backoff_max",
    );
    has(
        &errs,
        13,
        "forwarder.env.A",
        "expected a string, found an integer",
    );
    has(&errs, 14, "forwarder.cwd", "no directory");
    has(&errs, 15, "forwarder.user", "no user named");
    has(&errs, 16, "forwarder.group", "no group named");
    has(
        &errs,
        18,
        "receiver",
        "write [[receiver]] (double brackets)",
    );
    // UDP and TCP ports are separate namespaces.
    assert!(
        !errs.iter().any(|e| e.key == "forwarder.monitor"),
        "{}",
        ConfigErrors(errs.clone())
    );
    assert_eq!(errs.len(), 12, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn wildcard_addresses_clash_with_any_address() {
    let text = r#"[zerologd]
runtime_dir = "/tmp/zl-test"
[forwarder]
tcp = ["0.0.0.0:7000", "[::]:7002"]
publish = "tcp://127.0.0.1:7000"
monitor = "tcp://192.0.2.1:7002"
[[receiver]]
name = "a"
[[receiver]]
name = "b"
output = "tcp://127.0.0.2:7100"
[[receiver]]
name = "c"
output = "tcp://127.0.0.3:7100"
[[receiver]]
name = "d"
output = "ipc:///tmp/zl-test/a.sock"
[[worker]]
name = "wa"
receiver = "a"
command = ["null"]
[[worker]]
name = "wb"
receiver = "b"
command = ["null"]
[[worker]]
name = "wc"
receiver = "c"
command = ["null"]
[[worker]]
name = "wd"
receiver = "d"
command = ["null"]
"#;
    let errs = errors(text);
    has(
        &errs,
        5,
        "forwarder.publish",
        "TCP port 7000 is already bound by forwarder.tcp (line 4)",
    );
    has(
        &errs,
        6,
        "forwarder.monitor",
        "TCP port 7002 is already bound by forwarder.tcp (line 4)",
    );
    has(
        &errs,
        17,
        "receiver \"d\".output",
        "ipc path /tmp/zl-test/a.sock is already bound by receiver \"a\".output (line 7)",
    );
    // Different specific addresses on the same port do not clash.
    assert_eq!(errs.len(), 3, "{}", ConfigErrors(errs.clone()));
}

#[test]
fn syntax_error_has_its_line() {
    let errs = errors("[forwarder]\ntcp = [\"127.0.0.1:6000\"]\npublish = \"tcp://x:1\nhwm = 3\n");
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    assert_eq!(errs[0].line, 3);
    assert_eq!(errs[0].key, "syntax error");
    assert!(!errs[0].message.is_empty());

    let errs = errors("[[worker]]\nname = \"a\"\nname = \"b\"\n");
    assert_eq!(errs.len(), 1);
    assert_eq!(errs[0].line, 3, "{}", errs[0]);
}

#[test]
fn forwarderless_topology_connects_to_remote_forwarders() {
    let text = r#"
[zerologd]
runtime_dir = "/tmp/zl-test"

[[receiver]]
name = "edge"
connect = ["log1.example.com:6001", "tcp://10.0.0.2:6001"]

[[receiver]]
name = "orphan"
external_workers = true

[[worker]]
name = "out"
receiver = "edge"
command = ["null"]
"#;
    let errs = errors(text);
    has(&errs, 9, "receiver \"orphan\".connect", "no [forwarder]");
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));

    let valid = text.replace(
        "name = \"orphan\"",
        "name = \"orphan\"\nconnect = \"log2:6001\"",
    );
    let t = parse(&valid).unwrap_or_else(|e| panic!("{e}"));
    assert!(t.forwarder.is_none());
    assert_eq!(
        t.receivers[0].config.connect,
        vec![ep("tcp://log1.example.com:6001"), ep("tcp://10.0.0.2:6001")]
    );
    assert_eq!(t.receivers[1].config.connect, vec![ep("tcp://log2:6001")]);
    assert_eq!(
        t.receivers[0].config.output,
        ep("ipc:///tmp/zl-test/edge.sock")
    );
}

#[test]
fn commands_are_checked() {
    let check = |cmd: &[&str], kind, cwd: Option<&str>| {
        let cmd: Vec<String> = cmd.iter().map(|s| s.to_string()).collect();
        check_command(&cmd, kind, cwd.map(Path::new))
    };
    assert!(check(&["stdout"], WorkerKind::Stdin, None).is_ok());
    assert!(check(&["null"], WorkerKind::Stdin, None).is_ok());
    assert!(check(&["stdout", "x"], WorkerKind::Stdin, None).is_err());
    assert!(check(&["file"], WorkerKind::Stdin, None).is_err());
    assert!(check(&["file", "/tmp/x.log"], WorkerKind::Stdin, None).is_ok());
    assert!(check(&["file", "/no/such/dir/x.log"], WorkerKind::Stdin, None).is_err());
    assert!(check(&["sh", "-c", "true"], WorkerKind::Stdin, None).is_ok());
    assert!(check(&["sh", "{backend}"], WorkerKind::Zmq, None).is_ok());
    assert!(check(&["no-such-program-xyz"], WorkerKind::Zmq, None).is_err());
    assert!(check(&[], WorkerKind::Stdin, None).is_err());
    // A relative path is resolved against the worker's cwd.
    assert!(check(&["bin/sh"], WorkerKind::Stdin, Some("/")).is_ok());
    assert!(check(&["./sh"], WorkerKind::Stdin, Some("/bin")).is_ok());
    assert!(check(&["./no-such-program-xyz"], WorkerKind::Stdin, Some("/bin")).is_err());
}

#[test]
fn read_error_has_line_zero() {
    let e = Topology::load(Path::new("/no/such/zerolog.toml")).unwrap_err();
    assert_eq!(e.0.len(), 1);
    assert_eq!(e.0[0].line, 0);
    assert!(
        e.to_string()
            .starts_with("/no/such/zerolog.toml: cannot read"),
        "{e}"
    );
}

#[test]
fn suggestions() {
    assert_eq!(
        suggest("numproc", WORKER_KEYS.iter().copied()),
        Some("numprocs")
    );
    assert_eq!(
        suggest("recevier", SECTIONS.iter().copied()),
        Some("receiver")
    );
    assert_eq!(suggest("zzz", SECTIONS.iter().copied()), None);
    assert_eq!(edit_distance("kitten", "sitting"), 3);
}

#[test]
fn a_topology_that_runs_nothing_is_refused_unless_on_purpose() {
    for text in ["", "# nothing\n", "[zerologd]\nruntime_dir = \"/tmp/zl\"\n"] {
        let errs = errors(text);
        has(&errs, 1, "", "the topology runs nothing");
        has(&errs, 1, "", "allow_empty = true");
    }
    let t = parse("[zerologd]\nallow_empty = true\n").unwrap();
    assert!(t.daemon.allow_empty && t.forwarder.is_none() && t.workers.is_empty());
    has(
        &errors("[zerologd]\nallow_empty = 1\n"),
        2,
        "zerologd.allow_empty",
        "true or false",
    );
}

#[test]
fn names_are_limited_in_length() {
    let name = "n".repeat(65);
    let errs = errors(&format!("[forwarder]\n[[receiver]]\nname = \"{name}\"\n"));
    has(&errs, 3, "receiver[0].name", "at most 64");
    let name = "n".repeat(64);
    parse(&format!(
        "[forwarder]\n[[receiver]]\nname = \"{name}\"\nexternal_workers = true\n"
    ))
    .unwrap();
}

#[test]
fn a_receiver_without_workers_is_refused_unless_they_run_elsewhere() {
    let text = "[forwarder]\n\n[[receiver]]\nname = \"lonely\"\n\n[[receiver]]\nname = \"all\"\n\n\
                [[worker]]\nname = \"w\"\nreceiver = \"all\"\ncommand = [\"null\"]\n";
    let errs = errors(text);
    has(&errs, 4, "receiver \"lonely\".name", "has no [[worker]]");
    has(
        &errs,
        4,
        "receiver \"lonely\".name",
        "external_workers = true",
    );
    assert_eq!(errs.len(), 1, "{}", ConfigErrors(errs.clone()));
    let t = parse(&text.replace("\"lonely\"\n", "\"lonely\"\nexternal_workers = true\n")).unwrap();
    assert!(t.receivers[0].external_workers && !t.receivers[1].external_workers);
}

#[test]
fn a_queue_budget_out_of_range_is_refused() {
    let errs = errors("[forwarder]\nqueue_bytes = 1000\n[[receiver]]\nname = \"r\"\nexternal_workers = true\nqueue_bytes = 1e12\nmax_message_size = 0\n");
    has(
        &errs,
        2,
        "forwarder.queue_bytes",
        "must be between 1048576 and 4294967296, found 1000",
    );
    has(
        &errs,
        6,
        "receiver \"r\".queue_bytes",
        "expected an integer",
    );
    has(
        &errs,
        7,
        "receiver \"r\".max_message_size",
        "must be between 1 and 1073741824, found 0",
    );
}
