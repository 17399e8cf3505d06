//! The client side of RFC 6455 on the wire: the upgrade request and its
//! check, masked frames out, unmasked server frames in, and the payloads
//! whose echoes are checked byte for byte.

use std::fmt::Write as _;

use pawl::frame::mask::apply_mask;

use crate::Error;

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The upgrade request for `path` on `host`, as a browser on the same origin
/// would send it, with a key derived from `seed` (the key need not be
/// random for a benchmark, only distinct).
pub fn upgrade_request(host: &str, path: &str, seed: u64) -> (Vec<u8>, String) {
    let key = base64_16(&seed.to_le_bytes(), &(!seed).to_le_bytes());
    let mut req = String::with_capacity(200);
    let _ = write!(
        req,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n\r\n"
    );
    (req.into_bytes(), key)
}

/// Checks a complete response head (up to and including `\r\n\r\n`):
/// status 101 and the accept key that `key` asks for.
pub fn check_upgrade_response(head: &[u8], key: &str) -> Result<(), Error> {
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut resp = httparse::Response::new(&mut headers);
    match resp.parse(head) {
        Ok(httparse::Status::Complete(_)) => {}
        _ => return Err(Error::Protocol("unparsable upgrade response".into())),
    }
    if resp.code != Some(101) {
        let line = String::from_utf8_lossy(&head[..head.len().min(80)]).into_owned();
        return Err(Error::Protocol(format!("upgrade refused: {line:?}")));
    }
    let want = tungstenite::handshake::derive_accept_key(key.as_bytes());
    let accept = resp
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-accept"))
        .map(|h| h.value);
    if accept != Some(want.as_bytes()) {
        return Err(Error::Protocol("wrong Sec-WebSocket-Accept".into()));
    }
    Ok(())
}

/// One server frame's header, parsed.
pub struct FrameHead {
    pub fin: bool,
    pub opcode: u8,
    /// Bytes of header before the payload.
    pub header_len: usize,
    pub payload_len: usize,
}

/// Parses a server frame header; `Ok(None)` when `buf` holds too little.
/// A masked frame, set RSV bits or a malformed control frame is an error.
pub fn parse_head(buf: &[u8]) -> Result<Option<FrameHead>, Error> {
    if buf.len() < 2 {
        return Ok(None);
    }
    let (b0, b1) = (buf[0], buf[1]);
    if b0 & 0x70 != 0 {
        return Err(Error::Protocol("RSV bits set in a server frame".into()));
    }
    if b1 & 0x80 != 0 {
        return Err(Error::Protocol("masked server frame".into()));
    }
    let (payload_len, header_len) = match b1 & 0x7F {
        126 if buf.len() < 4 => return Ok(None),
        126 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() < 10 => return Ok(None),
        127 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        n => (n as usize, 2),
    };
    let head = FrameHead {
        fin: b0 & 0x80 != 0,
        opcode: b0 & 0x0F,
        header_len,
        payload_len,
    };
    if head.opcode >= 0x8 && (!head.fin || payload_len > 125) {
        return Err(Error::Protocol("fragmented or long control frame".into()));
    }
    if !matches!(
        head.opcode,
        OP_CONT | OP_TEXT | OP_BINARY | OP_CLOSE | OP_PING | OP_PONG
    ) {
        return Err(Error::Protocol(format!("reserved opcode {}", head.opcode)));
    }
    Ok(Some(head))
}

/// Appends a masked client frame with FIN set; `mask` is the masking key.
pub fn encode_masked(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    masked(out, 0x80 | opcode, payload, mask);
}

