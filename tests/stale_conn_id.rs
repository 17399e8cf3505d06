//! A `ConnId` kept after its connection closed never reaches the connection
//! that later reuses its slot.

mod util;

use std::sync::mpsc;

use pawl::{CloseCode, ConnId, SendStatus};
use util::{Recorder, TIMEOUT, TestServer, app};

#[test]
fn a_stale_id_does_not_reach_the_new_connection_in_its_slot() {
    let (recorder, events) = Recorder::new(true);
    let server = TestServer::start(move || app().route("/rec", recorder, &["*"]));
    // One connection at a time, so the second reuses the first one's slot.
    let mut first = server.client("/rec");
    let old = events.opened();
    first.close(1000, "");
    first.expect_closed_after(1000);
    events.closed(old);

    let mut second = server.client("/rec");
    let new = events.opened();
    assert_ne!(old, new, "ids of different connections differ");
    assert_ne!(old.resource_id(), new.resource_id());

    let (tx, rx) = mpsc::channel::<(SendStatus, bool, Vec<ConnId>)>();
    server
        .server
        .run(move |ctx| {
            let status = ctx.send(old, "meant for the old connection");
            let open = ctx.is_open(old);
            let _ = ctx.send(new, "for the new one");
            let _ = tx.send((status, open, ctx.connections().collect()));
        })
        .expect("scheduled");
    let (status, open, live) = rx.recv_timeout(TIMEOUT).expect("the task ran");
    assert_eq!(status, SendStatus::Dropped);
    assert!(!open);
    assert_eq!(live, vec![new]);
    // The new connection gets only what was sent to it.
    second.expect_text("for the new one");
    second.send_text("echo");
    second.expect_text("echo");

    // Closing by the stale id does not close the new connection either.
    server
        .server
        .run(move |ctx| ctx.close(old, CloseCode::NORMAL, "stale"))
        .expect("scheduled");
    second.send_text("still open");
    second.expect_text("still open");
}
