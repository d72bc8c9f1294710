//! The on-disk format: segment headers, records, and a chunked scanner over a segment's
//! records.
//!
//! A segment file is named by its first sequence number (20 digits, `.seg`) and starts with a
//! header: `magic "ZLJRNL01" | first seq u64 | previous segment's first seq u64 (0: none) |
//! crc32c of those 24 bytes u32 | 4 zero bytes`. The previous segment's number makes a
//! missing segment visible from the headers alone, without walking the records. Then come
//! records, `len u32 | crc32c(seq, payload) u32 | seq u64 | payload`, all little-endian.

use std::fs::{File, OpenOptions};
use std::io;
use std::os::unix::fs::{FileExt, OpenOptionsExt};
use std::path::{Path, PathBuf};

use super::JournalError;

/// First bytes of every segment file (the `01` is the format version).
pub(super) const MAGIC: &[u8; 8] = b"ZLJRNL01";
/// Bytes of a segment header.
pub const HEADER_LEN: u64 = 32;
/// Bytes a record takes besides its payload.
pub const RECORD_OVERHEAD: usize = 16;
/// The largest payload of one record; a longer length field is taken for damage.
pub const MAX_RECORD: usize = 16 << 20;

const SUFFIX: &str = ".seg";
const NAME_DIGITS: usize = 20;

/// The decoded header of a segment.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) struct Header {
    pub first: u64,
    /// First seq of the segment that preceded this one when it was created (0: none).
    pub prev: u64,
}

pub(super) fn encode_header(h: Header) -> [u8; HEADER_LEN as usize] {
    let mut b = [0u8; HEADER_LEN as usize];
    b[..8].copy_from_slice(MAGIC);
    b[8..16].copy_from_slice(&h.first.to_le_bytes());
    b[16..24].copy_from_slice(&h.prev.to_le_bytes());
    let crc = crc32c::crc32c(&b[..24]);
    b[24..28].copy_from_slice(&crc.to_le_bytes());
    b
}

pub(super) fn decode_header(b: &[u8]) -> Option<Header> {
    if b.len() < HEADER_LEN as usize || &b[..8] != MAGIC {
        return None;
    }
    if crc32c::crc32c(&b[..24]) != u32_at(b, 24) {
        return None;
    }
    Some(Header {
        first: u64_at(b, 8),
        prev: u64_at(b, 16),
    })
}

/// Reads and checks the header of `file`: `None` if it is short or damaged.
pub(super) fn read_header(file: &File) -> io::Result<Option<Header>> {
    let mut b = [0u8; HEADER_LEN as usize];
    match file.read_exact_at(&mut b, 0) {
        Ok(()) => Ok(decode_header(&b)),
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => Ok(None),
        Err(e) => Err(e),
    }
}

/// Appends one encoded record to `buf`.
pub(super) fn push_record(buf: &mut Vec<u8>, seq: u64, payload: &[u8]) {
    let seq_bytes = seq.to_le_bytes();
    let crc = crc32c::crc32c_append(crc32c::crc32c(&seq_bytes), payload);
    buf.extend_from_slice(&(payload.len() as u32).to_le_bytes());
    buf.extend_from_slice(&crc.to_le_bytes());
    buf.extend_from_slice(&seq_bytes);
    buf.extend_from_slice(payload);
}

/// What the bytes at a record boundary hold.
#[derive(Debug, PartialEq, Eq)]
pub(super) enum Parsed {
    /// A whole, checked record of `size` bytes (overhead included).
    Record { seq: u64, size: usize },
    /// At least this many bytes are needed to tell.
    Incomplete(usize),
    /// Not a record.
    Bad(&'static str),
}

pub(super) fn parse_record(b: &[u8]) -> Parsed {
    if b.len() < RECORD_OVERHEAD {
        return Parsed::Incomplete(RECORD_OVERHEAD);
    }
    let len = u32_at(b, 0) as usize;
    if len > MAX_RECORD {
        return Parsed::Bad("record length over the maximum");
    }
    let size = RECORD_OVERHEAD + len;
    if b.len() < size {
        return Parsed::Incomplete(size);
    }
    let crc = crc32c::crc32c_append(crc32c::crc32c(&b[8..16]), &b[16..size]);
    if crc != u32_at(b, 4) {
        return Parsed::Bad("record checksum mismatch");
    }
    Parsed::Record {
        seq: u64_at(b, 8),
        size,
    }
}

fn u32_at(b: &[u8], at: usize) -> u32 {
    u32::from_le_bytes(b[at..at + 4].try_into().expect("4 bytes"))
}

fn u64_at(b: &[u8], at: usize) -> u64 {
    u64::from_le_bytes(b[at..at + 8].try_into().expect("8 bytes"))
}

/// Why a scan stopped before the end.
#[derive(Debug)]
pub(super) enum ScanError {
    Io(io::Error),
    Bad(&'static str),
}

/// Reads a segment's records in chunks, from `pos` up to `end`. The bytes before a segment's
/// length never change, so what the buffer holds stays valid while the segment grows.
#[derive(Debug, Default)]
pub(super) struct Scanner {
    buf: Vec<u8>,
    buf_start: u64,
    pub pos: u64,
    pub end: u64,
    chunk: usize,
}

impl Scanner {
    pub fn new(chunk: usize) -> Scanner {
        Scanner {
            chunk,
            ..Scanner::default()
        }
    }

