//! The RFC 6587 framer on arbitrary input: never panics, never emits more than the maximum
//! size, and emits the same messages however the stream is split into reads.
#![no_main]

use libfuzzer_sys::fuzz_target;
use zerolog_proto::framing::{Framer, Framing};

fn frames(framing: Framing, max: usize, chunks: &[&[u8]]) -> Vec<(Vec<u8>, bool)> {
    let mut framer = Framer::new(framing, max);
    let mut out = Vec::new();
    let mut emit = |f: zerolog_proto::framing::Frame<'_>| {
        assert!(
            f.data.len() <= max,
            "frame of {} bytes over {max}",
            f.data.len()
        );
        out.push((f.data.to_vec(), f.truncated));
    };
    for chunk in chunks {
        framer.feed(chunk, &mut emit);
    }
    framer.finish(&mut emit);
    out
}

fuzz_target!(|input: &[u8]| {
    // Byte 0 picks the framing, byte 1 the maximum size, byte 2 the split positions' seed.
    let [mode, size, seed, data @ ..] = input else {
        return;
    };
    let framing = match mode % 3 {
        0 => Framing::Auto,
        1 => Framing::Lf,
        _ => Framing::OctetCounted,
    };
    let max = 1 + *size as usize;
    let whole = frames(framing, max, &[data]);

    // The same stream in pieces of pseudo-random sizes (1 to 16 bytes).
    let mut pieces = Vec::new();
    let (mut rest, mut x) = (data, u32::from(*seed) | 1);
    while !rest.is_empty() {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        let n = (1 + x as usize % 16).min(rest.len());
        let (head, tail) = rest.split_at(n);
        pieces.push(head);
        rest = tail;
    }
    assert_eq!(
        whole,
        frames(framing, max, &pieces),
        "split changed the messages"
    );

    // Byte by byte, too.
    let bytes: Vec<&[u8]> = data.chunks(1).collect();
    assert_eq!(
        whole,
        frames(framing, max, &bytes),
        "byte-wise feeding changed the messages"
    );
});
