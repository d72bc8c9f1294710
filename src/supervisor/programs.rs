//! From a topology to the processes that run it: the command line of each element.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use crate::supervisor::state::{ProgramSpec, Tier};
use crate::topology::{
    ForwarderSection, ProcessSettings, ReceiverSection, Topology, WorkerKind, WorkerSection,
};
use zerolog::delivery::Delivery;
use zerolog::element::ElementConfig;
use zerolog::forwarder::ForwarderConfig;
use zerolog::journal::JournalConfig;
use zerolog::receiver::ReceiverConfig;
use zerolog::worker::{Receive, WorkerConfig, DELIVERY_ENV, MAX_MESSAGE_SIZE_ENV, QUEUE_BYTES_ENV};

/// Finds the `zerolog` binary: the configured path, else next to this executable, else PATH.
pub fn zerolog_binary(configured: Option<&Path>) -> PathBuf {
    if let Some(p) = configured {
        return p.to_path_buf();
    }
    if let Some(sibling) = std::env::current_exe()
        .ok()
        .and_then(|exe| exe.parent().map(|d| d.join("zerolog")))
        .filter(|p| p.is_file())
    {
        return sibling;
    }
    PathBuf::from("zerolog")
}

/// Where zerologd writes the configuration of program `name`.
fn config_path(topology: &Topology, name: &str) -> PathBuf {
    topology
        .daemon
        .runtime_dir
        .join("config")
        .join(format!("{name}.json"))
}

fn base_env(settings: &ProcessSettings, name: &str) -> BTreeMap<String, String> {
    let mut env = settings.env.clone();
    env.insert("ZEROLOG_SUPERVISED".into(), "1".into());
    env.insert("ZEROLOG_PROGRAM".into(), name.into());
    env
}

/// One of zerolog's elements, run as `zerolog ELEMENT --config FILE`.
fn element(
    topology: &Topology,
    bin: &str,
    (name, tier): (&str, Tier),
    config: ElementConfig,
    settings: &ProcessSettings,
) -> ProgramSpec {
    let path = config_path(topology, name);
    let argv = vec![
        bin.to_string(),
        config.element().into(),
        "--config".into(),
        path.display().to_string(),
    ];
    ProgramSpec {
        name: name.into(),
        group: name.into(),
        tier,
        argv,
        env: base_env(settings, name),
        settings: settings.clone(),
        config: Some((config, path)),
        upstream: None,
        notifies: true,
    }
}

/// The processes of a topology: zerolog's elements run as `zerolog ELEMENT --config FILE`
/// (the file written at spawn from [`ProgramSpec::config`]), `type = "zmq"` workers as their
/// own command.
pub fn program_specs(topology: &Topology, zerolog: &Path) -> Vec<ProgramSpec> {
    let bin = zerolog.display().to_string();
    let mut specs = Vec::new();
    if let Some(f) = &topology.forwarder {
        // One subscription per topic of each receiver that subscribes to this forwarder
        // rather than fetching from its journal.
        let (journaled, subscribing): (Vec<_>, Vec<_>) = topology
            .receivers
            .iter()
            .filter(|r| subscribes_to(r, f))
            .partition(|_| f.config.journal.is_some());
        let expected: usize = subscribing
            .iter()
            .map(|r| r.config.topics.len().max(1))
            .sum();
        let journal = f.config.journal.clone().map(|j| JournalConfig {
            consumers: journaled.iter().map(|r| r.name.clone()).collect(),
            ..j
        });
        let config = ElementConfig::Forwarder(ForwarderConfig {
            wait_subscribers: expected,
            journal,
            ..f.config.clone()
        });
        let id = ("forwarder", Tier::Forwarder);
        specs.push(element(topology, &bin, id, config, &f.settings));
    }
    for r in &topology.receivers {
        let config = ElementConfig::Receiver(receiver_config(topology, r));
        let id = (r.name.as_str(), Tier::Receiver);
        specs.push(element(topology, &bin, id, config, &r.settings));
    }
    for w in &topology.workers {
        specs.extend(worker_specs(topology, &bin, w));
    }
    specs
}

