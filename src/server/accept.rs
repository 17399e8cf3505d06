//! Accepting connections: the connection limit, and running out of file
//! descriptors without spinning.

use super::*;

impl ServerCore {
    pub(super) fn accept(&mut self, reactor: &mut Reactor) {
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

/// EMFILE or ENFILE: the process or the system is out of file descriptors.
/// `io::ErrorKind` has no stable variant for these, hence the errno.
fn out_of_descriptors(e: &io::Error) -> bool {
    matches!(e.raw_os_error(), Some(libc::EMFILE | libc::ENFILE))
}
