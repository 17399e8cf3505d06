//! One non-blocking WebSocket client connection on mio.
//!
//! The connection is registered READABLE | WRITABLE once (edge-triggered,
//! so WRITABLE fires only after the send buffer was full) and every event
//! is drained until WouldBlock. Reads go through a scratch buffer the
//! caller owns, so an idle connection keeps no read buffer of its own.

use std::io::{self, Read, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::time::Duration;

use mio::net::TcpStream;
use mio::{Interest, Registry, Token};
use socket2::{Domain, Protocol, Socket, Type};

use crate::Error;
use crate::wire::{self, OP_CLOSE, OP_CONT, OP_PING, OP_PONG};

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Phase {
    Connecting,
    Upgrading,
    Open,
    /// We sent a close frame and wait for the server's.
    Closing,
    /// The server's close frame arrived.
    Closed,
}

/// What the connection hands to its owner while reading.
pub enum Event<'a> {
    /// The 101 arrived and checked out.
    Upgraded,
    /// A complete data message (fragments already joined).
    Message(u8, &'a [u8]),
    /// The server's close frame, with its status code if any.
    Close(Option<u16>),
}

/// Output side of a connection: what the owner writes into from inside an
/// event callback, while the input side is still borrowed.
pub struct Writer {
    out: Vec<u8>,
    pos: usize,
    mask: u32,
}

impl Writer {
    /// Queues a masked frame; it goes out on the next `flush`.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) {
        // xorshift: masks only need to vary, not to be secret, here.
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        wire::encode_masked(&mut self.out, opcode, payload, self.mask.to_ne_bytes());
    }
}

pub struct WsConn {
    stream: TcpStream,
    phase: Phase,
    key: String,
    /// Bytes of a partial response head or frame kept between reads.
    pending: Vec<u8>,
    /// A fragmented message being joined: its opcode and bytes so far.
    fragments: Option<(u8, Vec<u8>)>,
    pub writer: Writer,
}

