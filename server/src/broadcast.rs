//! The seed's `MyChat`: every message goes to every client, the sender too.

use pawl::{Component, ConnId, Context, Message};

/// Ratchet's chat example. It keeps no set of clients: the route's
/// connections are the server's to know.
#[derive(Debug, Default)]
pub struct Broadcast;

impl Component for Broadcast {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        _: ConnId,
        _: &mut (),
        message: Message<'_>,
    ) {
        ctx.broadcast_route(message);
    }
}
