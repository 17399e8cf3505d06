//! A real browser over pawl's own TLS: headless Chromium loads a page from
//! `https://`, opens `wss://` to `/echo` from it, and reports the echo back
//! to the server through `fetch`.
//!
//! ```text
//! cargo test --test browser_tls
//! ```

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::thread::{self, JoinHandle};
use std::time::Duration;

use pawl::reactor::Reactor;
use pawl::{App, EchoServer, HttpResponse, ServerHandle, TlsConfig};

const CHROMIUM: &str = "/usr/bin/chromium";

/// Upper bound on the browser's start and page run: a safeguard against
/// hanging on a loaded machine, not a measured time.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(90);

const PAGE: &str = r#"<!doctype html>
<title>pawl wss</title>
<script>
const report = (query) => fetch("/report?" + query);
const ws = new WebSocket("wss://" + location.host + "/echo");
ws.onopen = () => ws.send("hello from the browser");
ws.onmessage = (e) =>
  report("proto=" + location.protocol + "&echo=" + encodeURIComponent(e.data));
ws.onerror = () => report("error=websocket");
</script>
"#;

struct Browser(Child);

impl Drop for Browser {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

struct Server {
    handle: ServerHandle,
    thread: Option<JoinHandle<()>>,
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.handle.stop();
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

#[test]
fn browser_reaches_page_and_socket_over_https_and_wss() {
    assert!(
        Path::new(CHROMIUM).exists(),
        "{CHROMIUM} is missing: install the chromium package"
    );
    let dir = std::env::temp_dir().join(format!("pawl-browser-tls-{}", std::process::id()));
    let _ = std::fs::remove_dir_all(&dir);
    std::fs::create_dir_all(&dir).expect("temp dir");
    let certified =
        rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
    let (cert, key) = (dir.join("cert.pem"), dir.join("key.pem"));
    std::fs::write(&cert, certified.cert.pem()).expect("write cert");
    std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
    let tls = TlsConfig::from_pem_files(&cert, &key).expect("TLS config");

    let (reports, received) = mpsc::channel::<String>();
    let (started, start) = mpsc::channel();
    let thread = thread::spawn(move || {
        let app = App::new("127.0.0.1", 0)
            .tls(tls)
            .http("/", |_| {
                HttpResponse::new(200, "text/html; charset=utf-8", PAGE.as_bytes())
            })
            .http("/report", move |request| {
                let _ = reports.send(request.query().unwrap_or_default().to_owned());
                HttpResponse::text(200, "ok\n")
            })
            .route("/echo", EchoServer, &["*"]);
        let mut reactor = Reactor::new().expect("reactor");
        let server = app.listen(&mut reactor).expect("listen");
        started
            .send((server.local_addr(), server.handle(&reactor)))
            .expect("started");
        reactor.run().expect("loop");
        server.close_all_now(&mut reactor);
    });
    let (addr, handle) = start.recv_timeout(SAFETY_TIMEOUT).expect("server start");
    let _server = Server {
        handle,
        thread: Some(thread),
    };

    let _browser = Browser(
        Command::new(CHROMIUM)
            .args([
                "--headless=new",
                "--no-sandbox",
                "--disable-gpu",
                "--no-first-run",
                // The certificate is self-signed, made a moment ago.
                "--ignore-certificate-errors",
            ])
            .arg(format!("--user-data-dir={}", dir.join("profile").display()))
            .arg(format!("https://localhost:{}/", addr.port()))
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .expect("spawn chromium"),
    );
    let report = received
        .recv_timeout(SAFETY_TIMEOUT)
        .expect("the page reported nothing");
    assert_eq!(
        report, "proto=https:&echo=hello%20from%20the%20browser",
        "the page's report"
    );
    drop(_browser);
    let _ = std::fs::remove_dir_all(&dir);
}
