//! Frame headers (RFC 6455 §5.2), parsed and written by hand.
//!
//! tungstenite's `FrameHeader::parse` reads through a `Cursor` and `Read`
//! calls; on a 32-byte echo it was a tenth of pawl's instructions per message
//! (callgrind). This does the same work on a slice in a few dozen
//! instructions, and a differential test holds it to tungstenite's result.

use tungstenite::protocol::frame::coding::{Control, Data, OpCode};

use super::decode::{Violation, close_code};

/// A parsed client frame header.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Header {
    pub(crate) fin: bool,
    /// RSV1: with permessage-deflate, the message is compressed.
    pub(crate) rsv1: bool,
    pub(crate) opcode: OpCode,
    /// The client's masking key (client frames must be masked).
    pub(crate) mask: [u8; 4],
    /// Payload length as announced.
    pub(crate) len: u64,
    /// Bytes the header itself takes (2 to 14).
    pub(crate) header_len: usize,
}

const fn violation(reason: &'static str) -> Violation {
    Violation {
        code: close_code::PROTOCOL,
        reason,
    }
}

/// Parses a client frame header at the start of `buf`: `Ok(None)` if `buf`
/// holds only part of it. Checks everything a header alone can break: reserved
/// bits (RSV1 only with permessage-deflate negotiated, `deflate`, and only
/// on the first frame of a data message: RFC 7692 §6), reserved opcodes, the
/// mask, control frame rules.
pub(crate) fn parse(buf: &[u8], deflate: bool) -> Result<Option<Header>, Violation> {
    let [first, second, ..] = *buf else {
        return Ok(None);
    };
    if first & 0x30 != 0 {
        return Err(violation("reserved bits set"));
    }
    let rsv1 = first & 0x40 != 0;
    let opcode = OpCode::from(first & 0x0f);
    if rsv1 && !(deflate && matches!(opcode, OpCode::Data(Data::Text | Data::Binary))) {
        return Err(violation(if deflate {
            "RSV1 on a frame that is not a message's first"
        } else {
            "reserved bits set"
        }));
    }
    if matches!(
        opcode,
        OpCode::Data(Data::Reserved(_)) | OpCode::Control(Control::Reserved(_))
    ) {
        return Err(violation("reserved opcode"));
    }
    let fin = first & 0x80 != 0;
    if second & 0x80 == 0 {
        return Err(violation("client frame not masked"));
    }
    let (len, ext) = match second & 0x7f {
        126 => match buf.get(2..4) {
            Some(b) => (u64::from(u16::from_be_bytes([b[0], b[1]])), 2),
            None => return Ok(None),
        },
        127 => match buf.get(2..10) {
            Some(b) => {
                let mut be = [0u8; 8];
                be.copy_from_slice(b);
                (u64::from_be_bytes(be), 8)
            }
            None => return Ok(None),
        },
        n => (u64::from(n), 0),
    };
    if let OpCode::Control(_) = opcode {
        if !fin {
            return Err(violation("fragmented control frame"));
        }
        if len > 125 {
            return Err(violation("control frame too long"));
        }
    }
    let header_len = 2 + ext + 4;
    let Some(mask) = buf.get(2 + ext..header_len) else {
        return Ok(None);
    };
    Ok(Some(Header {
        fin,
        rsv1,
        opcode,
        mask: [mask[0], mask[1], mask[2], mask[3]],
        len,
        header_len,
    }))
}

/// Appends an unmasked, final server frame header for a payload of `len`,
/// with RSV1 set for a compressed message.
pub(crate) fn write(out: &mut Vec<u8>, opcode: OpCode, compressed: bool, len: usize) {
    let first = 0x80 | if compressed { 0x40 } else { 0 } | u8::from(opcode);
    if len < 126 {
        out.extend_from_slice(&[first, len as u8]);
    } else if len <= 0xffff {
        let be = (len as u16).to_be_bytes();
        out.extend_from_slice(&[first, 126, be[0], be[1]]);
    } else {
        out.extend_from_slice(&[first, 127]);
        out.extend_from_slice(&(len as u64).to_be_bytes());
    }
}

#[cfg(test)]
mod tests {
    use std::io::Cursor;

