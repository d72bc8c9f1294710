//! Opening a journal: recovery, as Kafka's `LogSegment.recover`. Only the last segment can
//! hold a torn write (a segment is fdatasynced before the next is created), so only its
//! records are walked; the older ones have their headers checked, which also shows a
//! missing segment (each header names its predecessor).

use std::collections::VecDeque;
use std::fs::{File, OpenOptions};
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::Path;

use nix::fcntl::{Flock, FlockArg};

use super::offsets::{self, Offsets};
use super::segment::{self, io_err, segment_path, sync_dir, Header, ScanError, Scanner};
use super::{create_dir, Journal, JournalConfig, JournalError, Seg};
use super::{HEADER_LEN, MAX_RECORD, RECORD_OVERHEAD};

/// What [`Journal::open`] found and repaired.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Recovery {
    /// Segment files after recovery.
    pub segments: usize,
    /// Records in them.
    pub records: u64,
    /// The oldest seq retained.
    pub first_seq: u64,
    /// The seq the next record gets.
    pub next_seq: u64,
    /// Bytes cut from the last segment: a torn or damaged tail.
    pub cut_bytes: u64,
    /// Records the cut bytes held, as far as they could be walked (the first bad one counts).
    pub cut_records: u64,
    /// Last segments removed because their header was torn (a crash while rolling).
    pub torn_segments_removed: usize,
    /// Older segments whose header is damaged: kept; a read skips their records.
    pub bad_headers: usize,
    /// Missing segments above the smallest committed offset: lost records, reported.
    pub gaps: usize,
    /// Sequence numbers skipped because an offset was past the records kept (records a
    /// consumer had committed were lost): no seq is given twice.
    pub skipped_seqs: u64,
    /// Leftovers removed: segments below every consumer's offset (a deletion a crash
    /// interrupted) and temporary offset files.
    pub leftovers_removed: usize,
    /// Offset files that could not be read: those consumers start from the oldest record.
    pub bad_offsets: usize,
    /// The offsets loaded, by consumer name.
    pub offsets: Vec<(String, u64)>,
}

/// The consumer offsets' subdirectory.
const OFFSETS_DIR: &str = "offsets";

/// Chunk of the recovery walk.
const WALK_CHUNK: usize = 1 << 20;

/// A segment file found at open.
#[derive(Debug, Clone, Copy)]
struct Listed {
    first: u64,
    len: u64,
    /// The predecessor its header names (`None`: damaged header).
    prev: Option<u64>,
}

/// The last segment after its walk.
struct Tail {
    file: File,
    len: u64,
    next_seq: u64,
}

impl Journal {
    /// Opens the journal of `config.dir`, creating it if missing, and recovers what a crash
    /// left: a torn tail is cut, a half-created last segment removed, an interrupted
    /// deletion finished, temporary offset files removed. Damage that loses records opens
    /// all the same and is counted in the [`Recovery`].
    pub fn open(config: &JournalConfig) -> Result<(Journal, Recovery), JournalError> {
        check_config(config)?;
        let dir = &config.dir;
        let lock = prepare_dir(dir)?;
        let (offsets, loaded) = Offsets::load(&dir.join(OFFSETS_DIR))?;
        let mut rec = Recovery {
            leftovers_removed: loaded.tmp_removed,
            bad_offsets: loaded.bad_files,
            ..Recovery::default()
        };
        let (listed, floor) = list_segments(dir, &mut rec)?;
        rec.gaps = count_gaps(&listed, &offsets, &config.consumers);
        // No seq is given twice: not one a removed segment was named by, nor one a
        // consumer committed past.
        let floor = floor.max(offsets.max().unwrap_or(1)).max(1);
        let (segs, active, walked) = open_segments(dir, &listed, floor, &mut rec)?;
        let journal = Journal {
            config: config.clone(),
            size: segs.iter().map(|s| s.len).sum(),
            segs,
            active,
            next_seq: walked,
            dirty_since: None,
            torn: false,
            buf: Vec::new(),
            offsets,
            corrupt_records: 0,
            _lock: lock,
        };
        journal.finish_open(floor, rec)
    }

