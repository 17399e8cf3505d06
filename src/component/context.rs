//! [`Context`]: what a callback can do. It writes straight into buffers
//! the loop owns; nothing goes through a channel.

use std::any::Any;
use std::cell::{Cell, RefCell};
use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use super::Component;
use super::session::Sessions;
use crate::close::{CloseCode, CloseReason};
use crate::connection::{ConnId, Net, Phase, SendStatus};
use crate::frame::encode;
use crate::guard;
use crate::handles::{Route, Server, ServerHandle};
use crate::http::HttpRequest;
use crate::message::{Message, Prepared, PreparedMessage};
use crate::reactor::{LoopHandle, TimerId};
use crate::stats::Stats;

/// Handed to every [`Component`] callback as `Context<'_, Self>`, and to
/// code that reaches a server or a route from outside its callbacks
/// ([`Server::with`] gives a `Context<'_>` on the whole server): sends,
/// closes, connection details, sessions, timers, the loop.
///
/// Sends are queued into the connection's buffer and written once the
/// callback returns (replies to a read right after it, everything else at
/// the end of the loop turn): one `write` per connection for all of it.
pub struct Context<'a, C = ()> {
    net: &'a mut Net,
    lp: &'a mut LoopHandle,
    server: Server,
    /// The route whose component this context serves, if any.
    route: Option<u32>,
    /// That route's `Sessions<C::Session>`.
    sessions: Option<&'a mut dyn Any>,
    _component: PhantomData<fn(&mut C)>,
}

impl<'a, C> Context<'a, C> {
    pub(crate) fn new(
        net: &'a mut Net,
        lp: &'a mut LoopHandle,
        server: Server,
        route: Option<(u32, &'a mut dyn Any)>,
    ) -> Self {
        let (route, sessions) = match route {
            Some((index, sessions)) => (Some(index), Some(sessions)),
            None => (None, None),
        };
        Context {
            net,
            lp,
            server,
            route,
            sessions,
            _component: PhantomData,
        }
    }

    /// Sends a message: text from `&str`/`&String`, binary from
    /// `&[u8]`/`&Vec<u8>`, or any [`Message`]. See [`SendStatus`] for what
    /// the result means.
    pub fn send<'m>(&mut self, conn: ConnId, message: impl Into<Message<'m>>) -> SendStatus {
        let message = message.into();
        self.net
            .send_message(conn, message.is_text(), message.as_bytes())
    }

