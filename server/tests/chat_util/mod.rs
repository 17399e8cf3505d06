//! Helpers for the chat's process-based tests: the `pawl` binary as a
//! child process on a free port, a real redis-server, and the chat's JSON
//! client, which lives with the in-process chat tests in chat/tests.

#![allow(dead_code)]

#[path = "../../../chat/tests/chat_util/mod.rs"]
mod client;
pub mod redis;

// A glob: each test binary uses a different part of it.
pub use client::*;

/// Flags that lift the chat's message and connection rate limits, for the
/// tests whose abuse is about memory, not rates.
pub const NO_RATE_LIMITS: [&str; 8] = [
    "--rate-limit",
    "1000000",
    "--rate-burst",
    "1000000",
    "--connect-rate",
    "1000000",
    "--connect-burst",
    "1000000",
];

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::json;

/// A running `pawl` binary; killed on drop.
pub struct Pawl {
    child: Child,
    /// Where it listens.
    pub addr: SocketAddr,
    log: Arc<Mutex<String>>,
}

impl Pawl {
    /// Starts `pawl --bind 127.0.0.1:0` with extra flags and waits for it to
    /// say where it listens.
    #[track_caller]
    pub fn start(extra: &[&str]) -> Pawl {
        Pawl::start_on("127.0.0.1:0", extra)
    }

    /// Starts `pawl --bind BIND` (an address a killed pawl listened on, to
    /// see clients reconnect).
    #[track_caller]
    pub fn start_on(bind: &str, extra: &[&str]) -> Pawl {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pawl"))
            .args(["--bind", bind, "--log-level", "info"])
            .args(extra)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pawl");
        let log = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = mpsc::channel();
        for output in [
            Box::new(child.stdout.take().expect("stdout")) as Box<dyn std::io::Read + Send>,
            Box::new(child.stderr.take().expect("stderr")),
        ] {
            let log = Arc::clone(&log);
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(output).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.split("pawl listening on ").nth(1) {
                        let addr = rest.split(':').take(2).collect::<Vec<_>>().join(":");
                        let _ = tx.send(addr);
                    }
                    let mut log = log.lock().expect("log");
                    log.push_str(&line);
                    log.push('\n');
                }
            });
        }
        let addr = match rx.recv_timeout(TIMEOUT) {
            Ok(addr) => addr.parse().expect("listen address"),
            Err(_) => {
                let _ = child.kill();
                panic!(
                    "pawl did not start listening; its output:\n{}",
                    log.lock().expect("log")
                );
            }
        };
        Pawl { child, addr, log }
    }

    /// Its process id (to read /proc/PID).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// What it logged so far.
    pub fn log(&self) -> String {
        self.log.lock().expect("log").clone()
    }

    /// Waits until its log has a line containing `needle`.
    #[track_caller]
    pub fn wait_log(&self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while !self.log().contains(needle) {
            assert!(
                Instant::now() < deadline,
                "pawl never logged {needle:?}; its log:\n{}",
                self.log()
            );
            // The log arrives through a pipe read by another thread.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Opens a client on `/chat?room=ROOM`.
    #[track_caller]
    pub fn client(&self, room: &str) -> Client {
        Client::room(self.addr, room)
    }

    /// Stops it gracefully (SIGTERM) and waits for it to exit.
    #[track_caller]
    pub fn terminate(mut self) {
        // SAFETY: kill(2) on our own child's pid; no memory is involved.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let deadline = Instant::now() + TIMEOUT;
        while self.child.try_wait().ok().flatten().is_none() {
            assert!(Instant::now() < deadline, "pawl did not stop on SIGTERM");
            // Waiting for another process to exit: nothing to block on
            // with a bound.
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Stops it (SIGKILL) and waits.
    pub fn kill(mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Drop for Pawl {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Says `text` in `client`'s room and waits for its own copy; returns the
/// message's id.
#[track_caller]
pub fn say(client: &mut Client, text: &str) -> u64 {
    client.send(json!({"type": "say", "text": text}));
    let message = client.expect("message");
    assert_eq!(message["text"], text);
    message["id"].as_u64().expect("id")
}

/// The next message `client` gets (presence events aside) is `text`, with
/// id `id`.
#[track_caller]
pub fn hears(client: &mut Client, id: u64, text: &str) {
    let message = client.expect("message");
    assert_eq!(
        (message["id"].as_u64(), &message["text"]),
        (Some(id), &json!(text))
    );
}
