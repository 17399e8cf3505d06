//! The per-message hot path, without sockets: decoding (header parse,
//! unmask, UTF-8 check) and encoding frames.
//!
//! ```text
//! cargo bench --bench frames
//! ```

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, Throughput, criterion_group, criterion_main};
use pawl::frame::mask::apply_mask;
use pawl::frame::{Decoder, Incoming, Limits, encode};

const LIMITS: Limits = Limits {
    max_frame: 64 << 20,
    max_message: 64 << 20,
    deflate: false,
};

#[path = "../tests/support/client_frame.rs"]
mod support;

/// A masked client frame, as a browser sends it.
fn client_frame(opcode: u8, payload: &[u8]) -> Vec<u8> {
    support::masked_frame(0x80 | opcode, payload, [0x37, 0xfa, 0x21, 0x3d])
}

fn decode(c: &mut Criterion) {
    let mut group = c.benchmark_group("decode");
    // ASCII text takes the check folded into unmasking; text with any
    // multi-byte character takes the SIMD UTF-8 pass as well.
    for (kind, size) in [("ascii", 32usize), ("ascii", 16 << 10), ("utf8", 16 << 10)] {
        let text = match kind {
            "ascii" => "x".repeat(size),
            _ => "xxxxxé".repeat(size / 7),
        };
        // A read's worth of frames: 64 KiB of back-to-back messages.
        let one = client_frame(0x1, text.as_bytes());
        let count = ((64 << 10) / one.len()).max(1);
        let batch: Vec<u8> = one
            .iter()
            .copied()
            .cycle()
            .take(one.len() * count)
            .collect();
        group.throughput(Throughput::Elements(count as u64));
        group.bench_with_input(
            BenchmarkId::new(format!("{kind} text frames in a 64 KiB read"), text.len()),
            &batch,
            |b, batch| {
                let mut buf = batch.clone();
                b.iter(|| {
                    // Decoding unmasks in place; re-masking restores the input.
                    buf.copy_from_slice(batch);
                    let mut decoder = Decoder::default();
                    let mut pos = 0;
                    let mut seen = 0;
                    while let Ok(Some(Incoming::Text(t))) =
                        decoder.decode(&mut buf, &mut pos, LIMITS)
                    {
                        seen += t.len();
                    }
                    black_box(seen)
                });
            },
        );
    }
    group.finish();
}

fn unmask(c: &mut Criterion) {
    let mut group = c.benchmark_group("unmask");
    for size in [32usize, 16 << 10] {
        let mut buf = vec![0xa5u8; size];
        group.throughput(Throughput::Bytes(size as u64));
        group.bench_function(BenchmarkId::from_parameter(size), |b| {
            b.iter(|| apply_mask(black_box(&mut buf), [1, 2, 3, 4]))
        });
    }
    group.finish();
}

fn encode_frames(c: &mut Criterion) {
    let mut group = c.benchmark_group("encode");
    for size in [32usize, 16 << 10] {
        let payload = vec![b'y'; size];
        let mut out = Vec::with_capacity(size + 16);
        group.throughput(Throughput::Elements(1));
        group.bench_function(BenchmarkId::new("text frame", size), |b| {
            b.iter(|| {
                out.clear();
                encode::message(&mut out, true, black_box(&payload));
                black_box(out.len())
            })
        });
    }
    group.finish();
}

criterion_group!(benches, decode, unmask, encode_frames);
criterion_main!(benches);
