//! Compressing and inflating one message's payload (RFC 7692 §7.2): a sync
//! flush per message without its final `00 00 ff ff`, which the receiver
//! appends before inflating.
//!
//! Output goes into the spare capacity of a `Vec` without zeroing it first,
//! and inflation stops as soon as the output passes the limit it is given:
//! a message of 20 MB of zeros sent as 20 KB costs no more memory than the
//! route's message size limit.

use std::mem::MaybeUninit;

use zlib_rs::{
    Deflate, DeflateConfig, DeflateFlush, Inflate, InflateFlush, Method, Status, Strategy,
};

/// What a sync flush ends with, and what the receiver appends (§7.2.2).
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// A raw-DEFLATE compressor for messages.
pub(crate) struct Deflater {
    z: Deflate,
}

impl std::fmt::Debug for Deflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Deflater")
    }
}

/// zlib's default level: most of the ratio of level 9 at a fraction of
/// its CPU on text.
const LEVEL: i32 = 6;

impl Deflater {
    /// A compressor with a window of 2^`window_bits` bytes (9 to 15).
    /// zlib's `memLevel` follows the window (uWebSockets' pairing: 15 gets
    /// zlib's default 8, 9 gets 2). In zlib-rs `memLevel` sizes only the
    /// pending buffer: its hash table is 128 KiB at every setting, most of
    /// a compressor's memory, and a reset clears all of it (some 3 µs, the
    /// larger part of compressing a 32-byte message in the shared mode).
    pub(crate) fn new(window_bits: u8) -> Deflater {
        let window_bits = window_bits.clamp(9, 15);
        Deflater {
            z: Deflate::new_with_config(DeflateConfig {
                level: LEVEL,
                method: Method::Deflated,
                window_bits: -i32::from(window_bits),
                mem_level: i32::from(window_bits) - 7,
                strategy: Strategy::Default,
            }),
        }
    }

    /// A compressor that goes on from `history`, the last bytes an earlier
    /// one compressed with context takeover: its matches may reach into
    /// them, as the receiver's window still holds them.
    pub(crate) fn resume(window_bits: u8, history: &[u8]) -> Deflater {
        let mut deflater = Deflater::new(window_bits);
        if !history.is_empty() && deflater.z.set_dictionary(history).is_err() {
            // Only a misuse errs (a dictionary after input); without it the
            // compressor is merely fresh, which the receiver takes as well.
            deflater.z.reset();
        }
        deflater
    }

    /// Appends `payload`, compressed, to `out`. With `reset`, the window is
    /// forgotten afterwards (no context takeover).
    pub(crate) fn message(&mut self, payload: &[u8], out: &mut Vec<u8>, reset: bool) {
        let start = out.len();
        let mut input = payload;
        // Enough for incompressible input in one call; more is made room
        // for if ever needed.
        out.reserve(zlib_rs::compress_bound(payload.len()) + TAIL.len() + 8);
        loop {
            if out.capacity() - out.len() < 16 {
                out.reserve(256);
            }
            let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
            let result =
                self.z
                    .compress_uninit(input, out.spare_capacity_mut(), DeflateFlush::SyncFlush);
            let consumed = (self.z.total_in() - before_in) as usize;
            let produced = (self.z.total_out() - before_out) as usize;
            // SAFETY: zlib wrote `produced` bytes at the start of the spare
            // capacity.
            unsafe { out.set_len(out.len() + produced) };
            input = &input[consumed..];
            let done = input.is_empty() && out.len() < out.capacity();
            match result {
                // A sync flush is complete when it returns with output space
                // left over (zlib's rule).
                Ok(_) if done => break,
                Ok(_) => {}
                // Only a misuse of the stream errs, which this never does;
                // fall back to what was produced being unusable.
                Err(_) => {
                    out.truncate(start);
                    self.z.reset();
                    compress_stored(payload, out);
                    return;
                }
            }
        }
        if out[start..].ends_with(&TAIL) {
            out.truncate(out.len() - TAIL.len());
        }
        if reset {
            self.z.reset();
        }
    }
}

/// Writes `payload` as stored (uncompressed) DEFLATE blocks, the valid
/// stream that needs no compressor.
fn compress_stored(payload: &[u8], out: &mut Vec<u8>) {
    for block in payload.chunks(0xffff) {
        let len = block.len() as u16;
        out.push(0x00);
        out.extend_from_slice(&len.to_le_bytes());
        out.extend_from_slice(&(!len).to_le_bytes());
        out.extend_from_slice(block);
    }
}

