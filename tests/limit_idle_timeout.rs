//! idle_timeout with server pings: a client that answers pings stays open
//! past the timeout; one that stays silent gets a ping, then close 1001,
//! and `on_close` says idle timeout.

mod util;

use std::time::Duration;

use pawl::{CloseReason, Limit, ServerConfig};
use util::{Raw, Recorder, TestServer, app, close_code_of, server_frame};

// Long enough that a busy machine delays no pong past it (a ping goes out
// after IDLE/2 of silence; the pong has the other half to arrive).
const IDLE: Duration = Duration::from_millis(1000);

fn server() -> (TestServer, util::Events) {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || {
        app()
            .config(ServerConfig::default().idle_timeout(IDLE))
            .route("/echo", recorder, &["*"])
    });
    (server, events)
}

#[test]
fn a_client_that_answers_pings_stays_open() {
    let (server, events) = server();
    let mut client = server.client("/echo");
    let id = events.opened();
    // Pings come at least IDLE/2 apart (each after IDLE/2 of silence); three
    // of them mean the connection lived past IDLE on pongs alone.
    let mut pings = 0;
    while pings < 3 {
        match client.ws.read().expect("open connection") {
            tungstenite::Message::Ping(_) => pings += 1, // tungstenite answers it
            other => panic!("unexpected {other:?}"),
        }
    }
    client.send_text("alive");
    client.expect_text("alive");
    assert!(
        !events
            .rx
            .try_iter()
            .any(|seen| matches!(seen, util::Seen::Close(c, _) if c == id)),
        "the answering client was closed"
    );
}

#[test]
fn a_silent_client_gets_a_ping_then_1001() {
    let (server, events) = server();
    let mut silent = Raw::upgrade(server.addr, "/echo");
    let id = events.opened();
    let bytes = silent.read_to_end();
    let mut frames = Vec::new();
    let mut rest = &bytes[..];
    while let Some((opcode, payload, used)) = server_frame(rest) {
        frames.push((opcode, payload));
        rest = &rest[used..];
    }
    assert_eq!(
        frames.first().map(|f| f.0),
        Some(9),
        "a ping first: {frames:?}"
    );
    let (opcode, payload) = frames.last().expect("frames");
    assert_eq!(*opcode, 8, "a close frame last: {frames:?}");
    assert_eq!(close_code_of(payload), 1001);
    assert_eq!(events.closed(id), CloseReason::Limit(Limit::IdleTimeout));
}
