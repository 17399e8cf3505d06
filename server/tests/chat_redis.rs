//! The chat's backlog in a real redis-server (`pawl --redis URL`): it
//! survives a restart of pawl, and a Redis that is killed and comes back
//! empty mid-chat gets everything back.

mod chat_util;

use chat_util::redis::Redis;
use chat_util::{Pawl, texts};
use serde_json::json;

const MESSAGES: &str = "pawl:chat:{lobby}:messages";

#[test]
fn backlog_survives_a_restart_of_pawl() {
    let redis = Redis::start();
    let url = redis.url();
    let pawl = Pawl::start(&["--redis", &url]);

    let mut bob = pawl.client("lobby");
    let bob_token = bob.join("bob")["token"].clone();
    bob.close();
    let mut alice = pawl.client("lobby");
    let alice_token = alice.join_with(json!({
        "name": "alice",
        "profile": {"color": "#e91e63", "status": "persistent"}
    }))["token"]
        .clone();
    let mut last_id = 0;
    for text in ["one", "two", "three"] {
        alice.send(json!({"type": "say", "text": text}));
        last_id = alice.expect("message")["id"].as_u64().unwrap();
    }
    alice.send(json!({"type": "dm", "to": "bob", "text": "while you were out"}));
    alice.expect("dm");

    // Everything reached Redis before pawl goes down hard.
    redis.wait_zcard(MESSAGES, 3);
    redis.wait_zcard("pawl:chat:{lobby}:dms:bob", 1);
    pawl.kill();

    let pawl = Pawl::start(&["--redis", &url]);
    let mut eve = pawl.client("lobby");
    let welcome = eve.join("eve");
    assert_eq!(texts(&welcome["backlog"]), ["one", "two", "three"]);

    let mut thief = pawl.client("lobby");
    thief.send(json!({"type": "join", "name": "alice"}));
    thief.expect_error("name_taken");

    let mut alice = pawl.client("lobby");
    let welcome = alice.join_with(json!({"name": "alice", "token": alice_token}));
    assert_eq!(welcome["you"]["profile"]["status"], "persistent");
    let mut bob = pawl.client("lobby");
    let welcome = bob.join_with(json!({"name": "bob", "token": bob_token}));
    assert_eq!(texts(&welcome["dms"]), ["while you were out"]);

    alice.send(json!({"type": "say", "text": "four"}));
    let id = alice.expect("message")["id"].as_u64().unwrap();
    assert!(id > last_id + 1, "ids go on after a restart: {id}");
}

#[test]
fn redis_killed_and_restarted_mid_chat_loses_nothing() {
    let mut redis = Redis::start();
    let url = redis.url();
    let pawl = Pawl::start(&["--redis", &url]);

    let mut alice = pawl.client("lobby");
    let alice_token = alice.join("alice")["token"].clone();
    for text in ["m1", "m2"] {
        alice.send(json!({"type": "say", "text": text}));
        alice.expect("message");
    }
    redis.wait_zcard(MESSAGES, 2);

    // Redis dies and forgets everything; the chat goes on.
    redis.kill();
    for text in ["m3", "m4"] {
        alice.send(json!({"type": "say", "text": text}));
        alice.expect("message");
    }
    let mut bob = pawl.client("lobby");
    let welcome = bob.join("bob");
    let bob_token = welcome["token"].clone();
    assert_eq!(texts(&welcome["backlog"]), ["m1", "m2", "m3", "m4"]);
    bob.send(json!({"type": "dm", "to": "alice", "text": "said while redis was down"}));
    bob.expect("dm");
    alice.expect("dm");

    // Redis comes back empty: pawl reconnects and writes it all back.
    redis.restart();
    redis.wait_zcard(MESSAGES, 4);
    redis.wait_zcard("pawl:chat:{lobby}:dms:alice", 1);
    redis.wait_zcard("pawl:chat:{lobby}:dms:bob", 1);
    assert_eq!(redis.int(&["HLEN", "pawl:chat:{lobby}:members"]), 2);
    bob.send(json!({"type": "say", "text": "m5"}));
    bob.expect("message");
    redis.wait_zcard(MESSAGES, 5);

    // A new pawl finds all of it.
    pawl.kill();
    let pawl = Pawl::start(&["--redis", &url]);
    let mut carol = pawl.client("lobby");
    let welcome = carol.join("carol");
    assert_eq!(texts(&welcome["backlog"]), ["m1", "m2", "m3", "m4", "m5"]);
    let mut alice = pawl.client("lobby");
    let welcome = alice.join_with(json!({"name": "alice", "token": alice_token}));
    assert_eq!(texts(&welcome["dms"]), ["said while redis was down"]);
    let mut bob = pawl.client("lobby");
    bob.join_with(json!({"name": "bob", "token": bob_token}));
}

#[test]
fn chat_works_while_redis_is_down_from_the_start() {
    let mut redis = Redis::start();
    let url = redis.url();
    redis.kill();
    let pawl = Pawl::start(&["--redis", &url]);

    // The room waits a moment for Redis, then goes on from memory.
    let mut alice = pawl.client("lobby");
    alice.join("alice");
    alice.send(json!({"type": "say", "text": "anyone there?"}));
    alice.expect("message");
    let mut bob = pawl.client("lobby");
    assert_eq!(texts(&bob.join("bob")["backlog"]), ["anyone there?"]);

    // Redis arrives: what was said reaches it.
    redis.restart();
    redis.wait_zcard(MESSAGES, 1);
    assert_eq!(redis.int(&["HLEN", "pawl:chat:{lobby}:members"]), 2);
    pawl.wait_log("goes on from memory");
}
