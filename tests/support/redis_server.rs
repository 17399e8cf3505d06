//! A throwaway `redis-server` for tests: its own free port on 127.0.0.1, its
//! own temporary directory, no persistence. Include it with
//! `#[path = "support/redis_server.rs"] mod redis_server;`.
//!
//! The binary is `$REDIS_SERVER`, else `/usr/bin/redis-server`, else
//! `redis-server` on `PATH`; a missing binary fails the test with a message
//! saying how to install it (tests never skip).

#![allow(dead_code)]

use std::io::{Read, Write};
use std::net::{Shutdown, SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::{Duration, Instant};

/// How long a fresh server may take to answer PING.
const READY_TIMEOUT: Duration = Duration::from_secs(20);

/// A running `redis-server`, killed (and its directory removed) on drop.
#[derive(Debug)]
pub struct RedisServer {
    child: Option<Child>,
    extra: Vec<String>,
    port: u16,
    dir: PathBuf,
    binary: PathBuf,
}

impl RedisServer {
    /// Starts a server on a free port and waits until it answers PING.
    #[track_caller]
    pub fn start() -> RedisServer {
        RedisServer::start_with(&[])
    }

    /// Starts a server with extra arguments (`&["--requirepass", "pw"]`).
    /// PING-based readiness needs no password: `NOAUTH` also proves the
    /// server is up.
    #[track_caller]
    pub fn start_with(extra: &[&str]) -> RedisServer {
        let binary = find_binary();
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let dir = std::env::temp_dir().join(format!(
            "pawl-redis-{}-{}",
            std::process::id(),
            COUNTER.fetch_add(1, Ordering::Relaxed)
        ));
        std::fs::create_dir_all(&dir).unwrap_or_else(|e| panic!("creating {}: {e}", dir.display()));
        // A port freed by the OS a moment ago can be taken again in between:
        // try a few.
        let mut last = String::new();
        for _ in 0..5 {
            let port = free_port();
            let mut server = RedisServer {
                child: None,
                extra: extra.iter().map(|s| s.to_string()).collect(),
                port,
                dir: dir.clone(),
                binary: binary.clone(),
            };
            match server.spawn() {
                Ok(()) => return server,
                Err(e) => last = e,
            }
        }
        panic!("redis-server did not start: {last}");
    }

    /// `redis://127.0.0.1:PORT`.
    pub fn url(&self) -> String {
        format!("redis://127.0.0.1:{}", self.port)
    }

    /// The server's port (kept across [`RedisServer::restart`]).
    pub fn port(&self) -> u16 {
        self.port
    }

    /// The server's address.
    pub fn addr(&self) -> SocketAddr {
        SocketAddr::from(([127, 0, 0, 1], self.port))
    }

    /// Kills the server with SIGKILL and waits for it to exit.
    pub fn kill(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }

    /// Stops the server with SIGSTOP: connections stay open but nothing is
    /// answered (a hung Redis). [`RedisServer::kill`] still works after it.
    pub fn freeze(&self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGSTOP) };
            assert_eq!(
                rc,
                0,
                "SIGSTOP redis-server: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Resumes a server stopped by [`RedisServer::freeze`] (SIGCONT): it
    /// then runs what its clients wrote meanwhile.
    pub fn thaw(&self) {
        if let Some(child) = &self.child {
            // SAFETY: kill(2) on our own child's pid has no memory effects.
            let rc = unsafe { libc::kill(child.id() as libc::pid_t, libc::SIGCONT) };
            assert_eq!(
                rc,
                0,
                "SIGCONT redis-server: {}",
                std::io::Error::last_os_error()
            );
        }
    }

    /// Starts the server again on the same port (empty: no persistence),
    /// waiting until it answers PING.
    #[track_caller]
    pub fn restart(&mut self) {
        self.kill();
        // The old socket may linger a moment; redis-server binds with
        // SO_REUSEADDR, but retry in case.
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            match self.spawn() {
                Ok(()) => return,
                Err(e) if Instant::now() >= deadline => panic!("redis-server restart: {e}"),
                Err(_) => std::thread::sleep(Duration::from_millis(50)),
            }
        }
    }

    /// Runs one command with a blocking connection (test-side checks) and
    /// returns the raw reply.
    #[track_caller]
    pub fn raw(&self, command: &str) -> String {
        ping_like(self.addr(), command)
            .unwrap_or_else(|e| panic!("{command:?} to redis on {}: {e}", self.port))
    }

    /// How many connections subscribe to `channel` (`PUBSUB NUMSUB`).
    #[track_caller]
    pub fn numsub(&self, channel: &str) -> u64 {
        let reply = self.raw(&format!("PUBSUB NUMSUB {channel}"));
        reply
            .lines()
            .rev()
            .find_map(|line| line.strip_prefix(':'))
            .and_then(|n| n.parse().ok())
            .unwrap_or_else(|| panic!("not a NUMSUB reply: {reply:?}"))
    }

    fn spawn(&mut self) -> Result<(), String> {
        let log = self.dir.join("redis.log");
        let mut child = Command::new(&self.binary)
            .args(["--port", &self.port.to_string()])
            .args(["--bind", "127.0.0.1"])
            .args(["--save", ""])
            .args(["--appendonly", "no"])
            .args(["--daemonize", "no"])
            .args(&self.extra)
            .arg("--dir")
            .arg(&self.dir)
            .arg("--logfile")
            .arg(&log)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("spawning {}: {e}", self.binary.display()))?;
        let deadline = Instant::now() + READY_TIMEOUT;
        loop {
            if let Ok(Some(status)) = child.try_wait() {
                return Err(format!(
                    "redis-server exited with {status} on port {}; log:\n{}",
                    self.port,
                    tail(&log)
                ));
            }
            match ping_like(self.addr(), "PING") {
                Ok(reply) if reply.starts_with("+PONG") || reply.starts_with("-NOAUTH") => break,
                _ if Instant::now() >= deadline => {
                    let _ = child.kill();
                    let _ = child.wait();
                    return Err(format!(
                        "redis-server on port {} did not answer PING within {READY_TIMEOUT:?}; log:\n{}",
                        self.port,
                        tail(&log)
                    ));
                }
                // Polling, not synchronising: each round asks the server.
                _ => std::thread::sleep(Duration::from_millis(10)),
            }
        }
        self.child = Some(child);
        Ok(())
    }
}