    /// Encodes a message once, to send it to many connections with
    /// [`Context::send_prepared`].
    pub fn prepare<'m>(&mut self, message: impl Into<Message<'m>>) -> PreparedMessage {
        let message = message.into();
        let mut frame = Vec::new();
        encode::message(&mut frame, message.is_text(), message.as_bytes());
        PreparedMessage {
            inner: Rc::new(Prepared::new(
                frame,
                message.is_text(),
                message.as_bytes().len(),
            )),
        }
    }

    /// Sends a message encoded by [`Context::prepare`].
    pub fn send_prepared(&mut self, conn: ConnId, message: &PreparedMessage) -> SendStatus {
        self.net.send_prepared(conn, &message.inner)
    }

    /// Sends one message to many connections, encoding it once. Returns how
    /// many connections took it (not closed, not over their limit).
    pub fn broadcast<'m>(
        &mut self,
        conns: impl IntoIterator<Item = ConnId>,
        message: impl Into<Message<'m>>,
    ) -> usize {
        self.net.fan_out(conns, message.into())
    }

    /// Sends one message, encoded once, to every open connection of this
    /// context's route (of every route, in a context on the whole server).
    /// Returns how many took it.
    pub fn broadcast_route<'m>(&mut self, message: impl Into<Message<'m>>) -> usize {
        let route = self.route;
        self.broadcast_to(|net, targets| targets.extend(net.open_on(route)), message)
    }

    /// [`Context::broadcast`] to the targets `fill` lists, in a vector the
    /// table lends (no allocation per fan-out).
    fn broadcast_to<'m>(
        &mut self,
        fill: impl FnOnce(&Net, &mut Vec<ConnId>),
        message: impl Into<Message<'m>>,
    ) -> usize {
        let targets = self.net.lend_targets(fill);
        let sent = self.broadcast(targets.iter().copied(), message);
        self.net.recycle_targets(targets);
        sent
    }

    /// Subscribes an open connection to topic `topic`; false if it already
    /// was, or is not open. Subscriptions end with the connection. With a
    /// broker ([`App::broker`](crate::App::broker)), a topic's first local
    /// subscriber makes this node listen to the other nodes' publishes.
    pub fn subscribe(&mut self, conn: ConnId, topic: &str) -> bool {
        if !self.is_open(conn) {
            return false;
        }
        let Net { topics, broker, .. } = &mut *self.net;
        topics.subscribe(conn, topic, || {
            if let Some(broker) = broker {
                broker.subscribe(topic);
            }
        })
    }

    /// Ends a subscription; false if there was none.
    pub fn unsubscribe(&mut self, conn: ConnId, topic: &str) -> bool {
        let Net { topics, broker, .. } = &mut *self.net;
        topics.unsubscribe(conn, topic, |topic| {
            if let Some(broker) = broker {
                broker.unsubscribe(topic);
            }
        })
    }

    /// This context's route watches `topic`: what other nodes publish on
    /// it comes to the component's
    /// [`on_remote_publish`](Component::on_remote_publish) (after the
    /// topic's subscribers here got it), so state the component keeps about
    /// a topic can follow the topic's traffic. A watch counts as a
    /// subscription for the broker: this node listens to the topic's
    /// channel while it is watched. Publishes made on this node are not
    /// told to watchers. False if the route already watched it, or this
    /// context is on no route.
    pub fn watch(&mut self, topic: &str) -> bool {
        let Some(route) = self.route else {
            return false;
        };
        let Net { topics, broker, .. } = &mut *self.net;
        topics.watch(route, topic, || {
            if let Some(broker) = broker {
                broker.subscribe(topic);
            }
        })
    }

    /// Ends this route's watch of `topic`; false if there was none.
    pub fn unwatch(&mut self, topic: &str) -> bool {
        let Some(route) = self.route else {
            return false;
        };
        let Net { topics, broker, .. } = &mut *self.net;
        topics.unwatch(route, topic, |topic| {
            if let Some(broker) = broker {
                broker.unsubscribe(topic);
            }
        })
    }

    /// Sends one message, encoded once, to every subscriber of `topic` on
    /// this server, and, with a broker, on every node sharing its Redis.
    /// Returns how many local subscribers took it.
    pub fn publish<'m>(&mut self, topic: &str, message: impl Into<Message<'m>>) -> usize {
        let message = message.into();
        if let Some(broker) = &self.net.broker {
            broker.publish(topic, message);
        }
        self.publish_here(topic, message)
    }

    /// [`Context::publish`] to this server's subscribers only: how another
    /// node's publish is delivered here.
    pub(crate) fn publish_here(&mut self, topic: &str, message: Message<'_>) -> usize {
        self.broadcast_to(
            |net, targets| net.topics.members_into(topic, targets),
            message,
        )
    }

    /// How many publishes made on this server reached only its own
    /// subscribers, since it started, because the broker
    /// ([`App::broker`](crate::App::broker)) could not reach Redis when
    /// they were made: the cross-node loss of an at-most-once broker. 0
    /// without a broker. (Another node's publish missed while this node's
    /// Redis subscription was down is not seen here, and not counted.)
    pub fn lost_publishes(&self) -> u64 {
        self.net.broker.as_ref().map_or(0, |b| b.lost())
    }

    /// True while this server's link to the other nodes is up (its
    /// broker's Redis connections are both ready), so that a publish
    /// reaches them now; always true without a broker. See
    /// [`Component::on_topics_connected`](crate::Component::on_topics_connected)
    /// for what to do when it comes back.
    pub fn topics_connected(&self) -> bool {
        self.net.broker.as_ref().is_none_or(|b| b.is_connected())
    }

    /// How many connections of this server subscribe to `topic`.
    pub fn subscribers(&self, topic: &str) -> usize {
        self.net.topics.count(topic)
    }

    /// The topics a connection subscribes to.
    pub fn topics(&self, conn: ConnId) -> impl Iterator<Item = &str> + '_ {
        self.net.topics.of(conn)
    }

    /// Starts the close handshake with `code` and `reason` (cut to fit a
    /// control frame). `on_close` follows once the peer answers or the close
    /// timeout passes.
    pub fn close(&mut self, conn: ConnId, code: CloseCode, reason: &str) {
        self.net.close(
            conn,
            code.get(),
            reason,
            CloseReason::Server {
                code,
                reason: reason.to_owned(),
            },
        );
    }

    /// True while the connection is open for messages.
    pub fn is_open(&self, conn: ConnId) -> bool {
        self.net.get(conn).is_some_and(|c| c.phase == Phase::Open)
    }

    /// The client's address: the TCP peer's, or, when the peer is one of
    /// the [`trusted_proxies`](crate::ServerConfig::trusted_proxies), the
    /// client its `X-Forwarded-For` names (port 0 unless the header gave
    /// one). [`Context::peer_addr`] is the TCP peer either way.
    pub fn remote_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.net.get(conn).map(|c| self.net.client_addr(c))
    }

    /// The TCP peer's address: the proxy's, behind a reverse proxy.
    pub fn peer_addr(&self, conn: ConnId) -> Option<SocketAddr> {
        self.net.get(conn).map(|c| c.peer)
    }

    /// The HTTP request the connection upgraded from: path, query, headers.
    pub fn request(&self, conn: ConnId) -> Option<&HttpRequest> {
        self.net.get(conn)?.request.as_deref()
    }

    /// Bytes queued for the connection and not yet written to the socket.
    pub fn buffered_amount(&self, conn: ConnId) -> usize {
        self.net.get(conn).map_or(0, |c| c.unsent())
    }

    /// A snapshot of the whole server's counters (every route's).
    pub fn stats(&self) -> Stats {
        self.net.stats()
    }

    /// The open connections of this context's route (of every route, in a
    /// context on the whole server).
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        self.net.open_on(self.route)
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.lp.cancel_timer(timer)
    }

    /// The loop: add timers and sources, defer work, reach other routes,
    /// stop. (It cannot turn the loop: this callback is part of a turn.)
    pub fn event_loop(&mut self) -> &mut LoopHandle {
        self.lp
    }

    /// This server's key, for later use on the loop thread.
    pub fn server(&self) -> Server {
        self.server
    }

    /// A `Send` handle to this server for other threads.
    pub fn handle(&self) -> ServerHandle {
        self.server.handle(self.lp)
    }
}

