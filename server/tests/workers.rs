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

fn connect(addr: SocketAddr) -> WebSocket<TcpStream> {
    let stream = TcpStream::connect(addr).expect("connect");
    stream
        .set_read_timeout(Some(SAFETY_TIMEOUT))
        .expect("timeout");
    let url = format!("ws://localhost:{}/broadcast", addr.port());
    let (ws, _) = tungstenite::client::client(url.as_str(), stream).expect("upgrade");
    ws
}

/// Reads until `marker` arrives; true if `probe` came before it.
fn saw_before(ws: &mut WebSocket<TcpStream>, probe: &str, marker: &str) -> bool {
    let mut saw = false;
    // Bounded: at most one message per client, plus the probe.
    for _ in 0..CLIENTS + 2 {
        match ws.read().expect("read") {
            Message::Text(text) if text.as_str() == marker => return saw,
            Message::Text(text) if text.as_str() == probe => saw = true,
            _ => {}
        }
    }
    panic!("{marker} never came back");
}

#[test]
fn two_workers_serve_restart_and_stop() {
    let mut supervisor = Supervisor::start(2);

    // Both workers answer on the one port.
    let first = supervisor.new_pid(&[]);
    let second = supervisor.new_pid(&[first]);

    // A few hundred WebSocket clients. Until the chat uses Redis, a
    // broadcast reaches only its own worker's clients: that shows which
    // clients share a worker with client 0, without any timing. Client 0's
    // probe is broadcast (to every client of its worker) before client 0
    // reads it back; each client's marker is sent after that, so a client
    // of the same worker reads the probe before its marker, and a client of
    // the other worker never reads it.
    let mut clients: Vec<_> = (0..CLIENTS).map(|_| connect(supervisor.addr)).collect();
    clients[0].send(Message::text("probe")).expect("send probe");
    let mut with_client0 = 0;
    for (i, ws) in clients.iter_mut().enumerate() {
        let marker = format!("marker {i}");
        ws.send(Message::text(marker.clone())).expect("send marker");
        if saw_before(ws, "probe", &marker) {
            with_client0 += 1;
        }
    }
    assert!(with_client0 >= 1, "client 0 sees its own probe");
    assert!(
        with_client0 < CLIENTS,
        "all {CLIENTS} clients landed on one worker"
    );

    // A worker killed outright is replaced.
    signal_pid(first, libc::SIGKILL);
    supervisor.expect_line(|l| l.contains("exited") && l.contains("restarting"));
    let third = supervisor.new_pid(&[first, second]);

    // SIGTERM: the workers close their clients with 1001, and the
    // supervisor exits 0 once both are gone.
    supervisor.signal(libc::SIGTERM);
    let mut going_away = 0;
    for ws in &mut clients {
        // Bounded: a few leftover broadcasts, then the close (or an error
        // for clients of the killed worker).
        for _ in 0..CLIENTS + 2 {
            match ws.read() {
                Ok(Message::Close(Some(frame))) => {
                    assert_eq!(frame.code, CloseCode::Away);
                    going_away += 1;
                    break;
                }
                Ok(Message::Close(None)) => panic!("close without a code"),
                Ok(_) => continue,
                Err(_) => break,
            }
        }
    }
    assert!(going_away > 0, "the surviving worker's clients get 1001");
    let status = supervisor.wait_exit();
    assert!(status.success(), "supervisor exit: {status}");
    for pid in [first, second, third] {
        assert!(!alive(pid), "worker {pid} outlived the supervisor");
    }
}
