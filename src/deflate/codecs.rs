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
    /// For every message without context takeover: reset after each one.
    shared_deflater: Option<Box<Deflater>>,
    shared_inflater: Option<Box<Inflater>>,
    dedicated: HashMap<u32, Box<Dedicated>>,
    /// Messages compressed, shared and dedicated (for the tests and the
    /// counters an embedding program reads).
    pub(crate) messages_deflated: u64,
    /// Messages inflated.
    pub(crate) messages_inflated: u64,
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
        self.shared_deflater
            .get_or_insert_with(|| Box::new(Deflater::new(MAX_WINDOW_BITS)))
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
