//! The loop's compression state: the one compressor and decompressor that
//! serve every shared-mode connection, and each dedicated-mode connection's
//! own, by connection key.
//!
//! A shared-mode connection costs nothing here: it is not listed. A
//! dedicated one costs a map entry from its upgrade on, and its zlib streams
//! (some 180 KB with zlib-rs, most of it the compressor's hash table) from
//! its first compressed message on, but only while it is busy: the streams
//! of a connection that compressed and inflated nothing for a whole sweep
//! interval are freed ([`Codecs::rest_idle`]) and made again at its next
//! message, from the last window of bytes each way, which the entry keeps
//! (at most 2^bits bytes a direction, only where context is taken over). So
//! thousands of idle dedicated connections cost their windows, not their
//! compressors, and the peer sees no difference: the new streams go on from
//! the same history.

use std::collections::HashMap;

use super::MAX_WINDOW_BITS;
use super::codec::{Deflater, InflateError, Inflater};
use super::offer::Agreed;

/// See the module documentation.
#[derive(Debug, Default)]
pub(crate) struct Codecs {
    /// For every message without context takeover, by size class (see
    /// [`shared_window_bits`]): reset after each one.
    shared_deflaters: [Option<Box<Deflater>>; 3],
    shared_inflater: Option<Box<Inflater>>,
    dedicated: HashMap<u32, Box<Dedicated>>,
    /// Messages compressed, shared and dedicated (for the tests and the
    /// counters an embedding program reads).
    pub(crate) messages_deflated: u64,
    /// Messages inflated.
    pub(crate) messages_inflated: u64,
}

/// The compressor for a message of `len` bytes without context takeover:
/// its size class and window. A message no longer than the window loses
/// nothing to it (no match can reach further back than its own start), and
/// a small compressor is cheaper to reset after every message, which is
/// most of the cost of compressing a chat-sized message: the reset clears
/// the hash table, and a small state keeps it in cache.
fn shared_window_bits(len: usize) -> (usize, u8) {
    match len {
        0..=512 => (0, 9),
        513..=4096 => (1, 12),
        _ => (2, MAX_WINDOW_BITS),
    }
}

/// Roughly what one zlib-rs stream holds (a compressor some 130 KB, a
/// decompressor some 47 KB): what freeing one gives back to the allocator.
pub(crate) const STREAM_BYTES: usize = 90 << 10;

/// One dedicated-mode connection's streams, made when needed, and the
/// history they go on from when made again.
#[derive(Debug)]
struct Dedicated {
    agreed: Agreed,
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
    /// The last bytes compressed for the connection (up to the server's
    /// window), when the server keeps its context.
    sent: Vec<u8>,
    /// The last bytes inflated from it (up to the client's window), when
    /// the client keeps its context.
    received: Vec<u8>,
    /// A stream was used since the last [`Codecs::rest_idle`].
    busy: bool,
}

/// Keeps the last `window` bytes of what `history` held followed by `data`.
fn remember(history: &mut Vec<u8>, data: &[u8], window: usize) {
    if data.len() >= window {
        history.clear();
        history.extend_from_slice(&data[data.len() - window..]);
        return;
    }
    let excess = (history.len() + data.len()).saturating_sub(window);
    history.drain(..excess);
    history.extend_from_slice(data);
}

impl Codecs {
    /// Registers connection `key`, which agreed to `agreed`.
    pub(crate) fn open(&mut self, key: u32, agreed: &Agreed) {
        if agreed.dedicated {
            self.dedicated.insert(
                key,
                Box::new(Dedicated {
                    agreed: *agreed,
                    deflater: None,
                    inflater: None,
                    sent: Vec::new(),
                    received: Vec::new(),
                    busy: false,
                }),
            );
        }
    }

    /// Frees the streams of every dedicated connection that used none since
    /// the last call (the sweep's interval): they are made again from the
    /// kept history at its next message. Returns how many streams were
    /// freed.
    pub(crate) fn rest_idle(&mut self) -> usize {
        let mut freed = 0;
        for own in self.dedicated.values_mut() {
            if !std::mem::take(&mut own.busy) {
                freed += usize::from(own.deflater.take().is_some());
                freed += usize::from(own.inflater.take().is_some());
            }
        }
        freed
    }

    /// Compressors and decompressors held for dedicated connections now.
    pub(crate) fn dedicated_streams(&self) -> usize {
        self.dedicated
            .values()
            .map(|own| usize::from(own.deflater.is_some()) + usize::from(own.inflater.is_some()))
            .sum()
    }

    /// Forgets connection `key`.
    pub(crate) fn close(&mut self, key: u32) {
        self.dedicated.remove(&key);
    }

    /// True if connection `key` compresses with state of its own, so a
    /// message it is sent cannot share a compressed frame with others.
    pub(crate) fn is_dedicated(&self, key: u32) -> bool {
        self.dedicated.contains_key(&key)
    }

