//! One client connection: where it is in its life, its flags, its
//! buffers, and writing out what is queued.

use std::cell::Cell;
use std::collections::VecDeque;
use std::io::{self, IoSlice};
use std::net::SocketAddr;
use std::rc::Rc;

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
    /// permessage-deflate was agreed: the peer may send compressed messages,
    /// and the connection may be listed in [`super::Net::codecs`].
    pub(crate) const DEFLATE: u8 = 64;
    /// Messages at or above the compression threshold are sent compressed.
    pub(crate) const COMPRESS: u8 = 128;
    /// In the handshake: a `POST` route's check admitted the request head,
    /// so its body is being read. Shares its bit with [`DEFLATE`]: a POST
    /// request is answered and never upgraded, and `DEFLATE` is set only
    /// at an upgrade, so the two never meet on one connection.
    pub(crate) const POST_ADMITTED: u8 = DEFLATE;
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
    /// What few connections need, boxed so an idle one stays small: why it
    /// is closing, and output queued behind `out`.
    extra: Option<Box<Extra>>,
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
            extra: None,
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
        self.out.len() - self.out_start + self.later().map_or(0, Later::unsent)
    }

    /// Unsent bytes of the connection's own, not counting the frames it
    /// shares with others.
    pub(crate) fn unsent_owned(&self) -> usize {
        self.unsent() - self.later().map_or(0, |l| l.shared)
    }

    /// Where the next bytes to send are appended: `out`, unless shared
    /// frames are queued, which they must follow.
    pub(crate) fn out_tail(&mut self) -> &mut Vec<u8> {
        match self.extra.as_deref_mut().and_then(|e| e.later.as_mut()) {
            None => &mut self.out,
            Some(later) => later.owned_tail(),
        }
    }

    /// Queues a frame shared with other connections by reference: a
    /// message sent to many connections costs its bytes once, however many
    /// of them are slow to read it.
    pub(crate) fn queue_shared(&mut self, frame: Rc<SharedFrame>) {
        let later = self
            .extra
            .get_or_insert_with(Box::default)
            .later
            .get_or_insert_with(Later::default);
        later.seal_tail();
        later.bytes += frame.bytes.len();
        later.shared += frame.bytes.len();
        later.segments.push_back(Segment {
            bytes: Bytes::Shared(frame),
            start: 0,
        });
    }

    /// Drops everything queued (a connection closed for not reading).
    pub(crate) fn discard_output(&mut self) {
        self.out = Vec::new();
        self.out_start = 0;
        self.clear_later();
    }

    fn later(&self) -> Option<&Later> {
        self.extra.as_ref()?.later.as_ref()
    }

    fn clear_later(&mut self) {
        if let Some(extra) = self.extra.as_mut() {
            extra.later = None;
            if extra.reason.is_none() {
                self.extra = None;
            }
        }
    }

    /// Records why it is closing, unless a reason was recorded before.
    pub(crate) fn set_reason(&mut self, reason: CloseReason) {
        self.extra
            .get_or_insert_with(Box::default)
            .reason
            .get_or_insert(reason);
    }

    /// Why it is closing, once known.
    #[cfg(test)]
    pub(crate) fn reason(&self) -> Option<&CloseReason> {
        self.extra.as_ref()?.reason.as_ref()
    }

    /// Takes why it closed, as it is dropped.
    pub(crate) fn take_reason(&mut self) -> Option<CloseReason> {
        self.extra.as_mut()?.reason.take()
    }

    pub(crate) fn has(&self, bits: u8) -> bool {
        self.flags & bits != 0
    }

    /// Writes queued output until done or `WouldBlock`, adding the bytes
    /// written to `written`. `Ok(true)` when everything went out, including
    /// what the transport holds (TLS records): a writable event calls this
    /// with nothing queued to push those.
    pub(crate) fn write_out(&mut self, written: &mut u64) -> io::Result<bool> {
        while self.unsent() > 0 {
            let later = self.extra.as_deref().and_then(|e| e.later.as_ref());
            let result = match later {
                // The common case, one buffer: one `write`.
                None => self.stream.write(&self.out[self.out_start..]),
                Some(later) => {
                    let mut slices = [IoSlice::new(&[]); MAX_SLICES];
                    slices[0] = IoSlice::new(&self.out[self.out_start..]);
                    let used = 1 + later.fill(&mut slices[1..]);
                    self.stream.write_vectored(&slices[..used])
                }
            };
            match result {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => {
                    self.consume(n);
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
        self.clear_later();
        match self.stream.flush() {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => Err(e),
        }
    }
}

impl Connection {
    /// Marks `n` bytes written: from `out` first, then from the queue.
    fn consume(&mut self, mut n: usize) {
        let from_out = n.min(self.out.len() - self.out_start);
        self.out_start += from_out;
        n -= from_out;
        let Some(later) = self.extra.as_deref_mut().and_then(|e| e.later.as_mut()) else {
            return;
        };
        later.consume(n);
        if later.segments.is_empty() {
            self.clear_later();
        }
    }
}

/// A frame queued by reference on several connections (a broadcast, a
/// publish), counted in its server's gauge of shared bytes for as long as
/// any connection holds it: the server's budget for unsent output counts
/// what is really held, each shared frame once.
pub(crate) struct SharedFrame {
    bytes: Box<[u8]>,
    gauge: Rc<Cell<usize>>,
}

impl SharedFrame {
    /// `bytes`, shared, counted in `gauge`.
    pub(crate) fn new(bytes: &[u8], gauge: &Rc<Cell<usize>>) -> Rc<SharedFrame> {
        gauge.set(gauge.get() + bytes.len());
        Rc::new(SharedFrame {
            bytes: bytes.into(),
            gauge: Rc::clone(gauge),
        })
    }
}

impl Drop for SharedFrame {
    fn drop(&mut self) {
        self.gauge
            .set(self.gauge.get().saturating_sub(self.bytes.len()));
    }
}

impl std::fmt::Debug for SharedFrame {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SharedFrame({} bytes)", self.bytes.len())
    }
}

/// See [`Connection::extra`].
#[derive(Debug, Default)]
struct Extra {
    reason: Option<CloseReason>,
    later: Option<Later>,
}

/// The most buffers one `writev` is given (the first is `out`).
const MAX_SLICES: usize = 16;

/// Output queued behind [`Connection::out`].
#[derive(Debug, Default)]
struct Later {
    segments: VecDeque<Segment>,
    /// Unsent bytes in `segments`, except in an open tail.
    bytes: usize,
    /// Of those, bytes of shared frames.
    shared: usize,
    /// The last segment is an owned buffer still being appended to, whose
    /// bytes `bytes` does not count yet (they are counted when it is
    /// sealed by a shared frame behind it, or read off its length).
    tail_open: bool,
}

/// One queued buffer and how much of it is written.
#[derive(Debug)]
struct Segment {
    bytes: Bytes,
    start: usize,
}

#[derive(Debug)]
enum Bytes {
    /// A frame other connections are sent too.
    Shared(Rc<SharedFrame>),
    /// This connection's own bytes, queued after a shared frame.
    Owned(Vec<u8>),
}

impl Bytes {
    fn as_slice(&self) -> &[u8] {
        match self {
            Bytes::Shared(frame) => &frame.bytes,
            Bytes::Owned(bytes) => bytes,
        }
    }
}

impl Later {
    /// Unsent bytes in the queue.
    fn unsent(&self) -> usize {
        self.bytes + self.open_tail_unsent()
    }

    fn open_tail_unsent(&self) -> usize {
        match self.segments.back() {
            Some(tail) if self.tail_open => tail.bytes.as_slice().len() - tail.start,
            _ => 0,
        }
    }

    /// Counts the open tail into `bytes`: nothing more is appended to it.
    fn seal_tail(&mut self) {
        self.bytes += self.open_tail_unsent();
        self.tail_open = false;
    }

    /// An owned buffer at the end of the queue, to append to.
    fn owned_tail(&mut self) -> &mut Vec<u8> {
        if !self.tail_open {
            self.segments.push_back(Segment {
                bytes: Bytes::Owned(Vec::new()),
                start: 0,
            });
            self.tail_open = true;
        }
        match self.segments.back_mut() {
            Some(Segment {
                bytes: Bytes::Owned(bytes),
                ..
            }) => bytes,
            _ => unreachable!("an owned segment was just pushed"),
        }
    }

    /// Fills `slices` with the unsent parts of the first segments; returns
    /// how many it filled.
    fn fill<'a>(&'a self, slices: &mut [IoSlice<'a>]) -> usize {
        let mut used = 0;
        for (slot, segment) in slices.iter_mut().zip(&self.segments) {
            *slot = IoSlice::new(&segment.bytes.as_slice()[segment.start..]);
            used += 1;
        }
        used
    }

    /// Marks `n` bytes of the queue written.
    fn consume(&mut self, mut n: usize) {
        while n > 0 {
            let open_tail_in_front = self.tail_open && self.segments.len() == 1;
            let Some(front) = self.segments.front_mut() else {
                return;
            };
            let left = front.bytes.as_slice().len() - front.start;
            let step = n.min(left);
            front.start += step;
            if !open_tail_in_front {
                self.bytes -= step;
            }
            if let Bytes::Shared(_) = front.bytes {
                self.shared -= step;
            }
            n -= step;
            if step == left {
                self.segments.pop_front();
                if self.segments.is_empty() {
                    self.tail_open = false;
                }
            }
        }
    }
}

/// Gives `conn` the loop's spare output buffer when it has none of its own.
pub(crate) fn lend_out(spare: &mut Vec<u8>, conn: &mut Connection) {
    if conn.out.capacity() == 0 {
        conn.out = std::mem::take(spare);
    }
}
