//! permessage-deflate's inflation, as the server runs it on a client's
//! compressed message: any bytes end in a message or an error (never a
//! panic), the output never passes the limit by more than the one byte that
//! tells it was passed, and what inflates, compressed again by the server's
//! compressor, inflates back to the same bytes.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let [limit, bits, payload @ ..] = data else {
        return;
    };
    // Small limits now and then, so that "too big" is reached by short
    // inputs; otherwise 64 KiB.
    let limit = match limit % 4 {
        0 => usize::from(*limit),
        1 => 4096,
        _ => 64 << 10,
    };
    let inflated = match pawl::fuzzing::inflate(payload, limit) {
        Ok(inflated) => inflated,
        Err(_) => return,
    };
    assert!(inflated.len() <= limit, "{} bytes past a limit of {limit}", inflated.len());
    // The round trip checks the compressor on what the fuzzer's inputs
    // inflate to, but compressing is most of a run's time (zlib-rs under
    // coverage instrumentation): it is done for outputs of up to 4 KiB,
    // which hold every kind of block the compressor writes.
    if inflated.len() > 4096 {
        return;
    }
    let window_bits = 9 + bits % 7;
    let again = pawl::fuzzing::deflate(&inflated, window_bits);
    let back = pawl::fuzzing::inflate(&again, limit).expect("the server's own output inflates");
    assert_eq!(back, inflated, "round trip with a window of 2^{window_bits}");
});
