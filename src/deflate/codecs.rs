//! The loop's compression state: the one compressor and decompressor that
//! serve every shared-mode connection, and each dedicated-mode connection's
//! own, by connection key.
//!
//! A shared-mode connection costs nothing here: it is not listed. A
//! dedicated one costs a map entry from its upgrade on and its zlib streams
//! from its first compressed message on, until [`Codecs::close`].

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

/// One dedicated-mode connection's streams, made when first needed.
#[derive(Debug)]
struct Dedicated {
    agreed: Agreed,
    deflater: Option<Deflater>,
    inflater: Option<Inflater>,
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
                }),
            );
        }
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
                let agreed = own.agreed;
                own.deflater
                    .get_or_insert_with(|| Deflater::new(agreed.server_window_bits()))
                    .message(payload, out, agreed.server_no_context_takeover);
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
            let bits = own.agreed.client_window_bits();
            return own
                .inflater
                .get_or_insert_with(|| Inflater::new(bits))
                .message(payload, limit, out, false);
        }
        self.shared_inflater
            .get_or_insert_with(|| Box::new(Inflater::new(MAX_WINDOW_BITS)))
            .message(payload, limit, out, true)
    }
}
