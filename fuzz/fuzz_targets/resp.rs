//! The RESP reply parser: a prefix of a reply is never a reply or an error
//! (the client parses whatever has arrived, so a reply read in pieces must
//! wait, not fail or end early), and a reply found in a prefix is the one
//! found in the whole.
//!
//! It calls `pawl::fuzzing::resp_decode`, the one function to re-point when
//! the codec under it changes.

#![no_main]

use libfuzzer_sys::fuzz_target;
use pawl::fuzzing::resp_decode;

/// Every prefix is parsed, so the work grows with the square of the length.
const MAX_LEN: usize = 1024;

fuzz_target!(|data: &[u8]| {
    let data = &data[..data.len().min(MAX_LEN)];
    let whole = resp_decode(data);
    if let Ok(Some(n)) = whole {
        assert!(n > 0 && n <= data.len(), "consumed {n} of {}", data.len());
        assert_eq!(resp_decode(&data[..n]), Ok(Some(n)), "the reply alone");
    }
    for cut in 0..data.len() {
        let prefix = resp_decode(&data[..cut]);
        match (&whole, &prefix) {
            // Before the end of a reply: only "wait".
            (Ok(Some(n)), _) if cut < *n => {
                assert_eq!(prefix, Ok(None), "prefix {cut} of a reply of {n}")
            }
            (_, Ok(Some(m))) => assert_eq!(whole, Ok(Some(*m)), "reply in prefix {cut}"),
            (Ok(None), _) => assert_eq!(prefix, Ok(None), "prefix {cut} of an incomplete reply"),
            _ => {}
        }
    }
});
