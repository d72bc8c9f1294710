//! A durable journal (write-ahead log) of messages, in segment files, with durable offsets
//! for several consumers. The design is docs/journal-plan.md.
//!
//! Records get sequence numbers from 1 on, which never repeat, even once every segment was
//! deleted. [`Journal::append`] writes a batch with one `write`; [`Journal::read`] reads from
//! any sequence number with a reader's own [`Cursor`]; consumers [`commit`](Journal::commit)
//! what they are done with, and [`Journal::checkpoint`] saves the offsets and deletes the
//! segments every consumer is done with. [`Journal::open`] recovers from a crash: it cuts a
//! torn tail, removes a segment a crash left half-created and finishes deletions.
//!
//! The segments are the truth: sizes and sequence numbers come from the files, never from
//! a second file kept on its own schedule.

mod config;
mod offsets;
mod open;
mod read;
mod segment;

#[cfg(test)]
mod crash_tests;
#[cfg(test)]
mod retention_tests;
#[cfg(test)]
mod tests;

use std::collections::VecDeque;
use std::fs::File;
use std::os::unix::fs::{DirBuilderExt, FileExt};
use std::path::{Path, PathBuf};
use std::time::Instant;

pub use config::{segment_size_for, FsyncPolicy, JournalConfig};
pub use offsets::check_name as check_consumer_name;
pub use open::Recovery;
pub use read::Cursor;
pub use segment::{HEADER_LEN, MAX_RECORD, RECORD_OVERHEAD};

use segment::{io_err, segment_path, sync_dir, Header};

/// What can go wrong with a journal.
#[derive(Debug, thiserror::Error)]
pub enum JournalError {
    /// A file operation failed.
    #[error("journal: {context}: {source}")]
    Io {
        /// What was done, with the path.
        context: String,
        /// What the operating system said.
        #[source]
        source: std::io::Error,
    },
    /// A file does not hold what it should.
    #[error("journal: {path} is damaged: {detail}")]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong.
        detail: String,
    },
    /// A consumer name outside `[A-Za-z0-9._:-]{1,200}` (or `.`, `..`, or ending in `.tmp`).
    #[error("journal: invalid consumer name {0:?}")]
    ConsumerName(String),
    /// A payload longer than [`MAX_RECORD`]; nothing of its batch was appended.
    #[error("journal: record of {len} bytes, over the maximum of {MAX_RECORD}")]
    TooLarge {
        /// The payload's length.
        len: usize,
    },
    /// The configuration cannot work.
    #[error("journal: invalid configuration: {0}")]
    Config(String),
    /// Another journal holds the directory (in this process or another).
    #[error("journal: {0} is in use by another journal")]
    Locked(PathBuf),
}

/// A segment: the first seq it holds and its length in bytes.
#[derive(Debug, Clone, Copy)]
struct Seg {
    first: u64,
    len: u64,
}

/// A journal open for appending and reading: see the [module](self) documentation.
#[derive(Debug)]
pub struct Journal {
    config: JournalConfig,
    /// Oldest first; the last one is the active segment.
    segs: VecDeque<Seg>,
    active: File,
    next_seq: u64,
    size: u64,
    /// When the oldest record not yet fdatasynced was written.
    dirty_since: Option<Instant>,
    /// A failed write may have left bytes past the active segment's length.
    torn: bool,
    buf: Vec<u8>,
    offsets: offsets::Offsets,
    corrupt_records: u64,
    _lock: nix::fcntl::Flock<File>,
}

impl Journal {
    /// Appends each payload as one record, with one write, and returns the seq of the first.
    /// A write or fdatasync error leaves nothing of the batch: append it again later.
    pub fn append<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<u64, JournalError> {
        let first = self.next_seq;
        let n = self.encode(payloads)?;
        if n == 0 {
            return Ok(first);
        }
        if self.roll_due(self.buf.len() as u64) {
            self.roll()?;
        }
        self.write_batch(n)?;
        Ok(first)
    }

