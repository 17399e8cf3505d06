//! Issue 12 item 6 against the real `pawl` binary: its resident memory
//! (VmRSS from /proc) under the chat abuse chat/tests/budget.rs drives
//! (5,000 join-and-leave cycles, 800 DMs of 4 KB, 50 full rooms) with
//! `--chat-memory` at 4 MiB, run twice with fresh names. The first round
//! grows the process by the budget and the allocator's slack; the second,
//! whose state is just as big, must fit in the memory the first one left
//! behind. Measured on the debug binary over five runs: 10.3 to 10.6 MB
//! before, 17.3 to 17.7 after round one, 17.8 to 18.1 after round two.
//! With `--chat-memory` at 1 GiB (in effect no budget): 10.3, 37.9, 64.8
//! MB, some 27 MB a round, and neither assertion holds.
//!
//! ```text
//! cargo test -p pawl-server --test chat_memory_rss -- --nocapture
//! ```

mod chat_util;
#[path = "../../tests/util/mod.rs"]
mod util;

use std::time::{Duration, Instant};

use chat_util::{Client, NO_RATE_LIMITS, Pawl};
use serde_json::json;
use util::proc_status_kib;

/// The `--chat-memory` the abuse runs against.
const BUDGET: usize = 4 << 20;

/// Most round two may grow pawl's VmRSS: less than the 4 MiB budget.
/// Round two's state is as big as round one's (some 28 MB by the chat's
/// count: 20 MB of backlogs, 3.2 MB of DMs, 4.5 MB of members); kept, it
/// would grow the process by as much again. Forgotten, its rooms and
/// members reuse what round one's left free.
const ROUND_TWO_GROWTH: u64 = 4 << 20;

/// Most both rounds may grow it: the 4 MiB budget, what may arrive between
/// two of its checks, and the allocator's slack, under three budgets,
/// where the abuse without one adds over 50 MB.
const TOTAL_GROWTH: u64 = 12 << 20;

/// The process's resident set now and at its peak (VmRSS, VmHWM), in bytes.
fn rss(pid: u32) -> (u64, u64) {
    let pid = pid.to_string();
    let bytes = |field| proc_status_kib(&pid, field) * 1024;
    (bytes("VmRSS"), bytes("VmHWM"))
}

fn mb(bytes: u64) -> f64 {
    bytes as f64 / (1 << 20) as f64
}

/// Reads VmRSS once the loop has handled everything `alice` was sent and
/// the budget has been checked since (every 100 ms).
fn settle(pawl: &Pawl, alice: &mut Client, phase: &str, started: Instant) -> u64 {
    alice.expect_quiet();
    std::thread::sleep(Duration::from_millis(300));
    let (rss, peak) = rss(pawl.pid());
    eprintln!(
        "{phase}: VmRSS {:.1} MB (peak {:.1} MB) after {:.1} s",
        mb(rss),
        mb(peak),
        started.elapsed().as_secs_f64()
    );
    rss
}

/// chat/tests/budget.rs's abuse, its names prefixed with `round`.
fn abuse(pawl: &Pawl, alice: &mut Client, round: &str) {
    let text = "x".repeat(4000);
    let started = Instant::now();

    // 5,000 join-and-leave cycles, each a new name in the lobby.
    for i in 0..5_000 {
        let mut user = pawl.client("lobby");
        user.join(&format!("{round}-user{i}"));
        user.close();
        if i % 1_000 == 999 {
            // Reads the presence updates and answers the server's pings.
            alice.expect_quiet();
        }
    }
    eprintln!("{round}: cycles {:.1} s", started.elapsed().as_secs_f64());

    // 800 DMs of 4 KB, each to someone who just left.
    for i in 0..800 {
        let name = format!("{round}-dm{i}");
        let mut user = pawl.client("lobby");
        user.join(&name);
        user.close();
        alice.send(json!({"type": "dm", "to": name, "text": text}));
        alice.expect("dm");
    }
    eprintln!("{round}: dms {:.1} s", started.elapsed().as_secs_f64());

    // 50 full rooms: 100 messages of 4 KB each, said and left.
    for room in 0..50 {
        let mut user = pawl.client(&format!("{round}-room{room}"));
        user.join("filler");
        for _ in 0..100 {
            user.send(json!({"type": "say", "text": text}));
            user.expect("message");
        }
        user.close();
    }
    eprintln!("{round}: rooms {:.1} s", started.elapsed().as_secs_f64());
}

#[test]
fn the_chat_budget_bounds_the_binarys_resident_memory() {
    let budget = BUDGET.to_string();
    let pawl = Pawl::start(&[&["--chat-memory", &budget][..], &NO_RATE_LIMITS].concat());
    let started = Instant::now();
    let mut alice = pawl.client("lobby");
    alice.join("alice");
    let before = settle(&pawl, &mut alice, "before", started);
    abuse(&pawl, &mut alice, "r1");
    let one = settle(&pawl, &mut alice, "after round 1", started);
    abuse(&pawl, &mut alice, "r2");
    let two = settle(&pawl, &mut alice, "after round 2", started);
    println!(
        "--chat-memory {:.1} MB: pawl's VmRSS {:.1} MB before, {:.1} MB after round 1 \
         (+{:.1}), {:.1} MB after round 2 (+{:.1})",
        mb(BUDGET as u64),
        mb(before),
        mb(one),
        mb(one.saturating_sub(before)),
        mb(two),
        mb(two.saturating_sub(one)),
    );
    let forgot = pawl
        .log()
        .lines()
        .rfind(|l| l.contains("over its budget"))
        .map(str::to_owned)
        .unwrap_or_else(|| "the budget never forgot anything".to_owned());
    eprintln!("last budget check: {forgot}");

    assert!(
        two.saturating_sub(one) < ROUND_TWO_GROWTH,
        "round two grew pawl's VmRSS from {:.1} to {:.1} MB; {forgot}",
        mb(one),
        mb(two)
    );
    assert!(
        two.saturating_sub(before) < TOTAL_GROWTH,
        "pawl's VmRSS grew from {:.1} to {:.1} MB; {forgot}",
        mb(before),
        mb(two)
    );
}
