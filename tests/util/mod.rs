//! Shared helpers for the integration tests: a server on a background
//! reactor thread, a blocking WebSocket client, raw TCP for malformed input,
//! a recording component, and `#[track_caller]` expectations that give up
//! after a timeout instead of hanging.
//!
//! Every wait here is bounded by [`TIMEOUT`]; nothing sleeps to synchronise.

// Each test binary uses a different subset of these helpers.
#![allow(dead_code)]

use std::io::{self, BufRead, Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::os::unix::process::CommandExt;
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc::{self, Receiver, RecvTimeoutError, Sender};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use pawl::reactor::{Handle, LoopHandle, Reactor};
use pawl::{App, CloseReason, Component, ConnId, Context, Message, OwnedMessage, ServerHandle};
use tungstenite::client::IntoClientRequest;
use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::protocol::{CloseFrame, WebSocket};

/// How long any single expectation waits before the test fails.
pub const TIMEOUT: Duration = Duration::from_secs(10);

// ---------------------------------------------------------------------------
// The server under test
// ---------------------------------------------------------------------------

/// An [`App`] served on 127.0.0.1, port 0, by a reactor on its own thread.
///
/// The reactor is `!Send`, so it and the app are built inside the thread;
/// the thread sends back the address and `Send` handles. Dropping the
/// `TestServer` stops the loop and joins the thread.
pub struct TestServer {
    /// Where the server listens.
    pub addr: SocketAddr,
    /// The reactor's cross-thread handle.
    pub reactor: Handle,
    /// The server's cross-thread handle.
    pub server: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl TestServer {
    /// Starts the app `build` returns (build it with [`App::new`] on
    /// `"127.0.0.1", 0`, or use [`app`]).
    #[track_caller]
    pub fn start(build: impl FnOnce() -> App + Send + 'static) -> TestServer {
        TestServer::start_with(build, |_, _| {})
    }

    /// Like [`TestServer::start`], then runs `setup` on the loop thread
    /// before the loop turns (to register sources or timers of its own, or
    /// to reach the server through its key).
    #[track_caller]
    pub fn start_with(
        build: impl FnOnce() -> App + Send + 'static,
        setup: impl FnOnce(&mut LoopHandle, &pawl::Server) + Send + 'static,
    ) -> TestServer {
        TestServer::spawn(move |_| build(), setup)
    }

    /// Starts the app `build` returns, building it on the loop thread with
    /// the loop at hand, for apps that register sources or timers of their
    /// own while they are put together (the chat's `setup::mount`).
    #[track_caller]
    pub fn start_on_loop(
        build: impl FnOnce(&mut LoopHandle) -> App + Send + 'static,
    ) -> TestServer {
        TestServer::spawn(build, |_, _| {})
    }

    #[track_caller]
    fn spawn(
        build: impl FnOnce(&mut LoopHandle) -> App + Send + 'static,
        setup: impl FnOnce(&mut LoopHandle, &pawl::Server) + Send + 'static,
    ) -> TestServer {
        let (tx, rx) = mpsc::channel();
        let thread = std::thread::Builder::new()
            .name("pawl-reactor".into())
            .spawn(move || {
                let mut reactor = Reactor::new().expect("reactor");
                let server = build(&mut reactor).listen(&mut reactor).expect("listen");
                setup(&mut reactor, &server);
                let handles = (
                    server.local_addr(),
                    reactor.handle(),
                    server.handle(&reactor),
                );
                tx.send(handles).expect("test thread waits");
                reactor.run().expect("reactor run");
                server.close_all_now(&mut reactor);
            })
            .expect("spawn reactor thread");
        let (addr, reactor, server) = rx
            .recv_timeout(TIMEOUT)
            .expect("server thread did not start");
        TestServer {
            addr,
            reactor,
            server,
            thread: Some(thread),
        }
    }

    /// `ws://addr/path`.
    pub fn url(&self, path: &str) -> String {
        format!("ws://{}{}", self.addr, path)
    }

    /// Connects a WebSocket client to `path`.
    #[track_caller]
    pub fn client(&self, path: &str) -> Client {
        Client::connect(self.addr, path)
    }

    /// Stops the loop gracefully and waits for its thread; panics if the
    /// loop thread panicked.
    #[track_caller]
    pub fn stop(mut self) {
        self.stop_and_join();
    }

    #[track_caller]
    fn stop_and_join(&mut self) {
        let Some(thread) = self.thread.take() else {
            return;
        };
        let _ = self.reactor.stop();
        let deadline = Instant::now() + TIMEOUT;
        while !thread.is_finished() {
            assert!(
                Instant::now() < deadline,
                "server thread did not stop within {TIMEOUT:?}"
            );
            std::thread::sleep(Duration::from_millis(5));
        }
        if thread.join().is_err() && !std::thread::panicking() {
            panic!("server thread panicked");
        }
    }
}

impl Drop for TestServer {
    fn drop(&mut self) {
        if std::thread::panicking() {
            // Do not wait for a server a failed test may have wedged.
            let _ = self.reactor.stop();
            return;
        }
        self.stop_and_join();
    }
}

/// An app on 127.0.0.1, port 0.
pub fn app() -> App {
    App::new("127.0.0.1", 0)
}

// ---------------------------------------------------------------------------
// A component that reports what it sees
// ---------------------------------------------------------------------------

/// What a [`Recorder`] saw, in order.
#[derive(Debug, Clone, PartialEq)]
pub enum Seen {
    /// `on_open`.
    Open(ConnId),
    /// `on_message`.
    Message(ConnId, OwnedMessage),
    /// `on_error`, as its display text.
    Error(ConnId, String),
    /// `on_close`.
    Close(ConnId, CloseReason),
    /// `on_drain`.
    Drain(ConnId),
}

/// A component that echoes (when asked to) and reports every callback on a
/// channel, so the test thread can assert on what the server saw.
///
/// The text message `close CODE REASON` makes it close that connection
/// with `CODE` and `REASON` instead of echoing.
pub struct Recorder {
    events: Sender<Seen>,
    echo: bool,
}

impl Recorder {
    /// A recorder and the receiving end of its reports.
    pub fn new(echo: bool) -> (Recorder, Events) {
        let (tx, rx) = mpsc::channel();
        (Recorder { events: tx, echo }, Events { rx })
    }
}

impl Component for Recorder {
    type Session = ();

    fn on_open(&mut self, _: &mut Context<'_, Self>, conn: ConnId) {
        let _ = self.events.send(Seen::Open(conn));
    }
    fn on_message(
        &mut self,
        ctx: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        message: Message<'_>,
    ) {
        if let Message::Text(command) = message {
            if let Some(args) = command.strip_prefix("close ") {
                let (code, reason) = args.split_once(' ').unwrap_or((args, ""));
                let code = code.parse().expect("close code");
                let code = pawl::CloseCode::new(code).expect("a code a server may send");
                ctx.close(conn, code, reason);
            } else if self.echo {
                let _ = ctx.send(conn, message);
            }
        } else if self.echo {
            let _ = ctx.send(conn, message);
        }
        let _ = self.events.send(Seen::Message(conn, message.to_owned()));
    }
    fn on_error(
        &mut self,
        _: &mut Context<'_, Self>,
        conn: ConnId,
        _: &mut (),
        error: &pawl::Error,
    ) {
        let _ = self.events.send(Seen::Error(conn, error.to_string()));
    }
    fn on_close(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: (), reason: &CloseReason) {
        let _ = self.events.send(Seen::Close(conn, reason.clone()));
    }
    fn on_drain(&mut self, _: &mut Context<'_, Self>, conn: ConnId, _: &mut ()) {
        let _ = self.events.send(Seen::Drain(conn));
    }
}

/// The receiving end of a [`Recorder`] (or any component reporting [`Seen`]).
pub struct Events {
    pub rx: Receiver<Seen>,
}

impl Events {
    /// The next event, failing the test after [`TIMEOUT`].
    #[track_caller]
    pub fn next(&self) -> Seen {
        match self.rx.recv_timeout(TIMEOUT) {
            Ok(seen) => seen,
            Err(RecvTimeoutError::Timeout) => panic!("no server event within {TIMEOUT:?}"),
            Err(RecvTimeoutError::Disconnected) => panic!("the component is gone"),
        }
    }

    /// Skips events until `pick` accepts one.
    #[track_caller]
    pub fn find<T>(&self, what: &str, mut pick: impl FnMut(&Seen) -> Option<T>) -> T {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.rx.recv_timeout(left) {
                Ok(seen) => {
                    if let Some(found) = pick(&seen) {
                        return found;
                    }
                }
                Err(_) => panic!("no {what} within {TIMEOUT:?}"),
            }
        }
    }

    /// The next `on_open`'s id.
    #[track_caller]
    pub fn opened(&self) -> ConnId {
        self.find("on_open", |seen| match seen {
            Seen::Open(id) => Some(*id),
            _ => None,
        })
    }

    /// The reason of the next `on_close` for `conn`.
    #[track_caller]
    pub fn closed(&self, conn: ConnId) -> CloseReason {
        self.find(&format!("on_close for {conn}"), |seen| match seen {
            Seen::Close(id, reason) if *id == conn => Some(reason.clone()),
            _ => None,
        })
    }

    /// Fails if an event arrives within `wait`; for "nothing more happens".
    #[track_caller]
    pub fn expect_none(&self, wait: Duration) {
        if let Ok(seen) = self.rx.recv_timeout(wait) {
            panic!("unexpected server event: {seen:?}");
        }
    }
}

// ---------------------------------------------------------------------------
// A blocking WebSocket client
// ---------------------------------------------------------------------------

/// What a client received.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Received {
    Text(String),
    Binary(Vec<u8>),
    /// A close frame: its code (1005 for none) and reason.
    Close(u16, String),
}

