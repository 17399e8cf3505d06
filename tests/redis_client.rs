//! The Redis client and subscriber against a real `redis-server` (started by
//! the test on a free port; see `tests/support/redis_server.rs`).

#[path = "support/redis_server.rs"]
mod redis_server;

use std::cell::{Cell, RefCell};
use std::rc::Rc;
use std::time::{Duration, Instant};

use pawl::reactor::{LoopHandle, Reactor};
use pawl::redis::{RedisClient, RedisConfig, RedisError, RedisSubscriber, Value};
use redis_server::RedisServer;

/// How long any one expectation may take before the test fails.
const DEADLINE: Duration = Duration::from_secs(30);

/// Turns the loop until `done` holds, failing after [`DEADLINE`].
#[track_caller]
fn run_until(reactor: &mut Reactor, what: &str, mut done: impl FnMut() -> bool) {
    let deadline = Instant::now() + DEADLINE;
    while !done() {
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        reactor
            .turn(Some(Duration::from_millis(50)))
            .expect("reactor turn");
    }
}

/// A loop, with logging when `RUST_LOG` asks for it.
fn reactor() -> Reactor {
    if std::env::var_os("RUST_LOG").is_some() {
        let _ = simple_logger::init_with_env();
    }
    Reactor::new().expect("a reactor")
}

/// Fast reconnects so restarts are quick.
fn config() -> RedisConfig {
    RedisConfig::default().reconnect_backoff(Duration::from_millis(10), Duration::from_millis(200))
}

type Replies = Rc<RefCell<Vec<Result<Value, RedisError>>>>;
type Messages = Rc<RefCell<Vec<(Vec<u8>, Vec<u8>)>>>;
type Numbered = Rc<RefCell<Vec<(usize, Result<Value, RedisError>)>>>;

fn collect(replies: &Replies) -> impl FnOnce(&mut LoopHandle, Result<Value, RedisError>) + 'static {
    let replies = replies.clone();
    move |_, reply| replies.borrow_mut().push(reply)
}

#[test]
fn set_then_get() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    let replies: Replies = Rc::default();
    client.command(&[b"SET", b"greeting", b"hello\r\n\x00"], collect(&replies));
    client.command(&[b"GET", b"greeting"], collect(&replies));
    client.command(&[b"GET", b"missing"], collect(&replies));
    client.command(&[b"INCR", b"greeting"], collect(&replies));
    assert!(
        replies.borrow().is_empty(),
        "callbacks must never run inside command()"
    );
    run_until(&mut reactor, "4 replies", || replies.borrow().len() == 4);
    let replies = replies.borrow();
    assert_eq!(replies[0].as_ref().unwrap(), &Value::Simple("OK".into()));
    assert_eq!(
        replies[1].as_ref().unwrap(),
        &Value::Bulk(b"hello\r\n\x00".to_vec())
    );
    assert_eq!(replies[2].as_ref().unwrap(), &Value::Nil);
    assert!(
        matches!(&replies[3], Err(RedisError::Server(e)) if e.starts_with("ERR")),
        "{:?}",
        replies[3]
    );
    assert!(client.is_connected());
}

#[test]
fn ten_thousand_pipelined_commands_get_their_replies_in_order() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    run_until(&mut reactor, "connect", || client.is_connected());

    const N: i64 = 10_000;
    let next = Rc::new(Cell::new(1));
    let errors = Rc::new(Cell::new(0));
    for i in 1..=N {
        let (next, errors) = (next.clone(), errors.clone());
        client.command(&[b"INCR", b"counter"], move |_, reply| match reply {
            Ok(Value::Int(n)) if n == i && next.get() == i => next.set(i + 1),
            _ => errors.set(errors.get() + 1),
        });
    }
    // Also in one go with values: SET then GET, 1000 keys.
    let values: Replies = Rc::default();
    for i in 0..1000 {
        let key = format!("k{i}");
        client.send(&[b"SET", key.as_bytes(), i.to_string().as_bytes()]);
        client.command(&[b"GET", key.as_bytes()], collect(&values));
    }
    run_until(&mut reactor, "every reply", || {
        next.get() + errors.get() > N && values.borrow().len() == 1000
    });
    assert_eq!(errors.get(), 0, "replies out of order or failed");
    for (i, v) in values.borrow().iter().enumerate() {
        assert_eq!(v.as_ref().unwrap().as_int(), Some(i as i64));
    }
    assert_eq!(client.pending(), 0);
}

