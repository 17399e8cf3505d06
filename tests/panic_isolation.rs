//! A panic in user code is caught where the loop called it, logged, and the
//! loop goes on serving everything else. One test per kind of user code
//! the guard covers: a component callback (`on_message`, and `on_open`), an
//! `App::http` handler, a reactor timer, a user mio source, a task from
//! another thread (`ServerHandle::run`, `Handle::schedule`), and a
//! component's `set_timer` closure. (Redis callbacks: tests of their own.)
//!
//! Each test shows the loop alive after the panic with something that needs
//! the loop thread to run (an echo, a later timer, a later task), so a
//! panic that escaped and killed the thread fails it.

mod util;

use std::io::{self, Write};
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use pawl::reactor::{Interest, LoopHandle, PostAction, TimerId};
use pawl::{CloseReason, Component, ConnId, Context, HttpResponse, Message, Server};
use util::{Raw, TIMEOUT, TestServer, app, wait_for};

/// Echoes; panics on "panic" in `on_message`, in `on_open` when the path's
/// query says `panic-open`, and, on "timer-panic", in a `set_timer`
/// closure (with a later timer that reports "later timer fired").
struct Fragile {
    closes: Sender<(ConnId, CloseReason)>,
    /// The periodic timer of "periodic-panic", and how often it called back.
    periodic: Option<(TimerId, u32)>,
}

impl Component for Fragile {
    type Session = ();

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) {
        let panic_open = ctx
            .request(conn)
            .and_then(|r| r.query())
            .is_some_and(|q| q.contains("panic-open"));
        if panic_open {
            panic!("test panic in on_open on purpose");
        }
        let _ = ctx.send(conn, &format!("id {}", conn.resource_id()));
    }
    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        message: Message<'_>,
    ) {
        match message {
            Message::Text("panic") => panic!("test panic on purpose"),
            Message::Text("periodic-panic") => {
                let id = ctx.set_periodic(Duration::from_millis(1), |me: &mut Fragile, _| {
                    if let Some((_, calls)) = &mut me.periodic {
                        *calls += 1;
                    }
                    panic!("test panic in a periodic component timer on purpose")
                });
                self.periodic = Some((id, 0));
            }
            Message::Text("periodic?") => {
                let report = match self.periodic {
                    Some((id, calls)) => {
                        let active = ctx.event_loop().is_timer_active(id);
                        format!("active={active} calls={calls}")
                    }
                    None => "none".to_owned(),
                };
                let _ = ctx.send(conn, &report);
            }
            Message::Text("timer-panic") => {
                ctx.set_timer(Duration::from_millis(1), |_: &mut Fragile, _| {
                    panic!("test panic in a component timer on purpose")
                });
                ctx.set_timer(Duration::from_millis(50), move |_: &mut Fragile, ctx| {
                    let _ = ctx.send(conn, "later timer fired");
                });
            }
            _ => {
                let _ = ctx.send(conn, message);
            }
        }
    }
    fn on_close(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: &CloseReason) {
        let _ = self.closes.send((conn, reason.clone()));
    }
}

/// A server with `Fragile` on /fragile, a panicking HTTP handler on /boom
/// and a healthy one on /health; `setup` runs on the loop before it turns.
fn fragile_server(
    setup: impl FnOnce(&mut LoopHandle, &Server) + Send + 'static,
) -> (TestServer, mpsc::Receiver<(ConnId, CloseReason)>) {
    let (tx, closes) = mpsc::channel();
    let server = TestServer::start_with(
        move || {
            app()
                .route(
                    "/fragile",
                    Fragile {
                        closes: tx,
                        periodic: None,
                    },
                    &["*"],
                )
                .http("/boom", |_| -> HttpResponse {
                    panic!("test panic in an HTTP handler on purpose")
                })
                .http("/health", |_| HttpResponse::text(200, "ok\n"))
        },
        setup,
    );
    (server, closes)
}