    /// Appends `payload`, compressed for connection `key`, to `out`.
    pub(crate) fn deflate(&mut self, key: u32, payload: &[u8], out: &mut Vec<u8>) {
        match self.dedicated.get_mut(&key) {
            Some(own) => {
                self.messages_deflated += 1;
                let Dedicated {
                    agreed,
                    deflater,
                    sent,
                    busy,
                    ..
                } = &mut **own;
                let bits = agreed.server_window_bits();
                let takeover = !agreed.server_no_context_takeover;
                deflater
                    .get_or_insert_with(|| Deflater::resume(bits, sent))
                    .message(payload, out, !takeover);
                if takeover {
                    remember(sent, payload, 1 << bits);
                }
                *busy = true;
            }
            None => self.deflate_shared(payload, out),
        }
    }

    /// Appends `payload`, compressed without context (valid for every
    /// shared-mode connection), to `out`.
    pub(crate) fn deflate_shared(&mut self, payload: &[u8], out: &mut Vec<u8>) {
        self.messages_deflated += 1;
        let (class, bits) = shared_window_bits(payload.len());
        self.shared_deflaters[class]
            .get_or_insert_with(|| Box::new(Deflater::new(bits)))
            .message(payload, out, true);
    }

    /// Appends the inflated `payload`, a message connection `key` sent, to
    /// `out`, failing once more than `limit` bytes come out.
    pub(crate) fn inflate(
        &mut self,
        key: u32,
        payload: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
    ) -> Result<(), InflateError> {
        self.messages_inflated += 1;
        if let Some(own) = self.dedicated.get_mut(&key)
            && !own.agreed.client_no_context_takeover
        {
            let Dedicated {
                agreed,
                inflater,
                received,
                busy,
                ..
            } = &mut **own;
            let bits = agreed.client_window_bits();
            let inflater = match inflater {
                Some(inflater) => inflater,
                None => inflater.insert(Inflater::resume(bits, received)?),
            };
            let start = out.len();
            inflater.message(payload, limit, out, false)?;
            remember(received, &out[start..], 1 << bits);
            *busy = true;
            return Ok(());
        }
        self.shared_inflater
            .get_or_insert_with(|| Box::new(Inflater::new(MAX_WINDOW_BITS)))
            .message(payload, limit, out, true)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::Compression;
    use crate::deflate::offer::negotiate;

    /// A chat-like message, different each time but much like the others.
    fn message(n: usize) -> Vec<u8> {
        format!(
            "{{\"type\":\"message\",\"id\":{n},\"from\":\"alice\",\"text\":\"hello number {n} from the chat\"}}"
        )
        .into_bytes()
    }

    #[test]
    fn idle_dedicated_streams_are_freed_and_go_on_from_their_windows() {
        let agreed = negotiate(
            [&b"permessage-deflate; client_max_window_bits"[..]],
            Compression::dedicated(),
        )
        .expect("accepted");
        assert!(!agreed.server_no_context_takeover && !agreed.client_no_context_takeover);
        let mut codecs = Codecs::default();
        codecs.open(1, &agreed);
        // The peer: a decompressor and a compressor that keep their
        // context throughout, as a browser's do.
        let mut peer_in = Inflater::new(MAX_WINDOW_BITS);
        let mut peer_out = Deflater::new(agreed.client_window_bits());

        let mut sizes = Vec::new();
        for n in 0..6 {
            if n == 3 {
                // A sweep with traffic since the last one keeps the streams;
                // the next, after none, frees them.
                assert_eq!(codecs.rest_idle(), 0);
                assert_eq!(codecs.dedicated_streams(), 2);
                assert_eq!(codecs.rest_idle(), 2);
                assert_eq!(codecs.dedicated_streams(), 0);
            }
            let text = message(n);
            let mut wire = Vec::new();
            codecs.deflate(1, &text, &mut wire);
            sizes.push(wire.len());
            let mut got = Vec::new();
            peer_in
                .message(&wire, 1 << 20, &mut got, false)
                .expect("the peer inflates it");
            assert_eq!(got, text, "message {n} to the peer");

            let mut wire = Vec::new();
            peer_out.message(&text, &mut wire, false);
            let mut got = Vec::new();
            codecs
                .inflate(1, &wire, 1 << 20, &mut got)
                .expect("the server inflates it");
            assert_eq!(got, text, "message {n} from the peer");
        }
        // The first message after the rest still refers back to the ones
        // before it: as small as the one before the rest, far smaller than
        // the first.
        assert!(sizes[3] <= sizes[2] + 2, "{sizes:?}");
        assert!(sizes[3] * 2 < sizes[0], "{sizes:?}");
        assert_eq!(codecs.dedicated_streams(), 2);
    }

    #[test]
    fn a_window_keeps_the_last_bytes() {
        let mut history = Vec::new();
        remember(&mut history, b"abc", 4);
        remember(&mut history, b"de", 4);
        assert_eq!(history, b"bcde");
        remember(&mut history, b"0123456", 4);
        assert_eq!(history, b"3456");
    }
}
