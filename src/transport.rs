//! The byte stream under a connection: plain TCP (`ws://`) or TLS
//! (`wss://`), both driven by the same non-blocking loop.
//!
//! The contract is the socket's: `read` and `write` return `WouldBlock`
//! when they cannot progress, and the loop calls them again on the next
//! readiness event. For TLS that holds because every call moves as many
//! records as the socket takes: `read` pulls records until plaintext
//! appears or the socket would block, and every write (and
//! [`Transport::flush`]) pushes rustls' pending records until the socket
//! would block or none are left — with edge-triggered readiness, records
//! left in rustls without a `WouldBlock` would never get another event.

use std::io::{self, Read, Write};
use std::net::Shutdown;
use std::sync::Arc;

use log::{debug, trace};
use mio::event::Source;
use mio::net::TcpStream;
use mio::{Interest, Registry, Token};

/// A connection's stream.
#[derive(Debug)]
pub(crate) enum Transport {
    /// Plain TCP (`ws://`).
    Plain(TcpStream),
    /// TLS over TCP (`wss://`). Boxed: a rustls session is a few hundred
    /// bytes and most servers run one kind only.
    Tls(Box<TlsStream>),
    /// An in-memory peer for the connection's unit tests.
    #[cfg(test)]
    Memory(Box<memory::MemoryStream>),
}

/// A rustls server session over a non-blocking socket.
#[derive(Debug)]
pub(crate) struct TlsStream {
    sock: TcpStream,
    tls: rustls::ServerConnection,
}

impl Transport {
    /// A TLS stream that will run the server side of the handshake as bytes
    /// arrive.
    pub(crate) fn tls(sock: TcpStream, config: Arc<rustls::ServerConfig>) -> io::Result<Self> {
        let tls = rustls::ServerConnection::new(config).map_err(io::Error::other)?;
        Ok(Transport::Tls(Box::new(TlsStream { sock, tls })))
    }

    /// Reads what is available; `WouldBlock` when nothing is, `Ok(0)` at
    /// the end of the stream.
    pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.read(buf),
            Transport::Tls(s) => s.read(buf),
            #[cfg(test)]
            Transport::Memory(s) => s.read(buf),
        }
    }

    /// Writes what fits; `WouldBlock` when nothing does.
    pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write(buf),
            Transport::Tls(s) => s.write(buf),
            #[cfg(test)]
            Transport::Memory(s) => s.write(buf),
        }
    }

    /// Writes what fits of `bufs` in order, in one `writev` on a plain
    /// socket; `WouldBlock` when nothing does.
    pub(crate) fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        match self {
            Transport::Plain(s) => s.write_vectored(bufs),
            Transport::Tls(s) => s.write_vectored(bufs),
            #[cfg(test)]
            Transport::Memory(s) => {
                let first = bufs
                    .iter()
                    .find(|b| !b.is_empty())
                    .map_or(&[][..], |b| &b[..]);
                s.write(first)
            }
        }
    }

    /// Pushes bytes the transport itself holds (TLS records) to the socket:
    /// `Ok` once none are left, `WouldBlock` if the socket is full.
    pub(crate) fn flush(&mut self) -> io::Result<()> {
        match self {
            Transport::Plain(_) => Ok(()),
            Transport::Tls(s) => s.flush_records(),
            #[cfg(test)]
            Transport::Memory(_) => Ok(()),
        }
    }

    /// True when a short read proves the kernel buffer is empty, so the loop
    /// may skip the read that would return `WouldBlock`. Not for TLS: rustls
    /// may hold decrypted bytes beyond what one read returned, and no
    /// readiness event would announce them.
    pub(crate) fn short_read_drains(&self) -> bool {
        !matches!(self, Transport::Tls(_))
    }

    /// Ends our side before the socket is closed: TLS sends `close_notify`
    /// and half-closes, as far as the socket takes it. A plain socket needs
    /// nothing: the caller closes it at once, and the close sends the FIN
    /// after our last byte (a `shutdown` first would be one syscall more per
    /// connection for the same packets).
    pub(crate) fn shutdown_write(&mut self) {
        match self {
            Transport::Plain(_) => {}
            Transport::Tls(s) => {
                s.tls.send_close_notify();
                drop(s.flush_records());
                drop(s.sock.shutdown(Shutdown::Write));
            }
            #[cfg(test)]
            Transport::Memory(s) => s.write_closed = true,
        }
    }

    fn socket(&mut self) -> io::Result<&mut TcpStream> {
        match self {
            Transport::Plain(s) => Ok(s),
            Transport::Tls(s) => Ok(&mut s.sock),
            #[cfg(test)]
            Transport::Memory(_) => Err(io::ErrorKind::Unsupported.into()),
        }
    }
}

