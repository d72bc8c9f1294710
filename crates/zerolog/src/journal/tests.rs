//! The journal's behaviour without crashes: appends, reads, offsets, deletion, limits.
//! Crashes and damage are in `crash_tests`.

use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use super::*;

/// A configuration in `dir` with small segments, and a consumer that never commits, so
/// that everything is retained.
pub(super) fn config(dir: &Path, segment_size: u64) -> JournalConfig {
    JournalConfig {
        dir: dir.to_owned(),
        segment_size,
        fsync: FsyncPolicy::Never,
        consumers: vec!["keep".into()],
        ..JournalConfig::default()
    }
}

/// The payload a test writes as record `seq`: derivable from it, of varying length.
pub(super) fn payload(seq: u64) -> Vec<u8> {
    format!("record {seq};")
        .repeat((seq % 7 + 1) as usize)
        .into_bytes()
}

/// Appends records up to (excluding) `end`, in batches of `batch`.
pub(super) fn append_to(j: &mut Journal, end: u64, batch: u64) {
    while j.next_seq() < end {
        let seqs = j.next_seq()..(j.next_seq() + batch).min(end);
        let payloads: Vec<Vec<u8>> = seqs.clone().map(payload).collect();
        let first = j.append(payloads.iter().map(Vec::as_slice)).unwrap();
        assert_eq!(first, seqs.start);
    }
}

/// Reads every record from `from` with a fresh cursor, in reads of `max` records.
pub(super) fn read_from(j: &mut Journal, from: u64, max: usize) -> Vec<(u64, Vec<u8>)> {
    let (mut cursor, mut out, mut at) = (Cursor::new(), Vec::new(), from);
    loop {
        let next = j
            .read(&mut cursor, at, max, usize::MAX, |s, p| {
                out.push((s, p.to_vec()))
            })
            .unwrap();
        if next == at {
            return out;
        }
        at = next;
    }
}

/// Asserts the journal holds exactly the records `first..next`, each with its payload.
pub(super) fn assert_holds(j: &mut Journal, first: u64, next: u64) {
    assert_eq!((j.first_seq(), j.next_seq()), (first, next));
    let got = read_from(j, 0, 1000);
    assert_eq!(got.len() as u64, next - first);
    for (i, (seq, p)) in got.iter().enumerate() {
        assert_eq!(*seq, first + i as u64);
        assert_eq!(*p, payload(*seq), "payload of {seq}");
    }
}

/// The segment files of `dir`, oldest first.
pub(super) fn segments(dir: &Path) -> Vec<PathBuf> {
    let mut v: Vec<PathBuf> = std::fs::read_dir(dir)
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "seg"))
        .collect();
    v.sort();
    v
}

#[test]
fn round_trip_across_many_rolls() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, rec) = Journal::open(&config(dir.path(), 1024)).unwrap();
    assert_eq!((rec.first_seq, rec.next_seq, rec.segments), (1, 1, 1));
    assert_eq!(
        segments(dir.path())[0].file_name().unwrap(),
        "00000000000000000001.seg"
    );
    append_to(&mut j, 3001, 7);
    assert!(segments(dir.path()).len() > 100);
    assert_holds(&mut j, 1, 3001);
    let size: u64 = segments(dir.path())
        .iter()
        .map(|p| p.metadata().unwrap().len())
        .sum();
    assert_eq!(j.size(), size);
    // Reads of one record at a time, and limited by bytes, see the same.
    assert_eq!(read_from(&mut j, 1, 1).len(), 3000);
    let mut cursor = Cursor::new();
    let (mut at, mut n) = (1, 0);
    while at < j.next_seq() {
        at = j
            .read(&mut cursor, at, usize::MAX, 0, |_, _| n += 1)
            .unwrap();
    }
    assert_eq!(n, 3000, "max_bytes 0 still reads one record a call");
}

#[test]
fn readers_keep_their_own_positions() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(&config(dir.path(), 2048)).unwrap();
    append_to(&mut j, 501, 10);
    let (mut a, mut b) = (Cursor::new(), Cursor::new());
    let (mut at_a, mut at_b) = (1, 250);
    let mut seen = Vec::new();
    for _ in 0..30 {
        at_a = j
            .read(&mut a, at_a, 9, usize::MAX, |s, _| seen.push(s))
            .unwrap();
        at_b = j
            .read(&mut b, at_b, 13, usize::MAX, |s, _| seen.push(s))
            .unwrap();
        let end = j.next_seq() + 5;
        append_to(&mut j, end, 5);
    }
    assert_eq!((at_a, at_b), (1 + 9 * 30, 250 + 13 * 30));
    // Any `from`, with a cursor positioned elsewhere.
    let mut got = Vec::new();
    assert_eq!(
        j.read(&mut a, 77, 3, usize::MAX, |s, p| got.push((s, p.to_vec())))
            .unwrap(),
        80
    );
    assert_eq!(got, (77..80).map(|s| (s, payload(s))).collect::<Vec<_>>());
    assert_eq!(
        j.read(&mut a, j.next_seq(), 3, usize::MAX, |_, _| panic!())
            .unwrap(),
        j.next_seq()
    );
}