    fn encode<'a>(
        &mut self,
        payloads: impl IntoIterator<Item = &'a [u8]>,
    ) -> Result<u64, JournalError> {
        self.buf.clear();
        let mut seq = self.next_seq;
        for p in payloads {
            if p.len() > MAX_RECORD {
                return Err(JournalError::TooLarge { len: p.len() });
            }
            segment::push_record(&mut self.buf, seq, p);
            seq += 1;
        }
        Ok(seq - self.next_seq)
    }

    fn roll_due(&self, batch: u64) -> bool {
        let len = self.active_len();
        len > HEADER_LEN && len + batch > self.config.segment_size
    }

    fn write_batch(&mut self, n: u64) -> Result<(), JournalError> {
        let at = self.active_len();
        let always = self.config.fsync == FsyncPolicy::Always;
        self.untear(at)?;
        let written = self.active.write_all_at(&self.buf, at);
        let synced = written.and_then(|()| match always {
            true => self.active.sync_data(),
            false => Ok(()),
        });
        if let Err(e) = synced {
            // No torn record stays: a reader or a recovery never sees part of this batch.
            self.torn = self.active.set_len(at).is_err();
            return Err(io_err("appending to", &self.active_path())(e));
        }
        let len = self.buf.len() as u64;
        self.segs.back_mut().expect("an active segment").len += len;
        self.size += len;
        self.next_seq += n;
        if !always {
            self.dirty_since.get_or_insert_with(Instant::now);
        }
        Ok(())
    }

    /// Truncates what a failed write left past `at`, if that failed before.
    fn untear(&mut self, at: u64) -> Result<(), JournalError> {
        if self.torn {
            let path = self.active_path();
            self.active
                .set_len(at)
                .map_err(io_err("truncating", &path))?;
            self.torn = false;
        }
        Ok(())
    }

    /// Closes the full active segment (fdatasynced) and starts the next.
    fn roll(&mut self) -> Result<(), JournalError> {
        self.sync_active()?;
        let prev = self.segs.back().expect("an active segment").first;
        let header = Header {
            first: self.next_seq,
            prev,
        };
        self.active = segment::create_segment(&self.config.dir, header)?;
        self.segs.push_back(Seg {
            first: self.next_seq,
            len: HEADER_LEN,
        });
        self.size += HEADER_LEN;
        Ok(())
    }

    fn sync_active(&mut self) -> Result<(), JournalError> {
        let path = self.active_path();
        self.active.sync_data().map_err(io_err("syncing", &path))?;
        self.dirty_since = None;
        Ok(())
    }

    fn active_len(&self) -> u64 {
        self.segs.back().expect("an active segment").len
    }

    fn active_path(&self) -> PathBuf {
        segment_path(
            &self.config.dir,
            self.segs.back().expect("an active segment").first,
        )
    }

    /// The seq the next record appended gets.
    pub fn next_seq(&self) -> u64 {
        self.next_seq
    }

    /// The oldest seq retained (`next_seq` when the journal holds no record).
    pub fn first_seq(&self) -> u64 {
        self.segs.front().map_or(self.next_seq, |s| s.first)
    }

    /// Bytes of all the segment files.
    pub fn size(&self) -> u64 {
        self.size
    }

    /// Whether `bytes` more (the batch's payloads plus [`RECORD_OVERHEAD`] per record, see
    /// [`record_size`]) keep the journal within `max_size`. An empty journal always has room
    /// for one batch.
    pub fn has_room(&self, bytes: u64) -> bool {
        let header = if self.roll_due(bytes) { HEADER_LEN } else { 0 };
        self.first_seq() == self.next_seq || self.size + bytes + header <= self.config.max_size
    }

    /// When [`Journal::sync`] is due under [`FsyncPolicy::Interval`]; `None` when nothing
    /// waits for an fdatasync or under another policy.
    pub fn sync_due(&self) -> Option<Instant> {
        let interval = self.config.fsync == FsyncPolicy::Interval;
        let since = self.dirty_since.filter(|_| interval)?;
        Some(since + self.config.fsync_interval())
    }

    /// fdatasyncs the active segment if records were written since its last fdatasync.
    pub fn sync(&mut self) -> Result<(), JournalError> {
        if self.dirty_since.is_some() {
            self.sync_active()?;
        }
        Ok(())
    }

    /// Damaged records that reads skipped (with the rest of their segment).
    pub fn corrupt_records(&self) -> u64 {
        self.corrupt_records
    }

    /// The configuration the journal was opened with.
    pub fn config(&self) -> &JournalConfig {
        &self.config
    }

    /// The next seq `consumer` needs (every record below is done with), if it committed
    /// one, in this run or a past one.
    pub fn committed(&self, consumer: &str) -> Option<u64> {
        self.offsets.get(consumer)
    }

    /// Records that `consumer` is done with every record below `next_needed`, in memory:
    /// [`Journal::checkpoint`] makes it durable. An offset is only ever raised, and at most
    /// to `next_seq`; a new name is added (it retains data only if in `config.consumers`).
    /// An invalid name (see [`check_consumer_name`]) is ignored: [`Journal::try_commit`]
    /// tells.
    pub fn commit(&mut self, consumer: &str, next_needed: u64) {
        if let Err(e) = self.try_commit(consumer, next_needed) {
            tracing::debug!(error = %e, "commit ignored");
        }
    }

    /// [`Journal::commit`], failing on an invalid consumer name.
    pub fn try_commit(&mut self, consumer: &str, next_needed: u64) -> Result<(), JournalError> {
        offsets::check_name(consumer)?;
        self.offsets.raise(consumer, next_needed.min(self.next_seq));
        Ok(())
    }

    /// The smallest offset of `config.consumers` (one that never committed counts as the
    /// oldest record); `next_seq` with no consumers.
    pub fn oldest_unconsumed(&self) -> u64 {
        let first = self.first_seq();
        let consumers = self.config.consumers.iter();
        let min = consumers.map(|c| self.committed(c).unwrap_or(first)).min();
        min.unwrap_or(self.next_seq)
    }

    /// Saves the changed offsets durably, then deletes the segments wholly below
    /// [`Journal::oldest_unconsumed`] (never the active one); returns how many were deleted.
    /// The records are fdatasynced first, so no offset is durable ahead of its records.
    pub fn checkpoint(&mut self) -> Result<usize, JournalError> {
        self.sync()?;
        self.offsets.persist()?;
        self.delete_below(self.oldest_unconsumed())
    }

    /// Deletes the segments holding only seqs below `seq` (not the active one), then fsyncs
    /// the directory.
    fn delete_below(&mut self, seq: u64) -> Result<usize, JournalError> {
        let mut deleted = 0;
        let mut result = Ok(());
        while self.segs.len() > 1 && self.segs[1].first <= seq {
            let path = segment_path(&self.config.dir, self.segs[0].first);
            match std::fs::remove_file(&path) {
                Err(e) if e.kind() != std::io::ErrorKind::NotFound => {
                    result = Err(io_err("deleting", &path)(e));
                    break;
                }
                _ => {}
            }
            let seg = self.segs.pop_front().expect("a segment");
            self.size -= seg.len;
            deleted += 1;
        }
        if deleted > 0 {
            sync_dir(&self.config.dir)?;
        }
        result.map(|()| deleted)
    }
}

/// Bytes a record of `payload_len` bytes takes in a segment.
pub fn record_size(payload_len: usize) -> u64 {
    (RECORD_OVERHEAD + payload_len) as u64
}

/// Creates `dir` (mode 0750) and its parents if missing.
fn create_dir(dir: &Path) -> Result<(), JournalError> {
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o750)
        .create(dir)
        .map_err(io_err("creating directory", dir))
}
