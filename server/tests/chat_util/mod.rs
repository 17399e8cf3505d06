//! Helpers for the chat's integration tests (beside the library's
//! tests/util at the repository root): the `pawl` binary as a child process on a free port, and a
//! blocking WebSocket client with timeouts, so every expectation is bounded.

#![allow(dead_code)]

pub mod redis;

use std::io::{BufRead, BufReader};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long any single expectation waits.
pub const TIMEOUT: Duration = Duration::from_secs(10);

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
        Client::connect(self.addr, &format!("/chat?room={room}"))
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

/// A blocking WebSocket client whose reads time out.
pub struct Client {
    ws: WebSocket<TcpStream>,
}

/// Server messages about presence, skipped by [`Client::expect`] unless
/// asked for.
const PRESENCE: [&str; 3] = ["joined", "left", "profile"];

impl Client {
    /// Connects and upgrades.
    #[track_caller]
    pub fn connect(addr: SocketAddr, target: &str) -> Client {
        let stream = TcpStream::connect(addr).expect("connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let (ws, _) = tungstenite::client::client(format!("ws://{addr}{target}"), stream)
            .expect("WebSocket handshake");
        Client { ws }
    }

    /// Sends a JSON value as a text frame.
    #[track_caller]
    pub fn send(&mut self, value: Value) {
        self.send_text(&value.to_string());
    }

    /// Sends raw text.
    #[track_caller]
    pub fn send_text(&mut self, text: &str) {
        self.ws.send(Message::text(text)).expect("send");
    }

    /// Sends a binary frame.
    #[track_caller]
    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(Message::binary(bytes.to_vec()))
            .expect("send binary");
    }

    /// The next JSON message, whatever it is.
    #[track_caller]
    pub fn recv(&mut self) -> Value {
        loop {
            match self.ws.read() {
                Ok(Message::Text(text)) => {
                    return serde_json::from_str(&text).expect("server sent JSON");
                }
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => panic!("unexpected frame {other:?}"),
                Err(e) => panic!("no message within {TIMEOUT:?}: {e}"),
            }
        }
    }

    /// The next message of type `kind`, skipping presence updates of other
    /// kinds; any other message is a failure.
    #[track_caller]
    pub fn expect(&mut self, kind: &str) -> Value {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            assert!(Instant::now() < deadline, "no {kind} within {TIMEOUT:?}");
            let message = self.recv();
            let got = message["type"].as_str().unwrap_or_default();
            if got == kind {
                return message;
            }
            assert!(PRESENCE.contains(&got), "expected {kind}, got {message}");
        }
    }

    /// The next error; asserts its code.
    #[track_caller]
    pub fn expect_error(&mut self, code: &str) -> Value {
        let error = self.expect("error");
        assert_eq!(error["code"], code, "{error}");
        error
    }

    /// Joins as `name` and returns the welcome.
    #[track_caller]
    pub fn join(&mut self, name: &str) -> Value {
        self.send(json!({"type": "join", "name": name}));
        self.expect("welcome")
    }

    /// Joins with extra fields (token, since, profile) and returns the
    /// welcome.
    #[track_caller]
    pub fn join_with(&mut self, mut join: Value) -> Value {
        join["type"] = json!("join");
        self.send(join);
        self.expect("welcome")
    }

    /// Proves nothing else is queued for this client: a `history` request
    /// goes out and its answer must be the next non-presence message. The
    /// server answers in order, so anything sent to this client before the
    /// request was handled would arrive first.
    #[track_caller]
    pub fn expect_quiet(&mut self) {
        self.send(json!({"type": "history", "limit": 1}));
        self.expect("history");
    }

    /// Closes the connection and waits for the server's close frame.
    pub fn close(mut self) {
        let _ = self.ws.close(None);
        let deadline = Instant::now() + TIMEOUT;
        while Instant::now() < deadline {
            match self.ws.read() {
                Ok(_) => {}
                Err(_) => break,
            }
        }
    }
}

/// The `text`s of a list of messages.
pub fn texts(messages: &Value) -> Vec<String> {
    messages
        .as_array()
        .expect("array")
        .iter()
        .map(|m| m["text"].as_str().expect("text").to_owned())
        .collect()
}

/// The `name`s of a list of users.
pub fn names(users: &Value) -> Vec<String> {
    let mut names: Vec<String> = users
        .as_array()
        .expect("array")
        .iter()
        .map(|u| u["name"].as_str().expect("name").to_owned())
        .collect();
    names.sort();
    names
}