#[test]
fn callbacks_may_issue_commands_on_the_same_client() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    let got = Rc::new(RefCell::new(None));
    let (c, g) = (client.clone(), got.clone());
    client.command(&[b"RPUSH", b"l", b"a", b"b"], move |_, reply| {
        assert_eq!(reply.unwrap(), Value::Int(2));
        c.command(&[b"LRANGE", b"l", b"0", b"-1"], move |_, reply| {
            *g.borrow_mut() = Some(reply.unwrap());
        });
    });
    run_until(&mut reactor, "nested reply", || got.borrow().is_some());
    assert_eq!(
        got.borrow().clone().unwrap().into_array().unwrap(),
        vec![Value::Bulk(b"a".to_vec()), Value::Bulk(b"b".to_vec())]
    );
}

#[test]
fn auth_and_select_come_from_the_url() {
    let server = RedisServer::start_with(&["--requirepass", "s3cret"]);
    let mut reactor = reactor();
    let url = format!("redis://:s3cret@127.0.0.1:{}/3", server.port());
    let client = RedisClient::connect(&mut reactor, &url, config()).unwrap();
    let replies: Replies = Rc::default();
    client.command(&[b"SET", b"where", b"db3"], collect(&replies));
    run_until(&mut reactor, "SET", || replies.borrow().len() == 1);
    assert!(replies.borrow()[0].is_ok(), "{:?}", replies.borrow()[0]);
    let raw = server.raw("AUTH s3cret\r\nSELECT 3\r\nGET where");
    assert!(raw.ends_with("$3\r\ndb3\r\n"), "{raw:?}");

    // A wrong password never becomes ready; commands wait, bounded.
    let url = format!("redis://:wrong@127.0.0.1:{}", server.port());
    let bad = RedisClient::connect(&mut reactor, &url, config()).unwrap();
    let replies: Replies = Rc::default();
    bad.command(&[b"PING"], collect(&replies));
    for _ in 0..20 {
        reactor.turn(Some(Duration::from_millis(10))).unwrap();
    }
    assert!(!bad.is_connected());
    assert!(replies.borrow().is_empty());
    bad.close(&mut reactor);
    run_until(&mut reactor, "close", || replies.borrow().len() == 1);
    assert!(matches!(replies.borrow()[0], Err(RedisError::Closed)));
}

#[test]
fn pub_sub_delivers_messages_and_patterns() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    let subscriber = RedisSubscriber::connect(&mut reactor, &server.url(), config()).unwrap();
    let messages: Messages = Rc::default();
    let patterned: Messages = Rc::default();
    let m = messages.clone();
    subscriber.subscribe(b"news", move |_, channel, payload| {
        m.borrow_mut().push((channel.to_vec(), payload.to_vec()))
    });
    let p = patterned.clone();
    subscriber.psubscribe(b"room:*", move |_, channel, payload| {
        p.borrow_mut().push((channel.to_vec(), payload.to_vec()))
    });
    wait_for_subscribers(&mut reactor, &client, b"news");
    wait_for_subscribers(&mut reactor, &client, b"room:x");

    for i in 0..100 {
        client.send(&[b"PUBLISH", b"news", format!("n{i}").as_bytes()]);
    }
    client.send(&[b"PUBLISH", b"room:1", b"\x00bin\xff"]);
    client.send(&[b"PUBLISH", b"other", b"ignored"]);
    run_until(&mut reactor, "messages", || {
        messages.borrow().len() == 100 && patterned.borrow().len() == 1
    });
    for (i, (channel, payload)) in messages.borrow().iter().enumerate() {
        assert_eq!(channel, b"news");
        assert_eq!(payload, format!("n{i}").as_bytes());
    }
    assert_eq!(
        patterned.borrow()[0],
        (b"room:1".to_vec(), b"\x00bin\xff".to_vec())
    );

    subscriber.unsubscribe(b"news");
    let deadline = Instant::now() + DEADLINE;
    while numsub(&mut reactor, &client, b"news") > 0 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for the unsubscribe"
        );
    }
}