impl TlsStream {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        // Each round either returns or moves at least one byte from the
        // socket into rustls, so it ends at the socket's WouldBlock or EOF.
        loop {
            match self.tls.reader().read(buf) {
                Ok(n) => return Ok(n),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                // TCP closed without close_notify: still the end of the stream
                // for a WebSocket, which has its own close handshake.
                Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => return Ok(0),
                Err(e) => return Err(e),
            }
            let n = match self.tls.read_tls(&mut self.sock) {
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            };
            if let Err(e) = self.tls.process_new_packets() {
                // rustls queued an alert saying why; send it if the socket
                // takes it, the connection is dropped either way.
                drop(self.flush_records());
                return Err(io::Error::new(io::ErrorKind::InvalidData, e));
            }
            // Handshake messages, alerts, key updates: out now, or on the
            // writable event if the socket is full.
            match self.flush_records() {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(e),
            }
            if n == 0 {
                // EOF: the next round's reader answers Ok(0) or UnexpectedEof,
                // after any plaintext rustls still holds.
                trace!("TLS: peer closed the TCP stream");
            }
        }
    }

    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.write_vectored(&[io::IoSlice::new(buf)])
    }

    fn write_vectored(&mut self, bufs: &[io::IoSlice<'_>]) -> io::Result<usize> {
        // Records still queued mean the socket is full: take no more
        // plaintext, so the connection's own buffer keeps the backlog (and
        // its backpressure accounting) rather than rustls.
        self.flush_records()?;
        let n = self.tls.writer().write_vectored(bufs)?;
        match self.flush_records() {
            Ok(()) => {}
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => {}
            Err(e) => return Err(e),
        }
        if n == 0 {
            // rustls' buffer limit with nothing left to send cannot happen;
            // if it did, waiting for writable is the safe answer.
            debug!("TLS: rustls took no plaintext");
            return Err(io::ErrorKind::WouldBlock.into());
        }
        Ok(n)
    }

    /// Writes queued TLS records until none are left or the socket is full.
    fn flush_records(&mut self) -> io::Result<()> {
        while self.tls.wants_write() {
            match self.tls.write_tls(&mut self.sock) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(_) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        Ok(())
    }
}

impl Source for Transport {
    fn register(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket()?.register(registry, token, interests)
    }

    fn reregister(
        &mut self,
        registry: &Registry,
        token: Token,
        interests: Interest,
    ) -> io::Result<()> {
        self.socket()?.reregister(registry, token, interests)
    }

    fn deregister(&mut self, registry: &Registry) -> io::Result<()> {
        self.socket()?.deregister(registry)
    }
}

#[cfg(test)]
pub(crate) mod memory {
    //! A peer in memory: what it sent waits in `incoming`; what we write
    //! lands in `written`, at most `room` bytes until the test makes more
    //! room. Like a non-blocking socket it answers `WouldBlock`, never
    //! blocks, so the connection's state machine is driven exactly as the
    //! loop drives it (tungstenite tests its protocol over such a mock).

    use std::collections::VecDeque;
    use std::io;

    #[derive(Debug, Default)]
    pub(crate) struct MemoryStream {
        pub(crate) incoming: VecDeque<u8>,
        pub(crate) eof: bool,
        pub(crate) written: Vec<u8>,
        pub(crate) room: usize,
        pub(crate) write_closed: bool,
    }

    impl MemoryStream {
        pub(crate) fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
            if self.incoming.is_empty() {
                return if self.eof {
                    Ok(0)
                } else {
                    Err(io::ErrorKind::WouldBlock.into())
                };
            }
            let n = buf.len().min(self.incoming.len());
            for (slot, byte) in buf.iter_mut().zip(self.incoming.drain(..n)) {
                *slot = byte;
            }
            Ok(n)
        }

        pub(crate) fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
            if self.room == 0 {
                return Err(io::ErrorKind::WouldBlock.into());
            }
            let n = buf.len().min(self.room);
            self.written.extend_from_slice(&buf[..n]);
            self.room -= n;
            Ok(n)
        }
    }
}