/// A new client on /fragile round-trips `text`: the loop is serving.
#[track_caller]
fn assert_serving(server: &TestServer, text: &str) {
    let mut client = server.client("/fragile");
    let _ = client.text(); // its id
    client.send_text(text);
    client.expect_text(text);
}

#[test]
fn a_panicking_callback_closes_only_its_connection() {
    let (server, closes) = fragile_server(|_, _| {});
    let mut bystander = server.client("/fragile");
    let _ = bystander.text();
    let mut victim = server.client("/fragile");
    let victim_id = victim.text();

    victim.send_text("panic");
    victim.expect_close(1011);

    let (id, reason) = closes
        .recv_timeout(TIMEOUT)
        .expect("on_close for the victim");
    assert_eq!(format!("id {}", id.resource_id()), victim_id);
    assert_eq!(reason, CloseReason::Panic);

    // The bystander is untouched, and new connections are served.
    bystander.send_text("still served");
    bystander.expect_text("still served");
    assert_serving(&server, "hello");

    // Panicking again (many times) changes nothing for the others.
    for _ in 0..5 {
        let mut victim = server.client("/fragile");
        let _ = victim.text();
        victim.send_text("panic");
        victim.expect_close(1011);
    }
    bystander.send_text("after five panics");
    bystander.expect_text("after five panics");
}

/// The new contract: a panic in `on_open` leaves no session, so the
/// connection is closed with 1011 and gets no `on_close` (the old API
/// delivered one).
#[test]
fn a_panic_in_on_open_closes_with_1011_and_no_on_close() {
    let (server, closes) = fragile_server(|_, _| {});
    let mut bystander = server.client("/fragile");
    let bystander_id = bystander.text();

    let mut victim = server.client("/fragile?panic-open");
    victim.expect_close(1011);
    victim.expect_end();

    bystander.send_text("still served");
    bystander.expect_text("still served");
    // The victim is gone by now, without an on_close.
    if let Ok(seen) = closes.recv_timeout(Duration::from_millis(300)) {
        panic!("on_close after a panic in on_open: {seen:?}");
    }
    // on_close still comes for connections that opened.
    bystander.close(1000, "");
    bystander.expect_closed_after(1000);
    let (id, reason) = closes
        .recv_timeout(TIMEOUT)
        .expect("the bystander's on_close");
    assert_eq!(format!("id {}", id.resource_id()), bystander_id);
    assert_eq!(reason.code(), 1000);
}

