//! Ratchet's `MyChat` on topics: every message goes to every client, the
//! sender too; with a Redis URL, to every client of every process started
//! with it.
//!
//! ```text
//! cargo run --example chat
//! cargo run --example chat -- 8081 redis://127.0.0.1:6379   # one of several
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

/// The chat keeps no set of clients: every connection subscribes to one
/// topic, the server knows its subscribers, and each connection's session
/// counts what it said.
#[derive(Debug, Default)]
struct MyChat;

/// Everyone's topic.
const TOPIC: &str = "chat";

/// Per connection: how many messages it sent.
#[derive(Debug, Default)]
struct Said(u64);

impl Component for MyChat {
    type Session = Said;

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) -> Said {
        info!("New connection! ({})", conn.resource_id());
        ctx.subscribe(conn, TOPIC);
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
        // Encoded once, queued on every subscriber here; with a broker,
        // sent once to Redis for the other processes' subscribers.
        let reached = ctx.publish(TOPIC, message);
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
    let mut args = std::env::args().skip(1);
    let port = match args.next().map(|p| p.parse::<u16>()) {
        Some(Ok(port)) => port,
        Some(Err(e)) => return Err(pawl::Error::Config(format!("port: {e}"))),
        None => 8080,
    };
    let mut app = App::new("127.0.0.1", port)
        .route("/echo", EchoServer, &["*"])
        .route("/chat", MyChat, &["*"]);
    if let Some(redis) = args.next() {
        app = app.broker(&redis);
    }
    app.run()
}