/// A receiver's configuration, with the longest message its publishers send (it sizes the
/// receiving queue): its own key, else the local forwarder's when it subscribes to it.
/// A receiver of the local forwarder fetches from its journal (when it has one); any other
/// subscribes, and then hands out with PUSH.
fn receiver_config(topology: &Topology, r: &ReceiverSection) -> ReceiverConfig {
    let local = topology.forwarder.as_ref().filter(|f| subscribes_to(r, f));
    let journal = local
        .filter(|f| f.config.journal.is_some())
        .map(|f| f.config.journal_endpoint.connect_target());
    let delivery = match journal {
        Some(_) => topology.delivery(r),
        None => Delivery::Push,
    };
    ReceiverConfig {
        max_message_size: r
            .max_message_size
            .or(local.map(|f| f.config.max_message_size))
            .unwrap_or(r.config.max_message_size),
        journal,
        delivery,
        ..r.config.clone()
    }
}

/// Whether receiver `r` subscribes to the forwarder `f`.
fn subscribes_to(r: &ReceiverSection, f: &ForwarderSection) -> bool {
    r.config
        .connect
        .iter()
        .any(|c| c.reaches(&f.config.publish))
}

/// The `numprocs` processes of a worker entry.
fn worker_specs(topology: &Topology, bin: &str, w: &WorkerSection) -> Vec<ProgramSpec> {
    let Some(section) = topology.receivers.iter().find(|r| r.name == w.receiver) else {
        return Vec::new();
    };
    let receiver = receiver_config(topology, section);
    let backend = receiver.output.connect_target();
    (0..w.numprocs)
        .map(|i| {
            let name = format!("{}:{i}", w.name);
            let mut spec = match w.kind {
                WorkerKind::Stdin => {
                    let config = ElementConfig::Worker(WorkerConfig {
                        backend: backend.clone(),
                        command: w.command.clone(),
                        directory: None,
                        framing: w.framing,
                        receive: Receive::Frame,
                        queue_bytes: receiver.queue_bytes,
                        max_message_size: receiver.max_message_size,
                        delivery: receiver.delivery,
                        with_seq: w.with_seq,
                        curve: w.curve.clone(),
                    });
                    element(topology, bin, (&name, Tier::Worker), config, &w.settings)
                }
                // A program of the operator's may notify, but need not.
                WorkerKind::Zmq => ProgramSpec {
                    name: name.clone(),
                    group: String::new(),
                    tier: Tier::Worker,
                    argv: w
                        .command
                        .iter()
                        .map(|a| a.replace("{backend}", &backend.to_string()))
                        .collect(),
                    env: base_env(&w.settings, &name),
                    settings: w.settings.clone(),
                    config: None,
                    upstream: None,
                    notifies: false,
                },
            };
            spec.group = w.name.clone();
            // Pausing the receiver while a worker leaves matters only for PUSH: with
            // acknowledgements, a leaving worker takes nothing new and what it did not
            // acknowledge goes to the others.
            spec.upstream = (receiver.delivery == Delivery::Push).then(|| section.name.clone());
            spec.env
                .insert("ZEROLOG_BACKEND".into(), backend.to_string());
            // For the library's runner in a program of the operator's (the built-in worker
            // reads the same in its configuration).
            let queue = [
                (QUEUE_BYTES_ENV, receiver.queue_bytes),
                (MAX_MESSAGE_SIZE_ENV, receiver.max_message_size),
            ];
            spec.env
                .extend(queue.map(|(k, v)| (k.to_string(), v.to_string())));
            spec.env.insert("ZEROLOG_PROCESS_NUM".into(), i.to_string());
            spec.env
                .insert(DELIVERY_ENV.into(), receiver.delivery.to_string());
            spec
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::time::Duration;
    use zerolog::endpoint::Endpoint;

    fn ep(s: &str) -> Endpoint {
        s.parse().unwrap()
    }

    fn specs(text: &str) -> Vec<ProgramSpec> {
        let t = Topology::parse(text, Path::new("zerolog.toml")).unwrap();
        program_specs(&t, Path::new("/usr/bin/zerolog"))
    }

    /// What each element is handed, read back as the child reads its file.
    fn received(specs: &[ProgramSpec]) -> Vec<(String, Option<ElementConfig>)> {
        specs
            .iter()
            .map(|s| {
                let config = s.config.as_ref().map(|(c, path)| {
                    assert_eq!(
                        s.argv[2..],
                        ["--config".to_string(), path.display().to_string()]
                    );
                    ElementConfig::from_json(&c.to_json()).expect("the child reads it")
                });
                (s.name.clone(), config)
            })
            .collect()
    }

    fn forwarder(specs: &[ProgramSpec]) -> ForwarderConfig {
        match &received(specs)[0].1 {
            Some(ElementConfig::Forwarder(f)) => f.clone(),
            other => panic!("not a forwarder: {other:?}"),
        }
    }

    /// Every key of every element section, set to something other than its default, reaches the
    /// element: a renamed or dropped option fails here, not at a production start. The expected
    /// configurations name every field, so a new field must be added here too.
    #[test]
    fn every_option_of_every_section_reaches_its_element() {
        let specs = specs(
            r#"
[zerologd]
runtime_dir = "/run/zl-test"
state_dir = "/var/lib/zl-test"

[forwarder]
tcp = ["127.0.0.1:7000", "[::1]:7000"]
udp = ["127.0.0.1:7514"]
relp = ["127.0.0.1:7515"]
publish = "tcp://*:7001"
monitor = "ipc:///run/zl-test/monitor.sock"
framing = "octet-counted"
max_message_size = 1000
topic_template = "{hostname}.{app}"
hwm = 77
queue_bytes = 2000000
max_connections = 12
idle_timeout = "1500ms"
udp_recv_buffer = 65536
allow = ["10.0.0.0/8", "127.0.0.1"]
fsync = "always"
fsync_interval = "200ms"
journal_max_size = 67108864
journal_endpoint = "ipc:///run/zl-test/j.sock"

[[receiver]]
name = "web"
topic = ["nginx", "apache"]
connect = ["localhost:7001", "ipc:///run/zl-test/other.sock"]
output = "tcp://0.0.0.0:7200"
hwm = 55
queue_bytes = 3000000
allow = ["192.168.0.0/16"]
delivery = "acked"

[[worker]]
name = "out"
receiver = "web"
command = ["file", "/var/log/zl-test.log"]
numprocs = 2
framing = "nul"
with_seq = true

[[worker]]
name = "own"
receiver = "web"
type = "zmq"
command = ["/bin/true", "--from", "{backend}"]
"#,
        );
        let net = |s: &str| s.parse::<ipnet::IpNet>().unwrap();
        let want_forwarder = ForwarderConfig {
            curve: None,
            tcp: vec![
                "127.0.0.1:7000".parse().unwrap(),
                "[::1]:7000".parse().unwrap(),
            ],
            udp: vec!["127.0.0.1:7514".parse().unwrap()],
            relp: vec!["127.0.0.1:7515".parse().unwrap()],
            tls: vec![],
            relp_tls: vec![],
            tls_settings: None,
            publish: ep("tcp://*:7001"),
            monitor: Some(ep("ipc:///run/zl-test/monitor.sock")),
            framing: zerolog::framing::Framing::OctetCounted,
            max_message_size: 1000,
            topic_template: "{hostname}.{app}".parse().unwrap(),
            // Its one receiver fetches from the journal: no subscription to wait for.
            wait_subscribers: 0,
            send_hwm: 77,
            queue_bytes: 2_000_000,
            max_connections: 12,
            idle_timeout: Some(Duration::from_millis(1500)),
            udp_recv_buffer: Some(65536),
            allow: vec![net("10.0.0.0/8"), net("127.0.0.1/32")],
            journal: Some(JournalConfig {
                dir: "/var/lib/zl-test/journal".into(),
                fsync: zerolog::journal::FsyncPolicy::Always,
                fsync_interval_ms: 200,
                max_size: 64 << 20,
                segment_size: 8 << 20,
                consumers: vec!["web".into()],
            }),
            journal_endpoint: ep("ipc:///run/zl-test/j.sock"),
        };
        let want_receiver = ReceiverConfig {
            curve: None,
            curve_output: None,
            connect: vec![
                ep("tcp://localhost:7001"),
                ep("ipc:///run/zl-test/other.sock"),
            ],
            topics: vec![b"nginx".to_vec(), b"apache".to_vec()],
            output: ep("tcp://0.0.0.0:7200"),
            hwm: 55,
            queue_bytes: 3_000_000,
            // The forwarder's, as the receiver subscribes to it.
            max_message_size: 1000,
            allow: vec![net("192.168.0.0/16")],
            journal: Some(ep("ipc:///run/zl-test/j.sock")),
            group: "web".into(),
            delivery: Delivery::Acked,
        };
        let want_worker = WorkerConfig {
            backend: ep("tcp://127.0.0.1:7200"),
            command: vec!["file".into(), "/var/log/zl-test.log".into()],
            directory: None,
            framing: zerolog::worker::OutputFraming::Nul,
            receive: Receive::Frame,
            // The receiver's budget, the forwarder's longest message.
            queue_bytes: 3_000_000,
            max_message_size: 1000,
            delivery: Delivery::Acked,
            with_seq: true,
            curve: None,
        };
        assert_eq!(
            received(&specs),
            vec![
                (
                    "forwarder".into(),
                    Some(ElementConfig::Forwarder(want_forwarder))
                ),
                ("web".into(), Some(ElementConfig::Receiver(want_receiver))),
                (
                    "out:0".into(),
                    Some(ElementConfig::Worker(want_worker.clone()))
                ),
                ("out:1".into(), Some(ElementConfig::Worker(want_worker))),
                ("own:0".into(), None),
            ]
        );
        assert_eq!(
            specs[0].config.as_ref().unwrap().1,
            Path::new("/run/zl-test/config/forwarder.json")
        );
        assert_eq!(specs[0].argv[..2], ["/usr/bin/zerolog", "forwarder"]);
        let own = &specs[4];
        assert_eq!(own.argv, ["/bin/true", "--from", "tcp://127.0.0.1:7200"]);
        assert_eq!(own.env["ZEROLOG_BACKEND"], "tcp://127.0.0.1:7200");
        assert_eq!(own.env[QUEUE_BYTES_ENV], "3000000");
        assert_eq!(own.env[MAX_MESSAGE_SIZE_ENV], "1000");
        assert!(!own.notifies && specs[2].notifies);
    }

    /// The longest message a receiver expects: its own key, else the local forwarder's when it
    /// subscribes to it, else the default; its workers are told the same.
    #[test]
    fn a_receivers_max_message_size_is_its_key_or_its_forwarders() {
        let specs = specs(
            "[forwarder]\npublish = \"tcp://127.0.0.1:7001\"\nmax_message_size = 1000\n\
             [[receiver]]\nname = \"local\"\nexternal_workers = true\n\
             [[receiver]]\nname = \"keyed\"\nmax_message_size = 2000000\n\
             [[receiver]]\nname = \"foreign\"\nexternal_workers = true\nconnect = \"tcp://10.0.0.1:6001\"\n\
             [[worker]]\nname = \"w\"\nreceiver = \"keyed\"\ncommand = [\"null\"]\n",
        );
        let sizes: Vec<(String, usize)> = received(&specs)
            .into_iter()
            .filter_map(|(name, c)| match c {
                Some(ElementConfig::Receiver(r)) => Some((name, r.max_message_size)),
                Some(ElementConfig::Worker(w)) => Some((name, w.max_message_size)),
                _ => None,
            })
            .collect();
        let want = [
            ("local", 1000),
            ("keyed", 2_000_000),
            ("foreign", zerolog::framing::DEFAULT_MAX_SIZE),
            ("w:0", 2_000_000),
        ];
        assert_eq!(
            sizes,
            want.map(|(n, s)| (n.to_string(), s)).to_vec(),
            "{sizes:?}"
        );
    }

    #[test]
    fn a_receiver_connecting_to_localhost_counts_as_a_subscriber() {
        let specs = specs(
            "[forwarder]\njournal = false\npublish = \"tcp://127.0.0.1:7001\"\n\
             [[receiver]]\nname = \"r\"\nexternal_workers = true\nconnect = [\"localhost:7001\"]\n\
             [[receiver]]\nname = \"any\"\nexternal_workers = true\nconnect = [\"tcp://127.0.0.1:7001\"]\n\
             [[receiver]]\nname = \"elsewhere\"\nexternal_workers = true\nconnect = [\"tcp://localhost:7002\"]\n",
        );
        assert_eq!(forwarder(&specs).wait_subscribers, 2);
    }

    #[test]
    fn workers_of_a_wildcard_receiver_connect_to_loopback() {
        let specs = specs(
            "[forwarder]\n[[receiver]]\nname = \"r\"\nexternal_workers = true\noutput = \"tcp://0.0.0.0:7200\"\n\
             [[worker]]\nname = \"w\"\nreceiver = \"r\"\ncommand = [\"null\"]\n",
        );
        let w = specs.iter().find(|s| s.name == "w:0").unwrap();
        assert_eq!(w.env["ZEROLOG_BACKEND"], "tcp://127.0.0.1:7200");
    }

    #[test]
    fn default_topology() {
        let t = Topology::embedded_default();
        let specs = program_specs(&t, Path::new("/usr/bin/zerolog"));
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["forwarder", "all", "stdout:0"]);
        let f = forwarder(&specs);
        // Its receiver fetches from the journal: no subscription to wait for, one consumer.
        assert_eq!(f.wait_subscribers, 0);
        let journal = f.journal.as_ref().expect("a journal");
        assert_eq!(journal.consumers, ["all"]);
        assert_eq!(journal.dir, t.daemon.state_dir.join("journal"));
        assert_eq!(f.tcp, ["127.0.0.1:6000".parse().unwrap()]);
        let Some(ElementConfig::Worker(w)) = &received(&specs)[2].1 else {
            panic!("stdout:0 is no worker");
        };
        assert!(w
            .backend
            .ipc_path()
            .is_some_and(|p| p.ends_with("all.sock")));
        assert_eq!(w.command, ["stdout"]);
    }

    #[test]
    fn a_receiver_of_an_ipc_publisher_connects_there() {
        let specs = specs(
            "[forwarder]\njournal = false\npublish = \"ipc:///run/zl/pub.sock\"\n\
             [[receiver]]\nname = \"r\"\nexternal_workers = true\n\
             [[receiver]]\nname = \"two\"\nexternal_workers = true\nconnect = [\"ipc:///run/zl/pub.sock\", \"tcp://10.0.0.2:6001\"]\n",
        );
        assert_eq!(forwarder(&specs).wait_subscribers, 2);
        let connect = |i: usize| match &received(&specs)[i].1 {
            Some(ElementConfig::Receiver(r)) => r.connect.clone(),
            other => panic!("{other:?}"),
        };
        assert_eq!(connect(1), [ep("ipc:///run/zl/pub.sock")]);
        assert_eq!(
            connect(2),
            [ep("ipc:///run/zl/pub.sock"), ep("tcp://10.0.0.2:6001")]
        );
    }

    #[test]
    fn a_changed_subscription_count_alone_is_the_same_program() {
        let one =
            "[forwarder]\njournal = false\n[[receiver]]\nname = \"a\"\nexternal_workers = true\n";
        let two = "[forwarder]\njournal = false\n[[receiver]]\nname = \"a\"\nexternal_workers = true\n[[receiver]]\nname = \"b\"\nexternal_workers = true\n";
        let (a, b) = (specs(one), specs(two));
        assert_ne!(
            forwarder(&a).wait_subscribers,
            forwarder(&b).wait_subscribers
        );
        assert!(a[0].same_program(&b[0]));
        let hwm =
            specs("[forwarder]\njournal = false\nhwm = 5\n[[receiver]]\nname = \"a\"\nexternal_workers = true\n");
        assert!(!a[0].same_program(&hwm[0]));
    }
}
