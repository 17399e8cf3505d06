//! Typed handles to what the loop owns: a [`Server`], a [`Route<C>`] (a
//! component on a path of a server), and a [`ServerHandle`] for other
//! threads.
//!
//! They are plain keys (a slot and a generation in the loop, an index of
//! the route): `Copy`, cheap, and never a reference to the server, so
//! holding one keeps nothing alive and borrows nothing. What they reach is
//! lent out by the loop for the length of a call; see
//! [`LoopHandle::with`](crate::reactor::LoopHandle::with) and
//! [`Server::with`].

use std::fmt;
use std::marker::PhantomData;
use std::net::SocketAddr;
use std::sync::atomic::{AtomicU64, Ordering};

use crate::reactor::{Handle, LoopHandle, SourceId};

/// A server running on a loop: what [`App::listen`](crate::App::listen)
/// returns. The loop owns the server; this is its key. Dropping it changes
/// nothing: a server stops when it is asked to ([`Server::stop`], a stop of
/// the loop) or when its listener fails, and says so in the log.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Server {
    pub(crate) id: SourceId,
    pub(crate) local_addr: SocketAddr,
    /// The app it serves, which its routes name (see [`Route`]).
    pub(crate) app: AppId,
}

impl fmt::Display for Server {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "the server on {}", self.local_addr)
    }
}

/// A number unique in the process for each [`App`](crate::App): routes
/// are mounted before the app's server exists, so they name the app, and
/// the loop knows which server serves it.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub(crate) struct AppId(pub(crate) u64);

impl AppId {
    pub(crate) fn next() -> AppId {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        AppId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl Server {
    /// The address the server listens on (useful after binding port 0).
    pub fn local_addr(&self) -> SocketAddr {
        self.local_addr
    }

    /// A `Send` handle for other threads.
    pub fn handle(&self, lp: &LoopHandle) -> ServerHandle {
        ServerHandle {
            reactor: lp.handle(),
            server: self.id,
        }
    }
}

/// A component `C` on a route of a server: what
/// [`App::mount`](crate::App::mount) returns. Any event source (a timer, a
/// mio source, a Redis reply, a task from another thread) reaches `&mut C`
/// and its [`Context`](crate::Context) through it, with
/// [`LoopHandle::with`](crate::reactor::LoopHandle::with) or
/// [`ServerHandle::with`]; no lookup by type.
///
/// `Copy + Send`: it is two numbers and a type.
pub struct Route<C> {
    pub(crate) app: AppId,
    pub(crate) index: u32,
    _component: PhantomData<fn() -> C>,
}

impl<C> Route<C> {
    pub(crate) fn new(app: AppId, index: u32) -> Self {
        Route {
            app,
            index,
            _component: PhantomData,
        }
    }
}

impl<C> Clone for Route<C> {
    fn clone(&self) -> Self {
        *self
    }
}

impl<C> Copy for Route<C> {}

impl<C> PartialEq for Route<C> {
    fn eq(&self, other: &Self) -> bool {
        self.app == other.app && self.index == other.index
    }
}

impl<C> Eq for Route<C> {}

impl<C> fmt::Debug for Route<C> {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Route")
            .field("component", &std::any::type_name::<C>())
            .field("index", &self.index)
            .finish()
    }
}

/// A `Send + Clone` handle to a server, for other threads: send to
/// connections, or run code on the loop with a [`Context`](crate::Context)
/// on the server or on one of its routes. Never blocks: when the loop's
/// queue is full the call fails with
/// [`ScheduleError::Full`](crate::reactor::ScheduleError::Full).
#[derive(Debug, Clone)]
pub struct ServerHandle {
    pub(crate) reactor: Handle,
    pub(crate) server: SourceId,
}
