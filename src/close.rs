//! Ending connections: the close codes a server may send, and why a
//! connection closed.

use std::fmt;

use crate::error::Limit;
use crate::frame::{Violation, close_code};

/// A close code a server may send (RFC 6455 §7.4): 1000 to 1003, 1007 to
/// 1014, and the application ranges 3000 to 4999. Codes that must never go
/// over the wire (1005, 1006, 1015) and reserved ones cannot be built, so
/// [`Context::close`](crate::Context::close) never has to rewrite one.
///
/// ```
/// use pawl::CloseCode;
///
/// assert_eq!(CloseCode::new(4000).map(CloseCode::get), Some(4000));
/// assert_eq!(CloseCode::new(1006), None);
/// assert_eq!(CloseCode::POLICY.get(), 1008);
/// ```
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CloseCode(u16);

impl CloseCode {
    /// 1000: the purpose of the connection is fulfilled.
    pub const NORMAL: CloseCode = CloseCode(close_code::NORMAL);
    /// 1001: the server is going away (shutting down, idle timeout).
    pub const GOING_AWAY: CloseCode = CloseCode(close_code::GOING_AWAY);
    /// 1002: the peer broke the protocol.
    pub const PROTOCOL_ERROR: CloseCode = CloseCode(close_code::PROTOCOL);
    /// 1003: a kind of data this endpoint does not accept.
    pub const UNSUPPORTED_DATA: CloseCode = CloseCode(1003);
    /// 1007: data inconsistent with the message type (bad UTF-8).
    pub const INVALID_DATA: CloseCode = CloseCode(close_code::INVALID_PAYLOAD);
    /// 1008: a message that violates the server's policy.
    pub const POLICY: CloseCode = CloseCode(1008);
    /// 1009: a message too big to process.
    pub const TOO_BIG: CloseCode = CloseCode(close_code::TOO_BIG);
    /// 1011: the server hit an unexpected condition.
    pub const INTERNAL_ERROR: CloseCode = CloseCode(close_code::INTERNAL_ERROR);
    /// 1012: the server is restarting.
    pub const RESTART: CloseCode = CloseCode(1012);
    /// 1013: try again later (the server is overloaded).
    pub const TRY_AGAIN_LATER: CloseCode = CloseCode(1013);

    /// The code, if a server may send it; `None` for 1004 to 1006, 1015,
    /// anything below 1000, the unassigned 1016 to 2999, and 5000 and up.
    pub fn new(code: u16) -> Option<CloseCode> {
        let allowed = tungstenite::protocol::frame::coding::CloseCode::from(code).is_allowed();
        allowed.then_some(CloseCode(code))
    }

    /// The number on the wire.
    pub fn get(self) -> u16 {
        self.0
    }
}

impl fmt::Display for CloseCode {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}", self.0)
    }
}

impl TryFrom<u16> for CloseCode {
    type Error = InvalidCloseCode;

    fn try_from(code: u16) -> Result<Self, Self::Error> {
        CloseCode::new(code).ok_or(InvalidCloseCode(code))
    }
}

impl From<CloseCode> for u16 {
    fn from(code: CloseCode) -> u16 {
        code.0
    }
}

/// A number that is not a close code a server may send (see [`CloseCode::new`]).
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[error("{0} is not a close code a server may send")]
pub struct InvalidCloseCode(pub u16);

/// Why a connection closed, as [`Component::on_close`](crate::Component::on_close) is told.
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
        code: CloseCode,
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
            CloseReason::Peer { code, .. } => *code,
            CloseReason::Server { code, .. } => code.get(),
            CloseReason::Protocol(v) => v.code,
            CloseReason::Limit(Limit::MessageTooBig) => close_code::TOO_BIG,
            CloseReason::Limit(Limit::IdleTimeout) => close_code::GOING_AWAY,
            CloseReason::Limit(Limit::MessageTimeout) => close_code::POLICY,
            CloseReason::Limit(Limit::Backpressure | Limit::UnsentBudget | Limit::CloseTimeout)
            | CloseReason::Io(_) => close_code::ABNORMAL,
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

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn only_codes_a_server_may_send_can_be_built() {
        for code in [
            1000, 1001, 1002, 1003, 1007, 1008, 1009, 1010, 1011, 3000, 4999,
        ] {
            assert_eq!(
                CloseCode::new(code).map(CloseCode::get),
                Some(code),
                "{code}"
            );
        }
        for code in [0, 999, 1004, 1005, 1006, 1015, 2999, 5000, u16::MAX] {
            assert_eq!(
                CloseCode::try_from(code),
                Err(InvalidCloseCode(code)),
                "{code}"
            );
        }
    }
}
