//! Framer throughput in MB/s on LF and octet-counted input (`cargo bench --bench framer`).
//! Messages are about 150 bytes of RFC 5424, fed in 64 KiB reads as the forwarder does.

use criterion::{criterion_group, criterion_main, BenchmarkId, Criterion, Throughput};
use zerolog::framing::{Framer, Framing};
use zerologd::loggen::{make_message, LineFormat};

fn input(octet: bool) -> Vec<u8> {
    let mut out = Vec::with_capacity(16 << 20);
    let mut m = Vec::new();
    let mut seq = 0;
    while out.len() < 16 << 20 {
        make_message(LineFormat::Rfc5424, "bench", 0, seq, 150, &mut m);
        if octet {
            out.extend_from_slice(format!("{} ", m.len()).as_bytes());
            out.extend_from_slice(&m);
        } else {
            out.extend_from_slice(&m);
            out.push(b'\n');
        }
        seq += 1;
    }
    out
}

fn bench(c: &mut Criterion) {
    let mut group = c.benchmark_group("framer");
    for (name, framing, octet) in [
        ("lf", Framing::Lf, false),
        ("octet-counted", Framing::OctetCounted, true),
    ] {
        let data = input(octet);
        group.throughput(Throughput::Bytes(data.len() as u64));
        group.bench_with_input(BenchmarkId::from_parameter(name), &data, |b, data| {
            b.iter(|| {
                let mut framer = Framer::new(framing, 64 * 1024);
                let mut n = 0usize;
                for chunk in data.chunks(64 * 1024) {
                    framer.feed(chunk, &mut |f| n += f.data.len());
                }
                framer.finish(&mut |f| n += f.data.len());
                n
            })
        });
    }
    // What the forwarder does per message on top of framing: scan the header, render the topic.
    let data = input(false);
    let template = zerolog::syslog::TopicTemplate::default();
    group.throughput(Throughput::Bytes(data.len() as u64));
    group.bench_with_input(BenchmarkId::from_parameter("lf+topic"), &data, |b, data| {
        b.iter(|| {
            let mut framer = Framer::new(Framing::Lf, 64 * 1024);
            let mut topic = Vec::with_capacity(64);
            let mut n = 0usize;
            for chunk in data.chunks(64 * 1024) {
                framer.feed(chunk, &mut |f| {
                    topic.clear();
                    template.render(&zerolog::syslog::scan(f.data), &mut topic);
                    n += topic.len();
                });
            }
            n
        })
    });
    group.finish();
}

criterion_group! {
    name = benches;
    config = Criterion::default().sample_size(20);
    targets = bench
}
criterion_main!(benches);
