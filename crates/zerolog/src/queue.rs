//! Queues bounded in bytes. ZeroMQ bounds each queue by a message count (its high-water mark,
//! HWM); zerolog derives that count from a byte budget, `queue_bytes`, so that long messages
//! cannot make a queue hold hundreds of megabytes.
//!
//! - A **receiving** queue (a receiver's SUB socket, a worker's PULL socket) is filled by
//!   libzmq's I/O thread before zerolog sees what is in it, so its length is fixed from the
//!   largest message that can arrive: `min(hwm, queue_bytes / max_message_size)` messages
//!   ([`receive_hwm`]). At the defaults (32 MiB, 64 KiB) that is 512 messages.
//! - A **sending** queue (the forwarder's, one per receiver and one for the monitor; a
//!   receiver's, one per worker) sees every message before it is queued, so its length follows
//!   the size of what is being sent ([`SendQueue`]): it holds `queue_bytes / SEND_SHARE`
//!   bytes (2 MiB at the default), so short messages still get a long queue (8,192 messages
//!   of up to 256 bytes).
//!
//! Short messages thus keep the long queues that the throughput needs (a queue of a few
//! hundred messages costs libzmq a thread wake-up every few dozen messages), while no queue
//! holds more than its share of the budget, whatever the sizes.

/// Default byte budget of an element's queues.
pub const DEFAULT_QUEUE_BYTES: usize = 32 << 20;

/// A sending queue holds at most `queue_bytes / SEND_SHARE`: it need not be long, the
/// receiving queue at the other end of the connection buffers.
pub const SEND_SHARE: usize = 16;

/// The smallest and largest budget accepted: below 1 MiB a queue of long messages is a
/// handful of messages; above 4 GiB there is no bound worth the name.
pub const QUEUE_BYTES_RANGE: std::ops::RangeInclusive<usize> = (1 << 20)..=(4 << 30);

/// The high-water mark of a receiving queue: as many messages of `max_message_size` bytes as
/// fit in `queue_bytes`, at least 1 and at most `hwm`.
pub fn receive_hwm(hwm: i32, queue_bytes: usize, max_message_size: usize) -> i32 {
    clamp_hwm(hwm, queue_bytes / max_message_size.max(1))
}

fn clamp_hwm(hwm: i32, fits: usize) -> i32 {
    let cap = hwm.max(1);
    i32::try_from(fits).map_or(cap, |f| f.clamp(1, cap))
}

/// Blocks of the sliding window: it covers between `BLOCKS` and `BLOCKS + 1` blocks of
/// `hwm / BLOCKS` messages, so at least the last `hwm` messages.
const BLOCKS: usize = 8;

/// While its HWM differs from the one the socket was bound with, a [`SendQueue`] asks for it
/// to be set again after this many messages (or its HWM, if more), for the connections made
/// since: see [`SendQueue::start_on`].
const REAPPLY_EVERY: usize = 1024;

/// The high-water mark of one sending socket, kept so that its queues hold a bounded number
/// of bytes.
///
/// Set the start HWM on the socket before it binds ([`SendQueue::start_on`]) and call
/// [`SendQueue::before_send`] with the size of every message before sending it. libzmq
/// applies a new HWM to the connections the socket has taken in, but a new connection starts
/// with the HWM of the bind: the start HWM, low enough for messages of `max_message_size`;
/// the next re-application (every [`REAPPLY_EVERY`] messages, or HWM if more) gives it the
/// current one.
///
/// The HWM is `budget / S` (at most `hwm`), where `S` is the largest of the last `hwm`
/// messages sent, rounded up to a power of two; the budget is `queue_bytes / SEND_SHARE`.
/// Why it holds: when `S` grows, the HWM drops before the larger message is sent, and libzmq
/// queues nothing more on a connection until its queue is shorter than the new HWM. A
/// connection that gets every message (one receiver, or the one worker that is behind) keeps
/// only messages among the last `hwm` sent, each at most `S`: it holds at most `HWM x S <=
/// budget` bytes. In general a message sits at position `p` of its queue only if the HWM was
/// at least `p` when it was queued, so it is at most `budget / p` bytes: a connection stalled
/// while others flow and the sizes shrink holds at most `budget x (1 + ln hwm)` (about 10x at
/// 10,000), and only for such a contrived mix of sizes. A single message longer than the
/// whole budget is sent alone (HWM 1).
#[derive(Debug, Clone)]
pub struct SendQueue {
    budget: usize,
    cap: i32,
    start: i32,
    block_len: usize,
    /// Messages so far in the current block, and the largest of them.
    in_block: usize,
    block_max: usize,
    /// Largest message of each of the last `BLOCKS` complete blocks, oldest first, and the
    /// largest of those.
    blocks: std::collections::VecDeque<usize>,
    blocks_max: usize,
    /// Largest message of the window when the HWM was last computed.
    largest: usize,
    hwm: i32,
    /// Messages since the HWM was last handed out, and after how many it is handed out again
    /// (never while it is the start HWM, which new connections have anyway).
    since_applied: usize,
    reapply_after: usize,
}

