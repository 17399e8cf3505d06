//! The WebSocket server on the reactor: accepting, reading, handshakes,
//! frames, timeouts and shutdown, and the handles programs keep to it.
//!
//! All of a server's sockets report to one reactor handler; the listener has
//! the handler's plain token and each connection a sub-token carrying its
//! slab key, so there is no per-connection closure.

use std::any::Any;
use std::cell::RefCell;
use std::fmt;
use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::rc::{Rc, Weak};
use std::sync::Arc;

use log::{debug, error, warn};
use mio::Interest;
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};

use crate::component::{CloseReason, Component, ConnId, Message, OwnedMessage};
use crate::config::ServerConfig;
use crate::connection::{Connection, Net, Pending, Phase, RETAINED_BUFFER, flag};
use crate::context::Context;
use crate::error::{Error, Limit, Result};
use crate::frame::close_code;
use crate::frame::decode::{Incoming, Limits};
use crate::handshake::{self, Outcome};
use crate::reactor::{Handle, PostAction, Reactor, ScheduleError, TimerId, sub_key};
use crate::router::Router;
use crate::transport::Transport;

/// The loop's shared read buffer: every connection reads into it, so an idle
/// connection needs none of its own.
const READ_BUFFER: usize = 64 << 10;

/// Bytes one connection may read per wakeup before others get a turn.
const READ_BUDGET: usize = 1 << 20;

/// How many flush/callback rounds one tick runs before yielding to the poll.
const MAX_SETTLE_ROUNDS: usize = 16;

/// A server's state, owned by an `Rc<RefCell<_>>` that the reactor's
/// callbacks hold weakly.
pub(crate) struct ServerCore {
    pub(crate) net: Net,
    components: Vec<Box<dyn Component>>,
    router: Router,
    read_buf: Box<[u8]>,
    listener: Option<TcpListener>,
    local_addr: SocketAddr,
    /// Keys whose read budget ran out with data left.
    resume: Vec<u32>,
    sweep: Option<TimerId>,
    /// An open file kept in reserve: when accept fails for lack of file
    /// descriptors, closing it makes room to accept and close the pending
    /// connection, so the listener does not stay readable forever.
    reserve_fd: Option<File>,
    /// A graceful stop waits for this server.
    holding_stop: bool,
    refused: u64,
    /// Set for `wss://`: every accepted socket starts a TLS session.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl ServerCore {
    /// Starts serving `listener` on `reactor`.
    pub(crate) fn start(
        reactor: &mut Reactor,
        mut listener: TcpListener,
        router: Router,
        components: Vec<Box<dyn Component>>,
        config: ServerConfig,
        tls: Option<Arc<rustls::ServerConfig>>,
    ) -> Result<Server> {
        config.validate()?;
        let local_addr = listener.local_addr()?;
        let core = Rc::new_cyclic(|this: &Weak<RefCell<ServerCore>>| {
            let weak = this.clone();
            let handler = reactor.insert_handler(move |event, reactor| match weak.upgrade() {
                Some(core) => match core.try_borrow_mut() {
                    Ok(mut core) => {
                        core.ready(reactor, event);
                        PostAction::Continue
                    }
                    Err(_) => {
                        error!("server busy while its socket became ready; event dropped");
                        PostAction::Continue
                    }
                },
                None => PostAction::Remove,
            });
            let service = reactor.add_service(this.clone() as Weak<dyn Any>);
            let mut net = Net::new(config, handler, this.clone(), service, local_addr);
            // Reserve the table for every connection the config allows: the
            // untouched part costs address space, not memory, and the table
            // never doubles (which would leave half of it resident and idle).
            net.conns.reserve(net.config.max_connections.min(1 << 20));
            RefCell::new(ServerCore {
                net,
                components,
                router,
                read_buf: vec![0; READ_BUFFER].into_boxed_slice(),
                listener: None,
                local_addr,
                resume: Vec::new(),
                sweep: None,
                reserve_fd: File::open("/dev/null").ok(),
                holding_stop: false,
                refused: 0,
                tls,
            })
        });
        let handler = core.borrow().net.handler;
        reactor
            .registry()
            .register(&mut listener, handler.token(), Interest::READABLE)?;
        let sweep_every = core.borrow().net.config.sweep_interval();
        let weak = Rc::downgrade(&core);
        let sweep = reactor.add_periodic(sweep_every, move |reactor| {
            with_core(&weak, |core| core.sweep(reactor));
        });
        let weak = Rc::downgrade(&core);
        reactor.add_tick_hook(move |reactor| {
            with_core(&weak, |core| core.end_of_turn(reactor));
        });
        let weak = Rc::downgrade(&core);
        reactor.add_stop_hook(move |reactor| {
            with_core(&weak, |core| core.shutdown(reactor));
        });
        {
            let mut c = core.borrow_mut();
            c.listener = Some(listener);
            c.sweep = Some(sweep);
        }
        let service = core.borrow().net.service;
        Ok(Server::new(core, local_addr, service))
    }

