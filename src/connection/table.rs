//! The connection table and the queues of work between callbacks.
//!
//! Nothing here calls a component: methods change state and queue what the
//! server must do next (a callback in [`Net::pending`], a socket to drop in
//! [`Net::doomed`]).

use std::cell::Cell;
use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::rc::Rc;
use std::time::Instant;

use log::{debug, warn};
use slab::Slab;

use super::{
    ConnId, Connection, Pending, Phase, RETAINED_BUFFER, SendStatus, SharedFrame, flag, lend_out,
};
use crate::close::CloseReason;
use crate::config::ServerConfig;
use crate::deflate::codecs::Codecs;
use crate::error::{Error, Limit};
use crate::frame::{Violation, close_code, encode};
use crate::message::Message;
use crate::reactor::SourceId;
use crate::stats::Stats;
use crate::topics::{Broker, Topics};

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
    /// permessage-deflate's compressors and decompressors.
    pub(crate) codecs: Codecs,
    /// Reused for a compressed payload, then for a compressed frame sent to
    /// many connections.
    deflated: Vec<u8>,
    deflated_frame: Vec<u8>,
    /// Reused for an inflated message.
    pub(crate) inflated: Vec<u8>,
    /// Unsent bytes the connections hold of their own (kept as they change,
    /// recounted by every sweep).
    owned_unsent: usize,
    /// Bytes of shared frames some connection still holds.
    shared_unsent: Rc<Cell<usize>>,
    /// The counters; the gauges in it are filled in by [`Net::stats`].
    pub(crate) stats: Stats,
}

