//! The reactor shared with a program's own work (as examples/embed.rs does):
//! a periodic timer and a line-based TCP source of the program's own, on the
//! same loop as a WebSocket route, publishing to its clients through
//! `Server::with_component`.

mod util;

use std::collections::BTreeSet;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use mio::net::TcpListener;
use pawl::reactor::{Interest, PostAction, Reactor};
use pawl::{CloseReason, Component, ConnId, Context, Message, Server};
use util::{TIMEOUT, TestServer, app};

#[derive(Default)]
struct Feed {
    clients: BTreeSet<ConnId>,
}

impl Component for Feed {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
        self.clients.insert(conn);
    }
    fn on_message(&mut self, _: &mut Context<'_>, _: ConnId, _: Message<'_>) {}
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
        self.clients.remove(&conn);
    }
}

fn publish(server: &Server, reactor: &mut Reactor, text: &str) {
    server
        .with_component::<Feed, _>(reactor, |feed, ctx| {
            ctx.broadcast(feed.clients.iter().copied(), text)
        })
        .expect("not re-entered")
        .expect("a Feed is mounted");
}

/// Registers a line listener and a periodic timer; sends back the
/// listener's address.
fn own_work(lines_addr: mpsc::Sender<SocketAddr>) -> impl FnOnce(&mut Reactor, &Server) + Send {
    move |reactor, server| {
        let clock = server.clone();
        let mut ticks = 0;
        reactor.add_periodic(Duration::from_millis(20), move |reactor| {
            ticks += 1;
            publish(&clock, reactor, &format!("tick {ticks}"));
        });

        let listener = TcpListener::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        lines_addr
            .send(listener.local_addr().expect("addr"))
            .expect("test waits");
        let feed = server.clone();
        reactor
            .register(listener, Interest::READABLE, move |listener, _, reactor| {
                while let Ok((stream, _)) = listener.accept() {
                    let server = feed.clone();
                    let mut pending = Vec::new();
                    reactor
                        .register(stream, Interest::READABLE, move |stream, _, reactor| {
                            let mut buf = [0u8; 1024];
                            loop {
                                match stream.read(&mut buf) {
                                    Ok(0) => return PostAction::Remove,
                                    Ok(n) => pending.extend_from_slice(&buf[..n]),
                                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                                    Err(_) => return PostAction::Remove,
                                }
                            }
                            while let Some(end) = pending.iter().position(|&b| b == b'\n') {
                                let line: Vec<u8> = pending.drain(..=end).collect();
                                let line = String::from_utf8(line).expect("utf-8");
                                publish(&server, reactor, &format!("line {}", line.trim_end()));
                            }
                            PostAction::Continue
                        })
                        .expect("register a line source");
                }
                PostAction::Continue
            })
            .expect("register the listener");
    }
}

#[test]
fn own_timer_and_own_tcp_source_reach_websocket_clients() {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start_with(
        || {
            let mut app = app();
            app.route("/feed", Feed::default(), &["*"]);
            app
        },
        own_work(tx),
    );
    let lines_addr = rx.recv_timeout(TIMEOUT).expect("line listener address");
    let mut a = server.client("/feed");
    let mut b = server.client("/feed");

    let mut source = std::net::TcpStream::connect(lines_addr).expect("connect line source");
    // One line split across two writes, then two lines in one.
    source.write_all(b"hel").expect("write");
    source.flush().expect("flush");
    source.write_all(b"lo\nsecond\nthird\n").expect("write");

    for client in [&mut a, &mut b] {
        let mut lines = Vec::new();
        let mut ticks = 0;
        while lines.len() < 3 || ticks == 0 {
            let text = client.text();
            if text.starts_with("tick ") {
                ticks += 1;
            } else {
                lines.push(text);
            }
        }
        assert_eq!(lines, ["line hello", "line second", "line third"]);
    }
}
