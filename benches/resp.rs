//! Decoding Redis replies as the client reads them: the buffer grows by one
//! read at a time and the decoder is asked after each read, so a large
//! reply arriving in pieces shows whether it is scanned once or again from
//! its start after every read.
//!
//! ```text
//! cargo bench --bench resp
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pawl::redis::resp::{Decoder, Value, encode_command};

/// Feeds `wire` in reads of `read` bytes; returns the replies decoded.
fn feed(wire: &[u8], read: usize) -> usize {
    let mut decoder = Decoder::default();
    let mut buf = Vec::with_capacity(wire.len());
    let mut replies = 0;
    for chunk in wire.chunks(read) {
        buf.extend_from_slice(chunk);
        let mut at = 0;
        while let Some((value, n)) = decoder.decode(&buf[at..]).expect("valid") {
            black_box::<Value>(value);
            at += n;
            replies += 1;
        }
        buf.drain(..at);
    }
    replies
}

fn replies_in_pieces(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode in reads");
    group.sample_size(10);
    // A GET of a 4 MiB value, and an HGETALL-like array of 100,000 short
    // strings (1.3 MiB), each arriving in 16 KiB reads.
    let big = vec![b'x'; 4 << 20];
    let mut get = Vec::new();
    encode_command(&mut get, &[&big]);
    let items: Vec<Vec<u8>> = (0..100_000)
        .map(|i| format!("item-{i}").into_bytes())
        .collect();
    let args: Vec<&[u8]> = items.iter().map(|i| i.as_slice()).collect();
    let mut array = Vec::new();
    encode_command(&mut array, &args);
    // Many small replies, as a pipeline of INCRs answers.
    let small: Vec<u8> = (0..100_000)
        .flat_map(|i| format!(":{i}\r\n").into_bytes())
        .collect();
    for (name, wire) in [
        ("bulk 4 MiB", &get),
        ("array 100k", &array),
        ("100k integers", &small),
    ] {
        group.throughput(Throughput::Bytes(wire.len() as u64));
        group.bench_with_input(BenchmarkId::new(name, "16 KiB reads"), wire, |b, wire| {
            b.iter(|| feed(wire, 16 << 10))
        });
    }
    group.finish();
}

criterion_group!(benches, replies_in_pieces);
criterion_main!(benches);
