//! The byte stream under a connection. Plain TCP today; TLS (`wss://`)
//! slots in here as another variant, driven by the same non-blocking loop.

use std::io::{self, Read, Write};
use std::net::Shutdown;

use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A connection's stream.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP (`ws://`).
    Plain(TcpStream),
}

impl Transport {
    /// Reads what is available; `WouldBlock` when nothing is.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
        }
    }

    /// Writes what fits; `WouldBlock` when nothing does.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
        }
    }

    /// True when a short read proves the kernel buffer is empty, so the loop
    /// may skip the read that would return `WouldBlock`. (A TLS layer that
    /// buffers records would answer false.)
    pub(crate) fn short_read_drains(&self) -> bool {
        matches!(self, Transport::Plain(_))
    }

    /// Half-closes the write side: the peer reads EOF after our last byte.
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            // Failure means the peer is already gone; nothing to do.
            Transport::Plain(s) => drop(s.shutdown(Shutdown::Write)),
        }
    }
}

impl Source for Transport {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.register(registry, token, interests),
        }
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.reregister(registry, token, interests),
        }
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        match self {
            Transport::Plain(s) => s.deregister(registry),
        }
    }
}
