//! The reactor shared with a program's own work (as examples/embed.rs does):
//! a periodic timer and a line-based TCP source of the program's own, on the
//! same loop as a WebSocket route, publishing to its clients through the
//! route's typed handle (`App::mount` -> `Route<Feed>`, `LoopHandle::with`).

mod util;

use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::sync::mpsc;
use std::time::Duration;

use mio::net::TcpListener;
use pawl::reactor::{Interest, LoopHandle, PostAction};
use pawl::{Component, ConnId, Context, Message, Route, Server};
use util::{TIMEOUT, TestServer, app};

/// The feed's subscribers are the route's open connections.
struct Feed;

impl Component for Feed {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}
    fn on_message(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), _: Message<'_>) {}
}

fn publish(route: Route<Feed>, lp: &mut LoopHandle, text: &str) {
    let text = text.to_owned();
    let reached = lp.with(route, move |_: &mut Feed, ctx| {
        ctx.broadcast_route(text.as_str());
    });
    assert!(reached, "the Feed's server is gone");
}

/// Registers a line listener and a periodic timer that publish through
/// the route `mounted` delivers; sends back the listener's address.
fn own_work(
    mounted: mpsc::Receiver<Route<Feed>>,
    lines_addr: mpsc::Sender<SocketAddr>,
) -> impl FnOnce(&mut LoopHandle, &Server) + Send {
    move |lp, _server| {
        let route = mounted.try_recv().expect("the app was built first");
        let mut ticks = 0;
        lp.add_periodic(Duration::from_millis(20), move |lp| {
            ticks += 1;
            publish(route, lp, &format!("tick {ticks}"));
        });

        let listener = TcpListener::bind("127.0.0.1:0".parse().expect("addr")).expect("bind");
        lines_addr
            .send(listener.local_addr().expect("addr"))
            .expect("test waits");
        lp.register(listener, Interest::READABLE, move |listener, _, lp| {
            while let Ok((stream, _)) = listener.accept() {
                let mut pending = Vec::new();
                lp.register(stream, Interest::READABLE, move |stream, _, lp| {
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
                        publish(route, lp, &format!("line {}", line.trim_end()));
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
    let (route_tx, route_rx) = mpsc::channel();
    let server = TestServer::start_with(
        move || {
            let mut app = app();
            let route = app.mount("/feed", Feed, &["*"]);
            route_tx.send(route).expect("setup waits");
            app
        },
        own_work(route_rx, tx),
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
