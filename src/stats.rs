//! A server's counters: what it accepted, upgraded, refused and closed, and
//! the traffic it carried, for an embedding program to publish its own way
//! (the `pawl` binary serves them on `/metrics`).
//!
//! Counting is plain `u64` increments on the loop's thread, in the places
//! the work already happens; the two gauges that would need bookkeeping on
//! every write (open connections, unsent bytes) are derived when a snapshot
//! is taken instead.

use std::collections::BTreeMap;

use crate::close::CloseReason;
use crate::error::Limit;

/// A snapshot of one server's counters, from
/// [`Server::stats`](crate::Server::stats) or
/// [`Context::stats`](crate::Context::stats). Counters (`*_total` in
/// Prometheus terms) only grow while the server runs; the gauges are as of
/// the snapshot.
///
/// ```
/// use std::time::Duration;
/// use pawl::reactor::Reactor;
/// use pawl::{App, EchoServer};
///
/// let mut reactor = Reactor::new()?;
/// let server = App::new("127.0.0.1", 0)
///     .route("/echo", EchoServer, &["*"])
///     .listen(&mut reactor)?;
/// reactor.turn(Some(Duration::ZERO))?;
/// let stats = server.stats(&mut reactor).expect("the server is on the loop");
/// assert_eq!(stats.connections_open, 0);
/// assert_eq!(stats.closed.total(), 0);
/// # Ok::<(), pawl::Error>(())
/// ```
#[derive(Debug, Clone, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Stats {
    /// Gauge: WebSocket connections open now (upgraded, not yet dropped).
    pub connections_open: u64,
    /// TCP connections accepted (each then upgrades, gets an HTTP answer, or
    /// is dropped during the handshake).
    pub connections_accepted: u64,
    /// TCP connections closed at once when accepted: at max connections,
    /// shutting down, or out of file descriptors.
    pub connections_refused: u64,
    /// WebSocket connections opened (the 101 was sent).
    pub connections_opened: u64,
    /// WebSocket connections closed, by why.
    pub closed: Closed,
    /// Connections dropped before their handshake completed and without an
    /// HTTP answer: handshake timeout, the peer left, a TLS or I/O error.
    pub handshakes_dropped: u64,
    /// Handshakes answered with an HTTP error instead of a 101, by status
    /// (400 malformed, 403 origin, 404 path, 405 method, 426 not an
    /// upgrade or wrong version, 431 too large, 500 a panicking handler).
    pub handshake_refusals: BTreeMap<u16, u64>,
    /// Plain HTTP requests answered with a status below 400 (pages, health).
    pub http_responses: u64,
    /// Data messages (text and binary) received from clients.
    pub messages_in: u64,
    /// Data messages queued to clients (a broadcast to N counts N).
    pub messages_out: u64,
    /// Bytes read from client sockets (requests, frames, TLS records).
    pub bytes_in: u64,
    /// Bytes written to client sockets.
    pub bytes_out: u64,
    /// Times a connection's unsent output passed the backpressure threshold
    /// (a send returned [`SendStatus::Backpressure`](crate::SendStatus)).
    pub backpressure_events: u64,
    /// Gauge: bytes queued on connections and not yet written.
    pub unsent_bytes: u64,
    /// Gauge: zlib compressors and decompressors held for connections in
    /// the dedicated compression mode ([`Compression::Dedicated`](crate::Compression)),
    /// some 130 KB and 47 KB each. A connection holds them from its first
    /// compressed message until it has been idle for a sweep interval (at
    /// most a second); it keeps only its windows' bytes meanwhile.
    pub compression_streams: u64,
    /// The topics broker's Redis link, when the app has one
    /// ([`App::broker`](crate::App::broker)).
    pub broker: Option<RedisStats>,
}

/// WebSocket connections closed, by [`CloseReason`].
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Closed {
    /// The peer sent a close frame.
    pub peer: u64,
    /// A component or handle closed it.
    pub server: u64,
    /// The peer broke the protocol (1002, 1007).
    pub protocol: u64,
    /// A message or frame over the size limit (1009).
    pub too_big: u64,
    /// Unsent output passed `max_backpressure`.
    pub backpressure: u64,
    /// The server's unsent output passed its budget, and this connection
    /// held the most.
    pub unsent_budget: u64,
    /// A message took longer than the message timeout to arrive (1008).
    pub message_timeout: u64,
    /// No answer to pings within the idle timeout.
    pub idle_timeout: u64,
    /// No answer to our close frame in time.
    pub close_timeout: u64,
    /// The socket failed or the peer left without a close frame.
    pub io: u64,
    /// The server shut down.
    pub shutdown: u64,
    /// A component callback panicked (1011).
    pub panic: u64,
}

impl Closed {
    /// Every close, whatever the reason.
    pub fn total(&self) -> u64 {
        self.by_reason().iter().map(|(_, n)| n).sum()
    }

