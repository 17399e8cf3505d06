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
use crate::connection::{Connection, Net, Pending, Phase, RETAINED_BUFFER, flag, lend_out};
use crate::context::Context;
use crate::error::{Error, Limit, Result};
use crate::frame::close_code;
use crate::frame::decode::{Incoming, Limits};
use crate::handshake::{self, Outcome};
use crate::reactor::{Handle, PostAction, Reactor, ScheduleError, TimerId, sub_key};
use crate::router::Router;
use crate::transport::Transport;

mod accept;
mod handle;
mod input;
mod lifecycle;

pub use handle::{Server, ServerHandle};

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

    /// Drops doomed connections and delivers owed callbacks until none are
    /// left.
    pub(crate) fn settle(&mut self, reactor: &mut Reactor) {
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
                // A connection flushed right after its read is listed but no
                // longer dirty.
                self.net.flush_if_dirty(key);
            }
        }
        // Callbacks keep producing output: come back right after the poll.
        self.settle(reactor);
        reactor.defer(|_| {});
    }
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
