//! Time and endings: the periodic sweep (timeouts, pings, idle buffers) and
//! graceful shutdown.

use std::io;

use log::{debug, warn};

use crate::close::CloseReason;
use crate::connection::{Phase, flag};
use crate::error::{Error, Limit};
use crate::frame::close_code;
use crate::reactor::LoopHandle;

use super::ServerCore;

impl ServerCore {
    /// Timeouts: slow handshakes, idle connections (ping, then close), and
    /// close handshakes the peer never finishes.
    pub(super) fn sweep(&mut self, lp: &mut LoopHandle) {
        // Timers fire after the turn's dispatch, so the turn's clock is stale.
        self.net.tick(std::time::Instant::now());
        let config = &self.net.config;
        let handshake_ms = config.handshake_timeout.as_millis() as u32;
        let idle_ms = config.idle_timeout.as_millis() as u32;
        let close_ms = config.close_timeout.as_millis() as u32;
        let message_ms = config.message_timeout.as_millis() as u32;
        let mut expired = Vec::new();
        let now = self.net.now;
        // Dedicated compression streams idle for a whole interval are freed
        // (made again from their windows when next needed).
        let rested = self.net.codecs.rest_idle();
        let mut released = 0;
        for (key, conn) in self.net.conns.iter_mut() {
            if !conn.has(flag::RECENT) {
                released += conn.release_buffers();
            }
            conn.flags &= !flag::RECENT;
            let age = now.wrapping_sub(conn.since);
            let action = match conn.phase {
                Phase::Handshake if age >= handshake_ms => Some(Expiry::Handshake),
                Phase::Open
                    if conn
                        .decoder
                        .incomplete_since()
                        .is_some_and(|t| now.wrapping_sub(t) >= message_ms) =>
                {
                    Some(Expiry::SlowMessage)
                }
                Phase::Open if age >= idle_ms => Some(Expiry::Idle),
                Phase::Open if age >= idle_ms / 2 && !conn.has(flag::PING_SENT) => {
                    Some(Expiry::Ping)
                }
                Phase::AwaitingClose | Phase::Flushing if age >= close_ms => Some(Expiry::Close),
                _ => None,
            };
            if let Some(action) = action {
                expired.push((key as u32, action));
            }
        }
        self.net.recount_unsent();
        released += rested * crate::deflate::codecs::STREAM_BYTES;
        if released >= RELEASE_TRIM_THRESHOLD {
            give_back_free_memory();
        }
        for (key, action) in expired {
            let conn = &self.net.conns[key as usize];
            let (generation, peer) = (conn.generation, conn.peer);
            match action {
                Expiry::Ping => self.net.ping(key),
                Expiry::Handshake => {
                    warn!(
                        "#{generation} from {peer}: no upgrade within the handshake timeout, dropped"
                    );
                    self.net.doom(key, CloseReason::Io(io::ErrorKind::TimedOut));
                }
                Expiry::Idle => {
                    warn!("#{generation} from {peer}: idle timeout, closing");
                    self.net.fail(
                        key,
                        close_code::GOING_AWAY,
                        "idle timeout",
                        CloseReason::Limit(Limit::IdleTimeout),
                        Some(Error::Limit(Limit::IdleTimeout)),
                    );
                }
                Expiry::SlowMessage => {
                    warn!(
                        "#{generation} from {peer}: a message took longer than the message timeout to arrive, closing with 1008"
                    );
                    self.net.fail(
                        key,
                        close_code::POLICY,
                        "message timeout",
                        CloseReason::Limit(Limit::MessageTimeout),
                        Some(Error::Limit(Limit::MessageTimeout)),
                    );
                }
                Expiry::Close => {
                    debug!("#{generation} from {peer}: close handshake timed out");
                    self.net.doom(key, CloseReason::Limit(Limit::CloseTimeout));
                }
            }
        }
        self.settle(lp);
    }

    /// A graceful stop: no new connections, 1001 to everyone, and the loop
    /// held until every close handshake finished.
    pub(super) fn shutdown(&mut self, lp: &mut LoopHandle) {
        self.net.tick(lp.now());
        self.net.shutting_down = true;
        self.acceptor.close(lp.registry());
        let keys: Vec<u32> = self.net.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            let Some(id) = self.net.id(key) else { continue };
            if self.net.conns[key as usize].phase == Phase::Handshake {
                self.net.doom(key, CloseReason::Shutdown);
            } else {
                self.net.close(
                    id,
                    close_code::GOING_AWAY,
                    "server shutdown",
                    CloseReason::Shutdown,
                );
            }
        }
        if !self.net.conns.is_empty() && !self.holding_stop && lp.is_stopping() {
            self.holding_stop = true;
            lp.hold_stop();
        }
        self.settle(lp);
    }

    /// Stops this server alone, gracefully: [`ServerCore::shutdown`], and
    /// the server leaves the loop once its last connection is gone.
    pub(super) fn leave(&mut self, lp: &mut LoopHandle) {
        self.leaving = true;
        self.shutdown(lp);
        self.leave_if_done(lp);
    }

    /// Drops every remaining connection at once, telling components; for
    /// when the loop has returned and nothing will flush any more.
    pub(crate) fn close_all_now(&mut self, lp: &mut LoopHandle) {
        let keys: Vec<u32> = self.net.conns.iter().map(|(k, _)| k as u32).collect();
        for key in keys {
            self.net.doom(key, CloseReason::Shutdown);
        }
        self.settle(lp);
    }
}

enum Expiry {
    Handshake,
    Ping,
    Idle,
    Close,
    SlowMessage,
}

/// Bytes of buffers released in one sweep above which free heap pages are
/// handed back to the kernel.
const RELEASE_TRIM_THRESHOLD: usize = 1 << 20;

/// Returns free heap pages to the kernel. glibc keeps freed small blocks
/// resident; after a burst of traffic leaves thousands of connections idle,
/// this is what makes their released buffers show up as a smaller RSS.
fn give_back_free_memory() {
    #[cfg(all(target_os = "linux", target_env = "gnu"))]
    // SAFETY: malloc_trim only walks glibc's own heap; it has no
    // preconditions and is safe to call at any time from any thread.
    unsafe {
        libc::malloc_trim(0);
    }
}
