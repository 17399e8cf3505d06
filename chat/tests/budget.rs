//! The chat's memory stays within its budget under issue 12's abuse
//! (5,000 join-and-leave cycles, 800 DMs of 4 KB, 50 full rooms), by the
//! chat's own count, and it still serves; one address opening connections
//! too fast is refused with 1013. The chat in process, without Redis, real
//! WebSocket clients on loopback.

#[path = "../../tests/util/mod.rs"]
mod util;

mod chat_util;

use std::sync::mpsc;

use chat_util::Client;
use pawl::{Origins, Route};
use pawl_chat::setup::{self, StoreConfig};
use pawl_chat::{Chat, ChatConfig};
use serde_json::json;
use util::{TIMEOUT, TestServer, wait_for};

/// The budget the abuse runs against: far below what it would take.
const BUDGET: usize = 2 << 20;

struct ChatServer {
    server: TestServer,
    chat: Route<Chat>,
}

impl ChatServer {
    fn start(config: ChatConfig) -> ChatServer {
        let (tx, rx) = mpsc::channel();
        let server = TestServer::start_on_loop(move |lp| {
            let store = StoreConfig::default();
            let (app, chat) = setup::mount(util::app(), lp, config, &store, &Origins::any())
                .expect("mount the chat");
            tx.send(chat).expect("the test waits for the route");
            app
        });
        let chat = rx.recv_timeout(TIMEOUT).expect("the chat's route");
        ChatServer { server, chat }
    }

    fn client(&self, room: &str) -> Client {
        Client::room(self.server.addr, room)
    }

    /// The chat's own count of what it holds.
    fn memory(&self) -> usize {
        let (tx, rx) = mpsc::channel();
        self.server
            .server
            .with(self.chat, move |chat, _| {
                let _ = tx.send(chat.memory());
            })
            .expect("schedule");
        rx.recv_timeout(TIMEOUT).expect("the chat answers")
    }

    /// Waits for the budget's next check to bring memory under it; returns
    /// what it was when first asked.
    #[track_caller]
    fn settles_within_budget(&self, phase: &str) -> usize {
        let before = self.memory();
        eprintln!("{phase}: {before} bytes by the chat's count (budget {BUDGET})");
        wait_for(&format!("memory within the budget after {phase}"), || {
            (self.memory() <= BUDGET).then_some(())
        });
        before
    }
}

fn abuse_config() -> ChatConfig {
    ChatConfig {
        memory: BUDGET,
        // The abuse comes from one test: let it through the per-connection
        // and per-address rates, so only the budget holds it.
        rate: 1e6,
        burst: 1_000_000,
        connect_rate: 1e6,
        connect_burst: 1_000_000,
        ..ChatConfig::default()
    }
}

#[test]
fn memory_stays_within_the_budget_under_abuse() {
    let server = ChatServer::start(abuse_config());
    let mut alice = server.client("lobby");
    alice.join("alice");
    let text = "x".repeat(4000);

    // 5,000 join-and-leave cycles, each a new name in the lobby.
    let mut peak = 0;
    for i in 0..5_000 {
        let mut user = server.client("lobby");
        user.join(&format!("user{i}"));
        user.close();
        if i % 1_000 == 999 {
            peak = peak.max(server.settles_within_budget("join-and-leave cycles"));
        }
    }

    // 800 DMs of 4 KB, each to someone who just left.
    for i in 0..800 {
        let mut user = server.client("lobby");
        user.join(&format!("dm{i}"));
        user.close();
        alice.send(json!({"type": "dm", "to": format!("dm{i}"), "text": text}));
        alice.expect("dm");
        if i % 200 == 199 {
            peak = peak.max(server.settles_within_budget("DMs"));
        }
    }

    // 50 full rooms: 100 messages of 4 KB each, said and left.
    for room in 0..50 {
        let mut user = server.client(&format!("room{room}"));
        user.join("filler");
        for _ in 0..100 {
            user.send(json!({"type": "say", "text": text}));
            user.expect("message");
        }
        user.close();
        if room % 10 == 9 {
            peak = peak.max(server.settles_within_budget("full rooms"));
        }
    }

    // Without the budget this would be over 20 MB; with it, what a check
    // found before it ran stays within one check's worth of abuse.
    assert!(peak < 2 * BUDGET, "peak {peak} bytes");
    // The chat still serves: alice is here, and a new room fills.
    alice.send(json!({"type": "say", "text": "still here"}));
    assert_eq!(alice.expect("message")["text"], "still here");
    let mut bob = server.client("room0");
    let welcome = bob.join("bob");
    assert_eq!(welcome["users"][0]["name"], "bob");
}

#[test]
fn one_address_opening_connections_too_fast_is_refused() {
    let server = ChatServer::start(ChatConfig {
        connect_rate: 0.001,
        connect_burst: 3,
        ..ChatConfig::default()
    });
    let mut kept: Vec<Client> = (0..3).map(|_| server.client("lobby")).collect();
    let mut refused = server.client("lobby");
    let close = refused.recv_close();
    assert_eq!(close, Some(1013), "the fourth connection in a burst");
    // The ones let in work.
    kept[0].join("alice");
}
