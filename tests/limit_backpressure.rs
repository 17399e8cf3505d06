//! max_backpressure: clients that never read are closed once their unsent
//! output passes the limit, and the server's memory stays bounded although
//! it tries to send them far more than that.

mod util;

use std::collections::BTreeMap;
use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use pawl::reactor::TimerId;
use pawl::{
    CloseReason, Component, ConnId, Context, Limit, Message, PreparedMessage, SendStatus,
    ServerConfig,
};
use util::{TIMEOUT, TestServer, app, proc_status_kib};

const CLIENTS: usize = 4;
const CHUNK: usize = 1 << 20;
const MAX_BACKPRESSURE: usize = 2 << 20;
/// What the server tries to send each client: 32 times the limit.
const ATTEMPT_PER_CLIENT: usize = 64 << 20;

#[derive(Debug)]
enum Report {
    Open(ConnId),
    Status(ConnId, SendStatus),
    Close(ConnId, CloseReason),
    Done,
}

/// On "flood", sends 1 MiB to every flooded client each millisecond until
/// it has attempted ATTEMPT_PER_CLIENT bytes to each.
///
/// The attempts are kept by id in the component, not in the sessions: the
/// flood goes on to connections already closed for backpressure, whose
/// sends must report `Dropped`, and a session ends with its connection.
struct Flood {
    reports: Sender<Report>,
    attempted: BTreeMap<ConnId, usize>,
    chunk: Option<PreparedMessage>,
    timer: Option<TimerId>,
}

impl Flood {
    fn tick(&mut self, ctx: &mut Context<'_, Self>) {
        let chunk = self.chunk.as_ref().expect("prepared");
        let mut all_done = true;
        for (conn, attempted) in self.attempted.iter_mut() {
            if *attempted >= ATTEMPT_PER_CLIENT {
                continue;
            }
            all_done = false;
            let status = ctx.send_prepared(*conn, chunk);
            *attempted += CHUNK;
            if status != SendStatus::Sent {
                let _ = self.reports.send(Report::Status(*conn, status));
            }
        }
        if all_done && let Some(timer) = self.timer.take() {
            ctx.cancel_timer(timer);
            let _ = self.reports.send(Report::Done);
        }
    }
}

impl Component for Flood {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, conn: ConnId) {
        let _ = self.reports.send(Report::Open(conn));
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        _: Message<'_>,
    ) {
        self.attempted.insert(conn, 0);
        if self.chunk.is_none() {
            self.chunk = Some(ctx.prepare(&vec![0x5a; CHUNK][..]));
        }
        if self.timer.is_none() && self.attempted.len() == CLIENTS {
            self.timer = Some(ctx.set_periodic(Duration::from_millis(1), Flood::tick));
        }
    }

    fn on_close(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: &CloseReason) {
        let _ = self.reports.send(Report::Close(conn, reason.clone()));
    }
}

#[test]
fn clients_that_never_read_are_closed_and_memory_stays_bounded() {
    let (tx, reports) = mpsc::channel();
    let server = TestServer::start(move || {
        app()
            .config(
                ServerConfig::default()
                    .backpressure_threshold(CHUNK)
                    .max_backpressure(MAX_BACKPRESSURE),
            )
            .route(
                "/flood",
                Flood {
                    reports: tx,
                    attempted: BTreeMap::new(),
                    chunk: None,
                    timer: None,
                },
                &["*"],
            )
    });
    // Clients that say "flood" and then never read again.
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| server.client("/flood")).collect();
    let mut ids = Vec::new();
    while ids.len() < CLIENTS {
        match reports.recv_timeout(TIMEOUT).expect("on_open") {
            Report::Open(id) => ids.push(id),
            other => panic!("unexpected {other:?}"),
        }
    }
    let baseline = proc_status_kib("self", "VmRSS");
    for client in &mut clients {
        client.send_text("flood");
    }

    let mut closed = BTreeMap::new();
    let mut dropped = BTreeMap::new();
    let mut done = false;
    while !done || closed.len() < CLIENTS {
        match reports.recv_timeout(TIMEOUT * 3).expect("flood progress") {
            Report::Status(id, SendStatus::Dropped) => *dropped.entry(id).or_insert(0) += 1,
            Report::Status(..) => {}
            Report::Close(id, reason) => {
                closed.insert(id, reason);
            }
            Report::Done => done = true,
            Report::Open(id) => panic!("unexpected open {id}"),
        }
    }
    let peak = proc_status_kib("self", "VmHWM");

    for id in &ids {
        assert_eq!(
            closed.get(id),
            Some(&CloseReason::Limit(Limit::Backpressure)),
            "{id} must be closed for backpressure"
        );
        assert!(
            dropped.get(id).is_some_and(|&n| n >= 1),
            "{id}: no send reported Dropped"
        );
    }
    // Attempted: CLIENTS * 64 MiB = 256 MiB. Held at most per client: the
    // limit plus the chunk that crossed it, doubled for Vec growth (24 MiB
    // in all); the rest is slack for the test's own allocations. A server
    // without the limit grows by about the 256 MiB attempted.
    let bound_kib: u64 = 48 << 10;
    let growth = peak.saturating_sub(baseline);
    assert!(
        growth < bound_kib,
        "peak RSS grew by {growth} KiB (bound {bound_kib} KiB) while flooding clients that never read"
    );
}
