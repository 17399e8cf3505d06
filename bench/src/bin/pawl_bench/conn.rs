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
use crate::deflate::{Agreed, Deflater, Inflater};
use crate::wire::{self, OP_BINARY, OP_CLOSE, OP_CONT, OP_PING, OP_PONG, OP_TEXT};

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
    /// What permessage-deflate parameters the server agreed to, if any.
    pub agreed: Option<Agreed>,
    /// This connection's compressor (its memory is taken at the first
    /// compressed message), once deflate is agreed.
    deflater: Option<Deflater>,
}

impl Writer {
    /// Queues a masked frame; it goes out on the next `flush`. Once
    /// permessage-deflate is agreed a data message goes compressed, with
    /// RSV1, as a browser sends it.
    pub fn send(&mut self, opcode: u8, payload: &[u8]) -> Result<(), Error> {
        let mask = self.next_mask();
        match self.deflater.as_mut() {
            Some(deflater) if opcode == OP_TEXT || opcode == OP_BINARY => {
                let z = deflater.compress(payload)?;
                wire::encode_masked_compressed(&mut self.out, opcode, z, mask);
            }
            _ => wire::encode_masked(&mut self.out, opcode, payload, mask),
        }
        Ok(())
    }

    /// Queues a message compressed elsewhere (RSV1 set): for callers that
    /// share one compressor over many connections.
    pub fn send_compressed(&mut self, opcode: u8, compressed: &[u8]) {
        let mask = self.next_mask();
        wire::encode_masked_compressed(&mut self.out, opcode, compressed, mask);
    }

    fn next_mask(&mut self) -> [u8; 4] {
        // xorshift: masks only need to vary, not to be secret, here.
        self.mask ^= self.mask << 13;
        self.mask ^= self.mask >> 17;
        self.mask ^= self.mask << 5;
        self.mask.to_ne_bytes()
    }
}

/// What a connection has received since its upgrade.
#[derive(Debug, Default, Clone, Copy)]
pub struct Received {
    /// Bytes of every frame, headers included: what crossed the wire.
    pub frame_bytes: u64,
    /// Data messages, and those of them that came compressed (RSV1).
    pub messages: u64,
    pub compressed: u64,
    /// Payload bytes of the data messages after inflating.
    pub message_bytes: u64,
}

pub struct WsConn {
    stream: TcpStream,
    phase: Phase,
    key: String,
    /// Bytes of a partial response head or frame kept between reads.
    pending: Vec<u8>,
    /// A fragmented message being joined: its opcode, whether it is
    /// compressed, and its bytes so far.
    fragments: Option<(u8, bool, Vec<u8>)>,
    /// Whether the request offered permessage-deflate.
    offered: bool,
    /// The decompressor, once deflate is agreed.
    inflater: Option<Inflater>,
    pub received: Received,
    pub writer: Writer,
}

impl WsConn {
    /// Starts a non-blocking connect from `source` (port chosen at connect
    /// time, so each source address has the whole ephemeral range per
    /// destination) and queues the upgrade request for `path`, offering
    /// permessage-deflate if `deflate`.
    pub fn connect(
        registry: &Registry,
        token: Token,
        server: SocketAddrV4,
        source: Ipv4Addr,
        path: &str,
        seed: u64,
        deflate: bool,
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
        let (request, key) = wire::upgrade_request(&server.to_string(), path, seed, deflate);
        Ok(WsConn {
            stream,
            phase: Phase::Connecting,
            key,
            pending: Vec::new(),
            fragments: None,
            offered: deflate,
            inflater: None,
            received: Received::default(),
            writer: Writer {
                out: request,
                pos: 0,
                mask: (seed as u32) | 1,
                agreed: None,
                deflater: None,
            },
        })
    }

    pub fn phase(&self) -> Phase {
        self.phase
    }

