//! `POST /publish?topic=NAME` on the `pawl` binary: push from outside to a
//! topic's WebSocket subscribers, with `--publish-secret`, over raw HTTP
//! as curl or PHP would send it; on one process, across `--workers 2`
//! (with and without Redis) and across two nodes sharing a real
//! redis-server. And `/broadcast` across `--workers 2` without Redis,
//! through the supervisor's relay.
//!
//! ```text
//! cargo test -p pawl-server --test publish
//! ```

#[path = "../../tests/util/mod.rs"]
mod util;

#[path = "../../tests/support/redis_server.rs"]
mod redis_server;

mod chat_util;

use std::net::SocketAddr;
use std::time::Duration;

use chat_util::Pawl;
use redis_server::RedisServer;
use util::{Client, Raw, Received, wait_for};

const SECRET: &str = "s3cret-for-tests";

/// `POST /publish?topic=TOPIC` with `headers` and `body`; the status and
/// the response body.
#[track_caller]
fn post(addr: SocketAddr, target: &str, headers: &[&str], body: &[u8]) -> (u16, String) {
    let mut request = format!(
        "POST {target} HTTP/1.1\r\nHost: localhost\r\nContent-Length: {}\r\n",
        body.len()
    );
    for header in headers {
        request.push_str(header);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    let mut request = request.into_bytes();
    request.extend_from_slice(body);
    let mut raw = Raw::connect(addr);
    raw.send(&request);
    raw.response_to_end()
}

const BEARER: &str = "Authorization: Bearer s3cret-for-tests";

/// Publishes `text` as text/plain; the response body.
#[track_caller]
fn publish_text(addr: SocketAddr, topic: &str, text: &str) -> String {
    let target = format!("/publish?topic={topic}");
    let headers = [BEARER, "Content-Type: text/plain; charset=utf-8"];
    let (status, body) = post(addr, &target, &headers, text.as_bytes());
    assert_eq!(status, 200, "{body}");
    body
}

#[test]
fn a_post_reaches_the_topics_websocket_subscribers_as_text_or_binary() {
    let pawl = Pawl::start(&["--publish-secret", SECRET]);
    let mut news = Client::connect(pawl.addr, "/broadcast?topic=news");
    let mut other = Client::connect(pawl.addr, "/broadcast?topic=other");
    // Subscribed once the connection is open: an echo proves it.
    for (client, text) in [(&mut news, "n"), (&mut other, "o")] {
        client.send_text(text);
        client.expect_text(text);
    }

    let body = publish_text(pawl.addr, "news", "héllo from PHP");
    assert_eq!(body.trim(), r#"{"local_subscribers":1}"#);
    news.expect_text("héllo from PHP");

    let json = ["Content-Type: application/json", BEARER];
    let (status, _) = post(pawl.addr, "/publish?topic=news", &json, br#"{"a":1}"#);
    assert_eq!(status, 200);
    news.expect_text(r#"{"a":1}"#);

    let binary = [0u8, 159, 146, 150];
    let (status, _) = post(pawl.addr, "/publish?topic=news", &[BEARER], &binary);
    assert_eq!(status, 200);
    news.expect_binary(&binary);

    // The other topic heard none of it: its next message is its own.
    other.send_text("mine");
    other.expect_text("mine");
}

#[test]
fn refusals_are_http_statuses() {
    let pawl = Pawl::start(&["--publish-secret", SECRET, "--max-message-size", "16"]);
    let addr = pawl.addr;
    let text = "Content-Type: text/plain";
    let statuses = [
        (post(addr, "/publish?topic=a", &[text], b"x").0, 401),
        (
            post(
                addr,
                "/publish?topic=a",
                &["Authorization: Bearer nope", text],
                b"x",
            )
            .0,
            401,
        ),
        (
            post(
                addr,
                "/publish?topic=a",
                &["Authorization: Bearer s3cret-for-tests!"],
                b"x",
            )
            .0,
            401,
        ),
        (
            post(
                addr,
                "/publish?topic=a",
                &["Authorization: Basic s3cret-for-tests"],
                b"x",
            )
            .0,
            401,
        ),
        (post(addr, "/publish", &[BEARER, text], b"x").0, 400),
        (post(addr, "/publish?topic=", &[BEARER, text], b"x").0, 400),
        (
            post(
                addr,
                "/publish?topic=chat:room:lobby",
                &[BEARER, text],
                b"x",
            )
            .0,
            403,
        ),
        (
            post(addr, "/publish?topic=a", &[BEARER, text], b"\xff\xfe").0,
            400,
        ),
        (post(addr, "/publish?topic=a", &[BEARER], &[0; 17]).0, 413),
        (post(addr, "/publish?topic=a", &[BEARER], &[0; 16]).0, 200),
    ];
    for (i, (got, want)) in statuses.into_iter().enumerate() {
        assert_eq!(got, want, "request {i}");
    }
    // Without the secret, refused from the head: the body is never read.
    let mut raw = Raw::connect(addr);
    raw.send(b"POST /publish?topic=a HTTP/1.1\r\nHost: h\r\nContent-Length: 16\r\n\r\n");
    assert_eq!(raw.response().0, 401);
    let mut raw = Raw::connect(addr);
    raw.send(b"GET /publish?topic=a HTTP/1.1\r\nHost: h\r\n\r\n");
    assert_eq!(raw.response().0, 405);
    let mut raw = Raw::connect(addr);
    raw.send(b"POST /publish?topic=a HTTP/1.1\r\nHost: h\r\nAuthorization: Bearer s3cret-for-tests\r\n\r\n");
    assert_eq!(raw.response().0, 411);
}

#[test]
fn without_the_flag_there_is_no_publish_route() {
    let pawl = Pawl::start(&[]);
    let (status, _) = post(pawl.addr, "/publish?topic=a", &[BEARER], b"x");
    assert_eq!(status, 404);
}

#[test]
fn the_secret_may_come_from_the_environment() {
    let mut child = std::process::Command::new(env!("CARGO_BIN_EXE_pawl"))
        .args(["--bind", "127.0.0.1:0", "--log-level", "info"])
        .env("PAWL_PUBLISH_SECRET", SECRET)
        .stdin(std::process::Stdio::null())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .expect("spawn pawl");
    let log = util::LogLines::capture(&mut child);
    let line = log.expect(|l| l.contains("pawl listening on "));
    let addr: SocketAddr = line
        .split("pawl listening on ")
        .nth(1)
        .and_then(|rest| rest.split(": ").next())
        .and_then(|a| a.parse().ok())
        .unwrap_or_else(|| panic!("no address in {line:?}"));
    let mut client = Client::connect(addr, "/broadcast?topic=env");
    client.send_text("ready");
    client.expect_text("ready");
    publish_text(addr, "env", "from env");
    client.expect_text("from env");
    let (status, _) = post(
        addr,
        "/publish?topic=env",
        &["Authorization: Bearer other"],
        b"x",
    );
    assert_eq!(status, 401);
    let _ = child.kill();
    let _ = child.wait();
}

/// Opens `n` subscribers of `topic` on `addr`, each shown to be subscribed
/// (its own message comes back).
fn subscribers(addr: SocketAddr, topic: &str, n: usize) -> Vec<Client> {
    (0..n)
        .map(|i| {
            let mut client = Client::connect(addr, &format!("/broadcast?topic={topic}"));
            let hello = format!("hello {i}");
            client.send_text(&hello);
            // With several workers, others' hellos may come first.
            wait_for(&format!("subscriber {i} hears itself"), || {
                match client.recv_within(Duration::from_millis(500)) {
                    Some(Received::Text(t)) if t == hello => Some(()),
                    _ => None,
                }
            });
            client
        })
        .collect()
}

/// Every client gets `want` next, after whatever other subscribers said
/// (their hellos, leftover syncs).
#[track_caller]
fn all_receive(clients: &mut [Client], want: &str) {
    for (i, client) in clients.iter_mut().enumerate() {
        wait_for(&format!("client {i} receives {want:?}"), || {
            match client.recv_within(Duration::from_millis(500)) {
                Some(Received::Text(t)) if t == want => Some(()),
                Some(Received::Text(t)) if t.starts_with("hello ") || t == "sync" => None,
                Some(other) => panic!("client {i}: unexpected {other:?}"),
                None => None,
            }
        });
    }
}

/// A worker joins a topic's relay channel on its first subscriber, after
/// that subscriber's upgrade: `sync` is published with `send` until every
/// client has heard one, which shows every worker with a subscriber
/// listens. (With Redis, `PUBSUB NUMSUB` shows it instead.)
fn sync(clients: &mut [Client], mut send: impl FnMut(&mut Client)) {
    let mut heard = vec![false; clients.len()];
    wait_for("every subscriber hears a sync", || {
        send(&mut clients[0]);
        for (client, heard) in clients.iter_mut().zip(&mut heard) {
            while !*heard {
                match client.recv_within(Duration::from_millis(100)) {
                    Some(Received::Text(t)) if t == "sync" => *heard = true,
                    Some(_) => {}
                    None => break,
                }
            }
        }
        heard.iter().all(|h| *h).then_some(())
    });
}

/// Waits until two worker pids have answered `/health` (a worker logs
/// its pid a moment before it listens).
fn two_workers_answer(addr: SocketAddr) {
    let mut pids = std::collections::BTreeSet::new();
    wait_for("two workers to answer /health", || {
        let mut raw = Raw::connect(addr);
        raw.send(b"GET /health HTTP/1.1\r\nHost: h\r\n\r\n");
        let text = String::from_utf8_lossy(&raw.read_to_end()).into_owned();
        if let Some(pid) = text
            .rsplit("ok pid ")
            .next()
            .and_then(|p| p.trim().parse::<u32>().ok())
        {
            pids.insert(pid);
        }
        (pids.len() == 2).then_some(())
    });
}

/// 40 subscribers over two workers: the chance that the kernel put all
/// of them on one worker is 2 in 2^40.
const SPREAD: usize = 40;

#[test]
fn across_two_workers_with_redis() {
    let redis = RedisServer::start();
    let pawl = Pawl::start(&[
        "--workers",
        "2",
        "--redis",
        &redis.url(),
        "--publish-secret",
        SECRET,
    ]);
    two_workers_answer(pawl.addr);
    let mut clients = subscribers(pawl.addr, "w", SPREAD);
    // Both workers have subscribers: both listen on the topic's channel.
    wait_for("both workers on topic w", || {
        (redis.numsub("pawl:topic:w") == 2).then_some(())
    });
    publish_text(pawl.addr, "w", "to every worker");
    all_receive(&mut clients, "to every worker");
}

#[test]
fn across_two_workers_without_redis() {
    let pawl = Pawl::start(&["--workers", "2", "--publish-secret", SECRET]);
    two_workers_answer(pawl.addr);
    let mut clients = subscribers(pawl.addr, "w", SPREAD);
    sync(&mut clients, |_| {
        publish_text(pawl.addr, "w", "sync");
    });
    for round in 0..3 {
        let text = format!("to every worker, round {round}");
        publish_text(pawl.addr, "w", &text);
        all_receive(&mut clients, &text);
    }
}

#[test]
fn a_clients_broadcast_crosses_two_workers_without_redis_in_order() {
    let pawl = Pawl::start(&["--workers", "2"]);
    two_workers_answer(pawl.addr);
    pawl.wait_log("topics cross the workers through the relay at ");
    let mut clients = subscribers(pawl.addr, "b", SPREAD);
    sync(&mut clients, |client| client.send_text("sync"));
    // Another topic on the same workers hears none of it.
    let mut other = subscribers(pawl.addr, "other", 1);
    for i in 0..5 {
        clients[0].send_text(&format!("from a client {i}"));
    }
    for i in 0..5 {
        all_receive(&mut clients, &format!("from a client {i}"));
    }
    other[0].send_text("mine");
    all_receive(&mut other, "mine");
}

#[test]
fn across_two_nodes_sharing_redis() {
    let redis = RedisServer::start();
    let url = redis.url();
    let one = Pawl::start(&["--redis", &url, "--publish-secret", SECRET]);
    let two = Pawl::start(&["--redis", &url, "--publish-secret", SECRET]);
    let mut here = subscribers(one.addr, "n", 1);
    let mut there = subscribers(two.addr, "n", 1);
    wait_for("both nodes on topic n", || {
        (redis.numsub("pawl:topic:n") == 2).then_some(())
    });
    let body = publish_text(one.addr, "n", "to both nodes");
    assert_eq!(body.trim(), r#"{"local_subscribers":1}"#);
    all_receive(&mut here, "to both nodes");
    all_receive(&mut there, "to both nodes");
    // And the other way, in order.
    for i in 0..5 {
        publish_text(two.addr, "n", &format!("back {i}"));
    }
    for i in 0..5 {
        all_receive(&mut here, &format!("back {i}"));
    }
}
