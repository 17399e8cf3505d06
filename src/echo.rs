//! [`EchoServer`]: Ratchet's `EchoServer`, every message sent back.

use crate::component::{Component, ConnId, Message};
use crate::context::Context;

/// Sends every message back to its sender, text as text, binary as binary.
/// The route the Autobahn conformance suite runs against.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoServer;

impl Component for EchoServer {
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, message: Message<'_>) {
        // Backpressure is bounded by max_backpressure; an echo has nothing
        // better to do with the status.
        let _ = ctx.send(conn, message);
    }
}
