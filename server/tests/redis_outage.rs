//! The chat when Redis stalls or is unreachable (`--redis`), against a real
//! redis-server stopped with SIGSTOP: its kernel still accepts connections
//! and commands, and it answers nothing until SIGCONT, when it runs what
//! sat in its socket buffers (issue 12, items 1 to 3).
//!
//! - A stall is an outage: messages between users of one node arrive while
//!   Redis is still stopped, and everything converges once it resumes.
//! - What was written into the stalled connection runs once: a join whose
//!   claim was in flight succeeds and keeps its name, ids are not handed
//!   out twice, a publish is not repeated.
//! - A name taken on a node that could not check it never replaces the
//!   claim made before: once Redis answers, the session that took it loses
//!   it with `name_taken`, and it never sees the owner's direct messages.

mod chat_util;

use chat_util::redis::Redis;
use chat_util::{Pawl, hears, say, texts};
use serde_json::{Value, json};

fn node(redis: &Redis) -> Pawl {
    Pawl::start(&["--redis", &redis.url(), "--presence-ttl", "1500ms"])
}

/// The token Redis holds for `name` in `room`.
#[track_caller]
fn stored_token(redis: &Redis, room: &str, name: &str) -> Option<String> {
    let key = format!("pawl:chat:{{{room}}}:members");
    let json = redis.strings(&["HGET", &key, name]).pop()?;
    let member: Value = serde_json::from_str(&json).expect("member JSON");
    Some(member["token"].as_str().expect("token").to_owned())
}

#[test]
fn a_stalled_redis_does_not_stall_the_chat() {
    let redis = Redis::start();
    let a = node(&redis);
    redis.wait_for_nodes(1);
    let mut alice = a.client("stall");
    alice.join("alice");
    let mut bob = a.client("stall");
    bob.join("bob");
    let first = say(&mut alice, "before");
    hears(&mut bob, first, "before");

    redis.freeze();
    // Each message arrives within the client's deadline while Redis is
    // still stopped (the first one after the node calls it a stall).
    let mut said = vec!["before".to_owned()];
    let mut last = first;
    for round in 0..6 {
        let (from, to) = if round % 2 == 0 {
            (&mut alice, &mut bob)
        } else {
            (&mut bob, &mut alice)
        };
        let text = format!("stalled {round}");
        let id = say(from, &text);
        hears(to, id, &text);
        assert!(id > last, "{id} after {last}");
        last = id;
        said.push(text);
    }

    redis.thaw();
    // What was said meanwhile reaches Redis, and a node that took none of
    // it serves the whole backlog.
    redis.wait_zcard("pawl:chat:{stall}:messages", said.len() as i64);
    let b = node(&redis);
    let mut carol = b.client("stall");
    assert_eq!(texts(&carol.join("carol")["backlog"]), said);
    let back = say(&mut alice, "back");
    assert!(
        back > last,
        "ids go on above the stall's: {back} after {last}"
    );
    hears(&mut carol, back, "back");
}

#[test]
fn a_claim_an_id_and_a_publish_caught_in_a_stall_run_once() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    redis.wait_for_nodes(2);
    // What the nodes publish (the library's topics): public messages on
    // the room's topic, the other events (a profile change) on its events
    // topic.
    let events = redis.listen(&[
        "pawl:topic:chat:room:replay",
        "pawl:topic:chat:events:replay",
    ]);
    let mut alice = a.client("replay");
    alice.join("alice");
    let mut bob = a.client("replay");
    bob.join("bob");
    let before = say(&mut alice, "before");
    hears(&mut bob, before, "before");

    redis.freeze();
    // Written into the stalled connection before the node notices: a
    // publish (bob's profile), a claim (carol's name), an id (alice's say).
    bob.send(json!({"type": "profile", "profile": {"status": "stalled-status"}}));
    let mut carol = a.client("replay");
    carol.send(json!({"type": "join", "name": "carol"}));
    alice.send(json!({"type": "say", "text": "during"}));
    // Once the stall is noticed the node goes on without Redis.
    let welcome = carol.expect("welcome");
    let carol_token = welcome["token"].as_str().expect("token").to_owned();
    let during = alice.expect("message");
    assert_eq!(during["text"], "during");
    let during = during["id"].as_u64().expect("id");
    assert_eq!(during, before + 1);

    redis.thaw();
    // The stalled claim ran once when Redis resumed; the node claims the
    // name again, finds its own token and keeps it.
    a.wait_log("\"carol\" in \"replay\", taken while redis was unreachable, is confirmed");
    assert_eq!(
        stored_token(&redis, "replay", "carol").as_deref(),
        Some(carol_token.as_str())
    );
    carol.send(json!({"type": "say", "text": "carol is in"}));
    let mut carols = carol.expect("message");
    if carols["text"] == "during" {
        // Said after her join reached the node, or before: either way.
        carols = carol.expect("message");
    }
    assert_eq!(carols["text"], "carol is in", "carol kept her name");
    let mut thief = b.client("replay");
    thief.send(json!({"type": "join", "name": "carol"}));
    thief.expect_error("name_taken");
    let mut carol_on_b = b.client("replay");
    carol_on_b.join_with(json!({"name": "carol", "token": carol_token}));

    // Ids: none handed out twice, none skipped by a second run.
    hears(
        &mut alice,
        carols["id"].as_u64().expect("id"),
        "carol is in",
    );
    let after = say(&mut alice, "after");
    assert_eq!(after, carols["id"].as_u64().expect("id") + 1);
    assert_eq!(carols["id"].as_u64(), Some(during + 1));
    assert_eq!(
        redis.strings(&["GET", "pawl:chat:{replay}:seq"]),
        [after.to_string()]
    );
    // Publishes: "after" went out after anything that could repeat an
    // earlier one (a resend comes first on the new connection, and the
    // stalled connection ran before any other once Redis resumed).
    events.wait_for("\"text\":\"after\"");
    assert_eq!(events.count("stalled-status"), 1, "bob's profile event");
    assert_eq!(events.count("\"text\":\"during\""), 1);
    let mut dave = b.client("replay");
    let backlog = dave.join("dave")["backlog"].clone();
    assert_eq!(
        texts(&backlog),
        ["before", "during", "carol is in", "after"]
    );
}

