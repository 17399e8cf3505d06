//! Server settings: limits and timeouts, with the defaults a public server
//! can start from.

use std::time::Duration;

use tungstenite::protocol::WebSocketConfig;

use crate::deflate::Compression;
use crate::error::{Error, Result};
use crate::proxy::TrustedProxies;

/// Limits and timeouts of a WebSocket server.
///
/// Build with `ServerConfig::default()` and the by-value setters; invalid
/// combinations are reported by [`ServerConfig::validate`] (called by
/// [`App`](crate::App)) rather than by a panic.
///
/// ```
/// use std::time::Duration;
/// use pawl::ServerConfig;
///
/// let config = ServerConfig::default()
///     .max_message_size(1 << 20)
///     .idle_timeout(Duration::from_secs(30));
/// assert!(config.validate().is_ok());
/// ```
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct ServerConfig {
    /// Message and frame size limits, as tungstenite names them:
    /// `max_message_size` (default 64 MiB) and `max_frame_size` (default
    /// 16 MiB); a peer over either is closed with 1009. Both are enforced
    /// from the frame header, before the payload is buffered. Other fields
    /// are not used: pawl manages its own buffers.
    pub websocket: WebSocketConfig,
    /// Connections (including those still in the handshake) above which a new
    /// one is accepted and closed at once. Default 100 000; the process's
    /// open-files limit is usually the tighter bound.
    pub max_connections: usize,
    /// Time a client has to complete the HTTP upgrade; a slowloris client is
    /// dropped after it. Default 10 s.
    pub handshake_timeout: Duration,
    /// Silence after which the connection is closed (1001). Half-way through
    /// it the server sends a ping, so a live client's pong keeps it open.
    /// Default 60 s.
    pub idle_timeout: Duration,
    /// Time the peer has to answer a close frame before the socket is
    /// dropped. Default 5 s.
    pub close_timeout: Duration,
    /// Largest HTTP upgrade request, in bytes (431 above it). Default 16 KiB.
    pub max_request_size: usize,
    /// Unsent bytes above which `send` reports
    /// [`SendStatus::Backpressure`](crate::SendStatus::Backpressure) and
    /// `on_drain` follows once the buffer empties. Default 1 MiB.
    pub backpressure_threshold: usize,
    /// Unsent bytes above which the connection is closed at its next send:
    /// a client that does not read cannot make the server's memory grow
    /// without bound. A queue under it takes one more message whatever its
    /// size, so a connection holds at most this plus one message. Default
    /// 4 MiB: some 30 s of a 1 Mbit/s link, enough for a browser tab that
    /// falls behind and catches up; with tens of thousands of connections
    /// the server-wide [`ServerConfig::unsent_budget`] bounds the sum.
    pub max_backpressure: usize,
    /// Reverse proxies whose `X-Forwarded-For` names the client (see
    /// [`Context::remote_addr`](crate::Context::remote_addr)). Default
    /// none: the header is ignored, since a direct client could forge it.
    pub trusted_proxies: TrustedProxies,
    /// Unsent output the server may hold across all its connections (each
    /// frame shared by a broadcast counted once). Past it, the connections
    /// holding the most are closed first, as if over `max_backpressure`,
    /// until it is 7/8 full. Default 256 MiB.
    pub unsent_budget: usize,
    /// The longest a message may take to arrive, from its first byte to its
    /// last (all its frames): a client that trickles a frame byte by byte
    /// would otherwise hold its connection for as long as it likes, since
    /// every byte resets the idle timeout. Closed with 1008. Default 30 s:
    /// raise it for very large messages over slow links.
    pub message_timeout: Duration,
    /// permessage-deflate for every WebSocket route that does not choose
    /// its own ([`App::route_compression`](crate::App::route_compression)).
    /// Default [`Compression::Off`]: the library compresses only when asked
    /// (the `pawl` binary asks for [`Compression::Shared`]).
    pub compression: Compression,
    /// Messages shorter than this are sent uncompressed even on a
    /// connection that negotiated compression: below it DEFLATE's block
    /// overhead eats most of the gain and the CPU is spent for nothing.
    /// Default 128 bytes.
    pub compression_threshold: usize,
}

impl Default for ServerConfig {
    fn default() -> Self {
        ServerConfig {
            websocket: WebSocketConfig::default()
                .max_message_size(Some(64 << 20))
                .max_frame_size(Some(16 << 20)),
            max_connections: 100_000,
            handshake_timeout: Duration::from_secs(10),
            idle_timeout: Duration::from_secs(60),
            close_timeout: Duration::from_secs(5),
            max_request_size: 16 << 10,
            backpressure_threshold: 1 << 20,
            max_backpressure: 4 << 20,
            trusted_proxies: TrustedProxies::default(),
            message_timeout: Duration::from_secs(30),
            unsent_budget: 256 << 20,
            compression: Compression::Off,
            compression_threshold: 128,
        }
    }
}

impl ServerConfig {
    /// Sets the largest message, in bytes.
    pub fn max_message_size(mut self, bytes: usize) -> Self {
        self.websocket.max_message_size = Some(bytes);
        self
    }

