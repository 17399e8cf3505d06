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
/// backpressure and resuming in `on_drain`; then "done". Where each
/// connection is in its pumping is its session.
struct Pump {
    reports: Sender<Report>,
}

#[derive(Default)]
struct Progress {
    next: u32,
    total: u32,
}

impl Pump {
    fn run(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, progress: &mut Progress) {
        while progress.next < progress.total {
            let mut chunk = vec![(progress.next % 251) as u8; CHUNK];
            chunk[..4].copy_from_slice(&progress.next.to_be_bytes());
            progress.next += 1;
            match ctx.send(conn, &chunk) {
                SendStatus::Sent => {}
                SendStatus::Backpressure => {
                    let _ = self.reports.send(Report::Paused(progress.next));
                    return;
                }
                SendStatus::Dropped => panic!("dropped at chunk {}", progress.next),
            }
        }
        if progress.next == progress.total {
            progress.next += 1;
            let _ = ctx.send(conn, "done");
        }
    }
}

impl Component for Pump {
    type Session = Progress;

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) -> Progress {
        Progress::default()
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        progress: &mut Progress,
        message: Message<'_>,
    ) {
        match message {
            Message::Text(text) if text.starts_with("pump ") => {
                progress.total = text[5..].parse().expect("count");
                progress.next = 0;
                self.run(ctx, conn, progress);
            }
            Message::Text("ping") => {
                let _ = ctx.send(conn, "pong");
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn on_drain(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId, progress: &mut Progress) {
        assert_eq!(ctx.buffered_amount(conn), 0, "on_drain with output queued");
        let _ = self.reports.send(Report::Drained(progress.next));
        self.run(ctx, conn, progress);
    }
}

fn server() -> (TestServer, mpsc::Receiver<Report>) {
    let (tx, rx) = mpsc::channel();
    let server = TestServer::start(move || {
        app()
            .config(ServerConfig::default().backpressure_threshold(THRESHOLD))
            .route("/pump", Pump { reports: tx }, &["*"])
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
