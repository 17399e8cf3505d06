//! EchoServer on a real socket: text, binary, large and fragmented messages
//! come back whole and unchanged.

mod util;

use pawl::EchoServer;
use tungstenite::protocol::frame::Frame;
use tungstenite::protocol::frame::coding::{Data, OpCode};
use util::{TestServer, app};

fn echo_server() -> TestServer {
    TestServer::start(|| app().route("/echo", EchoServer, &["*"]))
}

#[test]
fn text_comes_back_as_text() {
    let server = echo_server();
    let mut client = server.client("/echo");
    for text in ["hello", "", "ünïcødé ✓ 🦀", &"x".repeat(70_000)] {
        client.send_text(text);
        client.expect_text(text);
    }
}

#[test]
fn binary_comes_back_as_binary() {
    let server = echo_server();
    let mut client = server.client("/echo");
    let all_bytes: Vec<u8> = (0..=255).collect();
    for payload in [&[][..], &[0u8, 0xff, 0x80][..], &all_bytes[..]] {
        client.send_binary(payload);
        client.expect_binary(payload);
    }
}

#[test]
fn large_message_comes_back_whole() {
    let server = echo_server();
    let mut client = server.client("/echo");
    // 8 MiB: far over the server's 64 KiB read buffer and any socket buffer,
    // so it arrives in many reads and leaves in many writes.
    let payload: Vec<u8> = (0..8 << 20).map(|i: u32| (i % 251) as u8).collect();
    client.send_binary(&payload);
    client.expect_binary(&payload);
    // The connection is still in step afterwards.
    client.send_text("after");
    client.expect_text("after");
}

#[test]
fn fragmented_messages_are_assembled() {
    let server = echo_server();
    let mut client = server.client("/echo");

    // A text message in three fragments, with "é" split between two of
    // them and a ping between fragments (control frames may interleave).
    let text = "frag-é-mented";
    let bytes = text.as_bytes();
    let split = text.find('é').expect("é") + 1; // inside the two-byte é
    client.send_frame(Frame::message(
        bytes[..4].to_vec(),
        OpCode::Data(Data::Text),
        false,
    ));
    client.send_frame(Frame::message(
        bytes[4..split].to_vec(),
        OpCode::Data(Data::Continue),
        false,
    ));
    client.send_frame(Frame::ping(b"mid".to_vec()));
    client.send_frame(Frame::message(
        bytes[split..].to_vec(),
        OpCode::Data(Data::Continue),
        true,
    ));
    client.expect_text(text);

    // A binary message in 100 fragments, one of them empty.
    let payload: Vec<u8> = (0..10_000u32).map(|i| (i * 7) as u8).collect();
    let chunks: Vec<&[u8]> = payload.chunks(101).collect();
    for (i, chunk) in chunks.iter().enumerate() {
        let opcode = if i == 0 { Data::Binary } else { Data::Continue };
        client.send_frame(Frame::message(chunk.to_vec(), OpCode::Data(opcode), false));
    }
    client.send_frame(Frame::message(
        Vec::new(),
        OpCode::Data(Data::Continue),
        true,
    ));
    client.expect_binary(&payload);
}

#[test]
fn many_messages_in_one_write_come_back_in_order() {
    let server = echo_server();
    let mut client = server.client("/echo");
    // Queue without flushing, so they reach the server in one segment.
    for i in 0..500 {
        client
            .ws
            .write(tungstenite::Message::text(format!("m{i}")))
            .expect("queue");
    }
    client.ws.flush().expect("flush");
    for i in 0..500 {
        client.expect_text(&format!("m{i}"));
    }
}