#[test]
fn redis_killed_and_restarted_mid_use_delivers_what_was_queued_meanwhile() {
    let mut server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    let subscriber = RedisSubscriber::connect(&mut reactor, &server.url(), config()).unwrap();
    let reconnects = Rc::new(Cell::new(0));
    let r = reconnects.clone();
    client.on_connect(move |_| r.set(r.get() + 1));
    let heard: Rc<RefCell<Vec<Vec<u8>>>> = Rc::default();
    let h = heard.clone();
    subscriber.subscribe(b"chat", move |_, _, payload| {
        h.borrow_mut().push(payload.to_vec())
    });

    let replies: Replies = Rc::default();
    client.command(&[b"RPUSH", b"said", b"before"], collect(&replies));
    run_until(&mut reactor, "first reply", || replies.borrow().len() == 1);
    assert_eq!(reconnects.get(), 1);

    server.kill();
    run_until(&mut reactor, "the client to notice", || {
        !client.is_connected() && !subscriber.is_connected()
    });
    let meanwhile: Replies = Rc::default();
    for i in 0..100 {
        client.command(
            &[b"RPUSH", b"said", format!("m{i}").as_bytes()],
            collect(&meanwhile),
        );
    }
    for _ in 0..10 {
        reactor.turn(Some(Duration::from_millis(5))).unwrap();
    }
    assert!(
        meanwhile.borrow().is_empty(),
        "queued commands must wait, not fail"
    );
    assert_eq!(client.pending(), 100);

    server.restart();
    run_until(&mut reactor, "the queued commands' replies", || {
        meanwhile.borrow().len() == 100
    });
    // The restarted server is empty (no persistence): the list holds exactly
    // what was said meanwhile, once each, in order.
    for (i, reply) in meanwhile.borrow().iter().enumerate() {
        assert_eq!(reply.as_ref().unwrap(), &Value::Int(i as i64 + 1));
    }
    assert_eq!(reconnects.get(), 2);

    // The subscriber resubscribed by itself.
    wait_for_subscribers(&mut reactor, &client, b"chat");
    client.send(&[b"PUBLISH", b"chat", b"back"]);
    run_until(&mut reactor, "a message after the restart", || {
        heard.borrow().as_slice() == [b"back".to_vec()]
    });
}

/// Redis hangs with 200 commands written to it, then dies: what happens to
/// those commands depends on `retry_in_flight`.
fn written_then_killed(retry_in_flight: bool) -> (Vec<Result<Value, RedisError>>, i64) {
    let mut server = RedisServer::start();
    let mut reactor = reactor();
    let config = config().retry_in_flight(retry_in_flight);
    let client = RedisClient::connect(&mut reactor, &server.url(), config).unwrap();
    run_until(&mut reactor, "connect", || client.is_connected());

    server.freeze();
    let replies: Replies = Rc::default();
    for i in 0..200 {
        client.command(
            &[b"SADD", b"seen", format!("{i}").as_bytes()],
            collect(&replies),
        );
    }
    // The loop writes them (the kernel accepts them for the frozen server).
    for _ in 0..3 {
        reactor.turn(Some(Duration::ZERO)).unwrap();
    }
    assert_eq!(client.pending(), 200);
    server.kill();
    run_until(&mut reactor, "the client to notice", || {
        !client.is_connected()
    });
    server.restart();
    run_until(&mut reactor, "200 replies", || {
        replies.borrow().len() == 200
    });
    let card: Replies = Rc::default();
    client.command(&[b"SCARD", b"seen"], collect(&card));
    run_until(&mut reactor, "SCARD", || card.borrow().len() == 1);
    let card = card.borrow()[0].as_ref().unwrap().as_int().unwrap();
    (replies.take(), card)
}

