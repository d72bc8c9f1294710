//! A counting worker: counts messages and bytes, reports progress on stderr at most once a
//! second, and prints the totals on stdout when it stops (SIGTERM or SIGINT).
//!
//! ```sh
//! cargo run --release --example count_worker -- tcp://127.0.0.1:6200
//! cargo run --release --example count_worker -- tcp://127.0.0.1:6200 --last-frame
//! ```
//!
//! `--last-frame` is for PUSH peers that send `[topic, message]` (logstash in pushpull mode with
//! a topic, omczmq): only the last frame of each message is counted, as zerolog 0.3's
//! `recv_func` allowed to choose. Without it every frame is a message (what a receiver sends).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use zerolog::worker::{Receive, Runner, Worker};
use zerolog::Error;

struct CountWorker {
    messages: u64,
    bytes: u64,
    reported: u64,
    last_report: Instant,
}

impl CountWorker {
    fn new() -> Self {
        CountWorker {
            messages: 0,
            bytes: 0,
            reported: 0,
            last_report: Instant::now(),
        }
    }

    fn report(&mut self) {
        if self.messages != self.reported && self.last_report.elapsed() >= Duration::from_secs(1) {
            eprintln!("count_worker: {} messages so far", self.messages);
            self.reported = self.messages;
            self.last_report = Instant::now();
        }
    }
}

impl Worker for CountWorker {
    fn process(&mut self, msg: &[u8]) -> Result<(), Error> {
        self.messages += 1;
        self.bytes += msg.len() as u64;
        Ok(())
    }

    /// Called whenever the queue is empty.
    fn flush(&mut self) -> Result<(), Error> {
        self.report();
        Ok(())
    }

    /// Called ten times a second while idle.
    fn tick(&mut self) -> Result<(), Error> {
        self.report();
        Ok(())
    }

    fn stop(&mut self) -> Result<(), Error> {
        println!("{} messages, {} bytes", self.messages, self.bytes);
        Ok(())
    }
}

fn main() -> ExitCode {
    let mut args = std::env::args().skip(1);
    let (Some(backend), flag) = (args.next(), args.next()) else {
        eprintln!("usage: count_worker BACKEND [--last-frame]");
        return ExitCode::from(2);
    };
    let receive = match flag.as_deref() {
        None => Receive::Frame,
        Some("--last-frame") => Receive::LastFrame,
        Some(other) => {
            eprintln!("count_worker: unknown option {other}");
            return ExitCode::from(2);
        }
    };
    match Runner::new(backend)
        .receive(receive)
        .run(&mut CountWorker::new())
    {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("count_worker: {e}");
            ExitCode::FAILURE
        }
    }
}
