//! The chat's JSON protocol (issue 3): the chat mounted as the `pawl`
//! binary mounts it, without Redis, served in this process by the
//! library's test server, with real WebSocket clients on loopback.

#[path = "../../tests/util/mod.rs"]
mod util;

mod chat_util;

use std::net::SocketAddr;

use chat_util::{Client, names, texts};
use pawl::Origins;
use pawl_chat::ChatConfig;
use pawl_chat::setup::{self, StoreConfig};
use serde_json::json;
use util::TestServer;

/// The chat on `/chat` (and its page on `/`) on a reactor thread of its
/// own; stopped on drop.
struct ChatServer(TestServer);

impl ChatServer {
    /// Serves the chat with `config` and the store in memory.
    #[track_caller]
    fn start(config: ChatConfig) -> ChatServer {
        ChatServer(TestServer::start_on_loop(move |lp| {
            let store = StoreConfig::default();
            let (app, _chat) = setup::mount(util::app(), lp, config, &store, &Origins::any())
                .expect("mount the chat");
            app
        }))
    }

    fn addr(&self) -> SocketAddr {
        self.0.addr
    }

    /// A client on `/chat?room=ROOM`.
    #[track_caller]
    fn client(&self, room: &str) -> Client {
        Client::room(self.addr(), room)
    }
}

#[test]
fn join_welcomes_and_announces() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice = server.client("lobby");
    let welcome = alice.join("alice");
    assert_eq!(welcome["you"]["name"], "alice");
    assert_eq!(welcome["token"].as_str().map(str::len), Some(32));
    assert_eq!(names(&welcome["users"]), ["alice"]);
    assert_eq!(welcome["backlog"], json!([]));
    assert_eq!(welcome["dms"], json!([]));

    let mut bob = server.client("lobby");
    let welcome = bob.join("bob");
    assert_eq!(names(&welcome["users"]), ["alice", "bob"]);
    let joined = alice.expect("joined");
    assert_eq!(joined["user"]["name"], "bob");

    bob.close();
    let left = alice.expect("left");
    assert_eq!(left["name"], "bob");
}

#[test]
fn default_room_is_the_lobby() {
    let server = ChatServer::start(ChatConfig::default());
    let mut plain = Client::connect(server.addr(), "/chat");
    plain.join("alice");
    plain.send(json!({"type": "say", "text": "in the lobby"}));
    plain.expect("message");
    let mut lobby = server.client("lobby");
    let welcome = lobby.join("bob");
    assert_eq!(texts(&welcome["backlog"]), ["in the lobby"]);
}

#[test]
fn a_name_is_taken_until_its_token_is_shown() {
    let server = ChatServer::start(ChatConfig::default());
    let mut first = server.client("lobby");
    let token = first.join("alice")["token"].clone();

    let mut thief = server.client("lobby");
    thief.send(json!({"type": "join", "name": "alice"}));
    thief.expect_error("name_taken");
    thief.send(json!({"type": "join", "name": "alice", "token": "guess"}));
    thief.expect_error("name_taken");
    // The connection stays usable: it may join under another name.
    assert_eq!(thief.join("mallory")["you"]["name"], "mallory");

    // Offline, the name is still alice's, and her token reclaims it.
    first.close();
    let mut again = server.client("lobby");
    again.send(json!({"type": "join", "name": "alice"}));
    again.expect_error("name_taken");
    let welcome = again.join_with(json!({"name": "alice", "token": token}));
    assert_eq!(welcome["token"], token, "the token stays the same");

    // A token brought for a name the room does not know (as after a restart
    // without a store) is kept, so the client's saved token stays good.
    let mut newcomer = server.client("lobby");
    let saved = "0123456789abcdef0123456789abcdef";
    let welcome = newcomer.join_with(json!({"name": "zoe", "token": saved}));
    assert_eq!(welcome["token"], saved);
}

