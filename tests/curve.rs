//! CURVE between the forwarder and its receivers: `zerolog keygen` makes the keys; a receiver
//! with the forwarder's public key and an allowed key of its own gets every message; one with a
//! wrong server key, no CURVE, or a key outside the allow list gets none (the last counted in
//! `zap_denied`); a secret key file others may read is refused with its file and line.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Duration;

use crate::common::zerologd::*;
use crate::common::*;

/// `zerolog keygen DIR/NAME.key`: returns (secret file, public key as Z85).
pub(crate) fn keygen(dir: &Path, name: &str) -> (PathBuf, String) {
    let path = dir.join(format!("{name}.key"));
    let out = Command::new(zerolog_bin())
        .arg("keygen")
        .arg(&path)
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", show(&out.stderr));
    let stdout = show(&out.stdout);
    let public = stdout.lines().next().unwrap().to_string();
    (path, public)
}

fn z85(key: &str) -> Vec<u8> {
    zmq::z85_decode(key).unwrap()
}

/// A SUB socket of a CURVE client with `pair` (secret file, public) towards `server`.
fn curve_sub(
    ctx: &zmq::Context,
    endpoint: &str,
    server: &str,
    pair: &(PathBuf, String),
) -> zmq::Socket {
    let s = ctx.socket(zmq::SUB).unwrap();
    let text = std::fs::read_to_string(&pair.0).unwrap();
    let secret = text
        .lines()
        .find_map(|l| l.strip_prefix("secret-key = \""))
        .map(|k| k.trim_end_matches('"'))
        .unwrap();
    s.set_curve_serverkey(&z85(server)).unwrap();
    s.set_curve_publickey(&z85(&pair.1)).unwrap();
    s.set_curve_secretkey(&z85(secret)).unwrap();
    s.set_subscribe(b"").unwrap();
    s.set_rcvtimeo(200).unwrap();
    s.connect(endpoint).unwrap();
    s
}

/// `zerolog forwarder` on ports (b, f) with CURVE: secret key file `key`, one allowed client.
fn curve_forwarder(dir: &Path, (b, f): (u16, u16), key: &Path, client: &str) -> Proc {
    let (b, f) = (b.to_string(), f.to_string());
    let args = [
        "forwarder",
        "-b",
        &b,
        "-f",
        &f,
        "--curve-secret-key",
        key.to_str().unwrap(),
    ];
    let more = ["--curve-client", client, "--wait-subscribers", "1"];
    zerolog(dir, "forwarder", &[&args[..], &more[..]].concat())
}

#[test]
fn keygen_writes_a_private_secret_file_and_the_public_key_beside_it() {
    let dir = tempfile::tempdir().unwrap();
    let (path, public) = keygen(dir.path(), "fwd");
    let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    let pub_file = std::fs::read_to_string(dir.path().join("fwd.key.pub")).unwrap();
    assert_eq!(pub_file.trim(), public);
    assert_eq!(public.len(), 40, "{public}");
    let secret = std::fs::read_to_string(&path).unwrap();
    assert!(
        secret.contains(&format!("public-key = \"{public}\"")),
        "{secret}"
    );
}

#[test]
fn a_secret_key_readable_by_others_is_refused_with_its_file_and_line() {
    let dir = tempfile::tempdir().unwrap();
    let (path, _) = keygen(dir.path(), "fwd");
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o644)).unwrap();
    let b = free_port().to_string();
    let f = free_port().to_string();
    let out = Command::new(zerolog_bin())
        .args(["forwarder", "-b", &b, "-f", &f, "--curve-secret-key"])
        .arg(&path)
        .output()
        .unwrap();
    let err = show(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:2: ", path.display())) && err.contains("readable by others"),
        "{err}"
    );
    let secret = std::fs::read_to_string(&path).unwrap();
    let secret = secret.lines().nth(1).unwrap();
    assert!(
        !err.contains(&secret[14..54]),
        "the secret key was logged: {err}"
    );
}

