//! Ratchet's `MyChat`: every message goes to every client, the sender too.
//!
//! ```text
//! cargo run --example chat
//! ```
//!
//! Then open two browser tabs and, in each one's console:
//!
//! ```text
//! let ws = new WebSocket('ws://127.0.0.1:8080/chat');
//! ws.onmessage = e => console.log(e.data);
//! ```
//!
//! and `ws.send('hi')` in either.

use std::collections::BTreeSet;

use log::{info, warn};
use pawl::{App, CloseReason, Component, ConnId, Context, Message};

/// The chat keeps its own set of clients, as the PHP original does.
#[derive(Debug, Default)]
struct MyChat {
    clients: BTreeSet<ConnId>,
}

impl Component for MyChat {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
        self.clients.insert(conn);
        info!("New connection! ({})", conn.resource_id());
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, from: ConnId, message: Message<'_>) {
        info!(
            "Connection {} sending {} bytes to {} connections",
            from.resource_id(),
            message.as_bytes().len(),
            self.clients.len()
        );
        // Encoded once, queued on every connection.
        ctx.broadcast(self.clients.iter().copied(), message);
    }

    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        self.clients.remove(&conn);
        info!(
            "Connection {} has disconnected: {reason}",
            conn.resource_id()
        );
    }

    fn on_error(&mut self, _: &mut Context<'_>, conn: ConnId, error: &pawl::Error) {
        // The server closes the connection itself; on_close follows.
        warn!("An error has occurred on {}: {error}", conn.resource_id());
    }
}

fn main() -> pawl::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .expect("logger");
    let mut app = App::new("127.0.0.1", 8080);
    app.route("/chat", MyChat::default(), &["*"]);
    app.run()
}
