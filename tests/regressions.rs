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