#[test]
fn only_receivers_with_the_servers_key_and_an_allowed_key_get_messages() {
    let dir = tempfile::tempdir().unwrap();
    let fwd = keygen(dir.path(), "fwd");
    let rcv = keygen(dir.path(), "rcv");
    let other = keygen(dir.path(), "other");
    let (b, f) = (free_port(), free_port());
    let allowed_pub = dir.path().join("rcv.key.pub");
    let forwarder = curve_forwarder(dir.path(), (b, f), &fwd.0, allowed_pub.to_str().unwrap());
    let ctx = zmq::Context::new();
    let endpoint = format!("tcp://127.0.0.1:{f}");
    let good = curve_sub(&ctx, &endpoint, &fwd.1, &rcv);
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
    // A wrong server key: the forwarder cannot decrypt the handshake, and says so.
    let wrong_server = curve_sub(&ctx, &endpoint, &other.1, &rcv);
    forwarder.wait_for_stderr("it has another server key", READY_TIMEOUT);
    let plain = sub(&ctx, &endpoint);
    let not_allowed = curve_sub(&ctx, &endpoint, &fwd.1, &other);
    send_tcp(b, b"<13>app: secret one\n<13>app: secret two\n");
    let mut got = Vec::new();
    wait_until(DELIVERY_TIMEOUT, "the allowed receiver gets both", || {
        if let Ok(parts) = good.recv_multipart(0) {
            got.push(parts[1].clone());
        }
        got.len() == 2
    });
    assert_eq!(
        got,
        [
            b"<13>app: secret one".to_vec(),
            b"<13>app: secret two".to_vec()
        ]
    );
    std::thread::sleep(Duration::from_millis(300));
    for (name, s) in [
        ("wrong server key", &wrong_server),
        ("not allowed", &not_allowed),
        ("plain", &plain),
    ] {
        assert!(
            s.recv_multipart(zmq::DONTWAIT).is_err(),
            "the {name} receiver got a message"
        );
    }
    let line = forwarder.stop_and_find_line(" counters:");
    assert!(line.contains("zap_denied=1"), "{line}");
    // Both refused clients kept trying: each attempt counts.
    assert!(counter(&line, "curve_handshakes_failed") >= 2, "{line}");
    let log = forwarder.stderr_text();
    assert!(
        log.contains("key not allowed") && log.contains(&other.1),
        "the refused key is not logged: {log}"
    );
}

/// The real receiver with CURVE flags, between a CURVE forwarder and a worker's PULL socket.
#[test]
fn a_receiver_with_curve_keys_relays_from_a_curve_forwarder() {
    let dir = tempfile::tempdir().unwrap();
    let fwd = keygen(dir.path(), "fwd");
    let rcv = keygen(dir.path(), "rcv");
    let (b, f, out) = (free_port(), free_port(), free_port());
    let forwarder = curve_forwarder(dir.path(), (b, f), &fwd.0, &rcv.1);
    let receiver = zerolog(
        dir.path(),
        "receiver",
        &[
            "receiver",
            "--output-port",
            &out.to_string(),
            "--curve-secret-key",
            rcv.0.to_str().unwrap(),
            "--curve-server-key",
            dir.path().join("fwd.key.pub").to_str().unwrap(),
            "127.0.0.1",
            &f.to_string(),
        ],
    );
    let ctx = zmq::Context::new();
    let pull = ctx.socket(zmq::PULL).unwrap();
    pull.set_rcvtimeo(200).unwrap();
    pull.connect(&format!("tcp://127.0.0.1:{out}")).unwrap();
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
    receiver.wait_for_stderr("receiver ready", READY_TIMEOUT);
    let lines: String = (0..100).map(|i| format!("<13>app: line {i}\n")).collect();
    send_tcp(b, lines.as_bytes());
    let mut got = Vec::new();
    wait_until(
        DELIVERY_TIMEOUT,
        "100 messages through the receiver",
        || {
            while let Ok(m) = pull.recv_bytes(0) {
                got.push(m);
            }
            got.len() >= 100
        },
    );
    assert_eq!(got.len(), 100);
    assert_eq!(got[99], b"<13>app: line 99");
}

/// pyzmq's CURVE (another implementation's handshake) with an allowed key gets the messages.
const PY_CURVE_SUB: &str = r#"import sys
import zmq

