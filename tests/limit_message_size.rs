//! max_message_size / max_frame_size: a message over the limit, in one frame
//! or assembled from small fragments, closes the connection with 1009 and
//! `on_close` says so; messages at the limit still pass.

mod util;

use pawl::{CloseReason, Limit, ServerConfig};
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use util::{Recorder, Seen, TestServer, app};

const LIMIT: usize = 1024;

fn server() -> (TestServer, util::Events) {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || {
        app()
            .config(
                ServerConfig::default()
                    .max_message_size(LIMIT)
                    .max_frame_size(LIMIT),
            )
            .route("/echo", recorder, &["*"])
    });
    (server, events)
}

#[test]
fn message_at_the_limit_passes() {
    let (server, _events) = server();
    let mut client = server.client("/echo");
    let payload = vec![7u8; LIMIT];
    client.send_binary(&payload);
    client.expect_binary(&payload);
}

#[test]
fn oversized_frame_is_closed_with_1009() {
    let (server, events) = server();
    let mut client = server.client("/echo");
    let id = events.opened();
    client.send_binary(&vec![1u8; LIMIT + 1]);
    client.expect_close(1009);
    let error = events.find("on_error", |seen| match seen {
        Seen::Error(conn, text) if *conn == id => Some(text.clone()),
        _ => None,
    });
    assert!(error.contains("too big"), "on_error: {error}");
    assert_eq!(events.closed(id), CloseReason::Limit(Limit::MessageTooBig));
    assert_eq!(CloseReason::Limit(Limit::MessageTooBig).code(), 1009);
}

#[test]
fn oversized_fragmented_message_is_closed_with_1009() {
    let (server, events) = server();
    let mut client = server.client("/echo");
    let id = events.opened();
    // Each fragment is well under the frame limit; together they are over
    // the message limit.
    let chunk = vec![b'a'; LIMIT / 4];
    for i in 0..5 {
        let opcode = if i == 0 { Data::Text } else { Data::Continue };
        client.send_frame(Frame::message(chunk.clone(), OpCode::Data(opcode), i == 4));
    }
    client.expect_close(1009);
    assert_eq!(events.closed(id), CloseReason::Limit(Limit::MessageTooBig));
    // Nothing of it reached the component.
    assert!(
        !events
            .rx
            .try_iter()
            .any(|seen| matches!(seen, Seen::Message(..))),
        "an oversized message was delivered"
    );
}

#[test]
fn huge_announced_length_is_refused_from_the_header() {
    let (server, events) = server();
    let mut raw = util::Raw::upgrade(server.addr, "/echo");
    let id = events.opened();
    // A header announcing 1 GiB, and no payload at all: the limit is
    // enforced from the header, before any payload is buffered.
    let mut header = vec![0x82, 0x80 | 127];
    header.extend_from_slice(&(1u64 << 30).to_be_bytes());
    header.extend_from_slice(&[1, 2, 3, 4]);
    raw.send(&header);
    let bytes = raw.read_to_end();
    let (opcode, payload, _) = util::server_frame(&bytes).expect("a close frame");
    assert_eq!(opcode, 8, "close opcode");
    assert_eq!(util::close_code_of(&payload), 1009);
    assert_eq!(events.closed(id), CloseReason::Limit(Limit::MessageTooBig));
}
