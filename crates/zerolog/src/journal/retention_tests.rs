//! Consumers' offsets and what they retain: commits, checkpoints, deletion, the size limit.

use super::tests::{append_to, assert_holds, config, payload, read_from, segments};
use super::*;

#[test]
fn commits_only_raise_and_stop_at_next_seq() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 4096);
    c.consumers = vec!["a".into(), "b".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 101, 10);
    assert_eq!((j.committed("a"), j.oldest_unconsumed()), (None, 1));
    j.commit("a", 50);
    j.commit("a", 40);
    j.commit("b", 1000);
    j.commit("new", 7);
    assert_eq!(
        (j.committed("a"), j.committed("b"), j.committed("new")),
        (Some(50), Some(101), Some(7))
    );
    assert_eq!(
        j.oldest_unconsumed(),
        50,
        "`new` is no consumer of the configuration"
    );
    j.checkpoint().unwrap();
    drop(j);
    let (j, rec) = Journal::open(&c).unwrap();
    assert_eq!(
        rec.offsets,
        [("a".into(), 50), ("b".into(), 101), ("new".into(), 7)]
    );
    assert_eq!(j.committed("a"), Some(50));
}

#[test]
fn deletion_keeps_every_segment_a_consumer_needs() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["slow".into(), "fast".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    let mut deleted = 0;
    for round in 1..=40u64 {
        append_to(&mut j, round * 100 + 1, 9);
        j.commit("fast", j.next_seq());
        j.commit("slow", round * 97 - round % 5 * 13);
        deleted += j.checkpoint().unwrap();
        let min = j.oldest_unconsumed();
        assert!(j.first_seq() <= min, "round {round}");
        assert_eq!(read_from(&mut j, min, 50).first().map(|r| r.0), Some(min));
    }
    assert!(deleted > 50);
    let first = j.first_seq();
    assert_holds(&mut j, first, 4001);
    assert_eq!(
        segments(dir.path())[0],
        segment::segment_path(dir.path(), first)
    );
}

#[test]
fn without_consumers_only_the_active_segment_stays() {
    let dir = tempfile::tempdir().unwrap();
    let c = JournalConfig {
        consumers: vec![],
        ..config(dir.path(), 1024)
    };
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 501, 10);
    assert_eq!(j.oldest_unconsumed(), 501);
    assert!(j.checkpoint().unwrap() > 10);
    assert_eq!(segments(dir.path()).len(), 1);
    let first = j.first_seq();
    assert!(first > 1);
    assert_holds(&mut j, first, 501);
}

#[test]
fn a_missing_or_torn_offset_file_replays_from_the_oldest() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["r".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 301, 10);
    j.commit("r", 200);
    j.checkpoint().unwrap();
    let first = j.first_seq();
    assert!(first > 1 && first <= 200);
    drop(j);
    let file = dir.path().join("offsets/r");
    let text = std::fs::read(&file).unwrap();
    for damaged in [&text[..text.len() - 3], b"", b"200 00000000\n"] {
        std::fs::write(&file, damaged).unwrap();
        let (mut j, rec) = Journal::open(&c).unwrap();
        assert_eq!((rec.bad_offsets, j.committed("r")), (1, None));
        assert_eq!((j.oldest_unconsumed(), j.first_seq()), (first, first));
        assert_eq!(j.checkpoint().unwrap(), 0, "nothing is deleted");
    }
    std::fs::remove_file(&file).unwrap();
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!(
        (rec.bad_offsets, j.committed("r"), j.oldest_unconsumed()),
        (0, None, first)
    );
    assert_holds(&mut j, first, 301);
}

#[test]
fn an_offset_of_zero_is_no_gap() {
    // A consumer that commits before it has done anything: 0, below the first seq (1).
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["r".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 11, 10);
    j.commit("r", 0);
    j.checkpoint().unwrap();
    drop(j);
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!((rec.first_seq, rec.gaps), (1, 0), "{rec:?}");
    assert_holds(&mut j, 1, 11);
}

#[test]
fn numbering_continues_after_every_segment_is_gone() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["r".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 301, 10);
    j.commit("r", 301);
    j.checkpoint().unwrap();
    drop(j);
    for seg in segments(dir.path()) {
        std::fs::remove_file(seg).unwrap();
    }
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!((rec.first_seq, rec.next_seq, rec.gaps), (301, 301, 0));
    assert_eq!(j.append([&b"x"[..]]).unwrap(), 301);
}

#[test]
fn an_offset_past_the_records_skips_their_seqs() {
    // A consumer committed records that a crash then lost (not yet fdatasynced): their
    // seqs are never given again.
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    c.consumers = vec!["r".into(), "s".into()];
    let (mut j, _) = Journal::open(&c).unwrap();
    append_to(&mut j, 101, 10);
    j.commit("r", 150);
    j.checkpoint().unwrap();
    assert_eq!(j.committed("r"), Some(101), "clamped to next_seq");
    drop(j);
    std::fs::write(dir.path().join("offsets/r"), offsets::encode("r", 150)).unwrap();
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!(
        (rec.next_seq, rec.skipped_seqs, rec.records),
        (150, 49, 100)
    );
    assert_eq!(j.append([payload(150).as_slice()]).unwrap(), 150);
    let got: Vec<u64> = read_from(&mut j, 95, 4).iter().map(|r| r.0).collect();
    assert_eq!(got, [95, 96, 97, 98, 99, 100, 150]);
    // With every consumer past the hole, the segments before it go.
    j.commit("s", 150);
    j.checkpoint().unwrap();
    drop(j);
    let (mut j, rec) = Journal::open(&c).unwrap();
    assert_eq!((rec.first_seq, rec.next_seq, rec.records), (150, 151, 1));
    assert_holds(&mut j, 150, 151);
    // Every consumer past every record: the numbering goes on, nothing is retained.
    drop(j);
    for name in ["r", "s"] {
        std::fs::write(
            dir.path().join("offsets").join(name),
            offsets::encode(name, 400),
        )
        .unwrap();
    }
    let (j, rec) = Journal::open(&c).unwrap();
    assert_eq!((rec.first_seq, rec.next_seq, rec.records), (400, 400, 0));
    assert_eq!(
        (rec.skipped_seqs, rec.segments, j.size()),
        (249, 1, HEADER_LEN)
    );
}

#[test]
fn has_room_follows_max_size() {
    let dir = tempfile::tempdir().unwrap();
    let mut c = config(dir.path(), 1024);
    (c.max_size, c.consumers) = (4096, vec![]);
    let (mut j, _) = Journal::open(&c).unwrap();
    assert!(
        j.has_room(1 << 20),
        "an empty journal takes one batch of any size"
    );
    j.append([&[0u8; 500][..]]).unwrap();
    assert!(!j.has_room(1 << 20));
    while j.has_room(record_size(500)) {
        j.append([&[0u8; 500][..]]).unwrap();
    }
    assert!(j.size() <= 4096 && j.size() + record_size(500) + HEADER_LEN > 4096);
    j.checkpoint().unwrap();
    assert!(
        j.has_room(record_size(500)),
        "no consumer retains the full segments"
    );
}
