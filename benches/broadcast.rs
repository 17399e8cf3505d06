//! Encoding a broadcast once versus once per connection: one 64 B message
//! queued on 19,000 connections' output buffers, as `Context::broadcast`
//! does before the end-of-turn flush.
//!
//! ```text
//! cargo bench --bench broadcast
//! ```

use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use pawl::frame::encode;

const CONNECTIONS: usize = 19_000;

fn broadcast(c: &mut Criterion) {
    let payload = [b'm'; 64];
    let mut outputs: Vec<Vec<u8>> = vec![Vec::new(); CONNECTIONS];
    let mut group = c.benchmark_group("broadcast 64 B to 19000 connections");
    group.throughput(Throughput::Elements(CONNECTIONS as u64));
    group.bench_function("encode once, copy frame", |b| {
        let mut frame = Vec::new();
        b.iter(|| {
            frame.clear();
            encode::message(&mut frame, true, black_box(&payload));
            for out in outputs.iter_mut() {
                out.clear();
                out.extend_from_slice(&frame);
            }
            black_box(outputs.len())
        })
    });
    group.bench_function("encode per connection", |b| {
        b.iter(|| {
            for out in outputs.iter_mut() {
                out.clear();
                encode::message(out, true, black_box(&payload));
            }
            black_box(outputs.len())
        })
    });
    group.finish();
}

criterion_group!(benches, broadcast);
criterion_main!(benches);
