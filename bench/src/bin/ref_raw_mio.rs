//! The floor for issue 4's benchmarks: a raw mio TCP server that does the
//! least a WebSocket echo or broadcast can do.
//!
//! ```text
//! cargo run --release -p pawl-bench --bin ref_raw_mio -- --bind 127.0.0.1:9001
//! ```
//!
//! It reads the HTTP request up to `\r\n\r\n`, answers with a canned 101
//! (the accept key is the only computed part), then on `/echo` rewrites each
//! client frame as a server frame, and on `/chat` encodes each text message
//! once and writes those same bytes to every `/chat` socket. No fragments,
//! no extensions, no UTF-8 check, no limits: it is a yardstick, not a server.

use std::io::{self, Read, Write};
use std::net::SocketAddr;

use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use slab::Slab;

const LISTENER: Token = Token(usize::MAX);
/// Shared read buffer: per-connection memory stays at the leftover of a
/// partial frame, so the idle figure is the kernel's, not ours.
const SCRATCH: usize = 64 * 1024;

#[derive(PartialEq)]
enum Route {
    Handshake,
    Echo,
    Chat,
}

struct Conn {
    stream: TcpStream,
    route: Route,
    /// Bytes of a partial request or frame carried to the next read.
    pending: Vec<u8>,
    /// Output the socket did not take yet.
    out: Vec<u8>,
    /// Close after `out` drains.
    closing: bool,
    /// Position in `Server::chat` while on `/chat`.
    chat_idx: usize,
}

struct Server {
    conns: Slab<Conn>,
    /// Keys of `/chat` connections, for the broadcast loop.
    chat: Vec<usize>,
    /// Replies to one read, reused across reads.
    reply: Vec<u8>,
}

fn main() -> io::Result<()> {
    let mut bind: SocketAddr = "127.0.0.1:9001".parse().unwrap();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => {
                let value = args.next().expect("--bind needs an address");
                bind = value.parse().expect("--bind: not a socket address");
            }
            _ => panic!("unknown argument {arg}; usage: ref_raw_mio --bind ADDR"),
        }
    }
    let mut poll = Poll::new()?;
    let mut listener = TcpListener::bind(bind)?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    eprintln!("ref_raw_mio listening on {}", listener.local_addr()?);
    let mut server = Server {
        conns: Slab::new(),
        chat: Vec::new(),
        reply: Vec::new(),
    };
    let mut events = Events::with_capacity(1024);
    let mut scratch = vec![0u8; SCRATCH];
    loop {
        if let Err(e) = poll.poll(&mut events, None) {
            if e.kind() == io::ErrorKind::Interrupted {
                continue;
            }
            return Err(e);
        }
        for event in events.iter() {
            if event.token() == LISTENER {
                server.accept(&poll, &mut listener)?;
                continue;
            }
            let key = event.token().0;
            if !server.conns.contains(key) {
                continue;
            }
            let mut alive = true;
            if event.is_writable() {
                alive = server.flush(key);
            }
            if alive && (event.is_readable() || event.is_read_closed()) {
                alive = server.on_readable(key, &mut scratch);
            }
            if !alive {
                server.remove(key);
            }
        }
    }
}