    /// Sets the largest frame, in bytes.
    pub fn max_frame_size(mut self, bytes: usize) -> Self {
        self.websocket.max_frame_size = Some(bytes);
        self
    }

    /// Sets [`ServerConfig::unsent_budget`].
    pub fn unsent_budget(mut self, bytes: usize) -> Self {
        self.unsent_budget = bytes;
        self
    }

    /// Sets [`ServerConfig::message_timeout`].
    pub fn message_timeout(mut self, timeout: Duration) -> Self {
        self.message_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::compression`].
    pub fn compression(mut self, mode: Compression) -> Self {
        self.compression = mode;
        self
    }

    /// Sets [`ServerConfig::compression_threshold`].
    pub fn compression_threshold(mut self, bytes: usize) -> Self {
        self.compression_threshold = bytes;
        self
    }

    /// Sets [`ServerConfig::max_connections`].
    pub fn max_connections(mut self, count: usize) -> Self {
        self.max_connections = count;
        self
    }

    /// Sets [`ServerConfig::handshake_timeout`].
    pub fn handshake_timeout(mut self, timeout: Duration) -> Self {
        self.handshake_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::idle_timeout`].
    pub fn idle_timeout(mut self, timeout: Duration) -> Self {
        self.idle_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::close_timeout`].
    pub fn close_timeout(mut self, timeout: Duration) -> Self {
        self.close_timeout = timeout;
        self
    }

    /// Sets [`ServerConfig::max_request_size`].
    pub fn max_request_size(mut self, bytes: usize) -> Self {
        self.max_request_size = bytes;
        self
    }

    /// Sets [`ServerConfig::backpressure_threshold`].
    pub fn backpressure_threshold(mut self, bytes: usize) -> Self {
        self.backpressure_threshold = bytes;
        self
    }

    /// Sets [`ServerConfig::max_backpressure`].
    pub fn max_backpressure(mut self, bytes: usize) -> Self {
        self.max_backpressure = bytes;
        self
    }

    /// Sets [`ServerConfig::trusted_proxies`].
    pub fn trusted_proxies(mut self, proxies: TrustedProxies) -> Self {
        self.trusted_proxies = proxies;
        self
    }

    /// The effective frame limit.
    pub(crate) fn max_frame(&self) -> usize {
        self.websocket.max_frame_size.unwrap_or(usize::MAX)
    }

    /// The effective message limit.
    pub(crate) fn max_message(&self) -> usize {
        self.websocket.max_message_size.unwrap_or(usize::MAX)
    }

    /// Checks that the settings make sense together.
    pub fn validate(&self) -> Result<()> {
        let fail = |why: &str| Err(Error::Config(why.to_owned()));
        if self.max_connections == 0 {
            return fail("max_connections must be at least 1");
        }
        for (name, value) in [
            ("handshake_timeout", self.handshake_timeout),
            ("idle_timeout", self.idle_timeout),
            ("close_timeout", self.close_timeout),
            ("message_timeout", self.message_timeout),
        ] {
            if value < Duration::from_millis(10) {
                return fail(&format!("{name} must be at least 10 ms"));
            }
        }
        if self.max_request_size < 256 {
            return fail("max_request_size must be at least 256 bytes");
        }
        if self.max_frame() == 0 || self.max_message() == 0 {
            return fail("message and frame size limits must be at least 1 byte");
        }
        if self.backpressure_threshold > self.max_backpressure {
            return fail("backpressure_threshold must not exceed max_backpressure");
        }
        Ok(())
    }

    /// How often timeouts are checked: a quarter of the shortest timeout,
    /// between 10 ms and 1 s, so a timeout fires at most 25% late.
    pub(crate) fn sweep_interval(&self) -> Duration {
        let shortest = self
            .handshake_timeout
            .min(self.idle_timeout / 2)
            .min(self.close_timeout)
            .min(self.message_timeout);
        (shortest / 4).clamp(Duration::from_millis(10), Duration::from_secs(1))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn defaults_validate() {
        ServerConfig::default()
            .validate()
            .expect("defaults are valid");
    }

    #[test]
    fn nonsense_is_an_error_not_a_panic() {
        assert!(
            ServerConfig::default()
                .max_connections(0)
                .validate()
                .is_err()
        );
        assert!(
            ServerConfig::default()
                .idle_timeout(Duration::ZERO)
                .validate()
                .is_err()
        );
        assert!(
            ServerConfig::default()
                .max_message_size(0)
                .validate()
                .is_err()
        );
        let inverted = ServerConfig::default()
            .backpressure_threshold(10)
            .max_backpressure(5);
        assert!(inverted.validate().is_err());
    }

    #[test]
    fn sweep_interval_follows_the_shortest_timeout() {
        let c = ServerConfig::default().handshake_timeout(Duration::from_millis(400));
        assert_eq!(c.sweep_interval(), Duration::from_millis(100));
        assert_eq!(
            ServerConfig::default().sweep_interval(),
            Duration::from_secs(1)
        );
    }
}
