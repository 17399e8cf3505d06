//! The frame decoder: the same bytes delivered whole, in chunks of sizes
//! the fuzzer picks, and one byte at a time must give the same messages,
//! in the same order, ending the same way (the same violation, the same
//! close, or the same bytes left waiting). Each run feeds the decoder the
//! way a connection does (src/server/input.rs): decode until it wants more,
//! keep the unconsumed rest, append the next read.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pawl::frame::{Decoder, Incoming, Limits, Violation};

#[derive(Debug, PartialEq, Eq)]
enum Event {
    Text(String),
    Binary(Vec<u8>),
    Ping(Vec<u8>),
    Pong,
    /// A permessage-deflate message, still compressed.
    Compressed(bool, Vec<u8>),
}

#[derive(Debug, PartialEq, Eq)]
enum End {
    Closed(u16, String),
    Failed(Violation),
    /// Bytes still waiting for the rest of a frame.
    Waiting(usize),
}

fuzz_target!(|data: &[u8]| {
    let [limits, seed, input @ ..] = data else {
        return;
    };
    // Small limits now and then, so that 1009 is reached by short inputs.
    // And permessage-deflate negotiated now and then (RSV1 allowed).
    let deflate = limits & 4 != 0;
    let limits = match limits % 4 {
        0 => Limits {
            max_frame: 16,
            max_message: 40,
            deflate,
        },
        1 => Limits {
            max_frame: 200,
            max_message: 100,
            deflate,
        },
        _ => Limits {
            max_frame: 1 << 20,
            max_message: 1 << 20,
            deflate,
        },
    };
    let whole = run(input, limits, |_| input.len().max(1));
    let mut state = u32::from(*seed) | 1;
    let chunked = run(input, limits, |_| {
        // xorshift: chunk sizes from 1 to 16, fixed by the seed byte.
        state ^= state << 13;
        state ^= state >> 17;
        state ^= state << 5;
        1 + (state % 16) as usize
    });
    let bytewise = run(input, limits, |_| 1);
    assert_eq!(whole, chunked, "whole and chunked (seed {seed})");
    assert_eq!(whole, bytewise, "whole and byte by byte");
});

fn run(input: &[u8], limits: Limits, mut chunk: impl FnMut(usize) -> usize) -> (Vec<Event>, End) {
    let mut decoder = Decoder::default();
    let mut buf = Vec::new();
    let mut events = Vec::new();
    let mut fed = 0;
    while fed < input.len() {
        let n = chunk(fed).min(input.len() - fed);
        buf.extend_from_slice(&input[fed..fed + n]);
        fed += n;
        let mut pos = 0;
        loop {
            match decoder.decode(&mut buf, &mut pos, limits) {
                Ok(None) => break,
                Ok(Some(Incoming::Text(t))) => {
                    // The ASCII fast path hands out a `&str` unchecked: check it.
                    assert!(std::str::from_utf8(t.as_bytes()).is_ok(), "text not UTF-8");
                    events.push(Event::Text(t.to_owned()));
                }
                Ok(Some(Incoming::Binary(b))) => events.push(Event::Binary(b.to_vec())),
                Ok(Some(Incoming::Ping(p))) => {
                    assert!(p.len() <= 125, "a ping of {}", p.len());
                    events.push(Event::Ping(p.to_vec()));
                }
                Ok(Some(Incoming::Pong)) => events.push(Event::Pong),
                Ok(Some(Incoming::Compressed { text, payload })) => {
                    assert!(limits.deflate, "RSV1 accepted without deflate");
                    events.push(Event::Compressed(text, payload.to_vec()));
                }
                Ok(Some(Incoming::Close(code, reason))) => {
                    return (events, End::Closed(code, reason.to_owned()));
                }
                Err(violation) => {
                    assert!(
                        matches!(violation.code, 1002 | 1007 | 1009),
                        "{violation:?}"
                    );
                    return (events, End::Failed(violation));
                }
            }
        }
        assert!(pos <= buf.len());
        buf.drain(..pos);
    }
    for event in &events {
        let len = match event {
            Event::Text(t) => t.len(),
            Event::Binary(b) => b.len(),
            _ => 0,
        };
        assert!(len <= limits.max_message, "a message of {len} bytes");
    }
    (events, End::Waiting(buf.len()))
}
