//! A connection's life: connect, `AUTH`/`SELECT`, ready, the queue while
//! disconnected, and what happens to commands when the connection ends.

use std::time::{Duration, Instant};

use log::{debug, info, trace, warn};
use mio::Interest;
use mio::net::TcpStream;

use super::{
    Delivery, InFlight, Inner, Kind, Lost, Queued, Reply, ReplyTo, SUBSCRIBE_BATCH, State, Timer,
    fail,
};
use crate::reactor::{LoopHandle, TimerId};
use crate::redis::resp::encode_command;
use crate::redis::{OverflowPolicy, RedisError};

impl Inner {
    pub(super) fn add_timer(
        &self,
        reactor: &mut LoopHandle,
        after: Duration,
        timer: Timer,
    ) -> TimerId {
        let me = self.me.clone();
        reactor.add_timer(after, move |reactor| {
            if let Some(conn) = me.upgrade() {
                conn.on_timer(reactor, timer);
            }
        })
    }

    /// Makes sure the loop turns (and runs the tick hook) soon.
    pub(super) fn wake(&mut self) {
        if !self.wake_pending {
            self.wake_pending = true;
            // A full queue means the loop is busy and will turn anyway.
            let _ = self.handle.schedule(|_| {});
        }
    }

    pub(super) fn fail_later(&mut self, reply: ReplyTo, error: RedisError) {
        match reply {
            ReplyTo::Callback(callback) => self.failed.push((callback, error)),
            ReplyTo::Log => debug!("redis {}: command dropped: {error}", self.peer),
        }
    }

    /// Queues a command for the next connection, within the bound.
    pub(super) fn enqueue(&mut self, queued: Queued) {
        if self.queue.len() < self.config.max_queued {
            self.queue.push_back(queued);
            return;
        }
        self.dropped += 1;
        if self.dropped == 1 {
            warn!(
                "redis {}: {} commands queued while disconnected; dropping the {} ones past the bound",
                self.peer,
                self.queue.len(),
                match self.config.overflow {
                    OverflowPolicy::RejectNew => "newest",
                    OverflowPolicy::DropOldest => "oldest",
                }
            );
        }
        let victim = match self.config.overflow {
            OverflowPolicy::DropOldest if !self.queue.is_empty() => {
                let oldest = self.queue.pop_front();
                self.queue.push_back(queued);
                oldest
            }
            _ => Some(queued),
        };
        if let Some(victim) = victim {
            self.fail_later(victim.reply, RedisError::Overflow);
        }
    }

