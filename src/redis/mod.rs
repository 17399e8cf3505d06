//! A non-blocking Redis client driven by pawl's own [`Reactor`](crate::reactor::Reactor), as
//! ReactPHP's async Redis client is driven by its loop.
//!
//! - [`RedisClient`]: commands with callbacks, pipelined on one connection,
//!   replies matched to commands in order.
//! - [`RedisSubscriber`]: pub/sub on a connection of its own, resubscribed
//!   after every reconnect.
//! - [`resp`]: RESP2: encoding commands, and a decoder that resumes across
//!   reads and checks its limits before handing whole replies to the
//!   `redis-protocol` crate.
//!
//! Both talk to Redis over a mio `TcpStream` registered on the reactor: the
//! loop never blocks on Redis. Both live on the loop thread (`!Send`), are
//! cheap to clone (an `Rc` inside) and reconnect by themselves with
//! exponential backoff.
//!
//! # What happens when Redis goes away
//!
//! A command is in one of three places, and each place has a rule:
//!
//! - **Queued** (issued while disconnected or still connecting): kept, in
//!   order, and sent after the next connect, behind `AUTH`/`SELECT`. At most
//!   [`RedisConfig::max_queued`] are kept; past that the oldest is dropped
//!   with a `warn!` line and its callback gets [`RedisError::Overflow`].
//! - **Not fully written** to the socket when it broke: Redis never executes
//!   a partial command, so these go back to the front of the queue and are
//!   sent after reconnect, exactly once.
//! - **Written, no reply yet**: Redis may or may not have executed them (a
//!   stalled Redis runs what sat in its socket buffer when it resumes, even
//!   after pawl gave up on that connection), so by default they are *not*
//!   retried; their callbacks get [`RedisError::Disconnected`] (or
//!   [`RedisError::Timeout`]) and the caller decides. Commands issued with
//!   [`RedisClient::command_idempotent`] or [`RedisClient::send_idempotent`]
//!   (or every command, with [`RedisConfig::retry_in_flight`]) are sent
//!   again after reconnect instead: at least once, for commands that are
//!   safe to run twice.
//!
//! A connection is ready only once Redis has answered a `PING` on it, and
//! a connection on which Redis stays silent for
//! [`RedisConfig::command_timeout`] while replies are awaited is a stall:
//! it is closed and treated like a broken one, so a hung Redis looks like
//! an unreachable one ([`RedisClient::is_connected`] is false) instead of
//! holding every command.
//!
//! The client reads before it writes, so a connection Redis closed is
//! noticed before new commands are written into it; only commands written
//! in the instant between Redis dying and its FIN arriving are "in flight".
//!
//! Callbacks always run later on the loop, never inside the call that queued
//! the command, so a caller may hold its own state borrowed while it calls
//! [`RedisClient::command`].
//!
//! # Examples
//!
//! ```no_run
//! use pawl::reactor::Reactor;
//! use pawl::redis::{RedisClient, RedisConfig};
//!
//! let mut reactor = Reactor::new()?;
//! let redis = RedisClient::connect(&mut reactor, "redis://127.0.0.1:6379/0", RedisConfig::default())?;
//! redis.send(&[b"SET", b"greeting", b"hello"]);
//! redis.command(&[b"GET", b"greeting"], |reactor, reply| {
//!     assert_eq!(reply.unwrap().as_bytes(), Some(&b"hello"[..]));
//!     reactor.stop();
//! });
//! reactor.run()?;
//! # Ok::<(), Box<dyn std::error::Error>>(())
//! ```

mod client;
mod conn;
pub mod resp;
mod subscriber;
mod url;

use std::io;
use std::time::Duration;

pub use client::RedisClient;
pub use resp::Value;
pub use subscriber::RedisSubscriber;
pub use url::RedisUrl;

/// What to drop when the queue of commands waiting for a connection is full.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum OverflowPolicy {
    /// Drop the oldest queued command to make room (the default): after a
    /// long outage the most recent writes are the ones worth keeping.
    #[default]
    DropOldest,
    /// Refuse the new command.
    RejectNew,
}

