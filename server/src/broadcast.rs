//! The seed's `MyChat`: every message goes to every client, the sender too.

use std::collections::BTreeSet;

use pawl::{CloseReason, Component, ConnId, Context, Message};

/// Ratchet's chat example.
#[derive(Debug, Default)]
pub struct Broadcast {
    clients: BTreeSet<ConnId>,
}

impl Component for Broadcast {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
        self.clients.insert(conn);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _: ConnId, message: Message<'_>) {
        ctx.broadcast(self.clients.iter().copied(), message);
    }

    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
        self.clients.remove(&conn);
    }
}