    /// Queues our close frame (status 1000) and waits for the server's.
    pub fn close(&mut self) {
        if self.phase == Phase::Open {
            // A control frame never goes compressed: this cannot fail.
            let _ = self.writer.send(OP_CLOSE, &1000u16.to_be_bytes());
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
            let agreed = wire::check_upgrade_response(&data[..end + 4], &self.key, self.offered)?;
            if let Some(agreed) = agreed {
                self.inflater = Some(Inflater::new(&agreed));
                self.writer.deflater = Some(Deflater::new(&agreed, true));
                self.writer.agreed = Some(agreed);
            }
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
            self.received.frame_bytes += (head.header_len + head.payload_len) as u64;
            let payload = &data[start..end];
            if self.phase == Phase::Closed {
                return Err(Error::Protocol("frame after the close frame".into()));
            }
            if head.rsv1
                && (self.writer.agreed.is_none() || !matches!(head.opcode, OP_TEXT | OP_BINARY))
            {
                return Err(Error::Protocol(format!(
                    "RSV1 on opcode {} ({})",
                    head.opcode,
                    if self.writer.agreed.is_none() {
                        "deflate not agreed"
                    } else {
                        "only a message's first frame may carry it"
                    }
                )));
            }
            match head.opcode {
                OP_PING => self.writer.send(OP_PONG, payload)?,
                OP_PONG => {}
                OP_CLOSE => {
                    let code =
                        (payload.len() >= 2).then(|| u16::from_be_bytes([payload[0], payload[1]]));
                    self.phase = Phase::Closed;
                    on_event(Event::Close(code), &mut self.writer)?;
                }
                opcode => self.data_frame(head.fin, head.rsv1, opcode, payload, on_event)?,
            }
        }
        Ok(at)
    }

    fn data_frame(
        &mut self,
        fin: bool,
        rsv1: bool,
        opcode: u8,
        payload: &[u8],
        on_event: &mut impl FnMut(Event<'_>, &mut Writer) -> Result<(), Error>,
    ) -> Result<(), Error> {
        match (opcode, self.fragments.as_mut()) {
            (OP_CONT, None) => Err(Error::Protocol("continuation without a start".into())),
            (OP_CONT, Some((_, _, joined))) => {
                joined.extend_from_slice(payload);
                if fin {
                    let Some((opcode, compressed, joined)) = self.fragments.take() else {
                        return Ok(());
                    };
                    self.message(opcode, compressed, &joined, on_event)?;
                }
                Ok(())
            }
            (_, Some(_)) => Err(Error::Protocol(
                "new message inside a fragmented one".into(),
            )),
            (opcode, None) if fin => self.message(opcode, rsv1, payload, on_event),
            (opcode, None) => {
                self.fragments = Some((opcode, rsv1, payload.to_vec()));
                Ok(())
            }
        }
    }

    /// Hands a whole data message to the owner, inflated if it came
    /// compressed.
    fn message(
        &mut self,
        opcode: u8,
        compressed: bool,
        payload: &[u8],
        on_event: &mut impl FnMut(Event<'_>, &mut Writer) -> Result<(), Error>,
    ) -> Result<(), Error> {
        self.received.messages += 1;
        let payload = match (compressed, self.inflater.as_mut()) {
            (false, _) => payload,
            (true, Some(inflater)) => {
                self.received.compressed += 1;
                inflater.inflate(payload)?
            }
            (true, None) => return Err(Error::Protocol("RSV1 without deflate".into())),
        };
        self.received.message_bytes += payload.len() as u64;
        if compressed && opcode == OP_TEXT && std::str::from_utf8(payload).is_err() {
            return Err(Error::Protocol("text message is not UTF-8".into()));
        }
        on_event(Event::Message(opcode, payload), &mut self.writer)
    }
}

/// Opens one connection to `server`, offering permessage-deflate if
/// `deflate`, and returns the server's answer as the response header's
/// value (`None`: declined), after a clean close.
pub fn probe_extension(
    server: SocketAddrV4,
    path: &str,
    deflate: bool,
) -> Result<Option<String>, Error> {
    let mut poll = mio::Poll::new()?;
    let mut conn = WsConn::connect(
        poll.registry(),
        Token(0),
        server,
        Ipv4Addr::LOCALHOST,
        path,
        u64::MAX,
        deflate,
    )?;
    let mut events = mio::Events::with_capacity(8);
    let mut scratch = vec![0u8; 16 * 1024];
    let deadline = std::time::Instant::now() + Duration::from_secs(5);
    while conn.phase() != Phase::Closed {
        if std::time::Instant::now() > deadline {
            return Err(Error::Timeout("probe connection".into()));
        }
        poll.poll(&mut events, Some(Duration::from_millis(50)))?;
        conn.ready(&mut scratch, &mut |_, _| Ok(()))?;
        conn.close();
        conn.flush()?;
    }
    Ok(conn.writer.agreed.map(|a| a.to_string()))
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