    /// Each reason with a short name (`peer`, `server`, `protocol`,
    /// `too_big`, `backpressure`, `unsent_budget`, `idle_timeout`,
    /// `message_timeout`, `close_timeout`, `io`, `shutdown`, `panic`) and
    /// its count, for a metrics label.
    pub fn by_reason(&self) -> [(&'static str, u64); 12] {
        [
            ("peer", self.peer),
            ("server", self.server),
            ("protocol", self.protocol),
            ("too_big", self.too_big),
            ("backpressure", self.backpressure),
            ("unsent_budget", self.unsent_budget),
            ("idle_timeout", self.idle_timeout),
            ("message_timeout", self.message_timeout),
            ("close_timeout", self.close_timeout),
            ("io", self.io),
            ("shutdown", self.shutdown),
            ("panic", self.panic),
        ]
    }

    pub(crate) fn count(&mut self, reason: &CloseReason) {
        let slot = match reason {
            CloseReason::Peer { .. } => &mut self.peer,
            CloseReason::Server { .. } => &mut self.server,
            CloseReason::Protocol(_) => &mut self.protocol,
            CloseReason::Limit(Limit::MessageTooBig) => &mut self.too_big,
            CloseReason::Limit(Limit::Backpressure) => &mut self.backpressure,
            CloseReason::Limit(Limit::UnsentBudget) => &mut self.unsent_budget,
            CloseReason::Limit(Limit::MessageTimeout) => &mut self.message_timeout,
            CloseReason::Limit(Limit::IdleTimeout) => &mut self.idle_timeout,
            CloseReason::Limit(Limit::CloseTimeout) => &mut self.close_timeout,
            CloseReason::Io(_) => &mut self.io,
            CloseReason::Shutdown => &mut self.shutdown,
            CloseReason::Panic => &mut self.panic,
        };
        *slot += 1;
    }
}

/// The state of a Redis link.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct RedisStats {
    /// Connected (and past `AUTH`/`SELECT`); for the broker, both its
    /// command and its subscriber connections.
    pub connected: bool,
    /// Commands waiting: queued while disconnected, unwritten, or awaiting
    /// their reply.
    pub pending: usize,
}

impl RedisStats {
    /// A link's state from its parts.
    pub fn new(connected: bool, pending: usize) -> RedisStats {
        RedisStats { connected, pending }
    }
}

/// `up (0 pending)`, `down (12 pending)`: the link in a log line.
impl std::fmt::Display for RedisStats {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let state = if self.connected { "up" } else { "down" };
        write!(f, "{state} ({} pending)", self.pending)
    }
}

impl Stats {
    /// The counters as one log line:
    /// `open 3, opened 10, closed 7, refused 2, in 40 msgs / 2.1 KB, out 80 msgs / 4.0 KB, unsent 0 B, backpressure 0`.
    pub fn summary(&self) -> String {
        let refused: u64 = self.handshake_refusals.values().sum::<u64>() + self.connections_refused;
        let mut line = format!(
            "open {}, opened {}, closed {}, refused {}, in {} msgs / {}, out {} msgs / {}, unsent {}, backpressure {}",
            self.connections_open,
            self.connections_opened,
            self.closed.total(),
            refused,
            self.messages_in,
            Bytes(self.bytes_in),
            self.messages_out,
            Bytes(self.bytes_out),
            Bytes(self.unsent_bytes),
            self.backpressure_events,
        );
        if let Some(redis) = self.broker {
            line.push_str(&format!(", broker redis {redis}"));
        }
        line
    }
}

/// A byte count for people: `512 B`, `2.1 KB`, `3.4 MB`, `1.2 GB`.
struct Bytes(u64);

impl std::fmt::Display for Bytes {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let n = self.0 as f64;
        match self.0 {
            0..1_000 => write!(f, "{} B", self.0),
            1_000..1_000_000 => write!(f, "{:.1} KB", n / 1e3),
            1_000_000..1_000_000_000 => write!(f, "{:.1} MB", n / 1e6),
            _ => write!(f, "{:.1} GB", n / 1e9),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::frame::Violation;

    #[test]
    fn every_reason_has_its_own_count() {
        let mut closed = Closed::default();
        let reasons = [
            CloseReason::Peer {
                code: 1000,
                reason: String::new(),
            },
            CloseReason::Server {
                code: crate::CloseCode::NORMAL,
                reason: String::new(),
            },
            CloseReason::Protocol(Violation {
                code: 1002,
                reason: "x",
            }),
            CloseReason::Limit(Limit::MessageTooBig),
            CloseReason::Limit(Limit::Backpressure),
            CloseReason::Limit(Limit::UnsentBudget),
            CloseReason::Limit(Limit::IdleTimeout),
            CloseReason::Limit(Limit::MessageTimeout),
            CloseReason::Limit(Limit::CloseTimeout),
            CloseReason::Io(std::io::ErrorKind::UnexpectedEof),
            CloseReason::Shutdown,
            CloseReason::Panic,
        ];
        for reason in &reasons {
            closed.count(reason);
        }
        assert!(
            closed.by_reason().iter().all(|&(_, n)| n == 1),
            "{closed:?}"
        );
        assert_eq!(closed.total(), reasons.len() as u64);
    }

    #[test]
    fn summary_is_one_line() {
        let mut stats = Stats {
            connections_open: 2,
            bytes_in: 2_100,
            ..Stats::default()
        };
        stats.handshake_refusals.insert(404, 3);
        let line = stats.summary();
        assert!(line.starts_with("open 2, opened 0, closed 0, refused 3, in 0 msgs / 2.1 KB"));
        assert!(!line.contains('\n'));
    }
}
