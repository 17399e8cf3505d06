//! Unmasking client payloads in place, a machine word at a time.

/// XORs `buf` with the 4-byte `mask`, as RFC 6455 §5.3 defines, where
/// `buf[0]` is payload byte 0.
///
/// The bulk is done 8 bytes at a time with the mask repeated in a `u64`: on a
/// 16 KiB frame this is roughly 8x fewer operations than a byte loop, and the
/// compiler vectorises it further.
pub fn apply_mask(buf: &mut [u8], mask: [u8; 4]) {
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        // chunks_exact_mut guarantees 8 bytes, so the conversion cannot fail.
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(word) ^ wide;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    // Every chunk was a multiple of 4 bytes, so the tail starts at mask[0].
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
    }
}

/// [`apply_mask`] on a part of a payload that starts at byte `offset` of it.
pub fn apply_mask_at(buf: &mut [u8], mask: [u8; 4], offset: usize) {
    let r = offset % 4;
    let rotated = [
        mask[r],
        mask[(r + 1) % 4],
        mask[(r + 2) % 4],
        mask[(r + 3) % 4],
    ];
    apply_mask(buf, rotated);
}

/// [`apply_mask`], and whether every unmasked byte is ASCII.
///
/// For text frames: an all-ASCII payload is valid UTF-8, so the check rides
/// along in the unmasking pass (one OR per word, on data already in
/// registers) and the separate validation pass is skipped for it.
pub fn unmask_ascii(buf: &mut [u8], mask: [u8; 4]) -> bool {
    const HIGH_BITS: u64 = 0x8080_8080_8080_8080;
    let wide = u64::from_ne_bytes([
        mask[0], mask[1], mask[2], mask[3], mask[0], mask[1], mask[2], mask[3],
    ]);
    let mut seen = 0u64;
    let mut chunks = buf.chunks_exact_mut(8);
    for chunk in &mut chunks {
        let mut word = [0u8; 8];
        word.copy_from_slice(chunk);
        let value = u64::from_ne_bytes(word) ^ wide;
        seen |= value;
        chunk.copy_from_slice(&value.to_ne_bytes());
    }
    let mut tail = 0u8;
    for (i, byte) in chunks.into_remainder().iter_mut().enumerate() {
        *byte ^= mask[i & 3];
        tail |= *byte;
    }
    seen & HIGH_BITS == 0 && tail < 0x80
}

#[cfg(test)]
mod tests {
    use super::{apply_mask, unmask_ascii};

    #[test]
    fn unmask_ascii_unmasks_like_apply_mask_and_spots_any_high_byte() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..40 {
            let plain: Vec<u8> = (0..len).map(|i| b'a' + (i % 26) as u8).collect();
            let mut masked = plain.clone();
            apply_mask(&mut masked, mask);
            let mut buf = masked.clone();
            assert!(unmask_ascii(&mut buf, mask), "len {len}");
            assert_eq!(buf, plain, "len {len}");
            for at in 0..len {
                let mut plain = plain.clone();
                plain[at] = 0xC3;
                let mut buf = plain.clone();
                apply_mask(&mut buf, mask);
                assert!(!unmask_ascii(&mut buf, mask), "len {len} at {at}");
                assert_eq!(buf, plain, "len {len} at {at}");
            }
        }
    }

    fn reference(buf: &mut [u8], mask: [u8; 4]) {
        for (i, b) in buf.iter_mut().enumerate() {
            *b ^= mask[i % 4];
        }
    }

    #[test]
    fn matches_bytewise_mask_for_every_length_and_offset() {
        let mask = [0x12, 0x34, 0x56, 0x78];
        for len in 0..70 {
            for offset in 0..8 {
                let mut storage: Vec<u8> = (0..len + offset).map(|i| (i * 7 + 3) as u8).collect();
                let mut expected = storage[offset..].to_vec();
                reference(&mut expected, mask);
                apply_mask(&mut storage[offset..], mask);
                assert_eq!(
                    &storage[offset..],
                    &expected[..],
                    "len {len} offset {offset}"
                );
            }
        }
    }

    #[test]
    fn masking_twice_restores_the_payload() {
        let original: Vec<u8> = (0..1000).map(|i| i as u8).collect();
        let mut buf = original.clone();
        apply_mask(&mut buf, [1, 2, 3, 4]);
        assert_ne!(buf, original);
        apply_mask(&mut buf, [1, 2, 3, 4]);
        assert_eq!(buf, original);
    }
}