    fn finish_open(
        mut self,
        floor: u64,
        mut rec: Recovery,
    ) -> Result<(Journal, Recovery), JournalError> {
        if floor > self.next_seq {
            // A new segment continues the numbering; reads jump the hole.
            rec.skipped_seqs = floor - self.next_seq;
            self.next_seq = floor;
            self.roll()?;
        }
        self.offsets.clamp(self.first_seq(), self.next_seq);
        rec.leftovers_removed += self.delete_below(self.oldest_unconsumed())?;
        rec.segments = self.segs.len();
        rec.first_seq = self.first_seq();
        rec.next_seq = self.next_seq;
        rec.records = self.records_retained(floor, rec.skipped_seqs);
        rec.offsets = self.offsets.list();
        Ok((self, rec))
    }

    /// Seqs from the first retained to `next_seq` (each segment ends where the next
    /// begins), less the skipped ones if the hole is still retained.
    fn records_retained(&self, floor: u64, skipped: u64) -> u64 {
        let hole = if self.first_seq() < floor { skipped } else { 0 };
        (self.next_seq - self.first_seq()).saturating_sub(hole)
    }
}

/// The segments with the last one walked (and cut), or a first segment starting at
/// `floor` if there is none; the active segment's file; the next seq.
fn open_segments(
    dir: &Path,
    listed: &[Listed],
    floor: u64,
    rec: &mut Recovery,
) -> Result<(VecDeque<Seg>, File, u64), JournalError> {
    if let Some(last) = listed.last() {
        let tail = recover_tail(dir, last.first, rec)?;
        return Ok((to_segs(listed, tail.len), tail.file, tail.next_seq));
    }
    let header = Header {
        first: floor,
        prev: 0,
    };
    let file = segment::create_segment(dir, header)?;
    let len = HEADER_LEN;
    Ok((VecDeque::from([Seg { first: floor, len }]), file, floor))
}

/// Creates the directories if missing and takes the lock; the names they hold are made
/// durable before any data.
fn prepare_dir(dir: &Path) -> Result<Flock<File>, JournalError> {
    let created = !dir.exists();
    create_dir(&dir.join(OFFSETS_DIR))?;
    let lock = lock(dir)?;
    sync_dir(dir)?;
    let parent = dir.parent().filter(|p| !p.as_os_str().is_empty());
    if let Some(parent) = parent.filter(|_| created) {
        sync_dir(parent)?;
    }
    Ok(lock)
}

fn check_config(config: &JournalConfig) -> Result<(), JournalError> {
    if config.segment_size < HEADER_LEN + RECORD_OVERHEAD as u64 {
        let min = HEADER_LEN + RECORD_OVERHEAD as u64;
        return Err(JournalError::Config(format!(
            "segment_size under {min} bytes"
        )));
    }
    config
        .consumers
        .iter()
        .try_for_each(|c| offsets::check_name(c))
}

/// Takes the directory's lock file, so that two journals never write the same segments.
fn lock(dir: &Path) -> Result<Flock<File>, JournalError> {
    let path = dir.join("lock");
    let file = OpenOptions::new()
        .create(true)
        .truncate(false)
        .write(true)
        .mode(0o640)
        .open(&path)
        .map_err(io_err("opening", &path))?;
    Flock::lock(file, FlockArg::LockExclusiveNonblock).map_err(|(_, errno)| match errno {
        nix::errno::Errno::EWOULDBLOCK => JournalError::Locked(dir.to_owned()),
        e => io_err("locking", &path)(e.into()),
    })
}

/// The segment files of `dir`, oldest first, with their headers checked. A last segment
/// with a torn header and no record (a crash while rolling) is removed; the returned floor
/// is the first seq it was named by. A damaged header elsewhere is counted and the segment
/// kept: its records have their own checksums.
fn list_segments(dir: &Path, rec: &mut Recovery) -> Result<(Vec<Listed>, u64), JournalError> {
    let mut firsts = Vec::new();
    for entry in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
        let entry = entry.map_err(io_err("listing", dir))?;
        if let Some(first) = entry
            .file_name()
            .to_str()
            .and_then(segment::parse_segment_name)
        {
            firsts.push(first);
        }
    }
    firsts.sort_unstable();
    let mut listed = firsts
        .into_iter()
        .map(|first| check_segment(dir, first))
        .collect::<Result<Vec<_>, _>>()?;
    let mut floor = 0;
    while listed
        .last()
        .is_some_and(|l| l.prev.is_none() && l.len <= HEADER_LEN)
    {
        let last = listed.pop().expect("a last segment");
        let path = segment_path(dir, last.first);
        std::fs::remove_file(&path).map_err(io_err("removing torn segment", &path))?;
        sync_dir(dir)?;
        rec.torn_segments_removed += 1;
        floor = floor.max(last.first);
    }
    rec.bad_headers = listed.iter().filter(|l| l.prev.is_none()).count();
    Ok((listed, floor))
}

