//! Component timers: `Context::set_timer` calls its closure with the
//! component once, `set_periodic` until cancelled, and a cancelled timer
//! never fires.

mod util;

use std::time::Duration;

use pawl::reactor::TimerId;
use pawl::{Component, ConnId, Context, Message};
use util::{TestServer, app};

/// Commands from a client: "once", "periodic", "cancel-before". Each
/// connection's session counts its periodic ticks; the periodic timer
/// reaches it through `Context::session`.
#[derive(Default)]
struct Timed {
    periodic: Option<TimerId>,
}

impl Component for Timed {
    type Session = u32;

    fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) -> u32 {
        0
    }

    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut u32,
        message: Message<'_>,
    ) {
        match message {
            Message::Text("once") => {
                ctx.set_timer(Duration::from_millis(30), move |_: &mut Timed, ctx| {
                    let _ = ctx.send(conn, "once fired");
                });
            }
            Message::Text("periodic") => {
                let timer =
                    ctx.set_periodic(Duration::from_millis(10), move |timed: &mut Timed, ctx| {
                        let Some(ticks) = ctx.session(conn) else {
                            panic!("no session for {conn} in a timer");
                        };
                        *ticks += 1;
                        let ticks = *ticks;
                        let _ = ctx.send(conn, &format!("tick {ticks}"));
                        if ticks == 3 {
                            let cancelled =
                                ctx.cancel_timer(timed.periodic.expect("periodic timer"));
                            let _ = ctx.send(conn, &format!("periodic cancelled {cancelled}"));
                            // Had the cancel failed, ten more ticks would land first.
                            ctx.set_timer(Duration::from_millis(100), move |_: &mut Timed, ctx| {
                                let ticks = ctx.session(conn).copied();
                                let _ =
                                    ctx.send(conn, &format!("ticks {}", ticks.unwrap_or(u32::MAX)));
                            });
                        }
                    });
                self.periodic = Some(timer);
            }
            Message::Text("cancel-before") => {
                let timer = ctx.set_timer(Duration::from_millis(20), move |_: &mut Timed, ctx| {
                    let _ = ctx.send(conn, "a cancelled timer fired");
                });
                let first = ctx.cancel_timer(timer);
                let second = ctx.cancel_timer(timer);
                let reply = format!("cancelled {first} {second}");
                let _ = ctx.send(conn, &reply);
            }
            other => panic!("unexpected {other:?}"),
        }
    }
}

fn server() -> TestServer {
    TestServer::start(|| app().route("/timed", Timed::default(), &["*"]))
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
