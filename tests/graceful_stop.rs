//! Graceful stop of the `pawl` binary: on SIGTERM every client gets close
//! 1001, a client still in its handshake is dropped, and the process exits 0.

mod util;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use util::{Client, Raw, Received, TIMEOUT};

/// A running `pawl` binary, killed if the test fails before it exits.
struct Pawl {
    child: Child,
    addr: SocketAddr,
}

impl Pawl {
    /// Starts `pawl` on a free loopback port. `--bind` needs a real port, so
    /// take one the kernel picked for a throwaway listener, and try again
    /// with another if something grabbed it in between.
    #[track_caller]
    fn start() -> Pawl {
        for _ in 0..5 {
            let addr = TcpListener::bind("127.0.0.1:0")
                .and_then(|l| l.local_addr())
                .expect("a free port");
            let mut child = Command::new(env!("CARGO_BIN_EXE_pawl"))
                .args(["--bind", &addr.to_string(), "--log-level", "warn"])
                .stdin(Stdio::null())
                .stdout(Stdio::null())
                .stderr(Stdio::null())
                .spawn()
                .expect("spawn pawl");
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

    fn signal(&self, signal: libc::c_int) {
        let pid = self.child.id() as libc::pid_t;
        // SAFETY: kill(2) with our own child's pid has no memory effects.
        let rc = unsafe { libc::kill(pid, signal) };
        assert_eq!(rc, 0, "kill({pid}, {signal})");
    }

    #[track_caller]
    fn wait(&mut self) -> ExitStatus {
        util::wait_for("pawl to exit", || self.child.try_wait().expect("try_wait"))
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

#[test]
fn sigterm_closes_every_client_with_1001_and_exits_0() {
    let mut pawl = Pawl::start();
    let mut clients: Vec<Client> = (0..20)
        .map(|i| {
            let path = if i % 2 == 0 { "/echo" } else { "/chat" };
            let mut client = Client::connect(pawl.addr, path);
            client.send_text(&format!("hello {i}"));
            client.expect_text(&format!("hello {i}"));
            client
        })
        .collect();
    let mut half = Raw::connect(pawl.addr);
    half.send(b"GET /echo HTTP/1.1\r\nHost: 127.0.0.1\r\n");

    pawl.signal(libc::SIGTERM);

    for client in &mut clients {
        // Chat clients may first get the later chat clients' hellos.
        let close = loop {
            match client.recv() {
                Received::Text(text) if text.starts_with("hello ") => {}
                other => break other,
            }
        };
        assert!(
            matches!(close, Received::Close(1001, _)),
            "expected close 1001, got {close:?}"
        );
        // Reading on sends tungstenite's close reply; then the server ends
        // the connection.
        client.expect_end();
    }
    half.read_to_end();
    let status = pawl.wait();
    assert!(status.success(), "pawl exited with {status}");
}

#[test]
fn sigterm_with_no_clients_exits_0() {
    let mut pawl = Pawl::start();
    pawl.signal(libc::SIGTERM);
    let status = pawl.wait();
    assert!(status.success(), "pawl exited with {status}");
}
