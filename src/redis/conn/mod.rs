//! The connection machinery shared by [`RedisClient`](super::RedisClient) and
//! [`RedisSubscriber`](super::RedisSubscriber): connect, `AUTH`/`SELECT`,
//! the output buffer, reading and parsing, backoff, timeouts.
//!
//! Everything runs on the loop thread. The state sits in a `RefCell` that is
//! never borrowed while user code runs: each entry point does its work,
//! collects the callbacks to run as [`Delivery`] values, releases the borrow
//! and only then runs them, so a callback may issue commands on the same
//! client.
//!
//! Commands issued from user code are only buffered; the loop writes them in
//! a tick hook at the end of the turn (one `write` for a whole batch). The
//! reactor's [`Handle`] wakes the loop once per batch so that a command
//! issued outside a turn is written too.
//!
//! - `mod.rs`: the state, the entry points (user calls, events, timers, the
//!   tick hook) and running the collected callbacks.
//! - `lifecycle.rs`: connect, `AUTH`/`SELECT`, ready, the bounded queue,
//!   and what happens to each command when a connection ends.
//! - `socket.rs`: reading replies, writing the output buffer.
//! - `input.rs`: the bytes read and the decoder that resumes over them.

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use log::{debug, warn};
use mio::event::Event;
use mio::net::TcpStream;

use super::resp::encode_command;
use super::subscriber::MessageCallback;
use super::{RedisConfig, RedisError, RedisUrl, Value};
use crate::guard;
use crate::reactor::{Handle, LoopHandle, PostAction, SourceId, TimerId, sub_key};

mod input;
mod lifecycle;
mod socket;

use input::Input;

/// A command's reply callback.
pub(crate) type Callback = Box<dyn FnOnce(&mut LoopHandle, Result<Value, RedisError>)>;

type ConnectCallback = Rc<RefCell<Box<dyn FnMut(&mut LoopHandle)>>>;
type SharedMessageCallback = Rc<RefCell<MessageCallback>>;

/// Where a command's reply goes.
pub(crate) enum ReplyTo {
    /// To the caller's callback.
    Callback(Callback),
    /// Nowhere; errors are logged ([`RedisClient::send`](super::RedisClient::send)).
    Log,
}

/// What the connection is for.
pub(crate) enum Kind {
    /// Commands and replies matched in order.
    Client,
    /// Pub/sub: after `AUTH`/`SELECT` every reply is a push.
    Subscriber(Subscriptions),
}

impl Kind {
    pub(crate) fn subscriber() -> Kind {
        Kind::Subscriber(Subscriptions::default())
    }
}

#[derive(Default)]
pub(crate) struct Subscriptions {
    channels: BTreeMap<Vec<u8>, SharedMessageCallback>,
    patterns: BTreeMap<Vec<u8>, SharedMessageCallback>,
}

impl Subscriptions {
    /// The pattern subscriptions or the plain channel ones.
    fn of_kind(&mut self, pattern: bool) -> &mut BTreeMap<Vec<u8>, SharedMessageCallback> {
        if pattern {
            &mut self.patterns
        } else {
            &mut self.channels
        }
    }
}

/// Most reads per readiness event before yielding to the rest of the loop.
const READ_BUDGET: usize = 64;
/// Written output is dropped from the buffer's front once this much of it
/// accumulated (otherwise only when everything was written).
const COMPACT_AT: usize = 1 << 20;
/// Channels per `SUBSCRIBE` when resubscribing after a reconnect.
const SUBSCRIBE_BATCH: usize = 256;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum State {
    /// Waiting for the reconnect timer.
    Waiting,
    /// TCP connect in progress.
    Connecting,
    /// Connected; `AUTH`/`SELECT` in flight, user commands still queued.
    Handshaking,
    /// Commands go straight to the output buffer.
    Ready,
    /// [`Conn::close`] was called: nothing more happens.
    Closed,
}

/// A command written (or being written) on the current connection.
struct InFlight {
    reply: Reply,
    /// Its bytes in the connection's output stream, as absolute offsets.
    start: u64,
    end: u64,
    /// When it was handed to the output buffer.
    sent_at: Instant,
    /// Whether it may be sent again if the connection breaks before its
    /// reply (the caller said it is idempotent).
    replay: bool,
}

