//! `/broadcast?topic=NAME` on topics: every message goes to every client of
//! its topic (default `all`), the sender too, on every `pawl` process that
//! shares `--redis`, and to no one on another topic.
//!
//! ```text
//! cargo test -p pawl-server --test broadcast_topics
//! ```

#[path = "../../tests/util/mod.rs"]
mod util;

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

mod chat_util;

use chat_util::Pawl;
use redis_server::RedisServer;
use util::{Client, wait_for};

/// Nodes listening to a topic's channel, by Redis' count.
fn numsub(redis: &RedisServer, topic: &str) -> u64 {
    redis.numsub(&format!("pawl:topic:{topic}"))
}

#[test]
fn a_topic_spans_the_processes_sharing_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let (one, two) = (
        Pawl::start(&["--redis", &url]),
        Pawl::start(&["--redis", &url]),
    );
    let mut x_one = Client::connect(one.addr, "/broadcast?topic=x");
    let mut x_two = Client::connect(two.addr, "/broadcast?topic=x");
    let mut y_two = Client::connect(two.addr, "/broadcast?topic=y");
    let mut all_one = Client::connect(one.addr, "/broadcast");
    wait_for("both processes on topic x", || {
        (numsub(&redis, "x") == 2).then_some(())
    });
    wait_for("the default topic on process one", || {
        (numsub(&redis, "all") == 1).then_some(())
    });

    x_one.send_text("hello x");
    x_one.expect_text("hello x");
    x_two.expect_text("hello x");

    // Other topics heard nothing: each one's next message is its own.
    y_two.send_text("only y");
    y_two.expect_text("only y");
    all_one.send_text("to all");
    all_one.expect_text("to all");
    x_two.send_text("back");
    x_two.expect_text("back");
    x_one.expect_text("back");
}
