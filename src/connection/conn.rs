//! One client connection: where it is in its life, its flags, its
//! buffers, and writing out what is queued.

use std::io;
use std::net::SocketAddr;

use crate::close::CloseReason;
use crate::frame::decode::Decoder;
use crate::http::HttpRequest;
use crate::transport::Transport;

/// The largest empty buffer a busy connection keeps between messages.
pub(crate) const RETAINED_BUFFER: usize = 64 << 10;

/// Where a connection is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Phase {
    /// Reading the HTTP upgrade request.
    Handshake,
    /// Upgraded: frames flow both ways.
    Open,
    /// We sent a close frame and wait for the peer's.
    AwaitingClose,
    /// The last bytes (a close frame, an HTTP response) are going out; the
    /// socket is dropped once they are sent.
    Flushing,
}

/// Bits of [`Connection::flags`].
pub(crate) mod flag {
    /// Listed in [`super::Net::dirty`].
    pub(crate) const DIRTY: u8 = 1;
    /// A ping is out and unanswered.
    pub(crate) const PING_SENT: u8 = 2;
    /// A send reported backpressure; `on_drain` is owed.
    pub(crate) const BACKPRESSURED: u8 = 4;
    /// `on_open` ran, so `on_close` is owed.
    pub(crate) const OPENED: u8 = 8;
    /// Listed in [`super::Net::doomed`]: it is dropped at the next settle.
    pub(crate) const DOOMED: u8 = 16;
    /// Input arrived since the last sweep: keep buffers between messages.
    pub(crate) const RECENT: u8 = 32;
}

/// One client connection. Kept small: an idle connection holds no buffer.
#[derive(Debug)]
pub(crate) struct Connection {
    pub(crate) stream: Transport,
    pub(crate) generation: u32,
    /// Index of the component its route leads to; u16 keeps the struct
    /// small (an app has far fewer routes, see [`MAX_ROUTES`]).
    route: u16,
    /// Key of its session in that component's sessions.
    pub(crate) session: u32,
    pub(crate) phase: Phase,
    pub(crate) flags: u8,
    /// Milliseconds on the server clock: last input while open, start of the
    /// phase otherwise. Timeouts are measured from it.
    pub(crate) since: u32,
    /// Unsent output; `out[..out_start]` is already written.
    pub(crate) out: Vec<u8>,
    pub(crate) out_start: usize,
    /// Received bytes not yet decoded: a partial request or frame.
    pub(crate) input: Vec<u8>,
    pub(crate) decoder: Decoder,
    pub(crate) peer: SocketAddr,
    pub(crate) request: Option<Box<HttpRequest>>,
    /// Why it is closing, once known.
    pub(crate) reason: Option<Box<CloseReason>>,
}

/// The most WebSocket routes one server can have.
pub(crate) const MAX_ROUTES: usize = u16::MAX as usize + 1;

impl Connection {
    /// Index of the component its route leads to.
    pub(crate) fn component(&self) -> u32 {
        u32::from(self.route)
    }

    /// Puts it on route `index` (below [`MAX_ROUTES`], as the app checks).
    pub(crate) fn set_component(&mut self, index: usize) {
        self.route = u16::try_from(index).unwrap_or(u16::MAX);
    }

    pub(crate) fn new(stream: Transport, peer: SocketAddr, generation: u32, now: u32) -> Self {
        Connection {
            stream,
            generation,
            route: 0,
            session: 0,
            phase: Phase::Handshake,
            flags: 0,
            since: now,
            out: Vec::new(),
            out_start: 0,
            input: Vec::new(),
            decoder: Decoder::default(),
            peer,
            request: None,
            reason: None,
        }
    }

    /// Gives back buffers an idle connection no longer needs: an idle
    /// connection should hold no memory of its own.
    /// Returns the bytes released.
    pub(crate) fn release_buffers(&mut self) -> usize {
        let mut released = 0;
        if self.out.is_empty() && self.out.capacity() > 0 {
            released += self.out.capacity();
            self.out = Vec::new();
        }
        if self.input.is_empty() && self.input.capacity() > 0 {
            released += self.input.capacity();
            self.input = Vec::new();
        }
        released
    }

    /// Bytes queued and not yet written.
    pub(crate) fn unsent(&self) -> usize {
        self.out.len() - self.out_start
    }

    pub(crate) fn has(&self, bits: u8) -> bool {
        self.flags & bits != 0
    }

    /// Writes queued output until done or `WouldBlock`, adding the bytes
    /// written to `written`. `Ok(true)` when everything went out, including
    /// what the transport holds (TLS records): a writable event calls this
    /// with nothing queued to push those.
    pub(crate) fn write_out(&mut self, written: &mut u64) -> io::Result<bool> {
        while self.out_start < self.out.len() {
            match self.stream.write(&self.out[self.out_start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.out_start += n;
                    *written += n as u64;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    // Keep the unsent tail at the front once the written part
                    // dominates, so a slow reader does not pin a huge prefix.
                    if self.out_start > self.out.len() / 2 {
                        self.out.drain(..self.out_start);
                        self.out_start = 0;
                    }
                    return Ok(false);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
        // Drained: the caller decides where the buffer goes (`Net::recycle_out`).
        self.out.clear();
        self.out_start = 0;
        match self.stream.flush() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

/// Gives `conn` the loop's spare output buffer when it has none of its own.
pub(crate) fn lend_out(spare: &mut Vec<u8>, conn: &mut Connection) {
    if conn.out.capacity() == 0 {
        conn.out = std::mem::take(spare);
    }
}
