//! The handles programs keep to a running server: [`Server`] on the loop
//! thread, [`ServerHandle`] from other threads.

use super::*;

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
