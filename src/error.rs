//! The crate's error type.

use std::io;

use crate::frame::Violation;

/// Everything that can go wrong in pawl.
///
/// A connection's error closes that connection (components see it in
/// [`Component::on_error`](crate::Component::on_error)); only a failure of
/// the loop itself is returned from [`App::run`](crate::App::run).
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum Error {
    /// A socket or poll operation failed.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// The peer broke RFC 6455; the connection was closed with `code`.
    #[error("protocol error ({}): {}", .0.code, .0.reason)]
    Protocol(Violation),
    /// The peer exceeded a configured limit.
    #[error("limit exceeded: {0}")]
    Limit(Limit),
    /// A component callback panicked; the connection was closed with 1011.
    #[error("a component panicked: {0}")]
    Panic(String),
    /// A configuration value is out of range.
    #[error("invalid configuration: {0}")]
    Config(String),
    /// The TLS configuration cannot be used: a certificate or key file is
    /// unreadable, empty, or the two do not match.
    #[error("TLS: {0}")]
    Tls(String),
}

/// A limit a peer hit.
#[derive(Debug, Clone, Copy, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum Limit {
    /// A message or frame was larger than allowed (closed with 1009).
    #[error("message too big")]
    MessageTooBig,
    /// The peer did not read fast enough and its outbound buffer overflowed.
    #[error("outbound buffer full (the peer is not reading)")]
    Backpressure,
    /// The server held more unsent output than its budget, and this
    /// connection held the most (see
    /// [`ServerConfig::unsent_budget`](crate::ServerConfig::unsent_budget)).
    #[error("the server's budget for unsent output ran out (the peer is not reading)")]
    UnsentBudget,
    /// The peer did not answer pings within the idle timeout.
    #[error("idle timeout")]
    IdleTimeout,
    /// The peer did not complete the close handshake in time.
    #[error("close timeout")]
    CloseTimeout,
    /// A message did not arrive whole within the message timeout (closed
    /// with 1008): a frame trickled byte by byte holds no connection.
    #[error("message timeout")]
    MessageTimeout,
}

/// `Result` with pawl's [`Error`].
pub type Result<T, E = Error> = std::result::Result<T, E>;
