//! `on_close` is told why: the peer's close code and reason, a server-side
//! close, a protocol error, a limit, a vanished peer, a shutdown.

mod util;

use pawl::{CloseCode, CloseReason, Limit, ServerConfig};
use util::{Raw, Recorder, Seen, TestServer, app, client_frame, close_code_of, server_frame};

fn server() -> (TestServer, util::Events) {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || {
        app()
            .config(ServerConfig::default().max_message_size(1000))
            .route("/rec", recorder, &["*"])
    });
    (server, events)
}

/// Every frame the server sends until it ends the connection.
fn frames_until_end(raw: &mut Raw) -> Vec<(u8, Vec<u8>)> {
    let bytes = raw.read_to_end();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while let Some((opcode, payload, used)) = server_frame(rest) {
        frames.push((opcode, payload));
        rest = &rest[used..];
    }
    assert!(rest.is_empty(), "a partial frame at the end");
    frames
}

#[test]
fn peer_close_code_and_reason() {
    let (server, events) = server();
    let mut client = server.client("/rec");
    let id = events.opened();
    client.close(4000, "bye now");
    // The server echoes the code and ends the connection.
    client.expect_closed_after(4000);
    assert_eq!(
        events.closed(id),
        CloseReason::Peer {
            code: 4000,
            reason: "bye now".into()
        }
    );
}

#[test]
fn peer_close_without_a_code_is_1005() {
    let (server, events) = server();
    let mut raw = Raw::upgrade(server.addr, "/rec");
    let id = events.opened();
    raw.send(&client_frame(true, 0x8, b""));
    let frames = frames_until_end(&mut raw);
    assert_eq!(
        frames,
        vec![(8, Vec::new())],
        "answered with an empty close"
    );
    assert_eq!(
        events.closed(id),
        CloseReason::Peer {
            code: 1005,
            reason: String::new()
        }
    );
}

#[test]
fn server_close_from_the_component() {
    let (server, events) = server();
    let mut client = server.client("/rec");
    let id = events.opened();
    client.send_text("close 4001 asked to");
    assert_eq!(client.expect_close(4001), "asked to");
    client.expect_end();
    assert_eq!(
        events.closed(id),
        CloseReason::Server {
            code: CloseCode::new(4001).expect("4001"),
            reason: "asked to".into()
        }
    );
}

#[test]
fn protocol_error_unmasked_frame_is_1002() {
    let (server, events) = server();
    let mut raw = Raw::upgrade(server.addr, "/rec");
    let id = events.opened();
    raw.send(&[0x81, 0x02, b'h', b'i']); // text "hi", not masked
    let frames = frames_until_end(&mut raw);
    assert_eq!(frames.len(), 1, "{frames:?}");
    assert_eq!(frames[0].0, 8);
    assert_eq!(close_code_of(&frames[0].1), 1002);
    match events.closed(id) {
        CloseReason::Protocol(violation) => assert_eq!(violation.code, 1002),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn protocol_error_invalid_utf8_is_1007() {
    let (server, events) = server();
    let mut raw = Raw::upgrade(server.addr, "/rec");
    let id = events.opened();
    raw.send(&client_frame(true, 0x1, &[0xff, 0xfe, b'x']));
    let frames = frames_until_end(&mut raw);
    assert_eq!(close_code_of(&frames.last().expect("a close").1), 1007);
    let error = events.find("on_error", |seen| match seen {
        Seen::Error(conn, text) if *conn == id => Some(text.clone()),
        _ => None,
    });
    assert!(error.contains("1007"), "on_error: {error}");
    match events.closed(id) {
        CloseReason::Protocol(violation) => assert_eq!(violation.code, 1007),
        other => panic!("expected a protocol error, got {other:?}"),
    }
}

#[test]
fn limit_message_too_big() {
    let (server, events) = server();
    let mut client = server.client("/rec");
    let id = events.opened();
    client.send_binary(&[0u8; 1001]);
    client.expect_close(1009);
    assert_eq!(events.closed(id), CloseReason::Limit(Limit::MessageTooBig));
}

#[test]
fn peer_vanishing_without_a_close_frame_is_io() {
    let (server, events) = server();
    let client = server.client("/rec");
    let id = events.opened();
    drop(client);
    let reason = events.closed(id);
    assert!(matches!(reason, CloseReason::Io(_)), "got {reason:?}");
    assert_eq!(reason.code(), 1006);
}

#[test]
fn server_shutdown_is_1001() {
    let (server, events) = server();
    let mut client = server.client("/rec");
    let id = events.opened();
    server.reactor.stop().expect("loop running");
    client.expect_closed_after(1001);
    assert_eq!(events.closed(id), CloseReason::Shutdown);
    server.stop();
}

/// The old `Context::close` rewrote a code that may not go on the wire
/// (1005, 1006, 1015, reserved ones) to 1000; now such a `CloseCode` cannot
/// be built at all, and every code that can reaches the client as sent.
#[test]
fn only_codes_a_server_may_send_can_be_built_and_they_go_on_the_wire() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_eq!(CloseCode::new(code), None, "{code} may not be sent");
    }
    let (server, events) = server();
    for code in [1000, 1001, 1003, 1008, 1011, 3000, 4999] {
        assert_eq!(CloseCode::new(code).map(CloseCode::get), Some(code));
        let mut client = server.client("/rec");
        let id = events.opened();
        client.send_text(&format!("close {code} why"));
        assert_eq!(client.expect_close(code), "why");
        client.expect_end();
        assert_eq!(events.closed(id).code(), code);
    }
}
