//! Reading. Each reader owns a [`Cursor`], so that readers at different positions each
//! continue where they stopped without a search; the writer is never waited for: a read
//! takes the segment lengths as they are and reads its own file handle with `pread`.

use std::fs::File;

use super::segment::{io_err, segment_path, ScanError, Scanner};
use super::{Journal, JournalError, HEADER_LEN};

/// Bytes a cursor reads at a time.
const READ_CHUNK: usize = 256 << 10;

/// A reader's position in a [`Journal`]: pass the same cursor to each
/// [`read`](Journal::read) of one reader. A fresh cursor (or one whose position no longer
/// matches `from`) finds its place by walking the segment holding `from`. A cursor serves
/// one open journal: after a reopen, start with a new one.
#[derive(Debug)]
pub struct Cursor {
    /// The segment being read: its first seq, and a handle of its own.
    seg: Option<(u64, File)>,
    /// The seq the scanner's position stands for.
    next: u64,
    scanner: Scanner,
}

impl Default for Cursor {
    fn default() -> Self {
        Cursor {
            seg: None,
            next: 0,
            scanner: Scanner::new(READ_CHUNK),
        }
    }
}

impl Cursor {
    /// A cursor with no position yet.
    pub fn new() -> Cursor {
        Cursor::default()
    }
}

impl Journal {
    /// Calls `f(seq, payload)` for the records from `from` on, in order: at most
    /// `max_records` and about `max_bytes` of payload (at least one record if there is one).
    /// Returns the seq after the last record read, or `from` if none was. A `from` below
    /// [`first_seq`](Journal::first_seq) reads from there (the records below are gone).
    ///
    /// A damaged record in an older segment is counted ([`Journal::corrupt_records`]) and the
    /// rest of its segment skipped; one in the active segment is an error.
    pub fn read(
        &mut self,
        cursor: &mut Cursor,
        from: u64,
        max_records: usize,
        max_bytes: usize,
        mut f: impl FnMut(u64, &[u8]),
    ) -> Result<u64, JournalError> {
        let from = from.max(self.first_seq());
        if from >= self.next_seq || max_records == 0 {
            return Ok(from);
        }
        let mut idx = self.position(cursor, from)?;
        let (mut next, mut records, mut bytes) = (from, 0, 0);
        while records < max_records && (records == 0 || bytes < max_bytes) {
            let last = idx + 1 == self.segs.len();
            cursor.scanner.end = self.segs[idx].len;
            let file = &cursor.seg.as_ref().expect("a segment entered").1;
            match cursor.scanner.next(file) {
                Ok(Some((seq, payload))) => {
                    cursor.next = seq + 1;
                    if seq >= from {
                        f(seq, payload);
                        (next, records, bytes) = (seq + 1, records + 1, bytes + payload.len());
                    }
                }
                Ok(None) if last => break,
                Ok(None) => idx = self.enter(cursor, idx + 1)?,
                Err(ScanError::Bad(detail)) if last => {
                    let path = segment_path(&self.config.dir, self.segs[idx].first);
                    let detail = format!("{detail} at byte {}", cursor.scanner.pos);
                    return Err(JournalError::Corrupt { path, detail });
                }
                Err(ScanError::Bad(_)) => {
                    self.corrupt_records += 1;
                    idx = self.enter(cursor, idx + 1)?;
                }
                Err(ScanError::Io(e)) => {
                    let path = segment_path(&self.config.dir, self.segs[idx].first);
                    return Err(io_err("reading", &path)(e));
                }
            }
        }
        Ok(next)
    }

    /// The index of the segment to read `from` in, with the cursor placed: where it stopped
    /// if that was at `from` and its segment is still there, else at the segment's start.
    fn position(&self, cursor: &mut Cursor, from: u64) -> Result<usize, JournalError> {
        if let Some((first, _)) = &cursor.seg {
            let found = self.segs.binary_search_by_key(first, |s| s.first);
            if let (true, Ok(idx)) = (cursor.next == from, found) {
                return Ok(idx);
            }
        }
        let idx = self
            .segs
            .partition_point(|s| s.first <= from)
            .saturating_sub(1);
        self.enter(cursor, idx)
    }

    /// Places the cursor at the start of segment `idx`.
    fn enter(&self, cursor: &mut Cursor, idx: usize) -> Result<usize, JournalError> {
        let seg = self.segs[idx];
        let path = segment_path(&self.config.dir, seg.first);
        let file = File::open(&path).map_err(io_err("opening segment", &path))?;
        cursor.seg = Some((seg.first, file));
        cursor.scanner.reset(HEADER_LEN, seg.len);
        cursor.next = seg.first;
        Ok(idx)
    }
}