enum Reply {
    User(ReplyTo),
    /// `AUTH` or `SELECT`, answered internally.
    Handshake(&'static str),
}

/// A command waiting for a connection.
struct Queued {
    bytes: Vec<u8>,
    reply: ReplyTo,
    /// See [`InFlight::replay`].
    replay: bool,
}

/// A callback to run once the state is no longer borrowed.
enum Delivery {
    Reply(Callback, Result<Value, RedisError>),
    Message(SharedMessageCallback, Vec<u8>, Vec<u8>),
    Connected(ConnectCallback),
}

/// Why a connection ended.
#[derive(Debug)]
enum Lost {
    Io(io::Error),
    Eof,
    Protocol(String),
    Timeout,
    ConnectTimeout,
    Handshake(String),
    Closed,
}

impl fmt::Display for Lost {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Lost::Io(e) => write!(f, "I/O error: {e}"),
            Lost::Eof => f.write_str("closed by the server"),
            Lost::Protocol(e) => write!(f, "protocol error: {e}"),
            Lost::Timeout => f.write_str("no reply within the command timeout: a stall"),
            Lost::ConnectTimeout => f.write_str("connect timed out"),
            Lost::Handshake(e) => write!(f, "AUTH/SELECT refused: {e}"),
            Lost::Closed => f.write_str("closed by the client"),
        }
    }
}

impl Lost {
    /// The error for commands that were written but got no reply.
    fn in_flight_error(&self) -> RedisError {
        match self {
            Lost::Timeout => RedisError::Timeout,
            _ => RedisError::Disconnected,
        }
    }
}

/// One Redis connection, reconnected for ever.
pub(crate) struct Conn {
    inner: RefCell<Inner>,
}

struct Inner {
    me: Weak<Conn>,
    url: RedisUrl,
    /// `host:port`, for log lines.
    peer: String,
    addrs: Vec<SocketAddr>,
    next_addr: usize,
    config: RedisConfig,
    handle: Handle,
    handler: SourceId,
    kind: Kind,
    state: State,
    stream: Option<TcpStream>,
    /// Sub-token of the current stream, so events of an old one are ignored.
    generation: u32,
    writable_interest: bool,
    /// Bytes read and not yet decoded.
    input: Input,
    out: Vec<u8>,
    out_pos: usize,
    /// Absolute stream offset of `out[0]`.
    out_base: u64,
    in_flight: VecDeque<InFlight>,
    /// The `start` of every replayable command in `in_flight`, in order:
    /// their bytes are kept in `out` until their replies arrive.
    replay_starts: VecDeque<u64>,
    /// The last time bytes came from Redis: the command timeout counts
    /// silence, so a large reply still arriving is not cut off.
    last_read: Instant,
    queue: VecDeque<Queued>,
    /// Failures to report at the end of the turn (overflow, closed).
    failed: Vec<(Callback, RedisError)>,
    backoff: Duration,
    reconnect_timer: Option<TimerId>,
    connect_timer: Option<TimerId>,
    command_timer: Option<TimerId>,
    on_connect: Vec<ConnectCallback>,
    wake_pending: bool,
    /// Failed attempts since the last good connection (0 while connected).
    failures: u32,
    /// Commands dropped by the queue bound during this outage.
    dropped: u64,
}

impl fmt::Debug for Conn {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self.inner.try_borrow() {
            Ok(inner) => f
                .debug_struct("Conn")
                .field("peer", &inner.peer)
                .field("state", &inner.state)
                .field("in_flight", &inner.in_flight.len())
                .field("queued", &inner.queue.len())
                .finish(),
            Err(_) => f.write_str("Conn { <busy> }"),
        }
    }
}

impl Conn {
    /// Resolves the address, installs the handler and tick hook, and starts
    /// the first connect.
    pub(crate) fn start(
        reactor: &mut LoopHandle,
        url: RedisUrl,
        config: RedisConfig,
        kind: Kind,
    ) -> Result<Rc<Conn>, RedisError> {
        config.validate()?;
        let addrs: Vec<SocketAddr> = (url.host.as_str(), url.port).to_socket_addrs()?.collect();
        if addrs.is_empty() {
            return Err(RedisError::BadUrl(format!(
                "{} resolves to nothing",
                url.host
            )));
        }
        let peer = format!("{}:{}", url.host, url.port);
        let conn = Rc::new_cyclic(|me: &Weak<Conn>| {
            let weak = me.clone();
            let handler = reactor.insert_handler(move |event, reactor| match weak.upgrade() {
                Some(conn) => {
                    conn.on_event(event, reactor);
                    PostAction::Continue
                }
                None => PostAction::Remove,
            });
            Conn {
                inner: RefCell::new(Inner {
                    me: me.clone(),
                    url,
                    peer,
                    addrs,
                    next_addr: 0,
                    backoff: config.reconnect_min,
                    config,
                    handle: reactor.handle(),
                    handler,
                    kind,
                    state: State::Waiting,
                    stream: None,
                    generation: 0,
                    writable_interest: false,
                    input: Input::default(),
                    out: Vec::new(),
                    out_pos: 0,
                    out_base: 0,
                    in_flight: VecDeque::new(),
                    replay_starts: VecDeque::new(),
                    last_read: Instant::now(),
                    queue: VecDeque::new(),
                    failed: Vec::new(),
                    reconnect_timer: None,
                    connect_timer: None,
                    command_timer: None,
                    on_connect: Vec::new(),
                    wake_pending: false,
                    failures: 0,
                    dropped: 0,
                }),
            }
        });
        // The hook outlives a dropped client as a no-op: the reactor has no
        // way to remove tick hooks, and a dead `Weak` costs one check a turn.
        let weak = Rc::downgrade(&conn);
        reactor.add_tick_hook(move |reactor| match weak.upgrade() {
            Some(conn) => {
                conn.on_tick(reactor);
                true
            }
            None => false,
        });
        conn.inner.borrow_mut().connect(reactor);
        Ok(conn)
    }

