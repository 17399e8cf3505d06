//! pawl behind a real nginx (the Debian package's /usr/sbin/nginx), started
//! by each test on a free loopback port with the directives of
//! examples/deploy/nginx.conf: an echo, a broadcast exchange, and the
//! client's address as pawl sees it (API and debug log).
//!
//! Clients connect from 127.0.0.2 and 127.0.0.3 (all of 127/8 is loopback
//! on Linux) so their addresses differ from nginx's 127.0.0.1.
//!
//! ```text
//! cargo test -p pawl-server --test nginx
//! ```

// The library's test helpers, shared rather than copied.
#[path = "../../tests/util/mod.rs"]
mod util;

use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::thread;
use std::time::{Duration, Instant};
use util::{LogLines, TestServer};

use pawl::{App, Component, ConnId, Context, Message, ServerConfig, TrustedProxies};
use rustls::pki_types::ServerName;
use tungstenite::client::IntoClientRequest;
use tungstenite::{Message as WsMessage, WebSocket};

const NGINX: &str = "/usr/sbin/nginx";

/// Upper bound on any wait here: a safeguard against hanging, not a
/// measured time.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(20);

/// An nginx in the foreground with everything (config, pid, logs, temp
/// files) in a temporary directory.
struct Nginx {
    child: Child,
    dir: PathBuf,
    addr: SocketAddr,
}

impl Nginx {
    /// Proxies every path on a fresh port to `upstream`; with `tls` (PEM
    /// certificate and key files) nginx terminates TLS, as in production.
    fn start(name: &str, upstream: SocketAddr, tls: Option<(&Path, &Path)>) -> Nginx {
        assert!(
            Path::new(NGINX).exists(),
            "{NGINX} is missing: install the nginx package (apt-get install nginx-light)"
        );
        // The free port is found by binding port 0 and releasing it, so
        // another program can take it first: then try another one.
        let mut failures = Vec::new();
        for _ in 0..3 {
            match Nginx::start_once(name, upstream, tls) {
                Ok(nginx) => return nginx,
                Err(e) if e.contains("Address already in use") => failures.push(e),
                Err(e) => panic!("{e}"),
            }
        }
        panic!("nginx found no free port:\n{}", failures.join("\n"));
    }

    fn start_once(
        name: &str,
        upstream: SocketAddr,
        tls: Option<(&Path, &Path)>,
    ) -> Result<Nginx, String> {
        let dir = std::env::temp_dir().join(format!("pawl-nginx-{name}-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&dir);
        std::fs::create_dir_all(dir.join("logs")).expect("temp dir");
        // nginx cannot listen on port 0: take a free port and release it.
        let port = TcpListener::bind("127.0.0.1:0")
            .and_then(|l| l.local_addr())
            .expect("free port")
            .port();
        let d = dir.display();
        let (ssl, certificates) = match tls {
            Some((cert, key)) => (
                " ssl",
                format!(
                    "ssl_certificate {};\n        ssl_certificate_key {};",
                    cert.display(),
                    key.display()
                ),
            ),
            None => ("", String::new()),
        };
        let config = format!(
            r#"
master_process off;
pid {d}/nginx.pid;
error_log {d}/logs/error.log info;
events {{ worker_connections 1024; }}
http {{
    access_log {d}/logs/access.log;
    client_body_temp_path {d}/client_body;
    proxy_temp_path {d}/proxy;
    fastcgi_temp_path {d}/fastcgi;
    uwsgi_temp_path {d}/uwsgi;
    scgi_temp_path {d}/scgi;

    map $http_upgrade $connection_upgrade {{
        default upgrade;
        ''      close;
    }}
    upstream pawl {{
        server {upstream};
    }}
    server {{
        listen 127.0.0.1:{port}{ssl};
        {certificates}
        location / {{
            proxy_pass http://pawl;
            proxy_http_version 1.1;
            proxy_set_header Upgrade $http_upgrade;
            proxy_set_header Connection $connection_upgrade;
            proxy_set_header Host $host;
            proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
            proxy_set_header X-Forwarded-Proto $scheme;
            proxy_read_timeout 90s;
            proxy_send_timeout 90s;
            proxy_buffering off;
        }}
    }}
}}
"#
        );
        let conf = dir.join("nginx.conf");
        std::fs::write(&conf, config).expect("write nginx.conf");
        let child = Command::new(NGINX)
            .arg("-p")
            .arg(&dir)
            .arg("-c")
            .arg(&conf)
            .arg("-e")
            .arg(dir.join("logs/error.log"))
            .args(["-g", "daemon off;"])
            .stdin(Stdio::null())
            .spawn()
            .expect("spawn nginx");
        let mut nginx = Nginx {
            child,
            dir,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
        };
        nginx.wait_ready()?;
        Ok(nginx)
    }

    /// Polls until nginx has written its pid file (after binding) and
    /// accepts; its error log if it exits first.
    fn wait_ready(&mut self) -> Result<(), String> {
        let deadline = Instant::now() + SAFETY_TIMEOUT;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("nginx exited ({status}):\n{}", self.error_log()));
            }
            if self.dir.join("nginx.pid").exists() && TcpStream::connect(self.addr).is_ok() {
                return Ok(());
            }
            thread::sleep(Duration::from_millis(20));
        }
        Err(format!(
            "nginx does not accept on {}:\n{}",
            self.addr,
            self.error_log()
        ))
    }

    fn error_log(&self) -> String {
        std::fs::read_to_string(self.dir.join("logs/error.log")).unwrap_or_default()
    }
}