/// Why a compressed message could not be inflated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum InflateError {
    /// The message inflates past the limit.
    TooBig,
    /// Not a valid DEFLATE stream.
    Corrupt,
}

/// A raw-DEFLATE decompressor for messages.
pub(crate) struct Inflater {
    z: Inflate,
    window_bits: u8,
}

impl std::fmt::Debug for Inflater {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Inflater")
    }
}

/// The first room made for an inflated message when its compressed size
/// says little: grown by doubling, never past the limit.
const FIRST_ROOM: usize = 4 << 10;

impl Inflater {
    /// A decompressor for streams with windows up to 2^`window_bits`.
    pub(crate) fn new(window_bits: u8) -> Inflater {
        let window_bits = window_bits.clamp(9, 15);
        Inflater {
            z: Inflate::new(false, window_bits),
            window_bits,
        }
    }

    /// A decompressor that goes on from `history`, the last bytes an
    /// earlier one inflated from a sender that keeps its context: the
    /// sender's next message may refer back into them.
    pub(crate) fn resume(window_bits: u8, history: &[u8]) -> Result<Inflater, InflateError> {
        let mut inflater = Inflater::new(window_bits);
        if !history.is_empty() {
            inflater
                .z
                .set_dictionary(history)
                .map_err(|_| InflateError::Corrupt)?;
        }
        Ok(inflater)
    }

    /// Appends the inflated `payload` to `out`, stopping with
    /// [`InflateError::TooBig`] once more than `limit` bytes came out (so
    /// `out` never grows much past `limit`). With `reset`, the window is
    /// forgotten afterwards; after an error it always is, and the caller
    /// closes the connection anyway.
    pub(crate) fn message(
        &mut self,
        payload: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
        reset: bool,
    ) -> Result<(), InflateError> {
        let start = out.len();
        let result = self
            .feed(payload, limit, out, start)
            .and_then(|ended| match ended {
                true => Ok(()),
                false => self.feed(&TAIL, limit, out, start).map(drop),
            });
        if reset || result.is_err() {
            self.reset();
        }
        result
    }

    /// Inflates all of `input` into `out`; `Ok(true)` if the stream ended
    /// (a final block), after which the rest is ignored.
    fn feed(
        &mut self,
        mut input: &[u8],
        limit: usize,
        out: &mut Vec<u8>,
        start: usize,
    ) -> Result<bool, InflateError> {
        loop {
            let inflated = out.len() - start;
            if out.capacity() == out.len() {
                if inflated > limit {
                    return Err(InflateError::TooBig);
                }
                // Double, but stop one byte past the limit: that byte is how
                // a message that inflates past it is told apart.
                let room = inflated.max(FIRST_ROOM).min(limit + 1 - inflated);
                out.reserve_exact(room.max(1));
            }
            // Never let zlib write more than one byte past the limit.
            let allowed = (limit + 1).saturating_sub(inflated);
            let spare = out.spare_capacity_mut();
            let spare_len = spare.len().min(allowed);
            let spare: &mut [MaybeUninit<u8>] = &mut spare[..spare_len];
            let (before_in, before_out) = (self.z.total_in(), self.z.total_out());
            let status = self
                .z
                .decompress_uninit(input, spare, InflateFlush::SyncFlush)
                .map_err(|_| InflateError::Corrupt)?;
            let consumed = (self.z.total_in() - before_in) as usize;
            let produced = (self.z.total_out() - before_out) as usize;
            // SAFETY: zlib wrote `produced` bytes at the start of the spare
            // capacity.
            unsafe { out.set_len(out.len() + produced) };
            input = &input[consumed..];
            if out.len() - start > limit {
                return Err(InflateError::TooBig);
            }
            match status {
                Status::StreamEnd => return Ok(true),
                // Input used up with room left over: all that can come out
                // of this input did.
                _ if input.is_empty() && produced < spare_len => return Ok(false),
                // No progress with input left: truncated or stuck.
                Status::BufError if consumed == 0 && produced == 0 => {
                    return if input.is_empty() {
                        Ok(false)
                    } else {
                        Err(InflateError::Corrupt)
                    };
                }
                _ => {}
            }
        }
    }