impl Server {
    fn accept(&mut self, poll: &Poll, listener: &mut TcpListener) -> io::Result<()> {
        loop {
            match listener.accept() {
                Ok((mut stream, _)) => {
                    let _ = stream.set_nodelay(true);
                    let entry = self.conns.vacant_entry();
                    poll.registry().register(
                        &mut stream,
                        Token(entry.key()),
                        Interest::READABLE | Interest::WRITABLE,
                    )?;
                    entry.insert(Conn {
                        stream,
                        route: Route::Handshake,
                        pending: Vec::new(),
                        out: Vec::new(),
                        closing: false,
                        chat_idx: 0,
                    });
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                // Out of descriptors and the like: keep serving the others.
                Err(e) => {
                    eprintln!("accept: {e}");
                    return Ok(());
                }
            }
        }
    }

    fn remove(&mut self, key: usize) {
        let conn = self.conns.remove(key);
        if conn.route == Route::Chat {
            self.chat.swap_remove(conn.chat_idx);
            if let Some(&moved) = self.chat.get(conn.chat_idx) {
                self.conns[moved].chat_idx = conn.chat_idx;
            }
        }
    }

    /// Reads until WouldBlock; returns false when the connection is done.
    fn on_readable(&mut self, key: usize, scratch: &mut [u8]) -> bool {
        let mut broadcasts: Vec<Vec<u8>> = Vec::new();
        let alive = loop {
            let conn = &mut self.conns[key];
            let n = match conn.stream.read(scratch) {
                Ok(0) => break false,
                Ok(n) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break true,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(_) => break false,
            };
            let mut data = std::mem::take(&mut conn.pending);
            let input: &mut [u8] = if data.is_empty() {
                &mut scratch[..n]
            } else {
                data.extend_from_slice(&scratch[..n]);
                &mut data
            };
            let mut used = 0;
            if conn.route == Route::Handshake {
                let Some(n) = conn.handshake(input) else {
                    break false;
                };
                used = n;
                if conn.route == Route::Chat {
                    conn.chat_idx = self.chat.len();
                    self.chat.push(key);
                }
            }
            if conn.route != Route::Handshake {
                let Some(n) = conn.frames(&mut input[used..], &mut self.reply, &mut broadcasts)
                else {
                    break false;
                };
                used += n;
                // All replies of one read go out in one write.
                if !self.reply.is_empty() {
                    conn.send(&self.reply);
                    self.reply.clear();
                }
            }
            conn.pending = input[used..].to_vec();
        };
        for frame in &broadcasts {
            for i in 0..self.chat.len() {
                let peer = self.chat[i];
                self.conns[peer].send(frame);
            }
        }
        alive && self.flush(key)
    }

    /// Writes pending output; false when the connection is done.
    fn flush(&mut self, key: usize) -> bool {
        let conn = &mut self.conns[key];
        if !conn.out.is_empty() {
            conn.send(&[]);
        }
        !(conn.closing && conn.out.is_empty())
    }
}

impl Conn {
    /// Writes `bytes` behind any queued output, queueing what the socket
    /// does not take. Write errors surface as EOF on the next read.
    fn send(&mut self, bytes: &[u8]) {
        if self.out.is_empty() {
            match self.stream.write(bytes) {
                Ok(n) if n == bytes.len() => {}
                Ok(n) => self.out.extend_from_slice(&bytes[n..]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                    self.out.extend_from_slice(bytes)
                }
                Err(_) => self.closing = true,
            }
            return;
        }
        self.out.extend_from_slice(bytes);
        loop {
            match self.stream.write(&self.out) {
                Ok(n) => {
                    self.out.drain(..n);
                    if self.out.is_empty() {
                        self.out = Vec::new();
                        return;
                    }
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(_) => {
                    self.out.clear();
                    self.closing = true;
                    return;
                }
            }
        }
    }

    /// Consumes a complete request and answers it; `None` refuses it.
    fn handshake(&mut self, input: &mut [u8]) -> Option<usize> {
        let Some(end) = input.windows(4).position(|w| w == b"\r\n\r\n") else {
            return (input.len() < 8192).then_some(0);
        };
        let mut headers = [httparse::EMPTY_HEADER; 32];
        let mut req = httparse::Request::new(&mut headers);
        req.parse(&input[..end + 4]).ok()?;
        let key = req
            .headers
            .iter()
            .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))?
            .value;
        self.route = match req.path? {
            "/echo" => Route::Echo,
            "/chat" => Route::Chat,
            _ => return None,
        };
        let accept = tungstenite::handshake::derive_accept_key(key);
        let response = format!(
            "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
             Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
        );
        self.send(response.as_bytes());
        Some(end + 4)
    }

    /// Handles every complete frame in `input`, appending replies to
    /// `reply`; returns the bytes used, or `None` to close now.
    fn frames(
        &mut self,
        input: &mut [u8],
        reply: &mut Vec<u8>,
        broadcasts: &mut Vec<Vec<u8>>,
    ) -> Option<usize> {
        let mut at = 0;
        while let Some((opcode, start, end)) = parse_masked(&mut input[at..]) {
            let payload = &input[at + start..at + end];
            at += end;
            match opcode {
                0x1 | 0x2 if self.route == Route::Echo => encode(reply, opcode, payload),
                0x1 if self.route == Route::Chat => {
                    let mut frame = Vec::new();
                    encode(&mut frame, opcode, payload);
                    broadcasts.push(frame);
                }
                0x2 => {}
                0x9 => encode(reply, 0xA, payload),
                0xA => {}
                0x8 => {
                    encode(reply, 0x8, payload);
                    self.closing = true;
                    return Some(at);
                }
                _ => return None,
            }
        }
        Some(at)
    }
}

/// Parses one masked client frame with FIN set, unmasking in place.
/// Returns (opcode, payload start, payload end) or None if incomplete.
/// A malformed frame closes the connection via the opcode arm above.
fn parse_masked(buf: &mut [u8]) -> Option<(u8, usize, usize)> {
    if buf.len() < 2 {
        return None;
    }
    // Any frame without FIN, or unmasked, maps to an invalid opcode.
    let opcode = if buf[0] & 0x80 == 0 || buf[1] & 0x80 == 0 {
        0xF
    } else {
        buf[0] & 0x0F
    };
    let (len, mut at) = match buf[1] & 0x7F {
        126 if buf.len() >= 4 => (u16::from_be_bytes([buf[2], buf[3]]) as usize, 4),
        127 if buf.len() >= 10 => (
            u64::from_be_bytes(buf[2..10].try_into().unwrap()) as usize,
            10,
        ),
        126 | 127 => return None,
        n => (n as usize, 2),
    };
    if buf.len() < at + 4 + len {
        return None;
    }
    let mask = [buf[at], buf[at + 1], buf[at + 2], buf[at + 3]];
    at += 4;
    apply_mask(&mut buf[at..at + len], mask);
    Some((opcode, at, at + len))
}

/// The same word-at-a-time unmasking pawl uses: the floor differs from pawl
/// in everything but this.
use pawl::frame::mask::apply_mask;

/// Appends an unmasked server frame with FIN set to `out`.
fn encode(out: &mut Vec<u8>, opcode: u8, payload: &[u8]) {
    out.reserve(payload.len() + 10);
    out.push(0x80 | opcode);
    match payload.len() {
        n if n < 126 => out.push(n as u8),
        n if n <= 0xFFFF => {
            out.push(126);
            out.extend_from_slice(&(n as u16).to_be_bytes());
        }
        n => {
            out.push(127);
            out.extend_from_slice(&(n as u64).to_be_bytes());
        }
    }
    out.extend_from_slice(payload);
}
