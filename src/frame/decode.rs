//! Client-to-server frames: header parsing (tungstenite's), in-place
//! unmasking, fragment assembly and UTF-8 validation.
//!
//! The decoder works on a byte slice it may modify (to unmask) and never
//! copies an unfragmented message: the payload handed out borrows the input.
//! Only a fragmented message is assembled into a buffer of its own, grown as
//! fragments arrive, never reserved from a length the peer announced.

use tungstenite::protocol::frame::coding::{CloseCode, Control, Data, OpCode};

use super::header::{self, Header};
use super::mask::{apply_mask, apply_mask_at, unmask_ascii};
use super::utf8::{self, Prefix};

/// Close codes the server sends when it fails a connection.
pub mod close_code {
    /// Normal closure.
    pub const NORMAL: u16 = 1000;
    /// The server is going away (shutdown, idle timeout).
    pub const GOING_AWAY: u16 = 1001;
    /// The peer broke the protocol.
    pub const PROTOCOL: u16 = 1002;
    /// No status code was present (never sent on the wire).
    pub const NO_STATUS: u16 = 1005;
    /// The connection dropped without a close frame (never sent on the wire).
    pub const ABNORMAL: u16 = 1006;
    /// A text message was not valid UTF-8.
    pub const INVALID_PAYLOAD: u16 = 1007;
    /// A message or frame exceeded the configured size limit.
    pub const TOO_BIG: u16 = 1009;
    /// A message broke the server's policy (it arrived too slowly).
    pub const POLICY: u16 = 1008;
    /// The server hit an unexpected condition (a panicking component).
    pub const INTERNAL_ERROR: u16 = 1011;
}

/// Why the decoder gave up on a connection: the close code to send and a
/// short reason for the close frame and the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Violation {
    /// The close code to send (1002, 1007 or 1009).
    pub code: u16,
    /// A short human-readable reason.
    pub reason: &'static str,
}

const fn violation(code: u16, reason: &'static str) -> Violation {
    Violation { code, reason }
}

/// What the decoder enforces on a connection: the size limits, from
/// tungstenite's `WebSocketConfig`, and whether permessage-deflate was
/// negotiated (RSV1 allowed on a message's first frame).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Limits {
    /// Largest frame payload, in bytes.
    pub max_frame: usize,
    /// Largest message (all fragments together), in bytes; a compressed
    /// message is held to it both compressed and once inflated.
    pub max_message: usize,
    /// permessage-deflate was negotiated: a message whose first frame has
    /// RSV1 set comes out as [`Incoming::Compressed`].
    pub deflate: bool,
}