/// How Redis goes away in [`name_taken_during_an_outage`].
#[derive(Clone, Copy)]
enum Outage {
    /// SIGSTOP: connections are accepted and never answered.
    Stall,
    /// Saved to disk, killed (connections refused), started again from the
    /// save: down, but with its data when it comes back.
    Down,
}

/// The scenario: alice's name and DMs are in Redis; node B starts
/// during an outage, before it has seen the room, and mallory joins there
/// as "alice".
fn name_taken_during_an_outage(outage: Outage) {
    let mut redis = Redis::start();
    let a = node(&redis);
    redis.wait_for_nodes(1);
    let mut alice = a.client("lobby");
    let alice_token = alice.join("alice")["token"]
        .as_str()
        .expect("token")
        .to_owned();
    let mut bob = a.client("lobby");
    bob.join("bob");
    bob.send(json!({"type": "dm", "to": "alice", "text": "secret"}));
    bob.expect("dm");
    alice.expect("dm");
    redis.wait_zcard("pawl:chat:{lobby}:dms:alice", 1);

    // Redis goes away; node B starts meanwhile and has never seen the room,
    // so it cannot tell that "alice" is taken: mallory gets it, for now.
    match outage {
        Outage::Stall => redis.freeze(),
        Outage::Down => {
            assert_eq!(redis.command(&["SAVE"]), "+OK");
            redis.kill();
        }
    }
    let b = node(&redis);
    let mut mallory = b.client("lobby");
    let welcome = mallory.join("alice");
    let mallory_token = welcome["token"].as_str().expect("token").to_owned();
    assert_ne!(mallory_token, alice_token);
    assert_eq!(texts(&welcome["dms"]), Vec::<String>::new());

    match outage {
        Outage::Stall => redis.thaw(),
        Outage::Down => redis.restart(),
    }
    // Once B can check, mallory loses the name (before any DM of alice's
    // could reach her: `expect` fails on anything but presence).
    mallory.expect_error("name_taken");
    assert_eq!(
        stored_token(&redis, "lobby", "alice").as_deref(),
        Some(alice_token.as_str()),
        "the owner's claim was never replaced"
    );
    // A DM to alice now reaches alice, not mallory: a witness on B hears a
    // public message published after it, then mallory proves she got
    // nothing and holds no name.
    let mut dave = b.client("lobby");
    dave.join("dave");
    bob.send(json!({"type": "dm", "to": "alice", "text": "after"}));
    bob.expect("dm");
    assert_eq!(alice.expect("dm")["text"], "after");
    let flush = say(&mut bob, "flush");
    hears(&mut dave, flush, "flush");
    mallory.send(json!({"type": "say", "text": "still alice?"}));
    mallory.expect_error("not_joined");
    // She may join again under another name.
    mallory.join("mallory");

    // A fresh node: mallory's token does not open "alice"; alice's does,
    // with her DMs.
    let c = node(&redis);
    let mut again = c.client("lobby");
    again.send(json!({"type": "join", "name": "alice", "token": mallory_token}));
    again.expect_error("name_taken");
    let mut alice_on_c = c.client("lobby");
    let welcome = alice_on_c.join_with(json!({"name": "alice", "token": alice_token}));
    assert_eq!(texts(&welcome["dms"]), ["secret", "after"]);
}

#[test]
fn a_name_taken_while_redis_is_stalled_never_replaces_its_owner() {
    name_taken_during_an_outage(Outage::Stall);
}

#[test]
fn a_name_taken_while_redis_is_down_never_replaces_its_owner() {
    name_taken_during_an_outage(Outage::Down);
}