/// A blocking tungstenite client over a std `TcpStream` with a read timeout.
pub struct Client {
    pub ws: WebSocket<TcpStream>,
}

impl Client {
    /// Connects and upgrades, failing the test on any error.
    #[track_caller]
    pub fn connect(addr: SocketAddr, path: &str) -> Client {
        match Client::try_connect(addr, path, &[]) {
            Ok(client) => client,
            Err(e) => panic!("connecting to ws://{addr}{path}: {e}"),
        }
    }

    /// Connects and upgrades with extra request headers.
    pub fn try_connect(
        addr: SocketAddr,
        path: &str,
        headers: &[(&'static str, &str)],
    ) -> Result<Client, tungstenite::Error> {
        let mut request = format!("ws://{addr}{path}").into_client_request()?;
        for (name, value) in headers {
            request
                .headers_mut()
                .insert(*name, value.parse().expect("header value"));
        }
        let stream = TcpStream::connect(addr)?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.set_write_timeout(Some(TIMEOUT))?;
        stream.set_nodelay(true)?;
        match tungstenite::client::client(request, stream) {
            Ok((ws, _response)) => Ok(Client { ws }),
            Err(tungstenite::HandshakeError::Failure(e)) => Err(e),
            Err(tungstenite::HandshakeError::Interrupted(_)) => {
                Err(io::Error::from(io::ErrorKind::WouldBlock).into())
            }
        }
    }

    /// Sends a text message.
    #[track_caller]
    pub fn send_text(&mut self, text: &str) {
        self.ws
            .send(tungstenite::Message::text(text))
            .expect("send text");
    }

    /// Sends a binary message.
    #[track_caller]
    pub fn send_binary(&mut self, bytes: &[u8]) {
        self.ws
            .send(tungstenite::Message::binary(bytes.to_vec()))
            .expect("send binary");
    }

    /// Sends one raw frame (masked by tungstenite), for fragmentation.
    #[track_caller]
    pub fn send_frame(&mut self, frame: tungstenite::protocol::frame::Frame) {
        self.ws
            .send(tungstenite::Message::Frame(frame))
            .expect("send frame");
    }

    /// Starts the close handshake with `code` and `reason`.
    #[track_caller]
    pub fn close(&mut self, code: u16, reason: &str) {
        self.ws
            .close(Some(CloseFrame {
                code: CloseCode::from(code),
                reason: reason.into(),
            }))
            .expect("send close");
    }

    /// The next data message or close frame (pings are answered and
    /// skipped), failing after [`TIMEOUT`].
    #[track_caller]
    pub fn recv(&mut self) -> Received {
        match self.try_recv() {
            Ok(received) => received,
            Err(e) => panic!("client read: {e}"),
        }
    }

    /// The next message if one comes within `wait`, else `None`; for
    /// polling where a message may or may not be on its way.
    #[track_caller]
    pub fn recv_within(&mut self, wait: Duration) -> Option<Received> {
        self.ws
            .get_mut()
            .set_read_timeout(Some(wait))
            .expect("read timeout");
        let received = match self.try_recv() {
            Ok(received) => Some(received),
            // tungstenite keeps what it read of a frame: reading resumes.
            Err(tungstenite::Error::Io(e)) if is_timeout(&e) => None,
            Err(e) => panic!("client read: {e}"),
        };
        self.ws
            .get_mut()
            .set_read_timeout(Some(TIMEOUT))
            .expect("read timeout");
        received
    }

    /// Like [`Client::recv`], returning the error instead of failing.
    pub fn try_recv(&mut self) -> Result<Received, tungstenite::Error> {
        loop {
            match self.ws.read()? {
                tungstenite::Message::Text(text) => return Ok(Received::Text(text.to_string())),
                tungstenite::Message::Binary(bytes) => return Ok(Received::Binary(bytes.to_vec())),
                tungstenite::Message::Close(frame) => {
                    return Ok(match frame {
                        Some(f) => Received::Close(u16::from(f.code), f.reason.to_string()),
                        None => Received::Close(1005, String::new()),
                    });
                }
                tungstenite::Message::Ping(_)
                | tungstenite::Message::Pong(_)
                | tungstenite::Message::Frame(_) => {}
            }
        }
    }

    /// Expects a text message equal to `want`.
    #[track_caller]
    pub fn expect_text(&mut self, want: &str) {
        match self.recv() {
            Received::Text(text) => assert_eq!(text, want, "text message"),
            other => panic!("expected text {want:?}, got {other:?}"),
        }
    }

    /// Expects a text message and returns it.
    #[track_caller]
    pub fn text(&mut self) -> String {
        match self.recv() {
            Received::Text(text) => text,
            other => panic!("expected a text message, got {other:?}"),
        }
    }

    /// Expects a binary message equal to `want` (compared without printing
    /// megabytes on failure).
    #[track_caller]
    pub fn expect_binary(&mut self, want: &[u8]) {
        match self.recv() {
            Received::Binary(bytes) => {
                assert_eq!(bytes.len(), want.len(), "binary message length");
                assert!(bytes == want, "binary message content differs");
            }
            other => panic!(
                "expected {} binary bytes, got {:?}",
                want.len(),
                brief(&other)
            ),
        }
    }

    /// Expects a close frame with `code` (any data before it fails the
    /// test) and returns its reason.
    #[track_caller]
    pub fn expect_close(&mut self, code: u16) -> String {
        match self.recv() {
            Received::Close(got, reason) => {
                assert_eq!(got, code, "close code (reason {reason:?})");
                reason
            }
            other => panic!("expected close {code}, got {:?}", brief(&other)),
        }
    }

    /// Expects the connection to end: a close frame, then EOF.
    #[track_caller]
    pub fn expect_closed_after(&mut self, code: u16) {
        self.expect_close(code);
        self.expect_end();
    }

    /// Expects no more messages: the stream ends (after any close reply).
    #[track_caller]
    pub fn expect_end(&mut self) {
        loop {
            match self.ws.read() {
                Ok(tungstenite::Message::Close(_)) => {}
                Ok(other) => panic!("expected the end, got {:?}", other),
                Err(tungstenite::Error::ConnectionClosed | tungstenite::Error::AlreadyClosed) => {
                    return;
                }
                Err(tungstenite::Error::Io(e)) if is_timeout(&e) => {
                    panic!("connection still open after {TIMEOUT:?}")
                }
                // Reset or EOF without a close handshake: ended all the same.
                Err(tungstenite::Error::Io(_) | tungstenite::Error::Protocol(_)) => return,
                Err(e) => panic!("expected the end, got {e}"),
            }
        }
    }
}

fn brief(received: &Received) -> String {
    match received {
        Received::Text(t) if t.len() > 80 => format!("Text({} bytes)", t.len()),
        Received::Binary(b) => format!("Binary({} bytes)", b.len()),
        other => format!("{other:?}"),
    }
}

/// True for the errors a std socket read timeout produces.
pub fn is_timeout(e: &io::Error) -> bool {
    matches!(
        e.kind(),
        io::ErrorKind::WouldBlock | io::ErrorKind::TimedOut
    )
}

// ---------------------------------------------------------------------------
// Raw TCP, for malformed or incomplete input
// ---------------------------------------------------------------------------

/// A plain TCP connection with read timeouts.
pub struct Raw {
    pub stream: TcpStream,
}

impl Raw {
    /// Connects, failing the test on error.
    #[track_caller]
    pub fn connect(addr: SocketAddr) -> Raw {
        let stream = TcpStream::connect(addr).expect("tcp connect");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        stream.set_nodelay(true).expect("nodelay");
        Raw { stream }
    }

    /// Writes all of `bytes`.
    #[track_caller]
    pub fn send(&mut self, bytes: &[u8]) {
        self.stream.write_all(bytes).expect("raw write");
    }

    /// Reads an HTTP response head (up to the blank line) and returns its
    /// status code and the whole head.
    #[track_caller]
    pub fn response(&mut self) -> (u16, String) {
        let mut head = Vec::new();
        let mut byte = [0u8; 1];
        while !head.ends_with(b"\r\n\r\n") {
            match self.stream.read(&mut byte) {
                Ok(0) => panic!(
                    "connection ended inside the response head: {:?}",
                    String::from_utf8_lossy(&head)
                ),
                Ok(_) => head.push(byte[0]),
                Err(e) => panic!("reading the response head: {e}"),
            }
            assert!(head.len() < 64 << 10, "response head too long");
        }
        let head = String::from_utf8(head).expect("ascii head");
        let status = head
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {head:?}"));
        (status, head)
    }

    /// Reads until the peer closes; returns what arrived. Fails if the
    /// connection is still open after [`TIMEOUT`].
    #[track_caller]
    pub fn read_to_end(&mut self) -> Vec<u8> {
        let mut all = Vec::new();
        let mut buf = [0u8; 4096];
        loop {
            match self.stream.read(&mut buf) {
                Ok(0) => return all,
                Ok(n) => all.extend_from_slice(&buf[..n]),
                Err(e) if is_timeout(&e) => {
                    panic!("connection still open after {TIMEOUT:?}")
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // A reset ends it too.
                Err(_) => return all,
            }
        }
    }

    /// Reads a whole HTTP response, until the peer closes (as it does after
    /// a plain HTTP answer); returns its status code and its body.
    #[track_caller]
    pub fn response_to_end(&mut self) -> (u16, String) {
        let text = String::from_utf8_lossy(&self.read_to_end()).into_owned();
        let status = text
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or_else(|| panic!("no status in {text:?}"));
        let body = text
            .split_once("\r\n\r\n")
            .map_or("", |(_, b)| b)
            .to_owned();
        (status, body)
    }

    /// Completes a WebSocket upgrade on `path` by hand (the connection then
    /// carries frames only this test writes).
    #[track_caller]
    pub fn upgrade(addr: SocketAddr, path: &str) -> Raw {
        let mut raw = Raw::connect(addr);
        raw.send(upgrade_request(path, &[]).as_bytes());
        let (status, head) = raw.response();
        assert_eq!(status, 101, "upgrade refused: {head}");
        raw
    }

    /// Half-closes our side.
    pub fn shutdown_write(&self) {
        let _ = self.stream.shutdown(Shutdown::Write);
    }
}

/// A valid upgrade request for `path`, with extra header lines.
pub fn upgrade_request(path: &str, extra: &[&str]) -> String {
    let mut request = format!(
        "GET {path} HTTP/1.1\r\n\
         Host: 127.0.0.1\r\n\
         Upgrade: websocket\r\n\
         Connection: Upgrade\r\n\
         Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
         Sec-WebSocket-Version: 13\r\n"
    );
    for line in extra {
        request.push_str(line);
        request.push_str("\r\n");
    }
    request.push_str("\r\n");
    request
}

#[path = "../support/client_frame.rs"]
mod support_frame;

/// A masked client frame (`fin`, `opcode`, payload) in wire format, written
/// by tungstenite so the tests do not trust the library's own encoder.
pub fn client_frame(fin: bool, opcode: u8, payload: &[u8]) -> Vec<u8> {
    let first = if fin { 0x80 } else { 0 } | (opcode & 0x0f);
    support_frame::masked_frame(first, payload, [0x37, 0xfa, 0x21, 0x3d])
}

/// Parses one server frame from the front of `bytes`: (opcode, payload,
/// bytes used), or `None` if incomplete.
pub fn server_frame(bytes: &[u8]) -> Option<(u8, Vec<u8>, usize)> {
    if bytes.len() < 2 {
        return None;
    }
    assert_eq!(bytes[1] & 0x80, 0, "server frames are not masked");
    let (len, start) = match bytes[1] & 0x7f {
        126 if bytes.len() >= 4 => (u16::from_be_bytes([bytes[2], bytes[3]]) as usize, 4),
        127 if bytes.len() >= 10 => (
            u64::from_be_bytes(bytes[2..10].try_into().expect("8 bytes")) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if bytes.len() < start + len {
        return None;
    }
    Some((
        bytes[0] & 0x0f,
        bytes[start..start + len].to_vec(),
        start + len,
    ))
}

/// The close code in a close frame's payload (1005 when it has none).
pub fn close_code_of(payload: &[u8]) -> u16 {
    if payload.len() >= 2 {
        u16::from_be_bytes([payload[0], payload[1]])
    } else {
        1005
    }
}

// ---------------------------------------------------------------------------
// The pawl binary as a child process
// ---------------------------------------------------------------------------

/// The `pawl` binary. Cargo names it only to the tests of `pawl-server`,
/// the package that owns it (server/tests/ include this file); the
/// library's own tests compile this helper but never start it.
#[allow(
    clippy::option_env_unwrap,
    reason = "a root test that reached this is a test in the wrong package"
)]
fn pawl_binary() -> &'static str {
    option_env!("CARGO_BIN_EXE_pawl")
        .expect("only the tests in server/tests/ can start the pawl binary")
}

/// A running `pawl` binary, killed if the test fails before it exits.
pub struct Pawl {
    pub child: Child,
    pub addr: SocketAddr,
}

impl Pawl {
    /// Starts `pawl` with `args` on a free loopback port, its open-files
    /// limit lowered to `max_fds` if given. `--bind` needs a real port, so
    /// take one the kernel picked for a throwaway listener, and try again
    /// with another if something grabbed it in between.
    #[track_caller]
    pub fn start(args: &[&str], max_fds: Option<u64>) -> Pawl {
        Pawl::spawn(args, max_fds, Stdio::null)
    }

    /// Like [`Pawl::start`], with its log (at `--log-level warn`) captured.
    #[track_caller]
    pub fn start_logged(args: &[&str], max_fds: Option<u64>) -> (Pawl, LogLines) {
        let mut pawl = Pawl::spawn(args, max_fds, Stdio::piped);
        let log = LogLines::capture(&mut pawl.child);
        (pawl, log)
    }

    #[track_caller]
    fn spawn(args: &[&str], max_fds: Option<u64>, output: fn() -> Stdio) -> Pawl {
        for _ in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let mut command = Command::new(pawl_binary());
            command
                .args(["--bind", &addr.to_string(), "--log-level", "warn"])
                .args(args)
                .stdin(Stdio::null())
                .stdout(output())
                .stderr(output());
            if let Some(max) = max_fds {
                // SAFETY: setrlimit is async-signal-safe, as pre_exec requires.
                unsafe {
                    command.pre_exec(move || {
                        let limit = libc::rlimit {
                            rlim_cur: max,
                            rlim_max: max,
                        };
                        if libc::setrlimit(libc::RLIMIT_NOFILE, &limit) != 0 {
                            return Err(io::Error::last_os_error());
                        }
                        Ok(())
                    });
                }
            }
            let mut child = command.spawn().expect("spawn pawl");
            let deadline = Instant::now() + TIMEOUT;
            loop {
                if child.try_wait().expect("try_wait").is_some() {
                    break; // exited: the port was taken; pick another
                }
                if TcpStream::connect(addr).is_ok() {
                    return Pawl { child, addr };
                }
                assert!(Instant::now() < deadline, "pawl did not start listening");
                std::thread::sleep(Duration::from_millis(10));
            }
        }
        panic!("pawl did not start on any of five free ports");
    }

    /// Sends `signal` to the process.
    pub fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    /// Waits (bounded) for the process to exit.
    #[track_caller]
    pub fn wait(&mut self) -> ExitStatus {
        wait_for("pawl to exit", || self.child.try_wait().expect("try_wait"))
    }
}

impl Drop for Pawl {
    fn drop(&mut self) {
        if self.child.try_wait().ok().flatten().is_none() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

// ---------------------------------------------------------------------------
// Waiting and measuring
// ---------------------------------------------------------------------------

/// Polls `check` every few milliseconds until it returns `Some`, failing the
/// test with `what` after [`TIMEOUT`].
#[track_caller]
pub fn wait_for<T>(what: &str, mut check: impl FnMut() -> Option<T>) -> T {
    let deadline = Instant::now() + TIMEOUT;
    loop {
        if let Some(value) = check() {
            return value;
        }
        assert!(Instant::now() < deadline, "timed out waiting for {what}");
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// A `/proc/<pid>/status` field in KiB (`VmRSS`, `VmHWM`).
#[track_caller]
pub fn proc_status_kib(pid: &str, field: &str) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).expect("read status");
    status
        .lines()
        .find_map(|line| line.strip_prefix(field)?.strip_prefix(':'))
        .and_then(|rest| rest.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap_or_else(|| panic!("no {field} in /proc/{pid}/status"))
}

// ---------------------------------------------------------------------------
// A child's log
// ---------------------------------------------------------------------------

/// The lines a child process writes to stdout and stderr, read on threads
/// of their own so the child never blocks on a full pipe.
pub struct LogLines {
    lines: Receiver<String>,
}

impl LogLines {
    /// Takes the child's piped stdout and stderr and starts reading them.
    pub fn capture(child: &mut Child) -> LogLines {
        let (tx, lines) = mpsc::channel();
        let outputs: [Option<Box<dyn Read + Send>>; 2] = [
            child.stdout.take().map(|s| Box::new(s) as _),
            child.stderr.take().map(|s| Box::new(s) as _),
        ];
        for out in outputs.into_iter().flatten() {
            let tx = tx.clone();
            std::thread::spawn(move || {
                for line in io::BufReader::new(out).lines().map_while(Result::ok) {
                    if tx.send(line).is_err() {
                        return;
                    }
                }
            });
        }
        LogLines { lines }
    }

    /// Every line that comes until none has come for `quiet`.
    pub fn until_quiet(&self, quiet: Duration) -> Vec<String> {
        let deadline = Instant::now() + TIMEOUT;
        let mut lines = Vec::new();
        while Instant::now() < deadline {
            match self.lines.recv_timeout(quiet) {
                Ok(line) => lines.push(line),
                Err(_) => break,
            }
        }
        lines
    }

    /// Waits (bounded) for a line matching `want`; panics with every line
    /// seen meanwhile.
    #[track_caller]
    pub fn expect(&self, want: impl Fn(&str) -> bool) -> String {
        let deadline = Instant::now() + TIMEOUT;
        let mut seen = Vec::new();
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.lines.recv_timeout(left) {
                Ok(line) if want(&line) => return line,
                Ok(line) => seen.push(line),
                Err(_) => break,
            }
        }
        panic!("no such log line; saw:\n{}", seen.join("\n"));
    }
}