/// One decoded unit of input.
#[derive(Debug, PartialEq, Eq)]
pub enum Incoming<'a> {
    /// A whole text message, already checked to be UTF-8.
    Text(&'a str),
    /// A whole binary message.
    Binary(&'a [u8]),
    /// A whole message compressed with permessage-deflate, to be inflated
    /// (and, for text, checked as UTF-8 after inflating).
    Compressed {
        /// A text message (else binary).
        text: bool,
        /// The compressed payload, all fragments together.
        payload: &'a [u8],
    },
    /// A ping with its payload, to be answered with a pong.
    Ping(&'a [u8]),
    /// A pong.
    Pong,
    /// A close frame: its code (1005 when it had none) and reason.
    Close(u16, &'a str),
}

/// A fragmented message being assembled.
#[derive(Debug)]
struct Partial {
    text: bool,
    /// Compressed (RSV1 on its first frame): checked only once inflated.
    compressed: bool,
    data: Vec<u8>,
    /// Bytes of `data` known to be valid UTF-8 (text only), so each fragment
    /// is checked once and a bad sequence fails as soon as it arrives.
    checked: usize,
    /// The message was handed out; drop it on the next call.
    done: bool,
}

/// Per-connection decoder state: empty (no allocation) unless a fragmented
/// message is in flight.
///
/// ```
/// use pawl::frame::{Decoder, Incoming, Limits};
///
/// // A masked client text frame "Hi" (mask 1, 2, 3, 4).
/// let mut bytes = vec![0x81, 0x82, 1, 2, 3, 4, b'H' ^ 1, b'i' ^ 2];
/// let limits = Limits { max_frame: 1 << 20, max_message: 1 << 20, deflate: false };
/// let mut decoder = Decoder::default();
/// let mut pos = 0;
/// let unit = decoder.decode(&mut bytes, &mut pos, limits);
/// assert_eq!(unit, Ok(Some(Incoming::Text("Hi"))));
/// assert_eq!(pos, 8);
/// ```
#[derive(Debug, Default)]
pub struct Decoder {
    /// Boxed, so that an idle connection's decoder is one pointer.
    state: Option<Box<State>>,
}

/// What the decoder remembers between calls.
#[derive(Debug, Default)]
struct State {
    /// A fragmented message being assembled.
    partial: Option<Partial>,
    /// A text frame at the front of the input that has not fully arrived.
    progress: Progress,
    /// When the message now arriving began to (server clock, ms), while
    /// part of it is here and part is not.
    started: Option<u32>,
}

impl State {
    fn is_empty(&self) -> bool {
        self.partial.is_none() && self.progress == Progress::default() && self.started.is_none()
    }
}

/// How far a text frame that is still arriving was unmasked and checked,
/// so a bad byte fails the connection as soon as it is here (not when the
/// whole frame is), and each byte is unmasked and checked once.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq)]
struct Progress {
    /// Payload bytes unmasked in place.
    unmasked: usize,
    /// Payload bytes known to be whole, valid characters.
    valid: usize,
}

impl Decoder {
    /// Decodes the next frame in `buf[*pos..]`, unmasking it in place.
    ///
    /// Returns `Ok(None)` when the rest of `buf` is not a whole frame yet (the
    /// caller keeps `buf[*pos..]` for later), and moves `*pos` past each frame
    /// consumed. A continuation frame that is not final is consumed without
    /// output.
    pub fn decode<'a>(
        &'a mut self,
        buf: &'a mut [u8],
        pos: &mut usize,
        limits: Limits,
    ) -> Result<Option<Incoming<'a>>, Violation> {
        if self.partial().is_some_and(|p| p.done) {
            self.set_partial(None);
        }
        // Find the next unit without holding a borrow across iterations, then
        // borrow once for the result.
        let (header, range, ascii) = loop {
            let Some((header, range, ascii)) = self.next_frame(buf, pos, limits)? else {
                return Ok(None);
            };
            let payload = &buf[range.clone()];
            match header.opcode {
                OpCode::Data(Data::Text | Data::Binary) if !header.fin => {
                    let mut partial = Partial {
                        text: header.opcode == OpCode::Data(Data::Text),
                        compressed: header.rsv1,
                        data: Vec::new(),
                        checked: 0,
                        done: false,
                    };
                    partial.append(payload, false)?;
                    self.set_partial(Some(partial));
                }
                OpCode::Data(Data::Continue) => {
                    let Some(partial) = self.partial_mut() else {
                        return Err(violation(
                            close_code::PROTOCOL,
                            "continuation without a message",
                        ));
                    };
                    partial.append(payload, header.fin)?;
                    if header.fin {
                        partial.done = true;
                        break (header, None, false);
                    }
                }
                _ => break (header, Some(range), ascii),
            }
        };
        if matches!(header.opcode, OpCode::Data(_))
            && let Some(state) = self.state.as_mut()
        {
            // A data message is whole: the next one starts its own clock.
            state.started = None;
        }
        let Some(range) = range else {
            // A fragmented message just completed; `append` validated it.
            let partial = self.partial().filter(|p| p.done);
            return Ok(partial.map(|p| {
                if p.compressed {
                    Incoming::Compressed {
                        text: p.text,
                        payload: &p.data,
                    }
                } else if p.text {
                    // `append` validated every fragment, so this cannot fail;
                    // the re-check costs only on the rare fragmented path.
                    Incoming::Text(utf8::as_str(&p.data).unwrap_or_default())
                } else {
                    Incoming::Binary(&p.data)
                }
            }));
        };
        let payload = &buf[range];
        if header.rsv1 {
            return Ok(Some(Incoming::Compressed {
                text: header.opcode == OpCode::Data(Data::Text),
                payload,
            }));
        }
        Ok(Some(match header.opcode {
            OpCode::Control(Control::Ping) => Incoming::Ping(payload),
            OpCode::Control(Control::Pong) => Incoming::Pong,
            OpCode::Control(Control::Close) => close_frame(payload)?,
            // SAFETY: `unmask_ascii` saw no byte with the high bit set.
            OpCode::Data(Data::Text) if ascii => {
                Incoming::Text(unsafe { utf8::ascii_as_str(payload) })
            }
            OpCode::Data(Data::Text) => match utf8::as_str(payload) {
                Some(text) => Incoming::Text(text),
                None => return Err(violation(close_code::INVALID_PAYLOAD, "invalid UTF-8")),
            },
            OpCode::Data(Data::Binary) => Incoming::Binary(payload),
            _ => return Err(violation(close_code::PROTOCOL, "reserved opcode")),
        }))
    }

    /// Parses, checks and unmasks the next whole frame, returning its header,
    /// where its payload lies in `buf`, and, for a whole text message,
    /// whether the payload is all ASCII (and so needs no UTF-8 check).
    fn next_frame(
        &mut self,
        buf: &mut [u8],
        pos: &mut usize,
        limits: Limits,
    ) -> Result<Option<(Header, std::ops::Range<usize>, bool)>, Violation> {
        let start = *pos;
        let Some(header) = header::parse(&buf[start..], limits.deflate)? else {
            return Ok(None);
        };
        if header.len > limits.max_frame as u64 {
            return Err(violation(close_code::TOO_BIG, "frame too big"));
        }
        let len = header.len as usize; // fits: checked against max_frame above
        match (header.opcode, self.partial()) {
            (OpCode::Data(Data::Continue), None) => {
                return Err(violation(
                    close_code::PROTOCOL,
                    "continuation without a message",
                ));
            }
            (OpCode::Data(Data::Text | Data::Binary), Some(_)) => {
                return Err(violation(
                    close_code::PROTOCOL,
                    "new message inside a fragmented one",
                ));
            }
            _ => {}
        }
        let assembled = self.partial().map_or(0, |p| p.data.len());
        if matches!(header.opcode, OpCode::Data(_)) && assembled + len > limits.max_message {
            return Err(violation(close_code::TOO_BIG, "message too big"));
        }
        let payload_start = start + header.header_len;
        // A text message's own frame (not a continuation, not compressed):
        // its bytes can be checked as they arrive.
        let plain_text = header.opcode == OpCode::Data(Data::Text) && !header.rsv1;
        if buf.len() - payload_start < len {
            if plain_text {
                self.check_arrived(&mut buf[payload_start..], header.mask)?;
            }
            return Ok(None);
        }
        *pos = payload_start + len;
        let range = payload_start..payload_start + len;
        let payload = &mut buf[range.clone()];
        let progress = self.take_progress();
        let ascii = if progress.unmasked > 0 {
            // The start arrived earlier and is unmasked and checked already;
            // the whole payload is checked again once it is whole.
            apply_mask_at(
                &mut payload[progress.unmasked..],
                header.mask,
                progress.unmasked,
            );
            false
        } else if plain_text && header.fin {
            unmask_ascii(payload, header.mask)
        } else {
            apply_mask(payload, header.mask);
            false
        };
        Ok(Some((header, range, ascii)))
    }

    /// Unmasks and checks the part of a text frame's payload that has
    /// arrived (`arrived`, from the payload's first byte): RFC 6455 §8.1
    /// fails the connection as soon as the bytes are not UTF-8, and
    /// Autobahn's 6.4.3/6.4.4 hold a frame back after its bad byte to see
    /// that the server does not wait for the rest.
    fn check_arrived(&mut self, arrived: &mut [u8], mask: [u8; 4]) -> Result<(), Violation> {
        let mut progress = self
            .state
            .as_ref()
            .map_or_else(Progress::default, |s| s.progress);
        if arrived.len() <= progress.unmasked {
            return Ok(());
        }
        apply_mask_at(&mut arrived[progress.unmasked..], mask, progress.unmasked);
        progress.unmasked = arrived.len();
        match utf8::check_prefix(&arrived[progress.valid..]) {
            Prefix::Complete => progress.valid = arrived.len(),
            Prefix::Truncated { valid } => progress.valid += valid,
            Prefix::Invalid => {
                return Err(violation(close_code::INVALID_PAYLOAD, "invalid UTF-8"));
            }
        }
        self.state.get_or_insert_with(Box::default).progress = progress;
        Ok(())
    }

    /// The progress of the frame that just completed, forgotten.
    fn take_progress(&mut self) -> Progress {
        let Some(state) = self.state.as_mut() else {
            return Progress::default();
        };
        let progress = std::mem::take(&mut state.progress);
        if state.is_empty() {
            self.state = None;
        }
        progress
    }

    /// Notes that a message is partly here, at `now` unless it was noted
    /// before: the server closes a connection whose message takes longer
    /// than its message timeout to arrive.
    pub(crate) fn note_incomplete(&mut self, now: u32) {
        self.state
            .get_or_insert_with(Box::default)
            .started
            .get_or_insert(now);
    }

    /// Notes that nothing of a message is pending.
    pub(crate) fn note_complete(&mut self) {
        if let Some(state) = self.state.as_mut() {
            state.started = None;
            if state.is_empty() {
                self.state = None;
            }
        }
    }

    /// Since when a message has been partly here, if one is.
    pub(crate) fn incomplete_since(&self) -> Option<u32> {
        self.state.as_ref()?.started
    }

    /// True while a fragmented message is being assembled.
    pub(crate) fn in_message(&self) -> bool {
        self.partial().is_some_and(|p| !p.done)
    }

    fn partial(&self) -> Option<&Partial> {
        self.state.as_ref()?.partial.as_ref()
    }

    fn partial_mut(&mut self) -> Option<&mut Partial> {
        self.state.as_mut()?.partial.as_mut()
    }

    /// Starts or ends the fragmented message; the state's box goes when
    /// nothing is left in it.
    fn set_partial(&mut self, partial: Option<Partial>) {
        match partial {
            Some(partial) => self.state.get_or_insert_with(Box::default).partial = Some(partial),
            None => {
                if let Some(state) = self.state.as_mut() {
                    state.partial = None;
                    if state.is_empty() {
                        self.state = None;
                    }
                }
            }
        }
    }
}

impl Partial {
    fn append(&mut self, fragment: &[u8], is_final: bool) -> Result<(), Violation> {
        self.data.extend_from_slice(fragment);
        if !self.text || self.compressed {
            return Ok(());
        }
        match utf8::check_prefix(&self.data[self.checked..]) {
            Prefix::Complete => self.checked = self.data.len(),
            // The data ends inside a character that the next fragment may
            // complete; anything else is invalid now.
            Prefix::Truncated { valid } if !is_final => self.checked += valid,
            Prefix::Truncated { .. } | Prefix::Invalid => {
                return Err(violation(close_code::INVALID_PAYLOAD, "invalid UTF-8"));
            }
        }
        Ok(())
    }
}

fn close_frame(payload: &[u8]) -> Result<Incoming<'_>, Violation> {
    match payload {
        [] => Ok(Incoming::Close(close_code::NO_STATUS, "")),
        [_] => Err(violation(close_code::PROTOCOL, "close payload of one byte")),
        [hi, lo, reason @ ..] => {
            let code = u16::from_be_bytes([*hi, *lo]);
            if !CloseCode::from(code).is_allowed() {
                return Err(violation(close_code::PROTOCOL, "invalid close code"));
            }
            match utf8::as_str(reason) {
                Some(reason) => Ok(Incoming::Close(code, reason)),
                None => Err(violation(
                    close_code::INVALID_PAYLOAD,
                    "close reason not UTF-8",
                )),
            }
        }
    }
}

#[cfg(test)]
mod tests;
