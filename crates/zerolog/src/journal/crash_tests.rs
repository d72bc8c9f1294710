//! Crashes and damage: torn tails, flipped bits, a crash while rolling or deleting, a write
//! error, and a writer killed with SIGKILL. The last two run in a child process (this test
//! binary again, running one test with `CHILD_DIR` set).

use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::segment::{encode_header, parse_record, segment_path, Header, Parsed};
use super::tests::{append_to, assert_holds, config, payload, read_from, segments};
use super::*;

/// Where a child test finds its journal; unset, the child tests do nothing.
const CHILD_DIR: &str = "ZEROLOG_JOURNAL_CHILD_DIR";
const CHILD_FSYNC: &str = "ZEROLOG_JOURNAL_CHILD_FSYNC";

/// The records of a segment file: seq, offset and size of each.
fn records(bytes: &[u8]) -> Vec<(u64, usize, usize)> {
    let (mut out, mut at) = (Vec::new(), HEADER_LEN as usize);
    while let Parsed::Record { seq, size } = parse_record(&bytes[at..]) {
        out.push((seq, at, size));
        at += size;
    }
    out
}

fn flip_bit(path: &Path, at: usize) {
    let mut bytes = std::fs::read(path).unwrap();
    bytes[at] ^= 0x10;
    std::fs::write(path, bytes).unwrap();
}

#[test]
fn a_torn_tail_is_cut_at_every_byte_of_the_last_record() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), 1024);
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 51, 3);
    drop(j);
    let last = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&last).unwrap();
    let (seq, start, size) = *records(&bytes).last().unwrap();
    assert_eq!((seq, start + size), (50, bytes.len()));
    for cut in start..bytes.len() {
        std::fs::write(&last, &bytes[..cut]).unwrap();
        let (mut j, rec) = Journal::open(&c).unwrap();
        assert_eq!(rec.cut_bytes, (cut - start) as u64, "cut at {cut}");
        assert_eq!(rec.cut_records, u64::from(cut > start));
        assert_eq!(std::fs::metadata(&last).unwrap().len(), start as u64);
        assert_holds(&mut j, 1, 50);
        assert_eq!(j.append([payload(50).as_slice()]).unwrap(), 50);
        assert_holds(&mut j, 1, 51);
    }
}

#[test]
fn garbage_after_the_last_record_is_cut() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), 1 << 20);
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 21, 5);
    drop(j);
    let path = segments(dir.path()).pop().unwrap();
    let good = std::fs::read(&path).unwrap();
    let (_, start, _) = *records(&good).last().unwrap();
    let garbage: [Vec<u8>; 4] = [
        vec![0; 4096],
        (0..999u32).map(|i| (i * 7919 % 251) as u8).collect(),
        good[start..].to_vec(), // a valid record again: its seq is out of order
        vec![0xff; 3],
    ];
    for g in garbage {
        std::fs::write(&path, [&good[..], &g].concat()).unwrap();
        let (mut j, rec) = Journal::open(&c).unwrap();
        assert_eq!(rec.cut_bytes, g.len() as u64);
        assert_holds(&mut j, 1, 21);
        assert_eq!(j.append([payload(21).as_slice()]).unwrap(), 21);
        drop(j);
        std::fs::write(&path, &good).unwrap();
    }
}

#[test]
fn a_flipped_bit_in_the_last_segment_cuts_from_there() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), 1 << 20);
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 101, 10);
    drop(j);
    let path = segments(dir.path()).pop().unwrap();
    let bytes = std::fs::read(&path).unwrap();
    let (seq, start, size) = records(&bytes)[49];
    assert_eq!(seq, 50);
    flip_bit(&path, start + size / 2);
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!(
        (rec.cut_bytes, rec.cut_records),
        ((bytes.len() - start) as u64, 51)
    );
    assert_holds(&mut j, 1, 50);
    assert_eq!(j.append([payload(50).as_slice()]).unwrap(), 50);
}

#[test]
fn a_flipped_bit_in_an_older_segment_is_skipped_and_counted() {
    let dir = tempfile::tempdir().unwrap();
    let c = config(dir.path(), 1024);
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 301, 4);
    drop(j);
    let second = &segments(dir.path())[1];
    let recs = records(&std::fs::read(second).unwrap());
    let (bad, start, _) = recs[1];
    let end = recs.last().unwrap().0 + 1;
    flip_bit(second, start + RECORD_OVERHEAD + 1);
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!(
        (rec.cut_bytes, rec.next_seq),
        (0, 301),
        "only the last segment is walked"
    );
    let seqs: Vec<u64> = read_from(&mut j, 1, 7).iter().map(|r| r.0).collect();
    let expected: Vec<u64> = (1..bad).chain(end..301).collect();
    assert_eq!(seqs, expected);
    assert_eq!(j.corrupt_records(), 1);
}

