//! Thousands of connections at once on one loop thread: all open, all get a
//! broadcast, all echo, and all are gone after the clients leave.
//!
//! 3000 clients and the server's 3000 sockets share this process's
//! 20 000-descriptor limit.

mod util;

use std::sync::mpsc;

use pawl::EchoServer;
use util::{TIMEOUT, TestServer, app, wait_for};

const CLIENTS: usize = 3000;

/// The number of open connections, asked on the loop.
fn open_connections(server: &TestServer) -> usize {
    let (tx, rx) = mpsc::channel();
    server
        .server
        .run(move |ctx| {
            let _ = tx.send(ctx.connections().count());
        })
        .expect("scheduled");
    rx.recv_timeout(TIMEOUT).expect("the task ran")
}

#[test]
fn three_thousand_clients_at_once() {
    let server = TestServer::start(|| app().route("/echo", EchoServer, &["*"]));
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| server.client("/echo")).collect();
    assert_eq!(open_connections(&server), CLIENTS);

    server
        .server
        .run(|ctx| {
            let conns: Vec<_> = ctx.connections().collect();
            let sent = ctx.broadcast(conns, "to everyone");
            assert_eq!(sent, CLIENTS);
        })
        .expect("scheduled");
    for client in &mut clients {
        client.expect_text("to everyone");
    }

    // All send first, then all read: the server holds 3000 echoes at once.
    for (i, client) in clients.iter_mut().enumerate() {
        client.send_text(&format!("client {i}"));
    }
    for (i, client) in clients.iter_mut().enumerate() {
        client.expect_text(&format!("client {i}"));
    }

    drop(clients);
    wait_for("every connection to be gone", || {
        (open_connections(&server) == 0).then_some(())
    });
}
