//! The upgrade handshake over a non-blocking socket: requests that arrive a
//! byte at a time, frames pipelined behind the request, oversized requests.

mod util;

use pawl::{EchoServer, ServerConfig};
use util::{Raw, TestServer, app, client_frame, server_frame, upgrade_request};

fn server() -> TestServer {
    TestServer::start(|| {
        app()
            .config(ServerConfig::default().max_request_size(1024))
            .route("/echo", EchoServer, &["*"])
    })
}

#[test]
fn response_carries_the_accept_key_and_no_extension() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(
        upgrade_request(
            "/echo",
            &["Sec-WebSocket-Extensions: permessage-deflate; client_max_window_bits"],
        )
        .as_bytes(),
    );
    let (status, head) = raw.response();
    assert_eq!(status, 101, "{head}");
    // RFC 6455 §1.3's example key and its accept value.
    assert!(head.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="), "{head}");
    assert!(
        !head
            .to_ascii_lowercase()
            .contains("sec-websocket-extensions"),
        "permessage-deflate must be declined: {head}"
    );
}

#[test]
fn request_arriving_a_byte_at_a_time_upgrades() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    for byte in upgrade_request("/echo", &[]).bytes() {
        raw.send(&[byte]);
    }
    let (status, head) = raw.response();
    assert_eq!(status, 101, "{head}");
    raw.send(&client_frame(true, 0x1, b"after drip"));
    let mut buf = Vec::new();
    let frame = loop {
        let mut chunk = [0u8; 256];
        let n = std::io::Read::read(&mut raw.stream, &mut chunk).expect("read");
        assert!(n > 0, "closed before the echo");
        buf.extend_from_slice(&chunk[..n]);
        if let Some(frame) = server_frame(&buf) {
            break frame;
        }
    };
    assert_eq!((frame.0, frame.1.as_slice()), (1, &b"after drip"[..]));
}

#[test]
fn frames_pipelined_behind_the_request_are_served() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    let mut bytes = upgrade_request("/echo", &[]).into_bytes();
    bytes.extend(client_frame(true, 0x1, b"first"));
    bytes.extend(client_frame(true, 0x2, b"second"));
    bytes.extend(client_frame(true, 0x8, &1000u16.to_be_bytes()));
    raw.send(&bytes);
    let (status, _) = raw.response();
    assert_eq!(status, 101);
    let rest = raw.read_to_end();
    let mut frames = Vec::new();
    let mut at = &rest[..];
    while let Some((opcode, payload, used)) = server_frame(at) {
        frames.push((opcode, payload));
        at = &at[used..];
    }
    assert_eq!(
        frames,
        vec![
            (1, b"first".to_vec()),
            (2, b"second".to_vec()),
            (8, 1000u16.to_be_bytes().to_vec())
        ]
    );
}

#[test]
fn request_growing_past_the_limit_gets_431() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(b"GET /echo HTTP/1.1\r\nHost: x\r\n");
    // Header lines in pieces, never finishing the request.
    for _ in 0..20 {
        let line = format!("X-Filler: {}\r\n", "a".repeat(100));
        if std::io::Write::write_all(&mut raw.stream, line.as_bytes()).is_err() {
            break; // refused already
        }
    }
    let (status, head) = raw.response();
    assert_eq!(status, 431, "{head}");
}

#[test]
fn missing_key_gets_400_and_wrong_version_426() {
    let server = server();
    let mut raw = Raw::connect(server.addr);
    raw.send(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Version: 13\r\n\r\n",
    );
    assert_eq!(raw.response().0, 400);
    let mut raw = Raw::connect(server.addr);
    raw.send(
        b"GET /echo HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
          Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 8\r\n\r\n",
    );
    let (status, head) = raw.response();
    assert!(
        status == 426 || status == 400,
        "version 8 must be refused: {head}"
    );
}
