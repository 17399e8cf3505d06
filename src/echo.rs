//! [`EchoServer`]: Ratchet's `EchoServer`, every message sent back.

use crate::component::Component;
use crate::component::Context;
use crate::connection::ConnId;
use crate::message::Message;

/// Sends every message back to its sender, text as text, binary as binary.
/// The route the Autobahn conformance suite runs against.
#[derive(Debug, Default, Clone, Copy)]
pub struct EchoServer;

impl Component for EchoServer {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        message: Message<'_>,
    ) {
        // Backpressure is bounded by max_backpressure; an echo has nothing
        // better to do with the status.
        let _ = ctx.send(conn, message);
    }
}