    fn ready(&mut self, reactor: &mut Reactor, event: &Event) {
        self.net.tick(reactor.now());
        match sub_key(event.token()) {
            None => self.accept(reactor),
            Some(key) => {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    let drain_fully = event.is_read_closed() || event.is_error();
                    self.read_ready(reactor, key, drain_fully);
                }
                if event.is_writable() {
                    self.net.flush(key);
                }
            }
        }
        self.settle(reactor);
    }

    fn accept(&mut self, reactor: &mut Reactor) {
        loop {
            let Some(listener) = &self.listener else {
                return;
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(reactor, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) if out_of_descriptors(&e) => match self.shed_one_connection() {
                    Shed::One => {}
                    // Linux reports EMFILE before it looks at the backlog, so
                    // an empty backlog looks the same as a full one: stop
                    // here, or this loop spins while every descriptor is used.
                    Shed::NothingPending => return,
                    Shed::NoReserve => {
                        error!("accept: {e}; no reserve descriptor left, pending connections wait");
                        return;
                    }
                },
                Err(e) => {
                    error!("accept failed: {e}");
                    return;
                }
            }
        }
    }

    /// Accepts one pending connection with the reserve descriptor's slot and
    /// closes it at once.
    fn shed_one_connection(&mut self) -> Shed {
        if self.reserve_fd.take().is_none() {
            return Shed::NoReserve;
        }
        let shed = match self.listener.as_ref().map(TcpListener::accept) {
            Some(Ok((stream, peer))) => {
                self.refused += 1;
                warn!("out of file descriptors: refused {peer}");
                drop(stream);
                Shed::One
            }
            Some(Err(e))
                if matches!(
                    e.kind(),
                    io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                ) =>
            {
                Shed::One
            }
            _ => Shed::NothingPending,
        };
        self.reserve_fd = File::open("/dev/null").ok();
        match self.reserve_fd {
            Some(_) => shed,
            None => Shed::NoReserve,
        }
    }

    fn admit(&mut self, reactor: &mut Reactor, stream: TcpStream, peer: SocketAddr) {
        if self.net.conns.len() >= self.net.config.max_connections || self.net.shutting_down {
            self.refused += 1;
            // One line per power of two: a flood must not flood the log too.
            if self.refused.is_power_of_two() {
                warn!(
                    "at max connections ({}): refused {peer} ({} refused so far)",
                    self.net.config.max_connections, self.refused
                );
            }
            return;
        }
        // Replies are written once per turn already; Nagle would only delay them.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("{peer}: TCP_NODELAY: {e}");
        }
        let generation = self.net.next_generation();
        let entry = self.net.conns.vacant_entry();
        let key = entry.key() as u32;
        let token = self.net.handler.sub_token(key);
        let mut transport = match &self.tls {
            None => Transport::Plain(stream),
            Some(config) => match Transport::tls(stream, config.clone()) {
                Ok(t) => t,
                Err(e) => {
                    error!("{peer}: TLS session: {e}");
                    return;
                }
            },
        };
        // Both interests, once: with edge triggering a writable event only
        // comes after a write hit WouldBlock, so this costs no wakeups and
        // saves an epoll_ctl per backed-up write.
        if let Err(e) = reactor.registry().register(
            &mut transport,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            error!("{peer}: register failed: {e}");
            return;
        }
        entry.insert(Connection::new(transport, peer, generation, self.net.now));
        debug!("#{generation} connected from {peer}");
    }

    fn read_ready(&mut self, reactor: &mut Reactor, key: u32, drain_fully: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.net.conns.get_mut(key as usize) else {
                return;
            };
            if conn.has(flag::DOOMED) || conn.phase == Phase::Flushing {
                return;
            }
            let n = match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.peer_eof(key);
                    return;
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("#{} from {}: read failed: {e}", conn.generation, conn.peer);
                    let kind = e.kind();
                    self.net.doom(key, CloseReason::Io(kind));
                    return;
                }
            };
            let short = n < self.read_buf.len() && conn.stream.short_read_drains();
            if conn.phase == Phase::Handshake {
                self.handshake_input(reactor, key, n);
            } else {
                self.frame_input(reactor, key, Some(n));
            }
            if short && !drain_fully {
                return;
            }
            budget = budget.saturating_sub(n);
            if budget == 0 {
                self.resume.push(key);
                // Make the next poll return at once so this connection is
                // read again after the others had their turn.
                reactor.defer(|_| {});
                return;
            }
        }
    }

    fn peer_eof(&mut self, key: u32) {
        let Some(conn) = self.net.conns.get(key as usize) else {
            return;
        };
        if conn.phase == Phase::Open {
            debug!(
                "#{} from {}: closed without a close frame",
                conn.generation, conn.peer
            );
        }
        self.net
            .doom(key, CloseReason::Io(io::ErrorKind::UnexpectedEof));
    }

    fn handshake_input(&mut self, reactor: &mut Reactor, key: u32, n: usize) {
        let max_request = self.net.config.max_request_size;
        let conn = &mut self.net.conns[key as usize];
        conn.input.extend_from_slice(&self.read_buf[..n]);
        let outcome = handshake::respond(&conn.input, &self.router, max_request, &mut conn.out);
        match outcome {
            Outcome::Partial => {}
            Outcome::Respond { status } => {
                debug!("#{} from {}: HTTP {status}", conn.generation, conn.peer);
                conn.phase = Phase::Flushing;
                conn.since = self.net.now;
                conn.input = Vec::new();
                self.net.mark_dirty(key);
            }
            Outcome::Upgrade {
                consumed,
                component,
                request,
            } => {
                conn.input.drain(..consumed);
                if conn.input.is_empty() {
                    // The request is spent; an idle connection keeps no buffer.
                    conn.input = Vec::new();
                }
                conn.phase = Phase::Open;
                conn.component = component as u32;
                conn.since = self.net.now;
                conn.flags |= flag::OPENED;
                let id = ConnId {
                    key,
                    generation: conn.generation,
                };
                conn.request = Some(request);
                let conn = &self.net.conns[key as usize];
                let client = self.net.client_addr(conn);
                if client == conn.peer {
                    debug!("{id} opened from {client} on {}", request_path(conn));
                } else {
                    debug!(
                        "{id} opened from {client} (via proxy {}) on {}",
                        conn.peer,
                        request_path(conn)
                    );
                }
                self.net.mark_dirty(key);
                self.call(reactor, component as u32, Some(key), |c, ctx| {
                    c.on_open(ctx, id)
                });
                // Frames the client sent right behind its request.
                let has_input = self
                    .net
                    .conns
                    .get(key as usize)
                    .is_some_and(|c| !c.input.is_empty());
                if has_input {
                    self.frame_input(reactor, key, None);
                }
            }
        }
    }

    /// Decodes and dispatches frames: the bytes just read into the shared
    /// buffer (`fresh`), after whatever the connection kept from before.
    fn frame_input(&mut self, reactor: &mut Reactor, key: u32, fresh: Option<usize>) {
        let ServerCore {
            net,
            components,
            read_buf,
            ..
        } = self;
        let conn = &mut net.conns[key as usize];
        if conn.phase == Phase::Open {
            conn.since = net.now;
            conn.flags &= !flag::PING_SENT;
            conn.flags |= flag::RECENT;
        }
        let id = ConnId {
            key,
            generation: conn.generation,
        };
        let component = conn.component;
        let mut input = std::mem::take(&mut conn.input);
        let mut decoder = std::mem::take(&mut conn.decoder);
        let limits = Limits {
            max_frame: net.config.max_frame(),
            max_message: net.config.max_message(),
        };
        // The common case decodes straight from the shared buffer: no copy.
        let in_place = input.is_empty() && fresh.is_some();
        if let (false, Some(n)) = (in_place, fresh) {
            input.extend_from_slice(&read_buf[..n]);
        }
        let buf: &mut [u8] = match fresh {
            Some(n) if in_place => &mut read_buf[..n],
            _ => &mut input[..],
        };
        let len = buf.len();
        let mut pos = 0;
        loop {
            let phase = match net.conns.get(key as usize) {
                Some(c) if !c.has(flag::DOOMED) => c.phase,
                _ => break,
            };
            if !matches!(phase, Phase::Open | Phase::AwaitingClose) {
                break;
            }
            match decoder.decode(buf, &mut pos, limits) {
                Ok(None) => break,
                Ok(Some(Incoming::Text(text))) if phase == Phase::Open => {
                    invoke(components, net, reactor, component, Some(key), |c, ctx| {
                        c.on_message(ctx, id, Message::Text(text))
                    });
                }
                Ok(Some(Incoming::Binary(bytes))) if phase == Phase::Open => {
                    invoke(components, net, reactor, component, Some(key), |c, ctx| {
                        c.on_message(ctx, id, Message::Binary(bytes))
                    });
                }
                // After our close frame, data is read and dropped (RFC 6455 §1.4).
                Ok(Some(Incoming::Text(_) | Incoming::Binary(_))) => {}
                Ok(Some(Incoming::Ping(payload))) => {
                    if phase == Phase::Open {
                        net.pong(key, payload);
                    }
                }
                Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Close(code, text))) => {
                    net.peer_closed(key, code, text);
                    break;
                }
                Err(violation) => {
                    net.violation(key, violation);
                    break;
                }
            }
        }
        let Some(conn) = net.conns.get_mut(key as usize) else {
            return;
        };
        if in_place {
            input.extend_from_slice(&read_buf[pos..len]);
        } else {
            input.drain(..pos);
        }
        if input.is_empty() && input.capacity() > RETAINED_BUFFER {
            // Release what a large partial frame left behind.
            input = Vec::new();
        }
        conn.input = input;
        conn.decoder = decoder;
    }

    /// Calls a component with panic isolation.
    fn call(
        &mut self,
        reactor: &mut Reactor,
        component: u32,
        key: Option<u32>,
        f: impl FnOnce(&mut dyn Component, &mut Context<'_>),
    ) {
        invoke(
            &mut self.components,
            &mut self.net,
            reactor,
            component,
            key,
            f,
        );
    }

    /// [`ServerCore::settle`], for timers that fire outside a dispatch.
    pub(crate) fn settle_now(&mut self, reactor: &mut Reactor) {
        self.settle(reactor);
    }

    /// Drops doomed connections and delivers owed callbacks until none are
    /// left.
    fn settle(&mut self, reactor: &mut Reactor) {
        loop {
            if let Some(key) = self.net.doomed.pop() {
                self.finish(reactor, key);
                continue;
            }
            let Some(pending) = self.net.pending.pop_front() else {
                break;
            };
            match pending {
                Pending::Error {
                    conn,
                    component,
                    error,
                } => self.call(reactor, component, None, |c, ctx| {
                    c.on_error(ctx, conn, &error)
                }),
                Pending::Close {
                    conn,
                    component,
                    reason,
                } => self.call(reactor, component, None, |c, ctx| {
                    c.on_close(ctx, conn, &reason)
                }),
                Pending::Drain { conn, component } => {
                    self.call(reactor, component, Some(conn.key), |c, ctx| {
                        c.on_drain(ctx, conn)
                    })
                }
                Pending::Timer { component, timer } => {
                    self.call(reactor, component, None, |c, ctx| c.on_timer(ctx, timer))
                }
            }
        }
    }

    /// Drops a connection: deregisters it, and owes `on_close` if it opened.
    fn finish(&mut self, reactor: &mut Reactor, key: u32) {
        // No explicit deregister: closing the descriptor (when `conn` drops
        // below) takes it out of the epoll set, since it is never duplicated.
        // That is one epoll_ctl fewer per connection.
        let Some(conn) = self.net.conns.try_remove(key as usize) else {
            return;
        };
        let reason = conn
            .reason
            .map_or(CloseReason::Io(io::ErrorKind::UnexpectedEof), |r| *r);
        if conn.flags & flag::OPENED != 0 {
            let id = ConnId {
                key,
                generation: conn.generation,
            };
            debug!("{id} from {} closed: {reason}", conn.peer);
            self.net.pending.push_back(Pending::Close {
                conn: id,
                component: conn.component,
                reason,
            });
        }
        if self.holding_stop && self.net.conns.is_empty() {
            self.holding_stop = false;
            reactor.release_stop();
        }
    }

    /// Flushes every connection with output, and delivers what that causes.
    fn end_of_turn(&mut self, reactor: &mut Reactor) {
        self.net.tick(reactor.now());
        for key in std::mem::take(&mut self.resume) {
            self.read_ready(reactor, key, false);
        }
        for _ in 0..MAX_SETTLE_ROUNDS {
            self.settle(reactor);
            if self.net.dirty.is_empty() {
                return;
            }
            for key in std::mem::take(&mut self.net.dirty) {
                self.net.flush(key);
            }
        }
        // Callbacks keep producing output: come back right after the poll.
        self.settle(reactor);
        reactor.defer(|_| {});
    }

    /// Timeouts: slow handshakes, idle connections (ping, then close), and
    /// close handshakes the peer never finishes.
    fn sweep(&mut self, reactor: &mut Reactor) {
        self.net
            .tick(Reactor::now(reactor).max(std::time::Instant::now()));
        let config = &self.net.config;
        let handshake_ms = config.handshake_timeout.as_millis() as u32;
        let idle_ms = config.idle_timeout.as_millis() as u32;
        let close_ms = config.close_timeout.as_millis() as u32;
        let mut expired = Vec::new();
        let now = self.net.now;
        let mut released = 0;
        for (key, conn) in self.net.conns.iter_mut() {
            if !conn.has(flag::RECENT) {
                released += conn.release_buffers();
            }
            conn.flags &= !flag::RECENT;
            let age = now.wrapping_sub(conn.since);
            let action = match conn.phase {
                Phase::Handshake if age >= handshake_ms => Some(Expiry::Handshake),
                Phase::Open if age >= idle_ms => Some(Expiry::Idle),
                Phase::Open if age >= idle_ms / 2 && !conn.has(flag::PING_SENT) => {
                    Some(Expiry::Ping)
                }
                Phase::AwaitingClose | Phase::Flushing if age >= close_ms => Some(Expiry::Close),
                _ => None,
            };
            if let Some(action) = action {
                expired.push((key as u32, action));
            }
        }
        if released >= RELEASE_TRIM_THRESHOLD {
            give_back_free_memory();
        }
        for (key, action) in expired {
            let conn = &self.net.conns[key as usize];
            let (generation, peer) = (conn.generation, conn.peer);
            match action {
                Expiry::Ping => self.net.ping(key),
                Expiry::Handshake => {
                    warn!(
                        "#{generation} from {peer}: no upgrade within the handshake timeout, dropped"
                    );
                    self.net.doom(key, CloseReason::Io(io::ErrorKind::TimedOut));
                }
                Expiry::Idle => {
                    warn!("#{generation} from {peer}: idle timeout, closing");
                    self.net.fail(
                        key,
                        close_code::GOING_AWAY,
                        "idle timeout",
                        CloseReason::Limit(Limit::IdleTimeout),
                        Some(Error::Limit(Limit::IdleTimeout)),
                    );
                }
                Expiry::Close => {
                    debug!("#{generation} from {peer}: close handshake timed out");
                    self.net.doom(key, CloseReason::Limit(Limit::CloseTimeout));
                }
            }
        }
        self.settle(reactor);
    }

    /// A graceful stop: no new connections, 1001 to everyone, and the loop
    /// held until every close handshake finished.
    fn shutdown(&mut self, reactor: &mut Reactor) {
        self.net.tick(reactor.now());
        self.net.shutting_down = true;
        if let Some(mut listener) = self.listener.take() {
            let _ = reactor.registry().deregister(&mut listener);
        }
        let keys: Vec<u32> = self.net.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            let Some(id) = self.net.id(key) else { continue };
            if self.net.conns[key as usize].phase == Phase::Handshake {
                self.net.doom(key, CloseReason::Shutdown);
            } else {
                self.net.close(
                    id,
                    close_code::GOING_AWAY,
                    "server shutdown",
                    CloseReason::Shutdown,
                );
            }
        }
        if !self.net.conns.is_empty() {
            self.holding_stop = true;
            reactor.hold_stop();
        }
        self.settle(reactor);
    }

    /// Drops every remaining connection at once, telling components; for
    /// when the loop has returned and nothing will flush any more.
    pub(crate) fn close_all_now(&mut self, reactor: &mut Reactor) {
        let keys: Vec<u32> = self.net.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.net.doom(key, CloseReason::Shutdown);
        }
        self.settle(reactor);
    }
}

