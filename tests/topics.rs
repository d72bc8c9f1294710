//! Topic routing with the default template `{app}`: a receiver subscribed to `-t nginx` gets
//! nginx's logs and nothing else, whatever the syslog flavour; a line that is not syslog has
//! topic `-`.

use crate::common::*;

#[test]
fn receivers_get_only_their_topic() {
    let Some(logger) = peer_or_skip("logger (util-linux, Debian package bsdutils)", logger())
    else {
        return;
    };
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();

    let forwarder = Forwarder::spawn(dir, "forwarder", 3, &[]);
    let topics = ["nginx", "postgres", "-"];
    let receivers: Vec<Receiver> = topics
        .iter()
        .map(|t| {
            Receiver::start(
                dir,
                &format!("receiver-{t}"),
                forwarder.frontend_port,
                Some(t),
            )
        })
        .collect();
    let workers: Vec<FileWorker> = topics
        .iter()
        .zip(&receivers)
        .map(|(t, r)| FileWorker::start(dir, &format!("worker-{t}"), &r.endpoint()))
        .collect();
    forwarder.wait_ready();
    let mut procs = vec![&forwarder.proc];
    procs.extend(receivers.iter().map(|r| &r.proc));
    procs.extend(workers.iter().map(|w| &w.proc));

    let port = forwarder.backend_port.to_string();
    let send = |name: &str, tag: &str, extra: &[&str], text: &str| {
        let mut args = vec!["-T", "-n", "127.0.0.1", "-P", &port, "-t", tag];
        args.extend_from_slice(extra);
        args.push(text);
        run_logger(&logger, dir, name, &args);
    };
    // RFC 5424 (logger's default) and RFC 3164 (TAG[PID]:) for both applications.
    send("logger-1", "nginx", &[], "GET /index.html 200");
    send("logger-2", "postgres", &[], "checkpoint starting: time");
    send(
        "logger-3",
        "nginx",
        &["--rfc3164", "--id=4242"],
        "GET /favicon.ico 404",
    );
    send(
        "logger-4",
        "postgres",
        &["--rfc3164", "--id=4243"],
        "database system is ready",
    );
    send_tcp(
        forwarder.backend_port,
        b"plain text, no syslog header at all\n",
    );

    let want: [&[&str]; 3] = [
        &["GET /index.html 200", "GET /favicon.ico 404"],
        &["checkpoint starting: time", "database system is ready"],
        &["plain text, no syslog header at all"],
    ];
    // Wait for each expected message in its own output...
    for (worker, texts) in workers.iter().zip(want) {
        for text in texts {
            wait_for_line_ending(&worker.out, text.as_bytes(), DELIVERY_TIMEOUT, &procs);
        }
    }
    // ...then push one marker per topic through the same forwarder: once a marker is in an
    // output, anything misrouted to it before is there too.
    let mut markers = Vec::new();
    for (i, topic) in topics.iter().enumerate() {
        let marker = format!("{BARRIER_PREFIX}topics-{i}");
        markers.extend(barrier_line(Some(topic), &marker));
    }
    send_tcp(forwarder.backend_port, &markers);
    for (i, worker) in workers.iter().enumerate() {
        let marker = format!("{BARRIER_PREFIX}topics-{i}");
        wait_for_line_ending(&worker.out, marker.as_bytes(), DELIVERY_TIMEOUT, &procs);
    }

    for ((topic, worker), texts) in topics.iter().zip(&workers).zip(want) {
        let lines = read_lines(&worker.out);
        let (markers, messages): (Vec<_>, Vec<_>) = lines
            .into_iter()
            .partition(|l| contains(l, BARRIER_PREFIX.as_bytes()));
        let shown: Vec<String> = messages.iter().map(|l| show(l)).collect();
        assert_eq!(
            markers.len(),
            1,
            "receiver -t {topic} got markers of other topics: {:?}",
            markers.iter().map(|l| show(l)).collect::<Vec<_>>()
        );
        assert_eq!(
            messages.len(),
            texts.len(),
            "receiver -t {topic} should get exactly {texts:?}, got {shown:?}"
        );
        for text in texts {
            assert!(
                messages.iter().any(|l| l.ends_with(text.as_bytes())),
                "receiver -t {topic} is missing {text:?}; got {shown:?}"
            );
        }
    }
    // The non-syslog line is delivered unchanged.
    assert_eq!(
        strip_barriers(read_lines(&workers[2].out)),
        vec![b"plain text, no syslog header at all".to_vec()]
    );
}