#[test]
fn say_reaches_everyone_with_increasing_ids() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice = server.client("lobby");
    alice.join("alice");
    let mut bob = server.client("lobby");
    bob.join("bob");
    let mut lurker = server.client("lobby");

    alice.send(json!({"type": "say", "text": "hello"}));
    bob.send(json!({"type": "say", "text": "hi alice"}));
    let mut ids = Vec::new();
    for client in [&mut alice, &mut bob] {
        let a = client.expect("message");
        let b = client.expect("message");
        let mut got = [a, b];
        got.sort_by_key(|m| m["id"].as_u64());
        let mut said: Vec<&str> = got.iter().map(|m| m["text"].as_str().unwrap()).collect();
        said.sort();
        assert_eq!(said, ["hello", "hi alice"]);
        for m in &got {
            assert!(m["ts"].as_u64().unwrap() > 1_600_000_000_000, "{m}");
            assert!(m["from"] == "alice" || m["from"] == "bob");
        }
        ids.push((
            got[0]["id"].as_u64().unwrap(),
            got[1]["id"].as_u64().unwrap(),
        ));
    }
    assert!(ids[0].0 < ids[0].1);
    assert_eq!(ids[0], ids[1], "everyone sees the same ids");

    // Someone connected but not joined gets nothing; after joining, the
    // backlog in order.
    let welcome = lurker.join("carol");
    let backlog = welcome["backlog"].as_array().unwrap();
    assert_eq!(backlog.len(), 2);
    assert!(backlog[0]["id"].as_u64() < backlog[1]["id"].as_u64());
}

#[test]
fn dm_reaches_every_tab_of_both_parties_only() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice1 = server.client("lobby");
    let alice_token = alice1.join("alice")["token"].clone();
    let mut alice2 = server.client("lobby");
    alice2.join_with(json!({"name": "alice", "token": alice_token}));
    let mut bob1 = server.client("lobby");
    let bob_token = bob1.join("bob")["token"].clone();
    let mut bob2 = server.client("lobby");
    bob2.join_with(json!({"name": "bob", "token": bob_token}));
    let mut carol = server.client("lobby");
    carol.join("carol");

    alice1.send(json!({"type": "dm", "to": "bob", "text": "psst"}));
    for tab in [&mut alice1, &mut alice2, &mut bob1, &mut bob2] {
        let dm = tab.expect("dm");
        assert_eq!(
            (&dm["from"], &dm["to"], &dm["text"]),
            (&json!("alice"), &json!("bob"), &json!("psst"))
        );
        assert!(dm["id"].as_u64().is_some() && dm["ts"].as_u64().is_some());
    }
    carol.expect_quiet();
    // A second tab of a user who is already online announces nothing.
    for tab in [&mut alice1, &mut alice2, &mut bob1, &mut bob2] {
        tab.expect_quiet();
    }
}

#[test]
fn offline_dm_is_delivered_on_the_next_join() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice = server.client("lobby");
    alice.join("alice");
    let mut bob = server.client("lobby");
    let token = bob.join("bob")["token"].clone();
    bob.close();
    assert_eq!(alice.expect("left")["name"], "bob");

    alice.send(json!({"type": "dm", "to": "bob", "text": "call me"}));
    let echo = alice.expect("dm");
    assert_eq!(echo["text"], "call me");

    let mut bob = server.client("lobby");
    let welcome = bob.join_with(json!({"name": "bob", "token": token}));
    let dms = welcome["dms"].as_array().unwrap();
    assert_eq!(dms.len(), 1, "{welcome}");
    assert_eq!(
        (&dms[0]["from"], &dms[0]["to"], &dms[0]["text"]),
        (&json!("alice"), &json!("bob"), &json!("call me"))
    );
    assert_eq!(dms[0]["id"], echo["id"]);
}

#[test]
fn profiles_are_shown_and_updated() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice = server.client("lobby");
    let welcome = alice.join_with(json!({
        "name": "alice",
        "profile": {"color": "#e91e63", "status": "hi"}
    }));
    assert_eq!(
        welcome["you"]["profile"],
        json!({"color": "#e91e63", "status": "hi"})
    );
    let mut bob = server.client("lobby");
    let welcome = bob.join("bob");
    let users = welcome["users"].as_array().unwrap();
    let alice_seen = users.iter().find(|u| u["name"] == "alice").unwrap();
    assert_eq!(alice_seen["profile"]["status"], "hi");
    assert_eq!(alice.expect("joined")["user"]["name"], "bob");

    alice.send(json!({"type": "profile", "profile": {"color": "#00897b", "status": "busy"}}));
    for client in [&mut alice, &mut bob] {
        let update = client.expect("profile");
        assert_eq!(update["user"]["name"], "alice");
        assert_eq!(
            update["user"]["profile"],
            json!({"color": "#00897b", "status": "busy"})
        );
    }
    // A colour that is not a hex colour is dropped rather than passed on.
    bob.send(json!({"type": "profile", "profile": {"color": "red;x:url(y)", "status": "ok"}}));
    let update = alice.expect("profile");
    assert_eq!(
        update["user"]["profile"],
        json!({"color": "", "status": "ok"})
    );
}