#[test]
fn commands_written_into_a_dead_connection_fail_with_disconnected() {
    let (replies, card) = written_then_killed(false);
    for reply in &replies {
        assert!(matches!(reply, Err(RedisError::Disconnected)), "{reply:?}");
    }
    assert_eq!(card, 0);
}

#[test]
fn commands_written_into_a_dead_connection_are_resent_with_retry_in_flight() {
    let (replies, card) = written_then_killed(true);
    for reply in &replies {
        assert_eq!(reply.as_ref().unwrap(), &Value::Int(1));
    }
    assert_eq!(card, 200);
}

/// Polls `PUBSUB NUMSUB` / `NUMPAT` until someone listens on `channel`.
#[track_caller]
fn wait_for_subscribers(reactor: &mut Reactor, client: &RedisClient, channel: &[u8]) {
    let deadline = Instant::now() + DEADLINE;
    while numsub(reactor, client, channel) == 0 {
        assert!(
            Instant::now() < deadline,
            "timed out waiting for a subscriber"
        );
    }
}

/// How many subscribers a PUBLISH to `channel` would reach right now.
fn numsub(reactor: &mut Reactor, client: &RedisClient, channel: &[u8]) -> i64 {
    // Not a probe PUBLISH: it would reach the callbacks under test.
    let result: Replies = Rc::default();
    client.command(&[b"PUBSUB", b"NUMSUB", channel], collect(&result));
    client.command(&[b"PUBSUB", b"NUMPAT"], collect(&result));
    let deadline = Instant::now() + DEADLINE;
    while result.borrow().len() < 2 {
        assert!(Instant::now() < deadline, "PUBSUB did not answer");
        reactor.turn(Some(Duration::from_millis(50))).unwrap();
    }
    let result = result.borrow();
    let direct = match &result[0] {
        Ok(Value::Array(items)) => items.get(1).and_then(Value::as_int).unwrap_or(0),
        other => panic!("PUBSUB NUMSUB: {other:?}"),
    };
    let patterns = if channel.starts_with(b"room:") {
        result[1].as_ref().ok().and_then(Value::as_int).unwrap_or(0)
    } else {
        0
    };
    direct + patterns
}

#[test]
fn queue_is_bounded_while_redis_is_unreachable() {
    // A port with nothing listening: bind, note, close.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut reactor = reactor();
    let client = RedisClient::connect(
        &mut reactor,
        &format!("redis://127.0.0.1:{port}"),
        config().max_queued(5),
    )
    .unwrap();
    let replies: Numbered = Rc::default();
    for i in 0..8 {
        let r = replies.clone();
        client.command(&[b"PING"], move |_, reply| r.borrow_mut().push((i, reply)));
    }
    assert!(replies.borrow().is_empty());
    run_until(&mut reactor, "overflow errors", || {
        replies.borrow().len() == 3
    });
    for (i, (n, reply)) in replies.borrow().iter().enumerate() {
        assert_eq!(*n, i, "the oldest are dropped first");
        assert!(matches!(reply, Err(RedisError::Overflow)), "{reply:?}");
    }
    assert_eq!(client.pending(), 5);
    client.close(&mut reactor);
    run_until(&mut reactor, "closed errors", || {
        replies.borrow().len() == 8
    });
    assert!(
        replies.borrow()[3..]
            .iter()
            .all(|(_, r)| matches!(r, Err(RedisError::Closed)))
    );
}

#[test]
fn bad_urls_and_configs_are_errors() {
    let mut reactor = reactor();
    assert!(matches!(
        RedisClient::connect(&mut reactor, "http://x", RedisConfig::default()),
        Err(RedisError::BadUrl(_))
    ));
    assert!(matches!(
        RedisClient::connect(
            &mut reactor,
            "redis://127.0.0.1",
            RedisConfig::default()
                .reconnect_backoff(Duration::from_secs(2), Duration::from_secs(1))
        ),
        Err(RedisError::Config(_))
    ));
}

