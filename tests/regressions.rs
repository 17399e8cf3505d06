//! One test per fixed bug, named after what went wrong.

mod util;

use pawl::{EchoServer, ServerConfig};
use util::{Raw, TestServer, app, upgrade_request};

/// max_request_size was only checked while the request was incomplete: an
/// oversized request that arrived whole in one read was upgraded.
#[test]
fn oversized_request_arriving_in_one_read_gets_431() {
    let server = TestServer::start(|| {
        let mut app = app();
        app.config(ServerConfig::default().max_request_size(1024));
        app.route("/echo", EchoServer, &["*"]);
        app
    });
    let mut raw = Raw::connect(server.addr);
    let filler = format!("X-Filler: {}", "a".repeat(2000));
    raw.send(upgrade_request("/echo", &[&filler]).as_bytes());
    let (status, head) = raw.response();
    assert_eq!(status, 431, "{head}");
    raw.read_to_end();
}

/// At the open-files limit, accept(2) reports EMFILE even with an empty
/// backlog; the server took that for a pending connection, spent its reserve
/// descriptor on an accept that found nothing, and looped there for good:
/// 100% CPU, and the connection that took the last descriptor (like every
/// other) was never served again.
#[test]
fn reaching_the_descriptor_limit_does_not_stall_the_loop() {
    let pawl = util::Pawl::start(&[], Some(48));
    let mut clients = Vec::new();
    loop {
        match util::Client::try_connect(pawl.addr, "/echo", &[]) {
            Ok(client) => clients.push(client),
            Err(tungstenite::Error::Io(e)) if util::is_timeout(&e) => {
                panic!("the loop stalled after {} connections", clients.len())
            }
            Err(_) => break, // refused: the limit is reached
        }
        assert!(
            clients.len() < 48,
            "never refused under a 48-descriptor limit"
        );
    }
    let last = clients.last_mut().expect("some connections fit");
    last.send_text("served");
    last.expect_text("served");
}
