//! What the typed handles do: [`Server`] on the loop thread,
//! [`ServerHandle`] from other threads. Both reach the server the loop
//! owns by its key, never through a reference.

use crate::component::Component;
use crate::component::Context;
use crate::connection::ConnId;
use crate::guard;
use crate::handles::{Route, Server, ServerHandle};
use crate::message::OwnedMessage;
use crate::reactor::{LoopHandle, ScheduleError, SourceKey};
use crate::stats::Stats;

use super::ServerCore;

impl Server {
    fn key(&self) -> SourceKey<ServerCore> {
        SourceKey::assume(self.id)
    }

    /// Runs `f` with a context on the whole server: send to any
    /// connection, close, look connections up.
    ///
    /// `f` runs now when the server is free, and right after the current
    /// callback when the caller is one of this server's own callbacks:
    /// deferred, never dropped. Returns false only when the server is gone.
    pub fn with(&self, lp: &mut LoopHandle, f: impl FnOnce(&mut Context<'_>) + 'static) -> bool {
        lp.with_source(self.key(), move |core, lp| {
            core.call_server(lp, f);
        })
    }

    /// Runs `f` with a context on the whole server if it is free now;
    /// `None` when it is gone or busy (the caller is inside one of its
    /// callbacks, where that callback's own context is the way in).
    pub fn try_with<R>(
        &self,
        lp: &mut LoopHandle,
        f: impl FnOnce(&mut Context<'_>) -> R,
    ) -> Option<R> {
        lp.try_with_source(self.key(), |core, lp| core.call_server(lp, f))
            .flatten()
    }

    /// Number of connections, including those still in the handshake;
    /// `None` when the server is gone or busy (see [`Server::try_with`]).
    pub fn connection_count(&self, lp: &mut LoopHandle) -> Option<usize> {
        lp.try_with_source(self.key(), |core, _| core.connection_count())
    }

    /// A snapshot of the server's counters ([`Stats`]); `None` when the
    /// server is gone or busy (see [`Server::try_with`]; inside its own
    /// callbacks, [`Context::stats`] is the way in).
    pub fn stats(&self, lp: &mut LoopHandle) -> Option<Stats> {
        lp.try_with_source(self.key(), |core, _| core.net.stats())
    }

    /// True while the server is on the loop.
    pub fn is_running(&self, lp: &LoopHandle) -> bool {
        lp.contains(self.id)
    }

    /// Stops this server alone, gracefully: no new connections, close 1001
    /// to every client, and it leaves the loop (with a log line) once the
    /// last one is gone. The loop and its other sources go on.
    pub fn stop(&self, lp: &mut LoopHandle) {
        lp.with_source(self.key(), |core, lp| core.leave(lp));
    }

    /// Drops every connection now (components get `on_close` with
    /// [`CloseReason::Shutdown`](crate::CloseReason::Shutdown)).
    /// [`App::run`](crate::App::run) calls this after the loop returns, so
    /// no connection leaves without `on_close`.
    pub fn close_all_now(&self, lp: &mut LoopHandle) {
        lp.with_source(self.key(), |core, lp| core.close_all_now(lp));
    }
}

impl ServerHandle {
    /// Runs `f` on the loop with a context on the whole server. A panic in
    /// `f` is caught and logged; the loop goes on.
    pub fn run(
        &self,
        f: impl FnOnce(&mut Context<'_>) + Send + 'static,
    ) -> Result<(), ScheduleError> {
        let key = SourceKey::<ServerCore>::assume(self.server);
        self.reactor.schedule(move |lp| {
            lp.with_source(key, move |core, lp| {
                core.call_server(lp, f);
            });
        })
    }

    /// Runs `f` on the loop with the component behind `route` and a
    /// context on its route (see [`LoopHandle::with`]).
    pub fn with<C: Component>(
        &self,
        route: Route<C>,
        f: impl FnOnce(&mut C, &mut Context<'_, C>) + Send + 'static,
    ) -> Result<(), ScheduleError> {
        self.reactor.schedule(move |lp| {
            lp.with(route, f);
        })
    }

    /// Sends a message to a connection.
    pub fn send(&self, conn: ConnId, message: OwnedMessage) -> Result<(), ScheduleError> {
        self.run(move |ctx| {
            let _ = ctx.send(conn, &message);
        })
    }

    /// Publishes a message to every subscriber of `topic` on this server.
    pub fn publish(&self, topic: &str, message: OwnedMessage) -> Result<(), ScheduleError> {
        let topic = topic.to_owned();
        self.run(move |ctx| {
            ctx.publish(&topic, &message);
        })
    }

    /// Asks the whole loop to stop gracefully.
    pub fn stop(&self) -> Result<(), ScheduleError> {
        self.reactor.stop()
    }
}

impl ServerCore {
    /// Calls `f` with a context on the whole server, then delivers what the
    /// call caused. `None` if `f` panicked.
    pub(super) fn call_server<R>(
        &mut self,
        lp: &mut LoopHandle,
        f: impl FnOnce(&mut Context<'_>) -> R,
    ) -> Option<R> {
        self.net.tick(lp.now());
        let server = self.server;
        let result = {
            let mut ctx = Context::new(&mut self.net, lp, server, None);
            guard::call(&server, || f(&mut ctx)).ok()
        };
        self.settle(lp);
        result
    }

    fn connection_count(&self) -> usize {
        self.net.conns.len()
    }
}