#[test]
fn a_crash_while_rolling_leaves_a_usable_journal() {
    let cases: [(&str, usize, bool); 4] = [
        ("empty", 0, true),
        ("half header", 16, true),
        ("zeroed header", 32, true),
        ("whole header", 32, false),
    ];
    for (what, len, removed) in cases {
        let dir = tempfile::tempdir().unwrap();
        let c = config(dir.path(), 1024);
        let (mut j, _) = Journal::open(&c).unwrap();
        append_to(&mut j, 101, 5);
        let prev = j.segs.back().unwrap().first;
        drop(j);
        let mut header = encode_header(Header { first: 101, prev }).to_vec();
        if what == "zeroed header" {
            header.fill(0);
        }
        std::fs::write(segment_path(dir.path(), 101), &header[..len]).unwrap();
        let before = segments(dir.path()).len();
        let (mut j, rec) = Journal::open(&c).unwrap();
        assert_eq!(rec.torn_segments_removed, usize::from(removed), "{what}");
        assert_eq!(rec.segments, before - usize::from(removed), "{what}");
        assert_eq!(
            (rec.next_seq, rec.gaps, rec.bad_headers),
            (101, 0, 0),
            "{what}"
        );
        append_to(&mut j, 201, 5);
        assert_holds(&mut j, 1, 201);
    }
}

#[test]
fn a_crash_while_deleting_is_finished_at_open() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["r".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 301, 5);
    j.commit("r", 200);
    j.offsets.persist().unwrap(); // the offsets are durable; no segment was deleted yet
    let below: Vec<u64> = j
        .segs
        .iter()
        .zip(j.segs.iter().skip(1))
        .filter(|(_, n)| n.first <= 200)
        .map(|(s, _)| s.first)
        .collect();
    drop(j);
    assert!(below.len() > 3);
    // Unlinked in any order, the directory synced or not: the same as none or some unlinked.
    std::fs::remove_file(segment_path(dir.path(), below[1])).unwrap();
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!((rec.leftovers_removed, rec.gaps), (below.len() - 1, 0));
    let first = j.first_seq();
    assert!(first <= 200 && first > below[below.len() - 1]);
    assert_holds(&mut j, first, 301);
    assert_eq!(segments(dir.path())[0], segment_path(dir.path(), first));
    drop(j);
    // Every segment below the offset gone: nothing to finish, nothing lost.
    let (_, rec) = Journal::open(&c).unwrap();
    assert_eq!(
        (rec.leftovers_removed, rec.gaps, rec.first_seq),
        (0, 0, first)
    );
}

#[test]
fn a_missing_segment_above_the_offsets_is_a_gap() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["r".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 301, 5);
    j.commit("r", 20);
    j.checkpoint().unwrap();
    let lost = (j.segs[4].first, j.segs[5].first);
    drop(j);
    std::fs::remove_file(segment_path(dir.path(), lost.0)).unwrap();
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!((rec.gaps, rec.next_seq), (1, 301));
    let seqs: Vec<u64> = read_from(&mut j, 20, 10).iter().map(|r| r.0).collect();
    assert_eq!(seqs, (20..lost.0).chain(lost.1..301).collect::<Vec<_>>());
    // An offset below the first segment: the records that consumer needed are gone.
    drop(j);
    std::fs::write(dir.path().join("offsets/r"), offsets::encode("r", 1)).unwrap();
    let first = segments(dir.path())[0].clone();
    std::fs::remove_file(first).unwrap();
    let (_, rec) = Journal::open(&c).unwrap();
    assert_eq!(rec.gaps, 2);
}

#[test]
fn temporary_offset_files_are_removed() {
    let dir = tempfile::tempdir().unwrap();
    std::fs::create_dir_all(dir.path().join("offsets")).unwrap();
    std::fs::write(dir.path().join("offsets/r.tmp"), "12").unwrap();
    let (_, rec) = Journal::open(&config(dir.path(), 1024)).unwrap();
    assert_eq!(rec.leftovers_removed, 1);
    assert!(!dir.path().join("offsets/r.tmp").exists());
}

/// Runs one test of this binary in a child process with `CHILD_DIR` set to `dir`.
fn child(test: &str, dir: &Path, fsync: &str) -> Command {
    let mut cmd = Command::new(std::env::current_exe().unwrap());
    cmd.args(["--exact", test, "--nocapture", "--test-threads=1"])
        .env(CHILD_DIR, dir)
        .env(CHILD_FSYNC, fsync)
        .stdin(Stdio::null());
    cmd
}

#[test]
fn a_write_error_leaves_no_torn_record() {
    let dir = tempfile::tempdir().unwrap();
    let out = child(
        "journal::crash_tests::write_error_child",
        dir.path(),
        "always",
    )
    .output()
    .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(
        stdout.contains("1 passed"),
        "the child ran its test: {stdout}"
    );
}

