//! Messages as components receive and send them.

use std::cell::OnceCell;
use std::fmt;
use std::rc::Rc;

/// A message received, borrowed from the server's read buffer: copy what
/// you keep.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Message<'a> {
    /// A text message (valid UTF-8, checked by the server).
    Text(&'a str),
    /// A binary message.
    Binary(&'a [u8]),
}

impl<'a> Message<'a> {
    /// The payload bytes.
    pub fn as_bytes(&self) -> &'a [u8] {
        match self {
            Message::Text(t) => t.as_bytes(),
            Message::Binary(b) => b,
        }
    }

    /// True for text.
    pub fn is_text(&self) -> bool {
        matches!(self, Message::Text(_))
    }

    /// An owned copy, for sending from another thread.
    pub fn to_owned(&self) -> OwnedMessage {
        match self {
            Message::Text(t) => OwnedMessage::Text((*t).to_owned()),
            Message::Binary(b) => OwnedMessage::Binary(b.to_vec()),
        }
    }
}

impl<'a> From<&'a str> for Message<'a> {
    fn from(text: &'a str) -> Self {
        Message::Text(text)
    }
}

impl<'a> From<&'a String> for Message<'a> {
    fn from(text: &'a String) -> Self {
        Message::Text(text)
    }
}

impl<'a> From<&'a [u8]> for Message<'a> {
    fn from(bytes: &'a [u8]) -> Self {
        Message::Binary(bytes)
    }
}

impl<'a> From<&'a Vec<u8>> for Message<'a> {
    fn from(bytes: &'a Vec<u8>) -> Self {
        Message::Binary(bytes)
    }
}

impl<'a, const N: usize> From<&'a [u8; N]> for Message<'a> {
    fn from(bytes: &'a [u8; N]) -> Self {
        Message::Binary(bytes)
    }
}

impl<'a> From<&'a OwnedMessage> for Message<'a> {
    fn from(message: &'a OwnedMessage) -> Self {
        message.as_message()
    }
}

/// An owned message, for sends from other threads
/// ([`ServerHandle::send`](crate::ServerHandle::send)).
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum OwnedMessage {
    /// Text.
    Text(String),
    /// Binary.
    Binary(Vec<u8>),
}

impl OwnedMessage {
    /// Borrows it as a [`Message`].
    pub fn as_message(&self) -> Message<'_> {
        match self {
            OwnedMessage::Text(t) => Message::Text(t),
            OwnedMessage::Binary(b) => Message::Binary(b),
        }
    }
}

/// A message encoded once as a frame, to be sent to many connections
/// without encoding it again (see [`Context::prepare`](crate::Context::prepare)),
/// and compressed at most once for all the connections that share the
/// loop's compressor.
#[derive(Clone)]
pub struct PreparedMessage {
    pub(crate) inner: Rc<Prepared>,
}

/// What a [`PreparedMessage`] shares between its clones.
pub(crate) struct Prepared {
    /// The plain frame.
    pub(crate) frame: Box<[u8]>,
    pub(crate) text: bool,
    /// Where the payload starts in `frame`.
    payload_start: usize,
    /// The frame compressed without context, made on first use.
    pub(crate) compressed: OnceCell<Box<[u8]>>,
}

impl Prepared {
    /// `frame` (a whole frame carrying `payload_len` bytes) as prepared.
    pub(crate) fn new(frame: Vec<u8>, text: bool, payload_len: usize) -> Prepared {
        Prepared {
            payload_start: frame.len() - payload_len,
            frame: frame.into(),
            text,
            compressed: OnceCell::new(),
        }
    }

    /// The message's payload.
    pub(crate) fn payload(&self) -> &[u8] {
        &self.frame[self.payload_start..]
    }
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("frame_len", &self.inner.frame.len())
            .field("compressed", &self.inner.compressed.get().map(|c| c.len()))
            .finish()
    }
}