#[test]
fn history_pages_backwards_newest_last() {
    let server = ChatServer::start(ChatConfig {
        backlog: 8,
        ..ChatConfig::default()
    });
    let mut alice = server.client("lobby");
    alice.join("alice");
    let mut ids = Vec::new();
    for i in 0..12 {
        alice.send(json!({"type": "say", "text": format!("m{i}")}));
        ids.push(alice.expect("message")["id"].as_u64().unwrap());
    }
    let mut bob = server.client("lobby");
    let welcome = bob.join("bob");
    assert_eq!(
        texts(&welcome["backlog"]),
        ["m4", "m5", "m6", "m7", "m8", "m9", "m10", "m11"],
        "the backlog keeps the last `backlog` messages"
    );

    bob.send(json!({"type": "history", "before": ids[10], "limit": 3}));
    assert_eq!(
        texts(&bob.expect("history")["messages"]),
        ["m7", "m8", "m9"]
    );
    bob.send(json!({"type": "history", "before": ids[7], "limit": 3}));
    assert_eq!(
        texts(&bob.expect("history")["messages"]),
        ["m4", "m5", "m6"]
    );
    bob.send(json!({"type": "history", "before": ids[4], "limit": 3}));
    assert_eq!(bob.expect("history")["messages"], json!([]));
    bob.send(json!({"type": "history", "limit": 2}));
    assert_eq!(texts(&bob.expect("history")["messages"]), ["m10", "m11"]);
}

#[test]
fn since_resumes_with_only_what_was_missed() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice = server.client("lobby");
    alice.join("alice");
    let mut bob = server.client("lobby");
    let token = bob.join("bob")["token"].clone();
    alice.send(json!({"type": "say", "text": "one"}));
    let seen = bob.expect("message")["id"].clone();
    bob.close();
    alice.expect("message");
    alice.send(json!({"type": "say", "text": "two"}));
    alice.send(json!({"type": "dm", "to": "bob", "text": "three"}));
    alice.expect("message");
    alice.expect("dm");

    let mut bob = server.client("lobby");
    let welcome = bob.join_with(json!({"name": "bob", "token": token, "since": seen}));
    assert_eq!(texts(&welcome["backlog"]), ["two"]);
    assert_eq!(texts(&welcome["dms"]), ["three"]);
    let last_id = welcome["last_id"].as_u64().unwrap();
    bob.close();

    // A `since` from another history (a restart without a store) gets
    // everything, and `last_id` says where this history is.
    let mut bob = server.client("lobby");
    let welcome = bob.join_with(json!({"name": "bob", "token": token, "since": last_id + 50}));
    assert_eq!(texts(&welcome["backlog"]), ["one", "two"]);
    assert_eq!(welcome["last_id"], last_id);
}

#[test]
fn rooms_are_kept_apart() {
    let server = ChatServer::start(ChatConfig::default());
    let mut red = server.client("red");
    let red_token = red.join("sam")["token"].clone();
    let mut blue = server.client("blue");
    let welcome = blue.join("sam");
    assert_ne!(welcome["token"], red_token, "names are per room");
    assert_eq!(names(&welcome["users"]), ["sam"]);

    red.send(json!({"type": "say", "text": "red only"}));
    red.expect("message");
    blue.expect_quiet();
    let mut blue2 = server.client("blue");
    assert_eq!(blue2.join("kim")["backlog"], json!([]));
    blue2.send(json!({"type": "dm", "to": "nobody-here", "text": "x"}));
    blue2.expect_error("no_such_user");

    let mut red2 = server.client("red");
    let welcome = red2.join("kim");
    assert_eq!(texts(&welcome["backlog"]), ["red only"]);
    assert_eq!(names(&welcome["users"]), ["kim", "sam"]);

    // A room visited without a word is forgotten, and works when visited
    // again; one with members is kept.
    server.client("ghost").close();
    let mut ghost = server.client("ghost");
    assert_eq!(
        ghost.join("kim")["users"],
        json!([{"name": "kim", "profile": {"color": "", "status": ""}}])
    );
    red.close();
    red2.close();
    let mut red3 = server.client("red");
    assert_eq!(texts(&red3.join("lee")["backlog"]), ["red only"]);
}

