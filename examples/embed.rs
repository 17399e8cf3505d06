//! A program that owns the loop: a WebSocket route, a periodic timer of its
//! own and a TCP source of its own, all on one `Reactor`. Every line written
//! to the TCP port, and a clock tick every five seconds, go to every
//! WebSocket client; the route's typed handle is how the timer and the
//! source reach the component.
//!
//! ```text
//! cargo run --example embed
//! ```
//!
//! Then connect a WebSocket client to `ws://127.0.0.1:8080/feed` and, in
//! another terminal, type lines into `nc 127.0.0.1 8081`.

use std::io::{self, Read};
use std::time::Duration;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use pawl::reactor::{Interest, LoopHandle, PostAction, Reactor};
use pawl::{App, Component, ConnId, Context, Message, Route};

/// The WebSocket side: clients listen; the feed counts what it published.
#[derive(Debug, Default)]
struct Feed {
    published: u64,
}

impl Component for Feed {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}

    fn on_message(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), _: Message<'_>) {
        // A feed: clients listen, they do not talk.
    }
}

impl Feed {
    /// Sends `line` to every client of the route.
    fn publish(&mut self, ctx: &mut Context<'_, Self>, line: &str) {
        self.published += 1;
        let reached = ctx.broadcast_route(line);
        debug!("{line:?} (#{}) reached {reached} clients", self.published);
    }
}

/// Reads one TCP client's lines until `WouldBlock` (the loop is
/// edge-triggered) and publishes each complete one.
fn read_lines(
    stream: &mut TcpStream,
    pending: &mut Vec<u8>,
    feed: Route<Feed>,
    lp: &mut LoopHandle,
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
        let line = String::from_utf8_lossy(&line).trim_end().to_owned();
        if !line.is_empty() {
            lp.with(feed, move |feed, ctx| feed.publish(ctx, &line));
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
    let feed = app.mount("/feed", Feed::default(), &["*"]);
    let server = app.listen(&mut reactor)?;

    // Our own timer on the same loop, reaching the component by its route.
    let mut ticks = 0u64;
    reactor.add_periodic(Duration::from_secs(5), move |lp| {
        ticks += 1;
        lp.with(feed, move |feed, ctx| {
            feed.publish(ctx, &format!("tick {ticks}"))
        });
    });

    // Our own TCP source on the same loop: each accepted connection becomes
    // a source too, with a callback that reads its lines.
    let lines = TcpListener::bind("127.0.0.1:8081".parse()?)?;
    info!("line source on {}", lines.local_addr()?);
    reactor.register(lines, Interest::READABLE, move |listener, _, lp| {
        loop {
            match listener.accept() {
                Ok((stream, peer)) => {
                    info!("line source connected: {peer}");
                    let mut pending = Vec::new();
                    let registered =
                        lp.register(stream, Interest::READABLE, move |stream, _, lp| {
                            read_lines(stream, &mut pending, feed, lp)
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
    server.close_all_now(&mut reactor);
    Ok(())
}
