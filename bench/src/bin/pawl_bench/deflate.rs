//! The client side of permessage-deflate (RFC 7692), as a browser speaks
//! it: the offer, the server's answer read and checked, a compressor that
//! follows what was agreed, and a decompressor for RSV1 replies.
//!
//! The client offers what Chromium offers, `permessage-deflate;
//! client_max_window_bits`, and then does what the answer says: it keeps
//! its compressor's window between messages only when the server did not
//! ask for `client_no_context_takeover`, compresses within
//! `client_max_window_bits`, and keeps its decompressor's window only when
//! the server did not promise `server_no_context_takeover`. Compression is
//! flate2 on zlib-rs, the same DEFLATE as pawl's, at zlib's default level,
//! as browsers use.

use flate2::{Compress, Decompress, FlushCompress, FlushDecompress, Status};

use crate::Error;

/// The offer, as Chromium sends it.
pub const OFFER: &str = "permessage-deflate; client_max_window_bits";

/// The empty stored block a sync flush ends with; RFC 7692 §7.2.1 strips it
/// from a message and the receiver puts it back.
const TAIL: [u8; 4] = [0x00, 0x00, 0xff, 0xff];

/// Largest message a reply may inflate to; past it the reply is an error,
/// not an allocation.
const MAX_INFLATED: usize = 64 << 20;

/// What the server's `Sec-WebSocket-Extensions` answer agreed to.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Agreed {
    pub server_no_context_takeover: bool,
    pub client_no_context_takeover: bool,
    pub server_max_window_bits: Option<u8>,
    pub client_max_window_bits: Option<u8>,
}

impl Agreed {
    /// Reads the answer to [`OFFER`]. Anything but one permessage-deflate
    /// with known, single, in-range parameters is an error: a server that
    /// answers what was not offered fails the handshake (RFC 7692 §5.1).
    pub fn parse(value: &str) -> Result<Agreed, Error> {
        let bad = |why: &str| Error::Protocol(format!("extension answer {value:?}: {why}"));
        if value.contains(',') {
            return Err(bad("more than one extension"));
        }
        let mut parts = value.split(';').map(str::trim);
        if parts.next() != Some("permessage-deflate") {
            return Err(bad("not permessage-deflate"));
        }
        let mut agreed = Agreed::default();
        let mut seen = Vec::new();
        for part in parts {
            let (name, val) = match part.split_once('=') {
                Some((n, v)) => (n.trim(), Some(v.trim().trim_matches('"'))),
                None => (part, None),
            };
            if seen.contains(&name) {
                return Err(bad("a parameter twice"));
            }
            seen.push(name);
            let bits = || -> Result<u8, Error> {
                val.and_then(|v| v.parse::<u8>().ok())
                    .filter(|b| (8..=15).contains(b))
                    .ok_or_else(|| bad("window bits missing or out of 8..=15"))
            };
            match (name, val) {
                ("server_no_context_takeover", None) => agreed.server_no_context_takeover = true,
                ("client_no_context_takeover", None) => agreed.client_no_context_takeover = true,
                ("server_max_window_bits", _) => agreed.server_max_window_bits = Some(bits()?),
                ("client_max_window_bits", _) => agreed.client_max_window_bits = Some(bits()?),
                _ => return Err(bad("unknown or malformed parameter")),
            }
        }
        Ok(agreed)
    }

    /// The window the client compresses with: the server's limit, or 15.
    /// zlib has no raw 8-bit window (it makes 8 a 9, as browsers do); no
    /// server measured here asks for 8.
    fn client_window_bits(&self) -> u8 {
        self.client_max_window_bits.unwrap_or(15).max(9)
    }
}

impl std::fmt::Display for Agreed {
    /// The parameters as one word for a RESULT line:
    /// `pmd+snct+cnct+smwb=N+cmwb=N`, each only when agreed.
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("pmd")?;
        if self.server_no_context_takeover {
            f.write_str("+snct")?;
        }
        if self.client_no_context_takeover {
            f.write_str("+cnct")?;
        }
        if let Some(bits) = self.server_max_window_bits {
            write!(f, "+smwb={bits}")?;
        }
        if let Some(bits) = self.client_max_window_bits {
            write!(f, "+cmwb={bits}")?;
        }
        Ok(())
    }
}

/// A client compressor, made at its first message.
pub struct Deflater {
    /// Keep the window between messages: only if the server allowed it and
    /// the caller wants it (a client may always start afresh).
    keep_context: bool,
    window_bits: u8,
    stream: Option<Compress>,
    /// The last compressed payload.
    pub out: Vec<u8>,
}

impl Deflater {
    /// A compressor for a connection that agreed `agreed`; `keep_context`
    /// false resets the window after every message even where the server
    /// would allow keeping it (RFC 7692 allows that to any sender).
    pub fn new(agreed: &Agreed, keep_context: bool) -> Deflater {
        Deflater {
            keep_context: keep_context && !agreed.client_no_context_takeover,
            window_bits: agreed.client_window_bits(),
            stream: None,
            out: Vec::new(),
        }
    }

