//! The journal's configuration.

use std::path::PathBuf;
use std::time::Duration;

/// When appended records are fdatasynced.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Serialize, serde::Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum FsyncPolicy {
    /// By the journal's owner when [`Journal::sync_due`](super::Journal::sync_due) says:
    /// at most `fsync_interval_ms` after a write.
    #[default]
    Interval,
    /// Before [`Journal::append`](super::Journal::append) returns (a batch is a group
    /// commit).
    Always,
    /// Only when a segment is full, and at [`Journal::sync`](super::Journal::sync).
    Never,
}

/// Where a journal is and how it behaves.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize, serde::Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct JournalConfig {
    /// The directory of the segments and of `offsets/`; created (mode 0750) if missing.
    pub dir: PathBuf,
    /// When appends are made durable.
    pub fsync: FsyncPolicy,
    /// The longest a written record waits for its fdatasync under [`FsyncPolicy::Interval`].
    pub fsync_interval_ms: u64,
    /// Bytes on disk at most: see [`Journal::has_room`](super::Journal::has_room).
    pub max_size: u64,
    /// A segment is closed and the next one started when a batch would take it past this.
    pub segment_size: u64,
    /// The consumers whose offsets retain data: a segment is deleted once all of them are
    /// past it. With none, nothing is retained but the active segment.
    pub consumers: Vec<String>,
}

impl Default for JournalConfig {
    fn default() -> Self {
        JournalConfig {
            dir: PathBuf::from("/var/lib/zerolog/journal"),
            fsync: FsyncPolicy::Interval,
            fsync_interval_ms: 500,
            max_size: 1 << 30,
            segment_size: 64 << 20,
            consumers: Vec::new(),
        }
    }
}

impl JournalConfig {
    /// `fsync_interval_ms` as a duration.
    pub fn fsync_interval(&self) -> Duration {
        Duration::from_millis(self.fsync_interval_ms)
    }
}

/// The segment size for a journal of `max_size` bytes: an eighth of it, between 1 and 64 MiB,
/// so that deleting a done segment frees room well before the journal is full.
pub fn segment_size_for(max_size: u64) -> u64 {
    (max_size / 8).clamp(1 << 20, 64 << 20)
}
