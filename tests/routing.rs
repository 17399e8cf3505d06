//! HTTP answers before any upgrade: an unknown path gets 404, a plain GET on
//! a WebSocket route 426, and neither connection is upgraded.

mod util;

use pawl::EchoServer;
use util::{Raw, TestServer, app, upgrade_request};

fn server() -> TestServer {
    TestServer::start(|| app().route("/echo", EchoServer, &["*"]))
}

#[test]
fn unknown_path_gets_404() {
    let server = server();
    for path in ["/nope", "/echo/", "/ech", "/"] {
        let mut raw = Raw::connect(server.addr);
        raw.send(upgrade_request(path, &[]).as_bytes());
        let (status, head) = raw.response();
        assert_eq!(status, 404, "{path}: {head}");
        raw.read_to_end();
    }
}

#[test]
fn plain_get_on_a_websocket_route_gets_426() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/html\r\n\r\n");
    let (status, head) = raw.response();
    assert_eq!(status, 426, "{head}");
    assert!(
        head.to_ascii_lowercase().contains("upgrade: websocket"),
        "a 426 names the protocol to upgrade to: {head}"
    );
    raw.read_to_end();
}

#[test]
fn query_string_does_not_change_the_route() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(upgrade_request("/echo?room=1&x=y", &[]).as_bytes());
    let (status, head) = raw.response();
    assert_eq!(status, 101, "{head}");
}

#[test]
fn garbage_gets_400_and_the_server_goes_on() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(b"\x16\x03\x01 not http at all\r\n\r\n");
    let (status, _) = raw.response();
    assert_eq!(status, 400);
    raw.read_to_end();
    let mut client = server.client("/echo");
    client.send_text("still serving");
    client.expect_text("still serving");
}

#[test]
fn plain_http_route_answers_and_closes() {
    let server = TestServer::start(|| {
        app()
            .route("/echo", EchoServer, &["*"])
            .http("/health", |request| {
                let who = request.query_param("who").unwrap_or_default().into_owned();
                pawl::HttpResponse::text(200, format!("ok {who}\n"))
            })
    });
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET /health?who=test HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n");
    let (status, head) = raw.response();
    assert_eq!(status, 200, "{head}");
    let body = raw.read_to_end();
    assert_eq!(body, b"ok test\n");
}

#[test]
fn browser_style_upgrade_headers_are_accepted() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    // Firefox sends "Connection: keep-alive, Upgrade"; header case varies.
    raw.send(
        b"GET /echo HTTP/1.1\r\nhost: 127.0.0.1\r\nupgrade: WebSocket\r\n\
          connection: keep-alive, Upgrade\r\nsec-websocket-key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
          sec-websocket-version: 13\r\norigin: http://localhost:8000\r\n\r\n",
    );
    let (status, head) = raw.response();
    assert_eq!(status, 101, "{head}");
}