impl WsConn {
    /// Starts a non-blocking connect from `source` (port chosen at connect
    /// time, so each source address has the whole ephemeral range per
    /// destination) and queues the upgrade request for `path`.
    pub fn connect(
        registry: &Registry,
        token: Token,
        server: SocketAddrV4,
        source: Ipv4Addr,
        path: &str,
        seed: u64,
    ) -> Result<WsConn, Error> {
        let socket = Socket::new(Domain::IPV4, Type::STREAM, Some(Protocol::TCP))?;
        socket.set_nonblocking(true)?;
        socket.set_tcp_nodelay(true)?;
        if source != Ipv4Addr::LOCALHOST {
            bind_address_no_port(&socket)?;
            socket.bind(&SocketAddr::from((source, 0)).into())?;
        }
        match socket.connect(&SocketAddr::V4(server).into()) {
            Ok(()) => {}
            Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
            Err(e) => return Err(Error::Io(e)),
        }
        let mut stream = TcpStream::from_std(socket.into());
        registry.register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)?;
        let (request, key) = wire::upgrade_request(&server.to_string(), path, seed);
        Ok(WsConn {
            stream,
            phase: Phase::Connecting,
            key,
            pending: Vec::new(),
            fragments: None,
            writer: Writer {
                out: request,
                pos: 0,
                mask: (seed as u32) | 1,
            },
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Queues our close frame (status 1000) and waits for the server's.
    pub fn close(&mut self) {
        if self.phase == Phase::Open {
            self.writer.send(OP_CLOSE, &1000u16.to_be_bytes());
            self.phase = Phase::Closing;
        }
    }

    /// Closes the socket with a reset instead of a FIN, so the client
    /// side keeps no TIME_WAIT entry (the handshake loop makes many).
    pub fn abort(self) {
        let socket = socket2::SockRef::from(&self.stream);
        let _ = socket.set_linger(Some(Duration::ZERO));
    }

    /// Handles one readiness event: finishes the connect, writes what is
    /// queued, reads until WouldBlock and hands each event to `on_event`,
    /// then writes what the callbacks queued.
    pub fn ready(
        &mut self,
        scratch: &mut [u8],
        on_event: &mut impl FnMut(Event<'_>, &mut Writer) -> Result<(), Error>,
    ) -> Result<(), Error> {
        if self.phase == Phase::Connecting {
            if let Some(e) = self.stream.take_error()? {
                return Err(Error::Io(e));
            }
            match self.stream.peer_addr() {
                Ok(_) => self.phase = Phase::Upgrading,
                Err(e) if e.kind() == io::ErrorKind::NotConnected => return Ok(()),
                Err(e) => return Err(Error::Io(e)),
            }
        }
        self.flush()?;
        loop {
            let n = match self.stream.read(scratch) {
                Ok(0) => {
                    return Err(match self.phase {
                        Phase::Closed => return Ok(()),
                        _ => Error::Protocol(format!(
                            "server closed the TCP stream ({:?})",
                            self.phase
                        )),
                    });
                }
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Error::Io(e)),
            };
            if self.pending.is_empty() {
                let used = self.consume(&scratch[..n], on_event)?;
                self.pending.extend_from_slice(&scratch[used..n]);
            } else {
                let mut data = std::mem::take(&mut self.pending);
                data.extend_from_slice(&scratch[..n]);
                let used = self.consume(&data, on_event)?;
                data.drain(..used);
                self.pending = data;
            }
        }
        self.flush()
    }

    /// Writes queued output until done or WouldBlock.
    pub fn flush(&mut self) -> Result<(), Error> {
        if self.phase == Phase::Connecting {
            return Ok(());
        }
        let w = &mut self.writer;
        while w.pos < w.out.len() {
            match self.stream.write(&w.out[w.pos..]) {
                Ok(n) => w.pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Error::Io(e)),
            }
        }
        w.out.clear();
        w.pos = 0;
        Ok(())
    }

    /// Consumes what it can of `data`; returns the bytes used.
    fn consume(
        &mut self,
        data: &[u8],
        on_event: &mut impl FnMut(Event<'_>, &mut Writer) -> Result<(), Error>,
    ) -> Result<usize, Error> {
        let mut at = 0;
        if self.phase == Phase::Upgrading {
            let Some(end) = data.windows(4).position(|w| w == b"\r\n\r\n") else {
                if data.len() > 16 * 1024 {
                    return Err(Error::Protocol("upgrade response head too long".into()));
                }
                return Ok(0);
            };
            wire::check_upgrade_response(&data[..end + 4], &self.key)?;
            self.phase = Phase::Open;
            at = end + 4;
            on_event(Event::Upgraded, &mut self.writer)?;
        }
        while let Some(head) = wire::parse_head(&data[at..])? {
            let start = at + head.header_len;
            let end = start + head.payload_len;
            if data.len() < end {
                break;
            }
            at = end;
            let payload = &data[start..end];
            if self.phase == Phase::Closed {
                return Err(Error::Protocol("frame after the close frame".into()));
            }
            match head.opcode {
                OP_PING => self.writer.send(OP_PONG, payload),
                OP_PONG => {}
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    self.phase = Phase::Closed;
                    on_event(Event::Close(code), &mut self.writer)?;
                }
                opcode => self.data_frame(head.fin, opcode, payload, on_event)?,
            }
        }
        Ok(at)
    }

    fn data_frame(
        &mut self,
        fin: bool,
        opcode: u8,
        payload: &[u8],
        on_event: &mut impl FnMut(Event<'_>, &mut Writer) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match (opcode, self.fragments.as_mut()) {
            (OP_CONT, None) => Err(Error::Protocol("continuation without a start".into())),
            (OP_CONT, Some((_, joined))) => {
                joined.extend_from_slice(payload);
                if fin {
                    let (opcode, joined) = self.fragments.take().unwrap();
                    on_event(Event::Message(opcode, &joined), &mut self.writer)?;
                }
                Ok(())
            }
            (_, Some(_)) => Err(Error::Protocol(
                "new message inside a fragmented one".into(),
            )),
            (opcode, None) if fin => on_event(Event::Message(opcode, payload), &mut self.writer),
            (opcode, None) => {
                self.fragments = Some((opcode, payload.to_vec()));
                Ok(())
            }
        }
    }
}

/// Sets IP_BIND_ADDRESS_NO_PORT: bind picks the address only and the port
/// is chosen at connect, per destination (socket2 has no setter for it).
fn bind_address_no_port(socket: &Socket) -> io::Result<()> {
    use std::os::fd::AsRawFd;
    let on: libc::c_int = 1;
    // SAFETY: the descriptor is open for the call and the option value
    // points to a c_int of the length given.
    let rc = unsafe {
        libc::setsockopt(
            socket.as_raw_fd(),
            libc::IPPROTO_IP,
            libc::IP_BIND_ADDRESS_NO_PORT,
            (&on as *const libc::c_int).cast(),
            std::mem::size_of::<libc::c_int>() as libc::socklen_t,
        )
    };
    if rc == 0 {
        Ok(())
    } else {
        Err(io::Error::last_os_error())
    }
}
