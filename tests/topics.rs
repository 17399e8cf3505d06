//! Topics on one server: subscribe, publish (encoded once, to subscribers
//! only), unsubscribe, subscriptions ending with their connection, counts,
//! and publishing from another thread.

mod util;

use pawl::{Component, ConnId, Context, Message, OwnedMessage};
use util::{TestServer, app, wait_for};

/// Text commands: `sub T`, `unsub T`, `pub T TEXT`, `count T`, `topics`.
struct PubSub;

impl Component for PubSub {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        msg: Message<'_>,
    ) {
        let Message::Text(text) = msg else { return };
        let mut words = text.splitn(3, ' ');
        let reply = match (words.next(), words.next(), words.next()) {
            (Some("sub"), Some(topic), None) => format!("sub {}", ctx.subscribe(conn, topic)),
            (Some("unsub"), Some(topic), None) => format!("unsub {}", ctx.unsubscribe(conn, topic)),
            (Some("pub"), Some(topic), Some(text)) => {
                let reached = ctx.publish(topic, text);
                format!("reached {reached}")
            }
            (Some("count"), Some(topic), None) => format!("count {}", ctx.subscribers(topic)),
            (Some("topics"), None, None) => {
                let mut topics: Vec<&str> = ctx.topics(conn).collect();
                topics.sort_unstable();
                format!("topics {}", topics.join(","))
            }
            _ => "?".to_owned(),
        };
        let _ = ctx.send(conn, &reply);
    }
}

fn server() -> TestServer {
    TestServer::start(|| app().route("/ps", PubSub, &["*"]))
}

#[test]
fn a_publish_reaches_the_topics_subscribers_only() {
    let server = server();
    let (mut a, mut b, mut c) = (
        server.client("/ps"),
        server.client("/ps"),
        server.client("/ps"),
    );
    let subscribe = |client: &mut util::Client, topic: &str| {
        client.send_text(&format!("sub {topic}"));
        client.expect_text("sub true");
    };
    subscribe(&mut a, "news");
    subscribe(&mut b, "news");
    subscribe(&mut b, "sport");
    subscribe(&mut c, "sport");
    a.send_text("sub news");
    a.expect_text("sub false");
    b.send_text("topics");
    b.expect_text("topics news,sport");

    // c publishes to news without subscribing to it: a and b get it, c not.
    c.send_text("pub news hello");
    c.expect_text("reached 2");
    a.expect_text("hello");
    b.expect_text("hello");
    c.send_text("count news");
    c.expect_text("count 2");

    a.send_text("unsub news");
    a.expect_text("unsub true");
    c.send_text("pub news again");
    c.expect_text("reached 1");
    b.expect_text("again");
    // a hears nothing more: its next message is the answer to its own ask.
    a.send_text("count news");
    a.expect_text("count 1");
}

#[test]
fn subscriptions_end_with_their_connection() {
    let server = server();
    let mut stays = server.client("/ps");
    let mut goes = server.client("/ps");
    for client in [&mut stays, &mut goes] {
        client.send_text("sub room");
        client.expect_text("sub true");
    }
    goes.close(1000, "bye");
    wait_for("the closed connection to leave the topic", || {
        stays.send_text("count room");
        (stays.text() == "count 1").then_some(())
    });
    stays.send_text("pub room still");
    stays.expect_text("still");
    stays.expect_text("reached 1");
}

#[test]
fn another_thread_publishes_through_the_server_handle() {
    let server = server();
    let mut listener = server.client("/ps");
    listener.send_text("sub ticker");
    listener.expect_text("sub true");
    let handle = server.server.clone();
    std::thread::spawn(move || {
        handle
            .publish("ticker", OwnedMessage::Text("from a thread".into()))
            .expect("the loop takes it");
    })
    .join()
    .expect("the thread");
    listener.expect_text("from a thread");
}
