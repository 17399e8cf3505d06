//! Running out of file descriptors (EMFILE): the `pawl` binary, its
//! open-files limit lowered, refuses the connections it cannot hold at once
//! (they are not left hanging in the backlog), keeps serving the rest, and
//! does not write a log line per refusal.

// The library's test helpers, shared rather than copied.
#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::Duration;

use util::{Client, Pawl, wait_for};

/// Descriptors for the child: ~10 for itself (stdio, epoll, waker, signal
/// pipe, listener, reserve), the rest for connections.
const MAX_FDS: u64 = 64;

#[test]
fn connections_past_the_descriptor_limit_are_refused_at_once() {
    let (pawl, log) = Pawl::start_logged(&[], Some(MAX_FDS));
    let mut accepted = Vec::new();
    let mut refused = 0;
    for _ in 0..100 {
        // A refused client's handshake fails (EOF or reset) instead of
        // waiting for a descriptor; try_connect's read timeout catches a hang.
        match Client::try_connect(pawl.addr, "/echo", &[]) {
            Ok(client) => accepted.push(client),
            Err(tungstenite::Error::Io(e)) if util::is_timeout(&e) => {
                panic!("a connection over the limit hung instead of being refused")
            }
            Err(_) => refused += 1,
        }
    }
    assert!(
        refused > 0,
        "all 100 connections fit under {MAX_FDS} descriptors?"
    );
    assert!(
        accepted.len() > 20,
        "only {} connections accepted",
        accepted.len()
    );
    // One line per power of two refusals, not one per refusal.
    let lines = log.until_quiet(Duration::from_millis(500));
    let refusals: Vec<&String> = lines
        .iter()
        .filter(|l| l.contains("out of file descriptors"))
        .collect();
    assert!(!refusals.is_empty(), "refusals are logged: {lines:?}");
    assert!(
        refusals.len() <= 8,
        "{refused} refusals wrote {} lines: {refusals:#?}",
        refusals.len()
    );
    for (i, client) in accepted.iter_mut().enumerate() {
        client.send_text(&format!("still served {i}"));
        client.expect_text(&format!("still served {i}"));
    }

    // Room frees up as clients leave.
    accepted.truncate(accepted.len() - 5);
    let mut newcomer = wait_for("a descriptor to free up", || {
        Client::try_connect(pawl.addr, "/echo", &[]).ok()
    });
    newcomer.send_text("in");
    newcomer.expect_text("in");
}
