//! Reference server for issue 4's benchmarks: fastwebsockets on a
//! current-thread tokio runtime.
//!
//! ```text
//! cargo run --release -p pawl-bench --bin ref_fastwebsockets -- --bind 127.0.0.1:9003
//! ```
//!
//! The upgrade is parsed with httparse and answered by hand instead of
//! through hyper, so no HTTP stack sits in the figures; everything after the
//! 101 is fastwebsockets. `/echo` writes each text or binary message back
//! (`FragmentCollector`, as in its `echo_server.rs`); `/chat` sends every text
//! message to every `/chat` client, the sender included, through one channel
//! per client feeding the write half of `WebSocket::split`.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use fastwebsockets::{
    FragmentCollector, FragmentCollectorRead, Frame, OpCode, Payload, Role, WebSocket,
    WebSocketError,
};
use slab::Slab;
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::TcpStream;
use tokio::sync::mpsc;

/// What a chat client's writer task sends: a broadcast text, or a control
/// frame the read half is obliged to answer (pong, close).
enum Out {
    Text(Rc<[u8]>),
    Control(OpCode, Vec<u8>),
}

type Peers = Rc<RefCell<Slab<mpsc::UnboundedSender<Out>>>>;

fn main() -> std::io::Result<()> {
    let mut bind: SocketAddr = "127.0.0.1:9003".parse().unwrap();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        match arg.as_str() {
            "--bind" => {
                let value = args.next().expect("--bind needs an address");
                bind = value.parse().expect("--bind: not a socket address");
            }
            _ => panic!("unknown argument {arg}; usage: ref_fastwebsockets --bind ADDR"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = tokio::net::TcpListener::bind(bind).await?;
        eprintln!("ref_fastwebsockets listening on {}", listener.local_addr()?);
        let peers: Peers = Rc::default();
        loop {
            let (stream, _) = match listener.accept().await {
                Ok(accepted) => accepted,
                Err(e) => {
                    eprintln!("accept: {e}");
                    continue;
                }
            };
            let _ = stream.set_nodelay(true);
            let peers = peers.clone();
            tokio::task::spawn_local(async move {
                let _ = serve(stream, peers).await;
            });
        }
    })
}

async fn serve(mut stream: TcpStream, peers: Peers) -> Result<(), WebSocketError> {
    let Some(path) = upgrade(&mut stream).await? else {
        return Ok(());
    };
    let mut ws = WebSocket::after_handshake(stream, Role::Server);
    ws.set_auto_close(true);
    ws.set_auto_pong(true);
    match path.as_str() {
        "/echo" => {
            let mut ws = FragmentCollector::new(ws);
            loop {
                let frame = ws.read_frame().await?;
                match frame.opcode {
                    OpCode::Close => return Ok(()),
                    OpCode::Text | OpCode::Binary => ws.write_frame(frame).await?,
                    _ => {}
                }
            }
        }
        "/chat" => {
            let (read, mut write) = ws.split(|s| s.into_split());
            let mut read = FragmentCollectorRead::new(read);
            let (tx, mut rx) = mpsc::unbounded_channel::<Out>();
            let id = peers.borrow_mut().insert(tx.clone());
            let writer = tokio::task::spawn_local(async move {
                while let Some(out) = rx.recv().await {
                    let frame = match &out {
                        Out::Text(text) => Frame::text(Payload::Borrowed(text)),
                        Out::Control(opcode, payload) => {
                            Frame::new(true, *opcode, None, Payload::Borrowed(payload))
                        }
                    };
                    if write.write_frame(frame).await.is_err() {
                        return;
                    }
                }
            });
            let mut obligated = |frame: Frame<'_>| {
                let _ = tx.send(Out::Control(frame.opcode, frame.payload.to_vec()));
                std::future::ready(Ok::<(), WebSocketError>(()))
            };
            let result = loop {
                let frame = match read.read_frame(&mut obligated).await {
                    Ok(frame) => frame,
                    Err(e) => break Err(e),
                };
                match frame.opcode {
                    OpCode::Close => break Ok(()),
                    OpCode::Text => {
                        let text: Rc<[u8]> = Rc::from(&*frame.payload);
                        for (_, peer) in peers.borrow().iter() {
                            let _ = peer.send(Out::Text(text.clone()));
                        }
                    }
                    _ => {}
                }
            };
            peers.borrow_mut().remove(id);
            drop(tx);
            // Let the writer send the obligated close before the socket goes.
            let _ = writer.await;
            result
        }
        _ => Ok(()),
    }
}

/// Reads the HTTP upgrade request and answers 101; `None` for a request
/// that is not an upgrade to a known path (answered 404). The client sends
/// nothing before the 101, so bytes past the request are not expected.
async fn upgrade(stream: &mut TcpStream) -> Result<Option<String>, WebSocketError> {
    let mut buf = Vec::with_capacity(1024);
    let end = loop {
        if let Some(end) = buf.windows(4).position(|w| w == b"\r\n\r\n") {
            break end + 4;
        }
        if buf.len() > 8192 || stream.read_buf(&mut buf).await? == 0 {
            return Ok(None);
        }
    };
    let mut headers = [httparse::EMPTY_HEADER; 32];
    let mut req = httparse::Request::new(&mut headers);
    let parsed = req.parse(&buf[..end]).is_ok();
    let key = req
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("sec-websocket-key"))
        .map(|h| h.value);
    let path = req.path.unwrap_or_default().to_owned();
    let (true, Some(key), "/echo" | "/chat") = (parsed, key, path.as_str()) else {
        stream
            .write_all(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
            .await?;
        return Ok(None);
    };
    let accept = tungstenite::handshake::derive_accept_key(key);
    let response = format!(
        "HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n\
         Connection: Upgrade\r\nSec-WebSocket-Accept: {accept}\r\n\r\n"
    );
    stream.write_all(response.as_bytes()).await?;
    Ok(Some(path))
}
