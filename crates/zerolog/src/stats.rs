//! Counters of each pipeline element, defined in one place per element so that logs, status
//! output, metrics and tests agree. Each counter is documented on its accessor below, and all
//! of them in `docs/counters.md`.
//!
//! The counters live in memory, or, when `ZEROLOG_STATS_FILE` names a file (zerologd sets it
//! for every element it runs), in that file, mapped into memory: the values there are always
//! current, readable by another process ([`read_stats_file`]), and survive the element being
//! killed, so what a crashed process held can be accounted for.
//!
//! File layout (version 1): a 4096-byte text header, NUL-padded,
//! `zerolog-stats 1\nelement NAME\npid PID\ncounters NAME NAME ...\n`, then one native-endian
//! u64 per counter, in the header's order.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::fd::{FromRawFd, RawFd};
use std::path::{Path, PathBuf};
use std::ptr::NonNull;
use std::sync::atomic::{AtomicU64, Ordering::Relaxed};

/// Environment variable naming the stats file of an element.
pub const STATS_FILE_ENV: &str = "ZEROLOG_STATS_FILE";
/// Environment variable naming a descriptor open on that file, read and write. zerologd hands
/// one to each child: a program that runs as another user could not open the path itself.
pub const STATS_FD_ENV: &str = "ZEROLOG_STATS_FD";

/// The counters that are levels (gauges), not totals: not summed over a program's runs, and
/// without `_total` in Prometheus.
pub const GAUGES: &[&str] = &[
    "connections_open",
    "journal_bytes",
    "journal_backlog",
    "journal_oldest_age_ms",
    "in_flight",
    "backlog",
];

const HEADER: usize = 4096;
const MAGIC: &str = "zerolog-stats 1\n";

/// Storage of one element's counters: on the heap, or in a shared file mapping.
#[derive(Debug)]
pub struct Slots {
    ptr: NonNull<AtomicU64>,
    len: usize,
    _heap: Option<Box<[AtomicU64]>>,
    _map: Option<memmap2::MmapMut>,
}

// SAFETY: the slots are atomics, owned (heap) or mapped (file) for as long as `Slots` lives.
unsafe impl Send for Slots {}
unsafe impl Sync for Slots {}

impl Slots {
    fn heap(len: usize) -> Self {
        let heap: Box<[AtomicU64]> = (0..len).map(|_| AtomicU64::new(0)).collect();
        let ptr = NonNull::new(heap.as_ptr() as *mut AtomicU64).expect("boxed slice");
        Slots {
            ptr,
            len,
            _heap: Some(heap),
            _map: None,
        }
    }

    fn header(element: &str, names: &[&str]) -> io::Result<String> {
        let header = format!(
            "{MAGIC}element {element}\npid {}\ncounters {}\n",
            std::process::id(),
            names.join(" ")
        );
        if header.len() > HEADER {
            return Err(io::Error::other("too many counters for the stats header"));
        }
        Ok(header)
    }

    fn file(path: &Path, element: &str, names: &[&str]) -> io::Result<Self> {
        let header = Self::header(element, names)?;
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(true)
            .open(path)?;
        Self::in_open_file(&file, &header, names.len())
    }

    /// In the file open on descriptor `fd` (inherited: see [`STATS_FD_ENV`]). The descriptor
    /// is made close-on-exec, so this process's own children do not inherit it, and a copy of
    /// it is used, so `fd` is never closed twice.
    fn inherited(fd: RawFd, element: &str, names: &[&str]) -> io::Result<Self> {
        use nix::fcntl::{fcntl, FcntlArg, FdFlag};
        let header = Self::header(element, names)?;
        fcntl(fd, FcntlArg::F_SETFD(FdFlag::FD_CLOEXEC))?;
        let copy = fcntl(fd, FcntlArg::F_DUPFD_CLOEXEC(3))?;
        // SAFETY: `copy` was just made by F_DUPFD_CLOEXEC and belongs to nobody else.
        let file = unsafe { File::from_raw_fd(copy) };
        Self::in_open_file(&file, &header, names.len())
    }

