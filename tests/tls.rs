//! `wss://` on the loop: echo through a rustls client, the TLS handshake
//! under the handshake timeout, garbage instead of a ClientHello, and the
//! errors for unusable certificate files.
//!
//! ```text
//! cargo test --test tls
//! ```

mod util;

use std::io::{self, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;
use util::TestServer;

use pawl::{App, EchoServer, Error, HttpResponse, ServerConfig, TlsConfig};
use rustls::pki_types::{CertificateDer, ServerName};
use tungstenite::Message;

/// Upper bound on any single blocking read in these tests: a safeguard so a
/// broken server fails the test instead of hanging it, not a measured time.
const SAFETY_TIMEOUT: Duration = Duration::from_secs(20);

/// A self-signed certificate for `localhost`, written to a fresh directory.
struct Cert {
    dir: PathBuf,
    cert: PathBuf,
    key: PathBuf,
    der: CertificateDer<'static>,
}

impl Cert {
    fn new(name: &str) -> Cert {
        let certified =
            rcgen::generate_simple_self_signed(vec!["localhost".to_owned()]).expect("rcgen");
        let dir = std::env::temp_dir().join(format!("pawl-tls-{name}-{}", std::process::id()));
        std::fs::create_dir_all(&dir).expect("temp dir");
        let cert = dir.join("cert.pem");
        let key = dir.join("key.pem");
        std::fs::write(&cert, certified.cert.pem()).expect("write cert");
        std::fs::write(&key, certified.signing_key.serialize_pem()).expect("write key");
        let der = certified.cert.der().clone();
        Cert {
            dir,
            cert,
            key,
            der,
        }
    }
}

impl Drop for Cert {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}

/// A wss server on its own loop thread.
fn start_server(cert: &Cert, config: ServerConfig) -> TestServer {
    let tls = TlsConfig::from_pem_files(&cert.cert, &cert.key).expect("TLS config");
    TestServer::start(move || {
        App::new("127.0.0.1", 0)
            .config(config)
            .tls(tls)
            .route("/echo", EchoServer, &["*"])
            .http("/health", |_| HttpResponse::text(200, "ok\n"))
    })
}

fn client_config(cert: &Cert) -> Arc<rustls::ClientConfig> {
    let mut roots = rustls::RootCertStore::empty();
    roots.add(cert.der.clone()).expect("root");
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let config = rustls::ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .expect("versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(config)
}

type TlsClient = rustls::StreamOwned<rustls::ClientConnection, TcpStream>;

fn tls_connect(cert: &Cert, addr: SocketAddr) -> TlsClient {
    let sock = TcpStream::connect(addr).expect("connect");
    sock.set_read_timeout(Some(SAFETY_TIMEOUT))
        .expect("timeout");
    let name = ServerName::try_from("localhost").expect("name");
    let conn = rustls::ClientConnection::new(client_config(cert), name).expect("client");
    rustls::StreamOwned::new(conn, sock)
}

#[track_caller]
fn expect_closed(sock: &mut TcpStream) {
    sock.set_read_timeout(Some(SAFETY_TIMEOUT))
        .expect("timeout");
    let mut buf = [0u8; 4096];
    // Bounded: an alert is a few bytes, then EOF or a reset.
    for _ in 0..64 {
        match sock.read(&mut buf) {
            Ok(0) => return,
            Ok(_) => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset => return,
            Err(e) => panic!("expected the server to close the connection, got {e}"),
        }
    }
    panic!("the server kept sending instead of closing");
}

#[test]
fn echo_over_wss() {
    let cert = Cert::new("echo");
    let server = start_server(&cert, ServerConfig::default());
    let stream = tls_connect(&cert, server.addr);
    let url = format!("wss://localhost:{}/echo", server.addr.port());
    let (mut ws, response) = tungstenite::client::client(url.as_str(), stream).expect("upgrade");
    assert_eq!(response.status(), 101);

    ws.send(Message::text("hello over TLS")).expect("send");
    assert_eq!(ws.read().expect("read"), Message::text("hello over TLS"));

    // Larger than a TLS record and than the loop's read buffer, so it
    // crosses many records both ways.
    let big: Vec<u8> = (0..3 << 20).map(|i| (i % 251) as u8).collect();
    ws.send(Message::binary(big.clone())).expect("send big");
    assert_eq!(ws.read().expect("read big"), Message::binary(big));

    for i in 0..100 {
        ws.send(Message::text(format!("burst {i}"))).expect("send");
    }
    for i in 0..100 {
        assert_eq!(
            ws.read().expect("read"),
            Message::text(format!("burst {i}"))
        );
    }

    ws.close(None).expect("close");
    // Bounded: the close reply and then the end of the stream.
    for _ in 0..8 {
        match ws.read() {
            Ok(_) => continue,
            Err(tungstenite::Error::ConnectionClosed) => return,
            Err(e) => panic!("expected a clean close, got {e}"),
        }
    }
    panic!("no close reply");
}

#[test]
fn echo_over_wss_with_full_socket_buffers() {
    // The client writes 24 MiB before reading anything: the echoes fill the
    // client's receive buffer and the server's send buffer, so the server's
    // TLS records wait in rustls and go out on writable events.
    let cert = Cert::new("backpressure");
    // The server must hold all 24 MiB for this client: past the default
    // 4 MiB a client that does not read is closed.
    let server = start_server(&cert, ServerConfig::default().max_backpressure(32 << 20));
    let stream = tls_connect(&cert, server.addr);
    let url = format!("wss://localhost:{}/echo", server.addr.port());
    let (mut ws, _) = tungstenite::client::client(url.as_str(), stream).expect("upgrade");
    let messages: Vec<Vec<u8>> = (0..24u8).map(|i| vec![i; 1 << 20]).collect();
    for m in &messages {
        ws.send(Message::binary(m.clone())).expect("send");
    }
    for m in &messages {
        assert_eq!(ws.read().expect("read"), Message::binary(m.clone()));
    }
}

#[test]
fn https_route_over_tls() {
    let cert = Cert::new("https");
    let server = start_server(&cert, ServerConfig::default());
    let mut stream = tls_connect(&cert, server.addr);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut response = Vec::new();
    match stream.read_to_end(&mut response) {
        Ok(_) => {}
        // The server half-closes after its close_notify; either ending is fine.
        Err(e) if e.kind() == io::ErrorKind::UnexpectedEof => {}
        Err(e) => panic!("reading the response: {e}"),
    }
    let text = String::from_utf8_lossy(&response);
    assert!(text.starts_with("HTTP/1.1 200"), "got {text:?}");
    assert!(text.ends_with("ok\n"), "got {text:?}");
}

#[test]
fn slow_tls_handshake_is_dropped() {
    let cert = Cert::new("slowloris");
    let config = ServerConfig::default().handshake_timeout(Duration::from_millis(300));
    let server = start_server(&cert, config);
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    // The first bytes of a TLS record header (handshake, TLS 1.0), then
    // nothing: a slowloris at the TLS layer.
    sock.write_all(&[0x16, 0x03, 0x01]).expect("write");
    expect_closed(&mut sock);
}

#[test]
fn garbage_instead_of_client_hello_is_closed() {
    let cert = Cert::new("garbage");
    // A handshake timeout far beyond the safety timeout: only the garbage
    // detection can close this connection in time.
    let config = ServerConfig::default().handshake_timeout(Duration::from_secs(600));
    let server = start_server(&cert, config);
    let mut sock = TcpStream::connect(server.addr).expect("connect");
    sock.write_all(b"GET /echo HTTP/1.1\r\nHost: localhost\r\nUpgrade: websocket\r\n\r\n")
        .expect("write");
    expect_closed(&mut sock);
    // The server still serves TLS clients afterwards.
    let mut stream = tls_connect(&cert, server.addr);
    stream
        .write_all(b"GET /health HTTP/1.1\r\nHost: localhost\r\n\r\n")
        .expect("request");
    let mut first = [0u8; 12];
    stream.read_exact(&mut first).expect("response");
    assert_eq!(&first, b"HTTP/1.1 200");
}

#[test]
fn unusable_certificate_files_are_reported() {
    let cert = Cert::new("errors");
    let other = Cert::new("errors-other");
    let missing = cert.dir.join("missing.pem");

    let err = TlsConfig::from_pem_files(&missing, &cert.key).expect_err("missing cert");
    assert!(matches!(err, Error::Tls(_)), "{err:?}");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    let err = TlsConfig::from_pem_files(&cert.cert, &missing).expect_err("missing key");
    assert!(err.to_string().contains("missing.pem"), "{err}");

    // A key file passed as the certificate: no CERTIFICATE block.
    let err = TlsConfig::from_pem_files(&cert.key, &cert.key).expect_err("no certificate");
    assert!(err.to_string().contains("certificate"), "{err}");

    let err = TlsConfig::from_pem_files(&cert.cert, &other.key).expect_err("mismatched key");
    assert!(err.to_string().contains("do not go together"), "{err}");

    assert!(TlsConfig::from_pem_files(&cert.cert, &cert.key).is_ok());
}
