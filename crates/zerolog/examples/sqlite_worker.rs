//! The SQLite worker of zerolog 0.3's docs ("Creating your own workers"), in Rust: inserts every
//! message into the `message` column of a `logs` table.
//!
//! ```sh
//! cargo build --release --example sqlite_worker
//! target/release/examples/sqlite_worker tcp://127.0.0.1:6200 /var/lib/zerolog/logs.db
//! ```
//!
//! Under zerologd, as a `type = "zmq"` worker (zerologd puts the receiver's endpoint in place
//! of `{backend}`):
//!
//! ```toml
//! [[worker]]
//! name = "db"
//! receiver = "all"
//! type = "zmq"
//! command = ["/usr/local/bin/sqlite_worker", "{backend}", "/var/lib/zerolog/logs.db"]
//! ```
//!
//! The table is created if missing. Rows are committed in batches: whenever no further message
//! is waiting (the runner then calls `flush`), and every 1000 rows under sustained load, so a
//! row is visible at most one batch after it arrived. On SIGTERM the worker inserts what is
//! already queued, commits, and exits 0. A message that is not UTF-8 is stored with each invalid
//! sequence replaced by U+FFFD (the `TextWorker` default).

use std::process::ExitCode;
use std::time::Duration;

use rusqlite::Connection;
use zerolog::worker::{run_worker, TextWorker};
use zerolog::Error;

/// Rows per transaction, at most.
const BATCH: usize = 1000;

struct SqliteWorker {
    db: Connection,
    /// Rows inserted in the open transaction.
    pending: usize,
}

impl SqliteWorker {
    fn open(path: &str) -> rusqlite::Result<Self> {
        let db = Connection::open(path)?;
        // Readers (a dashboard, `sqlite3`) may query while we write.
        db.busy_timeout(Duration::from_secs(10))?;
        db.query_row("PRAGMA journal_mode = WAL", [], |_| Ok(()))?;
        db.execute_batch("CREATE TABLE IF NOT EXISTS logs (message TEXT)")?;
        Ok(SqliteWorker { db, pending: 0 })
    }

    fn commit(&mut self) -> rusqlite::Result<()> {
        if !self.db.is_autocommit() {
            self.db.execute_batch("COMMIT")?;
        }
        self.pending = 0;
        Ok(())
    }
}

impl TextWorker for SqliteWorker {
    fn process_str(&mut self, msg: &str) -> Result<(), Error> {
        if self.db.is_autocommit() {
            self.db.execute_batch("BEGIN").map_err(Error::worker)?;
        }
        self.db
            .prepare_cached("INSERT INTO logs (message) VALUES (?1)")
            .and_then(|mut insert| insert.execute([msg]))
            .map_err(Error::worker)?;
        self.pending += 1;
        if self.pending >= BATCH {
            self.commit().map_err(Error::worker)?;
        }
        Ok(())
    }

    /// No message is waiting: commit the batch.
    fn flush(&mut self) -> Result<(), Error> {
        self.commit().map_err(Error::worker)
    }

    /// Rows not committed yet: a kill would roll them back, so they are not `processed` yet.
    fn buffered(&self) -> u64 {
        self.pending as u64
    }
}

fn main() -> ExitCode {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let [backend, db_path] = args.as_slice() else {
        eprintln!("usage: sqlite_worker BACKEND DB_PATH   (e.g. tcp://127.0.0.1:6200 logs.db)");
        return ExitCode::from(2);
    };
    // The runner logs (connected, stopping, counters) through `tracing`; here to stderr, at
    // the level RUST_LOG sets (default info).
    tracing_subscriber::fmt()
        .with_writer(std::io::stderr)
        .with_env_filter(
            tracing_subscriber::EnvFilter::try_from_default_env()
                .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new("info")),
        )
        .init();
    let mut worker = match SqliteWorker::open(db_path) {
        Ok(w) => w,
        Err(e) => {
            eprintln!("sqlite_worker: cannot open database {db_path}: {e}");
            return ExitCode::FAILURE;
        }
    };
    match run_worker(backend, &mut worker) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("sqlite_worker: {e}");
            ExitCode::FAILURE
        }
    }
}
