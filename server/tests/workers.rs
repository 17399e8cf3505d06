//! `pawl --workers 2`: both workers serve clients on one port, a worker
//! killed with SIGKILL is restarted, and SIGTERM stops everything
//! gracefully with exit status 0.
//!
//! ```text
//! cargo test -p pawl-server --test workers
//! ```

// The library's test helpers, shared rather than copied.
#[path = "../../tests/util/mod.rs"]
mod util;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::process::{Child, Command, Stdio};
use std::thread;
use std::time::{Duration, Instant};

use tungstenite::protocol::frame::coding::CloseCode;
use tungstenite::{Message, WebSocket};
use util::LogLines;

/// Upper bound on any wait here: a safeguard against hanging, not a
/// measured time.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(30);

const CLIENTS: usize = 300;

struct Supervisor {
    child: Child,
    addr: SocketAddr,
    lines: LogLines,
}

impl Supervisor {
    fn start(workers: u16) -> Supervisor {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pawl"))
            .args(["--bind", "127.0.0.1:0", "--log-level", "info"])
            .args(["--workers", &workers.to_string()])
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pawl");
        let lines = LogLines::capture(&mut child);
        let mut supervisor = Supervisor {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let line = supervisor.expect_line(|l| l.contains("workers on "));
        supervisor.addr = line
            .rsplit("workers on ")
            .next()
            .and_then(|a| a.trim().parse().ok())
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        for _ in 0..workers {
            supervisor.expect_line(|l| l.contains("pawl listening on "));
        }
        supervisor
    }

    #[track_caller]
    fn expect_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        self.lines.expect(want)
    }

    /// The pid of the worker that answers one `GET /health`, or `None` if
    /// the request fails (a worker restarting).
    fn health_pid(&self) -> Option<u32> {
        let mut sock = TcpStream::connect(self.addr).ok()?;
        sock.set_read_timeout(Some(SAFETY_TIMEOUT)).ok()?;
        sock.write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
            .ok()?;
        let mut response = String::new();
        sock.read_to_string(&mut response).ok()?;
        response.rsplit("ok pid ").next()?.trim().parse().ok()
    }

    /// Asks `/health` until a pid not in `known` answers.
    fn new_pid(&self, known: &[u32]) -> u32 {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        // Bounded by the deadline; each round is one short HTTP request
        // (a refused connection while a worker restarts counts as a round).
        while Instant::now() < deadline {
            if let Some(pid) = self.health_pid().filter(|pid| !known.contains(pid)) {
                return pid;
            }
            thread::sleep(Duration::from_millis(10));
        }
        panic!("no worker other than {known:?} answered /health");
    }

    fn signal(&self, signal: libc::c_int) {
        signal_pid(self.child.id(), signal);
    }

    fn wait_exit(&mut self) -> std::process::ExitStatus {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        while Instant::now() < deadline {
            if let Some(status) = self.child.try_wait().expect("wait") {
                return status;
            }
            thread::sleep(Duration::from_millis(20));
        }
        panic!("the supervisor did not exit after SIGTERM");
    }
}

impl Drop for Supervisor {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.signal(libc::SIGTERM);
            let _ = self.child.wait();
        }
    }
}

fn signal_pid(pid: u32, signal: libc::c_int) {
    // SAFETY: kill only sends a signal.
    unsafe {
        libc::kill(pid as libc::pid_t, signal);
    }
}

fn alive(pid: u32) -> bool {
    // SAFETY: signal 0 only checks that the process exists.
    unsafe { libc::kill(pid as libc::pid_t, 0) == 0 }
}

/// Reads until a probe arrives (true) or nothing has come for a moment.
fn heard_probe(ws: &mut WebSocket<TcpStream>) -> bool {
    ws.get_ref()
        .set_read_timeout(Some(Duration::from_millis(100)))
        .expect("timeout");
    let heard = loop {
        match ws.read() {
            Ok(Message::Text(text)) if text.as_str() == "probe" => break true,
            Ok(_) => {}
            Err(tungstenite::Error::Io(e)) if util::is_timeout(&e) => break false,
            Err(e) => panic!("read: {e}"),
        }
    };
    ws.get_ref()
        .set_read_timeout(Some(SAFETY_TIMEOUT))
        .expect("timeout");
    heard
}

fn connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(SAFETY_TIMEOUT))
        .expect("timeout");
    let url = format!("ws://localhost:{}/broadcast", addr.port());
    let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("upgrade");
    ws
}

#[test]
fn two_workers_serve_restart_and_stop() {
    let mut supervisor = Supervisor::start(2);

    // Both workers answer on the one port.
    let first = supervisor.new_pid(&[]);
    let second = supervisor.new_pid(&[first]);

    // A few hundred WebSocket clients, spread by the kernel over both
    // workers. Topics cross the workers (through the supervisor's relay:
    // there is no --redis here), so client 0's probe reaches every one of
    // them, whichever worker took it, once that worker listens to the
    // topic (it asks the relay when its first client arrives, so client 0
    // probes again until everyone has heard one).
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| connect(supervisor.addr)).collect();
    let mut heard = vec![false; CLIENTS];
    let deadline = Instant::now() + SAFETY_TIMEOUT;
    let mut probes = 0;
    while !heard.iter().all(|h| *h) {
        assert!(
            Instant::now() < deadline,
            "some clients never heard a probe"
        );
        clients[0].send(Message::text("probe")).expect("send probe");
        probes += 1;
        for (ws, heard) in clients.iter_mut().zip(&mut heard) {
            if !*heard {
                *heard = heard_probe(ws);
            }
        }
    }

    // A worker killed outright is replaced.
    signal_pid(first, libc::SIGKILL);
    supervisor.expect_line(|l| l.contains("exited") && l.contains("restarting"));
    let third = supervisor.new_pid(&[first, second]);

    // SIGTERM: the workers close their clients with 1001, and the
    // supervisor exits 0 once both are gone.
    supervisor.signal(libc::SIGTERM);
    let (mut going_away, mut cut_off) = (0, 0);
    for ws in &mut clients {
        // Bounded: the leftover probes, then the close (or an error for
        // clients of the killed worker).
        for _ in 0..probes + 2 {
            match ws.read() {
                Ok(Message::Close(Some(frame))) => {
                    assert_eq!(frame.code, CloseCode::Away);
                    going_away += 1;
                    break;
                }
                Ok(Message::Close(None)) => panic!("close without a code"),
                Ok(_) => continue,
                Err(_) => {
                    cut_off += 1;
                    break;
                }
            }
        }
    }
    assert!(going_away > 0, "the surviving worker's clients get 1001");
    // Which also shows that the clients were spread over both workers.
    assert!(cut_off > 0, "the killed worker had clients");
    let status = supervisor.wait_exit();
    assert!(status.success(), "supervisor exit: {status}");
    for pid in [first, second, third] {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
}
