//! `App::post`: a route that reads a bounded request body and reaches the
//! server through a context (here, to publish the body to a topic), over
//! real sockets.

mod util;

use std::time::Duration;

use pawl::{Component, ConnId, Context, HttpResponse, Message, ServerConfig};

use util::{Raw, TestServer, app};

/// Subscribes every connection to the topic in its `?topic=`.
struct Subscriber;

impl Component for Subscriber {
    type Session = ();

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) {
        let topic = ctx
            .request(conn)
            .and_then(|r| r.query_param("topic"))
            .map(|t| t.into_owned())
            .unwrap_or_default();
        ctx.subscribe(conn, &topic);
        let _ = ctx.send(conn, "subscribed");
    }

    fn on_message(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), _: Message<'_>) {}
}

fn server() -> TestServer {
    TestServer::start(|| {
        app()
            .config(
                ServerConfig::default()
                    .max_message_size(1000)
                    .handshake_timeout(Duration::from_millis(300)),
            )
            .route("/ws", Subscriber, &["*"])
            .post("/push", |ctx, request, body| {
                let topic = request.query_param("topic").unwrap_or_default();
                let reached = ctx.publish(&topic, body);
                HttpResponse::text(200, format!("reached {reached}"))
            })
            .post("/panics", |_, _, _| panic!("a handler bug"))
            .post_checked(
                "/checked",
                |request| match request.header("x-key") {
                    Some("open") => None,
                    Some("panic") => panic!("a check bug"),
                    _ => Some(HttpResponse::text(401, "no key")),
                },
                |_, _, body| HttpResponse::text(200, format!("{} bytes", body.len())),
            )
    })
}

fn post_head(path: &str, length: usize, extra: &str) -> String {
    format!("POST {path} HTTP/1.1\r\nHost: h\r\nContent-Length: {length}\r\n{extra}\r\n")
}

/// Sends `request` and returns the status and the body of the answer.
#[track_caller]
fn exchange(server: &TestServer, request: &[u8]) -> (u16, String) {
    let mut raw = Raw::connect(server.addr);
    raw.send(request);
    raw.response_to_end()
}

#[test]
fn a_post_body_reaches_the_topics_subscribers() {
    let server = server();
    let mut news = server.client("/ws?topic=news");
    news.expect_text("subscribed");
    let mut other = server.client("/ws?topic=other");
    other.expect_text("subscribed");

    let body = [0u8, 1, 2, 255];
    let mut request = post_head("/push?topic=news", body.len(), "").into_bytes();
    request.extend_from_slice(&body);
    assert_eq!(exchange(&server, &request), (200, "reached 1".to_owned()));
    news.expect_binary(&body);
    assert!(other.recv_within(Duration::from_millis(100)).is_none());
}

#[test]
fn a_body_split_over_several_writes_is_read_whole() {
    let server = server();
    let mut news = server.client("/ws?topic=news");
    news.expect_text("subscribed");
    let mut raw = Raw::connect(server.addr);
    raw.send(post_head("/push?topic=news", 10, "").as_bytes());
    std::thread::sleep(Duration::from_millis(20));
    raw.send(b"hello");
    std::thread::sleep(Duration::from_millis(20));
    raw.send(b"world");
    let (status, _) = raw.response();
    assert_eq!(status, 200);
    news.expect_binary(b"helloworld");
}

#[test]
fn expect_100_continue_is_answered_before_the_body() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(post_head("/push?topic=t", 2, "Expect: 100-continue\r\n").as_bytes());
    let (status, _) = raw.response();
    assert_eq!(status, 100);
    raw.send(b"hi");
    let (status, _) = raw.response();
    assert_eq!(status, 200);
}

#[test]
fn refusals_are_http_statuses() {
    let server = server();
    let no_length = b"POST /push HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(exchange(&server, no_length).0, 411);
    // Refused from the head alone, before any of the body is sent.
    let (status, body) = exchange(&server, post_head("/push", 1001, "").as_bytes());
    assert_eq!(status, 413, "{body}");
    assert!(body.contains("at most 1000"), "{body}");
    let get = b"GET /push HTTP/1.1\r\nHost: h\r\n\r\n";
    assert_eq!(exchange(&server, get).0, 405);
    let mut panics = post_head("/panics", 1, "").into_bytes();
    panics.push(b'x');
    assert_eq!(exchange(&server, &panics).0, 500);
    // The server goes on.
    let mut ok = post_head("/push?topic=t", 1, "").into_bytes();
    ok.push(b'x');
    assert_eq!(exchange(&server, &ok), (200, "reached 0".to_owned()));
}

#[test]
fn a_body_that_never_arrives_is_dropped_at_the_handshake_timeout() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(post_head("/push?topic=t", 10, "").as_bytes());
    raw.send(b"part");
    // Dropped without an answer (read_to_end fails the test if it is not).
    assert!(raw.read_to_end().is_empty());
}

#[test]
fn a_check_refuses_from_the_head_before_any_body_is_read() {
    let server = server();
    // No body is ever sent: the answer comes from the head alone.
    let mut raw = Raw::connect(server.addr);
    raw.send(post_head("/checked", 500, "").as_bytes());
    assert_eq!(raw.response().0, 401);
    // A client waiting for 100 Continue gets the refusal instead.
    let mut raw = Raw::connect(server.addr);
    raw.send(post_head("/checked", 500, "Expect: 100-continue\r\n").as_bytes());
    assert_eq!(raw.response().0, 401);
    // Head and body in one write: the check still comes first.
    let mut request = post_head("/checked", 3, "X-Key: wrong\r\n").into_bytes();
    request.extend_from_slice(b"abc");
    assert_eq!(exchange(&server, &request).0, 401);
    let mut request = post_head("/checked", 3, "X-Key: panic\r\n").into_bytes();
    request.extend_from_slice(b"abc");
    assert_eq!(exchange(&server, &request).0, 500);
}

#[test]
fn an_admitted_request_is_read_whole() {
    let server = server();
    let mut request = post_head("/checked", 3, "X-Key: open\r\n").into_bytes();
    request.extend_from_slice(b"abc");
    assert_eq!(exchange(&server, &request), (200, "3 bytes".to_owned()));
    let mut raw = Raw::connect(server.addr);
    raw.send(post_head("/checked", 4, "X-Key: open\r\nExpect: 100-continue\r\n").as_bytes());
    assert_eq!(raw.response().0, 100);
    raw.send(b"ab");
    std::thread::sleep(Duration::from_millis(20));
    raw.send(b"cd");
    assert_eq!(raw.response().0, 200);
}
