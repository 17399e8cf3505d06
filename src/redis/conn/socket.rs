//! Socket I/O of a connection: connect completion, reading and parsing
//! replies, writing the output buffer.

use std::io::{self, Write};
use std::time::Instant;

use log::{trace, warn};
use mio::Interest;

use super::{COMPACT_AT, Delivery, Inner, Kind, Lost, READ_BUDGET, Reply, ReplyTo, State, push};
use crate::reactor::LoopHandle;
use crate::redis::{RedisError, Value};

impl Inner {
    /// Handles readiness of the current stream.
    pub(super) fn ready(&mut self, reactor: &mut LoopHandle, deliveries: &mut Vec<Delivery>) {
        if self.state == State::Connecting {
            match self.check_connected() {
                Ok(false) => return,
                Ok(true) => self.connected(),
                Err(e) => return self.disconnect(reactor, Lost::Io(e), deliveries),
            }
        }
        if !matches!(self.state, State::Handshaking | State::Ready) {
            return;
        }
        let result = self
            .read(reactor, deliveries)
            .and_then(|()| self.flush(reactor));
        if let Err(lost) = result {
            self.disconnect(reactor, lost, deliveries);
        }
    }

    /// Whether a connect in progress finished (mio's documented check).
    pub(super) fn check_connected(&mut self) -> io::Result<bool> {
        let Some(stream) = self.stream.as_ref() else {
            return Ok(false);
        };
        if let Some(e) = stream.take_error()? {
            return Err(e);
        }
        match stream.peer_addr() {
            Ok(_) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotConnected => Ok(false),
            Err(e) => Err(e),
        }
    }

    /// Reads until `WouldBlock` (or the budget, then resumes next turn),
    /// handling every complete reply.
    pub(super) fn read(
        &mut self,
        reactor: &mut LoopHandle,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), Lost> {
        for _ in 0..READ_BUDGET {
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            match self.input.read_from(stream) {
                Ok(0) => return Err(Lost::Eof),
                Ok(_) => {
                    self.last_read = Instant::now();
                    self.parse_replies(reactor, deliveries)?;
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Lost::Io(e)),
            }
            if self.state != State::Ready && self.state != State::Handshaking {
                return Ok(());
            }
        }
        // A flood (pub/sub) must not starve the rest of the loop: stop here
        // and come back after this turn, since edge-triggered readiness
        // that was not drained is not reported again.
        let me = self.me.clone();
        let generation = self.generation;
        reactor.defer(move |reactor| {
            if let Some(conn) = me.upgrade() {
                conn.resume(reactor, generation);
            }
        });
        Ok(())
    }

    pub(super) fn parse_replies(
        &mut self,
        reactor: &mut LoopHandle,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), Lost> {
        loop {
            match self.input.next_reply() {
                Ok(Some(value)) => {
                    trace!("redis {}: reply {value:?}", self.peer);
                    self.on_reply(value, reactor, deliveries)?;
                }
                Ok(None) => return Ok(()),
                Err(e) => return Err(Lost::Protocol(e.to_string())),
            }
        }
    }

    pub(super) fn on_reply(
        &mut self,
        value: Value,
        reactor: &mut LoopHandle,
        deliveries: &mut Vec<Delivery>,
    ) -> Result<(), Lost> {
        if self.in_flight.is_empty() {
            if let Kind::Subscriber(subs) = &self.kind {
                push(&self.peer, subs, value, deliveries);
                return Ok(());
            }
            return Err(Lost::Protocol(format!(
                "a reply that answers no command: {value:?}"
            )));
        }
        let Some(command) = self.in_flight.pop_front() else {
            return Ok(());
        };
        if command.replay {
            self.replay_starts.pop_front();
        }
        match command.reply {
            Reply::Handshake(what) => {
                if let Value::Error(e) = value {
                    return Err(Lost::Handshake(format!("{what}: {e}")));
                }
                if self.in_flight.is_empty() {
                    self.become_ready(reactor, deliveries);
                }
            }
            Reply::User(ReplyTo::Callback(callback)) => {
                let result = match value {
                    Value::Error(e) => Err(RedisError::Server(e)),
                    value => Ok(value),
                };
                deliveries.push(Delivery::Reply(callback, result));
            }
            Reply::User(ReplyTo::Log) => {
                if let Value::Error(e) = value {
                    warn!("redis {}: command failed: {e}", self.peer);
                }
            }
        }
        Ok(())
    }

    /// Writes the output buffer until it is empty or the socket is full, and
    /// asks for WRITABLE only while output is left.
    pub(super) fn flush(&mut self, reactor: &mut LoopHandle) -> Result<(), Lost> {
        let Some(stream) = self.stream.as_mut() else {
            return Ok(());
        };
        while self.out_pos < self.out.len() {
            match stream.write(&self.out[self.out_pos..]) {
                Ok(0) => return Err(Lost::Io(io::ErrorKind::WriteZero.into())),
                Ok(n) => self.out_pos += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(Lost::Io(e)),
            }
        }
        let end = self.out_base + self.out.len() as u64;
        if self.out_pos == self.out.len() && self.keep_from() == end {
            self.out_base = end;
            self.out.clear();
            self.out_pos = 0;
        } else if self.out_pos >= COMPACT_AT {
            self.compact();
        }
        let want = self.out_pos < self.out.len();
        if want != self.writable_interest {
            let interest = if want {
                Interest::READABLE | Interest::WRITABLE
            } else {
                Interest::READABLE
            };
            let token = self.handler.sub_token(self.generation);
            let Some(stream) = self.stream.as_mut() else {
                return Ok(());
            };
            reactor
                .registry()
                .reregister(stream, token, interest)
                .map_err(Lost::Io)?;
            self.writable_interest = want;
        }
        Ok(())
    }

    /// The absolute offset from which output must be kept because it may
    /// have to be sent again after a reconnect: the first command not fully
    /// written, or the oldest replayable one without a reply.
    pub(super) fn keep_from(&self) -> u64 {
        let written = self.out_base + self.out_pos as u64;
        let first_partial = self.in_flight.partition_point(|c| c.end <= written);
        let unwritten = self.in_flight.get(first_partial).map(|c| c.start);
        let replayable = self.replay_starts.front().copied();
        [unwritten, replayable]
            .into_iter()
            .flatten()
            .fold(written, u64::min)
    }

    /// Drops written bytes from the front of the buffer, keeping what
    /// [`Inner::keep_from`] says.
    pub(super) fn compact(&mut self) {
        let keep_from = self.keep_from();
        let drop = (keep_from.saturating_sub(self.out_base) as usize).min(self.out_pos);
        self.out.drain(..drop);
        self.out_pos -= drop;
        self.out_base += drop as u64;
    }
}
