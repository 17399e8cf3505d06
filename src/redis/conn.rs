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

use std::cell::RefCell;
use std::collections::{BTreeMap, VecDeque};
use std::fmt;
use std::io::{self, Read, Write};
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::{Rc, Weak};
use std::time::{Duration, Instant};

use log::{debug, info, trace, warn};
use mio::event::Event;
use mio::net::TcpStream;

use super::resp::{Parser, encode_command};
use super::subscriber::MessageCallback;
use super::{OverflowPolicy, RedisConfig, RedisError, RedisUrl, Value};
use crate::reactor::{Handle, Interest, PostAction, Reactor, SourceId, TimerId, sub_key};

/// A command's reply callback.
pub(crate) type Callback = Box<dyn FnOnce(&mut Reactor, Result<Value, RedisError>)>;

type ConnectCallback = Rc<RefCell<Box<dyn FnMut(&mut Reactor)>>>;
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

/// A read chunk; also the most read per `read` call.
const READ_CHUNK: usize = 64 * 1024;
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
            Lost::Timeout => f.write_str("no reply within the command timeout"),
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
    parser: Parser,
    handle: Handle,
    handler: SourceId,
    kind: Kind,
    state: State,
    stream: Option<TcpStream>,
    /// Sub-token of the current stream, so events of an old one are ignored.
    generation: u32,
    writable_interest: bool,
    rbuf: Vec<u8>,
    out: Vec<u8>,
    out_pos: usize,
    /// Absolute stream offset of `out[0]`.
    out_base: u64,
    in_flight: VecDeque<InFlight>,
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
        reactor: &mut Reactor,
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
                    parser: Parser::default(),
                    handle: reactor.handle(),
                    handler,
                    kind,
                    state: State::Waiting,
                    stream: None,
                    generation: 0,
                    writable_interest: false,
                    rbuf: Vec::new(),
                    out: Vec::new(),
                    out_pos: 0,
                    out_base: 0,
                    in_flight: VecDeque::new(),
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
        reactor.add_tick_hook(move |reactor| {
            if let Some(conn) = weak.upgrade() {
                conn.on_tick(reactor);
            }
        });
        conn.inner.borrow_mut().connect(reactor);
        Ok(conn)
    }

    /// Queues or buffers a command; never runs a callback.
    pub(crate) fn command(&self, args: &[&[u8]], reply: ReplyTo) {
        let mut inner = self.inner.borrow_mut();
        match inner.state {
            State::Ready => {
                let inner = &mut *inner;
                let start = inner.out_base + inner.out.len() as u64;
                encode_command(&mut inner.out, args);
                let end = inner.out_base + inner.out.len() as u64;
                inner.in_flight.push_back(InFlight {
                    reply: Reply::User(reply),
                    start,
                    end,
                    sent_at: Instant::now(),
                });
            }
            State::Closed => inner.fail_later(reply, RedisError::Closed),
            State::Waiting | State::Connecting | State::Handshaking => {
                let mut bytes = Vec::new();
                encode_command(&mut bytes, args);
                inner.enqueue(Queued { bytes, reply });
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

    pub(crate) fn on_connect(&self, callback: Box<dyn FnMut(&mut Reactor)>) {
        self.inner
            .borrow_mut()
            .on_connect
            .push(Rc::new(RefCell::new(callback)));
    }

    /// Closes for good; callbacks run on the next turn.
    pub(crate) fn close(&self, reactor: &mut Reactor) {
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
        let map = if pattern {
            &mut subs.patterns
        } else {
            &mut subs.channels
        };
        let new = map
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
        let map = if pattern {
            &mut subs.patterns
        } else {
            &mut subs.channels
        };
        if map.remove(channel).is_some() && inner.state == State::Ready {
            let name: &[u8] = if pattern {
                b"PUNSUBSCRIBE"
            } else {
                b"UNSUBSCRIBE"
            };
            encode_command(&mut inner.out, &[name, channel]);
            inner.wake();
        }
    }

    fn on_event(&self, event: &Event, reactor: &mut Reactor) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            if sub_key(event.token()) == Some(inner.generation) && inner.stream.is_some() {
                inner.ready(reactor, &mut deliveries);
            }
        }
        run(deliveries, reactor);
    }

    /// End of every turn: write what the turn buffered, report deferred
    /// failures, keep the command timer armed.
    fn on_tick(&self, reactor: &mut Reactor) {
        let mut deliveries = Vec::new();
        {
            let mut inner = self.inner.borrow_mut();
            inner.wake_pending = false;
            for (callback, error) in std::mem::take(&mut inner.failed) {
                deliveries.push(Delivery::Reply(callback, Err(error)));
            }
            if matches!(inner.state, State::Handshaking | State::Ready) {
                if let Err(lost) = inner.flush(reactor) {
                    inner.disconnect(reactor, lost, &mut deliveries);
                }
            }
            inner.arm_command_timer(reactor);
        }
        run(deliveries, reactor);
    }

    fn on_timer(&self, reactor: &mut Reactor, timer: Timer) {
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
                        (Some(timeout), Some(oldest)) => oldest.sent_at + timeout <= Instant::now(),
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

impl Inner {
    fn add_timer(&self, reactor: &mut Reactor, after: Duration, timer: Timer) -> TimerId {
        let me = self.me.clone();
        reactor.add_timer(after, move |reactor| {
            if let Some(conn) = me.upgrade() {
                conn.on_timer(reactor, timer);
            }
        })
    }

    /// Makes sure the loop turns (and runs the tick hook) soon.
    fn wake(&mut self) {
        if !self.wake_pending {
            self.wake_pending = true;
            // A full queue means the loop is busy and will turn anyway.
            let _ = self.handle.schedule(|_| {});
        }
    }

    fn fail_later(&mut self, reply: ReplyTo, error: RedisError) {
        match reply {
            ReplyTo::Callback(callback) => self.failed.push((callback, error)),
            ReplyTo::Log => debug!("redis {}: command dropped: {error}", self.peer),
        }
    }

    /// Queues a command for the next connection, within the bound.
    fn enqueue(&mut self, queued: Queued) {
        if self.queue.len() < self.config.max_queued {
            self.queue.push_back(queued);
            return;
        }
        self.dropped += 1;
        if self.dropped == 1 {
            warn!(
                "redis {}: {} commands queued while disconnected; dropping the {} ones past the bound",
                self.peer,
                self.queue.len(),
                match self.config.overflow {
                    OverflowPolicy::RejectNew => "newest",
                    OverflowPolicy::DropOldest => "oldest",
                }
            );
        }
        let victim = match self.config.overflow {
            OverflowPolicy::DropOldest if !self.queue.is_empty() => {
                let oldest = self.queue.pop_front();
                self.queue.push_back(queued);
                oldest
            }
            _ => Some(queued),
        };
        if let Some(victim) = victim {
            self.fail_later(victim.reply, RedisError::Overflow);
        }
    }

    /// Starts a non-blocking connect to the next address.
    fn connect(&mut self, reactor: &mut Reactor) {
        let addr = self.addrs[self.next_addr % self.addrs.len()];
        self.next_addr = self.next_addr.wrapping_add(1);
        // `sub_token` needs room for `sub + 1`.
        self.generation = (self.generation + 1) % u32::MAX;
        let token = self.handler.sub_token(self.generation);
        let result = TcpStream::connect(addr).and_then(|mut stream| {
            reactor.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match result {
            Ok(stream) => {
                trace!("redis {}: connecting to {addr}", self.peer);
                self.stream = Some(stream);
                self.writable_interest = true;
                self.state = State::Connecting;
                let timeout = self.config.connect_timeout;
                self.connect_timer =
                    Some(self.add_timer(reactor, timeout, Timer::Connect(self.generation)));
            }
            Err(e) => {
                self.state = State::Connecting;
                let mut none = Vec::new();
                self.disconnect(reactor, Lost::Io(e), &mut none);
            }
        }
    }

    /// Handles readiness of the current stream.
    fn ready(&mut self, reactor: &mut Reactor, deliveries: &mut Vec<Delivery>) {
        if self.state == State::Connecting {
            match self.check_connected() {
                Ok(false) => return,
                Ok(true) => self.connected(reactor, deliveries),
                Err(e) => return self.disconnect(reactor, Lost::Io(e), deliveries),
            }
        }
        if !matches!(self.state, State::Handshaking | State::Ready) {
            return;
        }
        let result = self
            .read(reactor, deliveries)
            .and_then(|()| self.flush(reactor));
        if let Err(lost) = result {
            self.disconnect(reactor, lost, deliveries);
        }
    }

    /// Whether a connect in progress finished (mio's documented check).
    fn check_connected(&mut self) -> io::Result<bool> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(false);
        };
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// TCP is up: send `AUTH`/`SELECT`, or go straight to ready.
    fn connected(&mut self, reactor: &mut Reactor, deliveries: &mut Vec<Delivery>) {
        if let Some(stream) = &self.stream {
            // Small commands must not wait for Nagle.
            let _ = stream.set_nodelay(true);
        }
        debug!("redis {}: connected", self.peer);
        self.state = State::Handshaking;
        let url = self.url.clone();
        if let Some(password) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            self.push_internal(&args, "AUTH");
        }
        if let Some(db) = url.db {
            self.push_internal(&[b"SELECT", db.to_string().as_bytes()], "SELECT");
        }
        if self.in_flight.is_empty() {
            self.become_ready(reactor, deliveries);
        }
    }

    fn push_internal(&mut self, args: &[&[u8]], what: &'static str) {
        let start = self.out_base + self.out.len() as u64;
        encode_command(&mut self.out, args);
        self.in_flight.push_back(InFlight {
            reply: Reply::Handshake(what),
            start,
            end: self.out_base + self.out.len() as u64,
            sent_at: Instant::now(),
        });
    }

    /// Past `AUTH`/`SELECT`: hand the queue to the socket, resubscribe, and
    /// tell the `on_connect` callbacks.
    fn become_ready(&mut self, reactor: &mut Reactor, deliveries: &mut Vec<Delivery>) {
        self.state = State::Ready;
        if let Some(timer) = self.connect_timer.take() {
            reactor.cancel_timer(timer);
        }
        if self.failures > 0 || self.dropped > 0 {
            info!(
                "redis {}: reconnected after {} failed attempts; sending {} queued commands{}",
                self.peer,
                self.failures,
                self.queue.len(),
                if self.dropped > 0 {
                    format!(" ({} were dropped past the bound)", self.dropped)
                } else {
                    String::new()
                }
            );
        }
        self.failures = 0;
        self.dropped = 0;
        self.backoff = self.config.reconnect_min;
        let now = Instant::now();
        for queued in std::mem::take(&mut self.queue) {
            let start = self.out_base + self.out.len() as u64;
            self.out.extend_from_slice(&queued.bytes);
            self.in_flight.push_back(InFlight {
                reply: Reply::User(queued.reply),
                start,
                end: self.out_base + self.out.len() as u64,
                sent_at: now,
            });
        }
        if let Kind::Subscriber(subs) = &self.kind {
            for (name, map) in [
                (&b"SUBSCRIBE"[..], &subs.channels),
                (&b"PSUBSCRIBE"[..], &subs.patterns),
            ] {
                let keys: Vec<&[u8]> = map.keys().map(|k| k.as_slice()).collect();
                for batch in keys.chunks(SUBSCRIBE_BATCH) {
                    let mut args = Vec::with_capacity(batch.len() + 1);
                    args.push(name);
                    args.extend_from_slice(batch);
                    encode_command(&mut self.out, &args);
                }
            }
        }
        deliveries.extend(self.on_connect.iter().cloned().map(Delivery::Connected));
    }

    /// Reads until `WouldBlock`, handling every complete reply.
    fn read(&mut self, reactor: &mut Reactor, deliveries: &mut Vec<Delivery>) -> Result<(), Lost> {
        loop {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            let start = self.rbuf.len();
            self.rbuf.resize(start + READ_CHUNK, 0);
            let result = stream.read(&mut self.rbuf[start..]);
            let n = *result.as_ref().unwrap_or(&0);
            self.rbuf.truncate(start + n);
            match result {
                Ok(0) => return Err(Lost::Eof),
                Ok(_) => self.parse_replies(reactor, deliveries)?,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Lost::Io(e)),
            }
            if self.state != State::Ready && self.state != State::Handshaking {
                return Ok(());
            }
        }
    }

    fn parse_replies(
        &mut self,
        reactor: &mut Reactor,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), Lost> {
        let mut used = 0;
        let result = loop {
            match self.parser.parse(&self.rbuf[used..]) {
                Ok(Some((value, n))) => {
                    used += n;
                    trace!("redis {}: reply {value:?}", self.peer);
                    if let Err(lost) = self.on_reply(value, reactor, deliveries) {
                        break Err(lost);
                    }
                }
                Ok(None) => break Ok(()),
                Err(e) => break Err(Lost::Protocol(e.to_string())),
            }
        };
        self.rbuf.drain(..used);
        result
    }

    fn on_reply(
        &mut self,
        value: Value,
        reactor: &mut Reactor,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), Lost> {
        if self.in_flight.is_empty() {
            if let Kind::Subscriber(subs) = &self.kind {
                push(&self.peer, subs, value, deliveries);
                return Ok(());
            }
            return Err(Lost::Protocol(format!(
                "a reply that answers no command: {value:?}"
            )));
        }
        let Some(command) = self.in_flight.pop_front() else {
            return Ok(());
        };
        match command.reply {
            Reply::Handshake(what) => {
                if let Value::Error(e) = value {
                    return Err(Lost::Handshake(format!("{what}: {e}")));
                }
                if self.in_flight.is_empty() {
                    self.become_ready(reactor, deliveries);
                }
            }
            Reply::User(ReplyTo::Callback(callback)) => {
                let result = match value {
                    Value::Error(e) => Err(RedisError::Server(e)),
                    value => Ok(value),
                };
                deliveries.push(Delivery::Reply(callback, result));
            }
            Reply::User(ReplyTo::Log) => {
                if let Value::Error(e) = value {
                    warn!("redis {}: command failed: {e}", self.peer);
                }
            }
        }
        Ok(())
    }

    /// Writes the output buffer until it is empty or the socket is full, and
    /// asks for WRITABLE only while output is left.
    fn flush(&mut self, reactor: &mut Reactor) -> Result<(), Lost> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(Lost::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Lost::Io(e)),
            }
        }
        if self.out_pos == self.out.len() {
            self.out_base += self.out.len() as u64;
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= COMPACT_AT {
            self.compact();
        }
        let want = self.out_pos < self.out.len();
        if want != self.writable_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = self.handler.sub_token(self.generation);
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            reactor
                .registry()
                .reregister(stream, token, interest)
                .map_err(Lost::Io)?;
            self.writable_interest = want;
        }
        Ok(())
    }

    /// Drops written bytes from the front of the buffer, keeping whole any
    /// command not fully written (it may have to be queued again).
    fn compact(&mut self) {
        let written = self.out_base + self.out_pos as u64;
        let first_partial = self.in_flight.partition_point(|c| c.end <= written);
        let keep_from = self
            .in_flight
            .get(first_partial)
            .map_or(written, |c| c.start.min(written));
        let drop = (keep_from.saturating_sub(self.out_base) as usize).min(self.out_pos);
        self.out.drain(..drop);
        self.out_pos -= drop;
        self.out_base += drop as u64;
    }

    fn arm_command_timer(&mut self, reactor: &mut Reactor) {
        let Some(timeout) = self.config.command_timeout else {
            return;
        };
        if self.command_timer.is_some() {
            return;
        }
        if let Some(oldest) = self.in_flight.front() {
            let after = (oldest.sent_at + timeout).saturating_duration_since(Instant::now());
            self.command_timer = Some(self.add_timer(reactor, after, Timer::Command));
        }
    }

    /// Ends the current connection (if any): commands not fully written go
    /// back to the queue, written ones fail, and a reconnect is scheduled
    /// unless the client is closing.
    fn disconnect(&mut self, reactor: &mut Reactor, lost: Lost, deliveries: &mut Vec<Delivery>) {
        let was = self.state;
        if let Some(mut stream) = self.stream.take() {
            if let Err(e) = reactor.registry().deregister(&mut stream) {
                debug!("redis {}: deregister failed: {e}", self.peer);
            }
        }
        for timer in [self.connect_timer.take(), self.command_timer.take()]
            .into_iter()
            .flatten()
        {
            reactor.cancel_timer(timer);
        }
        self.rbuf = Vec::new();
        let written = self.out_base + self.out_pos as u64;
        let mut resend = Vec::new();
        let mut failed = 0usize;
        for command in std::mem::take(&mut self.in_flight) {
            let Reply::User(reply) = command.reply else {
                continue;
            };
            // Redis drops a partial command with its connection, so one not
            // fully written was not executed and is safe to send again.
            let unwritten = if command.end > written {
                let start = command.start.checked_sub(self.out_base);
                let end = command.end.checked_sub(self.out_base);
                start
                    .zip(end)
                    .and_then(|(start, end)| self.out.get(start as usize..end as usize))
            } else {
                None
            };
            match unwritten {
                Some(bytes) => resend.push(Queued {
                    bytes: bytes.to_vec(),
                    reply,
                }),
                None => {
                    failed += 1;
                    fail(reply, lost.in_flight_error(), deliveries);
                }
            }
        }
        let resent = resend.len();
        for queued in resend.into_iter().rev() {
            self.queue.push_front(queued);
        }
        while self.queue.len() > self.config.max_queued {
            self.dropped += 1;
            let victim = match self.config.overflow {
                OverflowPolicy::DropOldest => self.queue.pop_front(),
                OverflowPolicy::RejectNew => self.queue.pop_back(),
            };
            if let Some(victim) = victim {
                fail(victim.reply, RedisError::Overflow, deliveries);
            }
        }
        self.out = Vec::new();
        self.out_pos = 0;
        self.out_base = 0;
        self.writable_interest = false;
        if matches!(lost, Lost::Closed) {
            return;
        }
        self.failures += 1;
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(self.config.reconnect_max);
        let message = format!(
            "redis {}: {} ({lost}); {failed} commands in flight failed, {} queued{}; retrying in {delay:?}",
            self.peer,
            if was == State::Ready {
                "connection lost"
            } else {
                "connect failed"
            },
            self.queue.len(),
            if resent > 0 {
                format!(" ({resent} unwritten ones kept)")
            } else {
                String::new()
            },
        );
        // One warning per outage; the retries that follow are debug lines.
        if self.failures == 1 || failed > 0 {
            warn!("{message}");
        } else {
            debug!("{message}");
        }
        self.state = State::Waiting;
        self.reconnect_timer = Some(self.add_timer(reactor, delay, Timer::Reconnect));
    }
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
            if let (Some(Some(channel)), Some(Some(payload))) = (items.next(), items.next()) {
                if let Some(callback) = subs.channels.get(&channel) {
                    deliveries.push(Delivery::Message(callback.clone(), channel, payload));
                }
            }
        }
        Some(b"pmessage") => {
            if let (Some(Some(pattern)), Some(Some(channel)), Some(Some(payload))) =
                (items.next(), items.next(), items.next())
            {
                if let Some(callback) = subs.patterns.get(&pattern) {
                    deliveries.push(Delivery::Message(callback.clone(), channel, payload));
                }
            }
        }
        Some(b"subscribe" | b"unsubscribe" | b"psubscribe" | b"punsubscribe" | b"pong") => {}
        _ => warn!("redis {peer}: unexpected push"),
    }
}

/// Runs callbacks collected while the state was borrowed.
fn run(deliveries: Vec<Delivery>, reactor: &mut Reactor) {
    for delivery in deliveries {
        match delivery {
            Delivery::Reply(callback, result) => callback(reactor, result),
            Delivery::Message(callback, channel, payload) => match callback.try_borrow_mut() {
                Ok(mut callback) => callback(reactor, &channel, &payload),
                Err(_) => warn!("redis: message callback re-entered; message dropped"),
            },
            Delivery::Connected(callback) => match callback.try_borrow_mut() {
                Ok(mut callback) => callback(reactor),
                Err(_) => warn!("redis: on_connect callback re-entered"),
            },
        }
    }
}
