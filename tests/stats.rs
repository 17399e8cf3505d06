//! A server's counters (`Server::stats`, `Context::stats`) move with what
//! real clients do over real sockets: upgrades, messages and bytes both
//! ways, refusals by status, closes by reason, handshakes dropped.

mod util;

use std::sync::mpsc;
use std::time::{Duration, Instant};

use pawl::{EchoServer, Stats};
use util::{Raw, TIMEOUT, TestServer, app};

fn echo_server() -> TestServer {
    TestServer::start(|| app().route("/echo", EchoServer, &["*"]))
}

/// The server's counters now, read on its loop through a context.
#[track_caller]
fn stats(server: &TestServer) -> Stats {
    let (tx, rx) = mpsc::channel();
    server
        .server
        .run(move |ctx| {
            let _ = tx.send(ctx.stats());
        })
        .expect("schedule");
    rx.recv_timeout(TIMEOUT).expect("stats from the loop")
}

/// Waits until the counters satisfy `want` (closes are counted when the
/// server drops the socket, a moment after the client sees the close).
#[track_caller]
fn until(server: &TestServer, what: &str, want: impl Fn(&Stats) -> bool) -> Stats {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        let stats = stats(server);
        if want(&stats) {
            return stats;
        }
        assert!(Instant::now() < deadline, "{what}: still {stats:#?}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

#[test]
fn counters_follow_connections_and_messages() {
    let server = echo_server();
    assert_eq!(stats(&server), Stats::default());

    let mut client = server.client("/echo");
    for text in ["one", "two", "three"] {
        client.send_text(text);
        client.expect_text(text);
    }
    client.send_binary(&[1, 2, 3, 4]);
    client.expect_binary(&[1, 2, 3, 4]);
    let open = stats(&server);
    assert_eq!(open.connections_accepted, 1);
    assert_eq!(open.connections_opened, 1);
    assert_eq!(open.connections_open, 1);
    assert_eq!((open.messages_in, open.messages_out), (4, 4));
    // The upgrade request and four masked frames in; the 101 and four
    // frames out.
    assert!(open.bytes_in > 4 * 6 + 100, "{open:?}");
    assert!(open.bytes_out > 4 * 2 + 100, "{open:?}");
    assert_eq!(open.unsent_bytes, 0);

    client.close(1000, "bye");
    client.expect_close(1000);
    let closed = until(&server, "the peer's close", |s| s.closed.total() == 1);
    assert_eq!(closed.closed.peer, 1);
    assert_eq!(closed.connections_open, 0);
    // The close frames moved bytes, not messages.
    assert_eq!((closed.messages_in, closed.messages_out), (4, 4));
    assert!(closed.bytes_out > open.bytes_out);
}

#[test]
fn refusals_are_counted_by_status_and_closes_by_reason() {
    let server = echo_server();
    for (request, status) in [
        ("GET /nope HTTP/1.1\r\nHost: a\r\n\r\n", 404),
        ("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n", 426),
        ("GET /echo HTTP/1.1\r\nHost: a\r\n\r\n", 426),
        ("GARBAGE\r\n\r\n", 400),
    ] {
        let mut raw = Raw::connect(server.addr);
        raw.send(request.as_bytes());
        assert_eq!(raw.response().0, status);
    }
    // An unmasked frame is a protocol error (1002).
    let mut bad = Raw::upgrade(server.addr, "/echo");
    bad.send(&[0x81, 0x02, b'h', b'i']);
    bad.read_to_end();
    // A client that leaves without a close frame.
    let gone = Raw::upgrade(server.addr, "/echo");
    drop(gone);
    // One that leaves in the middle of its handshake.
    let mut half = Raw::connect(server.addr);
    half.send(b"GET /echo HTTP/1.1\r\n");
    drop(half);

    let stats = until(&server, "two closes and a dropped handshake", |s| {
        s.closed.total() == 2 && s.handshakes_dropped == 1
    });
    let refusals: Vec<_> = stats.handshake_refusals.into_iter().collect();
    assert_eq!(refusals, [(400, 1), (404, 1), (426, 2)]);
    assert_eq!((stats.closed.protocol, stats.closed.io), (1, 1));
    assert_eq!(stats.connections_accepted, 7);
    assert_eq!(stats.connections_opened, 2);
    assert_eq!(stats.connections_open, 0);
    assert_eq!(stats.http_responses, 0);
    assert_eq!(stats.broker, None);
}

#[test]
fn a_client_that_does_not_read_is_a_backpressure_event() {
    let server = TestServer::start(|| {
        let config = pawl::ServerConfig::default()
            .backpressure_threshold(1 << 10)
            .max_backpressure(64 << 20);
        app().config(config).route("/echo", EchoServer, &["*"])
    });
    let mut client = server.client("/echo");
    // Echoes pile up unread until the socket buffers are full and pawl
    // holds the rest: 8 MiB is far beyond loopback's buffers.
    let chunk = vec![7u8; 64 << 10];
    for _ in 0..128 {
        client.send_binary(&chunk);
    }
    let stats = until(&server, "a backpressure event", |s| {
        s.backpressure_events >= 1 && s.unsent_bytes > 0
    });
    assert!(stats.unsent_bytes <= 8 << 20, "{stats:?}");
}