    /// Starts a non-blocking connect to the next address.
    pub(super) fn connect(&mut self, reactor: &mut LoopHandle) {
        let addr = self.addrs[self.next_addr % self.addrs.len()];
        self.next_addr = self.next_addr.wrapping_add(1);
        // `sub_token` needs room for `sub + 1`.
        self.generation = (self.generation + 1) % u32::MAX;
        let token = self.handler.sub_token(self.generation);
        let result = TcpStream::connect(addr).and_then(|mut stream| {
            reactor.registry().register(
                &mut stream,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            Ok(stream)
        });
        match result {
            Ok(stream) => {
                trace!("redis {}: connecting to {addr}", self.peer);
                self.stream = Some(stream);
                self.writable_interest = true;
                self.state = State::Connecting;
                let timeout = self.config.connect_timeout;
                self.connect_timer =
                    Some(self.add_timer(reactor, timeout, Timer::Connect(self.generation)));
            }
            Err(e) => {
                self.state = State::Connecting;
                let mut none = Vec::new();
                self.disconnect(reactor, Lost::Io(e), &mut none);
            }
        }
    }

    /// TCP is up: send `AUTH`/`SELECT` and a `PING`; the connection is
    /// ready once they are answered.
    pub(super) fn connected(&mut self) {
        if let Some(stream) = &self.stream {
            // Small commands must not wait for Nagle.
            let _ = stream.set_nodelay(true);
        }
        debug!("redis {}: connected", self.peer);
        self.state = State::Handshaking;
        let url = self.url.clone();
        if let Some(password) = &url.password {
            let mut args: Vec<&[u8]> = vec![b"AUTH"];
            if let Some(user) = &url.username {
                args.push(user.as_bytes());
            }
            args.push(password.as_bytes());
            self.push_internal(&args, "AUTH");
        }
        if let Some(db) = url.db {
            self.push_internal(&[b"SELECT", db.to_string().as_bytes()], "SELECT");
        }
        // Ready means Redis answered, not only that its kernel accepted the
        // connection: a stopped Redis (SIGSTOP, a hung host) accepts TCP
        // connections and never replies, and callers that go on without
        // Redis while it is not ready must not wait for it then.
        self.push_internal(&[b"PING"], "PING");
    }

    pub(super) fn push_internal(&mut self, args: &[&[u8]], what: &'static str) {
        let start = self.out_base + self.out.len() as u64;
        encode_command(&mut self.out, args);
        self.push_in_flight(Reply::Handshake(what), start, false, Instant::now());
    }

    /// Records a command whose bytes were just appended to `out` from
    /// `start` on.
    pub(super) fn push_in_flight(
        &mut self,
        reply: Reply,
        start: u64,
        replay: bool,
        sent_at: Instant,
    ) {
        if replay {
            self.replay_starts.push_back(start);
        }
        self.in_flight.push_back(InFlight {
            reply,
            start,
            end: self.out_base + self.out.len() as u64,
            sent_at,
            replay,
        });
    }

    /// Past `AUTH`/`SELECT`: hand the queue to the socket, resubscribe, and
    /// tell the `on_connect` callbacks.
    pub(super) fn become_ready(
        &mut self,
        reactor: &mut LoopHandle,
        deliveries: &mut Vec<Delivery>,
    ) {
        self.state = State::Ready;
        if let Some(timer) = self.connect_timer.take() {
            reactor.cancel_timer(timer);
        }
        if self.failures > 0 || self.dropped > 0 {
            info!(
                "redis {}: reconnected after {} failed attempts; sending {} queued commands{}",
                self.peer,
                self.failures,
                self.queue.len(),
                if self.dropped > 0 {
                    format!(" ({} were dropped past the bound)", self.dropped)
                } else {
                    String::new()
                }
            );
        }
        self.failures = 0;
        self.dropped = 0;
        self.backoff = self.config.reconnect_min;
        let now = Instant::now();
        for queued in std::mem::take(&mut self.queue) {
            let start = self.out_base + self.out.len() as u64;
            self.out.extend_from_slice(&queued.bytes);
            self.push_in_flight(Reply::User(queued.reply), start, queued.replay, now);
        }
        if let Kind::Subscriber(subs) = &self.kind {
            for (name, map) in [
                (&b"SUBSCRIBE"[..], &subs.channels),
                (&b"PSUBSCRIBE"[..], &subs.patterns),
            ] {
                let keys: Vec<&[u8]> = map.keys().map(|k| k.as_slice()).collect();
                for batch in keys.chunks(SUBSCRIBE_BATCH) {
                    let mut args = Vec::with_capacity(batch.len() + 1);
                    args.push(name);
                    args.extend_from_slice(batch);
                    encode_command(&mut self.out, &args);
                }
            }
        }
        deliveries.extend(self.on_connect.iter().cloned().map(Delivery::Connected));
    }

    pub(super) fn arm_command_timer(&mut self, reactor: &mut LoopHandle) {
        let Some(timeout) = self.config.command_timeout else {
            return;
        };
        if self.command_timer.is_some() {
            return;
        }
        if let Some(oldest) = self.in_flight.front() {
            let after = (oldest.sent_at.max(self.last_read) + timeout)
                .saturating_duration_since(Instant::now());
            self.command_timer = Some(self.add_timer(reactor, after, Timer::Command));
        }
    }

    /// Ends the current connection (if any): commands not fully written go
    /// back to the queue, written ones fail, and a reconnect is scheduled
    /// unless the client is closing.
    pub(super) fn disconnect(
        &mut self,
        reactor: &mut LoopHandle,
        lost: Lost,
        deliveries: &mut Vec<Delivery>,
    ) {
        let was = self.state;
        if let Some(mut stream) = self.stream.take()
            && let Err(e) = reactor.registry().deregister(&mut stream)
        {
            debug!("redis {}: deregister failed: {e}", self.peer);
        }
        for timer in [self.connect_timer.take(), self.command_timer.take()]
            .into_iter()
            .flatten()
        {
            reactor.cancel_timer(timer);
        }
        self.input.clear();
        let written = self.out_base + self.out_pos as u64;
        let mut resend = Vec::new();
        let mut failed = 0usize;
        self.replay_starts.clear();
        for command in std::mem::take(&mut self.in_flight) {
            let Reply::User(reply) = command.reply else {
                continue;
            };
            // Redis drops a partial command with its connection, so one not
            // fully written was not executed and is safe to send again. A
            // written one may have run (a stalled Redis runs what sat in
            // its socket buffer when it resumes, even after this side
            // closed): it is sent again only if the caller said it is
            // idempotent; otherwise it fails and the caller decides.
            let unwritten = if command.end > written || command.replay {
                let start = command.start.checked_sub(self.out_base);
                let end = command.end.checked_sub(self.out_base);
                start
                    .zip(end)
                    .and_then(|(start, end)| self.out.get(start as usize..end as usize))
            } else {
                None
            };
            match unwritten {
                Some(bytes) => resend.push(Queued {
                    bytes: bytes.to_vec(),
                    reply,
                    replay: command.replay,
                }),
                None => {
                    failed += 1;
                    fail(reply, lost.in_flight_error(), deliveries);
                }
            }
        }
        let resent = resend.len();
        for queued in resend.into_iter().rev() {
            self.queue.push_front(queued);
        }
        while self.queue.len() > self.config.max_queued {
            self.dropped += 1;
            let victim = match self.config.overflow {
                OverflowPolicy::DropOldest => self.queue.pop_front(),
                OverflowPolicy::RejectNew => self.queue.pop_back(),
            };
            if let Some(victim) = victim {
                fail(victim.reply, RedisError::Overflow, deliveries);
            }
        }
        self.out = Vec::new();
        self.out_pos = 0;
        self.out_base = 0;
        self.writable_interest = false;
        if matches!(lost, Lost::Closed) {
            return;
        }
        self.failures += 1;
        let delay = self.backoff;
        self.backoff = (self.backoff * 2).min(self.config.reconnect_max);
        let message = format!(
            "redis {}: {} ({lost}); {failed} commands in flight failed, {} queued{}; retrying in {delay:?}",
            self.peer,
            if was == State::Ready {
                "connection lost"
            } else {
                "connect failed"
            },
            self.queue.len(),
            if resent > 0 {
                format!(" ({resent} from the broken connection kept)")
            } else {
                String::new()
            },
        );
        // One warning per outage; the retries that follow are debug lines.
        if self.failures == 1 || failed > 0 {
            warn!("{message}");
        } else {
            debug!("{message}");
        }
        self.state = State::Waiting;
        self.reconnect_timer = Some(self.add_timer(reactor, delay, Timer::Reconnect));
    }
}
