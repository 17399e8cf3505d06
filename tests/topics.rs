//! Topics on one server: subscribe, publish (encoded once, to subscribers
//! only), unsubscribe, subscriptions ending with their connection, counts,
//! and publishing from another thread; and across nodes sharing a real
//! redis-server through `App::broker`.

mod util;

#[path = "support/redis_server.rs"]
mod redis_server;

use pawl::{Component, ConnId, Context, Message, OwnedMessage};

use util::{TestServer, app, wait_for};

/// Text commands: `sub T`, `unsub T`, `pub T TEXT`, `count T`, `topics`,
/// `lost`, and `link` (is the broker connected now, and how many times was
/// it told so).
#[derive(Default)]
struct PubSub {
    links: u32,
}

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
            (Some("lost"), None, None) => format!("lost {}", ctx.lost_publishes()),
            (Some("link"), None, None) => format!("link {} {}", ctx.topics_connected(), self.links),
            (Some("topics"), None, None) => {
                let mut topics: Vec<&str> = ctx.topics(conn).collect();
                topics.sort_unstable();
                format!("topics {}", topics.join(","))
            }
            _ => "?".to_owned(),
        };
        let _ = ctx.send(conn, &reply);
    }

    fn on_topics_connected(&mut self, ctx: &mut Context<'_, Self>) {
        assert!(ctx.topics_connected(), "told of a link that is down");
        self.links += 1;
    }
}

fn server() -> TestServer {
    TestServer::start(|| app().route("/ps", PubSub::default(), &["*"]))
}

/// A node: the same app with a broker on `redis`.
fn node(redis: &redis_server::RedisServer) -> TestServer {
    let url = redis.url();
    TestServer::start(move || app().broker(&url).route("/ps", PubSub::default(), &["*"]))
}

/// How many nodes Redis has on a topic's channel.
fn numsub(redis: &redis_server::RedisServer, topic: &str) -> u64 {
    redis.numsub(&format!("pawl:topic:{topic}"))
}

#[track_caller]
fn wait_numsub(redis: &redis_server::RedisServer, topic: &str, want: u64) {
    wait_for(&format!("{want} nodes on {topic}"), || {
        (numsub(redis, topic) == want).then_some(())
    });
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

#[test]
fn a_publish_reaches_every_node_that_has_subscribers_and_only_those() {
    let redis = redis_server::RedisServer::start();
    let (one, two, three) = (node(&redis), node(&redis), node(&redis));
    let mut a = one.client("/ps");
    let mut b = two.client("/ps");
    let mut c = three.client("/ps");
    for (client, topic) in [(&mut a, "news"), (&mut b, "news")] {
        client.send_text(&format!("sub {topic}"));
        client.expect_text("sub true");
    }
    c.send_text("sub sport");
    c.expect_text("sub true");
    // A node listens to a topic only while it has a subscriber to it.
    wait_numsub(&redis, "news", 2);
    wait_numsub(&redis, "sport", 1);
    assert_eq!(numsub(&redis, "nobody"), 0);

    a.send_text("pub news hello");
    a.expect_text("hello");
    a.expect_text("reached 1");
    b.expect_text("hello");
    // Node three has no news subscriber: c's next message answers its ask.
    c.send_text("count sport");
    c.expect_text("count 1");

    // Order per topic and publisher is kept across nodes.
    for i in 0..20 {
        a.send_text(&format!("pub news n{i}"));
    }
    for i in 0..20 {
        b.expect_text(&format!("n{i}"));
    }

    // The last subscriber of a node leaving takes the node off the channel.
    b.send_text("unsub news");
    b.expect_text("unsub true");
    wait_numsub(&redis, "news", 1);
    drop(a);
    wait_numsub(&redis, "news", 0);
}

#[test]
fn without_redis_a_node_still_delivers_its_own_publishes_and_catches_up_after() {
    let mut redis = redis_server::RedisServer::start();
    let (one, two) = (node(&redis), node(&redis));
    let mut here = one.client("/ps");
    let mut there = two.client("/ps");
    for client in [&mut here, &mut there] {
        client.send_text("sub room");
        client.expect_text("sub true");
    }
    wait_numsub(&redis, "room", 2);
    for client in [&mut here, &mut there] {
        wait_link(client, "link true 1");
    }

    redis.kill();
    // Local delivery goes on; once the node has seen Redis go, a publish
    // is counted as lost across nodes.
    let lost = util::wait_for("a publish counted as lost", || {
        here.send_text("pub room local only");
        here.expect_text("local only");
        here.expect_text("reached 1");
        here.send_text("lost");
        let lost: u64 = here.text()["lost ".len()..].parse().expect("a count");
        (lost > 0).then_some(lost)
    });

    here.send_text("link");
    here.expect_text("link false 1");

    redis.restart();
    // Both nodes subscribe again on their own, and each tells its routes
    // once both its connections are back: from then on a publish crosses.
    wait_numsub(&redis, "room", 2);
    wait_link(&mut here, "link true 2");
    here.send_text("pub room again");
    here.expect_text("again");
    here.expect_text("reached 1");
    there.expect_text("again");
    // The count is a total: Redis coming back does not reset it.
    here.send_text("lost");
    let now: u64 = here.text()["lost ".len()..].parse().expect("a count");
    assert!(now >= lost, "lost {now} after {lost}");
}

/// Asks `client`'s node about its broker link until it answers `want`.
#[track_caller]
fn wait_link(client: &mut util::Client, want: &str) {
    util::wait_for(want, || {
        client.send_text("link");
        (client.text() == want).then_some(())
    });
}

#[test]
fn a_server_without_a_broker_is_never_told_of_a_link() {
    let server = server();
    let mut client = server.client("/ps");
    client.send_text("link");
    client.expect_text("link true 0");
}
