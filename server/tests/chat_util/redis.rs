//! A real `redis-server` for tests: started on a free port in a fresh
//! folder, without persistence, killed on drop; and a tiny blocking RESP
//! client to look inside it.

use std::io::{BufRead, BufReader, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use super::TIMEOUT;

const REDIS_SERVER: &str = "/usr/bin/redis-server";

/// A running redis-server.
pub struct Redis {
    child: Option<Child>,
    /// Its port on 127.0.0.1.
    pub port: u16,
    dir: PathBuf,
}

impl Redis {
    /// Starts redis-server on a free port and waits until it answers PING.
    #[track_caller]
    pub fn start() -> Redis {
        assert!(
            Path::new(REDIS_SERVER).exists(),
            "{REDIS_SERVER} is missing: install Debian's redis-server (.ci/run does)"
        );
        let port = {
            // The kernel picks a free port; it is free again once dropped.
            let probe = TcpListener::bind("127.0.0.1:0").expect("probe port");
            probe.local_addr().expect("addr").port()
        };
        let dir = Path::new(env!("CARGO_TARGET_TMPDIR"))
            .join(format!("chat-redis-{}-{port}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(&dir).expect("redis dir");
        let mut redis = Redis {
            child: None,
            port,
            dir,
        };
        redis.restart();
        redis
    }

    /// The URL pawl connects to.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// Kills it with SIGKILL: no persistence, so it comes back empty.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops it with SIGSTOP: its connections stay open and it answers
    /// nothing (a hung Redis) until [`Redis::thaw`].
    pub fn freeze(&self) {
        self.signal(libc::SIGSTOP);
    }

    /// Resumes it with SIGCONT: it then runs what its clients wrote
    /// meanwhile, even on connections they have closed since.
    pub fn thaw(&self) {
        self.signal(libc::SIGCONT);
    }

    fn signal(&self, signal: libc::c_int) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid; no memory is involved.
            let rc = unsafe { libc::kill(child.id() as libc::pid_t, signal) };
            assert_eq!(
                rc,
                0,
                "kill redis-server: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Subscribes to `channels` on one connection of its own and keeps
    /// everything published on them, from the moment this returns, in the
    /// order Redis ran the publishes.
    #[track_caller]
    pub fn listen(&self, channels: &[&str]) -> Listener {
        use std::io::Read;

        let mut stream = TcpStream::connect(("127.0.0.1", self.port)).expect("connect to redis");
        stream.set_read_timeout(Some(TIMEOUT)).expect("timeout");
        let mut subscribe = vec!["SUBSCRIBE"];
        subscribe.extend_from_slice(channels);
        stream.write_all(&encode(&subscribe)).expect("SUBSCRIBE");
        // The last confirmation ends with the count of subscriptions.
        let last = format!(":{}\r\n", channels.len());
        let mut confirmation = Vec::new();
        let mut buf = [0u8; 1024];
        let end = loop {
            let at = confirmation
                .windows(last.len())
                .position(|w| w == last.as_bytes());
            if let Some(at) = at {
                break at + last.len();
            }
            let n = stream.read(&mut buf).expect("SUBSCRIBE confirmation");
            assert!(n > 0, "redis closed the subscription");
            confirmation.extend_from_slice(&buf[..n]);
        };
        // Publishes that came in the same read as the confirmation.
        let seen = Arc::new(Mutex::new(confirmation.split_off(end)));
        let (mut reader, kept) = (stream.try_clone().expect("clone"), Arc::clone(&seen));
        // Read until the listener is dropped (which shuts the socket down).
        std::thread::spawn(move || {
            let mut buf = [0u8; 4096];
            while let Ok(n) = reader.read(&mut buf) {
                if n == 0 {
                    break;
                }
                kept.lock().expect("seen").extend_from_slice(&buf[..n]);
            }
        });
        Listener { stream, seen }
    }

    /// Starts it (again) on the same port and waits for PING.
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        let child = Command::new(REDIS_SERVER)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1", "--save", "", "--appendonly", "no"])
            .arg("--dir")
            .arg(&self.dir)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn redis-server");
        self.child = Some(child);
        let deadline = Instant::now() + TIMEOUT;
        loop {
            if let Ok(reply) = self.try_command(&["PING"])
                && reply == "+PONG"
            {
                return;
            }
            assert!(Instant::now() < deadline, "redis-server did not start");
            // Waiting for a process to come up: there is nothing to block on.
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Runs a command; returns the first line of the reply (`:3`, `+OK`,
    /// `$5`...), enough to read counts.
    #[track_caller]
    pub fn command(&self, args: &[&str]) -> String {
        self.try_command(args).expect("redis command")
    }

    /// An integer reply.
    #[track_caller]
    pub fn int(&self, args: &[&str]) -> i64 {
        let reply = self.command(args);
        reply
            .strip_prefix(':')
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("{args:?}: not an integer reply: {reply}"))
    }

    /// Waits until `ZCARD key` reaches `count`.
    #[track_caller]
    pub fn wait_zcard(&self, key: &str, count: i64) {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let got = self.int(&["ZCARD", key]);
            if got == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{key} has {got} entries in redis, expected {count}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `count` nodes listen to the library topic `topic`
    /// (its channel `pawl:topic:TOPIC`).
    #[track_caller]
    pub fn wait_topic(&self, topic: &str, count: i64) {
        let channel = format!("pawl:topic:{topic}");
        let deadline = Instant::now() + TIMEOUT;
        loop {
            // NUMSUB answers [channel, count]; a script picks the count.
            let script = "return redis.call('PUBSUB', 'NUMSUB', KEYS[1])[2]";
            let got = self.int(&["EVAL", script, "1", &channel]);
            if got == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{got} nodes on {channel}, expected {count}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Polls until `count` pawl nodes are registered in `pawl:chat:nodes`.
    #[track_caller]
    pub fn wait_for_nodes(&self, count: i64) {
        // A node subscribes to a room's topics only once it uses the room,
        // so there is no channel to probe before; a client joining waits
        // for presence, which the topics carry or the keys catch up on.
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let registered = self.int(&["SCARD", "pawl:chat:nodes"]);
            if registered == count {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "{registered} nodes registered, expected {count}"
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// A command's whole reply as strings: one for a bulk string (none
    /// for nil), one per element of an array of bulk strings.
    #[track_caller]
    pub fn strings(&self, args: &[&str]) -> Vec<String> {
        self.try_strings(args).expect("redis command")
    }

    fn try_strings(&self, args: &[&str]) -> std::io::Result<Vec<String>> {
        use std::io::Read;

        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.write_all(&encode(args))?;
        let mut reader = BufReader::new(stream);
        let mut line = String::new();
        reader.read_line(&mut line)?;
        let bad = |what: &str| std::io::Error::other(format!("{args:?}: {what}"));
        let (count, mut pending) = match line.as_bytes().first() {
            Some(b'*') => {
                let n: i64 = line[1..].trim_end().parse().map_err(|_| bad("bad array"))?;
                (n, None)
            }
            Some(b'$') => (1, Some(line.clone())),
            _ => return Err(bad(&format!("unexpected reply {line:?}"))),
        };
        let mut strings = Vec::new();
        for _ in 0..count.max(0) {
            let header = match pending.take() {
                Some(header) => header,
                None => {
                    let mut header = String::new();
                    reader.read_line(&mut header)?;
                    header
                }
            };
            let len: i64 = header
                .trim_end()
                .strip_prefix('$')
                .and_then(|n| n.parse().ok())
                .ok_or_else(|| bad("not a bulk string"))?;
            if len < 0 {
                continue;
            }
            let mut bytes = vec![0; len as usize + 2];
            reader.read_exact(&mut bytes)?;
            bytes.truncate(len as usize);
            strings.push(String::from_utf8_lossy(&bytes).into_owned());
        }
        Ok(strings)
    }

    fn try_command(&self, args: &[&str]) -> std::io::Result<String> {
        let mut stream = TcpStream::connect(("127.0.0.1", self.port))?;
        stream.set_read_timeout(Some(TIMEOUT))?;
        stream.write_all(&encode(args))?;
        let mut line = String::new();
        BufReader::new(stream).read_line(&mut line)?;
        Ok(line.trim_end().to_owned())
    }
}

fn encode(args: &[&str]) -> Vec<u8> {
    let mut out = format!("*{}\r\n", args.len());
    for arg in args {
        out.push_str(&format!("${}\r\n{arg}\r\n", arg.len()));
    }
    out.into_bytes()
}

/// Everything published on some channels since [`Redis::listen`].
pub struct Listener {
    stream: TcpStream,
    seen: Arc<Mutex<Vec<u8>>>,
}

impl Listener {
    /// How many times `needle` occurs in what was published.
    pub fn count(&self, needle: &str) -> usize {
        let seen = self.seen.lock().expect("seen");
        seen.windows(needle.len())
            .filter(|w| *w == needle.as_bytes())
            .count()
    }

    /// Waits until `needle` was published.
    #[track_caller]
    pub fn wait_for(&self, needle: &str) {
        let deadline = Instant::now() + TIMEOUT;
        while self.count(needle) == 0 {
            assert!(Instant::now() < deadline, "{needle:?} was never published");
            // Another thread fills `seen`: nothing to block on here.
            std::thread::sleep(Duration::from_millis(20));
        }
    }
}

impl Drop for Listener {
    fn drop(&mut self) {
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
    }
}

impl Drop for Redis {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
