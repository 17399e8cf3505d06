//! A program that owns the loop: a WebSocket route, a periodic timer of its
//! own and a TCP source of its own, all on one `Reactor`. Every line written
//! to the TCP port, and a clock tick every five seconds, go to every
//! WebSocket client.
//!
//! ```text
//! cargo run --example embed
//! ```
//!
//! Then connect a WebSocket client to `ws://127.0.0.1:8080/feed` and, in
//! another terminal, type lines into `nc 127.0.0.1 8081`.

use std::collections::BTreeSet;
use std::io::{self, Read};
use std::time::Duration;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use pawl::reactor::{Interest, PostAction, Reactor};
use pawl::{App, CloseReason, Component, ConnId, Context, Message, Server};

/// The WebSocket side: keeps its clients so the program can reach them.
#[derive(Debug, Default)]
struct Feed {
    clients: BTreeSet<ConnId>,
}

impl Component for Feed {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
        self.clients.insert(conn);
    }

    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {
        // A feed: clients listen, they do not talk.
    }

    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
        self.clients.remove(&conn);
    }
}

/// Sends `line` to every feed client, from outside the component's callbacks.
fn publish(server: &Server, reactor: &mut Reactor, line: &str) {
    let result = server.with_component::<Feed, _>(reactor, |feed, ctx| {
        ctx.broadcast(feed.clients.iter().copied(), line)
    });
    match result {
        Ok(Some(reached)) => debug!("{line:?} reached {reached} clients"),
        Ok(None) => warn!("no Feed mounted"),
        Err(e) => warn!("publish: {e}"),
    }
}

/// Reads one TCP client's lines until `WouldBlock` (the loop is
/// edge-triggered) and publishes each complete one.
fn read_lines(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    server: &Server,
    reactor: &mut Reactor,
) -> PostAction {
    let mut buf = [0u8; 4096];
    loop {
        match stream.read(&mut buf) {
            Ok(0) => return PostAction::Remove,
            Ok(n) => pending.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(e) => {
                warn!("line source: {e}");
                return PostAction::Remove;
            }
        }
        // A source that never sends a newline must not grow without bound.
        if pending.len() > 64 << 10 {
            warn!("line source: line too long, dropping the connection");
            return PostAction::Remove;
        }
    }
    while let Some(end) = pending.iter().position(|&b| b == b'\n') {
        let line: Vec<u8> = pending.drain(..=end).collect();
        let line = String::from_utf8_lossy(&line);
        let line = line.trim_end();
        if !line.is_empty() {
            publish(server, reactor, line);
        }
    }
    PostAction::Continue
}

fn main() -> Result<(), Box<dyn std::error::Error>> {
    simple_logger::SimpleLogger::new()
        .with_level(log::LevelFilter::Info)
        .init()?;
    let mut reactor = Reactor::new()?;
    reactor.stop_on_signals()?;

    let mut app = App::new("127.0.0.1", 8080);
    app.route("/feed", Feed::default(), &["*"]);
    let server = app.listen(&mut reactor)?;

    // Our own timer on the same loop.
    let clock = server.clone();
    let mut ticks = 0u64;
    reactor.add_periodic(Duration::from_secs(5), move |reactor| {
        ticks += 1;
        publish(&clock, reactor, &format!("tick {ticks}"));
    });

    // Our own TCP source on the same loop: each accepted connection becomes
    // a source too, with a callback that reads its lines.
    let lines = TcpListener::bind("127.0.0.1:8081".parse()?)?;
    info!("line source on {}", lines.local_addr()?);
    let feed = server.clone();
    reactor.register(lines, Interest::READABLE, move |listener, _, reactor| {
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    info!("line source connected: {peer}");
                    let server = feed.clone();
                    let mut pending = Vec::new();
                    let registered =
                        reactor.register(stream, Interest::READABLE, move |stream, _, reactor| {
                            read_lines(stream, &mut pending, &server, reactor)
                        });
                    if let Err(e) = registered {
                        warn!("line source {peer}: {e}");
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return PostAction::Continue,
                Err(e)
                    if matches!(
                        e.kind(),
                        io::ErrorKind::Interrupted | io::ErrorKind::ConnectionAborted
                    ) => {}
                Err(e) => {
                    warn!("line source accept: {e}");
                    return PostAction::Continue;
                }
            }
        }
    })?;

    reactor.run()?;
    server.close_all_now(&mut reactor)?;
    Ok(())
}
