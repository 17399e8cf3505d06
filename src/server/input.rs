//! Reading: the shared read buffer, the upgrade handshake, and frames
//! dispatched to components.

use std::io;

use log::debug;

use crate::close::CloseReason;
use crate::connection::{ConnId, Connection, Phase, RETAINED_BUFFER, flag, lend_out};
use crate::deflate::codec::InflateError;
use crate::frame::decode::{Incoming, Limits};
use crate::frame::{Violation, close_code, encode, utf8};
use crate::handshake::{self, Outcome, RequestLimits};
use crate::http::{HttpRequest, HttpResponse};
use crate::message::Message;
use crate::reactor::LoopHandle;

use super::{READ_BUDGET, ServerCore, invoke};

impl ServerCore {
    pub(super) fn read_ready(&mut self, lp: &mut LoopHandle, key: u32, drain_fully: bool) {
        let mut budget = READ_BUDGET;
        loop {
            let Some(conn) = self.net.conns.get_mut(key as usize) else {
                return;
            };
            if conn.has(flag::DOOMED) || conn.phase == Phase::Flushing {
                return;
            }
            let n = match conn.stream.read(&mut self.read_buf) {
                Ok(0) => {
                    self.peer_eof(key);
                    return;
                }
                Ok(n) => {
                    self.net.stats.bytes_in += n as u64;
                    n
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    debug!("#{} from {}: read failed: {e}", conn.generation, conn.peer);
                    let kind = e.kind();
                    self.net.doom(key, CloseReason::Io(kind));
                    return;
                }
            };
            let short = n < self.read_buf.len() && conn.stream.short_read_drains();
            if conn.phase == Phase::Handshake {
                self.handshake_input(lp, key, n);
            } else {
                self.frame_input(lp, key, Some(n));
            }
            // Replies to this read go out now, in one write, rather than at
            // the end of the turn: the output buffer is then free to be lent
            // to the next connection while it is still in cache.
            self.net.flush_if_dirty(key);
            if short && !drain_fully {
                return;
            }
            budget = budget.saturating_sub(n);
            if budget == 0 {
                self.resume.push(key);
                // Make the next poll return at once so this connection is
                // read again after the others had their turn.
                lp.defer(|_| {});
                return;
            }
        }
    }

    fn peer_eof(&mut self, key: u32) {
        let Some(conn) = self.net.conns.get(key as usize) else {
            return;
        };
        if conn.phase == Phase::Open {
            debug!(
                "#{} from {}: closed without a close frame",
                conn.generation, conn.peer
            );
        }
        self.net
            .doom(key, CloseReason::Io(io::ErrorKind::UnexpectedEof));
    }

