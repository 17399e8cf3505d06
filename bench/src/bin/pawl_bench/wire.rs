//! The client side of RFC 6455 on the wire: the upgrade request and its
//! check, masked frames out, unmasked server frames in, and the payloads
//! whose echoes are checked byte for byte.

use std::fmt::Write as _;

use pawl::frame::mask::apply_mask;

use crate::Error;
use crate::deflate::{self, Agreed};

pub const OP_CONT: u8 = 0x0;
pub const OP_TEXT: u8 = 0x1;
pub const OP_BINARY: u8 = 0x2;
pub const OP_CLOSE: u8 = 0x8;
pub const OP_PING: u8 = 0x9;
pub const OP_PONG: u8 = 0xA;

/// The upgrade request for `path` on `host`, as a browser on the same origin
/// would send it, with a key derived from `seed` (the key need not be
/// random for a benchmark, only distinct); with `deflate`, offering
/// permessage-deflate as Chromium does.
pub fn upgrade_request(host: &str, path: &str, seed: u64, deflate: bool) -> (Vec<u8>, String) {
    let key = base64_16(&seed.to_le_bytes(), &(!seed).to_le_bytes());
    let mut req = String::with_capacity(260);
    let _ = write!(
        req,
        "GET {path} HTTP/1.1\r\nHost: {host}\r\nOrigin: http://{host}\r\n\
         Upgrade: websocket\r\nConnection: Upgrade\r\nSec-WebSocket-Key: {key}\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    if deflate {
        let _ = write!(req, "Sec-WebSocket-Extensions: {}\r\n", deflate::OFFER);
    }
    req.push_str("\r\n");
    (req.into_bytes(), key)
}

/// Checks a complete response head (up to and including `\r\n\r\n`):
/// status 101 and the accept key that `key` asks for; returns the
/// permessage-deflate parameters the server agreed to, if it did. An
/// extension answered to a request that offered none is an error.
pub fn check_upgrade_response(
    head: &[u8],
    key: &str,
    offered: bool,
) -> Result<Option<Agreed>, Error> {
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
    let mut answers = resp
        .headers
        .iter()
        .filter(|h| h.name.eq_ignore_ascii_case("sec-websocket-extensions"));
    let Some(answer) = answers.next() else {
        return Ok(None);
    };
    if !offered || answers.next().is_some() {
        return Err(Error::Protocol(
            "an extension answer that was not asked for".into(),
        ));
    }
    let value = std::str::from_utf8(answer.value)
        .map_err(|_| Error::Protocol("extension answer is not UTF-8".into()))?;
    Agreed::parse(value).map(Some)
}

