//! `--chat-memory` with `--redis`: what the chat forgets to stay within its
//! budget is still in Redis and is read again when used: an offline
//! member's DMs when they join again, a DM to a forgotten name, an idle
//! room's backlog when it is opened again. A real redis-server.
//!
//! ```text
//! cargo test -p pawl-server --test chat_budget_redis
//! ```

mod chat_util;

use chat_util::redis::Redis;
use chat_util::{NO_RATE_LIMITS, Pawl, texts};
use serde_json::json;

#[test]
fn what_the_budget_forgets_comes_back_from_redis() {
    let redis = Redis::start();
    let url = redis.url();
    let pawl = Pawl::start(
        &[
            &["--redis", &url, "--chat-memory", "1048576"][..],
            &NO_RATE_LIMITS,
        ]
        .concat(),
    );
    redis.wait_for_nodes(1);

    // An idle room with a backlog, and carol, offline with a DM waiting.
    let mut old = pawl.client("old");
    old.join("olga");
    old.send(json!({"type": "say", "text": "said long ago"}));
    old.expect("message");
    old.close();
    let mut alice = pawl.client("lobby");
    alice.join("alice");
    let mut carol = pawl.client("lobby");
    let token = carol.join("carol")["token"].clone();
    carol.close();
    alice.send(json!({"type": "dm", "to": "carol", "text": "for later"}));
    alice.expect("dm");

    // Offline members with 4 KB DMs, until the chat forgets what it must.
    let text = "x".repeat(4000);
    for i in 0..300 {
        let mut user = pawl.client("lobby");
        user.join(&format!("user{i}"));
        user.close();
        alice.send(json!({"type": "dm", "to": format!("user{i}"), "text": text}));
        alice.expect("dm");
    }
    pawl.wait_log("idle rooms and");
    assert!(pawl.log().contains("forgot 1 idle rooms"), "{}", pawl.log());

    // Carol, forgotten, comes back to her DM; a DM to user0, forgotten
    // too, is taken; the idle room has its backlog.
    let mut carol = pawl.client("lobby");
    let welcome = carol.join_with(json!({"name": "carol", "token": token}));
    assert_eq!(texts(&welcome["dms"]), ["for later"]);
    alice.send(json!({"type": "dm", "to": "user0", "text": "still there?"}));
    assert_eq!(alice.expect("dm")["text"], "still there?");
    let mut back = pawl.client("old");
    let welcome = back.join("olga2");
    assert_eq!(texts(&welcome["backlog"]), ["said long ago"]);
}
