//! What an operator, a client, a child or the system can do to zerologd: it never accepts
//! what it cannot deliver, never stalls, and refuses what it cannot do with a clear reply.

use std::time::{Duration, Instant};

use crate::common::zerologd::*;
use crate::common::*;

/// A pipeline whose receiver cannot start (its output port is taken) refuses syslog
/// connections instead of accepting data it cannot deliver; once the receiver can start, the
/// same input accepts and delivers.
#[test]
fn the_input_refuses_connections_until_the_pipeline_is_ready() {
    let dir = tempfile::tempdir().unwrap();
    let output = free_port();
    let squatter = std::net::TcpListener::bind(("127.0.0.1", output)).unwrap();
    let topology = format!(
        "[forwarder]\ntcp = [\"127.0.0.1:{{B}}\"]\npublish = \"tcp://127.0.0.1:{{F}}\"\n\n\
         [[receiver]]\nname = \"all\"\noutput = \"tcp://127.0.0.1:{output}\"\n\
         restart_backoff = \"50ms\"\nrestart_backoff_max = \"200ms\"\nmax_restarts = 1000\n\n\
         [[worker]]\nname = \"out\"\nreceiver = \"all\"\ncommand = [\"file\", \"{{DIR}}/out.txt\"]\n"
    );
    let z = Zerologd::start_unready(dir.path(), &topology);
    // The receiver crash-loops; for two seconds every connection attempt is refused.
    let until = Instant::now() + Duration::from_secs(2);
    let mut attempts = 0;
    while Instant::now() < until {
        match std::net::TcpStream::connect(("127.0.0.1", z.backend)) {
            Err(e) if e.kind() == std::io::ErrorKind::ConnectionRefused => attempts += 1,
            other => panic!("connection attempt {attempts}: {other:?}, not refused"),
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert!(z.program_json("all")["restarts"].as_u64().unwrap() > 0);
    let fwd = z.program_json("forwarder");
    assert_eq!(fwd["ready"], false, "{fwd}");
    assert_eq!(
        fwd["counters"]["current"]["connections_accepted"], 0,
        "{fwd}"
    );

    drop(squatter);
    z.wait_ready();
    z.deliver(&dir.path().join("out.txt"), "after", 1000);
}