    use tungstenite::protocol::frame::FrameHeader;

    use super::*;

    /// A small deterministic generator: no dependency for a test's noise.
    fn noise(seed: &mut u64) -> u8 {
        *seed ^= *seed << 13;
        *seed ^= *seed >> 7;
        *seed ^= *seed << 17;
        *seed as u8
    }

    #[test]
    fn agrees_with_tungstenite_on_valid_headers() {
        let mut seed = 0x9e37_79b9_7f4a_7c15;
        let mut checked = 0;
        for _ in 0..200_000 {
            let mut buf: Vec<u8> = (0..16).map(|_| noise(&mut seed)).collect();
            // Mostly legal first bytes, or nearly nothing would get past rsv.
            buf[0] &= 0x8f;
            let ours = parse(&buf, false);
            let theirs = FrameHeader::parse(&mut Cursor::new(&buf[..]));
            let (Ok(Some(ours)), Ok(Some((header, len)))) = (ours, theirs) else {
                continue;
            };
            assert_eq!(ours.fin, header.is_final);
            assert_eq!(ours.opcode, header.opcode);
            assert_eq!(Some(ours.mask), header.mask);
            assert_eq!(ours.len, len);
            checked += 1;
        }
        assert!(checked > 1000, "only {checked} headers compared");
    }

    #[test]
    fn refuses_what_tungstenite_refuses_and_what_a_server_must() {
        let mut seed = 0x1234_5678_9abc_def1;
        for _ in 0..200_000 {
            let buf: Vec<u8> = (0..16).map(|_| noise(&mut seed)).collect();
            let theirs = FrameHeader::parse(&mut Cursor::new(&buf[..]));
            if theirs.is_err() {
                assert!(parse(&buf, false).is_err(), "{buf:02x?}");
                assert!(
                    parse(&buf, true).is_err() || buf[0] & 0x40 != 0,
                    "{buf:02x?}"
                );
            }
        }
        assert!(parse(&[0x81, 0x05], false).is_err(), "unmasked");
        assert!(
            parse(&[0x09, 0x80, 0, 0, 0, 0], false).is_err(),
            "fragmented ping"
        );
        assert!(
            parse(&[0x89, 0xfe, 0, 126, 0, 0, 0, 0], false).is_err(),
            "long ping"
        );
    }

    #[test]
    fn rsv1_only_on_a_data_frame_with_deflate_negotiated() {
        let mask = [0x80, 0, 0, 0, 0];
        let frame = |first: u8| [&[first][..], &mask].concat();
        // Text, binary, first fragment: compressed.
        for first in [0xc1, 0xc2, 0x41, 0x42] {
            let header = parse(&frame(first), true).expect("valid").expect("whole");
            assert!(header.rsv1);
            assert!(
                parse(&frame(first), false).is_err(),
                "{first:02x} without deflate"
            );
        }
        // Continuation, control frames: never.
        for first in [0xc0, 0x40, 0xc8, 0xc9, 0xca] {
            assert!(parse(&frame(first), true).is_err(), "{first:02x}");
        }
        // RSV2 and RSV3 mean nothing here.
        for first in [0xa1, 0x91, 0xe1] {
            assert!(parse(&frame(first), true).is_err(), "{first:02x}");
        }
    }

    #[test]
    fn partial_headers_wait() {
        let full = [0x82, 0xff, 0, 0, 0, 0, 0, 1, 0, 0, 1, 2, 3, 4];
        for cut in 0..full.len() {
            assert_eq!(parse(&full[..cut], false), Ok(None), "cut {cut}");
        }
        let header = parse(&full, false).expect("valid").expect("complete");
        assert_eq!((header.len, header.header_len), (65_536, 14));
    }

    #[test]
    fn written_headers_parse_back_in_tungstenite() {
        for len in [0usize, 125, 126, 65_535, 65_536, 1 << 20] {
            let mut out = Vec::new();
            write(&mut out, OpCode::Data(Data::Binary), false, len);
            let (header, parsed_len) = FrameHeader::parse(&mut Cursor::new(&out[..]))
                .expect("valid")
                .expect("complete");
            assert_eq!(
                (parsed_len, header.is_final, header.mask),
                (len as u64, true, None)
            );
        }
    }
}
