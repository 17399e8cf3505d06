//! Graceful stop of the `pawl` binary: on SIGTERM every client gets close
//! 1001, a client still in its handshake is dropped, and the process exits 0.

// The library's test helpers, shared rather than copied.
#[path = "../../tests/util/mod.rs"]
mod util;

use util::{Client, Pawl, Raw, Received};

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut pawl = Pawl::start(&[], None);
    let mut clients: Vec<Client> = (0..20)
        .map(|i| {
            let path = if i % 2 == 0 { "/echo" } else { "/broadcast" };
            let mut client = Client::connect(pawl.addr, path);
            client.send_text(&format!("hello {i}"));
            client.expect_text(&format!("hello {i}"));
            client
        })
        .collect();
    let mut half = Raw::connect(pawl.addr);
    half.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n");

    pawl.signal(libc::SIGTERM);

    for client in &mut clients {
        // Chat clients may first get the later chat clients' hellos.
        let close = loop {
            match client.recv() {
                Received::Text(text) if text.starts_with("hello ") => {}
                other => break other,
            }
        };
        assert!(
            matches!(close, Received::Close(1001, _)),
            "expected close 1001, got {close:?}"
        );
        // Reading on sends tungstenite's close reply; then the server ends
        // the connection.
        client.expect_end();
    }
    half.read_to_end();
    let status = pawl.wait();
    assert!(status.success(), "pawl exited with {status}");
}

#[test]
fn sigterm_with_no_clients_exits_0() {
    let mut pawl = Pawl::start(&[], None);
    pawl.signal(libc::SIGTERM);
    let status = pawl.wait();
    assert!(status.success(), "pawl exited with {status}");
}

#[test]
fn a_client_that_never_answers_the_close_does_not_keep_pawl_alive() {
    let mut pawl = Pawl::start(&["--close-timeout", "200ms"], None);
    let mut silent = Raw::upgrade(pawl.addr, "/echo");
    pawl.signal(libc::SIGTERM);
    // We get the 1001 close frame and never answer it; the server drops us
    // after the close timeout and exits.
    let bytes = silent.read_to_end();
    let (opcode, payload, _) = util::server_frame(&bytes).expect("a close frame");
    assert_eq!((opcode, util::close_code_of(&payload)), (8, 1001));
    let status = pawl.wait();
    assert!(status.success(), "pawl exited with {status}");
}