#[test]
fn a_panicking_http_handler_gets_500_and_the_server_goes_on() {
    let (server, _closes) = fragile_server(|_, _| {});
    for _ in 0..3 {
        let mut raw = Raw::connect(server.addr);
        raw.send(b"GET /boom HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
        let (status, head) = raw.response();
        assert_eq!(status, 500, "{head}");
        raw.read_to_end();
    }
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (status, head) = raw.response();
    assert_eq!(status, 200, "{head}");
    assert_eq!(raw.read_to_end(), b"ok\n");
    assert_serving(&server, "after a panicking handler");
}

#[test]
fn a_panicking_reactor_timer_leaves_the_loop_running() {
    let (tx, fired) = mpsc::channel();
    let (server, _closes) = fragile_server(move |lp, _| {
        let first = tx.clone();
        lp.add_timer(Duration::from_millis(1), move |_| {
            let _ = first.send("panicking");
            panic!("test panic in a reactor timer on purpose");
        });
        lp.add_timer(Duration::from_millis(50), move |_| {
            let _ = tx.send("later");
        });
    });
    assert_eq!(fired.recv_timeout(TIMEOUT), Ok("panicking"));
    assert_eq!(
        fired.recv_timeout(TIMEOUT),
        Ok("later"),
        "the timer after the panicking one"
    );
    assert_serving(&server, "after a panicking timer");
}

#[test]
fn a_panicking_source_callback_is_removed_and_the_loop_goes_on() {
    let (tx, calls) = mpsc::channel();
    let (peer_tx, peer) = mpsc::channel();
    let (server, _closes) = fragile_server(move |lp, _| {
        let (ours, theirs) = mio::net::UnixStream::pair().expect("socket pair");
        let id = lp
            .register(ours, Interest::READABLE, move |_, _, _| -> PostAction {
                let _ = tx.send(());
                panic!("test panic in a source callback on purpose");
            })
            .expect("register");
        peer_tx.send((theirs, id)).expect("the test waits");
    });
    let (mut theirs, id) = peer.recv_timeout(TIMEOUT).expect("the pair");
    theirs.write_all(b"wake up").expect("write");
    calls.recv_timeout(TIMEOUT).expect("the callback ran");

    // Removed: the loop dropped its end, so writes to ours fail, and the
    // callback never runs again (it would, on new data, were it kept).
    let error = wait_for("the source's end to be dropped", || {
        match theirs.write(b"more") {
            Ok(_) => None,
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => None,
            Err(e) => Some(e),
        }
    });
    assert!(
        matches!(
            error.kind(),
            io::ErrorKind::BrokenPipe | io::ErrorKind::ConnectionReset
        ),
        "{error}"
    );
    let (contains_tx, contains) = mpsc::channel();
    server
        .reactor
        .schedule(move |lp| {
            let _ = contains_tx.send(lp.contains(id));
        })
        .expect("scheduled");
    assert_eq!(
        contains.recv_timeout(TIMEOUT),
        Ok(false),
        "still registered"
    );
    assert!(calls.try_recv().is_err(), "the callback ran again");
    assert_serving(&server, "after a panicking source");
}

#[test]
fn panicking_cross_thread_tasks_leave_the_loop_running() {
    let (server, _closes) = fragile_server(|_, _| {});
    let mut client = server.client("/fragile");
    let _ = client.text();
    let (tx, ran) = mpsc::channel();

    let handle = server.server.clone();
    let reactor = server.reactor.clone();
    let after_run = tx.clone();
    std::thread::spawn(move || {
        handle
            .run(|_| panic!("test panic in a ServerHandle task on purpose"))
            .expect("scheduled");
        handle
            .run(move |ctx| {
                let _ = after_run.send(("run", ctx.connections().count()));
            })
            .expect("scheduled");
        reactor
            .schedule(|_| panic!("test panic in a Handle task on purpose"))
            .expect("scheduled");
        reactor
            .schedule(move |_| {
                let _ = tx.send(("schedule", 0));
            })
            .expect("scheduled");
    })
    .join()
    .expect("the scheduling thread");

    assert_eq!(
        ran.recv_timeout(TIMEOUT),
        Ok(("run", 1)),
        "the task after a panicking ServerHandle::run"
    );
    assert_eq!(
        ran.recv_timeout(TIMEOUT),
        Ok(("schedule", 0)),
        "the task after a panicking Handle::schedule"
    );
    client.send_text("after panicking tasks");
    client.expect_text("after panicking tasks");
}

#[test]
fn a_panicking_component_timer_leaves_the_loop_and_the_connection() {
    let (server, closes) = fragile_server(|_, _| {});
    let mut client = server.client("/fragile");
    let _ = client.text();
    client.send_text("timer-panic");
    // The later timer of the same component fires, on the same connection,
    // which the panic did not close.
    client.expect_text("later timer fired");
    client.send_text("still open");
    client.expect_text("still open");
    assert!(
        closes.try_recv().is_err(),
        "a timer's panic closed a connection"
    );
    assert_serving(&server, "after a panicking component timer");
}

#[test]
fn a_periodic_component_timer_that_panics_is_cancelled() {
    let (server, closes) = fragile_server(|_, _| {});
    let mut client = server.client("/fragile");
    let _ = client.text();
    client.send_text("periodic-panic");
    // The firing after the panic cancels the timer instead of calling it.
    let report = wait_for("the panicking periodic timer to be cancelled", || {
        client.send_text("periodic?");
        let report = client.text();
        report.starts_with("active=false").then_some(report)
    });
    assert_eq!(report, "active=false calls=1");
    assert!(
        closes.try_recv().is_err(),
        "a timer's panic closed a connection"
    );
    assert_serving(&server, "after a cancelled periodic timer");
}
