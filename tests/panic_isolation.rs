//! A panic in a component callback closes that connection with 1011 and the
//! loop goes on serving every other connection.

mod util;

use std::sync::mpsc::{self, Sender};

use pawl::{CloseReason, Component, ConnId, Context, Message};
use util::{TIMEOUT, TestServer, app};

/// Echoes, but panics on "panic".
struct Fragile {
    closes: Sender<(ConnId, CloseReason)>,
}

impl Component for Fragile {
    fn on_open(&mut self, ctx: &mut Context<'_>, conn: ConnId) {
        let _ = ctx.send_text(conn, &format!("id {}", conn.resource_id()));
    }
    fn on_message(&mut self, ctx: &mut Context<'_>, conn: ConnId, message: Message<'_>) {
        if message == Message::Text("panic") {
            panic!("test panic on purpose");
        }
        let _ = ctx.send(conn, message);
    }
    fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, reason: &CloseReason) {
        let _ = self.closes.send((conn, reason.clone()));
    }
}

#[test]
fn a_panicking_callback_closes_only_its_connection() {
    let (tx, closes) = mpsc::channel();
    let server = TestServer::start(move || {
        let mut app = app();
        app.route("/fragile", Fragile { closes: tx }, &["*"]);
        app
    });
    let mut bystander = server.client("/fragile");
    let _ = bystander.text();
    let mut victim = server.client("/fragile");
    let victim_id = victim.text();

    victim.send_text("panic");
    victim.expect_close(1011);

    let (id, reason) = closes
        .recv_timeout(TIMEOUT)
        .expect("on_close for the victim");
    assert_eq!(format!("id {}", id.resource_id()), victim_id);
    assert_eq!(reason, CloseReason::Panic);

    // The bystander is untouched, and new connections are served.
    bystander.send_text("still served");
    bystander.expect_text("still served");
    let mut newcomer = server.client("/fragile");
    let _ = newcomer.text();
    newcomer.send_text("hello");
    newcomer.expect_text("hello");

    // Panicking again (many times) changes nothing for the others.
    for _ in 0..5 {
        let mut victim = server.client("/fragile");
        let _ = victim.text();
        victim.send_text("panic");
        victim.expect_close(1011);
    }
    bystander.send_text("after five panics");
    bystander.expect_text("after five panics");
}