    /// Starts over at `pos`, forgetting the buffered bytes.
    pub fn reset(&mut self, pos: u64, end: u64) {
        self.buf.clear();
        self.buf_start = pos;
        self.pos = pos;
        self.end = end;
    }

    /// The next record (`None` at `end`); a record that runs past `end` is bad.
    pub fn next(&mut self, file: &File) -> Result<Option<(u64, &[u8])>, ScanError> {
        loop {
            let off = (self.pos - self.buf_start) as usize;
            let valid = (self.end.saturating_sub(self.buf_start) as usize).min(self.buf.len());
            match parse_record(&self.buf[off.min(valid)..valid]) {
                Parsed::Record { seq, size } => {
                    self.pos += size as u64;
                    return Ok(Some((seq, &self.buf[off + RECORD_OVERHEAD..off + size])));
                }
                Parsed::Incomplete(_) if self.pos >= self.end => return Ok(None),
                Parsed::Incomplete(need) if self.pos + need as u64 > self.end => {
                    return Err(ScanError::Bad("record runs past the end of the segment"))
                }
                Parsed::Incomplete(need) => self.fill(file, need).map_err(ScanError::Io)?,
                Parsed::Bad(why) => return Err(ScanError::Bad(why)),
            }
        }
    }

    fn fill(&mut self, file: &File, need: usize) -> io::Result<()> {
        let len = (need.max(self.chunk) as u64).min(self.end - self.pos) as usize;
        self.buf.clear();
        self.buf.resize(len, 0);
        file.read_exact_at(&mut self.buf, self.pos)?;
        self.buf_start = self.pos;
        Ok(())
    }
}

pub(super) fn segment_name(first: u64) -> String {
    format!("{first:0NAME_DIGITS$}{SUFFIX}")
}

pub(super) fn segment_path(dir: &Path, first: u64) -> PathBuf {
    dir.join(segment_name(first))
}

/// The first seq a segment file name stands for, if it is one.
pub(super) fn parse_segment_name(name: &str) -> Option<u64> {
    let digits = name.strip_suffix(SUFFIX)?;
    if digits.len() != NAME_DIGITS || !digits.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    digits.parse().ok()
}

/// Creates a segment with its header, durably: the file synced, then its directory.
pub(super) fn create_segment(dir: &Path, h: Header) -> Result<File, JournalError> {
    let path = segment_path(dir, h.first);
    let file = OpenOptions::new()
        .read(true)
        .write(true)
        .create_new(true)
        .mode(0o640)
        .open(&path)
        .map_err(io_err("creating segment", &path))?;
    let written = file
        .write_all_at(&encode_header(h), 0)
        .and_then(|()| file.sync_data())
        .map_err(io_err("writing segment header", &path))
        .and_then(|()| sync_dir(dir));
    if let Err(e) = written {
        drop(file);
        let _ = std::fs::remove_file(&path);
        return Err(e);
    }
    Ok(file)
}

/// Opens an existing segment for reading and appending.
pub(super) fn open_segment(dir: &Path, first: u64) -> Result<File, JournalError> {
    let path = segment_path(dir, first);
    OpenOptions::new()
        .read(true)
        .write(true)
        .open(&path)
        .map_err(io_err("opening segment", &path))
}

/// fsyncs a directory, so that the names created, renamed or removed in it are durable.
pub(super) fn sync_dir(dir: &Path) -> Result<(), JournalError> {
    File::open(dir)
        .and_then(|d| d.sync_all())
        .map_err(io_err("syncing directory", dir))
}

/// Maps an I/O error to [`JournalError::Io`] saying what was done to which path.
pub(super) fn io_err<'a>(
    what: &'a str,
    path: &'a Path,
) -> impl FnOnce(io::Error) -> JournalError + 'a {
    move |source| JournalError::Io {
        context: format!("{what} {}", path.display()),
        source,
    }
}