#[test]
fn reopen_continues_the_sequence() {
    let dir = tempfile::tempdir().unwrap();
    for round in 1..=3u64 {
        let (mut j, rec) = Journal::open(&config(dir.path(), 4096)).unwrap();
        assert_eq!(rec.next_seq, (round - 1) * 200 + 1);
        assert_eq!((rec.cut_bytes, rec.records), (0, (round - 1) * 200));
        append_to(&mut j, round * 200 + 1, 33);
        assert_holds(&mut j, 1, round * 200 + 1);
    }
}

#[test]
fn empty_batches_and_oversized_records() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(&config(dir.path(), 4096)).unwrap();
    assert_eq!(j.append([]).unwrap(), 1);
    let big = vec![0u8; MAX_RECORD + 1];
    let err = j.append([&b"fine"[..], &big]).unwrap_err();
    assert!(matches!(err, JournalError::TooLarge { .. }), "{err}");
    assert_eq!(j.next_seq(), 1, "nothing of the batch was appended");
    let max = vec![7u8; MAX_RECORD];
    assert_eq!(j.append([&max[..]]).unwrap(), 1);
    let mut len = 0;
    j.read(&mut Cursor::new(), 1, 1, 1, |_, p| len = p.len())
        .unwrap();
    assert_eq!(len, MAX_RECORD);
}

#[test]
fn config_from_json() {
    let c: JournalConfig =
        serde_json::from_str(r#"{"dir": "/j", "fsync": "always", "consumers": ["r1"]}"#).unwrap();
    assert_eq!(c.fsync, FsyncPolicy::Always);
    assert_eq!(
        (c.segment_size, c.max_size, c.fsync_interval()),
        (64 << 20, 1 << 30, Duration::from_millis(500))
    );
    assert!(serde_json::from_str::<JournalConfig>(r#"{"dri": "/j"}"#).is_err());
    assert!(serde_json::from_str::<JournalConfig>(r#"{"fsync": "sometimes"}"#).is_err());
}

#[test]
fn invalid_consumer_names_and_configs_are_rejected() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 4096);
    c.consumers = vec!["ok".into(), "not/ok".into()];
    assert!(matches!(Journal::open(&c), Err(JournalError::ConsumerName(n)) if n == "not/ok"));
    let c = config(dir.path(), 10);
    assert!(matches!(Journal::open(&c), Err(JournalError::Config(_))));
    let (mut j, _) = Journal::open(&config(dir.path(), 4096)).unwrap();
    assert!(j.try_commit("a b", 1).is_err());
    j.commit("a b", 1);
    assert_eq!(j.committed("a b"), None);
}

#[test]
fn a_directory_has_one_journal_at_a_time() {
    let dir = tempfile::tempdir().unwrap();
    let (j, _) = Journal::open(&config(dir.path(), 4096)).unwrap();
    assert!(matches!(
        Journal::open(&config(dir.path(), 4096)),
        Err(JournalError::Locked(_))
    ));
    drop(j);
    Journal::open(&config(dir.path(), 4096)).unwrap();
}

#[test]
fn sync_due_follows_the_policy() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1 << 20);
    c.fsync = FsyncPolicy::Interval;
    let (mut j, _) = Journal::open(&c).unwrap();
    assert_eq!(j.sync_due(), None);
    let before = Instant::now();
    j.append([&b"x"[..]]).unwrap();
    let due = j.sync_due().unwrap();
    assert!(due >= before + c.fsync_interval() && due <= Instant::now() + c.fsync_interval());
    j.append([&b"y"[..]]).unwrap();
    assert_eq!(
        j.sync_due(),
        Some(due),
        "due from the oldest unsynced write"
    );
    j.sync().unwrap();
    assert_eq!(j.sync_due(), None);
    for fsync in [FsyncPolicy::Always, FsyncPolicy::Never] {
        drop(j);
        (j, _) = Journal::open(&JournalConfig { fsync, ..c.clone() }).unwrap();
        j.append([&b"z"[..]]).unwrap();
        assert_eq!(j.sync_due(), None);
    }
}

#[test]
fn a_read_below_the_first_seq_starts_there() {
    let dir = tempfile::tempdir().unwrap();
    let c = JournalConfig {
        consumers: vec![],
        ..config(dir.path(), 1024)
    };
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 301, 10);
    j.checkpoint().unwrap();
    let first = j.first_seq();
    let mut seqs = Vec::new();
    let next = j
        .read(&mut Cursor::new(), 1, 1, usize::MAX, |s, _| seqs.push(s))
        .unwrap();
    assert_eq!((seqs, next), (vec![first], first + 1));
}

/// The cost of appending: 1,000,000 records of 100 bytes in batches of 1,000 (printed, not
/// asserted: machines differ).
#[test]
fn million_records_timing() {
    let dir = tempfile::tempdir().unwrap();
    let (mut j, _) = Journal::open(&JournalConfig {
        dir: dir.path().to_owned(),
        fsync: FsyncPolicy::Never,
        ..JournalConfig::default()
    })
    .unwrap();
    let payloads: Vec<Vec<u8>> = (0..1000).map(|i| vec![i as u8; 100]).collect();
    let start = Instant::now();
    for _ in 0..1000 {
        j.append(payloads.iter().map(Vec::as_slice)).unwrap();
    }
    let took = start.elapsed();
    println!(
        "1,000,000 appends of 100 bytes in batches of 1,000: {took:?} ({:?} a batch)",
        took / 1000
    );
    assert_eq!(j.next_seq(), 1_000_001);
}