/// Appends a client-to-server frame, masked with `mask`, as a browser sends
/// it. `first` is the frame's first byte (FIN, RSV bits, opcode). The
/// client side lives here, not in pawl: a server never masks.
fn masked(out: &mut Vec<u8>, first: u8, payload: &[u8], mask: [u8; 4]) {
    out.reserve(payload.len() + 14);
    out.push(first);
    match payload.len() {
        n if n < 126 => out.push(0x80 | n as u8),
        n if n <= 0xffff => {
            out.push(0x80 | 126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(0x80 | 127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(&mask);
    let start = out.len();
    out.extend_from_slice(payload);
    apply_mask(&mut out[start..], mask);
}

/// The payloads a run sends, built so that a reply can be checked against
/// what was sent without keeping copies: `"cccccccc:ssssssssssssssss:"` (the
/// connection and sequence number in hex) followed by a fixed ASCII fill,
/// cut or padded to the message size. ASCII keeps it valid as text.
pub struct Payloads {
    size: usize,
    fill: Vec<u8>,
}

/// Length of the `conn:seq:` prefix.
const TAG: usize = 26;

impl Payloads {
    pub fn new(size: usize) -> Self {
        let fill = (0..size.max(TAG)).map(|i| b'a' + (i % 26) as u8).collect();
        Payloads { size, fill }
    }

    /// Writes the payload for (`conn`, `seq`) into `buf`, replacing it.
    pub fn build(&self, conn: u32, seq: u64, buf: &mut Vec<u8>) {
        buf.clear();
        let tag = tag(conn, seq);
        buf.extend_from_slice(&tag[..TAG.min(self.size)]);
        if self.size > TAG {
            buf.extend_from_slice(&self.fill[TAG..self.size]);
        }
    }

    /// True when `got` is exactly the payload for (`conn`, `seq`).
    pub fn matches(&self, conn: u32, seq: u64, got: &[u8]) -> bool {
        let cut = TAG.min(self.size);
        got.len() == self.size
            && got[..cut] == tag(conn, seq)[..cut]
            && got[cut..] == self.fill[cut..self.size]
    }
}

/// The connection id a payload is tagged with, if it carries all of it.
pub fn conn_of(got: &[u8]) -> Option<u32> {
    let hex = std::str::from_utf8(got.get(..8)?).ok()?;
    u32::from_str_radix(hex, 16).ok()
}

fn tag(conn: u32, seq: u64) -> [u8; TAG] {
    const HEX: &[u8; 16] = b"0123456789abcdef";
    let mut tag = [b':'; TAG];
    for i in 0..8 {
        tag[i] = HEX[(conn >> (28 - 4 * i) & 0xF) as usize];
    }
    for i in 0..16 {
        tag[9 + i] = HEX[(seq >> (60 - 4 * i) & 0xF) as usize];
    }
    tag
}

/// Standard base64 of 16 bytes (given as two halves), as the key needs.
fn base64_16(a: &[u8; 8], b: &[u8; 8]) -> String {
    const ALPHABET: &[u8; 64] = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    let mut bytes = [0u8; 18];
    bytes[..8].copy_from_slice(a);
    bytes[8..16].copy_from_slice(b);
    let mut out = String::with_capacity(24);
    for group in bytes.chunks(3) {
        let n = (group[0] as u32) << 16 | (group[1] as u32) << 8 | group[2] as u32;
        for shift in [18, 12, 6, 0] {
            out.push(ALPHABET[(n >> shift & 0x3F) as usize] as char);
        }
    }
    // 16 bytes encode to 22 characters plus "==".
    out.truncate(22);
    out.push_str("==");
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn payload_round_trip() {
        let payloads = Payloads::new(64);
        let mut buf = Vec::new();
        payloads.build(7, 9, &mut buf);
        assert!(payloads.matches(7, 9, &buf));
        assert!(!payloads.matches(7, 10, &buf));
        buf[40] ^= 1;
        assert!(!payloads.matches(7, 9, &buf));
    }

    #[test]
    fn masking_is_an_involution() {
        let mut out = Vec::new();
        encode_masked(&mut out, OP_TEXT, b"hello, masked world", [1, 2, 3, 4]);
        apply_mask(&mut out[6..], [1, 2, 3, 4]);
        assert_eq!(&out[6..], b"hello, masked world");
    }

    #[test]
    fn masked_lengths_follow_rfc6455() {
        let mask = [9, 8, 7, 6];
        let mut out = Vec::new();
        encode_masked(&mut out, OP_BINARY, &[0; 125], mask);
        assert_eq!(&out[..6], &[0x82, 0x80 | 125, 9, 8, 7, 6]);
        assert_eq!(out.len(), 6 + 125);

        out.clear();
        encode_masked(&mut out, OP_BINARY, &[0; 126], mask);
        assert_eq!(&out[..8], &[0x82, 0x80 | 126, 0, 126, 9, 8, 7, 6]);
        assert_eq!(out.len(), 8 + 126);

        out.clear();
        encode_masked(&mut out, OP_BINARY, &vec![0; 70_000], mask);
        assert_eq!(&out[..2], &[0x82, 0x80 | 127]);
        assert_eq!(&out[2..10], &70_000u64.to_be_bytes());
        assert_eq!(&out[10..14], &mask);
        assert_eq!(out.len(), 14 + 70_000);
    }

    #[test]
    fn masked_hello_is_rfc6455s_example() {
        // RFC 6455, section 5.7: a single-frame masked text message.
        let mut out = Vec::new();
        encode_masked(&mut out, OP_TEXT, b"Hello", [0x37, 0xfa, 0x21, 0x3d]);
        let want = [
            0x81, 0x85, 0x37, 0xfa, 0x21, 0x3d, 0x7f, 0x9f, 0x4d, 0x51, 0x58,
        ];
        assert_eq!(out, want);
    }
}
