//! `--workers N` without `--redis`: the supervisor relays topics between
//! its workers itself.
//!
//! Each worker's app gets a broker ([`pawl::App::broker`]) as with
//! `--redis`, but the URL is this relay's: a thread of the supervisor that
//! listens on a loopback port and speaks the few commands of Redis'
//! pub/sub that pawl's broker sends (`AUTH`, `SUBSCRIBE`, `UNSUBSCRIBE`,
//! `PUBLISH`; `PING` and `SELECT` for good measure). So the workers' side
//! is the broker the library already has, with its rules: a worker listens
//! to a topic only while it has a subscriber to it, a worker that loses
//! the relay keeps delivering locally, counts the loss and reconnects.
//!
//! The relay keeps nothing: a message goes to the workers listening to its
//! topic, in the order each publisher sent them, and is forgotten. What a
//! worker has not read yet is bounded ([`MAX_QUEUED`] beyond one
//! message); past it, messages to that worker are dropped, counted and
//! logged (at most once, like Redis pub/sub). The port takes only clients
//! that know a password drawn from the kernel's randomness, which the
//! workers get in their environment; anything else gets `-NOAUTH`.

use std::collections::{BTreeSet, HashMap};
use std::io::{self, Read, Write};
use std::net::SocketAddr;

use log::{debug, info, warn};
use mio::net::{TcpListener, TcpStream};
use mio::{Events, Interest, Poll, Token};
use pawl::redis::resp::{Decoder, Value, encode_command};
use slab::Slab;

use crate::publish::constant_time_eq;

/// Unsent bytes to one worker above which messages to it are dropped
/// (one message is always taken, however large).
pub const MAX_QUEUED: usize = 64 << 20;

const LISTENER: Token = Token(usize::MAX);

/// Starts the relay on a thread; returns the `redis://` URL the workers
/// connect to. `max_message` bounds one published message.
pub fn start(max_message: usize) -> io::Result<String> {
    start_with(max_message, MAX_QUEUED)
}

fn start_with(max_message: usize, max_queued: usize) -> io::Result<String> {
    let mut listener = TcpListener::bind(SocketAddr::from(([127, 0, 0, 1], 0)))?;
    let addr = listener.local_addr()?;
    let password = random_hex()?;
    let poll = Poll::new()?;
    poll.registry()
        .register(&mut listener, LISTENER, Interest::READABLE)?;
    let mut relay = Relay {
        poll,
        listener,
        password: password.clone().into_bytes(),
        peers: Slab::new(),
        channels: HashMap::new(),
        max_queued,
        decoder: {
            let mut decoder = Decoder::default();
            // A PUBLISH carries one message, its topic and a node id.
            decoder.max_bulk = max_message.saturating_add(64 << 10);
            decoder.max_array = 1 << 16;
            decoder.max_depth = 2;
            decoder.max_line = 1 << 10;
            decoder
        },
    };
    std::thread::Builder::new()
        .name("pawl-relay".into())
        .spawn(move || {
            if let Err(e) = relay.run() {
                log::error!("relay: stopped: {e}; topics no longer cross workers");
            }
        })?;
    info!("topics cross the workers through the relay at {addr}");
    Ok(format!("redis://:{password}@{addr}"))
}

/// 32 hex digits from /dev/urandom.
fn random_hex() -> io::Result<String> {
    let mut bytes = [0u8; 16];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}

struct Relay {
    poll: Poll,
    listener: TcpListener,
    password: Vec<u8>,
    peers: Slab<Peer>,
    /// Channel to the peers listening to it.
    channels: HashMap<Vec<u8>, BTreeSet<usize>>,
    /// [`MAX_QUEUED`], but for tests.
    max_queued: usize,
    /// The limits every peer's decoder starts with.
    decoder: Decoder,
}

/// One connection from a worker (each worker has two: one publishes, one
/// listens).
struct Peer {
    stream: TcpStream,
    addr: SocketAddr,
    input: Vec<u8>,
    decoder: Decoder,
    out: Vec<u8>,
    /// `out[..written]` is sent.
    written: usize,
    authed: bool,
    channels: BTreeSet<Vec<u8>>,
    /// Messages to this peer dropped past [`MAX_QUEUED`].
    dropped: u64,
}

impl Relay {
    fn run(&mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut buf = vec![0u8; 64 << 10];
        loop {
            if let Err(e) = self.poll.poll(&mut events, None) {
                if e.kind() == io::ErrorKind::Interrupted {
                    continue;
                }
                return Err(e);
            }
            for event in &events {
                if event.token() == LISTENER {
                    self.accept()?;
                    continue;
                }
                let key = event.token().0;
                if event.is_readable() || event.is_read_closed() || event.is_error() {
                    self.read(key, &mut buf);
                }
                if event.is_writable() {
                    self.flush(key);
                }
            }
        }
    }

