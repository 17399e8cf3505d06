//! Allowed origins: a refused origin gets 403 and no upgrade; an allowed
//! one (whole origin or host alone) upgrades.

mod util;

use pawl::EchoServer;
use util::{Client, Raw, TestServer, app, upgrade_request};

fn server() -> TestServer {
    TestServer::start(|| {
        app()
            .route(
                "/strict",
                EchoServer,
                &["https://good.example", "friend.example"],
            )
            .route("/open", EchoServer, &["*"])
    })
}

#[test]
fn refused_origin_gets_403_and_no_upgrade() {
    let server = server();
    for origin in [
        Some("https://evil.example"),
        Some("https://good.example.evil.example"),
        None,
    ] {
        let mut raw = Raw::connect(server.addr);
        let header = origin.map(|o| format!("Origin: {o}"));
        let extra: Vec<&str> = header.iter().map(String::as_str).collect();
        raw.send(upgrade_request("/strict", &extra).as_bytes());
        let (status, head) = raw.response();
        assert_eq!(status, 403, "origin {origin:?}: {head}");
        assert!(
            !head.to_ascii_lowercase().contains("sec-websocket-accept"),
            "a refusal must not upgrade: {head}"
        );
        // The server closes after the response: no WebSocket follows.
        raw.read_to_end();
    }
}

#[test]
fn refused_origin_fails_a_real_client() {
    let server = server();
    let result = Client::try_connect(
        server.addr,
        "/strict",
        &[("Origin", "https://evil.example")],
    );
    match result {
        Err(tungstenite::Error::Http(response)) => assert_eq!(response.status(), 403),
        Err(e) => panic!("expected HTTP 403, got {e}"),
        Ok(_) => panic!("a refused origin was upgraded"),
    }
}

#[test]
fn allowed_origins_upgrade() {
    let server = server();
    for (path, origin) in [
        ("/strict", "https://good.example"),
        ("/strict", "http://friend.example:8443"),
        ("/strict", "HTTPS://GOOD.EXAMPLE"),
        ("/open", "https://anyone.example"),
    ] {
        let mut client = Client::try_connect(server.addr, path, &[("Origin", origin)])
            .unwrap_or_else(|e| panic!("{origin} on {path}: {e}"));
        client.send_text(origin);
        client.expect_text(origin);
    }
}

#[test]
fn any_origin_route_accepts_requests_without_origin() {
    let server = server();
    let mut client = server.client("/open");
    client.send_text("no origin");
    client.expect_text("no origin");
}