#[cfg(test)]
mod tests {
    //! The TLS stream against a rustls client on a loopback socket, driven
    //! the way the server drives it: edge-triggered readiness from a mio
    //! `Poll`, reads and writes until `WouldBlock`.

    use std::io::{Read, Write};
    use std::sync::Arc;
    use std::time::Duration;

    use mio::{Events, Interest, Poll, Token};
    use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName};

    use super::Transport;

    const PAYLOAD: usize = 8 << 20;

    fn configs() -> (Arc<rustls::ServerConfig>, Arc<rustls::ClientConfig>) {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        let cert: CertificateDer<'static> = certified.cert.der().clone();
        let key = PrivateKeyDer::try_from(certified.signing_key.serialize_der()).expect("key");
        let provider = Arc::new(rustls::crypto::ring::default_provider());
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_no_client_auth()
            .with_single_cert(vec![cert.clone()], key)
            .expect("server config");
        let mut roots = rustls::RootCertStore::empty();
        roots.add(cert).expect("root");
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .expect("versions")
            .with_root_certificates(roots)
            .with_no_client_auth();
        (Arc::new(server), Arc::new(client))
    }

    /// Waits for the next readiness event; the timeout only keeps a broken
    /// transport from hanging the test.
    fn wait(poll: &mut Poll, events: &mut Events) {
        poll.poll(events, Some(Duration::from_secs(20)))
            .expect("poll");
        assert!(!events.is_empty(), "no readiness within the safety timeout");
    }

    #[test]
    fn tls_stream_moves_everything_under_edge_triggered_readiness() {
        let (server_config, client_config) = configs();
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("bind");
        let addr = listener.local_addr().expect("addr");
        let client = std::thread::spawn(move || {
            let sock = std::net::TcpStream::connect(addr).expect("connect");
            sock.set_read_timeout(Some(Duration::from_secs(20)))
                .expect("timeout");
            let name = ServerName::try_from("localhost").expect("name");
            let conn = rustls::ClientConnection::new(client_config, name).expect("client");
            let mut tls = rustls::StreamOwned::new(conn, sock);
            tls.write_all(b"hello").expect("hello");
            let mut received = vec![0u8; PAYLOAD];
            tls.read_exact(&mut received).expect("payload");
            received
        });
        let (sock, _) = listener.accept().expect("accept");
        sock.set_nonblocking(true).expect("nonblocking");
        // A small send buffer so writes hit WouldBlock many times.
        socket2::SockRef::from(&sock)
            .set_send_buffer_size(16 << 10)
            .expect("sndbuf");
        let mut transport =
            Transport::tls(mio::net::TcpStream::from_std(sock), server_config).expect("tls");
        let mut poll = Poll::new().expect("poll");
        let mut events = Events::with_capacity(8);
        poll.registry()
            .register(
                &mut transport,
                Token(0),
                Interest::READABLE | Interest::WRITABLE,
            )
            .expect("register");

        // The handshake and the client's first bytes, read until WouldBlock
        // after each event.
        let mut input = Vec::new();
        let mut buf = [0u8; 4096];
        for _ in 0..1000 {
            if input.len() >= 5 {
                break;
            }
            wait(&mut poll, &mut events);
            loop {
                match transport.read(&mut buf) {
                    Ok(0) => panic!("client closed early"),
                    Ok(n) => input.extend_from_slice(&buf[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => break,
                    Err(e) => panic!("read: {e}"),
                }
            }
        }
        assert_eq!(input, b"hello");

        // 8 MiB out: write until WouldBlock, then only on writable events,
        // flushing what rustls holds first, as Connection::write_out does.
        let payload: Vec<u8> = (0..PAYLOAD).map(|i| (i % 253) as u8).collect();
        let mut sent = 0;
        let mut blocked = 0;
        for _ in 0..1_000_000 {
            let flushed = loop {
                if sent == payload.len() {
                    break transport.flush();
                }
                match transport.write(&payload[sent..]) {
                    Ok(n) => sent += n,
                    Err(e) => break Err(e),
                }
            };
            match flushed {
                Ok(()) => break,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {
                    blocked += 1;
                    wait(&mut poll, &mut events);
                }
                Err(e) => panic!("write: {e}"),
            }
        }
        assert_eq!(sent, payload.len());
        assert!(
            blocked > 0,
            "the send buffer never filled; the test proves nothing"
        );
        let received = client.join().expect("client thread");
        assert!(received == payload, "the client received other bytes");
    }
}