    fn accept(&mut self) -> io::Result<()> {
        loop {
            let (mut stream, addr) = match self.listener.accept() {
                Ok(accepted) => accepted,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return Ok(()),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => {
                    // Out of descriptors and the like: the workers retry.
                    warn!("relay: accept failed: {e}");
                    return Ok(());
                }
            };
            let entry = self.peers.vacant_entry();
            self.poll.registry().register(
                &mut stream,
                Token(entry.key()),
                Interest::READABLE | Interest::WRITABLE,
            )?;
            let _ = stream.set_nodelay(true);
            debug!("relay: worker connection from {addr}");
            entry.insert(Peer {
                stream,
                addr,
                input: Vec::new(),
                decoder: self.decoder.clone(),
                out: Vec::new(),
                written: 0,
                authed: false,
                channels: BTreeSet::new(),
                dropped: 0,
            });
        }
    }

    fn read(&mut self, key: usize, buf: &mut [u8]) {
        loop {
            let Some(peer) = self.peers.get_mut(key) else {
                return;
            };
            match peer.stream.read(buf) {
                Ok(0) => return self.drop_peer(key, "closed"),
                Ok(n) => peer.input.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.drop_peer(key, &e.to_string()),
            }
        }
        let mut used = 0;
        loop {
            let Some(peer) = self.peers.get_mut(key) else {
                return;
            };
            // Each peer's decoder goes on from where its last read stopped.
            let command = match peer.decoder.decode(&peer.input[used..]) {
                Ok(Some((command, n))) => {
                    used += n;
                    command
                }
                Ok(None) => break,
                Err(e) => return self.drop_peer(key, &format!("protocol error: {e}")),
            };
            self.command(key, command);
        }
        if let Some(peer) = self.peers.get_mut(key) {
            peer.input.drain(..used);
        }
        // Publishes queued output on other peers too.
        let keys: Vec<usize> = self.peers.iter().map(|(k, _)| k).collect();
        for key in keys {
            self.flush(key);
        }
    }

    fn command(&mut self, key: usize, command: Value) {
        let args: Vec<Vec<u8>> = match command {
            Value::Array(items) => items.into_iter().filter_map(Value::into_bytes).collect(),
            _ => Vec::new(),
        };
        let Some((name, args)) = args.split_first() else {
            return self.reply(key, b"-ERR expected a command\r\n");
        };
        let name = name.to_ascii_uppercase();
        let authed = self.peers.get(key).is_some_and(|p| p.authed);
        match (name.as_slice(), authed) {
            (b"AUTH", _) => {
                let given = args.last().map_or(&[][..], Vec::as_slice);
                if constant_time_eq(given, &self.password) {
                    if let Some(peer) = self.peers.get_mut(key) {
                        peer.authed = true;
                    }
                    self.reply(key, b"+OK\r\n");
                } else {
                    warn!("relay: a client with a wrong password; closed");
                    self.reply(key, b"-WRONGPASS invalid password\r\n");
                    self.flush(key);
                    self.drop_peer(key, "wrong password");
                }
            }
            (_, false) => self.reply(key, b"-NOAUTH Authentication required.\r\n"),
            (b"PING", true) => self.reply(key, b"+PONG\r\n"),
            (b"SELECT", true) => self.reply(key, b"+OK\r\n"),
            (b"SUBSCRIBE", true) => {
                for channel in args {
                    self.channels
                        .entry(channel.clone())
                        .or_default()
                        .insert(key);
                    let count = self.peers.get_mut(key).map_or(0, |peer| {
                        peer.channels.insert(channel.clone());
                        peer.channels.len()
                    });
                    self.push(key, b"subscribe", channel, count);
                }
            }
            (b"UNSUBSCRIBE", true) => {
                let channels: Vec<Vec<u8>> = if args.is_empty() {
                    self.peers
                        .get(key)
                        .map(|p| p.channels.iter().cloned().collect())
                        .unwrap_or_default()
                } else {
                    args.to_vec()
                };
                for channel in &channels {
                    self.leave(key, channel);
                    let count = self.peers.get_mut(key).map_or(0, |peer| {
                        peer.channels.remove(channel);
                        peer.channels.len()
                    });
                    self.push(key, b"unsubscribe", channel, count);
                }
            }
            (b"PUBLISH", true) if args.len() == 2 => {
                let reached = self.publish(&args[0], &args[1]);
                self.reply(key, format!(":{reached}\r\n").as_bytes());
            }
            _ => {
                let what = String::from_utf8_lossy(&name);
                self.reply(
                    key,
                    format!("-ERR the relay does not serve {what}\r\n").as_bytes(),
                );
            }
        }
    }