endpoint, server_public, secret_file, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
keys = dict(
    (k.strip(), v.strip().strip('"'))
    for k, v in (line.split("=", 1) for line in open(secret_file) if "=" in line)
)
ctx = zmq.Context()
sub = ctx.socket(zmq.SUB)
sub.curve_serverkey = server_public.encode()
sub.curve_publickey = keys["public-key"].encode()
sub.curve_secretkey = keys["secret-key"].encode()
sub.setsockopt(zmq.SUBSCRIBE, b"")
sub.setsockopt(zmq.RCVTIMEO, 30000)
sub.connect(endpoint)
print("connected", file=sys.stderr, flush=True)
for _ in range(n):
    topic, message = sub.recv_multipart()
    sys.stdout.buffer.write(message + b"\n")
sys.stdout.flush()
"#;

#[test]
fn a_pyzmq_curve_client_with_an_allowed_key_gets_every_message() {
    let Some(py) = peer_or_skip("python with pyzmq (set ZEROLOG_PYTHON)", python()) else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let fwd = keygen(dir.path(), "fwd");
    let client = keygen(dir.path(), "py");
    let (b, f) = (free_port(), free_port());
    let forwarder = curve_forwarder(dir.path(), (b, f), &fwd.0, &client.1);
    let script = dir.path().join("sub.py");
    std::fs::write(&script, PY_CURVE_SUB).unwrap();
    let mut cmd = Command::new(py);
    cmd.arg(&script)
        .arg(format!("tcp://127.0.0.1:{f}"))
        .arg(&fwd.1)
        .arg(&client.0)
        .arg("50");
    let sub = Proc::spawn(dir.path(), "py-sub", cmd);
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);
    let lines: String = (0..50).map(|i| format!("<13>app: py {i}\n")).collect();
    send_tcp(b, lines.as_bytes());
    let status = sub.wait_exit(DELIVERY_TIMEOUT);
    assert!(status.success(), "{}", sub.describe());
    let want: String = (0..50).map(|i| format!("<13>app: py {i}\n")).collect();
    assert_eq!(sub.stdout_text(), want);
}

/// A topology with CURVE between the forwarder's TCP journal endpoint and its receiver.
fn curve_topology(dir: &Path) -> String {
    keygen(dir, "fwd");
    let rcv = keygen(dir, "rcv");
    let journal = free_port();
    format!(
        r#"
[forwarder]
tcp = ["127.0.0.1:{{B}}"]
publish = "tcp://127.0.0.1:{{F}}"
journal_endpoint = "tcp://127.0.0.1:{journal}"
curve_secret_key = "{{DIR}}/fwd.key"
curve_clients = ["{}"]

[[receiver]]
name = "all"
curve_secret_key = "{{DIR}}/rcv.key"
curve_server_key = "{{DIR}}/fwd.key.pub"

[[worker]]
name = "out"
receiver = "all"
command = ["file", "{{DIR}}/out.txt"]
"#,
        rcv.1
    )
}

#[test]
fn zerologd_runs_curve_between_forwarder_and_receiver_and_check_says_so() {
    let dir = tempfile::tempdir().unwrap();
    let z = Zerologd::start(dir.path(), &curve_topology(dir.path()));
    z.deliver(&dir.path().join("out.txt"), "curve", 1000);
    let out = zerologd_check(&z.config);
    let text = show(&out.stdout);
    assert!(out.status.success(), "{text}{}", show(&out.stderr));
    let lines: Vec<&str> = text.lines().skip_while(|l| *l != "encryption:").collect();
    assert!(
        lines.iter().any(|l| l.contains("forwarder")
            && l.contains("journal TCP with CURVE")
            && l.contains("1 client key(s) allowed")),
        "{text}"
    );
    assert!(
        lines.iter().any(|l| l.contains("all")
            && l.contains("from the forwarder: TCP with CURVE")
            && l.contains("to workers: IPC")),
        "{text}"
    );
}