#[test]
fn every_error_code_and_the_connection_stays_usable() {
    let server = ChatServer::start(ChatConfig {
        max_text: 64,
        rate: 5.0,
        burst: 20,
        ..ChatConfig::default()
    });
    let mut c = server.client("lobby");

    c.send(json!({"type": "say", "text": "too early"}));
    c.expect_error("not_joined");
    c.send(json!({"type": "history"}));
    c.expect_error("not_joined");
    c.send_text("{not json");
    c.expect_error("bad_request");
    c.send(json!({"type": "shout", "text": "x"}));
    c.expect_error("bad_request");
    c.send(json!({"type": "join"}));
    c.expect_error("bad_request");
    c.send(json!({"type": "join", "name": ""}));
    c.expect_error("bad_request");
    c.send(json!({"type": "join", "name": "x".repeat(33)}));
    c.expect_error("bad_request");
    c.send_binary(b"\x00\x01");
    c.expect_error("bad_request");

    c.join("alice");
    c.send(json!({"type": "join", "name": "alice"}));
    c.expect_error("bad_request");
    c.send(json!({"type": "say"}));
    c.expect_error("bad_request");
    c.send(json!({"type": "say", "text": "x".repeat(65)}));
    c.expect_error("too_long");
    c.send(json!({"type": "dm", "to": "alice", "text": "x".repeat(65)}));
    c.expect_error("too_long");
    c.send(json!({"type": "dm", "to": "nobody", "text": "hi"}));
    c.expect_error("no_such_user");
    c.send(json!({"type": "say", "text": "still here"}));
    assert_eq!(c.expect("message")["text"], "still here");

    // A flood: the burst passes, the rest is refused, the server survives.
    let mut other = server.client("lobby");
    other.join("bob");
    for i in 0..30 {
        other.send(json!({"type": "say", "text": format!("flood {i}")}));
    }
    let (mut sent, mut limited) = (0, 0);
    while sent + limited < 30 {
        let reply = other.recv();
        match reply["type"].as_str() {
            Some("message") if reply["from"] == "bob" => sent += 1,
            Some("error") => {
                assert_eq!(reply["code"], "rate_limited");
                limited += 1;
            }
            _ => {}
        }
    }
    // 20 pass at once; a slow server may refill a few more meanwhile.
    assert!(limited >= 5, "{sent} passed, {limited} limited");
    assert!(sent >= 1, "{sent} passed, {limited} limited");

    // The bucket refills with time: retry until a request passes (bounded
    // by the client's read timeout).
    let deadline = std::time::Instant::now() + chat_util::TIMEOUT;
    loop {
        assert!(std::time::Instant::now() < deadline, "never refilled");
        other.send(json!({"type": "history", "limit": 1}));
        let reply = other.recv();
        if reply["type"] == "history" {
            break;
        }
        if reply["type"] == "error" {
            assert_eq!(reply["code"], "rate_limited");
            std::thread::sleep(std::time::Duration::from_millis(50));
        }
    }
    // Everyone else was served throughout.
    c.send(json!({"type": "say", "text": "after the flood"}));
    let mut got = c.expect("message");
    while got["text"] != "after the flood" {
        got = c.expect("message");
    }
}

#[test]
fn names_that_look_like_other_names_are_refused() {
    let server = ChatServer::start(ChatConfig::default());
    let mut alice = server.client("lobby");
    alice.join("alice");
    let mut mallory = server.client("lobby");
    // Invisible, direction-changing and piled-up characters (issue 12's
    // audit): refused with a reason.
    let zalgo = format!("alice{}", "\u{0301}".repeat(30));
    for name in ["alice\u{200B}", "\u{202E}ecila", "\u{FEFF}alice", &zalgo] {
        mallory.send(json!({"type": "join", "name": name}));
        let error = mallory.expect_error("bad_request");
        assert!(
            error["message"]
                .as_str()
                .is_some_and(|m| m.contains("a name has")),
            "{error}"
        );
    }
    // A Cyrillic а looks like alice's a: her name is taken.
    mallory.send(json!({"type": "join", "name": "\u{0430}lice"}));
    let error = mallory.expect_error("name_taken");
    assert!(
        error["message"]
            .as_str()
            .is_some_and(|m| m.contains("looks like"))
    );
    // The name typed decomposed is the same name, kept composed.
    let mut jose = server.client("lobby");
    assert_eq!(jose.join("Jose\u{0301}")["you"]["name"], "Jos\u{00E9}");
    mallory.send(json!({"type": "join", "name": "Jos\u{00E9}"}));
    mallory.expect_error("name_taken");
    // Names that only look alike to a careless eye stay apart.
    assert_eq!(mallory.join("alicia")["you"]["name"], "alicia");
}

#[test]
fn bad_room_names_are_closed_with_1008() {
    let server = ChatServer::start(ChatConfig::default());
    let long = "r".repeat(65);
    for target in [
        "/chat?room=",
        &format!("/chat?room={long}"),
        "/chat?room=a%0Ab",
    ] {
        let mut client = Client::connect(server.addr(), target);
        assert_eq!(client.recv_close(), Some(1008), "{target}");
    }
    // The room's users are not disturbed by them.
    let mut alice = server.client("lobby");
    alice.join("alice");
    alice.expect_quiet();
}
