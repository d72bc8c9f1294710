//! Telling a RELP sender's re-sends apart. A sender such as rsyslog's `omrelp` sends again,
//! first thing in its next session, every message it had no answer for. When a forwarder
//! died after a message was in the journal but before its answer reached the sender, the
//! copy sent again is a duplicate with a sequence number of its own, which no sink could tell
//! by the number. So a starting forwarder keeps a digest of each message at the journal's end;
//! a session's first messages found among them are marked (workers get them as
//! redeliveries) and counted (`relp_resent`), up to the first one that is not.

use std::hash::{DefaultHasher, Hasher};

use crate::journal::{Cursor, Journal, JournalError};

use super::split_payload;

/// Records at the journal's end whose digests are kept: many senders' windows (omrelp's
/// default is 128 messages), in 800 KB.
const TAIL_RECORDS: u64 = 100_000;

/// Digests of the messages at the end of the journal when the forwarder started, sorted.
#[derive(Debug, Default)]
pub(super) struct Earlier {
    digests: Vec<u64>,
}

impl Earlier {
    /// Reads the journal's last records.
    pub(super) fn from_tail(journal: &mut Journal) -> Result<Earlier, JournalError> {
        let mut digests = Vec::new();
        let mut cursor = Cursor::new();
        let mut from = journal.next_seq().saturating_sub(TAIL_RECORDS);
        while from < journal.next_seq() {
            let next = journal.read(&mut cursor, from, usize::MAX, 16 << 20, |_, p| {
                digests.push(digest(split_payload(p).message));
            })?;
            if next == from {
                break;
            }
            from = next;
        }
        digests.sort_unstable();
        digests.dedup();
        Ok(Earlier { digests })
    }

    /// Whether a message like `msg` was in the journal when the forwarder started.
    pub(super) fn contains(&self, msg: &[u8]) -> bool {
        self.digests.binary_search(&digest(msg)).is_ok()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.digests.is_empty()
    }
}

/// SipHash with fixed keys (`DefaultHasher::new`): the same within a build, which is all a
/// forwarder's life needs.
fn digest(msg: &[u8]) -> u64 {
    let mut h = DefaultHasher::new();
    h.write(msg);
    h.finish()
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::journal::JournalConfig;

    #[test]
    fn knows_the_messages_at_the_journals_end_and_no_others() {
        let dir = tempfile::tempdir().unwrap();
        let config = JournalConfig {
            dir: dir.path().to_owned(),
            fsync: crate::journal::FsyncPolicy::Never,
            ..JournalConfig::default()
        };
        let (mut j, _) = Journal::open(&config).unwrap();
        let payloads: Vec<Vec<u8>> = (0..(TAIL_RECORDS + 10))
            .map(|i| {
                let mut p = vec![3, 0];
                p.extend_from_slice(b"web");
                p.extend_from_slice(format!("line {i}").as_bytes());
                p
            })
            .collect();
        j.append(payloads.iter().map(Vec::as_slice)).unwrap();
        let earlier = Earlier::from_tail(&mut j).unwrap();
        assert!(earlier.contains(format!("line {}", TAIL_RECORDS + 9).as_bytes()));
        assert!(earlier.contains(b"line 10"));
        // Older than the tail, and never seen.
        assert!(!earlier.contains(b"line 9"));
        assert!(!earlier.contains(b"line x"));
        // The topic is not part of what is compared.
        assert!(!earlier.contains(b"webline 10"));
    }
}
