//! [`RedisSubscriber`]: pub/sub on a connection of its own.

use std::fmt;
use std::rc::Rc;

use super::conn::{Conn, Kind};
use super::{RedisConfig, RedisError, RedisUrl};
use crate::reactor::LoopHandle;

/// A Redis pub/sub connection on the loop thread.
///
/// A connection in subscribe mode can run no other command, so publishing
/// goes through a [`RedisClient`](super::RedisClient) (`PUBLISH channel
/// payload`) and receiving through this. Subscriptions are remembered and
/// sent again after every reconnect; messages published while the
/// connection was down are lost (Redis pub/sub keeps nothing), so use
/// [`RedisSubscriber::on_connect`] to catch up from durable state.
///
/// # Examples
///
/// ```no_run
/// use pawl::reactor::Reactor;
/// use pawl::redis::{RedisClient, RedisConfig, RedisSubscriber};
///
/// let mut reactor = Reactor::new()?;
/// let url = "redis://127.0.0.1:6379";
/// let subscriber = RedisSubscriber::connect(&mut reactor, url, RedisConfig::default())?;
/// subscriber.psubscribe(b"room:*", |_, channel, payload| {
///     println!("{}: {}", channel.escape_ascii(), payload.escape_ascii());
/// });
/// let publisher = RedisClient::connect(&mut reactor, url, RedisConfig::default())?;
/// publisher.send(&[b"PUBLISH", b"room:lobby", b"hello"]);
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisSubscriber {
    conn: Rc<Conn>,
}

impl fmt::Debug for RedisSubscriber {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisSubscriber")
            .field("conn", &self.conn)
            .finish()
    }
}

/// A message callback: `(reactor, channel, payload)`.
pub(crate) type MessageCallback = Box<dyn FnMut(&mut LoopHandle, &[u8], &[u8])>;

impl RedisSubscriber {
    /// Parses the URL (see [`RedisUrl`]) and starts a non-blocking connect,
    /// as [`RedisClient::connect`](super::RedisClient::connect) does.
    pub fn connect(
        reactor: &mut LoopHandle,
        url: &str,
        config: RedisConfig,
    ) -> Result<RedisSubscriber, RedisError> {
        let url = RedisUrl::parse(url)?;
        let conn = Conn::start(reactor, url, config, Kind::subscriber())?;
        Ok(RedisSubscriber { conn })
    }

    /// Subscribes to `channel` (`SUBSCRIBE`); `callback` gets every message
    /// published on it as `(reactor, channel, payload)`. Subscribing again to
    /// the same channel replaces the callback.
    pub fn subscribe(
        &self,
        channel: &[u8],
        callback: impl FnMut(&mut LoopHandle, &[u8], &[u8]) + 'static,
    ) {
        self.conn.subscribe(false, channel, Box::new(callback));
    }

    /// Subscribes to every channel matching a glob `pattern` (`PSUBSCRIBE`);
    /// `callback` gets `(reactor, channel, payload)` with the actual channel.
    pub fn psubscribe(
        &self,
        pattern: &[u8],
        callback: impl FnMut(&mut LoopHandle, &[u8], &[u8]) + 'static,
    ) {
        self.conn.subscribe(true, pattern, Box::new(callback));
    }

    /// Stops a [`RedisSubscriber::subscribe`]; no-op if not subscribed.
    pub fn unsubscribe(&self, channel: &[u8]) {
        self.conn.unsubscribe(false, channel);
    }

    /// Stops a [`RedisSubscriber::psubscribe`]; no-op if not subscribed.
    pub fn punsubscribe(&self, pattern: &[u8]) {
        self.conn.unsubscribe(true, pattern);
    }

    /// True while connected (subscriptions are (re)sent at that moment).
    pub fn is_connected(&self) -> bool {
        self.conn.is_ready()
    }

    /// Runs `callback` each time the connection is established and the
    /// subscriptions were sent again: messages published while it was down
    /// were missed, so this is the place to catch up.
    pub fn on_connect(&self, callback: impl FnMut(&mut LoopHandle) + 'static) {
        self.conn.on_connect(Box::new(callback));
    }

    /// Closes the connection and stops reconnecting.
    pub fn close(&self, reactor: &mut LoopHandle) {
        self.conn.close(reactor);
    }
}
