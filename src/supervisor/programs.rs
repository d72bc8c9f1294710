//! From a topology to the processes that run it: the command line of each element.

use std::path::{Path, PathBuf};

use crate::endpoint::Endpoint;
use crate::supervisor::state::{ProgramSpec, Tier};
use crate::topology::{Topology, WorkerKind};

/// A host as a command-line argument: an IPv6 address without its brackets.
fn bare_host(host: &crate::endpoint::Host) -> String {
    match host {
        crate::endpoint::Host::Ip(ip) => ip.to_string(),
        other => other.to_string(),
    }
}

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

/// The processes of a topology, with their command lines.
pub fn program_specs(topology: &Topology, zerolog: &Path) -> Vec<ProgramSpec> {
    let bin = zerolog.display().to_string();
    let mut specs = Vec::new();
    let base_env = |settings: &crate::topology::ProcessSettings, name: &str| {
        let mut env = settings.env.clone();
        env.insert("ZEROLOG_SUPERVISED".into(), "1".into());
        env.insert("ZEROLOG_PROGRAM".into(), name.into());
        env
    };

    if let Some(f) = &topology.forwarder {
        let mut argv = vec![bin.clone(), "forwarder".into()];
        for a in &f.tcp {
            argv.extend(["--listen".into(), a.to_string()]);
        }
        for a in &f.udp {
            argv.extend(["--listen-udp".into(), a.to_string()]);
        }
        argv.extend(["--publish-endpoint".into(), f.publish.to_string()]);
        if let Some(m) = &f.monitor {
            argv.extend(["--monitor-endpoint".into(), m.to_string()]);
        }
        argv.extend([
            "--framing".into(),
            f.framing.to_string(),
            "--max-message-size".into(),
            f.max_message_size.to_string(),
            "--topic-template".into(),
            f.topic_template.to_string(),
            "--hwm".into(),
            f.hwm.to_string(),
            "--max-connections".into(),
            f.max_connections.to_string(),
            "--idle-timeout".into(),
            f.idle_timeout.map_or(0, |d| d.as_secs().max(1)).to_string(),
        ]);
        if let Some(size) = f.udp_recv_buffer {
            argv.extend(["--udp-recv-buffer".into(), size.to_string()]);
        }
        for net in &f.allow {
            argv.extend(["--allow".into(), net.to_string()]);
        }
        // One subscription per topic of each receiver that connects to this forwarder.
        let expected: usize = topology
            .receivers
            .iter()
            .filter(|r| r.connect.iter().any(|c| c.reaches(&f.publish)))
            .map(|r| r.topics.len().max(1))
            .sum();
        specs.push(ProgramSpec {
            name: "forwarder".into(),
            group: "forwarder".into(),
            tier: Tier::Forwarder,
            argv,
            env: base_env(&f.settings, "forwarder"),
            settings: f.settings.clone(),
            startup_args: vec!["--wait-subscribers".into(), expected.to_string()],
            upstream: None,
            notifies: true,
        });
    }

    for r in &topology.receivers {
        let mut argv = vec![bin.clone(), "receiver".into()];
        for t in &r.topics {
            argv.extend(["-t".into(), t.clone()]);
        }
        argv.extend(["--hwm".into(), r.hwm.to_string()]);
        for net in &r.allow {
            argv.extend(["--allow".into(), net.to_string()]);
        }
        match &r.output {
            Endpoint::Ipc(path) => {
                argv.extend(["--output-socket".into(), path.display().to_string()]);
            }
            Endpoint::Tcp { host, port } => {
                argv.extend([
                    "--bind".into(),
                    bare_host(host),
                    "--output-port".into(),
                    port.to_string(),
                ]);
            }
        }
        // A first TCP publisher goes as zerolog 0.3's `ADDRESS PORT`; any other (an ipc://
        // one), and every further one, as --connect.
        let first = r.connect.first().and_then(|c| match c {
            Endpoint::Tcp { host, port } => Some((bare_host(host), *port)),
            Endpoint::Ipc(_) => None,
        });
        let skip = usize::from(first.is_some());
        for extra in &r.connect[skip..] {
            argv.extend(["--connect".into(), extra.to_string()]);
        }
        if let Some((host, port)) = first {
            argv.extend([host, port.to_string()]);
        }
        specs.push(ProgramSpec {
            name: r.name.clone(),
            group: r.name.clone(),
            tier: Tier::Receiver,
            argv,
            env: base_env(&r.settings, &r.name),
            settings: r.settings.clone(),
            startup_args: vec![],
            upstream: None,
            notifies: true,
        });
    }

    for w in &topology.workers {
        let Some(receiver) = topology.receivers.iter().find(|r| r.name == w.receiver) else {
            continue;
        };
        let backend = receiver.output.connect_target().to_string();
        for i in 0..w.numprocs {
            let name = format!("{}:{i}", w.name);
            let mut env = base_env(&w.settings, &name);
            env.insert("ZEROLOG_BACKEND".into(), backend.clone());
            env.insert("ZEROLOG_PROCESS_NUM".into(), i.to_string());
            let argv = match w.kind {
                WorkerKind::Stdin => {
                    let mut argv = vec![
                        bin.clone(),
                        "worker".into(),
                        "--framing".into(),
                        w.framing.to_string(),
                        backend.clone(),
                    ];
                    argv.extend(w.command.iter().cloned());
                    argv
                }
                WorkerKind::Zmq => w
                    .command
                    .iter()
                    .map(|a| a.replace("{backend}", &backend))
                    .collect(),
            };
            specs.push(ProgramSpec {
                name,
                group: w.name.clone(),
                tier: Tier::Worker,
                argv,
                env,
                settings: w.settings.clone(),
                startup_args: vec![],
                upstream: Some(receiver.name.clone()),
                // A program of the operator's may notify, but need not.
                notifies: w.kind == WorkerKind::Stdin,
            });
        }
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_receiver_connecting_to_localhost_counts_as_a_subscriber() {
        let t = Topology::parse(
            "[forwarder]\npublish = \"tcp://127.0.0.1:7001\"\n\
             [[receiver]]\nname = \"r\"\nconnect = [\"localhost:7001\"]\n\
             [[receiver]]\nname = \"any\"\nconnect = [\"tcp://127.0.0.1:7001\"]\n\
             [[receiver]]\nname = \"elsewhere\"\nconnect = [\"tcp://localhost:7002\"]\n",
            Path::new("zerolog.toml"),
        )
        .unwrap();
        let specs = program_specs(&t, Path::new("/usr/bin/zerolog"));
        assert_eq!(specs[0].startup_args, vec!["--wait-subscribers", "2"]);
    }

    #[test]
    fn workers_of_a_wildcard_receiver_connect_to_loopback() {
        let t = Topology::parse(
            "[forwarder]\n[[receiver]]\nname = \"r\"\noutput = \"tcp://0.0.0.0:7200\"\n\
             [[worker]]\nname = \"w\"\nreceiver = \"r\"\ncommand = [\"null\"]\n",
            Path::new("zerolog.toml"),
        )
        .unwrap();
        let specs = program_specs(&t, Path::new("/usr/bin/zerolog"));
        let w = specs.iter().find(|s| s.name == "w:0").unwrap();
        assert_eq!(w.env["ZEROLOG_BACKEND"], "tcp://127.0.0.1:7200");
        let r = specs.iter().find(|s| s.name == "r").unwrap();
        assert!(r.argv.windows(2).any(|a| a == ["--bind", "0.0.0.0"]));
    }

    #[test]
    fn default_topology_command_lines() {
        let t = Topology::embedded_default();
        let specs = program_specs(&t, Path::new("/usr/bin/zerolog"));
        let names: Vec<&str> = specs.iter().map(|s| s.name.as_str()).collect();
        assert_eq!(names, vec!["forwarder", "all", "stdout:0"]);
        let fwd = &specs[0];
        assert_eq!(fwd.startup_args, vec!["--wait-subscribers", "1"]);
        assert!(fwd
            .argv
            .windows(2)
            .any(|w| w == ["--listen", "127.0.0.1:6000"]));
        let w = &specs[2];
        assert_eq!(w.argv[1], "worker");
        assert!(w.argv[4].starts_with("ipc://") && w.argv[4].ends_with("all.sock"));
        assert_eq!(w.argv[5], "stdout");
    }

    #[test]
    fn a_receiver_of_an_ipc_publisher_connects_there() {
        let t = Topology::parse(
            "[forwarder]\npublish = \"ipc:///run/zl/pub.sock\"\n\
             [[receiver]]\nname = \"r\"\n\
             [[receiver]]\nname = \"two\"\nconnect = [\"ipc:///run/zl/pub.sock\", \"tcp://10.0.0.2:6001\"]\n",
            Path::new("zerolog.toml"),
        )
        .unwrap();
        let specs = program_specs(&t, Path::new("/usr/bin/zerolog"));
        assert_eq!(specs[0].startup_args, vec!["--wait-subscribers", "2"]);
        let tail = |i: usize, n: usize| specs[i].argv[specs[i].argv.len() - n..].to_vec();
        // Not zerolog 0.3's `ADDRESS PORT`, which only names a TCP publisher.
        assert_eq!(tail(1, 2), vec!["--connect", "ipc:///run/zl/pub.sock"]);
        assert_eq!(
            tail(2, 4),
            vec![
                "--connect",
                "ipc:///run/zl/pub.sock",
                "--connect",
                "tcp://10.0.0.2:6001"
            ]
        );
        assert!(!specs[1].argv.contains(&"6001".to_string()));
    }
}
