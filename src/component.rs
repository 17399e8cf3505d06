//! The application side: the [`Component`] trait (Ratchet's
//! `MessageComponentInterface`) and the values its callbacks see.

use std::any::Any;
use std::fmt;
use std::rc::Rc;

use crate::context::Context;
use crate::error::{Error, Limit};
use crate::frame::Violation;
use crate::frame::close_code;
use crate::reactor::TimerId;

/// Identifies a connection for its whole life; Ratchet's `resourceId`.
///
/// It holds a slot and a generation, so an id kept after its connection
/// closed never reaches the connection that later reuses the slot: sends to
/// it report [`SendStatus::Dropped`].
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) generation: u32,
    pub(crate) key: u32,
}

impl ConnId {
    /// A number unique among the connections of one server process (until
    /// 2^32 connections were opened), for logs and protocol messages.
    pub fn resource_id(self) -> u64 {
        u64::from(self.generation)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.generation)
    }
}

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

/// An owned message, for [`ServerHandle`](crate::ServerHandle) sends from
/// other threads.
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
/// without encoding it again (see [`Context::prepare`]).
#[derive(Clone)]
pub struct PreparedMessage {
    pub(crate) frame: Rc<[u8]>,
}

impl fmt::Debug for PreparedMessage {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("PreparedMessage")
            .field("frame_len", &self.frame.len())
            .finish()
    }
}

/// What became of a send, as uWebSockets reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a send can report backpressure or a dropped connection"]
pub enum SendStatus {
    /// Queued; it goes out at the end of this loop turn.
    Sent,
    /// Queued, but the connection has more than
    /// [`ServerConfig::backpressure_threshold`](crate::ServerConfig::backpressure_threshold)
    /// unsent: slow down until [`Component::on_drain`].
    Backpressure,
    /// Not sent: the connection is closed or closing, or this send pushed it
    /// past [`ServerConfig::max_backpressure`](crate::ServerConfig::max_backpressure)
    /// and it was closed.
    Dropped,
}

/// Why a connection closed, as [`Component::on_close`] is told.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum CloseReason {
    /// The peer sent a close frame with this code (1005 if it sent none) and
    /// reason.
    Peer {
        /// The peer's close code.
        code: u16,
        /// The peer's reason text.
        reason: String,
    },
    /// A component (or a [`ServerHandle`](crate::ServerHandle)) closed it.
    Server {
        /// The close code sent.
        code: u16,
        /// The reason sent.
        reason: String,
    },
    /// The peer broke the protocol; the server closed with this code.
    Protocol(Violation),
    /// The peer hit a limit (message size, backpressure, idle timeout, close
    /// timeout).
    Limit(Limit),
    /// The socket failed or the peer vanished without a close frame.
    Io(std::io::ErrorKind),
    /// The server is shutting down (1001).
    Shutdown,
    /// A component callback panicked (1011).
    Panic,
}

impl CloseReason {
    /// The close code that went over the wire, or 1006 when none did.
    pub fn code(&self) -> u16 {
        match self {
            CloseReason::Peer { code, .. } | CloseReason::Server { code, .. } => *code,
            CloseReason::Protocol(v) => v.code,
            CloseReason::Limit(Limit::MessageTooBig) => close_code::TOO_BIG,
            CloseReason::Limit(Limit::IdleTimeout) => close_code::GOING_AWAY,
            CloseReason::Limit(Limit::Backpressure | Limit::CloseTimeout) | CloseReason::Io(_) => {
                close_code::ABNORMAL
            }
            CloseReason::Shutdown => close_code::GOING_AWAY,
            CloseReason::Panic => close_code::INTERNAL_ERROR,
        }
    }
}

impl fmt::Display for CloseReason {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            CloseReason::Peer { code, reason } => write!(f, "peer closed ({code} {reason:?})"),
            CloseReason::Server { code, reason } => write!(f, "server closed ({code} {reason:?})"),
            CloseReason::Protocol(v) => write!(f, "protocol error ({} {})", v.code, v.reason),
            CloseReason::Limit(limit) => write!(f, "limit: {limit}"),
            CloseReason::Io(kind) => write!(f, "connection lost ({kind})"),
            CloseReason::Shutdown => f.write_str("server shutdown"),
            CloseReason::Panic => f.write_str("component panicked"),
        }
    }
}

/// A WebSocket application, mounted on a route with
/// [`App::route`](crate::App::route).
///
/// Callbacks run on the loop thread, one at a time; they get a
/// [`Context`] that sends to any connection and sets timers. A component
/// keeps its own state (its set of clients, say). A panic in a callback is
/// caught: that connection is closed with 1011 and the loop serves everyone
/// else.
///
/// For each connection, `on_open` comes first and `on_close` last, exactly
/// once; `on_error` (a protocol error, a limit, an I/O error) comes just
/// before the `on_close` it causes.
///
/// # Examples
///
/// Ratchet's `MyChat`: every message goes to every client.
///
/// ```
/// use std::collections::BTreeSet;
/// use pawl::{CloseReason, Component, ConnId, Context, Message};
///
/// #[derive(Default)]
/// struct MyChat {
///     clients: BTreeSet<ConnId>,
/// }
///
/// impl Component for MyChat {
///     fn on_open(&mut self, _ctx: &mut Context<'_>, conn: ConnId) {
///         self.clients.insert(conn);
///     }
///     fn on_message(&mut self, ctx: &mut Context<'_>, _from: ConnId, msg: pawl::Message<'_>) {
///         ctx.broadcast(self.clients.iter().copied(), msg);
///     }
///     fn on_close(&mut self, _ctx: &mut Context<'_>, conn: ConnId, _why: &CloseReason) {
///         self.clients.remove(&conn);
///     }
/// }
/// ```
pub trait Component: Any {
    /// A connection completed the upgrade on this component's route.
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// A whole message arrived (fragments are assembled first).
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, message: Message<'_>);

    /// The connection is gone; `reason` says why. Sends to it are dropped.
    fn on_close(&mut self, ctx: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let _ = (ctx, conn, reason);
    }

    /// Something went wrong on the connection; `on_close` follows.
    fn on_error(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &Error) {
        let _ = (ctx, conn, error);
    }

    /// A connection that reported [`SendStatus::Backpressure`] has sent
    /// everything queued.
    fn on_drain(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let _ = (ctx, conn);
    }

    /// The subprotocols this component speaks, most preferred first. The
    /// handshake answers with the first one the client offers in
    /// `Sec-WebSocket-Protocol` (Ratchet's `getSubProtocols`). Default: none;
    /// a client that insists on one then fails the handshake on its side.
    fn subprotocols(&self) -> &[&str] {
        &[]
    }

    /// A timer set with [`Context::set_timer`] or [`Context::set_periodic`] fired.
    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let _ = (ctx, timer);
    }
}
