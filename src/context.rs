//! [`Context`]: what a component callback can do. It writes straight into
//! buffers the loop owns; nothing goes through a channel.

use std::cell::Cell;
use std::fmt;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Duration;

use log::warn;
use tungstenite::protocol::frame::coding::CloseCode;

use crate::component::{CloseReason, ConnId, Message, PreparedMessage, SendStatus};
use crate::connection::{Net, Pending, Phase};
use crate::frame::{close_code, encode};
use crate::http::HttpRequest;
use crate::reactor::{Reactor, TimerId};
use crate::server::{Server, ServerHandle};

/// Handed to every [`Component`](crate::Component) callback (and to
/// [`Server::with`]): sends, closes, connection details, timers.
///
/// Sends are queued into the connection's buffer and written at the end of
/// the loop turn, all of a turn's output to a socket in one `write`.
pub struct Context<'a> {
    net: &'a mut Net,
    reactor: &'a mut Reactor,
    /// The component whose callback this is, for timers and `connections`.
    component: Option<u32>,
}

impl<'a> Context<'a> {
    pub(crate) fn new(net: &'a mut Net, reactor: &'a mut Reactor, component: Option<u32>) -> Self {
        Context {
            net,
            reactor,
            component,
        }
    }

    /// Sends a message. See [`SendStatus`] for what the result means.
    pub fn send<'m>(&mut self, conn: ConnId, message: impl Into<Message<'m>>) -> SendStatus {
        match message.into() {
            Message::Text(text) => self.net.send_message(conn, true, text.as_bytes()),
            Message::Binary(bytes) => self.net.send_message(conn, false, bytes),
        }
    }

    /// Sends a text message.
    pub fn send_text(&mut self, conn: ConnId, text: &str) -> SendStatus {
        self.net.send_message(conn, true, text.as_bytes())
    }

    /// Sends a binary message.
    pub fn send_binary(&mut self, conn: ConnId, bytes: &[u8]) -> SendStatus {
        self.net.send_message(conn, false, bytes)
    }

    /// Encodes a message once, to send it to many connections with
    /// [`Context::send_prepared`].
    pub fn prepare<'m>(&mut self, message: impl Into<Message<'m>>) -> PreparedMessage {
        let message = message.into();
        let mut frame = Vec::new();
        encode::message(&mut frame, message.is_text(), message.as_bytes());
        PreparedMessage {
            frame: frame.into(),
        }
    }

    /// Sends a message encoded by [`Context::prepare`].
    pub fn send_prepared(&mut self, conn: ConnId, message: &PreparedMessage) -> SendStatus {
        self.net.send_frame(conn, &message.frame)
    }

    /// Sends one message to many connections, encoding it once. Returns how
    /// many connections took it (not closed, not over their limit).
    pub fn broadcast<'m>(
        &mut self,
        conns: impl IntoIterator<Item = ConnId>,
        message: impl Into<Message<'m>>,
    ) -> usize {
        let message = message.into();
        let mut frame = std::mem::take(&mut self.net.scratch);
        frame.clear();
        encode::message(&mut frame, message.is_text(), message.as_bytes());
        let sent = conns
            .into_iter()
            .filter(|&conn| self.net.send_frame(conn, &frame) != SendStatus::Dropped)
            .count();
        self.net.scratch = frame;
        sent
    }

    /// Starts the close handshake with `code` and `reason` (cut to fit a
    /// control frame). `on_close` follows once the peer answers or the close
    /// timeout passes. Codes RFC 6455 does not allow on the wire (below
    /// 1000, 1004 to 1006, 1015 to 2999, 5000 and up) become 1000.
    pub fn close(&mut self, conn: ConnId, code: u16, reason: &str) {
        let code = if CloseCode::from(code).is_allowed() {
            code
        } else {
            close_code::NORMAL
        };
        self.net.close(
            conn,
            code,
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

    /// The open connections of this callback's route (of every route in a
    /// context from [`Server::with`]).
    pub fn connections(&self) -> impl Iterator<Item = ConnId> + '_ {
        let component = self.component;
        self.net.conns.iter().filter_map(move |(key, c)| {
            let on_route = component.is_none_or(|comp| c.component == comp);
            (c.phase == Phase::Open && on_route).then_some(ConnId {
                key: key as u32,
                generation: c.generation,
            })
        })
    }

    /// Calls this component's [`on_timer`](crate::Component::on_timer) once,
    /// `after` from now.
    pub fn set_timer(&mut self, after: Duration) -> TimerId {
        let (cell, fire) = self.timer_callback();
        let id = self.reactor.add_timer(after, fire);
        cell.set(Some(id));
        id
    }

    /// Calls this component's [`on_timer`](crate::Component::on_timer) every
    /// `period` until [`Context::cancel_timer`].
    pub fn set_periodic(&mut self, period: Duration) -> TimerId {
        let (cell, mut fire) = self.timer_callback();
        let id = self.reactor.add_periodic(period, move |r| fire(r));
        cell.set(Some(id));
        id
    }

    /// Cancels a timer; false if it already fired or was cancelled.
    pub fn cancel_timer(&mut self, timer: TimerId) -> bool {
        self.reactor.cancel_timer(timer)
    }

    #[allow(clippy::type_complexity)]
    fn timer_callback(
        &self,
    ) -> (
        Rc<Cell<Option<TimerId>>>,
        impl FnMut(&mut Reactor) + 'static,
    ) {
        // The reactor hands out the id only after the callback exists, so
        // the callback reads it from a cell filled in right after.
        let cell = Rc::new(Cell::new(None));
        let id_cell = Rc::clone(&cell);
        let weak = self.net.this.clone();
        let component = self.component;
        if component.is_none() {
            warn!(
                "a timer set outside a component's callback reaches no component; use Server::with_component"
            );
        }
        let fire = move |reactor: &mut Reactor| {
            let (Some(timer), Some(component), Some(core)) =
                (id_cell.get(), component, weak.upgrade())
            else {
                return;
            };
            let Ok(mut core) = core.try_borrow_mut() else {
                return;
            };
            core.net.tick(reactor.now());
            core.net
                .pending
                .push_back(Pending::Timer { component, timer });
            core.settle_now(reactor);
        };
        (cell, fire)
    }

    /// The loop itself: register sources, add plain timers, defer work.
    pub fn reactor(&mut self) -> &mut Reactor {
        self.reactor
    }

    /// A handle to this server for later use on the loop thread (from a
    /// reactor timer or source callback), outside this callback.
    pub fn server(&self) -> Option<Server> {
        let core = self.net.this.upgrade()?;
        Some(Server::new(core, self.net.local_addr, self.net.service))
    }

    /// A `Send` handle to this server for other threads.
    pub fn handle(&self) -> ServerHandle {
        ServerHandle::new(self.reactor.handle(), self.net.service)
    }
}

impl fmt::Debug for Context<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Context")
            .field("component", &self.component)
            .field("connections", &self.net.conns.len())
            .finish()
    }
}