    /// Sends `payload` to every peer listening to `channel`; how many.
    fn publish(&mut self, channel: &[u8], payload: &[u8]) -> usize {
        let Some(listeners) = self.channels.get(channel) else {
            return 0;
        };
        let mut message = Vec::with_capacity(payload.len() + channel.len() + 40);
        encode_command(&mut message, &[b"message", channel, payload]);
        let mut reached = 0;
        for &key in listeners {
            let Some(peer) = self.peers.get_mut(key) else {
                continue;
            };
            let unsent = peer.out.len() - peer.written;
            if unsent > 0 && unsent + message.len() > self.max_queued {
                peer.dropped += 1;
                if peer.dropped.is_power_of_two() {
                    warn!(
                        "relay: the worker at {} is not reading; {} messages to it dropped so far",
                        peer.addr, peer.dropped
                    );
                }
                continue;
            }
            peer.out.extend_from_slice(&message);
            reached += 1;
        }
        reached
    }

    fn leave(&mut self, key: usize, channel: &[u8]) {
        if let Some(listeners) = self.channels.get_mut(channel) {
            listeners.remove(&key);
            if listeners.is_empty() {
                self.channels.remove(channel);
            }
        }
    }

    /// A pub/sub confirmation: `[kind, channel, count]`.
    fn push(&mut self, key: usize, kind: &[u8], channel: &[u8], count: usize) {
        if let Some(peer) = self.peers.get_mut(key) {
            peer.out.extend_from_slice(b"*3\r\n");
            for part in [kind, channel] {
                peer.out
                    .extend_from_slice(format!("${}\r\n", part.len()).as_bytes());
                peer.out.extend_from_slice(part);
                peer.out.extend_from_slice(b"\r\n");
            }
            peer.out
                .extend_from_slice(format!(":{count}\r\n").as_bytes());
        }
    }

    fn reply(&mut self, key: usize, bytes: &[u8]) {
        if let Some(peer) = self.peers.get_mut(key) {
            peer.out.extend_from_slice(bytes);
        }
    }

    fn flush(&mut self, key: usize) {
        let Some(peer) = self.peers.get_mut(key) else {
            return;
        };
        while peer.written < peer.out.len() {
            match peer.stream.write(&peer.out[peer.written..]) {
                Ok(0) => return self.drop_peer(key, "write returned 0"),
                Ok(n) => peer.written += n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return self.drop_peer(key, &e.to_string()),
            }
        }
        if peer.written == peer.out.len() {
            peer.out.clear();
            peer.written = 0;
            if peer.out.capacity() > 1 << 20 {
                peer.out = Vec::new();
            }
        } else if peer.written > peer.out.len() / 2 {
            peer.out.drain(..peer.written);
            peer.written = 0;
        }
    }

    fn drop_peer(&mut self, key: usize, why: &str) {
        let Some(mut peer) = self.peers.try_remove(key) else {
            return;
        };
        debug!("relay: worker connection from {} gone: {why}", peer.addr);
        for channel in std::mem::take(&mut peer.channels) {
            self.leave(key, &channel);
        }
        if peer.dropped > 0 {
            warn!(
                "relay: {} messages to the worker at {} were dropped in all",
                peer.dropped, peer.addr
            );
        }
        let _ = self.poll.registry().deregister(&mut peer.stream);
    }
}

#[cfg(test)]
mod tests {
    use std::io::{Read, Write};
    use std::net::TcpStream;
    use std::time::Duration;

    use pawl::redis::RedisUrl;
    use pawl::redis::resp::{Value, encode_command};

    /// A blocking RESP client over a real socket.
    struct Conn {
        stream: TcpStream,
        input: Vec<u8>,
    }

    impl Conn {
        fn connect(url: &str) -> Conn {
            let url = RedisUrl::parse(url).expect("a url");
            let stream = TcpStream::connect((url.host.as_str(), url.port)).expect("connect");
            stream
                .set_read_timeout(Some(Duration::from_secs(10)))
                .expect("timeout");
            Conn {
                stream,
                input: Vec::new(),
            }
        }

