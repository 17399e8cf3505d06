//! message_timeout: a frame trickled a byte at a time, each byte well
//! inside the idle timeout, is closed with 1008 once the message has taken
//! longer than the message timeout; a client that sends whole messages
//! slowly, or a fragmented message whose fragments keep coming within the
//! timeout, is not.

mod util;

use std::thread::sleep;
use std::time::{Duration, Instant};

use pawl::{CloseReason, Limit, ServerConfig};
use util::{Raw, Recorder, Seen, TestServer, app, client_frame, close_code_of, server_frame};

const MESSAGE: Duration = Duration::from_millis(1500);
const IDLE: Duration = Duration::from_secs(20);

fn server() -> (TestServer, util::Events) {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || {
        app()
            .config(
                ServerConfig::default()
                    .idle_timeout(IDLE)
                    .message_timeout(MESSAGE),
            )
            .route("/echo", recorder, &["*"])
    });
    (server, events)
}

#[test]
fn a_trickled_frame_is_closed_with_1008() {
    let (server, events) = server();
    let mut raw = Raw::upgrade(server.addr, "/echo");
    let id = events.opened();
    let frame = client_frame(true, 2, &[7; 100]);
    // One byte every 100 ms: the 106-byte frame would take over 10 s.
    let started = Instant::now();
    raw.stream.set_nonblocking(true).expect("nonblocking");
    let mut sent = 0;
    while sent < frame.len() && started.elapsed() < IDLE {
        use std::io::Write;
        match raw.stream.write(&frame[sent..sent + 1]) {
            Ok(_) => sent += 1,
            Err(_) => break, // closed under us: what the test waits for
        }
        if events
            .rx
            .try_iter()
            .any(|seen| matches!(seen, Seen::Close(c, CloseReason::Limit(Limit::MessageTimeout)) if c == id))
        {
            break;
        }
        sleep(Duration::from_millis(100));
    }
    assert!(sent < frame.len(), "the whole trickled frame was taken");
    raw.stream.set_nonblocking(false).expect("blocking");
    let bytes = raw.read_to_end();
    let (opcode, payload, _) = server_frame(&bytes).expect("a close frame");
    assert_eq!((opcode, close_code_of(&payload)), (8, 1008));
}

#[test]
fn slow_whole_messages_and_steady_fragments_are_not_cut() {
    let (server, events) = server();
    let mut raw = Raw::upgrade(server.addr, "/echo");
    let id = events.opened();
    // Whole messages, each well inside the timeout, for longer than it.
    for i in 0..4u8 {
        raw.send(&client_frame(true, 2, &[i; 10]));
        sleep(MESSAGE / 2);
    }
    // A fragmented message whose fragments come within the timeout.
    raw.send(&client_frame(false, 2, &[1; 10]));
    sleep(MESSAGE / 3);
    raw.send(&client_frame(false, 0, &[2; 10]));
    sleep(MESSAGE / 3);
    raw.send(&client_frame(true, 0, &[3; 10]));
    let mut got = Vec::new();
    while got.len() < 5 {
        match events.next() {
            Seen::Message(c, m) if c == id => got.push(m),
            Seen::Close(c, reason) if c == id => panic!("closed: {reason}"),
            _ => {}
        }
    }
    assert_eq!(got[4].as_message().as_bytes().len(), 30);
}