    /// Counters in `file`, emptied first, behind `header`.
    fn in_open_file(file: &File, header: &str, len: usize) -> io::Result<Self> {
        file.set_len(0)?;
        file.set_len((HEADER + 8 * len) as u64)?;
        // SAFETY: the file was just emptied by this process for its own counters; other
        // processes only read it.
        let mut map = unsafe { memmap2::MmapMut::map_mut(file)? };
        map[..header.len()].copy_from_slice(header.as_bytes());
        // The values start page-aligned, so each u64 is 8-byte aligned, as AtomicU64 needs.
        let ptr = NonNull::new(map[HEADER..].as_mut_ptr() as *mut AtomicU64).expect("mapping");
        Ok(Slots {
            ptr,
            len,
            _heap: None,
            _map: Some(map),
        })
    }

    /// On the descriptor of `$ZEROLOG_STATS_FD`, else in `$ZEROLOG_STATS_FILE`, when set (in
    /// memory if that fails, with a warning); else in memory.
    fn from_env(element: &str, names: &[&str]) -> Self {
        let fd = std::env::var(STATS_FD_ENV).ok();
        let path = std::env::var_os(STATS_FILE_ENV).map(PathBuf::from);
        let slots = match (fd, &path) {
            (Some(fd), _) => match fd.parse() {
                Ok(fd) => Slots::inherited(fd, element, names),
                Err(_) => Err(io::Error::other(format!(
                    "{STATS_FD_ENV}={fd} is no descriptor"
                ))),
            },
            (None, Some(path)) => Slots::file(path, element, names),
            (None, None) => return Slots::heap(names.len()),
        };
        slots.unwrap_or_else(|e| {
            let file = path.as_deref().unwrap_or(Path::new("")).display();
            tracing::warn!(%file, error = %e, "cannot use the stats file; counters are kept in memory only");
            Slots::heap(names.len())
        })
    }

    fn get(&self, i: usize) -> &AtomicU64 {
        assert!(i < self.len);
        // SAFETY: i is in bounds of the `len` slots that `ptr` points to, alive with `self`.
        unsafe { &*self.ptr.as_ptr().add(i) }
    }
}

/// What [`read_stats_file`] found: the element and its counters, in declaration order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StatsFile {
    /// `forwarder`, `receiver` or `worker`.
    pub element: String,
    /// The process that wrote it.
    pub pid: u32,
    /// (name, value) of every counter.
    pub counters: Vec<(String, u64)>,
}

/// Reads an element's stats file (while it runs, or after it died). `None` when it is missing
/// or not a stats file.
pub fn read_stats_file(path: &Path) -> Option<StatsFile> {
    let bytes = std::fs::read(path).ok()?;
    let header = std::str::from_utf8(bytes.get(..HEADER)?)
        .ok()?
        .trim_end_matches('\0');
    let rest = header.strip_prefix(MAGIC)?;
    let (mut element, mut pid, mut names) = (None, None, None);
    for line in rest.lines() {
        match line.split_once(' ') {
            Some(("element", e)) => element = Some(e.to_string()),
            Some(("pid", p)) => pid = p.parse().ok(),
            Some(("counters", n)) => names = Some(n.split(' ').collect::<Vec<_>>()),
            _ => {}
        }
    }
    let names = names?;
    let values = bytes.get(HEADER..HEADER + 8 * names.len())?;
    let counters = names
        .iter()
        .zip(values.chunks_exact(8))
        .map(|(n, v)| (n.to_string(), u64::from_ne_bytes(v.try_into().unwrap())))
        .collect();
    Some(StatsFile {
        element: element?,
        pid: pid?,
        counters,
    })
}

/// Position of `name` in `names`, at compile time (each accessor's slot).
const fn index_of(names: &[&str], name: &str) -> usize {
    let mut i = 0;
    while i < names.len() {
        let (a, b) = (names[i].as_bytes(), name.as_bytes());
        if a.len() == b.len() {
            let mut j = 0;
            while j < a.len() && a[j] == b[j] {
                j += 1;
            }
            if j == a.len() {
                return i;
            }
        }
        i += 1;
    }
    panic!("no such counter")
}

