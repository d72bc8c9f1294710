//! The `--allow` list of the ZeroMQ sockets other hosts connect to: a peer from an address
//! outside it is refused (and counted) before it gets a message; an allowed one works.
//! 127.0.0.2 stands for another host: libzmq connects from it with `tcp://SOURCE:0;HOST:PORT`.

use std::time::Duration;

use crate::common::*;

fn pull(ctx: &zmq::Context, endpoint: &str) -> zmq::Socket {
    let s = ctx.socket(zmq::PULL).unwrap();
    s.set_rcvtimeo(200).unwrap();
    s.connect(endpoint).unwrap();
    s
}

fn counters_line(p: &Proc) -> String {
    p.stop_and_find_line(" counters:")
}

#[test]
fn forwarder_allow_list_refuses_receivers_from_other_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let (b, f) = (free_port(), free_port());
    let forwarder = zerolog(
        dir.path(),
        "forwarder",
        &[
            "forwarder",
            "-b",
            &b.to_string(),
            "-f",
            &f.to_string(),
            "--allow",
            "127.0.0.1/32",
            "--wait-subscribers",
            "1",
        ],
    );
    let ctx = zmq::Context::new();
    let denied = sub(&ctx, &format!("tcp://127.0.0.2:0;127.0.0.1:{f}"));
    let allowed = sub(&ctx, &format!("tcp://127.0.0.1:{f}"));
    forwarder.wait_for_stderr("forwarder ready", READY_TIMEOUT);

    send_tcp(b, b"<13>app: one\n<13>app: two\n");
    let mut got = Vec::new();
    wait_until(DELIVERY_TIMEOUT, "the allowed receiver gets both", || {
        if let Ok(parts) = allowed.recv_multipart(0) {
            got.push(parts[1].clone());
        }
        got.len() == 2
    });
    assert_eq!(got, [b"<13>app: one".to_vec(), b"<13>app: two".to_vec()]);
    assert!(
        denied.recv_multipart(0).is_err(),
        "the receiver from 127.0.0.2 got a message"
    );
    let line = counters_line(&forwarder);
    assert!(counter(&line, "zap_denied") >= 1, "{line}");
    assert!(
        forwarder.stderr_text().contains("refused by the allowlist"),
        "{}",
        forwarder.stderr_text()
    );
}

#[test]
fn receiver_allow_list_refuses_workers_from_other_addresses() {
    let dir = tempfile::tempdir().unwrap();
    let f = free_port();
    let out = free_port();
    let ctx = zmq::Context::new();
    let publisher = ctx.socket(zmq::PUB).unwrap();
    publisher.bind(&format!("tcp://127.0.0.1:{f}")).unwrap();
    let receiver = zerolog(
        dir.path(),
        "receiver",
        &[
            "receiver",
            "--output-port",
            &out.to_string(),
            "--allow",
            "127.0.0.1",
            "127.0.0.1",
            &f.to_string(),
        ],
    );
    receiver.wait_for_stderr("receiver ready", READY_TIMEOUT);
    let denied = pull(&ctx, &format!("tcp://127.0.0.2:0;127.0.0.1:{out}"));
    let allowed = pull(&ctx, &format!("tcp://127.0.0.1:{out}"));

    // Publish until the allowed worker has 10 (the receiver subscribes asynchronously).
    let mut got = 0;
    let mut i = 0;
    wait_until(DELIVERY_TIMEOUT, "the allowed worker gets messages", || {
        publisher
            .send_multipart([&b"t"[..], format!("m{i}").as_bytes()], 0)
            .unwrap();
        i += 1;
        while allowed.recv_bytes(zmq::DONTWAIT).is_ok() {
            got += 1;
        }
        std::thread::sleep(Duration::from_millis(20));
        got >= 10
    });
    assert!(
        denied.recv_bytes(0).is_err(),
        "the worker from 127.0.0.2 got a message"
    );
    let line = counters_line(&receiver);
    assert!(counter(&line, "zap_denied") >= 1, "{line}");
}
