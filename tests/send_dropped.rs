//! `SendStatus::Dropped`: sends to a connection that is closed, closing, or
//! still in its close handshake are refused and reported.

mod util;

use std::sync::mpsc;

use pawl::{ConnId, SendStatus};
use util::{Recorder, TIMEOUT, TestServer, app};

fn server() -> (TestServer, util::Events) {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || app().route("/rec", recorder, &["*"]));
    (server, events)
}

/// Sends `text` to `conn` from the loop; returns the status and is_open.
fn send_on_loop(server: &TestServer, conn: ConnId, text: &'static str) -> (SendStatus, bool) {
    let (tx, rx) = mpsc::channel();
    server
        .server
        .run(move |ctx| {
            let _ = tx.send((ctx.send(conn, text), ctx.is_open(conn)));
        })
        .expect("scheduled");
    rx.recv_timeout(TIMEOUT).expect("the task ran")
}

#[test]
fn send_to_a_closed_connection_is_dropped() {
    let (server, events) = server();
    let mut client = server.client("/rec");
    let id = events.opened();
    assert_eq!(send_on_loop(&server, id, "open"), (SendStatus::Sent, true));
    client.expect_text("open");
    client.close(1000, "");
    client.expect_closed_after(1000);
    events.closed(id);
    assert_eq!(
        send_on_loop(&server, id, "closed"),
        (SendStatus::Dropped, false)
    );
}

#[test]
fn send_while_the_server_awaits_the_close_reply_is_dropped() {
    let (server, events) = server();
    let mut client = server.client("/rec");
    let id = events.opened();
    // The server sends its close; the client does not answer yet.
    client.send_text("close 1000 going");
    client.expect_close(1000);
    assert_eq!(
        send_on_loop(&server, id, "late"),
        (SendStatus::Dropped, false)
    );
    // Nothing but the end follows the close frame.
    client.expect_end();
}