/// One server frame's header, parsed.
pub struct FrameHead {
    pub fin: bool,
    /// RSV1: the first frame of a compressed message (checked by the
    /// connection, which knows whether deflate was agreed).
    pub rsv1: bool,
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
    if b0 & 0x30 != 0 {
        return Err(Error::Protocol("RSV2 or RSV3 set in a server frame".into()));
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
        rsv1: b0 & 0x40 != 0,
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

/// Appends a masked client frame with FIN and RSV1 set: a whole message
/// whose payload is compressed.
pub fn encode_masked_compressed(out: &mut Vec<u8>, opcode: u8, payload: &[u8], mask: [u8; 4]) {
    masked(out, 0xC0 | opcode, payload, mask);
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
/// connection and sequence number in hex) followed by a fixed fill, cut or
/// padded to the message size. The fill is ASCII, so valid as text: the
/// alphabet over and over ([`Payloads::new`]), or JSON-like chat records
/// ([`Payloads::json`]) taken from a different place for every message,
/// so that a compressor that keeps its window sees similar messages, not
/// the same one again.
pub struct Payloads {
    size: usize,
    /// Before the tag.
    head: &'static [u8],
    /// Between the tag and the fill.
    mid: &'static [u8],
    fill: Vec<u8>,
    /// Number of places in `fill` a message may start at (0: at `TAG`).
    spread: usize,
}

/// Length of the `conn:seq:` prefix.
const TAG: usize = 26;

/// Places a JSON-like message may start at in its fill.
const JSON_SPREAD: usize = 64 * 1024;

impl Payloads {
    /// The alphabet payloads of the uncompressed scenarios.
    pub fn new(size: usize) -> Self {
        let fill = (0..size.max(TAG)).map(|i| b'a' + (i % 26) as u8).collect();
        Payloads {
            size,
            head: b"",
            mid: b"",
            fill,
            spread: 0,
        }
    }

    /// JSON-like text, compressible as a chat's or an API's JSON is:
    /// `{"id":"TAG","body":[{"id":N,"from":"NAME","room":"lobby","ts":T,"text":"words"},...`
    /// cut to `size`.
    pub fn json(size: usize) -> Self {
        const NAMES: [&str; 12] = [
            "alice", "bob", "carol", "dave", "erin", "frank", "grace", "heidi", "ivan", "judy",
            "mallory", "oscar",
        ];
        const WORDS: [&str; 48] = [
            "the", "a", "to", "and", "is", "it", "you", "that", "of", "in", "for", "on", "we",
            "this", "with", "be", "have", "not", "are", "just", "so", "can", "do", "what",
            "deploy", "server", "build", "tests", "merge", "review", "branch", "lunch", "today",
            "tomorrow", "meeting", "ok", "thanks", "great", "idea", "bug", "fixed", "yes", "no",
            "maybe", "later", "pushed", "green", "red",
        ];
        let mut fill = Vec::with_capacity(size + JSON_SPREAD + 256);
        // xorshift: a fixed text, the same in every process.
        let mut x: u64 = 0x9E37_79B9_7F4A_7C15;
        let mut next = |n: usize| {
            x ^= x << 13;
            x ^= x >> 7;
            x ^= x << 17;
            (x % n as u64) as usize
        };
        let mut id = 1000;
        while fill.len() < size + JSON_SPREAD {
            id += 1;
            let _ = write!(
                VecWriter(&mut fill),
                r#"{{"id":{id},"from":"{}","room":"lobby","ts":{},"text":""#,
                NAMES[next(NAMES.len())],
                1_764_750_000_000u64 + id * 1_337,
            );
            let words = 3 + next(14);
            for w in 0..words {
                if w > 0 {
                    fill.push(b' ');
                }
                fill.extend_from_slice(WORDS[next(WORDS.len())].as_bytes());
            }
            fill.extend_from_slice(b"\"},");
        }
        Payloads {
            size,
            head: br#"{"id":""#,
            mid: br#"","body":["#,
            fill,
            spread: JSON_SPREAD,
        }
    }

    /// The message's pieces in order; together at least `size` bytes.
    fn parts<'a>(&'a self, tag: &'a [u8; TAG], conn: u32, seq: u64) -> [&'a [u8]; 4] {
        let from = match self.spread {
            0 => TAG,
            n => {
                let h = (conn as u64).wrapping_mul(0x9E37_79B9_7F4A_7C15)
                    ^ seq.wrapping_mul(0xC2B2_AE3D_27D4_EB4F);
                (h >> 17) as usize % n
            }
        };
        [self.head, tag, self.mid, &self.fill[from..]]
    }

    /// Writes the payload for (`conn`, `seq`) into `buf`, replacing it.
    pub fn build(&self, conn: u32, seq: u64, buf: &mut Vec<u8>) {
        buf.clear();
        let tag = tag(conn, seq);
        for part in self.parts(&tag, conn, seq) {
            let take = part.len().min(self.size - buf.len());
            buf.extend_from_slice(&part[..take]);
        }
    }

    /// True when `got` is exactly the payload for (`conn`, `seq`).
    pub fn matches(&self, conn: u32, seq: u64, got: &[u8]) -> bool {
        if got.len() != self.size {
            return false;
        }
        let tag = tag(conn, seq);
        let mut rest = got;
        for part in self.parts(&tag, conn, seq) {
            let take = part.len().min(rest.len());
            if rest[..take] != part[..take] {
                return false;
            }
            rest = &rest[take..];
        }
        true
    }
}

/// `fmt::Write` into a byte vector.
struct VecWriter<'a>(&'a mut Vec<u8>);

impl std::fmt::Write for VecWriter<'_> {
    fn write_str(&mut self, s: &str) -> std::fmt::Result {
        self.0.extend_from_slice(s.as_bytes());
        Ok(())
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
    fn json_payloads_differ_per_message_and_check() {
        for size in [32, 16 * 1024] {
            let payloads = Payloads::json(size);
            let (mut a, mut b) = (Vec::new(), Vec::new());
            payloads.build(3, 1, &mut a);
            payloads.build(3, 2, &mut b);
            assert_eq!((a.len(), b.len()), (size, size));
            assert!(a.starts_with(br#"{"id":"00000003:"#));
            assert!(payloads.matches(3, 1, &a) && payloads.matches(3, 2, &b));
            assert!(!payloads.matches(3, 2, &a));
            assert!(a.is_ascii());
            if size > 100 {
                assert_ne!(a[40..], b[40..]);
                a[size - 1] ^= 1;
                assert!(!payloads.matches(3, 1, &a));
            }
        }
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