impl Drop for RedisServer {
    fn drop(&mut self) {
        self.kill();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

#[track_caller]
fn find_binary() -> PathBuf {
    if let Some(path) = std::env::var_os("REDIS_SERVER") {
        return PathBuf::from(path);
    }
    let default = Path::new("/usr/bin/redis-server");
    if default.exists() {
        return default.to_path_buf();
    }
    if let Some(paths) = std::env::var_os("PATH") {
        for dir in std::env::split_paths(&paths) {
            let candidate = dir.join("redis-server");
            if candidate.exists() {
                return candidate;
            }
        }
    }
    panic!(
        "redis-server not found (looked at $REDIS_SERVER, /usr/bin/redis-server and PATH): \
         install it (Debian: apt-get install redis-server) to run the Redis tests"
    );
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| a.port())
        .expect("binding 127.0.0.1:0 for a free port")
}

/// Sends one inline command and reads one reply line (enough for PING and
/// simple checks).
fn ping_like(addr: SocketAddr, command: &str) -> std::io::Result<String> {
    let mut stream = TcpStream::connect_timeout(&addr, Duration::from_secs(1))?;
    stream.set_read_timeout(Some(Duration::from_secs(5)))?;
    stream.write_all(format!("{command}\r\n").as_bytes())?;
    stream.shutdown(Shutdown::Write)?;
    let mut reply = String::new();
    stream.read_to_string(&mut reply)?;
    Ok(reply)
}

fn tail(log: &Path) -> String {
    let text = std::fs::read_to_string(log).unwrap_or_default();
    let lines: Vec<&str> = text.lines().collect();
    lines[lines.len().saturating_sub(20)..].join("\n")
}