#[test]
fn zerologd_check_refuses_an_exposed_key_with_both_lines() {
    let dir = tempfile::tempdir().unwrap();
    let topology = curve_topology(dir.path()).replace("{DIR}", dir.path().to_str().unwrap());
    let key = dir.path().join("rcv.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o604)).unwrap();
    let config = dir.path().join("zerolog.toml");
    std::fs::write(
        &config,
        topology.replace("{B}", "6514").replace("{F}", "6515"),
    )
    .unwrap();
    let out = zerologd_check(&config);
    let err = show(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    // The topology's line (the receiver's curve_secret_key, line 11) and the key file's.
    assert!(
        err.contains(&format!("{}:11:", config.display()))
            && err.contains(&format!(
                "{}:2: the secret key is readable by others (mode 0604)",
                key.display()
            )),
        "{err}"
    );
}

/// A receiver's TCP output with CURVE (`curve_workers`): its own [[worker]] with the keys and
/// an allowed key gets every message; a worker without CURVE and one with a key outside the
/// list, both on the same output, get none and are counted.
#[test]
fn workers_reach_a_curve_output_only_with_the_receivers_key_and_an_allowed_key() {
    let dir = tempfile::tempdir().unwrap();
    let rcv = keygen(dir.path(), "rcv");
    let wk = keygen(dir.path(), "wk");
    keygen(dir.path(), "other");
    let port = free_port();
    let topology = format!(
        r#"
[forwarder]
tcp = ["127.0.0.1:{{B}}"]

[[receiver]]
name = "all"
output = "tcp://127.0.0.1:{port}"
curve_secret_key = "{{DIR}}/rcv.key"
curve_workers = ["{}"]
external_workers = true

[[worker]]
name = "out"
receiver = "all"
command = ["file", "{{DIR}}/out.txt"]
curve_secret_key = "{{DIR}}/wk.key"
curve_server_key = "{{DIR}}/rcv.key.pub"
"#,
        wk.1
    );
    let z = Zerologd::start(dir.path(), &topology);
    let backend = format!("tcp://127.0.0.1:{port}");
    let (other_key, rcv_pub) = (dir.path().join("other.key"), rcv.1.clone());
    let plain_out = dir.path().join("plain.txt");
    let plain = zerolog(
        dir.path(),
        "plain-worker",
        &["worker", &backend, "file", plain_out.to_str().unwrap()],
    );
    let other_out = dir.path().join("other.txt");
    let other = zerolog(
        dir.path(),
        "other-worker",
        &[
            "worker",
            "--curve-secret-key",
            other_key.to_str().unwrap(),
            "--curve-server-key",
            &rcv_pub,
            &backend,
            "file",
            other_out.to_str().unwrap(),
        ],
    );
    wait_until(READY_TIMEOUT, "both refused workers counted", || {
        let (_, total) = z.counters("all");
        total["zap_denied"].as_u64() >= Some(1)
            && total["curve_handshakes_failed"].as_u64() >= Some(1)
    });
    z.deliver(&dir.path().join("out.txt"), "curve-out", 1000);
    std::thread::sleep(Duration::from_millis(300));
    for (name, out) in [("plain", &plain_out), ("other key", &other_out)] {
        assert_eq!(count_lines(out), 0, "the {name} worker got messages");
    }
    assert!(plain.is_running() && other.is_running());

    let out = zerologd_check(&z.config);
    let text = show(&out.stdout);
    assert!(
        text.lines()
            .skip_while(|l| *l != "encryption:")
            .any(|l| l.contains(
                "to workers: TCP with CURVE (encrypted, keys checked), 1 worker key(s) allowed"
            )),
        "{text}"
    );
}

#[test]
fn a_worker_without_keys_on_a_curve_output_is_a_config_error() {
    let dir = tempfile::tempdir().unwrap();
    keygen(dir.path(), "rcv");
    let topology = r#"
[forwarder]
tcp = ["127.0.0.1:6514"]

[[receiver]]
name = "all"
output = "tcp://127.0.0.1:6600"
curve_secret_key = "{DIR}/rcv.key"
curve_workers = []

[[worker]]
name = "out"
receiver = "all"
command = ["stdout"]
"#;
    let config = write_file(
        dir.path(),
        "zerolog.toml",
        &topology.replace("{DIR}", dir.path().to_str().unwrap()),
    );
    let out = zerologd_check(&config);
    let err = show(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{err}");
    assert!(
        err.contains(&format!("{}:13:", config.display()))
            && err.contains("has CURVE on its output"),
        "{err}"
    );
    assert_eq!(
        err.lines().count(),
        2,
        "only that error (and the summary): {err}"
    );
}
