//! Server-to-client frames: unmasked, written straight into an output buffer.

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::header;

/// Appends a complete, unfragmented frame.
pub fn frame(out: &mut Vec<u8>, opcode: OpCode, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    header::write(out, opcode, false, payload.len());
    append(out, payload);
}

/// Appends a text or binary message frame whose payload `deflated` is
/// already compressed (permessage-deflate): RSV1 set.
pub fn compressed(out: &mut Vec<u8>, text: bool, deflated: &[u8]) {
    out.reserve(deflated.len() + 10);
    header::write(out, data_opcode(text), true, deflated.len());
    append(out, deflated);
}

fn data_opcode(text: bool) -> OpCode {
    if text {
        OpCode::Data(Data::Text)
    } else {
        OpCode::Data(Data::Binary)
    }
}

/// The largest piece [`append`] copies at once: below the 2 KiB from which
/// glibc's `memcpy` may use `rep movsb` (its threshold on CPUs with "fast
/// short rep mov").
const PIECE: usize = 1 << 10;

/// Appends `bytes` to `out` in pieces of at most 1 KiB.
///
/// Why not one `extend_from_slice`: above its threshold glibc's `memcpy`
/// switches to `rep movsb`, which on some virtual machines (the AVX-512
/// Firecracker VM pawl is developed on, for one) is several times slower
/// than its vector loop when source and destination are not equally
/// aligned, and an echoed payload never is (it sits 8 bytes into a client
/// frame and goes 4 bytes into a server frame). Measured there with
/// `scripts/bench` (16 KiB echo, server CPU per message, three rounds, the
/// raw-TCP floor beside): one copy 14.1 to 21.6 µs (1.49x to 1.68x the
/// floor), 1 KiB pieces 9.6 to 14.3 µs (0.84x to 1.12x), glibc's `rep movsb`
/// turned off by tunable 9.5 to 10.4 µs. Where `rep movsb` is fast, the
/// pieces cost sixteen calls instead of one for 16 KiB, all in cache.
pub fn append(out: &mut Vec<u8>, bytes: &[u8]) {
    out.reserve(bytes.len());
    for piece in bytes.chunks(PIECE) {
        out.extend_from_slice(piece);
    }
}

/// Appends a text (`text == true`) or binary message frame.
pub fn message(out: &mut Vec<u8>, text: bool, payload: &[u8]) {
    frame(out, data_opcode(text), payload);
}

/// Appends a pong echoing `payload`.
pub fn pong(out: &mut Vec<u8>, payload: &[u8]) {
    frame(out, OpCode::Control(Control::Pong), payload);
}

/// Appends a ping.
pub fn ping(out: &mut Vec<u8>, payload: &[u8]) {
    frame(out, OpCode::Control(Control::Ping), payload);
}

/// Appends a close frame. The reason is cut at a character boundary so the
/// payload stays within the 125 bytes a control frame may carry.
pub fn close(out: &mut Vec<u8>, code: u16, reason: &str) {
    let mut end = reason.len().min(123);
    while !reason.is_char_boundary(end) {
        end -= 1;
    }
    let mut payload = [0u8; 125];
    payload[..2].copy_from_slice(&code.to_be_bytes());
    payload[2..2 + end].copy_from_slice(&reason.as_bytes()[..end]);
    frame(out, OpCode::Control(Control::Close), &payload[..2 + end]);
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn appending_in_pieces_copies_every_byte_in_order() {
        for len in [0, 1, PIECE - 1, PIECE, PIECE + 1, 3 * PIECE + 7, 70_000] {
            let bytes: Vec<u8> = (0..len).map(|i| (i * 7 % 251) as u8).collect();
            let mut out = vec![0xaa];
            append(&mut out, &bytes);
            assert_eq!(out[0], 0xaa);
            assert_eq!(&out[1..], &bytes[..], "{len}");
        }
    }

    #[test]
    fn length_encodings_follow_rfc6455() {
        let mut out = Vec::new();
        message(&mut out, true, b"hi");
        assert_eq!(out, [0x81, 2, b'h', b'i']);

        out.clear();
        message(&mut out, false, &[0; 126]);
        assert_eq!(&out[..4], &[0x82, 126, 0, 126]);
        assert_eq!(out.len(), 4 + 126);

        out.clear();
        message(&mut out, false, &vec![0; 70_000]);
        assert_eq!(&out[..2], &[0x82, 127]);
        assert_eq!(&out[2..10], &70_000u64.to_be_bytes());
    }

    #[test]
    fn close_reason_is_truncated_on_a_char_boundary() {
        let mut out = Vec::new();
        let reason = "é".repeat(100); // 200 bytes
        close(&mut out, 1000, &reason);
        let payload = &out[2..];
        assert!(payload.len() <= 125);
        assert_eq!(&payload[..2], &1000u16.to_be_bytes());
        assert!(std::str::from_utf8(&payload[2..]).is_ok());
    }
}
