//! `pawl --workers 2 --redis URL`: each worker is a node of the chat, so a
//! few hundred clients, spread by the kernel over both workers, all see
//! every message.

mod chat_util;

use std::collections::BTreeSet;
use std::time::{Duration, Instant};

use chat_util::redis::Redis;
use chat_util::{Client, Pawl, TIMEOUT};
use serde_json::{Value, json};

const CLIENTS: usize = 200;

#[test]
fn clients_spread_over_two_workers_see_every_message() {
    let redis = Redis::start();
    let pawl = Pawl::start(&["--workers", "2", "--redis", &redis.url()]);
    redis.wait_for_nodes(2);

    let mut clients: Vec<Client> = (0..CLIENTS)
        .map(|i| {
            let mut client = Client::connect(pawl.addr, "/chat?room=many");
            client.join(&format!("u{i}"));
            client
        })
        .collect();

    // Both workers have users: each node's presence key lists its own
    // (refreshed every second, so poll until they cover every join).
    let deadline = Instant::now() + TIMEOUT;
    let per_node = loop {
        let per_node = users_per_node(&redis);
        if per_node.iter().sum::<usize>() == CLIENTS {
            break per_node;
        }
        assert!(Instant::now() < deadline, "presence keys: {per_node:?}");
        std::thread::sleep(Duration::from_millis(50));
    };
    assert_eq!(per_node.len(), 2);
    assert!(
        per_node.iter().all(|&n| n > 0),
        "clients spread over both workers: {per_node:?}"
    );

    for (i, client) in clients.iter_mut().enumerate() {
        client.send(json!({"type": "say", "text": format!("from u{i}")}));
    }
    let want: BTreeSet<String> = (0..CLIENTS).map(|i| format!("from u{i}")).collect();
    let mut ids = None;
    for (i, client) in clients.iter_mut().enumerate() {
        let mut texts = BTreeSet::new();
        let mut seen = BTreeSet::new();
        for _ in 0..CLIENTS {
            let message = client.expect("message");
            texts.insert(message["text"].as_str().expect("text").to_owned());
            seen.insert(message["id"].as_u64().expect("id"));
        }
        assert_eq!(texts, want, "client u{i} heard every message once");
        assert_eq!(seen.len(), CLIENTS, "ids are unique");
        match &ids {
            None => ids = Some(seen),
            Some(ids) => assert_eq!(ids, &seen, "the same ids everywhere"),
        }
    }
}

/// How many users of room `many` each node's presence key lists.
fn users_per_node(redis: &Redis) -> Vec<usize> {
    redis
        .strings(&["SMEMBERS", "pawl:chat:nodes"])
        .iter()
        .map(|id| {
            let key = format!("pawl:chat:node:{id}");
            let snapshot: Value = redis
                .strings(&["GET", &key])
                .first()
                .and_then(|json| serde_json::from_str(json).ok())
                .unwrap_or_default();
            snapshot["rooms"]["many"].as_array().map_or(0, Vec::len)
        })
        .collect()
}
