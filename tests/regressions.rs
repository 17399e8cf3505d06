//! One test per fixed bug, named after what went wrong.

mod util;

use pawl::{EchoServer, ServerConfig};
use util::{Raw, TestServer, app, upgrade_request};

/// max_request_size was only checked while the request was incomplete: an
/// oversized request that arrived whole in one read was upgraded.
#[test]
fn oversized_request_arriving_in_one_read_gets_431() {
    let server = TestServer::start(|| {
        app()
            .config(ServerConfig::default().max_request_size(1024))
            .route("/echo", EchoServer, &["*"])
    });
    let mut raw = Raw::connect(server.addr);
    let filler = format!("X-Filler: {}", "a".repeat(2000));
    raw.send(upgrade_request("/echo", &[&filler]).as_bytes());
    let (status, head) = raw.response();
    assert_eq!(status, 431, "{head}");
    raw.read_to_end();
}

/// `Context::close` sent any code it was given; codes RFC 6455 forbids on
/// the wire (below 1000, 1004, 1016-2999, 5000 and up) made a conformant
/// client fail the connection with a protocol error instead of closing.
/// (Then they were rewritten to 1000; now `close` takes a `CloseCode`,
/// which cannot hold them.)
#[test]
fn close_with_a_code_that_may_not_be_sent_cannot_be_written() {
    for code in [0, 999, 1004, 1005, 1006, 1015, 1016, 2999, 5000, 65535] {
        assert_eq!(pawl::CloseCode::new(code), None, "close {code}");
    }
    let (recorder, _events) = util::Recorder::new(true);
    let server = TestServer::start(move || app().route("/rec", recorder, &["*"]));
    for code in [1000, 1001, 1003, 1011, 3000, 4999] {
        let mut client = server.client("/rec");
        client.send_text(&format!("close {code} why"));
        assert_eq!(client.expect_close(code), "why");
    }
}

/// Pongs (like every control frame) were queued without the outbound limit:
/// a client that sent pings and never read made the server buffer pongs
/// without bound.
#[test]
fn a_ping_flood_from_a_client_that_never_reads_is_closed() {
    use std::io::Write;
    let (recorder, events) = util::Recorder::new(true);
    let server = TestServer::start(move || {
        app()
            .config(
                ServerConfig::default()
                    .backpressure_threshold(256 << 10)
                    .max_backpressure(1 << 20),
            )
            .route("/echo", recorder, &["*"])
    });
    let mut raw = Raw::upgrade(server.addr, "/echo");
    let id = events.opened();
    let ping = util::client_frame(true, 0x9, &[b'p'; 125]);
    let batch: Vec<u8> = ping
        .iter()
        .copied()
        .cycle()
        .take(ping.len() * 1000)
        .collect();
    // 256 MiB of pings would mean as much in pongs; the server must give up
    // on us long before (its 1 MiB limit plus what the kernel buffers).
    let mut sent = 0usize;
    let closed = loop {
        if raw.stream.write_all(&batch).is_err() {
            break true;
        }
        sent += batch.len();
        if sent > 256 << 20 {
            break false;
        }
    };
    assert!(closed, "still connected after {} MiB of pings", sent >> 20);
    assert_eq!(
        events.closed(id),
        pawl::CloseReason::Limit(pawl::Limit::Backpressure)
    );
}

/// `Server::local_addr` (and `handle`) borrowed the server a callback had
/// already borrowed: calling them on `ctx.server()` inside `on_message`
/// panicked, and the client got 1011. Now the server is a key: its address
/// is at hand, a synchronous look inside a callback says "busy" (`None`),
/// and work handed to it runs right after the callback instead of being
/// refused or dropped.
#[test]
fn server_handle_methods_work_inside_a_callback() {
    struct Reporter;
    impl pawl::Component for Reporter {
        type Session = ();
        fn on_open(&mut self, _: &mut pawl::Context<'_, Self>, _: pawl::ConnId) {}
        fn on_message(
            &mut self,
            ctx: &mut pawl::Context<'_, Self>,
            conn: pawl::ConnId,
            _: &mut (),
            _: pawl::Message<'_>,
        ) {
            let server = ctx.server();
            let busy = server.connection_count(ctx.event_loop()).is_none();
            let reply = format!("{} busy={busy}", server.local_addr().port());
            let _ = ctx.send(conn, &reply);
            let deferred = server.with(ctx.event_loop(), move |ctx| {
                let count = ctx.connections().count();
                let _ = ctx.send(conn, &format!("then, with {count} connection"));
            });
            assert!(deferred, "the server is there");
        }
    }
    let server = TestServer::start(|| app().route("/report", Reporter, &["*"]));
    let mut client = server.client("/report");
    client.send_text("where are you?");
    client.expect_text(&format!("{} busy=true", server.addr.port()));
    client.expect_text("then, with 1 connection");
}
