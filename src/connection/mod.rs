//! The per-connection state machine and the connection table the server and
//! every [`Context`](crate::Context) share.
//!
//! Nothing here calls a component: methods change state and queue what the
//! server must do next (a callback in [`Net::pending`], a socket to drop in
//! [`Net::doomed`]). The server delivers those between callbacks, so a
//! component closing another connection from inside `on_message` never
//! re-enters itself.

//!
//! - `conn.rs`: one connection: its phases, flags, buffers and writes.
//! - `table.rs`: the table of them ([`Net`]), with the state changes the
//!   server and every context make (send, close, fail, flush).

mod conn;
mod table;

use std::fmt;

use crate::close::CloseReason;
use crate::error::Error;

pub(crate) use conn::{
    Connection, MAX_ROUTES, Phase, RETAINED_BUFFER, SharedFrame, flag, lend_out,
};
pub(crate) use table::Net;

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

#[cfg(test)]
mod tests;