#[test]
fn a_hung_redis_times_commands_out_and_the_client_reconnects() {
    let mut server = RedisServer::start();
    let mut reactor = reactor();
    let config = config().command_timeout(Some(Duration::from_millis(200)));
    let client = RedisClient::connect(&mut reactor, &server.url(), config).unwrap();
    run_until(&mut reactor, "connect", || client.is_connected());
    server.freeze();
    let replies: Replies = Rc::default();
    client.command(&[b"PING"], collect(&replies));
    run_until(&mut reactor, "the timeout", || replies.borrow().len() == 1);
    assert!(
        matches!(replies.borrow()[0], Err(RedisError::Timeout)),
        "{:?}",
        replies.borrow()
    );
    server.restart();
    client.command(&[b"PING"], collect(&replies));
    run_until(&mut reactor, "a reply after the restart", || {
        replies.borrow().len() == 2
    });
    assert_eq!(
        replies.borrow()[1].as_ref().unwrap(),
        &Value::Simple("PONG".into())
    );
}

/// Redis stalls (SIGSTOP) with two commands written to it. The client
/// calls it a stall after the command timeout and is not connected while
/// Redis stays stopped (a new connection is ready only once Redis answers
/// its PING). When Redis resumes it runs what sat in its socket buffer:
/// the plain command failed with `Timeout` and is not sent again, so it
/// runs once; the idempotent one is sent again and answered.
#[test]
fn a_stall_fails_plain_commands_and_replays_only_idempotent_ones() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let config = config().command_timeout(Some(Duration::from_millis(300)));
    let client = RedisClient::connect(&mut reactor, &server.url(), config).unwrap();
    run_until(&mut reactor, "connect", || client.is_connected());

    server.freeze();
    let (plain, idempotent): (Replies, Replies) = Default::default();
    client.command(&[b"INCR", b"counter"], collect(&plain));
    client.command_idempotent(&[b"SADD", b"set", b"member"], collect(&idempotent));
    run_until(&mut reactor, "the stall to fail INCR", || {
        !plain.borrow().is_empty()
    });
    assert!(
        matches!(plain.borrow()[0], Err(RedisError::Timeout)),
        "{:?}",
        plain.borrow()
    );
    // Still stopped: every reconnect's PING goes unanswered.
    for _ in 0..20 {
        reactor.turn(Some(Duration::from_millis(50))).unwrap();
        assert!(!client.is_connected(), "connected to a stopped Redis");
    }
    assert!(idempotent.borrow().is_empty(), "{:?}", idempotent.borrow());

    server.thaw();
    run_until(&mut reactor, "the replayed SADD", || {
        !idempotent.borrow().is_empty()
    });
    assert!(
        matches!(idempotent.borrow()[0], Ok(Value::Int(0 | 1))),
        "{:?}",
        idempotent.borrow()
    );
    let check: Replies = Rc::default();
    client.command(&[b"GET", b"counter"], collect(&check));
    client.command(&[b"SISMEMBER", b"set", b"member"], collect(&check));
    run_until(&mut reactor, "the checks", || check.borrow().len() == 2);
    let check = check.borrow();
    assert_eq!(
        check[0].as_ref().unwrap().as_int(),
        Some(1),
        "INCR ran exactly once"
    );
    assert_eq!(check[1].as_ref().unwrap(), &Value::Int(1));
}