macro_rules! counters {
    ($(#[$meta:meta])* $name:ident ($element:literal) { $($(#[$fmeta:meta])* $field:ident),* $(,)? }) => {
        $(#[$meta])*
        #[derive(Debug)]
        pub struct $name {
            slots: Slots,
        }

        impl $name {
            /// The counters' names, in declaration order.
            pub const NAMES: &'static [&'static str] = &[$(stringify!($field)),*];

            /// Counters in memory.
            pub fn new() -> Self {
                $name { slots: Slots::heap(Self::NAMES.len()) }
            }

            /// Counters in `$ZEROLOG_STATS_FILE` when it is set (see the module docs), else
            /// in memory.
            pub fn from_env() -> Self {
                $name { slots: Slots::from_env($element, Self::NAMES) }
            }

            /// Counters in a stats file at `path` (created or truncated).
            pub fn in_file(path: &Path) -> io::Result<Self> {
                Ok($name { slots: Slots::file(path, $element, Self::NAMES)? })
            }

            $(
                $(#[$fmeta])*
                pub fn $field(&self) -> &AtomicU64 {
                    const INDEX: usize = index_of($name::NAMES, stringify!($field));
                    self.slots.get(INDEX)
                }
            )*

            /// (name, value) of every counter, in declaration order.
            pub fn snapshot(&self) -> Vec<(&'static str, u64)> {
                Self::NAMES
                    .iter()
                    .enumerate()
                    .map(|(i, n)| (*n, self.slots.get(i).load(Relaxed)))
                    .collect()
            }

            /// Logs every counter on one line (at exit of the element).
            pub fn log(&self, element: &str) {
                let line = self
                    .snapshot()
                    .iter()
                    .map(|(k, v)| format!("{k}={v}"))
                    .collect::<Vec<_>>()
                    .join(" ");
                tracing::info!("{element} counters: {line}");
            }
        }

        impl Default for $name {
            fn default() -> Self {
                Self::new()
            }
        }
    };
}

counters! {
    /// Forwarder counters.
    ForwarderStats("forwarder") {
        /// TCP connections accepted since start.
        connections_accepted,
        /// TCP connections open now (a gauge).
        connections_open,
        /// TCP connections closed at once because the input had `max_connections` open.
        connections_refused,
        /// TCP connections closed because they sent nothing for `idle_timeout`.
        connections_idle_closed,
        /// Bytes read from TCP connections and UDP datagrams.
        bytes_received,
        /// UDP datagrams received.
        udp_datagrams,
        /// Messages framed from the input (including truncated ones).
        messages_received,
        /// Messages cut to the maximum message size.
        truncated,
        /// Malformed octet counts (the connection then falls back to LF framing).
        malformed_frames,
        /// Octet-counted frames cut short by the connection closing (emitted as they were).
        incomplete,
        /// Messages published: into the journal for the receivers that fetch from it, or on
        /// the publish socket to at least one subscribed receiver.
        published,
        /// Dropped: messages whose topic no receiver subscribed to.
        unrouted,
        /// Dropped: messages left at shutdown when no receiver was left to take them.
        dropped_at_shutdown,
        /// Dropped: partial messages of a connection a stop closed while its sender was still
        /// in the middle of a message (after the drain time, or a pause of the sender).
        cut_at_stop,
        /// TCP connections a stop closed while their sender was still sending: what it wrote
        /// after the forwarder's last read was lost in TCP, and plain TCP syslog cannot say
        /// how much (RELP can).
        closed_sending_at_stop,
        /// ZeroMQ connections (receivers, monitors) refused by the `allow` list, or with a
        /// CURVE key not in `curve_clients`.
        zap_denied,
        /// CURVE handshakes that failed: a receiver with another server key, or without CURVE.
        curve_handshakes_failed,
        /// Messages appended to the journal (accepted: from now on delivered at least once).
        journal_appended,
        /// Bytes of the journal's segment files now (a gauge).
        journal_bytes,
        /// Records not yet done by every receiver (a gauge).
        journal_backlog,
        /// Age of the oldest of those records, in milliseconds, to 100 ms (a gauge; since
        /// the forwarder started, for records older than that).
        journal_oldest_age_ms,
        /// Records sent to receivers from the journal.
        journal_sent,
        /// Of those, records sent again (a receiver or the forwarder restarted before the
        /// receiver's commit): its workers may see them twice.
        journal_redelivered,
        /// Times the journal reached `max_size` and paused the input.
        journal_full,
        /// Failed journal writes (a full disk): the input waits and the write is retried.
        journal_write_errors,
        /// Segment files deleted once every receiver was done with them.
        journal_segments_deleted,
        /// Bytes cut from a torn or corrupt journal tail at start (a crash during a write).
        journal_cut_bytes,
        /// Malformed requests on the journal endpoint.
        journal_bad_requests,
        /// RELP connections accepted.
        relp_sessions,
        /// RELP messages answered `200 OK` (each in the journal first).
        relp_acked,
        /// RELP messages found at the journal's end when the forwarder started, as the first
        /// messages of a session: a sender's re-sends, delivered marked as redeliveries.
        relp_resent,
        /// RELP sessions ended by a protocol error (a bad frame, a command before `open`).
        relp_errors,
        /// TLS handshakes completed (TLS connections also count in `connections_accepted`).
        tls_sessions,
        /// TLS connections refused: a failed or timed-out handshake, or a client certificate
        /// outside `permitted_peers`.
        tls_refused,
    }
}

counters! {
    /// Receiver counters.
    ReceiverStats("receiver") {
        /// Messages received from the forwarder(s).
        received,
        /// Bytes of the message frames received (topic frames excluded).
        bytes_received,
        /// Messages pushed to workers.
        pushed,
        /// Publisher messages that were not [topic, message] (single frame: pushed whole;
        /// extra frames: ignored).
        malformed,
        /// Worker connections refused by the `allow` list.
        zap_denied,
        /// CURVE handshakes of workers that failed (another server key, or no CURVE).
        curve_handshakes_failed,
        /// Messages acknowledged by workers (acked delivery).
        acked,
        /// Messages of workers gone before acknowledging them, sent to other workers.
        redelivered,
        /// Workers found gone (a probe or a send failed) while connected.
        workers_lost,
        /// Messages held now: fetched and not yet done by a worker (a gauge).
        in_flight,
        /// Records of the forwarder's journal this receiver has not yet done, as of its last
        /// fetch (a gauge; it counts records of other topics too).
        backlog,
    }
}

counters! {
    /// Worker counters.
    WorkerStats("worker") {
        /// Messages received from the backend.
        received,
        /// Bytes of the messages processed (the message as handed to the worker).
        bytes_received,
        /// Messages handed to the program, written out, or counted (null).
        processed,
        /// Dropped: messages lost because the program or output failed while holding them.
        failed,
        /// Times a program worker started its program again after it died.
        program_restarts,
        /// Messages received flagged as sent again (acked delivery): a worker or receiver
        /// died before they were acknowledged, so they may have been processed already.
        redelivered,
    }
}

impl crate::access::Refusals for ForwarderStats {
    fn zap_denied(&self) -> &AtomicU64 {
        ForwarderStats::zap_denied(self)
    }
    fn curve_handshakes_failed(&self) -> &AtomicU64 {
        ForwarderStats::curve_handshakes_failed(self)
    }
}

impl crate::access::Refusals for ReceiverStats {
    fn zap_denied(&self) -> &AtomicU64 {
        ReceiverStats::zap_denied(self)
    }
    fn curve_handshakes_failed(&self) -> &AtomicU64 {
        ReceiverStats::curve_handshakes_failed(self)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_stats_file_is_readable_by_another_reader_and_keeps_the_last_values() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("stats/r.stats");
        {
            let stats = ReceiverStats::in_file(&path).unwrap();
            stats.received().fetch_add(7, Relaxed);
            stats.pushed().fetch_add(5, Relaxed);
            let live = read_stats_file(&path).unwrap();
            assert_eq!(live.element, "receiver");
            assert_eq!(live.pid, std::process::id());
            assert_eq!(live.counters[0], ("received".to_string(), 7));
            assert_eq!(live.counters[2], ("pushed".to_string(), 5));
        }
        // Dropped (as a killed process's would be): the values stay in the file.
        let after = read_stats_file(&path).unwrap();
        assert_eq!(
            after.counters,
            ReceiverStats::NAMES
                .iter()
                .zip([7, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0])
                .map(|(n, v)| (n.to_string(), v))
                .collect::<Vec<_>>()
        );
        std::fs::write(&path, b"not a stats file").unwrap();
        assert_eq!(read_stats_file(&path), None);
    }

    #[test]
    fn heap_counters_snapshot_in_order() {
        let stats = WorkerStats::new();
        stats.processed().fetch_add(2, Relaxed);
        assert_eq!(
            stats.snapshot(),
            [
                ("received", 0),
                ("bytes_received", 0),
                ("processed", 2),
                ("failed", 0),
                ("program_restarts", 0),
                ("redelivered", 0)
            ]
        );
    }
}
