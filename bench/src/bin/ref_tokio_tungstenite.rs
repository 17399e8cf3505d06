//! Reference server for issue 4's benchmarks: tokio-tungstenite on a
//! current-thread runtime, written the way its own examples are.
//!
//! ```text
//! cargo run --release -p pawl-bench --bin ref_tokio_tungstenite -- --bind 127.0.0.1:9002
//! cargo run --release -p pawl-bench --bin ref_tokio_tungstenite -- --bind 127.0.0.1:9002 --read-buffer 4096
//! ```
//!
//! `/echo` forwards every text and binary message back; `/chat` sends every
//! text message to every `/chat` client, the sender included, through one
//! unbounded channel per client (the pattern of tokio-tungstenite's
//! `server.rs` example). `--read-buffer` sets `WebSocketConfig::read_buffer_size`
//! (default 128 KiB), the figure that dominates idle memory.

use std::cell::RefCell;
use std::net::SocketAddr;
use std::rc::Rc;

use futures_util::{SinkExt, StreamExt, TryStreamExt};
use slab::Slab;
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::mpsc;
use tokio_tungstenite::tungstenite::Message;
use tokio_tungstenite::tungstenite::handshake::server::{ErrorResponse, Request, Response};
use tokio_tungstenite::tungstenite::protocol::WebSocketConfig;

type Peers = Rc<RefCell<Slab<mpsc::UnboundedSender<Message>>>>;

fn main() -> std::io::Result<()> {
    let mut bind: SocketAddr = "127.0.0.1:9002".parse().unwrap();
    let mut config = WebSocketConfig::default();
    let mut args = std::env::args().skip(1);
    while let Some(arg) = args.next() {
        let value = args.next().unwrap_or_else(|| panic!("{arg} needs a value"));
        match arg.as_str() {
            "--bind" => bind = value.parse().expect("--bind: not a socket address"),
            "--read-buffer" => {
                config = config.read_buffer_size(value.parse().expect("--read-buffer: bytes"))
            }
            _ => panic!("unknown argument {arg}; usage: --bind ADDR [--read-buffer BYTES]"),
        }
    }
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()?;
    let local = tokio::task::LocalSet::new();
    local.block_on(&runtime, async move {
        let listener = TcpListener::bind(bind).await?;
        eprintln!(
            "ref_tokio_tungstenite listening on {}",
            listener.local_addr()?
        );
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
            tokio::task::spawn_local(serve(stream, config, peers.clone()));
        }
    })
}

async fn serve(stream: TcpStream, config: WebSocketConfig, peers: Peers) {
    let mut path = String::new();
    // The error type is tungstenite's `Callback` contract, not ours to shrink.
    #[allow(clippy::result_large_err)]
    let callback = |req: &Request, resp: Response| -> Result<Response, ErrorResponse> {
        path = req.uri().path().to_owned();
        Ok(resp)
    };
    let Ok(ws) =
        tokio_tungstenite::accept_hdr_async_with_config(stream, callback, Some(config)).await
    else {
        return;
    };
    let (mut write, read) = ws.split();
    match path.as_str() {
        "/echo" => {
            let _ = read
                .try_filter(|m| std::future::ready(m.is_text() || m.is_binary()))
                .forward(write)
                .await;
        }
        "/chat" => {
            let (tx, mut rx) = mpsc::unbounded_channel();
            let id = peers.borrow_mut().insert(tx);
            let writer = tokio::task::spawn_local(async move {
                while let Some(message) = rx.recv().await {
                    if write.feed(message).await.is_err() {
                        return;
                    }
                    while let Ok(message) = rx.try_recv() {
                        if write.feed(message).await.is_err() {
                            return;
                        }
                    }
                    if write.flush().await.is_err() {
                        return;
                    }
                }
            });
            let _ = read
                .try_for_each(|message| {
                    if message.is_text() {
                        for (_, peer) in peers.borrow().iter() {
                            let _ = peer.send(message.clone());
                        }
                    }
                    std::future::ready(Ok(()))
                })
                .await;
            peers.borrow_mut().remove(id);
            writer.abort();
        }
        _ => {}
    }
}
