//! What compressing one chat message costs the server in each compression
//! mode, and what a dedicated-mode connection pays when it wakes: its zlib
//! streams were freed after a quiet sweep interval and are made again from
//! the window's last bytes, which the connection kept.
//!
//! ```text
//! cargo bench --bench deflate --features fuzzing
//! ```
//!
//! - `shared`: the loop's compressor for messages of this size, reset
//!   after every message (no context takeover);
//! - `dedicated busy`: a connection's own compressor, kept between
//!   messages (context takeover, 4 KiB window);
//! - `dedicated woken`: the same connection, its streams freed before each
//!   message, so each one makes a compressor again and loads the 4 KiB of
//!   history into it.

use std::hint::black_box;

use criterion::{BenchmarkId, Criterion, criterion_group, criterion_main};
use pawl::Compression;
use pawl::fuzzing::Codecs;

/// What Chromium offers.
const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// A chat message of about `len` bytes of JSON, different for each `n`.
fn message(n: u64, len: usize) -> Vec<u8> {
    let mut text = format!("{{\"type\":\"message\",\"id\":{n},\"from\":\"alice\",\"text\":\"");
    let words = ["hello ", "there ", "how ", "are ", "you ", "today "];
    let mut i = n as usize;
    while text.len() + 2 < len {
        text.push_str(words[i % words.len()]);
        i = i.wrapping_mul(31).wrapping_add(7);
    }
    text.push_str("\"}");
    text.into_bytes()
}

fn one_message(c: &mut Criterion) {
    let mut group = c.benchmark_group("compress one message");
    for len in [200, 1000] {
        let mut shared = Codecs::default();
        assert!(shared.open(1, OFFER, Compression::Shared));
        let mut busy = Codecs::default();
        assert!(busy.open(1, OFFER, Compression::dedicated()));
        let mut woken = Codecs::default();
        assert!(woken.open(1, OFFER, Compression::dedicated()));
        // Some history first, as a connection that has chatted has.
        let mut out = Vec::new();
        for n in 0..40 {
            busy.deflate(1, &message(n, len), &mut out);
            woken.deflate(1, &message(n, len), &mut out);
        }
        let mut n = 40;
        let mut next = || {
            n += 1;
            message(n, len)
        };
        group.bench_function(BenchmarkId::new("shared", len), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(2 * len);
                shared.deflate(1, &next(), &mut out);
                black_box(out)
            })
        });
        group.bench_function(BenchmarkId::new("dedicated busy", len), |b| {
            b.iter(|| {
                let mut out = Vec::with_capacity(2 * len);
                busy.deflate(1, &next(), &mut out);
                black_box(out)
            })
        });
        group.bench_function(BenchmarkId::new("dedicated woken", len), |b| {
            b.iter(|| {
                // Two sweeps: the first sees the last message, the second
                // frees the streams.
                woken.rest_idle();
                assert_eq!(woken.rest_idle(), 1);
                let mut out = Vec::with_capacity(2 * len);
                woken.deflate(1, &next(), &mut out);
                black_box(out)
            })
        });
    }
    group.finish();
}

criterion_group!(benches, one_message);
criterion_main!(benches);