    fn handshake_input(&mut self, lp: &mut LoopHandle, key: u32, n: usize) {
        let conn = &mut self.net.conns[key as usize];
        let limits = RequestLimits {
            max_request: self.net.config.max_request_size,
            max_body: self.net.config.max_message(),
            post_admitted: conn.has(flag::POST_ADMITTED),
            compression: self.net.config.compression,
        };
        lend_out(&mut self.net.spare_out, conn);
        // A request that arrives whole in one read (nearly all of them) is
        // parsed where it was read; only one split across reads is copied.
        let in_place = conn.input.is_empty();
        if !in_place {
            conn.input.extend_from_slice(&self.read_buf[..n]);
        }
        let input: &[u8] = if in_place {
            &self.read_buf[..n]
        } else {
            &conn.input
        };
        let outcome = handshake::respond(input, &self.router, limits, &mut conn.out);
        match outcome {
            Outcome::Partial => {
                if in_place {
                    conn.input.extend_from_slice(&self.read_buf[..n]);
                }
                // Nothing to send yet: a client that trickles its request
                // must not hold the loop's spare buffer.
                if conn.out.is_empty() && conn.out.capacity() > 0 {
                    self.net.spare_out = std::mem::take(&mut conn.out);
                }
            }
            Outcome::PostHead {
                handler,
                request,
                send_continue,
            } => {
                if let Some(refusal) = self.check_post(handler, &request) {
                    return self.answer_post(key, &request, &refusal);
                }
                let conn = &mut self.net.conns[key as usize];
                conn.flags |= flag::POST_ADMITTED;
                if in_place {
                    conn.input.extend_from_slice(&self.read_buf[..n]);
                }
                if send_continue {
                    conn.out.extend_from_slice(b"HTTP/1.1 100 Continue\r\n\r\n");
                    self.net.mark_dirty(key);
                } else if conn.out.is_empty() && conn.out.capacity() > 0 {
                    self.net.spare_out = std::mem::take(&mut conn.out);
                }
            }
            Outcome::Post {
                handler,
                request,
                body,
            } => {
                // Head and body came together: the check comes first all
                // the same.
                if !conn.has(flag::POST_ADMITTED)
                    && let Some(refusal) = self.check_post(handler, &request)
                {
                    return self.answer_post(key, &request, &refusal);
                }
                let conn = &mut self.net.conns[key as usize];
                let held = std::mem::take(&mut conn.input);
                let read_buf = std::mem::take(&mut self.read_buf);
                let bytes = if in_place {
                    &read_buf[body]
                } else {
                    &held[body]
                };
                let response = self.call_post(lp, handler, &request, bytes);
                self.read_buf = read_buf;
                self.answer_post(key, &request, &response);
            }
            Outcome::Respond { status } => {
                debug!("#{} from {}: HTTP {status}", conn.generation, conn.peer);
                let stats = &mut self.net.stats;
                if status >= 400 {
                    *stats.handshake_refusals.entry(status).or_default() += 1;
                } else {
                    stats.http_responses += 1;
                }
                conn.phase = Phase::Flushing;
                conn.since = self.net.now;
                conn.input = Vec::new();
                self.net.mark_dirty(key);
            }
            Outcome::Upgrade {
                consumed,
                component,
                request,
                deflate,
            } => {
                if in_place {
                    // Frames the client sent right behind its request.
                    conn.input.extend_from_slice(&self.read_buf[consumed..n]);
                } else {
                    conn.input.drain(..consumed);
                }
                if conn.input.is_empty() {
                    // The request is spent; an idle connection keeps no buffer.
                    conn.input = Vec::new();
                }
                conn.phase = Phase::Open;
                self.net.stats.connections_opened += 1;
                conn.set_component(component);
                if let Some(agreed) = deflate {
                    conn.flags |= flag::DEFLATE;
                    if agreed.server_compresses() {
                        conn.flags |= flag::COMPRESS;
                    }
                    self.net.codecs.open(key, &agreed);
                }
                let conn = &mut self.net.conns[key as usize];
                conn.since = self.net.now;
                let id = ConnId {
                    key,
                    generation: conn.generation,
                };
                conn.request = Some(request);
                let conn = &self.net.conns[key as usize];
                let client = self.net.client_addr(conn);
                if client == conn.peer {
                    debug!("{id} opened from {client} on {}", request_path(conn));
                } else {
                    debug!(
                        "{id} opened from {client} (via proxy {}) on {}",
                        conn.peer,
                        request_path(conn)
                    );
                }
                self.net.mark_dirty(key);
                self.open(lp, component as u32, key, id);
                // Frames the client sent right behind its request.
                let has_input = self
                    .net
                    .conns
                    .get(key as usize)
                    .is_some_and(|c| !c.input.is_empty());
                if has_input {
                    self.frame_input(lp, key, None);
                }
            }
        }
    }

    /// Sends the answer to a `POST` and closes once it is out.
    fn answer_post(&mut self, key: u32, request: &HttpRequest, response: &HttpResponse) {
        let Some(conn) = self.net.conns.get_mut(key as usize) else {
            return;
        };
        debug!(
            "#{} from {}: HTTP {} (POST {})",
            conn.generation,
            conn.peer,
            response.status,
            request.path()
        );
        lend_out(&mut self.net.spare_out, conn);
        response.write_to(&mut conn.out);
        conn.phase = Phase::Flushing;
        conn.since = self.net.now;
        conn.input = Vec::new();
        self.net.mark_dirty(key);
    }

