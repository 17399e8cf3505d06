//! Backpressure and `on_drain`: a send past the threshold reports
//! `Backpressure`, `on_drain` follows once the client has read it all, and a
//! component that pauses until then delivers everything in order.

mod util;

use std::sync::mpsc::{self, Sender};

use pawl::{Component, ConnId, Context, Message, SendStatus, ServerConfig};
use util::{TestServer, app};

const CHUNK: usize = 256 << 10;
const THRESHOLD: usize = 512 << 10;

#[derive(Debug, PartialEq)]
enum Report {
    Paused(u32),
    Drained(u32),
}

/// On "pump N": sends N numbered chunks, pausing whenever a send reports
/// backpressure and resuming in `on_drain`; then "done".
struct Pump {
    reports: Sender<Report>,
    next: u32,
    total: u32,
}

impl Pump {
    fn run(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        while self.next < self.total {
            let mut chunk = vec![(self.next % 251) as u8; CHUNK];
            chunk[..4].copy_from_slice(&self.next.to_be_bytes());
            self.next += 1;
            match ctx.send_binary(conn, &chunk) {
                SendStatus::Sent => {}
                SendStatus::Backpressure => {
                    let _ = self.reports.send(Report::Paused(self.next));
                    return;
                }
                SendStatus::Dropped => panic!("dropped at chunk {}", self.next),
            }
        }
        if self.next == self.total {
            self.next += 1;
            let _ = ctx.send_text(conn, "done");
        }
    }
}

impl Component for Pump {
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, message: Message<'_>) {
        match message {
            Message::Text(text) if text.starts_with("pump ") => {
                self.total = text[5..].parse().expect("count");
                self.next = 0;
                self.run(ctx, conn);
            }
            Message::Text("ping") => {
                let _ = ctx.send_text(conn, "pong");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn on_drain(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        assert_eq!(ctx.buffered_amount(conn), 0, "on_drain with output queued");
        let _ = self.reports.send(Report::Drained(self.next));
        self.run(ctx, conn);
    }
}

fn server() -> (TestServer, mpsc::Receiver<Report>) {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move || {
        let mut app = app();
        app.config(ServerConfig::default().backpressure_threshold(THRESHOLD));
        app.route(
            "/pump",
            Pump {
                reports: tx,
                next: 0,
                total: 0,
            },
            &["*"],
        );
        app
    });
    (server, rx)
}

#[test]
fn backpressure_then_drain_delivers_everything_in_order() {
    let (server, reports) = server();
    let mut client = server.client("/pump");
    let total = 64; // 16 MiB, 32 thresholds' worth
    client.send_text(&format!("pump {total}"));
    for i in 0..total {
        match client.recv() {
            util::Received::Binary(chunk) => {
                assert_eq!(chunk.len(), CHUNK);
                let seq = u32::from_be_bytes(chunk[..4].try_into().expect("4 bytes"));
                assert_eq!(seq, i, "chunks out of order");
                assert!(
                    chunk[4..].iter().all(|&b| b == (i % 251) as u8),
                    "chunk {i} corrupted"
                );
            }
            other => panic!("expected chunk {i}, got {other:?}"),
        }
    }
    client.expect_text("done");

    // Every pause was followed by exactly one drain at the same point.
    let seen: Vec<Report> = reports.try_iter().collect();
    let pauses = seen
        .iter()
        .filter(|r| matches!(r, Report::Paused(_)))
        .count();
    assert!(pauses >= 1, "no send reported backpressure: {seen:?}");
    for pair in seen.chunks(2) {
        match pair {
            [Report::Paused(a), Report::Drained(b)] => assert_eq!(a, b),
            other => panic!("pause and drain out of step: {other:?}"),
        }
    }
}

#[test]
fn no_drain_without_backpressure() {
    let (server, reports) = server();
    let mut client = server.client("/pump");
    client.send_text("pump 1"); // 256 KiB, under the threshold
    let _ = client.recv();
    client.expect_text("done");
    client.send_text("ping");
    client.expect_text("pong");
    let seen: Vec<Report> = reports.try_iter().collect();
    assert!(seen.is_empty(), "unexpected {seen:?}");
}
