//! The RESP reply decoder: a prefix of a reply is never a reply or an error
//! (the client decodes whatever has arrived, so a reply read in pieces must
//! wait, not fail or end early), and a reply found in a prefix is the one
//! found in the whole.
//!
//! Checked the way the client uses it, one `Decoder` resuming as the buffer
//! grows a byte at a time (linear: the decoder goes on from where it
//! stopped), and with a fresh decoder at a few cuts.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pawl::redis::resp::{Decoder, decode};

const MAX_LEN: usize = 4096;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_LEN)];
    let whole = decode(data).map(|r| r.map(|(value, n)| (format!("{value:?}"), n)));
    if let Ok(Some((_, n))) = &whole {
        assert!(*n > 0 && *n <= data.len(), "consumed {n} of {}", data.len());
    }
    // Resuming, byte by byte.
    let mut decoder = Decoder::default();
    for cut in 0..=data.len() {
        let step = decoder
            .decode(&data[..cut])
            .map(|r| r.map(|(value, n)| (format!("{value:?}"), n)));
        match (&whole, &step) {
            (_, Ok(None)) => {
                if let Ok(Some((_, n))) = &whole {
                    assert!(cut < *n, "waiting at {cut} for a reply of {n}");
                }
            }
            // The first answer is the whole's, at the whole's length.
            (Ok(Some((_, n))), Ok(Some(_))) => {
                assert_eq!(step, whole, "a reply at {cut}");
                assert_eq!(cut, *n, "a reply of {n} found at {cut}");
                break;
            }
            (Err(_), Err(_)) => break,
            _ => panic!("at {cut}: resumed {step:?}, whole {whole:?}"),
        }
    }
    // A fresh decoder at a few cuts.
    let mut seed = data.len() as u64 | 1;
    for _ in 0..8 {
        seed ^= seed << 13;
        seed ^= seed >> 7;
        seed ^= seed << 17;
        let cut = (seed % (data.len() as u64 + 1)) as usize;
        let prefix = decode(&data[..cut]).map(|r| r.map(|(_, n)| n));
        match (&whole, &prefix) {
            (Ok(Some((_, n))), _) if cut < *n => {
                assert_eq!(prefix, Ok(None), "prefix {cut} of a reply of {n}")
            }
            (Ok(None), _) => assert_eq!(prefix, Ok(None), "prefix {cut} of an incomplete reply"),
            _ => {}
        }
    }
});