        fn authed(url: &str) -> Conn {
            let password = RedisUrl::parse(url)
                .expect("a url")
                .password
                .expect("a password");
            let mut conn = Conn::connect(url);
            conn.send(&[b"AUTH", password.as_bytes()]);
            assert_eq!(conn.next(), Value::Simple("OK".into()));
            conn
        }

        fn send(&mut self, args: &[&[u8]]) {
            let mut out = Vec::new();
            encode_command(&mut out, args);
            self.stream.write_all(&out).expect("write");
        }

        fn next(&mut self) -> Value {
            let mut buf = [0u8; 64 << 10];
            loop {
                if let Some((value, used)) = pawl::redis::resp::decode(&self.input).expect("resp") {
                    self.input.drain(..used);
                    return value;
                }
                let n = self.stream.read(&mut buf).expect("read");
                assert!(n > 0, "the relay closed the connection");
                self.input.extend_from_slice(&buf[..n]);
            }
        }
    }

    fn message(channel: &str, payload: &[u8]) -> Value {
        Value::Array(vec![
            Value::Bulk(b"message".to_vec()),
            Value::Bulk(channel.as_bytes().to_vec()),
            Value::Bulk(payload.to_vec()),
        ])
    }

    #[test]
    fn messages_go_to_the_listeners_of_their_channel_only_and_in_order() {
        let url = super::start(1 << 20).expect("relay");
        let mut listener = Conn::authed(&url);
        listener.send(&[b"SUBSCRIBE", b"a", b"b"]);
        for (channel, count) in [("a", 1), ("b", 2)] {
            assert_eq!(
                listener.next(),
                Value::Array(vec![
                    Value::Bulk(b"subscribe".to_vec()),
                    Value::Bulk(channel.as_bytes().to_vec()),
                    Value::Int(count),
                ])
            );
        }
        let mut publisher = Conn::authed(&url);
        for (channel, payload, reached) in [
            (&b"a"[..], &b"one"[..], 1),
            (b"c", b"nobody listens", 0),
            (b"b", b"two", 1),
            (b"a", b"three", 1),
        ] {
            publisher.send(&[b"PUBLISH", channel, payload]);
            assert_eq!(publisher.next(), Value::Int(reached));
        }
        assert_eq!(listener.next(), message("a", b"one"));
        assert_eq!(listener.next(), message("b", b"two"));
        assert_eq!(listener.next(), message("a", b"three"));

        listener.send(&[b"UNSUBSCRIBE", b"a"]);
        listener.next();
        publisher.send(&[b"PUBLISH", b"a", b"gone"]);
        assert_eq!(publisher.next(), Value::Int(0));
        publisher.send(&[b"PUBLISH", b"b", b"still"]);
        assert_eq!(publisher.next(), Value::Int(1));
        assert_eq!(listener.next(), message("b", b"still"));
    }

    #[test]
    fn only_clients_with_the_password_are_served() {
        let url = super::start(1 << 20).expect("relay");
        let mut stranger = Conn::connect(&url);
        stranger.send(&[b"PUBLISH", b"a", b"x"]);
        assert!(matches!(stranger.next(), Value::Error(e) if e.starts_with("NOAUTH")));
        stranger.send(&[b"AUTH", b"guess"]);
        assert!(matches!(stranger.next(), Value::Error(e) if e.starts_with("WRONGPASS")));
        let mut rest = Vec::new();
        let closed = stranger.stream.read_to_end(&mut rest);
        assert!(
            closed.is_err() || rest.is_empty(),
            "closed after a wrong password"
        );
    }

    #[test]
    fn a_listener_that_does_not_read_loses_messages_past_the_bound() {
        let url = super::start_with(1 << 20, 256 << 10).expect("relay");
        let mut listener = Conn::authed(&url);
        listener.send(&[b"SUBSCRIBE", b"a"]);
        listener.next();
        let mut publisher = Conn::authed(&url);
        let payload = vec![7u8; 64 << 10];
        let mut reached = Vec::new();
        // 32 MiB: more than the socket buffers and the bound hold.
        for i in 0..512u32 {
            let mut numbered = payload.clone();
            numbered[..4].copy_from_slice(&i.to_le_bytes());
            publisher.send(&[b"PUBLISH", b"a", &numbered]);
            if publisher.next() == Value::Int(1) {
                reached.push(i);
            }
        }
        assert!(reached.len() < 512, "nothing dropped");
        // What was queued arrives whole and in order.
        for want in reached {
            let Value::Array(parts) = listener.next() else {
                panic!("not a message");
            };
            let Some(Value::Bulk(bytes)) = parts.get(2) else {
                panic!("no payload");
            };
            assert_eq!(bytes[..4], want.to_le_bytes());
        }
    }
}
