//! Consumer offsets: one small file per consumer, `offsets/NAME`, holding the next seq the
//! consumer needs and a checksum: `SEQ CRC\n`, CRC being the crc32c of `NAME SEQ` in hex.
//! A file is replaced whole (tmp, fsync, rename, fsync dir), so it is the old or the new
//! value after a crash; one that is missing or does not parse means "from the oldest record".

use std::collections::BTreeMap;
use std::fs::OpenOptions;
use std::io::{self, Write};
use std::os::unix::fs::OpenOptionsExt;
use std::path::{Path, PathBuf};

use super::segment::{io_err, sync_dir};
use super::JournalError;

const TMP: &str = ".tmp";

/// Checks a consumer name: 1 to 200 of `[A-Za-z0-9._:-]`, not `.` or `..`, not ending in
/// `.tmp` (the temporary files' suffix).
pub fn check_name(name: &str) -> Result<(), JournalError> {
    let ok_char = |b: u8| b.is_ascii_alphanumeric() || b".:_-".contains(&b);
    let ok = (1..=200).contains(&name.len())
        && name.bytes().all(ok_char)
        && name != "."
        && name != ".."
        && !name.ends_with(TMP);
    if ok {
        Ok(())
    } else {
        Err(JournalError::ConsumerName(name.to_owned()))
    }
}

#[derive(Debug, Clone, Copy)]
struct Entry {
    next: u64,
    /// What the file holds (`None`: no valid file).
    saved: Option<u64>,
}

/// What loading the offsets directory found besides the offsets.
#[derive(Debug, Default)]
pub(super) struct Loaded {
    pub tmp_removed: usize,
    pub bad_files: usize,
}

/// The offsets in memory, and which of them the files lag behind.
#[derive(Debug)]
pub(super) struct Offsets {
    dir: PathBuf,
    map: BTreeMap<String, Entry>,
}

impl Offsets {
    /// Reads every offset file of `dir`, removing temporary files a crash left.
    pub fn load(dir: &Path) -> Result<(Offsets, Loaded), JournalError> {
        let mut offsets = Offsets {
            dir: dir.to_owned(),
            map: BTreeMap::new(),
        };
        let mut loaded = Loaded::default();
        for entry in std::fs::read_dir(dir).map_err(io_err("listing", dir))? {
            let entry = entry.map_err(io_err("listing", dir))?;
            let Some(name) = entry.file_name().to_str().map(str::to_owned) else {
                continue;
            };
            if name.ends_with(TMP) {
                let path = entry.path();
                std::fs::remove_file(&path).map_err(io_err("removing", &path))?;
                loaded.tmp_removed += 1;
            } else if check_name(&name).is_ok() {
                match read_offset(&entry.path(), &name) {
                    Some(next) => offsets.insert_saved(name, next),
                    None => loaded.bad_files += 1,
                }
            }
        }
        if loaded.tmp_removed > 0 {
            sync_dir(dir)?;
        }
        Ok((offsets, loaded))
    }

    fn insert_saved(&mut self, name: String, next: u64) {
        let saved = Some(next);
        self.map.insert(name, Entry { next, saved });
    }

    pub fn get(&self, name: &str) -> Option<u64> {
        self.map.get(name).map(|e| e.next)
    }

    /// Raises `name`'s offset to `next` (adding the name if new); never lowers it.
    pub fn raise(&mut self, name: &str, next: u64) {
        match self.map.get_mut(name) {
            Some(e) => e.next = e.next.max(next),
            None => {
                let saved = None;
                self.map.insert(name.to_owned(), Entry { next, saved });
            }
        }
    }

    /// Keeps every offset within `[lo, hi]`.
    pub fn clamp(&mut self, lo: u64, hi: u64) {
        for e in self.map.values_mut() {
            e.next = e.next.clamp(lo, hi);
        }
    }

    pub fn max(&self) -> Option<u64> {
        self.map.values().map(|e| e.next).max()
    }

    pub fn list(&self) -> Vec<(String, u64)> {
        self.map.iter().map(|(k, e)| (k.clone(), e.next)).collect()
    }

    /// Writes every offset that changed since it was last saved, then fsyncs the directory
    /// once for all the renames.
    pub fn persist(&mut self) -> Result<usize, JournalError> {
        let mut written = 0;
        for (name, e) in self.map.iter_mut().filter(|(_, e)| e.saved != Some(e.next)) {
            write_offset(&self.dir, name, e.next)?;
            e.saved = Some(e.next);
            written += 1;
        }
        if written > 0 {
            sync_dir(&self.dir)?;
        }
        Ok(written)
    }
}

pub(super) fn encode(name: &str, next: u64) -> String {
    let crc = crc32c::crc32c(format!("{name} {next}").as_bytes());
    format!("{next} {crc:08x}\n")
}

pub(super) fn decode(name: &str, text: &str) -> Option<u64> {
    let (seq, crc) = text.strip_suffix('\n')?.split_once(' ')?;
    let next: u64 = seq.parse().ok()?;
    let crc = u32::from_str_radix(crc, 16).ok()?;
    (crc32c::crc32c(format!("{name} {next}").as_bytes()) == crc).then_some(next)
}

fn read_offset(path: &Path, name: &str) -> Option<u64> {
    let text = std::fs::read_to_string(path).ok()?;
    decode(name, &text)
}

/// Replaces `dir/name` durably, except for the directory fsync (the caller's, once).
fn write_offset(dir: &Path, name: &str, next: u64) -> Result<(), JournalError> {
    let path = dir.join(name);
    let tmp = dir.join(format!("{name}{TMP}"));
    let written = (|| -> io::Result<()> {
        let mut f = OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o640)
            .open(&tmp)?;
        f.write_all(encode(name, next).as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    })();
    written.map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        io_err("writing offset file", &path)(e)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names() {
        for ok in ["relp", "r-1", "a.b:c_d", "X9"] {
            assert!(check_name(ok).is_ok(), "{ok}");
        }
        for bad in ["", ".", "..", "a/b", "a b", "é", "x.tmp", &"a".repeat(201)] {
            assert!(check_name(bad).is_err(), "{bad}");
        }
    }

    #[test]
    fn encoding_round_trips_and_rejects_damage() {
        let text = encode("relp", 12345);
        assert_eq!(decode("relp", &text), Some(12345));
        assert_eq!(decode("other", &text), None, "the name is in the checksum");
        assert_eq!(decode("relp", &text[..text.len() - 1]), None, "torn");
        assert_eq!(decode("relp", &text.replace("12345", "12346")), None);
        assert_eq!(decode("relp", ""), None);
    }
}