/// Settings of a [`RedisClient`] or [`RedisSubscriber`].
///
/// Build it from [`RedisConfig::default`] with the by-value setters; it is
/// validated by `connect`, which returns [`RedisError::Config`] rather than
/// panicking.
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct RedisConfig {
    /// The first reconnect delay after a connection fails or breaks; it
    /// doubles on each failure up to `reconnect_max`. Default 50 ms.
    pub reconnect_min: Duration,
    /// The longest reconnect delay. Default 5 s.
    pub reconnect_max: Duration,
    /// How many commands may wait for a connection. Default 10 000.
    pub max_queued: usize,
    /// What goes when `max_queued` is reached. Default
    /// [`OverflowPolicy::DropOldest`].
    pub overflow: OverflowPolicy,
    /// How long a TCP connect (plus `AUTH`/`SELECT`) may take before it is
    /// abandoned and retried. Default 5 s.
    pub connect_timeout: Duration,
    /// How long Redis may stay silent while a reply is awaited (counted from
    /// the later of the oldest command's sending and the last bytes read)
    /// before the connection is deemed stalled, closed and reconnected:
    /// commands in flight then fail with [`RedisError::Timeout`], or are
    /// sent again if idempotent. It also bounds the `PING` that makes a new
    /// connection ready. `None` disables it: do that for long blocking
    /// commands such as `BLPOP`. Default 10 s; an application that goes on
    /// without Redis when it is unreachable wants about a second.
    pub command_timeout: Option<Duration>,
    /// Whether every command written but not answered when the connection
    /// broke is sent again after reconnect (at-least-once: such a command
    /// may run twice) instead of failing with [`RedisError::Disconnected`],
    /// as if each were issued with [`RedisClient::command_idempotent`].
    /// Turn it on only when every command is idempotent (`SET`, `HSET`,
    /// `SADD`, `ZADD` with unique members...; not `INCR`, `PUBLISH`); mark
    /// commands one by one otherwise. It keeps the bytes of unanswered
    /// commands in memory. Default false.
    pub retry_in_flight: bool,
}

impl Default for RedisConfig {
    fn default() -> Self {
        RedisConfig {
            reconnect_min: Duration::from_millis(50),
            reconnect_max: Duration::from_secs(5),
            max_queued: 10_000,
            overflow: OverflowPolicy::DropOldest,
            connect_timeout: Duration::from_secs(5),
            command_timeout: Some(Duration::from_secs(10)),
            retry_in_flight: false,
        }
    }
}

impl RedisConfig {
    /// Sets the backoff range (`reconnect_min` and `reconnect_max`).
    pub fn reconnect_backoff(mut self, min: Duration, max: Duration) -> Self {
        self.reconnect_min = min;
        self.reconnect_max = max;
        self
    }

    /// Sets `max_queued`.
    pub fn max_queued(mut self, max: usize) -> Self {
        self.max_queued = max;
        self
    }

    /// Sets the overflow policy.
    pub fn overflow(mut self, policy: OverflowPolicy) -> Self {
        self.overflow = policy;
        self
    }

    /// Sets `connect_timeout`.
    pub fn connect_timeout(mut self, timeout: Duration) -> Self {
        self.connect_timeout = timeout;
        self
    }

    /// Sets `command_timeout` (`None` disables it).
    pub fn command_timeout(mut self, timeout: Option<Duration>) -> Self {
        self.command_timeout = timeout;
        self
    }

    /// Sets `retry_in_flight`.
    pub fn retry_in_flight(mut self, retry: bool) -> Self {
        self.retry_in_flight = retry;
        self
    }

    fn validate(&self) -> Result<(), RedisError> {
        if self.reconnect_min.is_zero() {
            return Err(RedisError::Config(
                "reconnect_min must be above zero".into(),
            ));
        }
        if self.reconnect_max < self.reconnect_min {
            return Err(RedisError::Config(
                "reconnect_max must be at least reconnect_min".into(),
            ));
        }
        if self.connect_timeout.is_zero() {
            return Err(RedisError::Config(
                "connect_timeout must be above zero".into(),
            ));
        }
        if self.command_timeout.is_some_and(|t| t.is_zero()) {
            return Err(RedisError::Config(
                "command_timeout must be above zero (or None)".into(),
            ));
        }
        Ok(())
    }
}

/// Why a Redis command or connection failed.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum RedisError {
    /// Setting up the client failed (registering with the reactor, resolving
    /// the host). Socket errors after that are reported as `Disconnected`.
    #[error("I/O error: {0}")]
    Io(#[from] io::Error),
    /// Redis sent something that is not RESP2 (the connection is closed and
    /// reconnected).
    #[error("RESP protocol error: {0}")]
    Protocol(String),
    /// The connection broke after the command was written: Redis may or may
    /// not have executed it.
    #[error("disconnected from Redis before the reply arrived")]
    Disconnected,
    /// The command was dropped because too many were queued while Redis was
    /// unreachable (see [`RedisConfig::max_queued`]).
    #[error("too many commands queued while Redis is unreachable")]
    Overflow,
    /// No reply within [`RedisConfig::command_timeout`]; the connection was
    /// reset. Like `Disconnected`, the command may have run.
    #[error("Redis did not reply in time")]
    Timeout,
    /// The client was closed with [`RedisClient::close`]; the command was
    /// never sent.
    #[error("the Redis client was closed")]
    Closed,
    /// Redis answered with an error reply (`-ERR ...`, `-WRONGTYPE ...`).
    /// Errors nested inside arrays (`EXEC`) stay [`Value::Error`].
    #[error("Redis error: {0}")]
    Server(String),
    /// The URL is not `redis://[[user]:password@]host[:port][/db]`.
    #[error("bad Redis URL: {0}")]
    BadUrl(String),
    /// A [`RedisConfig`] value is out of range.
    #[error("invalid Redis configuration: {0}")]
    Config(String),
}
