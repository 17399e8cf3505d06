//! Several pawl processes (nodes) sharing one real redis-server: users on
//! different nodes talk, DM and see each other as if on one server; ids
//! stay strictly increasing per room; a node killed with SIGKILL drops out
//! of presence on the others within its bound; a Redis outage leaves each
//! node serving its own users, and delivery between nodes comes back.

mod chat_util;

use std::time::{Duration, Instant};

use chat_util::redis::Redis;
use chat_util::{Client, Pawl, TIMEOUT, hears, names, say, texts};
use serde_json::{Value, json};

/// Presence expiry the tests run with; a dead node is dropped within
/// 4/3 of it.
const TTL_MS: u64 = 1500;

fn node(redis: &Redis) -> Pawl {
    let ttl = format!("{TTL_MS}ms");
    Pawl::start(&["--redis", &redis.url(), "--presence-ttl", &ttl])
}

/// Polls `check` until it holds; fails with `what` after [`TIMEOUT`].
#[track_caller]
fn wait_until(what: &str, mut check: impl FnMut() -> bool) {
    let deadline = Instant::now() + TIMEOUT;
    while !check() {
        assert!(Instant::now() < deadline, "{what} within {TIMEOUT:?}");
        // Polling another process's state: nothing to block on.
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// Waits for a presence event of `kind` about `name`, skipping any other
/// presence event; returns it.
#[track_caller]
fn expect_presence(client: &mut Client, kind: &str, name: &str) -> Value {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        assert!(Instant::now() < deadline, "no {kind} of {name}");
        let event = client.recv();
        let who = event["user"]["name"].as_str().or(event["name"].as_str());
        if event["type"] == kind && who == Some(name) {
            return event;
        }
        assert!(
            ["joined", "left", "profile"].contains(&event["type"].as_str().unwrap_or("")),
            "expected {kind} of {name}, got {event}"
        );
    }
}

/// `name` is online for a client that just got `welcome`: in its users,
/// or announced right after. Returns the user.
#[track_caller]
fn sees_online(client: &mut Client, welcome: &Value, name: &str) -> Value {
    let listed = welcome["users"]
        .as_array()
        .and_then(|users| users.iter().find(|u| u["name"] == name).cloned());
    listed.unwrap_or_else(|| expect_presence(client, "joined", name)["user"].clone())
}

/// Two nodes on `redis`, alice in `room` on the first and bob on the
/// second, each having seen the other come online: where most tests here
/// start. Returns `(a, b, alice, bob)`; bind what a test does not use as
/// `_a`, not `_`: a node stops, and a client leaves, when dropped.
#[track_caller]
fn alice_on_a_and_bob_on_b(redis: &Redis, room: &str) -> (Pawl, Pawl, Client, Client) {
    let (a, b) = (node(redis), node(redis));
    redis.wait_for_nodes(2);
    let mut alice = a.client(room);
    alice.join("alice");
    let mut bob = b.client(room);
    let welcome = bob.join("bob");
    sees_online(&mut bob, &welcome, "alice");
    expect_presence(&mut alice, "joined", "bob");
    (a, b, alice, bob)
}

#[test]
fn users_on_two_nodes_talk_dm_and_see_each_other() {
    let redis = Redis::start();
    let (a, b) = (node(&redis), node(&redis));
    redis.wait_for_nodes(2);

    let mut alice = a.client("lobby");
    alice.join_with(json!({"name": "alice", "profile": {"color": "#e91e63", "status": "on A"}}));
    let mut bob = b.client("lobby");
    let welcome = bob.join("bob");
    let bob_token = welcome["token"].as_str().expect("token").to_owned();
    let seen = sees_online(&mut bob, &welcome, "alice");
    assert_eq!(seen["profile"]["status"], "on A", "{seen}");
    expect_presence(&mut alice, "joined", "bob");

    // Profiles travel.
    bob.send(json!({"type": "profile", "profile": {"color": "#00f", "status": "on B"}}));
    let update = expect_presence(&mut alice, "profile", "bob");
    assert_eq!(update["user"]["profile"]["status"], "on B");

    // Public messages, both ways, ids strictly increasing.
    let mut last = 0;
    for round in 0..3 {
        let text = format!("A{round}");
        let id = say(&mut alice, &text);
        hears(&mut bob, id, &text);
        assert!(id > last, "{id} after {last}");
        let text = format!("B{round}");
        let next = say(&mut bob, &text);
        hears(&mut alice, next, &text);
        assert!(next > id, "{next} after {id}");
        last = next;
    }

    // A name is taken on every node.
    let mut thief = b.client("lobby");
    thief.send(json!({"type": "join", "name": "alice"}));
    thief.expect_error("name_taken");
    // And so is a name that looks like it (a Cyrillic а).
    thief.send(json!({"type": "join", "name": "\u{0430}lice"}));
    thief.expect_error("name_taken");

    // DMs reach every tab of both parties, wherever they are; a second tab
    // of bob's on node A does not make him join again.
    let mut bob_on_a = a.client("lobby");
    bob_on_a.join_with(json!({"name": "bob", "token": bob_token}));
    alice.send(json!({"type": "dm", "to": "bob", "text": "psst"}));
    let dm = alice.expect("dm");
    for tab in [&mut bob, &mut bob_on_a] {
        let got = tab.expect("dm");
        assert_eq!((&got["id"], &got["text"]), (&dm["id"], &json!("psst")));
    }
    bob.send(json!({"type": "dm", "to": "alice", "text": "hey"}));
    for tab in [&mut bob, &mut bob_on_a, &mut alice] {
        assert_eq!(tab.expect("dm")["text"], "hey");
    }

    // An offline DM sent on A is waiting for carol on a third node, with
    // the backlog said on A and B; history pages it from there too.
    let mut carol = b.client("lobby");
    let carol_token = carol.join("carol")["token"].clone();
    carol.close();
    expect_presence(&mut alice, "left", "carol");
    alice.send(json!({"type": "dm", "to": "carol", "text": "while you were out"}));
    alice.expect("dm");
    let c = node(&redis);
    let mut carol = c.client("lobby");
    let welcome = carol.join_with(json!({"name": "carol", "token": carol_token}));
    assert_eq!(texts(&welcome["dms"]), ["while you were out"]);
    assert_eq!(
        texts(&welcome["backlog"]),
        ["A0", "B0", "A1", "B1", "A2", "B2"]
    );
    carol.send(json!({"type": "history", "before": last, "limit": 2}));
    assert_eq!(texts(&carol.expect("history")["messages"]), ["B1", "A2"]);
    // Carol sees who is online elsewhere, at once or within a refresh.
    let mut online = names(&welcome["users"]);
    while !(online.contains(&"alice".to_owned()) && online.contains(&"bob".to_owned())) {
        let joined = carol.expect("joined");
        online.push(joined["user"]["name"].as_str().expect("name").to_owned());
    }
}

#[test]
fn ids_are_unique_and_increasing_under_concurrent_says() {
    let redis = Redis::start();
    let (_a, _b, mut alice, mut bob) = alice_on_a_and_bob_on_b(&redis, "ids");

    const EACH: usize = 15;
    for i in 0..EACH {
        alice.send(json!({"type": "say", "text": format!("a{i}")}));
        bob.send(json!({"type": "say", "text": format!("b{i}")}));
    }
    let mut heard = Vec::new();
    for client in [&mut alice, &mut bob] {
        let mut got: Vec<(u64, String)> = (0..2 * EACH)
            .map(|_| {
                let m = client.expect("message");
                (
                    m["id"].as_u64().expect("id"),
                    m["text"].as_str().expect("text").to_owned(),
                )
            })
            .collect();
        // Each node's own messages come out in the order their ids were
        // handed out.
        let own = if heard.is_empty() { 'a' } else { 'b' };
        let own_ids: Vec<u64> = got
            .iter()
            .filter(|(_, t)| t.starts_with(own))
            .map(|(id, _)| *id)
            .collect();
        assert!(own_ids.windows(2).all(|w| w[0] < w[1]), "{own_ids:?}");
        got.sort();
        heard.push(got);
    }
    assert_eq!(heard[0], heard[1], "both nodes heard the same messages");
    let ids: Vec<u64> = heard[0].iter().map(|(id, _)| *id).collect();
    assert!(
        ids.windows(2).all(|w| w[0] < w[1]),
        "ids are unique: {ids:?}"
    );
    // The shared backlog is in id order on a node that took none of them.
    let c = node(&redis);
    let mut carol = c.client("ids");
    let backlog = carol.join("carol")["backlog"].clone();
    let stored: Vec<u64> = backlog
        .as_array()
        .expect("backlog")
        .iter()
        .map(|m| m["id"].as_u64().expect("id"))
        .collect();
    assert_eq!(stored, ids);
}

#[test]
fn a_killed_node_drops_out_of_presence_within_the_bound() {
    let redis = Redis::start();
    let (a, b, _alice, mut bob) = alice_on_a_and_bob_on_b(&redis, "lobby");

    let killed = Instant::now();
    a.kill();
    expect_presence(&mut bob, "left", "alice");
    // A node is dropped at most ttl + ttl/3 after its last refresh.
    let bound = Duration::from_millis(TTL_MS * 4 / 3);
    let took = killed.elapsed();
    assert!(
        took <= bound + Duration::from_millis(500),
        "alice left after {took:?}; the bound is {bound:?}"
    );
    let mut carol = b.client("lobby");
    assert_eq!(names(&carol.join("carol")["users"]), ["bob", "carol"]);
    bob.send(json!({"type": "say", "text": "still here"}));
    bob.expect("message");
}

#[test]
fn a_node_stopped_gracefully_says_goodbye_at_once() {
    let redis = Redis::start();
    // An expiry longer than the test's wait, refreshed while the stopping
    // node waits for its clients' close frames: only the goodbye can make
    // this quick, and a refresh must not undo it.
    let long = ["--redis", &redis.url(), "--presence-ttl", "12s"];
    let (a, b) = (Pawl::start(&long), Pawl::start(&long));
    redis.wait_for_nodes(2);
    let mut alice = a.client("lobby");
    alice.join("alice");
    let mut bob = b.client("lobby");
    let welcome = bob.join("bob");
    sees_online(&mut bob, &welcome, "alice");

    let stopping = Instant::now();
    a.terminate();
    expect_presence(&mut bob, "left", "alice");
    assert_eq!(redis.int(&["SCARD", "pawl:chat:nodes"]), 1);
    assert!(stopping.elapsed() < Duration::from_secs(10));
}

#[test]
fn a_redis_outage_keeps_each_node_serving_and_delivery_comes_back() {
    let mut redis = Redis::start();
    let (a, _b, mut alice, mut bob) = alice_on_a_and_bob_on_b(&redis, "lobby");
    let before = say(&mut alice, "before");
    hears(&mut bob, before, "before");

    redis.kill();
    let alone = say(&mut alice, "alone on A");
    assert!(alone > before);
    let mut ann = a.client("lobby");
    assert_eq!(texts(&ann.join("ann")["backlog"]), ["before", "alone on A"]);

    redis.restart();
    redis.wait_for_nodes(2);
    // Both nodes listen to the room's topic again (they subscribe again by
    // themselves once Redis is back).
    redis.wait_topic("chat:room:lobby", 2);
    let back = say(&mut alice, "back");
    assert!(back > alone, "ids go on above what was said meanwhile");
    // What A said meanwhile was queued and is published once Redis is
    // back; B hears it live if its subscriber was back first.
    let mut next = bob.expect("message");
    if next["text"] == "alone on A" {
        next = bob.expect("message");
    }
    assert_eq!(
        (next["id"].as_u64(), &next["text"]),
        (Some(back), &json!("back"))
    );
    // Either way it reached the shared backlog, and B's memory.
    redis.wait_zcard("pawl:chat:{lobby}:messages", 3);
    wait_until("B has the outage's message", || {
        bob.send(json!({"type": "history", "limit": 10}));
        texts(&bob.expect("history")["messages"]) == ["before", "alone on A", "back"]
    });
}

#[test]
fn a_dm_sent_during_an_outage_reaches_the_other_node_live_when_redis_is_back() {
    let mut redis = Redis::start();
    let (_a, _b, mut alice, mut bob) = alice_on_a_and_bob_on_b(&redis, "lobby");

    redis.kill();
    // B cannot reach A now: the DM is bob's at once, and held for A.
    bob.send(json!({"type": "dm", "to": "alice", "text": "while redis was away"}));
    let sent = bob.expect("dm");

    redis.restart();
    // Once B's link to the other nodes is back it sends what it held, and
    // alice gets the DM as it happens, not at her next join.
    let got = alice.expect("dm");
    assert_eq!(
        (&got["id"], &got["from"], &got["text"]),
        (&sent["id"], &json!("bob"), &json!("while redis was away"))
    );
    // Once, though A may have read it from the store meanwhile: the next
    // DM alice gets is the next one bob sends.
    bob.send(json!({"type": "dm", "to": "alice", "text": "and now"}));
    bob.expect("dm");
    assert_eq!(alice.expect("dm")["text"], "and now");
}
