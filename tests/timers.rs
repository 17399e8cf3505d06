//! Component timers: `Context::set_timer` fires `on_timer` once,
//! `set_periodic` until cancelled, and a cancelled timer never fires.

mod util;

use std::time::Duration;

use pawl::reactor::TimerId;
use pawl::{Component, ConnId, Context, Message};
use util::{TestServer, app};

/// Commands from its one client: "once", "periodic", "cancel-before".
#[derive(Default)]
struct Timed {
    client: Option<ConnId>,
    once: Option<TimerId>,
    periodic: Option<TimerId>,
    never: Option<TimerId>,
    report: Option<TimerId>,
    ticks: u32,
}

impl Component for Timed {
    fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
        self.client = Some(conn);
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, _: ConnId, message: Message<'_>) {
        match message {
            Message::Text("once") => self.once = Some(ctx.set_timer(Duration::from_millis(30))),
            Message::Text("periodic") => {
                self.periodic = Some(ctx.set_periodic(Duration::from_millis(10)));
            }
            Message::Text("cancel-before") => {
                let timer = ctx.set_timer(Duration::from_millis(20));
                self.never = Some(timer);
                let first = ctx.cancel_timer(timer);
                let second = ctx.cancel_timer(timer);
                let reply = format!("cancelled {first} {second}");
                let _ = ctx.send_text(self.client.expect("client"), &reply);
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    fn on_timer(&mut self, ctx: &mut Context<'_>, timer: TimerId) {
        let client = self.client.expect("client");
        if Some(timer) == self.never {
            let _ = ctx.send_text(client, "a cancelled timer fired");
        } else if Some(timer) == self.once {
            let _ = ctx.send_text(client, "once fired");
        } else if Some(timer) == self.periodic {
            self.ticks += 1;
            let _ = ctx.send_text(client, &format!("tick {}", self.ticks));
            if self.ticks == 3 {
                let cancelled = ctx.cancel_timer(timer);
                let _ = ctx.send_text(client, &format!("periodic cancelled {cancelled}"));
                // Had the cancel failed, ten more ticks would land first.
                self.report = Some(ctx.set_timer(Duration::from_millis(100)));
            }
        } else if Some(timer) == self.report {
            let _ = ctx.send_text(client, &format!("ticks {}", self.ticks));
        } else {
            let _ = ctx.send_text(client, &format!("unknown timer {timer:?}"));
        }
    }
}

fn server() -> TestServer {
    TestServer::start(|| {
        let mut app = app();
        app.route("/timed", Timed::default(), &["*"]);
        app
    })
}

#[test]
fn one_shot_timer_fires_once() {
    let server = server();
    let mut client = server.client("/timed");
    client.send_text("once");
    client.expect_text("once fired");
    // A round trip through another timer shows no second firing came first.
    client.send_text("cancel-before");
    client.expect_text("cancelled true false");
}

#[test]
fn periodic_timer_fires_until_cancelled() {
    let server = server();
    let mut client = server.client("/timed");
    client.send_text("periodic");
    client.expect_text("tick 1");
    client.expect_text("tick 2");
    client.expect_text("tick 3");
    client.expect_text("periodic cancelled true");
    client.expect_text("ticks 3");
}

#[test]
fn a_timer_cancelled_before_it_fires_never_fires() {
    let server = server();
    let mut client = server.client("/timed");
    client.send_text("cancel-before");
    client.expect_text("cancelled true false");
    // Outlast the cancelled timer's 20 ms with a 30 ms one: had the
    // cancelled one fired, its report would arrive first.
    client.send_text("once");
    client.expect_text("once fired");
}
