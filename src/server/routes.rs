//! The components of a server's routes, behind one object-safe trait, and
//! how a [`Route<C>`] reaches its component.
//!
//! [`Mounted<C>`] keeps a component with its sessions; the server calls it
//! through [`Endpoint`] without knowing `C`. Every call goes through the
//! one guard ([`crate::guard::call`]), with the session lent to the
//! callback and put back whatever happens, so a panic leaves the session
//! for `on_close`.

use std::any::Any;
use std::fmt;

use crate::close::CloseReason;
use crate::component::Component;
use crate::component::Context;
use crate::component::Sessions;
use crate::connection::{ConnId, Net};
use crate::error::Error;
use crate::guard::{self, Panicked};
use crate::handles::{Route, Server};
use crate::message::Message;
use crate::reactor::LoopHandle;

use super::ServerCore;

/// What a component callback needs besides the component: the server's
/// connection table, the loop, and where it is called from.
pub(crate) struct Env<'a> {
    pub(crate) net: &'a mut Net,
    pub(crate) lp: &'a mut LoopHandle,
    pub(crate) server: Server,
    pub(crate) index: u32,
}

/// A route's component, type-erased for the server.
pub(crate) trait Endpoint {
    /// `on_open`; the session's key on success.
    fn open(&mut self, env: Env<'_>, conn: ConnId) -> Result<u32, Panicked>;
    fn message(
        &mut self,
        env: Env<'_>,
        conn: ConnId,
        session: u32,
        message: Message<'_>,
    ) -> Result<(), Panicked>;
    fn error(
        &mut self,
        env: Env<'_>,
        conn: ConnId,
        session: u32,
        error: &Error,
    ) -> Result<(), Panicked>;
    fn drain(&mut self, env: Env<'_>, conn: ConnId, session: u32) -> Result<(), Panicked>;
    /// `on_close`, with the session taken out for good.
    fn close(
        &mut self,
        env: Env<'_>,
        conn: ConnId,
        session: u32,
        reason: &CloseReason,
    ) -> Result<(), Panicked>;
    /// `on_remote_publish`: another node published on a watched topic.
    fn remote_publish(
        &mut self,
        env: Env<'_>,
        topic: &str,
        message: Message<'_>,
    ) -> Result<(), Panicked>;
    /// `on_topics_connected`: the broker's link to Redis is up.
    fn topics_connected(&mut self, env: Env<'_>) -> Result<(), Panicked>;
    fn as_any(&mut self) -> &mut dyn Any;
}

/// A component on a path, with the sessions of its connections.
pub(crate) struct Mounted<C: Component> {
    component: C,
    sessions: Sessions<C::Session>,
    path: String,
}

impl<C: Component> Mounted<C> {
    pub(crate) fn new(component: C, path: &str) -> Self {
        Mounted {
            component,
            sessions: Sessions::default(),
            path: path.to_owned(),
        }
    }

    /// Calls `f` with the component and the session `key` lent out, then
    /// puts the session back.
    fn with_session(
        &mut self,
        env: Env<'_>,
        key: u32,
        f: impl FnOnce(&mut C, &mut Context<'_, C>, &mut C::Session),
    ) -> Result<(), Panicked> {
        // No session: `on_open` panicked, so nothing more is delivered.
        let Some(mut session) = self.sessions.take(key) else {
            return Ok(());
        };
        let result = self.call(env, |c, ctx| f(c, ctx, &mut session));
        self.sessions.put_back(key, session);
        result
    }

    /// Calls `f` with the component and a context on its route.
    pub(crate) fn call(
        &mut self,
        env: Env<'_>,
        f: impl FnOnce(&mut C, &mut Context<'_, C>),
    ) -> Result<(), Panicked> {
        let Mounted {
            component,
            sessions,
            path,
        } = self;
        let mut ctx = Context::new(env.net, env.lp, env.server, Some((env.index, sessions)));
        guard::call(&RouteName(path), || f(component, &mut ctx))
    }
}

impl<C: Component> Endpoint for Mounted<C> {
    fn open(&mut self, env: Env<'_>, conn: ConnId) -> Result<u32, Panicked> {
        let mut session = None;
        self.call(env, |c, ctx| session = Some(c.on_open(ctx, conn)))?;
        Ok(session.map_or(0, |session| self.sessions.insert(session)))
    }

    fn message(
        &mut self,
        env: Env<'_>,
        conn: ConnId,
        session: u32,
        message: Message<'_>,
    ) -> Result<(), Panicked> {
        self.with_session(env, session, |c, ctx, s| {
            c.on_message(ctx, conn, s, message)
        })
    }

    fn error(
        &mut self,
        env: Env<'_>,
        conn: ConnId,
        session: u32,
        error: &Error,
    ) -> Result<(), Panicked> {
        self.with_session(env, session, |c, ctx, s| c.on_error(ctx, conn, s, error))
    }

    fn drain(&mut self, env: Env<'_>, conn: ConnId, session: u32) -> Result<(), Panicked> {
        self.with_session(env, session, |c, ctx, s| c.on_drain(ctx, conn, s))
    }

    fn close(
        &mut self,
        env: Env<'_>,
        conn: ConnId,
        session: u32,
        reason: &CloseReason,
    ) -> Result<(), Panicked> {
        let Some(session) = self.sessions.remove(session) else {
            return Ok(());
        };
        self.call(env, |c, ctx| c.on_close(ctx, conn, session, reason))
    }

    fn remote_publish(
        &mut self,
        env: Env<'_>,
        topic: &str,
        message: Message<'_>,
    ) -> Result<(), Panicked> {
        self.call(env, |c, ctx| c.on_remote_publish(ctx, topic, message))
    }

    fn topics_connected(&mut self, env: Env<'_>) -> Result<(), Panicked> {
        self.call(env, |c, ctx| c.on_topics_connected(ctx))
    }

    fn as_any(&mut self) -> &mut dyn Any {
        self
    }
}

/// "route /chat", formatted only when a panic is logged.
pub(crate) struct RouteName<'a>(pub(crate) &'a str);

impl fmt::Display for RouteName<'_> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "route {}", self.0)
    }
}

impl LoopHandle {
    /// Runs `f` with the component behind `route` and a [`Context`] on its
    /// route: how a timer, a source, a Redis reply or a task from another
    /// thread reaches a component.
    ///
    /// `f` runs now when the server is free, and right after the current
    /// callback when it is busy (the caller is one of its callbacks):
    /// deferred, never dropped. Returns false (and drops `f`) only when
    /// there is no server to run it: the app is not listening yet, or its
    /// server has stopped. A panic in `f` is caught and logged with the
    /// route.
    pub fn with<C: Component>(
        &mut self,
        route: Route<C>,
        f: impl FnOnce(&mut C, &mut Context<'_, C>) + 'static,
    ) -> bool {
        let Some(key) = ServerCore::key_of(self, route.app) else {
            return false;
        };
        self.with_source(key, move |core, lp| core.call_route(lp, route.index, f))
    }
}

impl LoopHandle {
    /// Runs `f` with the component behind `route` now, if its server is
    /// free, and returns what `f` returns; `None` when the server is gone,
    /// busy (the caller is one of its callbacks: use that callback's
    /// context instead), or `f` panicked.
    pub fn try_with<C: Component, R>(
        &mut self,
        route: Route<C>,
        f: impl FnOnce(&mut C, &mut Context<'_, C>) -> R,
    ) -> Option<R> {
        let key = ServerCore::key_of(self, route.app)?;
        self.try_with_source(key, move |core, lp| {
            let mut result = None;
            core.call_route(lp, route.index, |c, ctx| result = Some(f(c, ctx)));
            result
        })
        .flatten()
    }
}

impl ServerCore {
    /// Tells the routes watching `topic` what another node published on
    /// it, then delivers what that caused.
    pub(super) fn tell_watchers(&mut self, lp: &mut LoopHandle, topic: &str, message: Message<'_>) {
        let mut watchers = Vec::new();
        self.net.topics.watchers_into(topic, &mut watchers);
        if watchers.is_empty() {
            return;
        }
        self.net.tick(lp.now());
        let server = self.server;
        for index in watchers {
            let Some(endpoint) = self.routes.get_mut(index as usize) else {
                continue;
            };
            let env = Env {
                net: &mut self.net,
                lp,
                server,
                index,
            };
            // A panic is logged by the guard; the other watchers still hear.
            let _ = endpoint.remote_publish(env, topic, message);
        }
        self.settle(lp);
    }

    /// Tells every route that the topics broker is connected.
    pub(super) fn tell_topics_connected(&mut self, lp: &mut LoopHandle) {
        self.net.tick(lp.now());
        let server = self.server;
        for (index, endpoint) in (0u32..).zip(self.routes.iter_mut()) {
            let env = Env {
                net: &mut self.net,
                lp,
                server,
                index,
            };
            // A panic is logged by the guard; the other routes still hear.
            let _ = endpoint.topics_connected(env);
        }
        self.settle(lp);
    }

    /// Calls `f` on route `index`, whose component is a `C`, then delivers
    /// what the call caused.
    fn call_route<C: Component>(
        &mut self,
        lp: &mut LoopHandle,
        index: u32,
        f: impl FnOnce(&mut C, &mut Context<'_, C>),
    ) {
        self.net.tick(lp.now());
        let server = self.server;
        let Some(endpoint) = self.routes.get_mut(index as usize) else {
            return;
        };
        let Some(mounted) = endpoint.as_any().downcast_mut::<Mounted<C>>() else {
            // A Route<C> is only made by mounting a C at that index.
            log::error!(
                "route {index} does not hold a {}",
                std::any::type_name::<C>()
            );
            return;
        };
        let env = Env {
            net: &mut self.net,
            lp,
            server,
            index,
        };
        let _ = mounted.call(env, f);
        self.settle(lp);
    }
}