    /// Compresses one message into `self.out`, without the sync-flush tail.
    pub fn compress(&mut self, message: &[u8]) -> Result<&[u8], Error> {
        let window_bits = self.window_bits;
        let stream = self.stream.get_or_insert_with(|| {
            Compress::new_with_window_bits(flate2::Compression::default(), false, window_bits)
        });
        self.out.clear();
        self.out.reserve(message.len() / 2 + 64);
        let start = stream.total_in();
        loop {
            let used = (stream.total_in() - start) as usize;
            stream
                .compress_vec(&message[used..], &mut self.out, FlushCompress::Sync)
                .map_err(|e| Error::Protocol(format!("deflate: {e}")))?;
            // A sync flush is complete once all input is in and zlib left
            // room in the output.
            if (stream.total_in() - start) as usize == message.len()
                && self.out.len() < self.out.capacity()
            {
                break;
            }
            self.out.reserve(self.out.capacity().max(1024));
        }
        if !self.out.ends_with(&TAIL) {
            return Err(Error::Protocol("deflate: no sync-flush tail".into()));
        }
        self.out.truncate(self.out.len() - TAIL.len());
        if !self.keep_context {
            stream.reset();
        }
        Ok(&self.out)
    }
}

/// A client decompressor, made at the first compressed reply.
pub struct Inflater {
    keep_context: bool,
    stream: Option<Decompress>,
    input: Vec<u8>,
    /// The last inflated message.
    pub out: Vec<u8>,
}

impl Inflater {
    /// A decompressor for a connection that agreed `agreed`.
    pub fn new(agreed: &Agreed) -> Inflater {
        Inflater {
            keep_context: !agreed.server_no_context_takeover,
            stream: None,
            input: Vec::new(),
            out: Vec::new(),
        }
    }

    /// Inflates one compressed message (its frames' payloads joined) into
    /// `self.out`.
    pub fn inflate(&mut self, compressed: &[u8]) -> Result<&[u8], Error> {
        // A 15-bit window inflates whatever window the server used.
        let stream = self
            .stream
            .get_or_insert_with(|| Decompress::new_with_window_bits(false, 15));
        self.input.clear();
        self.input.extend_from_slice(compressed);
        self.input.extend_from_slice(&TAIL);
        self.out.clear();
        self.out.reserve(compressed.len() * 4 + 64);
        let start = stream.total_in();
        loop {
            let used = (stream.total_in() - start) as usize;
            let status = stream
                .decompress_vec(&self.input[used..], &mut self.out, FlushDecompress::Sync)
                .map_err(|e| Error::Protocol(format!("inflate: {e}")))?;
            let done = (stream.total_in() - start) as usize == self.input.len();
            if status == Status::StreamEnd {
                return Err(Error::Protocol(
                    "inflate: a final block inside a message".into(),
                ));
            }
            if done && self.out.len() < self.out.capacity() {
                break;
            }
            if self.out.len() > MAX_INFLATED {
                return Err(Error::Protocol("inflate: reply over 64 MiB".into()));
            }
            self.out.reserve(self.out.capacity().max(1024));
        }
        if !self.keep_context {
            // Nothing to keep: the next reply starts afresh, and an idle
            // connection holds no decompressor.
            self.stream = None;
        }
        Ok(&self.out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_answers_and_refuses_what_was_not_offered() {
        let a = Agreed::parse(
            "permessage-deflate; server_no_context_takeover; client_no_context_takeover",
        )
        .unwrap();
        assert!(a.server_no_context_takeover && a.client_no_context_takeover);
        let b = Agreed::parse("permessage-deflate; client_max_window_bits=12").unwrap();
        assert_eq!(b.client_max_window_bits, Some(12));
        assert!(Agreed::parse("permessage-deflate; client_max_window_bits=16").is_err());
        assert!(Agreed::parse("permessage-deflate; foo").is_err());
        assert!(Agreed::parse("x-webkit-deflate-frame").is_err());
        assert!(
            Agreed::parse(
                "permessage-deflate; server_no_context_takeover; server_no_context_takeover"
            )
            .is_err()
        );
    }

    #[test]
    fn round_trips_with_and_without_context() {
        for keep in [false, true] {
            let agreed = Agreed {
                server_no_context_takeover: !keep,
                client_no_context_takeover: !keep,
                ..Agreed::default()
            };
            let mut d = Deflater::new(&agreed, true);
            // The client's compressor feeds the server's decompressor: here
            // the test's own Inflater plays the server.
            let mut i = Inflater::new(&agreed);
            let text = br#"{"type":"say","text":"hello hello hello there"}"#;
            for _ in 0..3 {
                let z = d.compress(text).unwrap().to_vec();
                assert_eq!(i.inflate(&z).unwrap(), text);
            }
            // With context kept, a repeat compresses to a back reference.
            let z = d.compress(text).unwrap().len();
            assert_eq!(keep, z < 10, "{z} bytes");
        }
    }
}
