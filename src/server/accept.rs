//! Accepting connections: the listener, the connection limit, TLS
//! sessions, and running out of file descriptors without spinning.

use std::fs::File;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;

use log::{debug, error, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Registry};

use crate::connection::{Connection, Net};
use crate::transport::Transport;

/// A server's listener and what accepting needs beside it.
pub(super) struct Acceptor {
    /// `None` once the server stopped accepting (a graceful stop).
    listener: Option<TcpListener>,
    /// An open file kept in reserve: when accept fails for lack of file
    /// descriptors, closing it makes room to accept and close the pending
    /// connection, so the listener does not stay readable forever.
    reserve_fd: Option<File>,
    /// Set for `wss://`: every accepted socket starts a TLS session.
    tls: Option<Arc<rustls::ServerConfig>>,
}

impl Acceptor {
    pub(super) fn new(listener: TcpListener, tls: Option<Arc<rustls::ServerConfig>>) -> Self {
        Acceptor {
            listener: Some(listener),
            reserve_fd: File::open("/dev/null").ok(),
            tls,
        }
    }

    /// Stops accepting: the listener leaves the poll and closes.
    pub(super) fn close(&mut self, registry: &Registry) {
        if let Some(mut listener) = self.listener.take() {
            let _ = registry.deregister(&mut listener);
        }
    }

    /// Accepts every pending connection into `net`. An error is one the
    /// listener will not recover from.
    pub(super) fn accept_all(&mut self, net: &mut Net, registry: &Registry) -> io::Result<()> {
        loop {
            let Some(listener) = &self.listener else {
                return Ok(());
            };
            match listener.accept() {
                Ok((stream, peer)) => self.admit(net, registry, stream, peer),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted
                            | io::ErrorKind::ConnectionAborted
                            | io::ErrorKind::ConnectionReset
                    ) => {}
                Err(e) if out_of_descriptors(&e) => match self
                    .shed_one_connection(&mut net.stats.connections_refused)
                {
                    Shed::One => {}
                    // Linux reports EMFILE before it looks at the backlog, so
                    // an empty backlog looks the same as a full one: stop
                    // here, or this loop spins while every descriptor is used.
                    Shed::NothingPending => return Ok(()),
                    Shed::NoReserve => {
                        error!("accept: {e}; no reserve descriptor left, pending connections wait");
                        return Ok(());
                    }
                },
                // Transient shortages: what is pending waits for the next event.
                Err(e) if e.raw_os_error().is_some_and(transient) => {
                    error!("accept failed: {e}");
                    return Ok(());
                }
                Err(e) => return Err(e),
            }
        }
    }

    /// Accepts one pending connection with the reserve descriptor's slot and
    /// closes it at once, counting it in `refused` (the server's counter,
    /// which also paces the log).
    fn shed_one_connection(&mut self, refused: &mut u64) -> Shed {
        if self.reserve_fd.take().is_none() {
            return Shed::NoReserve;
        }
        let shed = match self.listener.as_ref().map(TcpListener::accept) {
            Some(Ok((stream, peer))) => {
                *refused += 1;
                // One line per power of two, as at max connections: running
                // out under a flood must not flood the log as well.
                if refused.is_power_of_two() {
                    warn!("out of file descriptors: refused {peer} ({refused} refused so far)");
                }
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

    fn admit(&mut self, net: &mut Net, registry: &Registry, stream: TcpStream, peer: SocketAddr) {
        if net.conns.len() >= net.config.max_connections || net.shutting_down {
            let refused = &mut net.stats.connections_refused;
            *refused += 1;
            // One line per power of two: a flood must not flood the log too.
            if refused.is_power_of_two() {
                warn!(
                    "at max connections ({}): refused {peer} ({refused} refused so far)",
                    net.config.max_connections
                );
            }
            return;
        }
        // Replies are written once per turn already; Nagle would only delay them.
        if let Err(e) = stream.set_nodelay(true) {
            debug!("{peer}: TCP_NODELAY: {e}");
        }
        let generation = net.next_generation();
        let now = net.now;
        let token = net.handler.sub_token(net.conns.vacant_key() as u32);
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
        if let Err(e) = registry.register(
            &mut transport,
            token,
            Interest::READABLE | Interest::WRITABLE,
        ) {
            error!("{peer}: register failed: {e}");
            return;
        }
        net.conns
            .insert(Connection::new(transport, peer, generation, now));
        net.stats.connections_accepted += 1;
        debug!("#{generation} connected from {peer}");
    }
}

/// What [`Acceptor::shed_one_connection`] did.
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

/// Shortages that pass: kernel memory (ENOBUFS, ENOMEM), a firewall
/// verdict (EPERM), a protocol error on one pending connection (EPROTO).
fn transient(errno: i32) -> bool {
    matches!(
        errno,
        libc::ENOBUFS | libc::ENOMEM | libc::EPERM | libc::EPROTO
    )
}
