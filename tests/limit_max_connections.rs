//! max_connections: over it a new connection is accepted and closed at once
//! (no upgrade, no busy loop), and there is room again once one leaves.

mod util;

use pawl::{EchoServer, ServerConfig};
use util::{Client, Raw, TestServer, app, upgrade_request, wait_for};

const MAX: usize = 3;

#[test]
fn connections_over_the_limit_are_refused_at_once() {
    let server = TestServer::start(|| {
        app()
            .config(ServerConfig::default().max_connections(MAX))
            .route("/echo", EchoServer, &["*"])
    });
    let mut clients: Vec<_> = (0..MAX).map(|_| server.client("/echo")).collect();

    for _ in 0..3 {
        let mut over = Raw::connect(server.addr);
        // The write may already fail if the server closed first.
        let _ =
            std::io::Write::write_all(&mut over.stream, upgrade_request("/echo", &[]).as_bytes());
        let answer = over.read_to_end();
        assert!(answer.is_empty(), "a refused connection got {answer:?}");
    }
    // The ones inside are unaffected.
    for client in &mut clients {
        client.send_text("inside");
        client.expect_text("inside");
    }

    // One leaves; a new client gets in (once the server has seen it go).
    let mut leaving = clients.pop().expect("a client");
    leaving.close(1000, "");
    leaving.expect_closed_after(1000);
    let mut newcomer = wait_for("room for a new connection", || {
        Client::try_connect(server.addr, "/echo", &[]).ok()
    });
    newcomer.send_text("in");
    newcomer.expect_text("in");
}
