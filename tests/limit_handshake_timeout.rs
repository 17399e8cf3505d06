//! handshake_timeout: a slowloris client that sends half an upgrade request
//! (or drips it a byte at a time) is dropped; a client that finished its
//! handshake is not affected.

mod util;

use std::io::Write;
use std::time::{Duration, Instant};

use pawl::{EchoServer, ServerConfig};
use util::{Raw, TIMEOUT, TestServer, app};

fn server() -> TestServer {
    TestServer::start(|| {
        app()
            .config(ServerConfig::default().handshake_timeout(Duration::from_millis(500)))
            .route("/echo", EchoServer, &["*"])
    })
}

#[test]
fn half_a_request_is_dropped() {
    let server = server();
    let mut upgraded = server.client("/echo");
    let mut slow = Raw::connect(server.addr);
    slow.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\nUpgrade: websocket\r\n");
    // The server ends the connection without an upgrade (read_to_end fails
    // the test if it is still open after TIMEOUT).
    let answer = slow.read_to_end();
    assert!(
        !String::from_utf8_lossy(&answer).contains(" 101 "),
        "a half request was upgraded"
    );
    // The upgraded connection outlived the handshake timeout and works.
    upgraded.send_text("still here");
    upgraded.expect_text("still here");
}

#[test]
fn a_request_dripped_byte_by_byte_is_dropped() {
    let server = server();
    let mut slow = Raw::connect(server.addr);
    let request = util::upgrade_request("/echo", &[]);
    // Each byte is new input, but input does not extend the deadline: the
    // server must drop the connection before the request is complete.
    let deadline = Instant::now() + TIMEOUT;
    let mut dropped = false;
    for byte in request.as_bytes().iter().take(request.len() - 1) {
        if slow.stream.write_all(&[*byte]).is_err() {
            dropped = true;
            break;
        }
        assert!(
            Instant::now() < deadline,
            "still connected after {TIMEOUT:?}"
        );
        // Pace the drip so the whole request would take ~5 s.
        std::thread::sleep(Duration::from_millis(40));
        if peer_closed(&slow) {
            dropped = true;
            break;
        }
    }
    assert!(dropped, "the dripping client was never dropped");
}

/// True once the server has closed the connection (EOF or reset readable).
fn peer_closed(raw: &Raw) -> bool {
    let mut probe = [0u8; 1];
    raw.stream.set_nonblocking(true).expect("nonblocking");
    let closed = match raw.stream.peek(&mut probe) {
        Ok(0) => true,
        Ok(_) => false,
        Err(e) => !util::is_timeout(&e),
    };
    raw.stream.set_nonblocking(false).expect("blocking");
    closed
}