#[test]
fn a_malformed_reply_closes_and_reconnects() {
    use std::io::{Read, Write};
    // A fake Redis: on each connection, PONG to the client's handshake
    // PING, then garbage (first connection) or PONG (second) to the test's.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let fake = std::thread::spawn(move || {
        for second in [&b"?garbage\r\n"[..], b"+PONG\r\n"] {
            let (mut stream, _) = listener.accept().unwrap();
            let mut buf = [0u8; 1024];
            let mut seen = Vec::new();
            for reply in [&b"+PONG\r\n"[..], second] {
                // Read until one more PING command has arrived.
                let pings = seen.windows(6).filter(|w| w == b"PING\r\n").count();
                while seen.windows(6).filter(|w| w == b"PING\r\n").count() == pings {
                    let n = stream.read(&mut buf).unwrap();
                    assert!(n > 0, "the client closed early");
                    seen.extend_from_slice(&buf[..n]);
                }
                stream.write_all(reply).unwrap();
            }
            // Wait for the client to close (first) or the test to end.
            while matches!(stream.read(&mut buf), Ok(n) if n > 0) {}
        }
    });
    let mut reactor = reactor();
    let url = format!("redis://127.0.0.1:{port}");
    let client = RedisClient::connect(&mut reactor, &url, config()).unwrap();
    let replies: Replies = Rc::default();
    client.command(&[b"PING"], collect(&replies));
    run_until(&mut reactor, "the failure", || replies.borrow().len() == 1);
    assert!(
        matches!(replies.borrow()[0], Err(RedisError::Disconnected)),
        "{:?}",
        replies.borrow()
    );
    client.command(&[b"PING"], collect(&replies));
    run_until(&mut reactor, "PONG", || replies.borrow().len() == 2);
    assert_eq!(
        replies.borrow()[1].as_ref().unwrap(),
        &Value::Simple("PONG".into())
    );
    client.close(&mut reactor);
    reactor.turn(Some(Duration::ZERO)).unwrap();
    fake.join().unwrap();
}

#[test]
fn large_values_cross_many_partial_reads_and_writes() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    run_until(&mut reactor, "connect", || client.is_connected());
    // 40 values of 256 KiB: 10 MiB each way, far more than socket buffers,
    // so writes stop at WouldBlock and replies arrive in pieces.
    let values: Vec<Vec<u8>> = (0..40u8)
        .map(|i| (0..256 * 1024).map(|j| (j as u8) ^ i).collect())
        .collect();
    let replies: Replies = Rc::default();
    for (i, value) in values.iter().enumerate() {
        client.send(&[b"SET", format!("big{i}").as_bytes(), value]);
        client.command(&[b"GET", format!("big{i}").as_bytes()], collect(&replies));
    }
    run_until(&mut reactor, "40 large replies", || {
        replies.borrow().len() == 40
    });
    for (reply, value) in replies.borrow().iter().zip(&values) {
        assert!(reply.as_ref().unwrap().as_bytes() == Some(value.as_slice()));
    }
}

/// A reply callback and a message callback that panic are caught by the
/// loop's guard: the commands behind them still get their replies, the
/// subscriber still delivers, and the client stays connected.
#[test]
fn a_panicking_callback_does_not_take_the_client_down() {
    let server = RedisServer::start();
    let mut reactor = reactor();
    let client = RedisClient::connect(&mut reactor, &server.url(), config()).unwrap();
    let subscriber = RedisSubscriber::connect(&mut reactor, &server.url(), config()).unwrap();
    let messages: Messages = Rc::default();
    let seen = messages.clone();
    subscriber.subscribe(b"news", move |_, channel, payload| {
        if payload == b"boom" {
            panic!("a bug in a message callback");
        }
        seen.borrow_mut().push((channel.to_vec(), payload.to_vec()));
    });
    let replies: Replies = Rc::default();
    client.command(&[b"SET", b"k", b"v"], |_, _| {
        panic!("a bug in a reply callback")
    });
    client.command(&[b"GET", b"k"], collect(&replies));
    run_until(&mut reactor, "the reply after the panic", || {
        replies.borrow().len() == 1
    });
    assert_eq!(
        replies.borrow()[0].as_ref().unwrap(),
        &Value::Bulk(b"v".to_vec())
    );
    // Publish until the subscription is live, then a panic, then more.
    let delivered = Rc::new(Cell::new(0usize));
    let mut round = 0;
    run_until(&mut reactor, "messages around a panicking one", || {
        round += 1;
        let payload = if round % 2 == 0 {
            "boom".to_owned()
        } else {
            format!("m{round}")
        };
        client.send(&[b"PUBLISH", b"news", payload.as_bytes()]);
        delivered.set(messages.borrow().len());
        delivered.get() >= 3
    });
    assert!(client.is_connected());
    assert!(
        messages.borrow().iter().all(|(_, p)| p != b"boom"),
        "the panicking deliveries recorded nothing"
    );
}