/// Frames at least this long that go to many connections are queued on
/// each by reference rather than copied: a copy of a small frame costs
/// less than the bookkeeping, and a small frame multiplied by its
/// receivers is no memory threat within `max_backpressure`.
const SHARE_MIN: usize = 1024;

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
            codecs: Codecs::default(),
            deflated: Vec::new(),
            deflated_frame: Vec::new(),
            inflated: Vec::new(),
            owned_unsent: 0,
            shared_unsent: Rc::new(Cell::new(0)),
            stats: Stats::default(),
        }
    }

    /// A snapshot of the counters, with the gauges as of now. Unsent bytes
    /// are summed over the table here rather than tracked on every write.
    pub(crate) fn stats(&self) -> Stats {
        let mut stats = self.stats.clone();
        stats.connections_open = stats
            .connections_opened
            .saturating_sub(stats.closed.total());
        stats.unsent_bytes = self.conns.iter().map(|(_, c)| c.unsent() as u64).sum();
        stats.compression_streams = self.codecs.dedicated_streams() as u64;
        stats.broker = self.broker.as_ref().map(Broker::stats);
        stats
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
    /// in table order.
    pub(crate) fn open_on(&self, route: Option<u32>) -> impl Iterator<Item = ConnId> + '_ {
        self.conns.iter().filter_map(move |(key, c)| {
            let on_route = route.is_none_or(|r| c.component() == r);
            (c.phase == Phase::Open && on_route).then_some(ConnId {
                key: key as u32,
                generation: c.generation,
            })
        })
    }

    /// A reused vector of fan-out targets, filled by `fill`; give it back
    /// with [`Net::recycle_targets`].
    pub(crate) fn lend_targets(
        &mut self,
        fill: impl FnOnce(&Net, &mut Vec<ConnId>),
    ) -> Vec<ConnId> {
        let mut targets = std::mem::take(&mut self.targets);
        targets.clear();
        fill(self, &mut targets);
        targets
    }

    /// Takes back the vector [`Net::lend_targets`] lent.
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

    /// Queues a frame shared with other connections, by reference.
    fn send_shared(&mut self, id: ConnId, frame: &Rc<SharedFrame>) -> SendStatus {
        self.queue_on(id, |conn| conn.queue_shared(Rc::clone(frame)))
    }

    /// A frame for many connections: shared when long enough to matter.
    fn fan_out_frame(&mut self, bytes: &[u8]) -> Option<Rc<SharedFrame>> {
        (bytes.len() >= SHARE_MIN).then(|| SharedFrame::new(bytes, &self.shared_unsent))
    }

    /// Sends `frame` to `id`, by reference when it is `shared`.
    fn send_either(
        &mut self,
        id: ConnId,
        frame: &[u8],
        shared: &Option<Rc<SharedFrame>>,
    ) -> SendStatus {
        match shared {
            Some(shared) => self.send_shared(id, shared),
            None => self.send_frame(id, frame),
        }
    }

    /// Unsent output held across the server: every connection's own bytes,
    /// and each shared frame once.
    pub(crate) fn unsent_held(&self) -> usize {
        self.owned_unsent + self.shared_unsent.get()
    }

    /// Recounts the connections' own unsent bytes (the sweep does, so any
    /// drift in the running count cannot last).
    pub(crate) fn recount_unsent(&mut self) {
        self.owned_unsent = self.conns.iter().map(|(_, c)| c.unsent_owned()).sum();
    }

    /// Forgets a connection's unsent bytes (it is dropped or discarded).
    pub(crate) fn forget_unsent(&mut self, bytes: usize) {
        self.owned_unsent = self.owned_unsent.saturating_sub(bytes);
    }

    /// Encodes a message straight into the connection's output buffer,
    /// compressed when the connection agreed to permessage-deflate and the
    /// message is long enough.
    pub(crate) fn send_message(&mut self, id: ConnId, text: bool, payload: &[u8]) -> SendStatus {
        if !self.compresses(id, payload.len()) {
            return self.queue(id, |out| encode::message(out, text, payload));
        }
        let mut deflated = std::mem::take(&mut self.deflated);
        deflated.clear();
        self.codecs.deflate(id.key, payload, &mut deflated);
        let status = self.queue(id, |out| encode::compressed(out, text, &deflated));
        self.deflated = retained(deflated);
        status
    }

    /// True if a message of `len` bytes to `id` goes compressed. Checked
    /// before anything is compressed: a stale `id` must not advance the
    /// dedicated state of the connection now in its slot.
    fn compresses(&self, id: ConnId, len: usize) -> bool {
        len >= self.config.compression_threshold
            && self.get(id).is_some_and(|c| {
                c.has(flag::COMPRESS) && c.phase == Phase::Open && !c.has(flag::DOOMED)
            })
    }

    /// Sends one message to every connection `targets` lists, encoding it
    /// at most once plainly and once compressed for all shared-mode
    /// connections (a dedicated-mode one compresses with its own window).
    /// Returns how many took it.
    pub(crate) fn fan_out(
        &mut self,
        targets: impl IntoIterator<Item = ConnId>,
        message: Message<'_>,
    ) -> usize {
        let (text, payload) = (message.is_text(), message.as_bytes());
        let mut plain = std::mem::take(&mut self.scratch);
        plain.clear();
        encode::message(&mut plain, text, payload);
        let plain_shared = self.fan_out_frame(&plain);
        let mut compressed = std::mem::take(&mut self.deflated_frame);
        compressed.clear();
        let mut compressed_shared = None;
        let mut sent = 0;
        for id in targets {
            let status = if !self.compresses(id, payload.len()) {
                self.send_either(id, &plain, &plain_shared)
            } else if self.codecs.is_dedicated(id.key) {
                self.send_message(id, text, payload)
            } else {
                if compressed.is_empty() {
                    self.shared_frame(text, payload, &mut compressed);
                    compressed_shared = self.fan_out_frame(&compressed);
                }
                self.send_either(id, &compressed, &compressed_shared)
            };
            sent += usize::from(status != SendStatus::Dropped);
        }
        self.scratch = plain;
        self.deflated_frame = retained(compressed);
        sent
    }

    /// Writes `payload` as one frame compressed without context, which any
    /// shared-mode connection can be sent.
    pub(crate) fn shared_frame(&mut self, text: bool, payload: &[u8], frame: &mut Vec<u8>) {
        let mut deflated = std::mem::take(&mut self.deflated);
        deflated.clear();
        self.codecs.deflate_shared(payload, &mut deflated);
        encode::compressed(frame, text, &deflated);
        self.deflated = retained(deflated);
    }

    /// Sends a message prepared once for many connections: its plain frame,
    /// or its compressed one (made on first use) to a shared-mode
    /// connection.
    pub(crate) fn send_prepared(
        &mut self,
        id: ConnId,
        prepared: &crate::message::Prepared,
    ) -> SendStatus {
        let payload = prepared.payload();
        if !self.compresses(id, payload.len()) {
            return self.send_frame(id, &prepared.frame);
        }
        if self.codecs.is_dedicated(id.key) {
            return self.send_message(id, prepared.text, payload);
        }
        let frame = match prepared.compressed.get() {
            Some(frame) => frame,
            None => {
                let mut frame = Vec::new();
                self.shared_frame(prepared.text, payload, &mut frame);
                prepared.compressed.get_or_init(|| frame.into())
            }
        };
        self.send_frame(id, frame)
    }

    /// Appends to an open connection's output with `write`, then applies the
    /// backpressure limits.
    fn queue(&mut self, id: ConnId, write: impl FnOnce(&mut Vec<u8>)) -> SendStatus {
        self.queue_on(id, |conn| write(conn.out_tail()))
    }

    /// Queues on an open connection with `queue`, then applies the
    /// backpressure limits and the server's budget.
    fn queue_on(&mut self, id: ConnId, queue: impl FnOnce(&mut Connection)) -> SendStatus {
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
        if conn.unsent() > max {
            // The peer has not read the last `max_backpressure` bytes: it
            // is closed rather than sent more. A queue under the limit
            // takes one more message whatever its size, so a message
            // larger than the limit still goes to a peer that reads.
            self.overflow(id);
            return SendStatus::Dropped;
        }
        lend_out(&mut self.spare_out, conn);
        let owned_before = conn.unsent_owned();
        queue(conn);
        let unsent = conn.unsent();
        self.owned_unsent += conn.unsent_owned().saturating_sub(owned_before);
        let status = if unsent <= threshold {
            SendStatus::Sent
        } else {
            if !conn.has(flag::BACKPRESSURED) {
                conn.flags |= flag::BACKPRESSURED;
                self.stats.backpressure_events += 1;
            }
            SendStatus::Backpressure
        };
        self.stats.messages_out += 1;
        self.mark_dirty(id.key);
        if self.unsent_held() > self.config.unsent_budget {
            self.shed();
            if self.get(id).is_none_or(|c| c.has(flag::DOOMED)) {
                return SendStatus::Dropped;
            }
        }
        status
    }

    /// Brings the unsent output held across the server back under its
    /// budget (to 7/8 of it, so that one more message does not start this
    /// again), closing the connections that hold the most first: those are
    /// the ones that do not read.
    fn shed(&mut self) {
        let budget = self.config.unsent_budget;
        let target = budget - budget / 8;
        let mut holders: Vec<(usize, ConnId)> = self
            .conns
            .iter()
            .filter(|(_, c)| c.phase == Phase::Open && !c.has(flag::DOOMED))
            .map(|(key, c)| {
                (
                    c.unsent(),
                    ConnId {
                        key: key as u32,
                        generation: c.generation,
                    },
                )
            })
            .filter(|&(unsent, _)| unsent > 0)
            .collect();
        holders.sort_unstable_by_key(|&(unsent, _)| std::cmp::Reverse(unsent));
        let before = self.unsent_held();
        let mut closed = 0;
        for (_, id) in holders {
            if self.unsent_held() <= target {
                break;
            }
            self.drop_output(id, Limit::UnsentBudget);
            closed += 1;
        }
        warn!(
            "unsent output held by the server ({before} bytes) passed its budget of {budget} bytes: \
             closed the {closed} connections holding the most (now {} bytes)",
            self.unsent_held()
        );
    }

    /// Closes a connection whose unsent output passed `max_backpressure`:
    /// its buffer is released at once and it is dropped at the next settle.
    fn overflow(&mut self, id: ConnId) {
        let max = self.config.max_backpressure;
        if let Some(conn) = self.get(id) {
            warn!(
                "{id} from {}: outbound buffer over {max} bytes, closing",
                conn.peer
            );
        }
        self.drop_output(id, Limit::Backpressure);
    }

    /// Closes a connection for not reading (`limit` says which limit):
    /// its output is released at once and it is dropped at the next settle.
    fn drop_output(&mut self, id: ConnId, limit: Limit) {
        let Some(conn) = self.get_mut(id) else {
            return;
        };
        let owned = conn.unsent_owned();
        conn.discard_output();
        let (component, session) = (conn.component(), conn.session);
        let opened = conn.has(flag::OPENED);
        self.forget_unsent(owned);
        if opened {
            self.pending.push_back(Pending::Error {
                conn: id,
                component,
                session,
                error: Error::Limit(limit),
            });
        }
        self.doom(id.key, CloseReason::Limit(limit));
    }

    /// Queues a control frame built by `write` (pong, ping, close), bypassing
    /// backpressure accounting: control frames are tiny and must go out.
    fn queue_control(&mut self, key: u32, write: impl FnOnce(&mut Vec<u8>)) {
        if let Some(conn) = self.conns.get_mut(key as usize) {
            lend_out(&mut self.spare_out, conn);
            let owned_before = conn.unsent_owned();
            write(conn.out_tail());
            self.owned_unsent += conn.unsent_owned().saturating_sub(owned_before);
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
                encode::close(conn.out_tail(), code, text);
                conn.phase = Phase::AwaitingClose;
                conn.since = now;
                conn.set_reason(reason);
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
            encode::close(conn.out_tail(), code, text);
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
        conn.set_reason(reason);
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
                    conn.out_tail(),
                    tungstenite::protocol::frame::coding::OpCode::Control(
                        tungstenite::protocol::frame::coding::Control::Close,
                    ),
                    &[],
                );
            } else {
                encode::close(conn.out_tail(), code, "");
            }
            conn.set_reason(CloseReason::Peer {
                code,
                reason: text.to_owned(),
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
            conn.set_reason(reason);
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
        let owned_before = conn.unsent_owned();
        let written = conn.write_out(&mut self.stats.bytes_out);
        let owned_written = owned_before.saturating_sub(conn.unsent_owned());
        self.forget_unsent(owned_written);
        let conn = &mut self.conns[key as usize];
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

/// `buf` back for reuse, unless a large message left it too big to keep.
fn retained(buf: Vec<u8>) -> Vec<u8> {
    if buf.capacity() > RETAINED_BUFFER {
        Vec::new()
    } else {
        buf
    }
}
