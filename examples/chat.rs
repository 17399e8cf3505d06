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

use log::{info, warn};
use pawl::{App, CloseReason, Component, ConnId, Context, EchoServer, Message};

/// The chat keeps no set of clients: the server knows its route's
/// connections, and each connection's session counts what it said.
#[derive(Debug, Default)]
struct MyChat;

/// Per connection: how many messages it sent.
#[derive(Debug, Default)]
struct Said(u64);

impl Component for MyChat {
    type Session = Said;

    fn on_open(&mut self, _: &mut Context<'_, Self>, conn: ConnId) -> Said {
        info!("New connection! ({})", conn.resource_id());
        Said::default()
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        from: ConnId,
        said: &mut Said,
        message: Message<'_>,
    ) {
        said.0 += 1;
        // Encoded once, queued on every connection of the route.
        let reached = ctx.broadcast_route(message);
        info!(
            "Connection {} sending {} bytes to {reached} connections",
            from.resource_id(),
            message.as_bytes().len(),
        );
    }

    fn on_close(&mut self, _: &mut Context<'_, Self>, conn: ConnId, said: Said, why: &CloseReason) {
        info!(
            "Connection {} has disconnected after {} messages: {why}",
            conn.resource_id(),
            said.0
        );
    }

    fn on_error(
        &mut self,
        _: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut Said,
        error: &pawl::Error,
    ) {
        // The server closes the connection itself; on_close follows.
        warn!("An error has occurred on {}: {error}", conn.resource_id());
    }
}

fn main() -> pawl::Result<()> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()
        .expect("logger");
    App::new("127.0.0.1", 8080)
        .route("/echo", EchoServer, &["*"])
        .route("/chat", MyChat, &["*"])
        .run()
}