fn check_segment(dir: &Path, first: u64) -> Result<Listed, JournalError> {
    let path = segment_path(dir, first);
    let file = File::open(&path).map_err(io_err("opening segment", &path))?;
    let len = file.metadata().map_err(io_err("reading", &path))?.len();
    let header = segment::read_header(&file).map_err(io_err("reading", &path))?;
    let prev = header.filter(|h| h.first == first).map(|h| h.prev);
    Ok(Listed { first, len, prev })
}

/// Missing segments that held records a consumer still needs: before the first segment,
/// when a consumer's saved offset is below it; between two segments, when the second one's
/// header names another predecessor and starts above the smallest saved offset (a consumer
/// with no saved offset needs every record).
fn count_gaps(listed: &[Listed], offsets: &Offsets, consumers: &[String]) -> usize {
    if consumers.is_empty() {
        return 0;
    }
    let saved: Vec<u64> = consumers.iter().filter_map(|c| offsets.get(c)).collect();
    let needed = if saved.len() == consumers.len() {
        saved.iter().copied().min().unwrap_or(0)
    } else {
        0
    };
    // Seqs start at 1: an offset of 0 (committed before any record was done) needs none
    // below it.
    let leading = listed
        .first()
        .is_some_and(|l| saved.iter().any(|&s| s.max(1) < l.first));
    let between = listed.windows(2).filter(|w| {
        let other_prev = w[1].prev.is_some_and(|p| p != w[0].first);
        other_prev && w[1].first > needed
    });
    usize::from(leading) + between.count()
}

fn to_segs(listed: &[Listed], last_len: u64) -> VecDeque<Seg> {
    let mut segs: VecDeque<Seg> = listed
        .iter()
        .map(|l| Seg {
            first: l.first,
            len: l.len,
        })
        .collect();
    if let Some(last) = segs.back_mut() {
        last.len = last_len;
    }
    segs
}

/// Walks the last segment's records and cuts its tail at the first bad one: a length over
/// the maximum or past the end, a checksum mismatch, or a seq out of order.
fn recover_tail(dir: &Path, first: u64, rec: &mut Recovery) -> Result<Tail, JournalError> {
    let path = segment_path(dir, first);
    let file = segment::open_segment(dir, first)?;
    let file_len = file.metadata().map_err(io_err("reading", &path))?.len();
    let mut scanner = Scanner::new(WALK_CHUNK);
    scanner.reset(HEADER_LEN, file_len);
    let mut next_seq = first;
    let cut = loop {
        let good = scanner.pos;
        match scanner.next(&file) {
            Ok(Some((seq, _))) if seq == next_seq => next_seq += 1,
            Ok(None) => break None,
            Ok(Some(_)) | Err(ScanError::Bad(_)) => break Some(good),
            Err(ScanError::Io(e)) => return Err(io_err("reading", &path)(e)),
        }
    };
    if let Some(cut) = cut {
        rec.cut_records = count_cut(&file, cut, file_len);
        rec.cut_bytes = file_len - cut;
        file.set_len(cut)
            .and_then(|()| file.sync_all())
            .map_err(io_err("cutting the torn tail of", &path))?;
    }
    let len = cut.unwrap_or(file_len);
    Ok(Tail {
        file,
        len,
        next_seq,
    })
}

/// How many records the bytes from `cut` to `end` held: the bad one, then the whole ones
/// after it if its length field is plausible.
fn count_cut(file: &File, cut: u64, end: u64) -> u64 {
    let mut len = [0u8; 4];
    if file.read_exact_at(&mut len, cut).is_err() {
        return 1;
    }
    let next = cut + (RECORD_OVERHEAD + u32::from_le_bytes(len) as usize) as u64;
    if u32::from_le_bytes(len) as usize > MAX_RECORD || next > end {
        return 1;
    }
    let mut scanner = Scanner::new(WALK_CHUNK);
    scanner.reset(next, end);
    let mut n = 1;
    while let Ok(Some(_)) = scanner.next(file) {
        n += 1;
    }
    n
}