impl SendQueue {
    /// A queue of at most `hwm` messages and `queue_bytes / SEND_SHARE` bytes, for messages of
    /// at most `max_message_size` bytes.
    pub fn new(hwm: i32, queue_bytes: usize, max_message_size: usize) -> Self {
        let cap = hwm.max(1);
        let budget = (queue_bytes / SEND_SHARE).max(1);
        let start = hwm_for(cap, budget, max_message_size);
        SendQueue {
            budget,
            cap,
            start,
            block_len: (cap as usize).div_ceil(BLOCKS),
            in_block: 0,
            block_max: 0,
            blocks: std::collections::VecDeque::with_capacity(BLOCKS),
            blocks_max: 0,
            largest: max_message_size,
            hwm: start,
            since_applied: 0,
            reapply_after: usize::MAX,
        }
    }

    /// Sets `socket`'s SNDHWM to the start HWM, the one for messages of `max_message_size`:
    /// call it before the socket binds, so every connection starts with it.
    pub fn start_on(&self, socket: &zmq::Socket) -> Result<(), zmq::Error> {
        socket.set_sndhwm(self.start)
    }

    /// Before a message of `size` bytes is sent on `socket`: sets its SNDHWM when the
    /// high-water mark changed or is due to be set again.
    pub fn before_send(&mut self, socket: &zmq::Socket, size: usize) -> Result<(), zmq::Error> {
        match self.next_hwm(size) {
            Some(hwm) => socket.set_sndhwm(hwm),
            None => Ok(()),
        }
    }

    /// The high-water mark the socket's connections must have now.
    pub fn hwm(&self) -> i32 {
        self.hwm
    }

    /// Notes a message of `size` bytes that is about to be sent. Returns the high-water mark
    /// to set on the socket first, when it changed or is due to be set again.
    fn next_hwm(&mut self, size: usize) -> Option<i32> {
        // Per message: two comparisons and two counts, on the publishing hot path.
        self.block_max = self.block_max.max(size);
        self.in_block += 1;
        if self.in_block == self.block_len {
            if self.blocks.len() == BLOCKS {
                self.blocks.pop_front();
            }
            self.blocks.push_back(self.block_max);
            self.blocks_max = self.blocks.iter().copied().max().unwrap_or(0);
            self.in_block = 0;
            self.block_max = 0;
        }
        self.since_applied += 1;
        // The window: the complete blocks, and the current one (which now includes `size`).
        let largest = self.blocks_max.max(self.block_max);
        let due = self.since_applied >= self.reapply_after;
        if largest == self.largest && !due {
            return None;
        }
        self.largest = largest;
        let hwm = hwm_for(self.cap, self.budget, largest);
        if hwm == self.hwm && !due {
            return None;
        }
        self.hwm = hwm;
        self.since_applied = 0;
        self.reapply_after = if hwm == self.start {
            usize::MAX
        } else {
            REAPPLY_EVERY.max(hwm as usize)
        };
        Some(hwm)
    }
}

