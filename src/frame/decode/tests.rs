use super::*;

const LIMITS: Limits = Limits {
    max_frame: 1 << 20,
    max_message: 1 << 20,
    deflate: false,
};
const MASK: [u8; 4] = [0xa1, 0xb2, 0xc3, 0xd4];

#[path = "../../../tests/support/client_frame.rs"]
mod client_frame;

/// A client frame: `first` is the FIN/RSV/opcode byte.
fn client_frame(first: u8, payload: &[u8]) -> Vec<u8> {
    client_frame::masked_frame(first, payload, MASK)
}

/// Decodes everything in `bytes`, rendering each unit as a string.
fn decode_all(bytes: &[u8]) -> (Vec<String>, Option<Violation>) {
    let mut buf = bytes.to_vec();
    let mut decoder = Decoder::default();
    let mut pos = 0;
    let mut seen = Vec::new();
    loop {
        match decoder.decode(&mut buf, &mut pos, LIMITS) {
            Ok(Some(unit)) => seen.push(format!("{unit:?}")),
            Ok(None) => return (seen, None),
            Err(v) => return (seen, Some(v)),
        }
    }
}

#[track_caller]
fn expect_violation(bytes: &[u8], code: u16) {
    let (_, violation) = decode_all(bytes);
    assert_eq!(violation.map(|v| v.code), Some(code), "for {bytes:02x?}");
}