    /// Decodes and dispatches frames: the bytes just read into the shared
    /// buffer (`fresh`), after whatever the connection kept from before.
    fn frame_input(&mut self, lp: &mut LoopHandle, key: u32, fresh: Option<usize>) {
        let ServerCore {
            net,
            routes,
            read_buf,
            server,
            ..
        } = self;
        let server = *server;
        let conn = &mut net.conns[key as usize];
        if conn.phase == Phase::Open {
            conn.since = net.now;
            conn.flags &= !flag::PING_SENT;
            conn.flags |= flag::RECENT;
        }
        let id = ConnId {
            key,
            generation: conn.generation,
        };
        let (component, session) = (conn.component(), conn.session);
        let mut input = std::mem::take(&mut conn.input);
        let mut decoder = std::mem::take(&mut conn.decoder);
        let limits = Limits {
            max_frame: net.config.max_frame(),
            max_message: net.config.max_message(),
            deflate: conn.has(flag::DEFLATE),
        };
        // The common case decodes straight from the shared buffer: no copy.
        let in_place = input.is_empty() && fresh.is_some();
        if let (false, Some(n)) = (in_place, fresh) {
            encode::append(&mut input, &read_buf[..n]);
        }
        let buf: &mut [u8] = match fresh {
            Some(n) if in_place => &mut read_buf[..n],
            _ => &mut input[..],
        };
        let len = buf.len();
        let mut pos = 0;
        loop {
            let phase = match net.conns.get(key as usize) {
                Some(c) if !c.has(flag::DOOMED) => c.phase,
                _ => break,
            };
            if !matches!(phase, Phase::Open | Phase::AwaitingClose) {
                break;
            }
            match decoder.decode(buf, &mut pos, limits) {
                Ok(None) => break,
                Ok(Some(Incoming::Text(text))) if phase == Phase::Open => {
                    net.stats.messages_in += 1;
                    let message = Message::Text(text);
                    invoke(routes, net, lp, server, component, Some(key), |c, env| {
                        c.message(env, id, session, message)
                    });
                }
                Ok(Some(Incoming::Binary(bytes))) if phase == Phase::Open => {
                    net.stats.messages_in += 1;
                    let message = Message::Binary(bytes);
                    invoke(routes, net, lp, server, component, Some(key), |c, env| {
                        c.message(env, id, session, message)
                    });
                }
                Ok(Some(Incoming::Compressed { text, payload })) if phase == Phase::Open => {
                    net.stats.messages_in += 1;
                    let mut inflated = std::mem::take(&mut net.inflated);
                    inflated.clear();
                    let limit = limits.max_message;
                    let message = match net.codecs.inflate(key, payload, limit, &mut inflated) {
                        Ok(()) if !text => Ok(Message::Binary(&inflated)),
                        Ok(()) => utf8::as_str(&inflated).map(Message::Text).ok_or(Violation {
                            code: close_code::INVALID_PAYLOAD,
                            reason: "invalid UTF-8",
                        }),
                        Err(InflateError::TooBig) => Err(Violation {
                            code: close_code::TOO_BIG,
                            reason: "message too big once inflated",
                        }),
                        Err(InflateError::Corrupt) => Err(Violation {
                            code: close_code::INVALID_PAYLOAD,
                            reason: "invalid compressed data",
                        }),
                    };
                    let failed = match message {
                        Ok(message) => {
                            invoke(routes, net, lp, server, component, Some(key), |c, env| {
                                c.message(env, id, session, message)
                            });
                            false
                        }
                        Err(violation) => {
                            net.violation(key, violation);
                            true
                        }
                    };
                    net.inflated = if inflated.capacity() > RETAINED_BUFFER {
                        Vec::new()
                    } else {
                        inflated
                    };
                    if failed {
                        break;
                    }
                }
                // After our close frame, data is read and dropped (RFC 6455 §1.4).
                Ok(Some(Incoming::Text(_) | Incoming::Binary(_) | Incoming::Compressed { .. })) => {
                }
                Ok(Some(Incoming::Ping(payload))) => {
                    if phase == Phase::Open {
                        net.pong(key, payload);
                    }
                }
                Ok(Some(Incoming::Pong)) => {}
                Ok(Some(Incoming::Close(code, text))) => {
                    net.peer_closed(key, code, text);
                    break;
                }
                Err(violation) => {
                    net.violation(key, violation);
                    break;
                }
            }
        }
        let Some(conn) = net.conns.get_mut(key as usize) else {
            return;
        };
        if in_place {
            encode::append(&mut input, &read_buf[pos..len]);
        } else {
            input.drain(..pos);
        }
        if input.is_empty() && input.capacity() > RETAINED_BUFFER {
            // Release what a large partial frame left behind.
            input = Vec::new();
        }
        if input.is_empty() && !decoder.in_message() {
            decoder.note_complete();
        } else {
            decoder.note_incomplete(net.now);
        }
        conn.input = input;
        conn.decoder = decoder;
    }
}

impl ServerCore {
    /// `on_open`: the session it returns is stored and the connection owes
    /// `on_close` from now on. If it panics there is no session, so the
    /// connection is failed with 1011 and gets no further callbacks.
    fn open(&mut self, lp: &mut LoopHandle, component: u32, key: u32, id: ConnId) {
        let mut opened = None;
        self.call(lp, component, Some(key), |c, env| {
            opened = Some(c.open(env, id)?);
            Ok(())
        });
        if let (Some(session), Some(conn)) = (opened, self.net.conns.get_mut(key as usize)) {
            conn.session = session;
            conn.flags |= flag::OPENED;
        }
    }
}

fn request_path(conn: &Connection) -> &str {
    conn.request.as_deref().map_or("", |r| r.path())
}
