//! The chat's JSON protocol from the client side, shared by every chat
//! test: the in-process ones here and the process-based ones in
//! server/tests (which include this file with `#[path]`). A blocking
//! WebSocket client with timeouts, so every expectation is bounded.

#![allow(dead_code)]

use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use serde_json::{Value, json};
use tungstenite::{Message, WebSocket};

/// How long any single expectation waits.
pub const TIMEOUT: Duration = Duration::from_secs(10);

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

    /// Connects to `/chat?room=ROOM`.
    #[track_caller]
    pub fn room(addr: SocketAddr, room: &str) -> Client {
        Client::connect(addr, &format!("/chat?room={room}"))
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

    /// Reads until the server closes; the close code, if it sent one.
    #[track_caller]
    pub fn recv_close(&mut self) -> Option<u16> {
        loop {
            match self.ws.read() {
                Ok(Message::Close(frame)) => return frame.map(|f| u16::from(f.code)),
                Ok(Message::Ping(_) | Message::Pong(_)) => {}
                Ok(other) => panic!("expected a close, got {other:?}"),
                Err(e) => panic!("no close within {TIMEOUT:?}: {e}"),
            }
        }
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
