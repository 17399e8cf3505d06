//! The chat on the library's topics: with `--redis`, a room between two
//! nodes travels on the topics' channels (`pawl:topic:chat:room:ROOM` and
//! `pawl:topic:chat:events:ROOM`), only on nodes that use the room, and the
//! chat has no channel of its own; `/broadcast` cannot name the chat's
//! topics, so no client reads a DM or speaks as someone through it.
//!
//! ```text
//! cargo test -p pawl-server --test chat_topics
//! ```

#[path = "../../tests/util/mod.rs"]
mod util;

mod chat_util;

use chat_util::redis::Redis;
use chat_util::{Client, Pawl};
use serde_json::json;

#[test]
fn rooms_travel_on_topics_only_to_the_nodes_that_use_them() {
    let redis = Redis::start();
    let (a, b, c) = (
        Pawl::start(&["--redis", &redis.url()]),
        Pawl::start(&["--redis", &redis.url()]),
        Pawl::start(&["--redis", &redis.url()]),
    );
    redis.wait_for_nodes(3);
    let mut alice = a.client("lobby");
    alice.join("alice");
    let mut bob = b.client("lobby");
    bob.join("bob");
    let mut carol = c.client("elsewhere");
    carol.join("carol");
    redis.wait_topic("chat:room:lobby", 2);
    redis.wait_topic("chat:events:lobby", 2);
    redis.wait_topic("chat:room:elsewhere", 1);

    alice.send(json!({"type": "say", "text": "over topics"}));
    let said = alice.expect("message");
    let heard = bob.expect("message");
    assert_eq!(said, heard);
    // Node c uses another room: nothing of the lobby reached its users.
    carol.expect_quiet();
    // The chat has no pub/sub channel of its own any more.
    let patterns = redis.int(&["PUBSUB", "NUMPAT"]);
    assert_eq!(patterns, 0, "no PSUBSCRIBE of the chat's own");

    // The last user of a room on a node leaving takes it off the channels.
    carol.close();
    redis.wait_topic("chat:room:elsewhere", 0);
    redis.wait_topic("chat:events:elsewhere", 0);
}

#[test]
fn broadcast_cannot_name_the_chats_topics() {
    let redis = Redis::start();
    let pawl = Pawl::start(&["--redis", &redis.url()]);
    for topic in ["chat:events:lobby", "chat:room:lobby", "chat:"] {
        let mut spy = util::Client::connect(pawl.addr, &format!("/broadcast?topic={topic}"));
        let reason = spy.expect_close(1008);
        assert_eq!(reason, "reserved topic");
    }
    // Nearby names are anyone's.
    let mut fine = util::Client::connect(pawl.addr, "/broadcast?topic=chatter");
    fine.send_text("hi");
    fine.expect_text("hi");

    // And the chat still works beside it: a DM reaches its parties only.
    let mut alice = Client::connect(pawl.addr, "/chat?room=lobby");
    alice.join("alice");
    let mut bob = Client::connect(pawl.addr, "/chat?room=lobby");
    bob.join("bob");
    alice.expect("joined");
    alice.send(json!({"type": "dm", "to": "bob", "text": "psst"}));
    assert_eq!(bob.expect("dm")["text"], "psst");
    fine.send_text("still alone");
    fine.expect_text("still alone");
}
