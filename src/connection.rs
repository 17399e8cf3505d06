//! The per-connection state machine and the connection table the server and
//! every [`Context`](crate::Context) share.
//!
//! Nothing here calls a component: methods change state and queue what the
//! server must do next (a callback in [`Net::pending`], a socket to drop in
//! [`Net::doomed`]). The server delivers those between callbacks, so a
//! component closing another connection from inside `on_message` never
//! re-enters itself.

use std::collections::VecDeque;
use std::fmt;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, warn};
use slab::Slab;

use crate::close::CloseReason;
use crate::config::ServerConfig;
use crate::error::{Error, Limit};
use crate::frame::decode::Decoder;
use crate::frame::{Violation, close_code, encode};
use crate::http::HttpRequest;
use crate::reactor::SourceId;
use crate::topics::{Broker, Topics};
use crate::transport::Transport;

/// Identifies a connection for its whole life; Ratchet's `resourceId`.
///
/// It holds a slot and a generation, so an id kept after its connection
/// closed never reaches the connection that later reuses the slot: sends to
/// it report [`SendStatus::Dropped`].
///
/// Ids order by their slot in the connection table (then generation), so
/// sets of them walk the table in memory order.
#[derive(Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct ConnId {
    pub(crate) key: u32,
    pub(crate) generation: u32,
}

impl ConnId {
    /// A number unique among the connections of one server process (until
    /// 2^32 connections were opened), for logs and protocol messages.
    pub fn resource_id(self) -> u64 {
        u64::from(self.generation)
    }
}

impl fmt::Debug for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.generation)
    }
}

impl fmt::Display for ConnId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "#{}", self.generation)
    }
}

