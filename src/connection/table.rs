//! The connection table and the queues of work between callbacks.
//!
//! Nothing here calls a component: methods change state and queue what the
//! server must do next (a callback in [`Net::pending`], a socket to drop in
//! [`Net::doomed`]).

use std::collections::VecDeque;
use std::io;
use std::net::SocketAddr;
use std::time::Instant;

use log::{debug, warn};
use slab::Slab;

use super::{ConnId, Connection, Pending, Phase, RETAINED_BUFFER, SendStatus, flag, lend_out};
use crate::close::CloseReason;
use crate::config::ServerConfig;
use crate::error::{Error, Limit};
use crate::frame::{Violation, close_code, encode};
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
    /// The counters; the gauges in it are filled in by [`Net::stats`].
    pub(crate) stats: Stats,
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
            self.stats.messages_out += 1;
            self.mark_dirty(id.key);
            return SendStatus::Sent;
        }
        if unsent <= max {
            if !conn.has(flag::BACKPRESSURED) {
                conn.flags |= flag::BACKPRESSURED;
                self.stats.backpressure_events += 1;
            }
            self.stats.messages_out += 1;
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
        let written = conn.write_out(&mut self.stats.bytes_out);
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
