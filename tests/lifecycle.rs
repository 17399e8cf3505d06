//! A connection's callbacks: `on_open` first, `on_close` last and exactly
//! once, whatever closes it; callbacks may close other connections, close
//! from `on_open`, and send from `on_close`.

mod util;

use std::collections::{BTreeMap, BTreeSet};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use pawl::{CloseCode, CloseReason, Component, ConnId, Context, Message, ServerConfig};
use util::{Raw, TIMEOUT, TestServer, app, client_frame, server_frame};

const OPEN_IN_ON_CLOSE: &str = "is_open in on_close";

#[derive(Debug, Clone, PartialEq)]
enum Call {
    Open(ConnId),
    Message(ConnId, String),
    Close(ConnId, CloseReason),
}

/// "kick" closes every other connection; "bye" closes itself; a path with
/// `?refuse` is closed from `on_open`. On each close it tells everyone left
/// (the route's open connections: the server keeps the member list).
struct Room {
    calls: Sender<Call>,
}

fn code(code: u16) -> CloseCode {
    CloseCode::new(code).expect("a code a server may send")
}

impl Component for Room {
    type Session = ();

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) {
        let _ = self.calls.send(Call::Open(conn));
        let refuse = ctx
            .request(conn)
            .is_some_and(|r| r.query().is_some_and(|q| q.contains("refuse")));
        if refuse {
            ctx.close(conn, code(4003), "refused in on_open");
            return;
        }
        let _ = ctx.send(conn, "joined");
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        message: Message<'_>,
    ) {
        let text = match message {
            Message::Text(text) => text,
            Message::Binary(_) => "binary",
        };
        let _ = self.calls.send(Call::Message(conn, text.to_owned()));
        match text {
            "kick" => {
                let others: Vec<ConnId> = ctx.connections().filter(|&m| m != conn).collect();
                for other in others {
                    ctx.close(other, code(4001), "kicked");
                }
            }
            "bye" => ctx.close(conn, code(4002), "bye"),
            _ => {}
        }
    }

    fn on_close(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, _: (), reason: &CloseReason) {
        let _ = self.calls.send(Call::Close(conn, reason.clone()));
        if ctx.is_open(conn) || ctx.connections().any(|c| c == conn) {
            // A panic here would only be logged; report it instead.
            let _ = self
                .calls
                .send(Call::Message(conn, OPEN_IN_ON_CLOSE.into()));
        }
        let note = format!("left {}", conn.resource_id());
        ctx.broadcast_route(note.as_str());
    }
}

fn server(config: ServerConfig) -> (TestServer, mpsc::Receiver<Call>) {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move || {
        app()
            .config(config)
            .route("/room", Room { calls: tx }, &["*"])
    });
    (server, rx)
}

/// Checks the order of each connection's calls: open, messages, one close.
#[track_caller]
fn assert_lifecycles(calls: &[Call]) -> BTreeMap<ConnId, CloseReason> {
    let mut open = BTreeSet::new();
    let mut closed = BTreeMap::new();
    for call in calls {
        match call {
            Call::Open(id) => assert!(open.insert(*id), "{id} opened twice"),
            Call::Message(id, text) => {
                assert_ne!(text, OPEN_IN_ON_CLOSE, "{id} still open in on_close");
                assert!(open.contains(id), "message before on_open for {id}");
                assert!(!closed.contains_key(id), "message after on_close for {id}");
            }
            Call::Close(id, reason) => {
                assert!(open.contains(id), "on_close before on_open for {id}");
                assert!(
                    closed.insert(*id, reason.clone()).is_none(),
                    "{id} closed twice"
                );
            }
        }
    }
    closed
}

#[test]
fn closing_other_connections_from_a_callback() {
    let (server, calls) = server(ServerConfig::default());
    let mut kicker = server.client("/room");
    kicker.expect_text("joined");
    let mut others: Vec<_> = (0..5)
        .map(|_| {
            let mut c = server.client("/room");
            c.expect_text("joined");
            c
        })
        .collect();
    kicker.send_text("kick");
    for other in &mut others {
        // "left" notes for the others kicked before this one may come first.
        let close = loop {
            match other.recv() {
                util::Received::Text(t) if t.starts_with("left ") => {}
                got => break got,
            }
        };
        assert_eq!(close, util::Received::Close(4001, "kicked".into()));
        other.expect_end();
    }
    // The kicker hears of every departure.
    for _ in 0..5 {
        assert!(kicker.text().starts_with("left "));
    }
    kicker.send_text("bye");
    assert_eq!(kicker.expect_close(4002), "bye");
    kicker.expect_end();

    let mut seen = Vec::new();
    while seen.iter().filter(|c| matches!(c, Call::Close(..))).count() < 6 {
        seen.push(calls.recv_timeout(TIMEOUT).expect("calls"));
    }
    let closed = assert_lifecycles(&seen);
    assert_eq!(closed.len(), 6);
    let kicked = closed
        .values()
        .filter(|r| {
            **r == CloseReason::Server {
                code: code(4001),
                reason: "kicked".into(),
            }
        })
        .count();
    assert_eq!(kicked, 5);
}

