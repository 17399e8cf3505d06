//! Broadcast: with 200 clients on a chat route, every client gets every
//! message exactly once, the sender's own included.

mod util;

use std::collections::{BTreeMap, BTreeSet};

use pawl::{Component, ConnId, Context, Message};
use util::{Received, TestServer, app};

const CLIENTS: usize = 200;

/// The seed's MyChat. The route's open connections are the list (the
/// server keeps it; the component keeps no set of its own).
struct MyChat;

impl Component for MyChat {
    type Session = ();

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) {
        // Tell the client it is on the list, so the test knows when all are.
        let _ = ctx.send(conn, "welcome");
    }
    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        _: ConnId,
        _: &mut (),
        message: Message<'_>,
    ) {
        let open = ctx.connections().count();
        let sent = ctx.broadcast_route(message);
        assert_eq!(open, CLIENTS, "every client is on the route");
        assert_eq!(sent, open, "every open client takes it");
    }
}

#[test]
fn every_client_gets_every_message_exactly_once() {
    let server = TestServer::start(|| app().route("/chat", MyChat, &["*"]));
    let mut clients: Vec<_> = (0..CLIENTS)
        .map(|_| {
            let mut client = server.client("/chat");
            client.expect_text("welcome");
            client
        })
        .collect();

    for (i, client) in clients.iter_mut().enumerate() {
        client.send_text(&format!("from {i}"));
    }

    let expected: BTreeSet<String> = (0..CLIENTS).map(|i| format!("from {i}")).collect();
    for (i, client) in clients.iter_mut().enumerate() {
        let mut counts: BTreeMap<String, usize> = BTreeMap::new();
        for _ in 0..CLIENTS {
            *counts.entry(client.text()).or_default() += 1;
        }
        let got: BTreeSet<String> = counts.keys().cloned().collect();
        assert_eq!(got, expected, "client {i} got a different set of messages");
        assert!(
            counts.values().all(|&n| n == 1),
            "client {i} got a message twice: {counts:?}"
        );
    }

    // Nothing more is queued for anyone: a last round trip arrives next.
    clients[0].send_text("last");
    for client in &mut clients {
        assert_eq!(client.recv(), Received::Text("last".into()));
    }
}