    /// Queues or buffers a command; never runs a callback.
    /// `replay`: the caller says the command is idempotent, so it may be
    /// sent again after a connection broke before its reply.
    pub(crate) fn command(&self, args: &[&[u8]], reply: ReplyTo, replay: bool) {
        let mut inner = self.inner.borrow_mut();
        let replay = replay || inner.config.retry_in_flight;
        match inner.state {
            State::Ready => {
                let inner = &mut *inner;
                let start = inner.out_base + inner.out.len() as u64;
                encode_command(&mut inner.out, args);
                inner.push_in_flight(Reply::User(reply), start, replay, Instant::now());
            }
            State::Closed => inner.fail_later(reply, RedisError::Closed),
            State::Waiting | State::Connecting | State::Handshaking => {
                let mut bytes = Vec::new();
                encode_command(&mut bytes, args);
                inner.enqueue(Queued {
                    bytes,
                    reply,
                    replay,
                });
            }
        }
        inner.wake();
    }

    pub(crate) fn is_ready(&self) -> bool {
        self.inner.borrow().state == State::Ready
    }

    pub(crate) fn pending(&self) -> usize {
        let inner = self.inner.borrow();
        inner.queue.len() + inner.in_flight.len()
    }

    pub(crate) fn on_connect(&self, callback: Box<dyn FnMut(&mut LoopHandle)>) {
        self.inner
            .borrow_mut()
            .on_connect
            .push(Rc::new(RefCell::new(callback)));
    }

    /// Closes for good; callbacks run on the next turn.
    pub(crate) fn close(&self, reactor: &mut LoopHandle) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            if inner.state == State::Closed {
                return;
            }
            inner.disconnect(reactor, Lost::Closed, &mut deliveries);
            inner.state = State::Closed;
            if let Some(timer) = inner.reconnect_timer.take() {
                reactor.cancel_timer(timer);
            }
            for queued in std::mem::take(&mut inner.queue) {
                fail(queued.reply, RedisError::Closed, &mut deliveries);
            }
            for (callback, error) in std::mem::take(&mut inner.failed) {
                deliveries.push(Delivery::Reply(callback, Err(error)));
            }
            reactor.remove(inner.handler);
            debug!("redis {}: closed", inner.peer);
        }
        reactor.defer(move |reactor| run(deliveries, reactor));
    }

    /// Records a subscription and sends it if connected (otherwise it is
    /// sent on connect).
    pub(crate) fn subscribe(&self, pattern: bool, channel: &[u8], callback: MessageCallback) {
        let mut inner = self.inner.borrow_mut();
        let Kind::Subscriber(subs) = &mut inner.kind else {
            return;
        };
        let new = subs
            .of_kind(pattern)
            .insert(channel.to_vec(), Rc::new(RefCell::new(callback)))
            .is_none();
        if new && inner.state == State::Ready {
            let name: &[u8] = if pattern { b"PSUBSCRIBE" } else { b"SUBSCRIBE" };
            encode_command(&mut inner.out, &[name, channel]);
            inner.wake();
        }
    }

    pub(crate) fn unsubscribe(&self, pattern: bool, channel: &[u8]) {
        let mut inner = self.inner.borrow_mut();
        let Kind::Subscriber(subs) = &mut inner.kind else {
            return;
        };
        if subs.of_kind(pattern).remove(channel).is_some() && inner.state == State::Ready {
            let name: &[u8] = if pattern {
                b"PUNSUBSCRIBE"
            } else {
                b"UNSUBSCRIBE"
            };
            encode_command(&mut inner.out, &[name, channel]);
            inner.wake();
        }
    }

    fn on_event(&self, event: &Event, reactor: &mut LoopHandle) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            if sub_key(event.token()) == Some(inner.generation) && inner.stream.is_some() {
                inner.ready(reactor, &mut deliveries);
            }
        }
        run(deliveries, reactor);
    }

    /// Goes on reading where a read budget stopped.
    fn resume(&self, reactor: &mut LoopHandle, generation: u32) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            if inner.generation == generation && inner.stream.is_some() {
                inner.ready(reactor, &mut deliveries);
            }
        }
        run(deliveries, reactor);
    }

    /// End of every turn: write what the turn buffered, report deferred
    /// failures, keep the command timer armed.
    fn on_tick(&self, reactor: &mut LoopHandle) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            inner.wake_pending = false;
            for (callback, error) in std::mem::take(&mut inner.failed) {
                deliveries.push(Delivery::Reply(callback, Err(error)));
            }
            if matches!(inner.state, State::Handshaking | State::Ready)
                && inner.out_pos < inner.out.len()
            {
                // Read first: if Redis closed the connection and the event is
                // not dispatched yet, the EOF is found here and the new
                // commands stay queued instead of going into a dead socket.
                let result = inner
                    .read(reactor, &mut deliveries)
                    .and_then(|()| inner.flush(reactor));
                if let Err(lost) = result {
                    inner.disconnect(reactor, lost, &mut deliveries);
                }
            }
            inner.arm_command_timer(reactor);
        }
        run(deliveries, reactor);
    }

    fn on_timer(&self, reactor: &mut LoopHandle, timer: Timer) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            match timer {
                Timer::Reconnect => {
                    inner.reconnect_timer = None;
                    if inner.state == State::Waiting {
                        inner.connect(reactor);
                    }
                }
                Timer::Connect(generation) => {
                    inner.connect_timer = None;
                    if generation == inner.generation
                        && matches!(inner.state, State::Connecting | State::Handshaking)
                    {
                        inner.disconnect(reactor, Lost::ConnectTimeout, &mut deliveries);
                    }
                }
                Timer::Command => {
                    inner.command_timer = None;
                    let expired = match (inner.config.command_timeout, inner.in_flight.front()) {
                        (Some(timeout), Some(oldest)) => {
                            oldest.sent_at.max(inner.last_read) + timeout <= Instant::now()
                        }
                        _ => false,
                    };
                    if expired {
                        inner.disconnect(reactor, Lost::Timeout, &mut deliveries);
                    }
                }
            }
        }
        run(deliveries, reactor);
    }
}

