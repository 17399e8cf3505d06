//! [`RedisClient`]: commands with callbacks over one pipelined connection.

use std::fmt;
use std::rc::Rc;

use super::conn::{Conn, Kind, ReplyTo};
use super::{RedisConfig, RedisError, RedisUrl, Value};
use crate::reactor::LoopHandle;

/// A non-blocking Redis connection on the loop thread.
///
/// Commands are pipelined: many may be in flight, and replies are matched to
/// them in order. The client connects, and reconnects with exponential
/// backoff, by itself; see the [module docs](super) for what happens to
/// commands when Redis goes away.
///
/// Cloning is cheap and every clone drives the same connection. The client
/// is `!Send`: it lives on the thread that runs its [`Reactor`](crate::reactor::Reactor).
///
/// Do not send `SUBSCRIBE`, `MONITOR` or other commands that change the
/// shape of the reply stream through it; use a [`RedisSubscriber`](super::RedisSubscriber).
///
/// Dropping the last clone closes the socket and drops pending callbacks
/// without running them; call [`RedisClient::close`] first to have them
/// run with an error. A callback that holds a clone of its own client keeps
/// the client alive (an `Rc` cycle), which is what a long-lived client wants.
///
/// # Examples
///
/// A counter whose increments survive a Redis restart (queued while it is
/// down), reloaded on every connect:
///
/// ```no_run
/// use pawl::reactor::Reactor;
/// use pawl::redis::{RedisClient, RedisConfig};
///
/// let mut reactor = Reactor::new()?;
/// let redis = RedisClient::connect(&mut reactor, "redis://127.0.0.1:6379", RedisConfig::default())?;
/// let reload = redis.clone();
/// redis.on_connect(move |_| {
///     reload.command(&[b"GET", b"visits"], |_, reply| match reply {
///         Ok(value) => println!("visits so far: {:?}", value.as_int()),
///         Err(e) => eprintln!("GET failed: {e}"),
///     });
/// });
/// redis.send(&[b"INCR", b"visits"]);
/// reactor.run()?;
/// # Ok::<(), Box<dyn std::error::Error>>(())
/// ```
#[derive(Clone)]
pub struct RedisClient {
    conn: Rc<Conn>,
}

impl fmt::Debug for RedisClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("RedisClient")
            .field("conn", &self.conn)
            .finish()
    }
}

impl RedisClient {
    /// Parses `redis://[[user]:password@]host[:port][/db]` (see
    /// [`RedisUrl`]) and starts a non-blocking connect on `reactor`.
    ///
    /// Never blocks (except to resolve a host name that is not an IP
    /// address, once) and never waits for Redis: commands issued before the
    /// connection is up are queued. `AUTH` and `SELECT` from the URL are sent
    /// first on every connect. Errors are only for a bad URL or config, or a
    /// failure to set up the reactor handler; an unreachable Redis is retried.
    pub fn connect(
        reactor: &mut LoopHandle,
        url: &str,
        config: RedisConfig,
    ) -> Result<RedisClient, RedisError> {
        let url = RedisUrl::parse(url)?;
        let conn = Conn::start(reactor, url, config, Kind::Client)?;
        Ok(RedisClient { conn })
    }

    /// Queues a command (its arguments as byte strings, the name first) and
    /// runs `callback` with the reply.
    ///
    /// The callback runs later on the loop, never inside this call, so the
    /// caller may hold its own state borrowed. It gets `Ok(value)`, or
    /// [`RedisError::Server`] for an error reply, or the reason the command
    /// failed ([`RedisError::Disconnected`], [`RedisError::Timeout`],
    /// [`RedisError::Overflow`], [`RedisError::Closed`]).
    ///
    /// If the connection breaks (or stalls past
    /// [`RedisConfig::command_timeout`]) after the command was written and
    /// before its reply, it is not sent again unless
    /// [`RedisConfig::retry_in_flight`] is set: Redis may have run it, and
    /// only the caller knows whether running it twice is harmless. Use
    /// [`RedisClient::command_idempotent`] for commands that are.
    pub fn command(
        &self,
        args: &[&[u8]],
        callback: impl FnOnce(&mut LoopHandle, Result<Value, RedisError>) + 'static,
    ) {
        self.conn
            .command(args, ReplyTo::Callback(Box::new(callback)), false);
    }

    /// [`RedisClient::command`] for a command that is safe to run twice
    /// (`SET`, `HSET`, `SADD`, `ZADD` of unique members, a read, a script
    /// that recognises its own earlier run): if the connection breaks after
    /// it was written and before its reply, it is sent again after the
    /// reconnect instead of failing (at least once), and its callback gets
    /// the reply of the run that answered.
    pub fn command_idempotent(
        &self,
        args: &[&[u8]],
        callback: impl FnOnce(&mut LoopHandle, Result<Value, RedisError>) + 'static,
    ) {
        self.conn
            .command(args, ReplyTo::Callback(Box::new(callback)), true);
    }

    /// Queues a command without a callback (fire and forget): an error reply
    /// or a failure is logged. Like [`RedisClient::command`], it is not sent
    /// again once written into a connection that broke.
    pub fn send(&self, args: &[&[u8]]) {
        self.conn.command(args, ReplyTo::Log, false);
    }

    /// [`RedisClient::send`] for a command that is safe to run twice: sent
    /// again after a broken connection, as
    /// [`RedisClient::command_idempotent`] is.
    pub fn send_idempotent(&self, args: &[&[u8]]) {
        self.conn.command(args, ReplyTo::Log, true);
    }

    /// True while the connection is up and Redis answered on it (`AUTH`,
    /// `SELECT` and a `PING` are sent first on every connect): a stalled
    /// Redis whose kernel still accepts connections is not connected.
    pub fn is_connected(&self) -> bool {
        self.conn.is_ready()
    }

    /// Runs `callback` each time a connection is established (after
    /// `AUTH`/`SELECT`, and after the commands queued meanwhile were handed
    /// to the socket), for example to reload state that may have been missed.
    pub fn on_connect(&self, callback: impl FnMut(&mut LoopHandle) + 'static) {
        self.conn.on_connect(Box::new(callback));
    }

    /// How many commands are waiting: queued for a connection, unwritten, or
    /// written and awaiting their reply.
    pub fn pending(&self) -> usize {
        self.conn.pending()
    }

    /// Closes the connection and stops reconnecting. Every pending command's
    /// callback gets [`RedisError::Closed`] (queued ones) or
    /// [`RedisError::Disconnected`] (written ones), later on the loop.
    pub fn close(&self, reactor: &mut LoopHandle) {
        self.conn.close(reactor);
    }
}