#[test]
fn close_from_on_open() {
    let (server, calls) = server(ServerConfig::default());
    let mut client = server.client("/room?refuse");
    assert_eq!(client.expect_close(4003), "refused in on_open");
    client.expect_end();
    let open = calls.recv_timeout(TIMEOUT).expect("open");
    let close = calls.recv_timeout(TIMEOUT).expect("close");
    let Call::Open(id) = open else {
        panic!("expected open, got {open:?}")
    };
    assert_eq!(
        close,
        Call::Close(
            id,
            CloseReason::Server {
                code: code(4003),
                reason: "refused in on_open".into()
            }
        )
    );
}

#[test]
fn peer_that_never_answers_our_close_is_dropped_after_the_close_timeout() {
    let (server, calls) = server(ServerConfig::default().close_timeout(Duration::from_millis(200)));
    let mut raw = Raw::upgrade(server.addr, "/room");
    raw.send(&client_frame(true, 0x1, b"bye"));
    // Never answer the close frame; the server drops us after the timeout.
    let bytes = raw.read_to_end();
    let mut frames = Vec::new();
    let mut at = &bytes[..];
    while let Some((opcode, payload, used)) = server_frame(at) {
        frames.push((opcode, payload));
        at = &at[used..];
    }
    assert_eq!(frames.last().map(|f| f.0), Some(8), "{frames:?}");
    let mut seen = Vec::new();
    while !seen.iter().any(|c| matches!(c, Call::Close(..))) {
        seen.push(calls.recv_timeout(TIMEOUT).expect("calls"));
    }
    let closed = assert_lifecycles(&seen);
    let reason = closed.values().next().expect("one close");
    // Reported as the close the server started, the one the component asked for.
    assert_eq!(
        *reason,
        CloseReason::Server {
            code: code(4002),
            reason: "bye".into()
        }
    );
}

#[test]
fn ping_payload_comes_back_in_the_pong() {
    let (server, _calls) = server(ServerConfig::default());
    let mut raw = Raw::upgrade(server.addr, "/room");
    raw.send(&client_frame(true, 0x9, b"are you there"));
    raw.send(&client_frame(true, 0x8, &1000u16.to_be_bytes()));
    let bytes = raw.read_to_end();
    let mut frames = Vec::new();
    let mut at = &bytes[..];
    while let Some((opcode, payload, used)) = server_frame(at) {
        frames.push((opcode, payload));
        at = &at[used..];
    }
    assert!(
        frames.contains(&(0xA, b"are you there".to_vec())),
        "no pong with the ping's payload: {frames:?}"
    );
}

/// The loop owns its servers: a `Server` is only a key, and one server can
/// be stopped alone. Its clients get 1001, it stops listening and leaves the
/// loop, and the other server on the same loop goes on serving.
#[test]
fn one_server_stops_alone_and_the_loop_goes_on() {
    let (tx, rx) = mpsc::channel();
    let first = TestServer::start_with(
        || app().route("/echo", pawl::EchoServer, &["*"]),
        move |lp, _| {
            let second = app()
                .route("/echo", pawl::EchoServer, &["*"])
                .listen(lp)
                .expect("a second server on the same loop");
            tx.send(second).expect("the test waits");
        },
    );
    let second = rx.recv_timeout(TIMEOUT).expect("the second server");
    let mut on_second = util::Client::connect(second.local_addr(), "/echo");
    on_second.send_text("before");
    on_second.expect_text("before");

    first
        .reactor
        .schedule(move |lp| second.stop(lp))
        .expect("the loop takes tasks");
    on_second.expect_close(1001);
    drop(on_second);
    // It leaves once its last connection is gone.
    util::wait_for("the stopped server to leave the loop", || {
        let (ran, running) = mpsc::channel();
        first
            .reactor
            .schedule(move |lp| {
                let _ = ran.send(second.is_running(lp));
            })
            .expect("the loop takes tasks");
        let running = running.recv_timeout(TIMEOUT).expect("an answer");
        (!running).then_some(())
    });
    assert!(
        std::net::TcpStream::connect(second.local_addr()).is_err(),
        "the stopped server no longer listens"
    );

    let mut on_first = first.client("/echo");
    on_first.send_text("still here");
    on_first.expect_text("still here");
}

/// A route from `App::mount` reaches nothing before the app listens (`with`
/// says so and drops the closure), and its component once it does; with
/// the server stopped, nothing again.
#[test]
fn a_route_reaches_its_component_only_while_its_server_listens() {
    use std::cell::Cell;
    use std::rc::Rc;

    struct Counter(u32);
    impl Component for Counter {
        type Session = ();
        fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}
        fn on_message(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), _: Message<'_>) {
        }
    }

    let mut reactor = pawl::reactor::Reactor::new().expect("a reactor");
    let mut app = app();
    let route = app.mount("/count", Counter(0), &["*"]);
    let ran = Rc::new(Cell::new(0));
    let seen = ran.clone();
    assert!(!reactor.with(route, move |_, _| seen.set(seen.get() + 1)));
    let server = app.listen(&mut reactor).expect("listen");
    let seen = ran.clone();
    assert!(reactor.with(route, move |counter, ctx| {
        counter.0 += 1;
        assert_eq!(ctx.route(), route, "a context knows its route");
        seen.set(seen.get() + 1);
    }));
    assert_eq!(ran.get(), 1, "ran at once: the server was free");
    assert_eq!(reactor.try_with(route, |counter, _| counter.0), Some(1));
    server.stop(&mut reactor);
    assert!(!server.is_running(&reactor));
    assert!(!reactor.with(route, |_, _| unreachable!("the server is gone")));
    assert_eq!(reactor.try_with(route, |counter, _| counter.0), None);
}