#[derive(Debug, Clone, Copy)]
enum Timer {
    Reconnect,
    Connect(u32),
    Command,
}

fn fail(reply: ReplyTo, error: RedisError, deliveries: &mut Vec<Delivery>) {
    match reply {
        ReplyTo::Callback(callback) => deliveries.push(Delivery::Reply(callback, Err(error))),
        ReplyTo::Log => debug!("redis: fire-and-forget command failed: {error}"),
    }
}

/// Handles a push on a subscriber connection.
fn push(peer: &str, subs: &Subscriptions, value: Value, deliveries: &mut Vec<Delivery>) {
    let items = match value {
        Value::Array(items) => items,
        Value::Error(e) => {
            warn!("redis {peer}: subscriber error reply: {e}");
            return;
        }
        other => {
            warn!("redis {peer}: unexpected push {other:?}");
            return;
        }
    };
    let mut items = items.into_iter().map(|v| v.into_bytes());
    let kind = items.next().flatten();
    match kind.as_deref() {
        Some(b"message") => {
            if let (Some(Some(channel)), Some(Some(payload))) = (items.next(), items.next())
                && let Some(callback) = subs.channels.get(&channel)
            {
                deliveries.push(Delivery::Message(callback.clone(), channel, payload));
            }
        }
        Some(b"pmessage") => {
            if let (Some(Some(pattern)), Some(Some(channel)), Some(Some(payload))) =
                (items.next(), items.next(), items.next())
                && let Some(callback) = subs.patterns.get(&pattern)
            {
                deliveries.push(Delivery::Message(callback.clone(), channel, payload));
            }
        }
        Some(b"subscribe" | b"unsubscribe" | b"psubscribe" | b"punsubscribe" | b"pong") => {}
        _ => warn!("redis {peer}: unexpected push"),
    }
}

/// Runs callbacks collected while the state was borrowed, each inside the
/// loop's guard: a panicking callback is logged and the client goes on.
fn run(deliveries: Vec<Delivery>, reactor: &mut LoopHandle) {
    for delivery in deliveries {
        let _ = guard::call(&"a Redis callback", || match delivery {
            Delivery::Reply(callback, result) => callback(reactor, result),
            // A callback never runs inside another delivery of the same
            // connection (deliveries run after the state is released, one
            // at a time), so these borrows cannot fail; a message is only
            // dropped, with a line, if that ever changed.
            Delivery::Message(callback, channel, payload) => match callback.try_borrow_mut() {
                Ok(mut callback) => callback(reactor, &channel, &payload),
                Err(_) => warn!("redis: message callback re-entered; message dropped"),
            },
            Delivery::Connected(callback) => match callback.try_borrow_mut() {
                Ok(mut callback) => callback(reactor),
                Err(_) => warn!("redis: on_connect callback re-entered"),
            },
        });
    }
}