impl Drop for Nginx {
    fn drop(&mut self) {
        // SIGTERM: nginx's fast shutdown.
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A TCP connection from `from` (a loopback address) to `to`.
fn connect_from(from: [u8; 4], to: SocketAddr) -> TcpStream {
    let sock =
        socket2::Socket::new(socket2::Domain::IPV4, socket2::Type::STREAM, None).expect("socket");
    sock.bind(&SocketAddr::from((from, 0)).into())
        .expect("bind source");
    sock.connect(&to.into()).expect("connect");
    let stream: TcpStream = sock.into();
    stream
        .set_read_timeout(Some(SAFETY_TIMEOUT))
        .expect("timeout");
    stream
}

/// A WebSocket client from `from` to `path` on `to`, with extra headers.
fn ws_connect(
    from: [u8; 4],
    to: SocketAddr,
    path: &str,
    headers: &[(&'static str, &str)],
) -> WebSocket<TcpStream> {
    let stream = connect_from(from, to);
    let mut request = format!("ws://localhost:{}{path}", to.port())
        .into_client_request()
        .expect("request");
    for (name, value) in headers {
        request
            .headers_mut()
            .insert(*name, value.parse().expect("header value"));
    }
    let (ws, response) = tungstenite::client::client(request, stream).expect("upgrade");
    assert_eq!(response.status(), 101);
    ws
}

#[track_caller]
fn expect_text(ws: &mut WebSocket<TcpStream>, expected: &str) {
    match ws.read() {
        Ok(WsMessage::Text(text)) => assert_eq!(text.as_str(), expected),
        other => panic!("expected {expected:?}, got {other:?}"),
    }
}

/// Sends back, on open, `remote_addr peer_addr` as the server sees them.
struct WhoAmI;

impl Component for WhoAmI {
    type Session = ();

    fn on_open(&mut self, ctx: &mut Context<'_, Self>, conn: ConnId) {
        let remote = ctx.remote_addr(conn).map(|a| a.ip().to_string());
        let peer = ctx.peer_addr(conn).map(|a| a.ip().to_string());
        let text = format!(
            "{} {}",
            remote.unwrap_or_default(),
            peer.unwrap_or_default()
        );
        let _ = ctx.send(conn, &text);
    }

    fn on_message(&mut self, _: &mut Context<'_, Self>, _: ConnId, _: &mut (), _: Message<'_>) {}
}

/// pawl as a library, on its own loop thread.
fn in_process(trusted: &str) -> TestServer {
    let proxies: TrustedProxies = trusted.parse().expect("proxies");
    TestServer::start(move || {
        App::new("127.0.0.1", 0)
            .config(ServerConfig::default().trusted_proxies(proxies))
            .route("/whoami", WhoAmI, &["*"])
    })
}

#[test]
fn remote_addr_is_the_client_behind_a_trusted_proxy() {
    let pawl = in_process("127.0.0.1");
    let nginx = Nginx::start("whoami", pawl.addr, None);

    // Through nginx: the client's address, the proxy as the peer.
    let mut ws = ws_connect([127, 0, 0, 2], nginx.addr, "/whoami", &[]);
    expect_text(&mut ws, "127.0.0.2 127.0.0.1");

    // A forged header through nginx: nginx appends the real address, and
    // pawl takes the rightmost untrusted hop, not the forgery.
    let mut ws = ws_connect(
        [127, 0, 0, 3],
        nginx.addr,
        "/whoami",
        &[("x-forwarded-for", "6.6.6.6")],
    );
    expect_text(&mut ws, "127.0.0.3 127.0.0.1");

    // Directly from an untrusted peer: its header is ignored.
    let mut ws = ws_connect(
        [127, 0, 0, 4],
        pawl.addr,
        "/whoami",
        &[("x-forwarded-for", "6.6.6.6")],
    );
    expect_text(&mut ws, "127.0.0.4 127.0.0.4");
}

#[test]
fn untrusted_proxy_is_not_believed() {
    // nginx connects from 127.0.0.1, which is not the trusted proxy here.
    let pawl = in_process("10.0.0.0/8");
    let nginx = Nginx::start("untrusted", pawl.addr, None);
    let mut ws = ws_connect([127, 0, 0, 2], nginx.addr, "/whoami", &[]);
    expect_text(&mut ws, "127.0.0.1 127.0.0.1");
}

/// The pawl binary, with its log lines collected from stdout and stderr.
struct PawlProcess {
    child: Child,
    addr: SocketAddr,
    lines: LogLines,
}

impl PawlProcess {
    fn start(args: &[&str]) -> PawlProcess {
        let mut child = Command::new(env!("CARGO_BIN_EXE_pawl"))
            .args(["--bind", "127.0.0.1:0", "--log-level", "debug"])
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            .spawn()
            .expect("spawn pawl");
        let lines = LogLines::capture(&mut child);
        let mut pawl = PawlProcess {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], 0)),
            lines,
        };
        let line = pawl.expect_line(|l| l.contains("pawl listening on "));
        let addr = line
            .split("pawl listening on ")
            .nth(1)
            .and_then(|rest| {
                rest.split(':')
                    .take(2)
                    .collect::<Vec<_>>()
                    .join(":")
                    .parse()
                    .ok()
            })
            .unwrap_or_else(|| panic!("no address in {line:?}"));
        pawl.addr = addr;
        pawl
    }

    /// Waits for a log line matching `want`.
    #[track_caller]
    fn expect_line(&mut self, want: impl Fn(&str) -> bool) -> String {
        self.lines.expect(want)
    }
}

impl Drop for PawlProcess {
    fn drop(&mut self) {
        unsafe {
            libc::kill(self.child.id() as libc::pid_t, libc::SIGTERM);
        }
        let _ = self.child.wait();
    }
}

#[test]
fn pawl_binary_behind_nginx() {
    let mut pawl = PawlProcess::start(&["--trusted-proxy", "127.0.0.1"]);
    let nginx = Nginx::start("binary", pawl.addr, None);

    // Echo through the proxy, and the debug log names the client.
    let mut echo = ws_connect([127, 0, 0, 2], nginx.addr, "/echo", &[]);
    echo.send(WsMessage::text("through nginx")).expect("send");
    expect_text(&mut echo, "through nginx");
    let line = pawl.expect_line(|l| l.contains("opened from") && l.contains("/echo"));
    assert!(
        line.contains("opened from 127.0.0.2") && line.contains("via proxy 127.0.0.1"),
        "{line}"
    );

    // A chat exchange: two clients on /broadcast, each sees the other's
    // message and its own.
    let mut alice = ws_connect([127, 0, 0, 2], nginx.addr, "/broadcast", &[]);
    let mut bob = ws_connect([127, 0, 0, 3], nginx.addr, "/broadcast", &[]);
    alice.send(WsMessage::text("hi bob")).expect("send");
    expect_text(&mut alice, "hi bob");
    expect_text(&mut bob, "hi bob");
    bob.send(WsMessage::text("hi alice")).expect("send");
    expect_text(&mut bob, "hi alice");
    expect_text(&mut alice, "hi alice");
    let line = pawl.expect_line(|l| l.contains("opened from 127.0.0.3"));
    assert!(line.contains("/broadcast"), "{line}");
}

#[test]
fn wss_terminated_at_nginx() {
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let dir = std::env::temp_dir().join(format!("pawl-nginx-certs-{}", std::process::id()));
    std::fs::create_dir_all(&dir).expect("temp dir");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");

    let pawl = in_process("127.0.0.1");
    let nginx = Nginx::start("tls", pawl.addr, Some((&cert, &key)));

    let mut roots = rustls::RootCertStore::empty();
    roots.add(certified.cert.der().clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(Arc::new(config), name).expect("client");
    let stream = rustls::StreamOwned::new(conn, connect_from([127, 0, 0, 2], nginx.addr));
    let url = format!("wss://localhost:{}/whoami", nginx.addr.port());
    let (mut ws, _) = tungstenite::client::client(url.as_str(), stream).expect("upgrade");
    match ws.read() {
        Ok(WsMessage::Text(text)) => assert_eq!(text.as_str(), "127.0.0.2 127.0.0.1"),
        other => panic!("expected the addresses, got {other:?}"),
    }
    drop(ws);
    let _ = std::fs::remove_dir_all(&dir);
}