fn request_path(conn: &Connection) -> &str {
    conn.request.as_deref().map_or("", |r| r.path())
}

/// What [`ServerCore::shed_one_connection`] did.
enum Shed {
    /// Accepted and closed one pending connection (or one aborted on its
    /// own): accept again.
    One,
    /// The backlog was empty.
    NothingPending,
    /// No reserve descriptor could be spent or reopened.
    NoReserve,
}

enum Expiry {
    Handshake,
    Ping,
    Idle,
    Close,
}

/// Runs `f` on the server behind `weak`, unless it is gone or busy.
fn with_core(weak: &Weak<RefCell<ServerCore>>, f: impl FnOnce(&mut ServerCore)) {
    if let Some(core) = weak.upgrade() {
        match core.try_borrow_mut() {
            Ok(mut core) => f(&mut core),
            Err(_) => error!("server busy in a callback; reactor task skipped"),
        }
    }
}

/// Calls component `component` with a fresh context; a panic is logged and,
/// when the call was about connection `key`, fails it with 1011.
pub(crate) fn invoke(
    components: &mut [Box<dyn Component>],
    net: &mut Net,
    reactor: &mut Reactor,
    component: u32,
    key: Option<u32>,
    f: impl FnOnce(&mut dyn Component, &mut Context<'_>),
) {
    let Some(target) = components.get_mut(component as usize) else {
        return;
    };
    let mut ctx = Context::new(net, reactor, Some(component));
    let result = catch_unwind(AssertUnwindSafe(|| f(&mut **target, &mut ctx)));
    if let Err(payload) = result {
        let message = panic_message(&*payload);
        error!("component {component} panicked: {message}");
        if let Some(key) = key {
            net.fail(
                key,
                close_code::INTERNAL_ERROR,
                "internal error",
                CloseReason::Panic,
                Some(Error::Panic(message)),
            );
        }
    }
}

fn panic_message(payload: &(dyn Any + Send)) -> String {
    if let Some(s) = payload.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = payload.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Bytes of buffers released in one sweep above which free heap pages are
/// handed back to the kernel.
const RELEASE_TRIM_THRESHOLD: usize = 1 << 20;

/// Returns free heap pages to the kernel. glibc keeps freed small blocks
/// resident; after a burst of traffic leaves thousands of connections idle,
/// this is what makes their released buffers show up as a smaller RSS.
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it has no
    // preconditions and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}

/// EMFILE or ENFILE: the process or the system is out of file descriptors.
/// `io::ErrorKind` has no stable variant for these, hence the errno.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}

/// A running server, for code on the loop thread: the program that started
/// it, a timer, a source of its own.
///
/// Use the [`Context`] a callback receives inside component callbacks;
/// this handle refuses with [`Error::Reentrant`] there.
#[derive(Clone)]
pub struct Server {
    core: Rc<RefCell<ServerCore>>,
    /// Copied out of the core so they can be read from inside callbacks,
    /// while the core is borrowed.
    local_addr: SocketAddr,
    service: usize,
}

impl Server {
    pub(crate) fn new(
        core: Rc<RefCell<ServerCore>>,
        local_addr: SocketAddr,
        service: usize,
    ) -> Server {
        Server {
            core,
            local_addr,
            service,
        }
    }

    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// Runs `f` with a context on this server: send to connections, close
    /// them, set timers.
    pub fn with<R>(
        &self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut Context<'_>) -> R,
    ) -> Result<R> {
        let mut core = self.core.try_borrow_mut().map_err(|_| Error::Reentrant)?;
        core.net.tick(reactor.now());
        let result = {
            let mut ctx = Context::new(&mut core.net, reactor, None);
            f(&mut ctx)
        };
        core.settle(reactor);
        Ok(result)
    }

    /// Runs `f` with the first mounted component of type `C` and a context
    /// for its route: how a program reaches its component's state from
    /// outside the component's own callbacks. `None` if no route has a `C`.
    pub fn with_component<C: Component, R>(
        &self,
        reactor: &mut Reactor,
        f: impl FnOnce(&mut C, &mut Context<'_>) -> R,
    ) -> Result<Option<R>> {
        let mut guard = self.core.try_borrow_mut().map_err(|_| Error::Reentrant)?;
        let core = &mut *guard;
        core.net.tick(reactor.now());
        let found = core.components.iter_mut().enumerate().find_map(|(i, c)| {
            let any: &mut dyn Any = &mut **c;
            any.downcast_mut::<C>().map(|c| (i, c))
        });
        let result = found.map(|(index, component)| {
            let mut ctx = Context::new(&mut core.net, reactor, Some(index as u32));
            f(component, &mut ctx)
        });
        core.settle(reactor);
        Ok(result)
    }

    /// A `Send` handle for other threads.
    pub fn handle(&self, reactor: &Reactor) -> ServerHandle {
        ServerHandle::new(reactor.handle(), self.service)
    }

    /// Number of connections, including those still in the handshake.
    /// Inside a callback use [`Context::connections`] instead.
    pub fn connection_count(&self) -> Result<usize> {
        let core = self.core.try_borrow().map_err(|_| Error::Reentrant)?;
        Ok(core.net.conns.len())
    }

    /// Drops every connection now (components get `on_close` with
    /// [`CloseReason::Shutdown`]). [`App::run`](crate::App::run) calls this
    /// after the loop returns, so no connection leaves without `on_close`.
    pub fn close_all_now(&self, reactor: &mut Reactor) -> Result<()> {
        let mut core = self.core.try_borrow_mut().map_err(|_| Error::Reentrant)?;
        core.close_all_now(reactor);
        Ok(())
    }
}

impl fmt::Debug for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Server")
            .field("local_addr", &self.local_addr)
            .field("connections", &self.connection_count().ok())
            .finish()
    }
}

/// A `Send + Clone` handle to a server, for other threads: send to
/// connections or run code on the loop. Never blocks: when the loop's queue
/// is full the call fails with [`ScheduleError::Full`].
#[derive(Debug, Clone)]
pub struct ServerHandle {
    reactor: Handle,
    service: usize,
}

impl ServerHandle {
    pub(crate) fn new(reactor: Handle, service: usize) -> Self {
        ServerHandle { reactor, service }
    }

    /// Runs `f` on the loop with a context on this server.
    pub fn run(
        &self,
        f: impl FnOnce(&mut Context<'_>) + Send + 'static,
    ) -> Result<(), ScheduleError> {
        let service = self.service;
        self.reactor.schedule(move |reactor| {
            let Some(server) = reactor.service(service) else {
                return;
            };
            let Ok(core) = server.downcast::<RefCell<ServerCore>>() else {
                return;
            };
            let local_addr = core.borrow().local_addr;
            let server = Server::new(core, local_addr, service);
            // A panicking task must not take the loop down with it.
            match catch_unwind(AssertUnwindSafe(|| server.with(reactor, f))) {
                Ok(Ok(())) => {}
                Ok(Err(e)) => error!("cross-thread task: {e}"),
                Err(payload) => error!("cross-thread task panicked: {}", panic_message(&*payload)),
            }
        })
    }

    /// Sends a message to a connection.
    pub fn send(&self, conn: ConnId, message: OwnedMessage) -> Result<(), ScheduleError> {
        self.run(move |ctx| {
            let _ = ctx.send(conn, message.as_message());
        })
    }

    /// Asks the whole loop to stop gracefully.
    pub fn stop(&self) -> Result<(), ScheduleError> {
        self.reactor.stop()
    }
}