    /// Forgets the window, for the next message.
    pub(crate) fn reset(&mut self) {
        if self.window_bits == 15 {
            // zlib-rs resets to its default window, which is this one: the
            // state and window are kept, no allocation.
            self.z.reset(false);
        } else {
            self.z = Inflate::new(false, self.window_bits);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn deflate(payload: &[u8], window_bits: u8) -> Vec<u8> {
        let mut out = Vec::new();
        Deflater::new(window_bits).message(payload, &mut out, true);
        out
    }

    fn text(len: usize) -> Vec<u8> {
        let words = [
            "{\"type\":\"message\"",
            ",\"from\":\"alice\"",
            ",\"text\":\"hello ",
            "world\"}",
            " 0123456789",
        ];
        let mut out = Vec::new();
        let mut i = 7usize;
        while out.len() < len {
            i = i.wrapping_mul(31).wrapping_add(17);
            out.extend_from_slice(words[i % words.len()].as_bytes());
        }
        out.truncate(len);
        out
    }

    #[test]
    fn messages_round_trip_at_every_size_and_window() {
        for bits in [9, 12, 15] {
            for len in [0, 1, 125, 126, 4096, 65_536, 1 << 20] {
                let payload = text(len);
                let compressed = deflate(&payload, bits);
                assert!(!compressed.ends_with(&TAIL) || len == 0);
                let mut out = Vec::new();
                Inflater::new(15)
                    .message(&compressed, 1 << 21, &mut out, true)
                    .expect("inflates");
                assert_eq!(out, payload, "{len} bytes, window {bits}");
                if len >= 4096 {
                    assert!(compressed.len() < len / 2, "{len}: {}", compressed.len());
                }
            }
        }
    }

    #[test]
    fn a_shared_compressor_reset_between_messages_matches_a_fresh_one() {
        let mut shared = Deflater::new(15);
        for len in [300, 5000, 300] {
            let payload = text(len);
            let mut out = Vec::new();
            shared.message(&payload, &mut out, true);
            assert_eq!(out, deflate(&payload, 15));
        }
    }

    #[test]
    fn context_takeover_compresses_repeats_better_and_inflates_in_order() {
        let mut deflater = Deflater::new(12);
        let mut inflater = Inflater::new(12);
        let payload = text(200);
        let mut sizes = Vec::new();
        for _ in 0..3 {
            let mut compressed = Vec::new();
            deflater.message(&payload, &mut compressed, false);
            sizes.push(compressed.len());
            let mut out = Vec::new();
            inflater
                .message(&compressed, 1 << 20, &mut out, false)
                .expect("inflates");
            assert_eq!(out, payload);
        }
        assert!(sizes[1] < sizes[0] / 3, "{sizes:?}");
    }

    #[test]
    fn a_bomb_stops_at_the_limit() {
        let zeros = vec![0u8; 20 << 20];
        let bomb = deflate(&zeros, 15);
        assert!(bomb.len() < 64 << 10, "{}", bomb.len());
        let limit = 1 << 20;
        let mut out = Vec::new();
        let result = Inflater::new(15).message(&bomb, limit, &mut out, true);
        assert_eq!(result, Err(InflateError::TooBig));
        assert!(
            out.capacity() <= limit + 1 + FIRST_ROOM,
            "{}",
            out.capacity()
        );
        // Exactly at the limit is fine.
        let mut out = Vec::new();
        let exact = deflate(&zeros[..limit], 15);
        assert_eq!(
            Inflater::new(15).message(&exact, limit, &mut out, true),
            Ok(())
        );
        assert_eq!(out.len(), limit);
    }

    #[test]
    fn garbage_is_corrupt_not_a_panic() {
        let mut seed = 0x2545_f491_4f6c_dd1d_u64;
        let mut corrupt = 0;
        let mut inflater = Inflater::new(15);
        for _ in 0..2000 {
            let len = (seed % 64) as usize;
            let bytes: Vec<u8> = (0..len)
                .map(|_| {
                    seed ^= seed << 13;
                    seed ^= seed >> 7;
                    seed ^= seed << 17;
                    seed as u8
                })
                .collect();
            let mut out = Vec::new();
            if inflater.message(&bytes, 1 << 16, &mut out, true) == Err(InflateError::Corrupt) {
                corrupt += 1;
            }
            assert!(out.len() <= (1 << 16) + 1);
        }
        // Random bytes are often a valid prefix of some stream; enough
        // are not to show errors come back as errors.
        assert!(corrupt > 50, "{corrupt}");
    }

    #[test]
    fn stored_blocks_inflate() {
        let payload = text(70_000);
        let mut stored = Vec::new();
        compress_stored(&payload, &mut stored);
        let mut out = Vec::new();
        Inflater::new(15)
            .message(&stored, 1 << 20, &mut out, true)
            .expect("inflates");
        assert_eq!(out, payload);
    }
}