/// With a file size limit (RLIMIT_FSIZE) standing in for a full disk: the batch that
/// crosses it fails part-written and is truncated away; later batches go on.
#[test]
fn write_error_child() {
    use nix::sys::resource::{getrlimit, setrlimit, Resource};
    use nix::sys::signal::{signal, SigHandler, Signal};
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    // SAFETY: ignoring a signal installs no handler code.
    unsafe { signal(Signal::SIGXFSZ, SigHandler::SigIgn) }.unwrap();
    let mut c = config(Path::new(&dir), 1 << 20);
    c.fsync = FsyncPolicy::Always;
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 11, 10);
    let path = segments(Path::new(&dir)).pop().unwrap();
    let len = std::fs::metadata(&path).unwrap().len();
    let (soft, hard) = getrlimit(Resource::RLIMIT_FSIZE).unwrap();
    setrlimit(Resource::RLIMIT_FSIZE, len + 1000, hard).unwrap();
    let batch: Vec<Vec<u8>> = (11..111).map(payload).collect();
    let err = j.append(batch.iter().map(Vec::as_slice)).unwrap_err();
    assert!(matches!(err, JournalError::Io { .. }), "{err}");
    assert_eq!(
        std::fs::metadata(&path).unwrap().len(),
        len,
        "the part written is gone"
    );
    assert_eq!(j.next_seq(), 11);
    assert_eq!(
        j.append([payload(11).as_slice()]).unwrap(),
        11,
        "a batch that fits"
    );
    setrlimit(Resource::RLIMIT_FSIZE, soft, hard).unwrap();
    assert_eq!(j.append(batch[1..].iter().map(Vec::as_slice)).unwrap(), 12);
    assert_holds(&mut j, 1, 111);
    drop(j);
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!(rec.cut_bytes, 0);
    assert_holds(&mut j, 1, 111);
}

/// A writer killed with SIGKILL at a random moment, 20 times in one directory: after each,
/// every record from the first retained to `next_seq` is there with its payload, no seq
/// went backwards, and no segment a consumer needed was deleted.
#[test]
fn a_writer_killed_at_random_loses_nothing_it_wrote() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 4096);
    c.consumers = vec!["c".into()];
    let clock = std::time::SystemTime::now().duration_since(std::time::UNIX_EPOCH);
    let mut rng = u64::from(clock.unwrap().subsec_nanos()) | 1;
    let mut next = 1;
    for round in 0..20 {
        let fsync = ["never", "interval", "always"][round % 3];
        let mut writer = child("journal::crash_tests::child_writer", dir.path(), fsync)
            .stdout(Stdio::null())
            .spawn()
            .unwrap();
        rng ^= rng << 13;
        rng ^= rng >> 7;
        rng ^= rng << 17;
        std::thread::sleep(Duration::from_millis(20 + rng % 181));
        writer.kill().unwrap(); // SIGKILL
        writer.wait().unwrap();
        let saved = std::fs::read_to_string(dir.path().join("offsets/c")).ok();
        let saved = saved.and_then(|t| offsets::decode("c", &t));
        let (mut j, rec) = Journal::open(&c).unwrap();
        assert!(rec.next_seq >= next, "round {round}: {rec:?}");
        assert_eq!(
            (rec.gaps, rec.skipped_seqs),
            (0, 0),
            "round {round}: {rec:?}"
        );
        assert!(
            saved.is_none_or(|s| s >= rec.first_seq),
            "round {round}: {saved:?} {rec:?}"
        );
        assert_holds(&mut j, rec.first_seq, rec.next_seq);
        next = rec.next_seq;
    }
    println!("20 kills: {} records written", next - 1);
    assert!(next > 1000, "the writers made progress");
}

/// The writer of the kill test: appends, commits with a lag and checkpoints until killed
/// (or for 10 s at most).
#[test]
fn child_writer() {
    let Some(dir) = std::env::var_os(CHILD_DIR) else {
        return;
    };
    let fsync = std::env::var(CHILD_FSYNC).unwrap();
    let mut c = config(Path::new(&dir), 4096);
    c.consumers = vec!["c".into()];
    c.fsync = serde_json::from_str(&format!("{fsync:?}")).unwrap();
    c.fsync_interval_ms = 5;
    let (mut j, _) = Journal::open(&c).unwrap();
    let start = Instant::now();
    let mut batches = 0u64;
    while start.elapsed() < Duration::from_secs(10) {
        batches += 1;
        let end = j.next_seq() + batches % 37 + 1;
        append_to(&mut j, end, 64);
        if j.sync_due().is_some_and(|t| t <= Instant::now()) {
            j.sync().unwrap();
        }
        if batches % 5 == 0 {
            j.commit("c", j.next_seq().saturating_sub(100));
            j.checkpoint().unwrap();
        }
    }
}