impl<C: Component> Context<'_, C> {
    /// The key of this context's route, to reach its component later from
    /// a timer, a source, a Redis reply or another thread.
    pub fn route(&self) -> Route<C> {
        // Every Context<C: Component> is made for a route.
        Route::new(self.server.app, self.route.unwrap_or(u32::MAX))
    }

    /// The session of another connection of this route. `None` if the
    /// connection is gone, is on another route, or is the one whose
    /// callback is running (its session is the callback's argument).
    pub fn session(&mut self, conn: ConnId) -> Option<&mut C::Session> {
        let key = self.session_key(conn)?;
        self.sessions()?.get_mut(key)
    }

    /// Runs `f` with this context and the session of another connection of
    /// this route, lent out for the call (so `f` can send and close while
    /// it holds the session). `None` when [`Context::session`] would be.
    pub fn with_session<R>(
        &mut self,
        conn: ConnId,
        f: impl FnOnce(&mut Self, &mut C::Session) -> R,
    ) -> Option<R> {
        let key = self.session_key(conn)?;
        let mut session = self.sessions()?.take(key)?;
        // The session goes back even if `f` panics; the panic then goes on
        // to the guard around the callback that called this.
        let result = guard::catch(|| f(self, &mut session));
        if let Some(sessions) = self.sessions() {
            sessions.put_back(key, session);
        }
        match result {
            Ok(result) => Some(result),
            Err(guard::Panicked(message)) => std::panic::resume_unwind(Box::new(message)),
        }
    }

    /// The key of `conn`'s session, if it is a connection of this route.
    fn session_key(&self, conn: ConnId) -> Option<u32> {
        let conn = self.net.get(conn)?;
        (Some(conn.component()) == self.route).then_some(conn.session)
    }

    /// This route's sessions (always there in a context made for a route).
    fn sessions(&mut self) -> Option<&mut Sessions<C::Session>> {
        self.sessions.as_mut()?.downcast_mut()
    }

    /// Calls `f` with this component once, `after` from now.
    pub fn set_timer(
        &mut self,
        after: Duration,
        f: impl FnOnce(&mut C, &mut Context<'_, C>) + 'static,
    ) -> TimerId {
        let route = self.route();
        self.lp.add_timer(after, move |lp| {
            lp.with(route, f);
        })
    }

    /// Calls `f` with this component every `period` until
    /// [`Context::cancel_timer`], or until `f` panics (the panic is logged
    /// with the route and the timer cancelled, as the loop does with its
    /// own periodic timers).
    pub fn set_periodic(
        &mut self,
        period: Duration,
        f: impl FnMut(&mut C, &mut Context<'_, C>) + 'static,
    ) -> TimerId {
        let route = self.route();
        // Each firing hands `lp.with` a closure of its own, which may run
        // later than the firing if the component is lent out: they share
        // `f`, and share word of a panic with the timer.
        let f = Rc::new(RefCell::new(f));
        let panicked = Rc::new(Cell::new(false));
        let id = Rc::new(Cell::new(None));
        let timer = Rc::clone(&id);
        let timer_id = self.lp.add_periodic(period, move |lp| {
            if panicked.get() {
                if let Some(id) = timer.get() {
                    lp.cancel_timer(id);
                }
                return;
            }
            let (f, panicked) = (Rc::clone(&f), Rc::clone(&panicked));
            lp.with(route, move |component, ctx| {
                let mut f = f.borrow_mut();
                if let Err(guard::Panicked(message)) = guard::catch(|| f(component, ctx)) {
                    panicked.set(true);
                    // On to the guard around this call, which logs it.
                    std::panic::resume_unwind(Box::new(message));
                }
            });
        });
        id.set(Some(timer_id));
        timer_id
    }
}

impl<C> fmt::Debug for Context<'_, C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("server", &self.server.local_addr)
            .field("route", &self.route)
            .field("connections", &self.net.conns.len())
            .finish()
    }
}