/// What became of a send, as uWebSockets reports it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[must_use = "a send can report backpressure or a dropped connection"]
pub enum SendStatus {
    /// Queued; it goes out once the callback returns.
    Sent,
    /// Queued, but the connection has more than
    /// [`ServerConfig::backpressure_threshold`](crate::ServerConfig::backpressure_threshold)
    /// unsent: slow down until [`Component::on_drain`](crate::Component::on_drain).
    Backpressure,
    /// Not sent: the connection is closed or closing, or this send pushed it
    /// past [`ServerConfig::max_backpressure`](crate::ServerConfig::max_backpressure)
    /// and it was closed.
    Dropped,
}

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

    /// Writes queued output until done or `WouldBlock`. `Ok(true)` when
    /// everything went out, including what the transport holds (TLS
    /// records): a writable event calls this with nothing queued to push
    /// those.
    pub(crate) fn write_out(&mut self) -> io::Result<bool> {
        while self.out_start < self.out.len() {
            match self.stream.write(&self.out[self.out_start..]) {
                Ok(0) => return Err(io::ErrorKind::WriteZero.into()),
                Ok(n) => self.out_start += n,
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

/// A callback the server owes a component.
#[derive(Debug)]
pub(crate) enum Pending {
    Error {
        conn: ConnId,
        component: u32,
        session: u32,
        error: Error,
    },
    Close {
        conn: ConnId,
        component: u32,
        session: u32,
        reason: CloseReason,
    },
    Drain {
        conn: ConnId,
        component: u32,
        session: u32,
    },
}

/// The connection table and the queues of work between callbacks.
pub(crate) struct Net {
    pub(crate) conns: Slab<Connection>,
    /// Connections with output to write at the end of the turn.
    pub(crate) dirty: Vec<u32>,
    /// Connections to drop at the next settle.
    pub(crate) doomed: Vec<u32>,
    pub(crate) pending: VecDeque<Pending>,
    pub(crate) config: ServerConfig,
    /// The reactor handler all this server's sockets report to.
    pub(crate) handler: SourceId,
    epoch: Instant,
    /// The server clock, in ms since `epoch`, refreshed once per entry.
    pub(crate) now: u32,
    next_generation: u32,
    /// Reused to encode a frame sent to many connections.
    pub(crate) scratch: Vec<u8>,
    /// The output buffer the loop lends to a connection that has none when
    /// something is queued on it, and takes back once it is written out. In
    /// the common request/reply pattern every connection in turn borrows
    /// this one buffer, which stays hot in cache; it is never shared: a
    /// connection that cannot write everything keeps it as its own.
    pub(crate) spare_out: Vec<u8>,
    pub(crate) shutting_down: bool,
    /// Reused to list the targets of a route-wide broadcast or a publish.
    targets: Vec<ConnId>,
    /// Which connections subscribe to which topics.
    pub(crate) topics: Topics<ConnId>,
    /// The other nodes' side of the topics, with a Redis broker.
    pub(crate) broker: Option<Broker>,
}

impl Net {
    pub(crate) fn new(config: ServerConfig, handler: SourceId) -> Self {
        Net {
            conns: Slab::new(),
            dirty: Vec::new(),
            doomed: Vec::new(),
            pending: VecDeque::new(),
            config,
            handler,
            epoch: Instant::now(),
            now: 0,
            next_generation: 0,
            scratch: Vec::new(),
            spare_out: Vec::new(),
            shutting_down: false,
            targets: Vec::new(),
            topics: Topics::default(),
            broker: None,
        }
    }

    /// Advances the server clock to `now`.
    pub(crate) fn tick(&mut self, now: Instant) {
        // Wraps after 49 days; every comparison uses wrapping differences.
        self.now = now.duration_since(self.epoch).as_millis() as u32;
    }

    pub(crate) fn next_generation(&mut self) -> u32 {
        self.next_generation = self.next_generation.wrapping_add(1);
        self.next_generation
    }

    pub(crate) fn id(&self, key: u32) -> Option<ConnId> {
        self.conns.get(key as usize).map(|c| ConnId {
            key,
            generation: c.generation,
        })
    }

    /// The connection `id` names, if it still exists.
    pub(crate) fn get(&self, id: ConnId) -> Option<&Connection> {
        self.conns
            .get(id.key as usize)
            .filter(|c| c.generation == id.generation)
    }

    fn get_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.conns
            .get_mut(id.key as usize)
            .filter(|c| c.generation == id.generation)
    }

    /// The open connections of route `route` (of every route for `None`),
    /// in a reused vector to give back with [`Net::recycle_targets`].
    pub(crate) fn open_connections(&mut self, route: Option<u32>) -> Vec<ConnId> {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        targets.extend(self.conns.iter().filter_map(|(key, c)| {
            let on_route = route.is_none_or(|r| c.component() == r);
            (c.phase == Phase::Open && on_route).then_some(ConnId {
                key: key as u32,
                generation: c.generation,
            })
        }));
        targets
    }

    /// The subscribers of topic `name`, in the reused vector of
    /// [`Net::open_connections`].
    pub(crate) fn subscribers(&mut self, name: &str) -> Vec<ConnId> {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        self.topics.members_into(name, &mut targets);
        targets
    }

    /// Takes back the vector [`Net::open_connections`] lent.
    pub(crate) fn recycle_targets(&mut self, targets: Vec<ConnId>) {
        self.targets = targets;
    }

    /// The client's address: `X-Forwarded-For` when the peer is a trusted
    /// proxy, the peer otherwise.
    pub(crate) fn client_addr(&self, conn: &Connection) -> SocketAddr {
        let proxies = &self.config.trusted_proxies;
        if proxies.is_empty() {
            return conn.peer;
        }
        let forwarded = conn.request.as_deref().into_iter().flat_map(|r| {
            r.headers()
                .filter(|(name, _)| name.eq_ignore_ascii_case("x-forwarded-for"))
                .map(|(_, value)| value)
        });
        proxies.client(conn.peer, forwarded).unwrap_or(conn.peer)
    }

    /// Lists the connection for the end-of-turn flush.
    pub(crate) fn mark_dirty(&mut self, key: u32) {
        if let Some(conn) = self.conns.get_mut(key as usize)
            && !conn.has(flag::DIRTY)
        {
            conn.flags |= flag::DIRTY;
            self.dirty.push(key);
        }
    }

    /// Queues pre-encoded frame bytes on an open connection.
    pub(crate) fn send_frame(&mut self, id: ConnId, frame: &[u8]) -> SendStatus {
        self.queue(id, |out| encode::append(out, frame))
    }

    /// Encodes a message straight into the connection's output buffer.
    pub(crate) fn send_message(&mut self, id: ConnId, text: bool, payload: &[u8]) -> SendStatus {
        self.queue(id, |out| encode::message(out, text, payload))
    }

    /// Appends to an open connection's output with `write`, then applies the
    /// backpressure limits.
    fn queue(&mut self, id: ConnId, write: impl FnOnce(&mut Vec<u8>)) -> SendStatus {
        let (threshold, max) = (
            self.config.backpressure_threshold,
            self.config.max_backpressure,
        );
        let Some(conn) = self
            .conns
            .get_mut(id.key as usize)
            .filter(|c| c.generation == id.generation)
        else {
            return SendStatus::Dropped;
        };
        if conn.phase != Phase::Open || conn.has(flag::DOOMED) {
            return SendStatus::Dropped;
        }
        lend_out(&mut self.spare_out, conn);
        write(&mut conn.out);
        let unsent = conn.unsent();
        if unsent <= threshold {
            self.mark_dirty(id.key);
            return SendStatus::Sent;
        }
        if unsent <= max {
            conn.flags |= flag::BACKPRESSURED;
            self.mark_dirty(id.key);
            return SendStatus::Backpressure;
        }
        self.overflow(id);
        SendStatus::Dropped
    }

    /// Closes a connection whose unsent output passed `max_backpressure`:
    /// its buffer is released at once and it is dropped at the next settle.
    fn overflow(&mut self, id: ConnId) {
        let max = self.config.max_backpressure;
        let Some(conn) = self.get_mut(id) else {
            return;
        };
        warn!(
            "{id} from {}: outbound buffer over {max} bytes, closing",
            conn.peer
        );
        conn.out = Vec::new();
        conn.out_start = 0;
        let (component, session) = (conn.component(), conn.session);
        if conn.has(flag::OPENED) {
            self.pending.push_back(Pending::Error {
                conn: id,
                component,
                session,
                error: Error::Limit(Limit::Backpressure),
            });
        }
        self.doom(id.key, CloseReason::Limit(Limit::Backpressure));
    }

    /// Queues a control frame built by `write` (pong, ping, close), bypassing
    /// backpressure accounting: control frames are tiny and must go out.
    fn queue_control(&mut self, key: u32, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(conn) = self.conns.get_mut(key as usize) {
            lend_out(&mut self.spare_out, conn);
            write(&mut conn.out);
            self.mark_dirty(key);
        }
    }

    /// Queues a pong. Pongs are the one control frame the peer decides the
    /// number of, so they count against `max_backpressure`: a client that
    /// pings without reading cannot make the server buffer pongs forever.
    pub(crate) fn pong(&mut self, key: u32, payload: &[u8]) {
        self.queue_control(key, |out| encode::pong(out, payload));
        let max = self.config.max_backpressure;
        if let Some(id) = self.id(key)
            && self.conns[key as usize].unsent() > max
        {
            self.overflow(id);
        }
    }

    pub(crate) fn ping(&mut self, key: u32) {
        if let Some(conn) = self.conns.get_mut(key as usize) {
            conn.flags |= flag::PING_SENT;
        }
        self.queue_control(key, |out| encode::ping(out, b""));
    }

    /// Starts the close handshake from our side: a close frame now, the
    /// socket dropped when the peer answers (or after the close timeout).
    pub(crate) fn close(&mut self, id: ConnId, code: u16, text: &str, reason: CloseReason) {
        let now = self.now;
        let Some(conn) = self.get_mut(id) else {
            return;
        };
        match conn.phase {
            Phase::Open => {
                encode::close(&mut conn.out, code, text);
                conn.phase = Phase::AwaitingClose;
                conn.since = now;
                conn.reason.get_or_insert_with(|| Box::new(reason));
                self.mark_dirty(id.key);
            }
            Phase::Handshake => self.doom(id.key, reason),
            Phase::AwaitingClose | Phase::Flushing => {}
        }
    }

    /// Fails the connection: a close frame with `code`, then the socket is
    /// dropped without waiting for the peer (RFC 6455 §7.1.7).
    pub(crate) fn fail(
        &mut self,
        key: u32,
        code: u16,
        text: &str,
        reason: CloseReason,
        error: Option<Error>,
    ) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(key as usize) else {
            return;
        };
        let id = ConnId {
            key,
            generation: conn.generation,
        };
        if conn.phase == Phase::Open {
            encode::close(&mut conn.out, code, text);
        }
        if conn.phase != Phase::Handshake {
            conn.phase = Phase::Flushing;
            conn.since = now;
        }
        if let (Some(error), true) = (error, conn.has(flag::OPENED)) {
            let (component, session) = (conn.component(), conn.session);
            self.pending.push_back(Pending::Error {
                conn: id,
                component,
                session,
                error,
            });
        }
        let conn = &mut self.conns[key as usize];
        conn.reason.get_or_insert_with(|| Box::new(reason));
        if conn.phase == Phase::Handshake {
            self.doom(key, CloseReason::Io(io::ErrorKind::InvalidData));
        } else {
            self.mark_dirty(key);
        }
    }

    /// Fails the connection for a protocol violation by the peer.
    pub(crate) fn violation(&mut self, key: u32, violation: Violation) {
        if let Some(conn) = self.conns.get(key as usize) {
            if violation.code == close_code::TOO_BIG {
                warn!(
                    "{} from {}: {}, closing with 1009",
                    conn.generation, conn.peer, violation.reason
                );
            } else {
                debug!(
                    "#{} from {}: {}, closing with {}",
                    conn.generation, conn.peer, violation.reason, violation.code
                );
            }
        }
        let reason = if violation.code == close_code::TOO_BIG {
            CloseReason::Limit(Limit::MessageTooBig)
        } else {
            CloseReason::Protocol(violation)
        };
        let error = if violation.code == close_code::TOO_BIG {
            Error::Limit(Limit::MessageTooBig)
        } else {
            Error::Protocol(violation)
        };
        self.fail(key, violation.code, violation.reason, reason, Some(error));
    }

    /// The peer sent a close frame.
    pub(crate) fn peer_closed(&mut self, key: u32, code: u16, text: &str) {
        let now = self.now;
        let Some(conn) = self.conns.get_mut(key as usize) else {
            return;
        };
        if conn.phase == Phase::Open {
            // Echo the peer's code (RFC 6455 §5.5.1); a close without a code
            // is answered by a close without a code.
            if code == close_code::NO_STATUS {
                encode::frame(
                    &mut conn.out,
                    tungstenite::protocol::frame::coding::OpCode::Control(
                        tungstenite::protocol::frame::coding::Control::Close,
                    ),
                    &[],
                );
            } else {
                encode::close(&mut conn.out, code, "");
            }
            conn.reason.get_or_insert_with(|| {
                Box::new(CloseReason::Peer {
                    code,
                    reason: text.to_owned(),
                })
            });
        }
        conn.phase = Phase::Flushing;
        conn.since = now;
        self.mark_dirty(key);
    }

    /// Marks the connection to be dropped at the next settle, recording why.
    pub(crate) fn doom(&mut self, key: u32, reason: CloseReason) {
        if let Some(conn) = self.conns.get_mut(key as usize)
            && !conn.has(flag::DOOMED)
        {
            conn.flags |= flag::DOOMED;
            conn.reason.get_or_insert_with(|| Box::new(reason));
            self.doomed.push(key);
        }
    }

    /// Decides where a connection's drained output buffer goes: back to the
    /// loop as its spare when that is the better buffer to lend next, kept
    /// while the connection is busy (no allocation per message), freed when
    /// it is quiet (just upgraded, or only receiving broadcasts), so that
    /// thousands of idle connections leave no buffers behind. The sweep
    /// frees what busy connections kept once they go quiet.
    fn recycle_out(&mut self, key: u32) {
        let Some(conn) = self.conns.get_mut(key as usize) else {
            return;
        };
        let capacity = conn.out.capacity();
        if capacity == 0 {
            return;
        }
        if capacity <= RETAINED_BUFFER && capacity > self.spare_out.capacity() {
            self.spare_out = std::mem::take(&mut conn.out);
        } else if !conn.has(flag::RECENT) || capacity > RETAINED_BUFFER {
            conn.out = Vec::new();
        }
    }

    /// [`Net::flush`] when the connection has output queued since its last
    /// flush.
    pub(crate) fn flush_if_dirty(&mut self, key: u32) {
        if self
            .conns
            .get(key as usize)
            .is_some_and(|c| c.has(flag::DIRTY))
        {
            self.flush(key);
        }
    }

    /// Writes a connection's queued output; handles completion (drain,
    /// end of a close) and failure.
    pub(crate) fn flush(&mut self, key: u32) {
        let Some(conn) = self.conns.get_mut(key as usize) else {
            return;
        };
        conn.flags &= !flag::DIRTY;
        if conn.has(flag::DOOMED) {
            return;
        }
        let written = conn.write_out();
        if conn.out.is_empty() {
            self.recycle_out(key);
        }
        let conn = &mut self.conns[key as usize];
        match written {
            Ok(false) => {}
            Ok(true) => {
                if conn.phase == Phase::Flushing {
                    conn.stream.shutdown_write();
                    self.doom(key, CloseReason::Io(io::ErrorKind::NotConnected));
                } else if conn.has(flag::BACKPRESSURED) {
                    conn.flags &= !flag::BACKPRESSURED;
                    let (component, session) = (conn.component(), conn.session);
                    let generation = conn.generation;
                    self.pending.push_back(Pending::Drain {
                        conn: ConnId { key, generation },
                        component,
                        session,
                    });
                }
            }
            Err(e) => {
                debug!("#{} from {}: write failed: {e}", conn.generation, conn.peer);
                self.doom(key, CloseReason::Io(e.kind()));
            }
        }
    }
}

#[cfg(test)]
mod tests {
    //! The connection's state machine over an in-memory peer that answers
    //! `WouldBlock` as a full socket does: partial writes, backpressure and
    //! drain, the close handshake from either side, overflow.

    use super::*;
    use crate::transport::memory::MemoryStream;

    #[test]
    fn an_idle_connection_stays_small() {
        // The per-connection figure the README promises rests on this.
        let size = std::mem::size_of::<Connection>();
        println!("Connection: {size} bytes");
        assert!(size <= 160, "{size}");
    }

    /// A table with one open connection whose peer takes `room` bytes.
    fn open_connection(room: usize, config: ServerConfig) -> (Net, ConnId) {
        let mut net = Net::new(config, SourceId::for_tests(0));
        let stream = Transport::Memory(Box::new(MemoryStream {
            room,
            ..MemoryStream::default()
        }));
        let peer = "127.0.0.1:9".parse().expect("an address");
        let generation = net.next_generation();
        let key = net
            .conns
            .insert(Connection::new(stream, peer, generation, 0)) as u32;
        let conn = &mut net.conns[key as usize];
        conn.phase = Phase::Open;
        conn.flags |= flag::OPENED;
        (net, ConnId { key, generation })
    }

    fn peer(net: &mut Net, id: ConnId) -> &mut MemoryStream {
        match &mut net.conns[id.key as usize].stream {
            Transport::Memory(m) => m,
            _ => unreachable!("the tests only make memory streams"),
        }
    }

    fn frame(text: &str) -> Vec<u8> {
        let mut out = Vec::new();
        encode::message(&mut out, true, text.as_bytes());
        out
    }

    #[test]
    fn a_send_the_socket_cannot_take_waits_and_drains_later() {
        let config = ServerConfig {
            backpressure_threshold: 64,
            ..ServerConfig::default()
        };
        let (mut net, id) = open_connection(10, config);
        let big = "x".repeat(100);
        assert_eq!(
            net.send_message(id, true, big.as_bytes()),
            SendStatus::Backpressure
        );
        assert_eq!(net.dirty, [id.key]);
        net.flush(id.key);
        // The socket took 10 bytes and said WouldBlock: the rest waits.
        assert_eq!(peer(&mut net, id).written.len(), 10);
        assert_eq!(net.conns[id.key as usize].unsent(), frame(&big).len() - 10);
        assert!(net.pending.is_empty(), "no drain while bytes wait");
        // A second send is queued behind the first, in order.
        assert_eq!(
            net.send_message(id, true, b"after"),
            SendStatus::Backpressure
        );
        peer(&mut net, id).room = usize::MAX;
        net.flush(id.key);
        let mut want = frame(&big);
        want.extend(frame("after"));
        assert_eq!(peer(&mut net, id).written, want);
        assert_eq!(net.conns[id.key as usize].unsent(), 0);
        assert!(matches!(
            net.pending.pop_front(),
            Some(Pending::Drain { conn, .. }) if conn == id
        ));
    }

    #[test]
    fn our_close_waits_for_the_peers_then_the_socket_goes() {
        let (mut net, id) = open_connection(usize::MAX, ServerConfig::default());
        net.close(id, 4000, "bye", CloseReason::Shutdown);
        assert_eq!(net.conns[id.key as usize].phase, Phase::AwaitingClose);
        assert_eq!(net.send_message(id, true, b"late"), SendStatus::Dropped);
        net.flush(id.key);
        let mut want = Vec::new();
        encode::close(&mut want, 4000, "bye");
        assert_eq!(peer(&mut net, id).written, want);
        assert!(net.doomed.is_empty(), "still waiting for the peer's close");
        net.peer_closed(id.key, 4000, "");
        net.flush(id.key);
        assert_eq!(net.doomed, [id.key]);
        assert!(peer(&mut net, id).write_closed);
        let reason = net.conns[id.key as usize].reason.as_deref().cloned();
        assert_eq!(reason, Some(CloseReason::Shutdown));
    }

    #[test]
    fn the_peers_close_is_echoed_then_the_socket_goes() {
        let (mut net, id) = open_connection(3, ServerConfig::default());
        net.peer_closed(id.key, 1001, "going");
        assert_eq!(net.conns[id.key as usize].phase, Phase::Flushing);
        net.flush(id.key);
        assert!(net.doomed.is_empty(), "the echo is not all out yet");
        peer(&mut net, id).room = usize::MAX;
        net.flush(id.key);
        let mut want = Vec::new();
        encode::close(&mut want, 1001, "");
        assert_eq!(peer(&mut net, id).written, want);
        assert_eq!(net.doomed, [id.key]);
        let reason = net.conns[id.key as usize].reason.as_deref().cloned();
        assert_eq!(
            reason,
            Some(CloseReason::Peer {
                code: 1001,
                reason: "going".into()
            })
        );
    }

    #[test]
    fn a_peer_that_never_reads_is_closed_past_max_backpressure() {
        let config = ServerConfig {
            backpressure_threshold: 16,
            max_backpressure: 64,
            ..ServerConfig::default()
        };
        let (mut net, id) = open_connection(0, config);
        assert_eq!(
            net.send_message(id, true, &[b'a'; 40]),
            SendStatus::Backpressure
        );
        assert_eq!(net.send_message(id, true, &[b'b'; 40]), SendStatus::Dropped);
        assert_eq!(net.doomed, [id.key]);
        assert_eq!(
            net.conns[id.key as usize].out.capacity(),
            0,
            "buffer freed at once"
        );
        assert!(matches!(
            net.pending.pop_front(),
            Some(Pending::Error {
                error: Error::Limit(Limit::Backpressure),
                ..
            })
        ));
        assert_eq!(net.send_message(id, true, b"c"), SendStatus::Dropped);
    }

    #[test]
    fn a_stale_id_reaches_nothing() {
        let (mut net, id) = open_connection(usize::MAX, ServerConfig::default());
        let stale = ConnId {
            generation: id.generation + 1,
            ..id
        };
        assert_eq!(net.send_message(stale, true, b"x"), SendStatus::Dropped);
        assert!(net.dirty.is_empty());
    }
}
