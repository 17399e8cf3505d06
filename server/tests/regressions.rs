//! One test per fixed bug of the `pawl` binary, named after what went
//! wrong (the library's are in the root's tests/regressions.rs).

// The library's test helpers, shared rather than copied.
#[path = "../../tests/util/mod.rs"]
mod util;

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
