//! A route watching a topic (`Context::watch`): its component hears what
//! other nodes publish on it, after the topic's subscribers there; the watch
//! keeps the node on the topic's Redis channel, and its own publishes are
//! not told back to it. Two nodes on a real redis-server.

mod util;

#[path = "support/redis_server.rs"]
mod redis_server;

use pawl::{Component, ConnId, Context, Message};

use util::{TestServer, app, wait_for};

/// Text commands: `watch T`, `unwatch T`, `pub T TEXT`, `ping`. What other
/// nodes publish on a watched topic goes to every connection of the route
/// as `heard T TEXT`.
struct Watcher;

impl Component for Watcher {
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
            (Some("watch"), Some(topic), None) => format!("watch {}", ctx.watch(topic)),
            (Some("unwatch"), Some(topic), None) => format!("unwatch {}", ctx.unwatch(topic)),
            (Some("pub"), Some(topic), Some(text)) => {
                format!("reached {}", ctx.publish(topic, text))
            }
            (Some("ping"), None, None) => "pong".to_owned(),
            _ => "?".to_owned(),
        };
        let _ = ctx.send(conn, &reply);
    }

    fn on_remote_publish(&mut self, ctx: &mut Context<'_, Self>, topic: &str, msg: Message<'_>) {
        let Message::Text(text) = msg else { return };
        ctx.broadcast_route(&format!("heard {topic} {text}"));
    }
}

fn node(redis: &redis_server::RedisServer) -> TestServer {
    let url = redis.url();
    TestServer::start(move || app().broker(&url).route("/w", Watcher, &["*"]))
}

#[track_caller]
fn wait_numsub(redis: &redis_server::RedisServer, topic: &str, want: u64) {
    wait_for(&format!("{want} nodes on {topic}"), || {
        (redis.numsub(&format!("pawl:topic:{topic}")) == want).then_some(())
    });
}

#[test]
fn a_watching_route_hears_other_nodes_publishes_and_not_its_own() {
    let redis = redis_server::RedisServer::start();
    let (one, two) = (node(&redis), node(&redis));
    let mut a = one.client("/w");
    let mut b = two.client("/w");

    // Only the watching node listens to the topic's channel.
    b.send_text("watch news");
    b.expect_text("watch true");
    b.send_text("watch news");
    b.expect_text("watch false");
    wait_numsub(&redis, "news", 1);

    // A publish on node one reaches no subscriber there and the watcher on
    // node two, in order.
    for i in 0..5 {
        a.send_text(&format!("pub news n{i}"));
        a.expect_text("reached 0");
    }
    for i in 0..5 {
        b.expect_text(&format!("heard news n{i}"));
    }

    // Both watch: a publish on two is heard on one, not back on two.
    a.send_text("watch news");
    a.expect_text("watch true");
    wait_numsub(&redis, "news", 2);
    b.send_text("pub news from two");
    b.expect_text("reached 0");
    a.expect_text("heard news from two");
    b.send_text("ping");
    b.expect_text("pong");

    // The last watcher going takes its node off the channel.
    b.send_text("unwatch news");
    b.expect_text("unwatch true");
    b.send_text("unwatch news");
    b.expect_text("unwatch false");
    wait_numsub(&redis, "news", 1);
    a.send_text("pub news after");
    a.expect_text("reached 0");
    b.send_text("ping");
    b.expect_text("pong");
}