/// The high-water mark that keeps messages of up to `largest` bytes within `budget`.
fn hwm_for(cap: i32, budget: usize, largest: usize) -> i32 {
    clamp_hwm(cap, budget / largest.max(1).next_power_of_two())
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::collections::VecDeque;

    #[test]
    fn a_receiving_queue_fits_its_budget_of_the_longest_messages() {
        assert_eq!(receive_hwm(10_000, 32 << 20, 64 << 10), 512);
        assert_eq!(receive_hwm(10_000, 32 << 20, 1024), 10_000);
        assert_eq!(receive_hwm(100, 32 << 20, 64 << 10), 100);
        assert_eq!(receive_hwm(10_000, 1 << 20, 4 << 20), 1);
        assert_eq!(receive_hwm(10_000, 1 << 20, 0), 10_000);
    }

    #[test]
    fn short_messages_keep_a_long_queue_long_ones_a_share_of_the_budget() {
        let mut q = SendQueue::new(10_000, 32 << 20, 64 << 10);
        // Bound for the longest messages (2 MiB / 64 KiB), raised for short ones: 2 MiB for
        // messages of up to 256 bytes.
        assert_eq!((q.start, q.hwm()), (32, 32));
        assert_eq!(q.next_hwm(150), Some(8_192));
        // Handed out again every 8,192 messages, for connections made since.
        let again = (0..50_000)
            .filter_map(|_| q.next_hwm(150))
            .collect::<Vec<_>>();
        assert_eq!(again, [8_192; 6]);
        // One long message lowers the HWM before it is sent: 2 MiB / 64 KiB.
        assert_eq!(q.next_hwm(60_000), Some(32));
        // It stays low while the long message may still be queued...
        for _ in 0..9_999 {
            assert_eq!(q.next_hwm(150), None);
        }
        // ...and rises once the last 10,000 messages are short again (within a block).
        let rose = (0..2_000).find_map(|_| q.next_hwm(150));
        assert_eq!(rose, Some(8_192));
        // The configured hwm stays the limit.
        let mut q = SendQueue::new(100, 32 << 20, 64 << 10);
        assert_eq!(q.next_hwm(150), Some(100));
        assert_eq!(q.hwm(), 100);
        // Messages of the longest size: the start HWM, never handed out again.
        let mut q = SendQueue::new(10_000, 32 << 20, 64 << 10);
        assert!((0..50_000).all(|_| q.next_hwm(65_536).is_none()));
    }

    /// Pipes that behave as libzmq's do: a send to a pipe waits while it holds `hwm` messages
    /// or more. Random sizes, random consumers, `pipes` pipes each getting a random part of the
    /// messages (as topics split them among receivers). Returns the most bytes a pipe held.
    fn most_held(pipes: usize, budget: usize, stall_one: bool) -> usize {
        let mut q = SendQueue::new(2_000, budget * SEND_SHARE, 2 * budget);
        let mut queues: Vec<(VecDeque<usize>, usize)> = vec![Default::default(); pipes];
        let mut most = 0usize;
        let mut seed = 0x2545_f491_4f6c_dd1du64;
        let mut next = move || {
            seed ^= seed << 13;
            seed ^= seed >> 7;
            seed ^= seed << 17;
            seed
        };
        let mut pending: Option<(usize, usize)> = None;
        for round in 0..2_000_000u64 {
            for (i, (queue, held)) in queues.iter_mut().enumerate() {
                // Pipe 0 stalls for long stretches when asked to.
                let stalled = stall_one && i == 0 && (round / 100_000) % 2 == 0;
                if !stalled && next() % 3 == 0 {
                    if let Some(s) = queue.pop_front() {
                        *held -= s;
                    }
                }
            }
            let (pipe, size) = *pending.get_or_insert_with(|| {
                // Phases of short and long messages, sizes up to twice the budget.
                let size = match (round / 50_000) % 3 {
                    0 => 1 + (next() % 200) as usize,
                    1 => 1 + (next() % 70_000) as usize,
                    _ => 1 + (next() % (2 * budget as u64)) as usize,
                };
                let pipe = (next() % pipes as u64) as usize;
                q.next_hwm(size);
                (pipe, size)
            });
            let (queue, held) = &mut queues[pipe];
            if queue.len() < q.hwm() as usize {
                queue.push_back(size);
                *held += size;
                most = most.max(*held);
                pending = None;
            } // else the send waits and the message stays ours
        }
        most
    }

    #[test]
    fn one_queue_never_holds_more_than_its_budget() {
        let budget = 1 << 20;
        let most = most_held(1, budget, false);
        // A single message longer than the whole budget is the one exception.
        assert!(most <= 2 * budget, "held {most} bytes, budget {budget}");
        assert!(most > budget / 2, "the test never filled the queue: {most}");
        let most = most_held(1, budget, true);
        assert!(most <= 2 * budget, "held {most} bytes, budget {budget}");
    }

    #[test]
    fn a_stalled_pipe_among_flowing_ones_holds_at_most_the_harmonic_bound() {
        let budget = 1 << 20;
        let most = most_held(3, budget, true);
        // A message longer than the budget alone at the head, then at most budget / p at each
        // position p behind it.
        let bound = budget as f64 * (2.0 + (2_000f64).ln());
        assert!((most as f64) <= bound, "held {most} bytes, bound {bound}");
        assert!(most > budget / 2, "the test never filled a queue: {most}");
    }
}
