//! The application side: the [`Component`] trait (Ratchet's
//! `MessageComponentInterface`), the [`Context`] its callbacks get, and
//! where the per-connection sessions it declares are kept. One layer: the
//! trait names the context and the context is typed by the component.
//!
//! - `context.rs`: what a callback can do.
//! - `session.rs`: a route's sessions, lent to callbacks.

mod context;
mod session;

pub use context::Context;
pub(crate) use session::Sessions;

use crate::close::CloseReason;
use crate::connection::ConnId;
use crate::error::Error;
use crate::message::Message;

/// A WebSocket application, mounted on a route with
/// [`App::route`](crate::App::route) or [`App::mount`](crate::App::mount).
///
/// Callbacks run on the loop thread, one at a time; each gets a
/// [`Context`] that sends to any connection, closes, sets timers that come
/// back to this component, and reaches the loop.
///
/// Each connection carries a [`Session`](Component::Session) of the
/// component's choosing (uWebSockets' per-socket user data): `on_open`
/// creates it, the other callbacks borrow it, `on_close` gets it back. A
/// component keeps no map keyed by [`ConnId`]; to reach another
/// connection's session, use [`Context::session`].
///
/// For each connection whose `on_open` returned, `on_close` comes last,
/// exactly once; `on_error` (a protocol error, a limit, an I/O error) comes
/// just before the `on_close` it causes. A panic in a callback is caught:
/// that connection is closed with 1011 (after `on_close`, unless it was
/// `on_open` that panicked: then there is no session to close), it is
/// logged with the route, and the loop serves everyone else.
///
/// # Examples
///
/// Ratchet's `MyChat`: every message goes to every client of the route.
///
/// ```
/// use pawl::{Component, ConnId, Context, Message};
///
/// struct MyChat;
///
/// impl Component for MyChat {
///     type Session = ();
///     fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}
///     fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: ConnId, _: &mut (), msg: Message<'_>) {
///         ctx.broadcast_route(msg);
///     }
/// }
/// ```
pub trait Component: Sized + 'static {
    /// What the component keeps per connection (`()` for nothing). It lives
    /// in the server's connection table and costs nothing when zero-sized.
    type Session: 'static;

    /// A connection completed the upgrade on this component's route; the
    /// returned value is its session.
    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) -> Self::Session;

    /// A whole message arrived (fragments are assembled first).
    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        session: &mut Self::Session,
        message: Message<'_>,
    );

    /// The connection is gone; `reason` says why, and the session comes
    /// back. Sends to it are dropped.
    fn on_close(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        session: Self::Session,
        reason: &CloseReason,
    ) {
        let _ = (ctx, conn, session, reason);
    }

    /// Something went wrong on the connection; `on_close` follows.
    fn on_error(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        session: &mut Self::Session,
        error: &Error,
    ) {
        let _ = (ctx, conn, session, error);
    }

    /// A connection that reported
    /// [`SendStatus::Backpressure`](crate::SendStatus::Backpressure) has
    /// sent everything queued.
    fn on_drain(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, session: &mut Self::Session) {
        let _ = (ctx, conn, session);
    }

    /// Another node published `message` on `topic`, which this route
    /// watches ([`Context::watch`]); the topic's subscribers here have it
    /// already. Delivery across nodes is at most once, as for subscribers.
    fn on_remote_publish(
        &mut self,
        ctx: &mut Context<'_, Self>,
        topic: &str,
        message: Message<'_>,
    ) {
        let _ = (ctx, topic, message);
    }

    /// The server's link to the other nodes (its topics broker,
    /// [`App::broker`](crate::App::broker)) is up: both its Redis
    /// connections are ready, the first time and after every outage. While
    /// it was down, this node's publishes reached only this node and other
    /// nodes' publishes did not reach it (at most once): this is the place
    /// to send again what must not be lost and to catch up on what was
    /// missed. [`Context::topics_connected`] tells whether the link is up
    /// now. Never called on a server without a broker.
    fn on_topics_connected(&mut self, ctx: &mut Context<'_, Self>) {
        let _ = ctx;
    }

    /// The subprotocols this component speaks, most preferred first. The
    /// handshake answers with the first one the client offers in
    /// `Sec-WebSocket-Protocol` (Ratchet's `getSubProtocols`). Default: none;
    /// a client that insists on one then fails the handshake on its side.
    fn subprotocols(&self) -> &[&str] {
        &[]
    }
}