#[test]
fn unfragmented_text_and_binary_borrow_the_input() {
    let mut bytes = client_frame(0x81, b"hello");
    bytes.extend(client_frame(0x82, &[1, 2, 3]));
    let (seen, violation) = decode_all(&bytes);
    assert_eq!(violation, None);
    assert_eq!(seen, [r#"Text("hello")"#, "Binary([1, 2, 3])"]);
}

#[test]
fn incomplete_frame_waits_without_consuming() {
    let bytes = client_frame(0x81, b"hello world");
    for cut in 0..bytes.len() {
        let mut buf = bytes[..cut].to_vec();
        let mut pos = 0;
        let mut decoder = Decoder::default();
        let decoded = decoder.decode(&mut buf, &mut pos, LIMITS);
        assert_eq!(decoded, Ok(None), "cut at {cut}");
        assert_eq!(pos, 0);
    }
}

#[test]
fn fragments_assemble_with_interleaved_control_frames() {
    let mut bytes = client_frame(0x01, "caf".as_bytes());
    bytes.extend(client_frame(0x89, b"p"));
    bytes.extend(client_frame(0x80, "é!".as_bytes()));
    let (seen, violation) = decode_all(&bytes);
    assert_eq!(violation, None);
    assert_eq!(seen, [r#"Ping([112])"#, r#"Text("café!")"#]);
}

#[test]
fn utf8_character_split_across_fragments_is_accepted() {
    let euro = "€".as_bytes(); // 3 bytes
    let mut bytes = client_frame(0x01, &euro[..1]);
    bytes.extend(client_frame(0x00, &euro[1..2]));
    bytes.extend(client_frame(0x80, &euro[2..]));
    let (seen, violation) = decode_all(&bytes);
    assert_eq!(violation, None);
    assert_eq!(seen, [r#"Text("€")"#]);
}

#[test]
fn invalid_utf8_fails_at_the_fragment_that_breaks_it() {
    let mut bytes = client_frame(0x01, b"ok");
    bytes.extend(client_frame(0x00, &[0xff]));
    expect_violation(&bytes, close_code::INVALID_PAYLOAD);
    expect_violation(
        &client_frame(0x81, &[0xce, 0xba, 0xe1]),
        close_code::INVALID_PAYLOAD,
    );
    // A truncated character in the final fragment is invalid too.
    expect_violation(
        &client_frame(0x81, &[0xe2, 0x82]),
        close_code::INVALID_PAYLOAD,
    );
}

#[test]
fn protocol_violations_get_1002() {
    expect_violation(&client_frame(0xc1, b"x"), close_code::PROTOCOL); // RSV1
    expect_violation(&client_frame(0x83, b""), close_code::PROTOCOL); // reserved data opcode
    expect_violation(&client_frame(0x8b, b""), close_code::PROTOCOL); // reserved control opcode
    expect_violation(&client_frame(0x09, b""), close_code::PROTOCOL); // fragmented ping
    expect_violation(&client_frame(0x89, &[0; 126]), close_code::PROTOCOL); // long ping
    expect_violation(&client_frame(0x80, b"x"), close_code::PROTOCOL); // lone continuation
    let mut nested = client_frame(0x01, b"a");
    nested.extend(client_frame(0x81, b"b"));
    expect_violation(&nested, close_code::PROTOCOL);
    expect_violation(&[0x81, 0x00], close_code::PROTOCOL); // unmasked
}

#[test]
fn close_frames_are_validated() {
    let (seen, _) = decode_all(&client_frame(0x88, b""));
    assert_eq!(seen, [r#"Close(1005, "")"#]);
    let mut ok = 1000u16.to_be_bytes().to_vec();
    ok.extend_from_slice(b"bye");
    let (seen, _) = decode_all(&client_frame(0x88, &ok));
    assert_eq!(seen, [r#"Close(1000, "bye")"#]);
    expect_violation(&client_frame(0x88, &[3]), close_code::PROTOCOL);
    expect_violation(
        &client_frame(0x88, &1005u16.to_be_bytes()),
        close_code::PROTOCOL,
    );
    expect_violation(
        &client_frame(0x88, &999u16.to_be_bytes()),
        close_code::PROTOCOL,
    );
    let mut bad_reason = 1000u16.to_be_bytes().to_vec();
    bad_reason.push(0xff);
    expect_violation(
        &client_frame(0x88, &bad_reason),
        close_code::INVALID_PAYLOAD,
    );
}

#[test]
fn size_limits_are_enforced_from_the_header() {
    let limits = Limits {
        max_frame: 100,
        max_message: 150,
        deflate: false,
    };
    // Only the header of the oversized frame is present: it must already fail.
    let mut big = client_frame(0x82, &[0; 101]);
    big.truncate(8);
    let mut pos = 0;
    assert_eq!(
        Decoder::default()
            .decode(&mut big, &mut pos, limits)
            .map(|_| ()),
        Err(violation(close_code::TOO_BIG, "frame too big"))
    );
    let mut fragments = client_frame(0x02, &[0; 100]);
    fragments.extend(client_frame(0x80, &[0; 60]));
    let mut decoder = Decoder::default();
    let mut pos = 0;
    assert_eq!(
        decoder
            .decode(&mut fragments, &mut pos, limits)
            .map(|_| ())
            .err()
            .map(|v| v.code),
        Some(close_code::TOO_BIG)
    );
}

#[test]
fn compressed_messages_come_out_whole_and_unchecked() {
    let deflate = Limits {
        deflate: true,
        ..LIMITS
    };
    let decode = |bytes: &[u8]| {
        let mut buf = bytes.to_vec();
        let mut decoder = Decoder::default();
        let mut pos = 0;
        let mut seen = Vec::new();
        loop {
            match decoder.decode(&mut buf, &mut pos, deflate) {
                Ok(Some(unit)) => seen.push(format!("{unit:?}")),
                Ok(None) => return Ok(seen),
                Err(v) => return Err(v.code),
            }
        }
    };
    // One frame, RSV1: not UTF-8 checked (it is compressed bytes).
    let one = client_frame(0xc1, &[0xff, 0x00]);
    assert_eq!(
        decode(&one),
        Ok(vec![
            "Compressed { text: true, payload: [255, 0] }".to_owned()
        ])
    );
    // Fragmented: RSV1 on the first frame only, a ping between.
    let mut three = client_frame(0x42, &[1, 2]);
    three.extend(client_frame(0x89, b"p"));
    three.extend(client_frame(0x80, &[3]));
    assert_eq!(
        decode(&three),
        Ok(vec![
            "Ping([112])".to_owned(),
            "Compressed { text: false, payload: [1, 2, 3] }".to_owned()
        ])
    );
    // RSV1 on a continuation, or without deflate negotiated: 1002.
    let mut bad = client_frame(0x01, b"a");
    bad.extend(client_frame(0xc0, b"b"));
    assert_eq!(decode(&bad), Err(close_code::PROTOCOL));
    expect_violation(&one, close_code::PROTOCOL);
    // Uncompressed messages still work, and are still checked.
    assert_eq!(
        decode(&client_frame(0x81, b"hi")),
        Ok(vec![r#"Text("hi")"#.to_owned()])
    );
    assert_eq!(
        decode(&client_frame(0x81, &[0xff])),
        Err(close_code::INVALID_PAYLOAD)
    );
}

/// Feeds `bytes` in pieces of `step`, the way the server keeps an
/// incomplete frame at the front of its input between reads.
fn decode_trickled(bytes: &[u8], step: usize) -> (Vec<String>, Option<(u16, usize)>) {
    let mut decoder = Decoder::default();
    let mut buf = Vec::new();
    let mut seen = Vec::new();
    for (i, piece) in bytes.chunks(step).enumerate() {
        buf.extend_from_slice(piece);
        let mut pos = 0;
        loop {
            match decoder.decode(&mut buf, &mut pos, LIMITS) {
                Ok(Some(unit)) => seen.push(format!("{unit:?}")),
                Ok(None) => break,
                Err(v) => return (seen, Some((v.code, (i + 1) * step))),
            }
        }
        buf.drain(..pos);
    }
    (seen, None)
}

#[test]
fn a_text_frame_arriving_in_pieces_is_checked_as_it_arrives() {
    let text = "héllo wörld, ünïcode in every piece: 𝄞€".repeat(20);
    let bytes = client_frame(0x81, text.as_bytes());
    for step in [1, 2, 3, 5, 7, 64, 1000] {
        let (seen, violation) = decode_trickled(&bytes, step);
        assert_eq!(violation, None, "step {step}");
        assert_eq!(seen, [format!("Text({text:?})")], "step {step}");
    }
    // A bad byte 10 bytes into a 2000-byte frame fails at once (Autobahn
    // 6.4.3), not when the rest arrives.
    let mut payload = vec![b'a'; 2000];
    payload[10] = 0xff;
    let bytes = client_frame(0x81, &payload);
    let (_, violation) = decode_trickled(&bytes, 32);
    assert_eq!(violation, Some((close_code::INVALID_PAYLOAD, 32)));
    // So does a truncated character followed by a non-continuation byte.
    let mut payload = "ok".as_bytes().to_vec();
    payload.extend_from_slice(&[0xe2, 0x82, b'x']);
    payload.resize(500, b'a');
    let (_, violation) = decode_trickled(&client_frame(0x81, &payload), 16);
    assert_eq!(violation, Some((close_code::INVALID_PAYLOAD, 16)));
    // Binary is never checked; a frame then another after it still works.
    let mut bytes = client_frame(0x82, &[0xff; 300]);
    bytes.extend(client_frame(0x81, b"after"));
    let (seen, violation) = decode_trickled(&bytes, 7);
    assert_eq!(violation, None);
    assert_eq!(seen.len(), 2);
    assert_eq!(seen[1], r#"Text("after")"#);
}
