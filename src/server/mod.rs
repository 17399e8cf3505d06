//! The WebSocket server on the loop: accepting, reading, handshakes,
//! frames, timeouts and shutdown.
//!
//! The loop owns each server ([`ServerCore`], a [`Handler`] in its slab)
//! and lends it out for each event, timer and tick: nothing else holds it,
//! and nothing it holds points back at its owner. All of a server's sockets
//! report to that one slot: the listener has the slot's plain token and
//! each connection a sub-token carrying its key in the connection table,
//! so there is no per-connection closure.
//!
//! - `accept.rs`: the listener, the connection limit, running out of
//!   descriptors.
//! - `input.rs`: reading, the upgrade, frames dispatched to components.
//! - `lifecycle.rs`: timeouts, pings, graceful shutdown.
//! - `routes.rs`: components behind a type-erased trait; how a `Route<C>`
//!   reaches one.
//! - `handle.rs`: what [`Server`] and [`ServerHandle`] do.

use std::any::Any;
use std::io;
use std::rc::Rc;
use std::sync::Arc;

use log::{debug, info};
use mio::event::Event;
use mio::net::TcpListener;
use mio::{Interest, Registry, Token};

use crate::close::CloseReason;
use crate::component::Context;
use crate::config::ServerConfig;
use crate::connection::{ConnId, Net, Pending, Phase, flag};
use crate::error::{Error, Result};
use crate::frame::close_code;
use crate::guard::{self, Panicked};
use crate::handles::{AppId, Server};
use crate::http::{HttpRequest, HttpResponse};
use crate::reactor::{Handler, LoopHandle, PostAction, SourceKey, sub_key};
use crate::router::Router;
use crate::topics::{Broker, Connected, Deliver};

mod accept;
mod handle;
mod input;
mod lifecycle;
mod routes;

use accept::Acceptor;
pub(crate) use routes::{Endpoint, Env, Mounted};

/// The loop's shared read buffer: every connection reads into it, so an idle
/// connection needs none of its own.
const READ_BUFFER: usize = 64 << 10;

/// Bytes one connection may read per wakeup before others get a turn.
const READ_BUDGET: usize = 1 << 20;

/// How many flush/callback rounds one tick runs before yielding to the poll.
const MAX_SETTLE_ROUNDS: usize = 16;

/// A `POST` route's check of a request head: `Some` refuses it.
pub(crate) type PostCheck = Box<dyn FnMut(&HttpRequest) -> Option<HttpResponse>>;

