//! From a topology to the processes that run it: the command line of each element.

use std::path::{Path, PathBuf};

use crate::supervisor::state::{ProgramSpec, Tier};
use crate::topology::{Topology, WorkerKind};

/// Splits `tcp://HOST:PORT` (or `HOST:PORT`) into host and port; IPv6 hosts lose their brackets.
pub fn split_tcp_endpoint(endpoint: &str) -> Option<(String, u16)> {
    let rest = endpoint.strip_prefix("tcp://").unwrap_or(endpoint);
    let (host, port) = rest.rsplit_once(':')?;
    let host = host.trim_start_matches('[').trim_end_matches(']');
    Some((host.to_string(), port.parse().ok()?))
}

/// Whether a receiver connecting to `connect` reaches a forwarder publishing on `publish`.
fn reaches(connect: &str, publish: &str) -> bool {
    match (split_tcp_endpoint(connect), split_tcp_endpoint(publish)) {
        (Some((ch, cp)), Some((ph, pp))) => {
            cp == pp && (ch == ph || matches!(ph.as_str(), "0.0.0.0" | "*" | "::"))
        }
        _ => connect == publish,
    }
}

/// The endpoint a worker connects to for a receiver bound on `output`.
pub fn backend_for(output: &str) -> String {
    match split_tcp_endpoint(output) {
        Some((host, port)) if output.starts_with("tcp://") => {
            let host = match host.as_str() {
                "0.0.0.0" | "*" => "127.0.0.1".to_string(),
                "::" => "::1".to_string(),
                _ => host,
            };
            crate::tcp_endpoint(&host, port)
        }
        _ => output.to_string(),
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
        argv.extend(["--publish-endpoint".into(), f.publish.clone()]);
        if let Some(m) = &f.monitor {
            argv.extend(["--monitor-endpoint".into(), m.clone()]);
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
            .filter(|r| r.connect.iter().any(|c| reaches(c, &f.publish)))
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
        if let Some(path) = r.output.strip_prefix("ipc://") {
            argv.extend(["--output-socket".into(), path.to_string()]);
        } else if let Some((host, port)) = split_tcp_endpoint(&r.output) {
            argv.extend([
                "--bind".into(),
                host,
                "--output-port".into(),
                port.to_string(),
            ]);
        }
        // A first TCP publisher goes as zerolog 0.3's `ADDRESS PORT`; any other (an ipc://
        // one), and every further one, as --connect.
        let first = r.connect.first().and_then(|c| split_tcp_endpoint(c));
        let skip = usize::from(first.is_some());
        for extra in &r.connect[skip..] {
            argv.extend(["--connect".into(), extra.clone()]);
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
        });
    }

    for w in &topology.workers {
        let Some(receiver) = topology.receivers.iter().find(|r| r.name == w.receiver) else {
            continue;
        };
        let backend = backend_for(&receiver.output);
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
            });
        }
    }
    specs
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn endpoints() {
        assert_eq!(
            split_tcp_endpoint("tcp://127.0.0.1:6001"),
            Some(("127.0.0.1".into(), 6001))
        );
        assert_eq!(
            split_tcp_endpoint("tcp://[::1]:6001"),
            Some(("::1".into(), 6001))
        );
        assert!(reaches("tcp://127.0.0.1:6001", "tcp://0.0.0.0:6001"));
        assert!(!reaches("tcp://10.0.0.2:6001", "tcp://127.0.0.1:6001"));
        assert_eq!(backend_for("tcp://0.0.0.0:6200"), "tcp://127.0.0.1:6200");
        assert_eq!(
            backend_for("ipc:///run/zerolog/all.sock"),
            "ipc:///run/zerolog/all.sock"
        );
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