/// A `POST` route's handler of a whole request.
pub(crate) type PostHandler = Box<dyn FnMut(&mut Context<'_>, &HttpRequest, &[u8]) -> HttpResponse>;

/// A `POST` route ([`App::post_checked`](crate::App::post_checked)): its
/// check of the request head, then its handler of the whole request.
pub(crate) struct PostRoute {
    pub(crate) check: PostCheck,
    pub(crate) handle: PostHandler,
}

/// A server's state. The loop owns it and lends it to each dispatch.
pub(crate) struct ServerCore {
    net: Net,
    routes: Vec<Box<dyn Endpoint>>,
    /// The `POST` routes, by the index their route names.
    posts: Vec<PostRoute>,
    router: Router,
    read_buf: Box<[u8]>,
    acceptor: Acceptor,
    /// Its own key and address, handed to contexts.
    server: Server,
    /// Keys whose read budget ran out with data left.
    resume: Vec<u32>,
    /// A graceful stop of the loop waits for this server.
    holding_stop: bool,
    /// [`Server::stop`] was called: leave the loop once every connection is gone.
    leaving: bool,
}

/// What an app hands the loop to start a server with.
pub(crate) struct Setup {
    pub(crate) listener: TcpListener,
    pub(crate) router: Router,
    pub(crate) routes: Vec<Box<dyn Endpoint>>,
    pub(crate) posts: Vec<PostRoute>,
    pub(crate) config: ServerConfig,
    /// Set for `wss://`.
    pub(crate) tls: Option<Arc<rustls::ServerConfig>>,
    pub(crate) app: AppId,
    /// Redis URL of the topics broker, if any.
    pub(crate) broker: Option<String>,
}

impl ServerCore {
    /// Starts serving `setup.listener` on the loop.
    pub(crate) fn start(lp: &mut LoopHandle, setup: Setup) -> Result<Server> {
        let Setup {
            mut listener,
            router,
            routes,
            posts,
            config,
            tls,
            app,
            broker,
        } = setup;
        config.validate()?;
        let local_addr = listener.local_addr()?;
        let broker = match broker {
            Some(url) => Some(connect_broker(lp, &url, app)?),
            None => None,
        };
        let sweep_every = config.sweep_interval();
        let key = lp.insert_with(|id, registry| {
            registry.register(&mut listener, id.token(), Interest::READABLE)?;
            let mut net = Net::new(config, id);
            net.broker = broker;
            // Reserve the table for every connection the config allows: the
            // untouched part costs address space, not memory, and the table
            // never doubles (which would leave half of it resident and idle).
            net.conns.reserve(net.config.max_connections.min(1 << 20));
            Ok(ServerCore {
                net,
                routes,
                posts,
                router,
                read_buf: vec![0; READ_BUFFER].into_boxed_slice(),
                acceptor: Acceptor::new(listener, tls),
                server: Server {
                    id,
                    local_addr,
                    app,
                },
                resume: Vec::new(),
                holding_stop: false,
                leaving: false,
            })
        })?;
        lp.name_slot(app.0, key.id());
        arm_sweep(lp, key, sweep_every);
        lp.add_tick_hook(move |lp| lp.with_source(key, |core, lp| core.end_of_turn(lp)));
        lp.add_stop_hook(move |lp| {
            lp.with_source(key, |core, lp| core.shutdown(lp));
        });
        Ok(Server {
            id: key.id(),
            local_addr,
            app,
        })
    }

    fn ready(&mut self, lp: &mut LoopHandle, event: &Event) {
        self.net.tick(lp.now());
        match sub_key(event.token()) {
            None => {
                if let Err(e) = self.acceptor.accept_all(&mut self.net, lp.registry()) {
                    log::error!("{}: the listener failed ({e}); stopping", self.server);
                    self.leave(lp);
                }
            }
            Some(key) => {
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    let drain_fully = event.is_read_closed() || event.is_error();
                    self.read_ready(lp, key, drain_fully);
                }
                if event.is_writable() {
                    self.net.flush(key);
                }
            }
        }
        self.settle(lp);
    }

    /// Calls route `component`'s endpoint; a panic fails connection `key`
    /// (when the call was about one) with 1011.
    fn call(
        &mut self,
        lp: &mut LoopHandle,
        component: u32,
        key: Option<u32>,
        f: impl FnOnce(&mut dyn Endpoint, Env<'_>) -> Result<(), Panicked>,
    ) {
        invoke(
            &mut self.routes,
            &mut self.net,
            lp,
            self.server,
            component,
            key,
            f,
        );
    }

    /// Calls `POST` route `handler` with a context on the whole server; a
    /// panic is logged and answered with 500.
    fn call_post(
        &mut self,
        lp: &mut LoopHandle,
        handler: usize,
        request: &HttpRequest,
        body: &[u8],
    ) -> HttpResponse {
        let Some(route) = self.posts.get_mut(handler) else {
            return HttpResponse::text(404, "no route for this path\n");
        };
        let server = self.server;
        let mut ctx = Context::new(&mut self.net, lp, server, None);
        let what = format_args!("HTTP route POST {}", request.path());
        guard::call(&what, || (route.handle)(&mut ctx, request, body))
            .unwrap_or_else(|_| HttpResponse::text(500, "internal server error\n"))
    }

    /// Asks `POST` route `handler` whether to read the body of `request`:
    /// `Some` refuses it with that response (500 if the check panics).
    fn check_post(&mut self, handler: usize, request: &HttpRequest) -> Option<HttpResponse> {
        let Some(route) = self.posts.get_mut(handler) else {
            return Some(HttpResponse::text(404, "no route for this path\n"));
        };
        let what = format_args!("HTTP route POST {} (its check)", request.path());
        guard::call(&what, || (route.check)(request))
            .unwrap_or_else(|_| Some(HttpResponse::text(500, "internal server error\n")))
    }

    /// Drops doomed connections and delivers owed callbacks until none are
    /// left.
    pub(crate) fn settle(&mut self, lp: &mut LoopHandle) {
        loop {
            if let Some(key) = self.net.doomed.pop() {
                self.finish(lp, key);
                continue;
            }
            let Some(pending) = self.net.pending.pop_front() else {
                break;
            };
            match pending {
                Pending::Error {
                    conn,
                    component,
                    session,
                    error,
                } => self.call(lp, component, None, |c, env| {
                    c.error(env, conn, session, &error)
                }),
                Pending::Close {
                    conn,
                    component,
                    session,
                    reason,
                } => self.call(lp, component, None, |c, env| {
                    c.close(env, conn, session, &reason)
                }),
                Pending::Drain {
                    conn,
                    component,
                    session,
                } => self.call(lp, component, Some(conn.key), |c, env| {
                    c.drain(env, conn, session)
                }),
            }
        }
    }

    /// Drops a connection: deregisters it, and owes `on_close` if it opened.
    fn finish(&mut self, lp: &mut LoopHandle, key: u32) {
        // No explicit deregister: closing the descriptor (when `conn` drops
        // below) takes it out of the epoll set, since it is never duplicated.
        // That is one epoll_ctl fewer per connection.
        let Some(mut conn) = self.net.conns.try_remove(key as usize) else {
            return;
        };
        let component = conn.component();
        let id = ConnId {
            key,
            generation: conn.generation,
        };
        if conn.flags & flag::DEFLATE != 0 {
            self.net.codecs.close(key);
        }
        self.net.forget_unsent(conn.unsent_owned());
        let Net { topics, broker, .. } = &mut self.net;
        topics.leave_all(id, |topic| {
            if let Some(broker) = broker {
                broker.unsubscribe(topic);
            }
        });
        let reason = conn
            .take_reason()
            .unwrap_or(CloseReason::Io(io::ErrorKind::UnexpectedEof));
        if conn.request.is_some() {
            self.net.stats.closed.count(&reason);
        } else if conn.phase == Phase::Handshake {
            self.net.stats.handshakes_dropped += 1;
        }
        if conn.flags & flag::OPENED != 0 {
            debug!("{id} from {} closed: {reason}", conn.peer);
            self.net.pending.push_back(Pending::Close {
                conn: id,
                component,
                session: conn.session,
                reason,
            });
        }
        if self.net.conns.is_empty() {
            if self.holding_stop {
                self.holding_stop = false;
                lp.release_stop();
            }
            self.leave_if_done(lp);
        }
    }

    /// Leaves the loop once [`Server::stop`] was asked and the last
    /// connection is gone. The settle that is running (or the caller's)
    /// still delivers the last `on_close` calls: the loop holds this server
    /// until the current call returns.
    fn leave_if_done(&mut self, lp: &mut LoopHandle) {
        if self.leaving && self.net.conns.is_empty() && lp.remove(self.server.id) {
            info!("{} stopped", self.server);
        }
    }

    /// Flushes every connection with output, and delivers what that causes.
    fn end_of_turn(&mut self, lp: &mut LoopHandle) {
        self.net.tick(lp.now());
        for key in std::mem::take(&mut self.resume) {
            self.read_ready(lp, key, false);
        }
        for _ in 0..MAX_SETTLE_ROUNDS {
            self.settle(lp);
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
        self.settle(lp);
        lp.defer(|_| {});
    }

    /// The key of the server that serves app `app`, while it is on the loop.
    fn key_of(lp: &LoopHandle, app: AppId) -> Option<SourceKey<ServerCore>> {
        lp.named(app.0).map(SourceKey::assume)
    }
}

impl Handler for ServerCore {
    fn ready(&mut self, event: &Event, lp: &mut LoopHandle) -> PostAction {
        ServerCore::ready(self, lp, event);
        PostAction::Continue
    }

    fn reregister(&mut self, _: &Registry, _: Token, _: Interest) -> io::Result<()> {
        Err(io::Error::new(
            io::ErrorKind::Unsupported,
            "a server manages its own registrations",
        ))
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        // Connections leave the poll when their sockets close, as they drop.
        self.acceptor.close(registry);
        Ok(())
    }

    fn describe(&self) -> String {
        self.server.to_string()
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// Connects the topics broker of app `app`: other nodes' publishes reach
/// the subscribers of the server serving it, then the routes watching.
fn connect_broker(lp: &mut LoopHandle, url: &str, app: AppId) -> Result<Broker> {
    let deliver: Deliver = Rc::new(move |lp, topic, message| {
        let delivered = ServerCore::key_of(lp, app).and_then(|key| {
            lp.try_with_source(key, |core, lp| {
                core.call_server(lp, |ctx| ctx.publish_here(topic, message));
                core.tell_watchers(lp, topic, message);
            })
        });
        if delivered.is_none() {
            log::warn!("topics: a message on {topic:?} from another node found no server");
        }
    });
    let connected: Connected = Rc::new(move |lp| {
        if let Some(key) = ServerCore::key_of(lp, app) {
            lp.try_with_source(key, |core, lp| core.tell_topics_connected(lp));
        }
    });
    Broker::connect(lp, url, deliver, connected)
        .map_err(|e| Error::Config(format!("topics broker at {url}: {e}")))
}

/// Sweeps every `every` while the server exists (a one-shot timer that
/// re-arms itself, so it ends with the server).
fn arm_sweep(lp: &mut LoopHandle, key: SourceKey<ServerCore>, every: std::time::Duration) {
    lp.add_timer(every, move |lp| {
        if lp.with_source(key, |core, lp| core.sweep(lp)) {
            arm_sweep(lp, key, every);
        }
    });
}

/// Calls route `component`'s endpoint with an [`Env`]; a panic (already
/// logged by the guard) fails connection `key`, when the call was about
/// one, with 1011.
pub(crate) fn invoke(
    routes: &mut [Box<dyn Endpoint>],
    net: &mut Net,
    lp: &mut LoopHandle,
    server: Server,
    component: u32,
    key: Option<u32>,
    f: impl FnOnce(&mut dyn Endpoint, Env<'_>) -> Result<(), Panicked>,
) {
    let Some(endpoint) = routes.get_mut(component as usize) else {
        return;
    };
    let env = Env {
        net: &mut *net,
        lp,
        server,
        index: component,
    };
    if let (Err(Panicked(message)), Some(key)) = (f(&mut **endpoint, env), key) {
        net.fail(
            key,
            close_code::INTERNAL_ERROR,
            "internal error",
            CloseReason::Panic,
            Some(Error::Panic(message)),
        );
    }
}
