//! pawl: a WebSocket server framework on one thread and one hand-written
//! event loop, in the spirit of PHP's Ratchet on ReactPHP.
//!
//! - [`reactor`]: the event loop (mio), usable on its own: sources, timers,
//!   `defer`, a cross-thread [`Handle`](reactor::Handle), signals.
//! - [`redis`]: a non-blocking Redis client and subscriber on that loop.
//! - [`App`] routes paths to [`Component`]s with allowed origins and runs
//!   the RFC 6455 server on the loop.
//! - A [`Component`] gets `on_open`, `on_message`, `on_close`, `on_error`,
//!   `on_drain` and `on_timer`, each with a [`Context`] to send, close and
//!   inspect connections.
//!
//! # Examples
//!
//! The seed's two routes, echo and a broadcast chat, on port 0:
//!
//! ```
//! use std::collections::BTreeSet;
//! use pawl::reactor::Reactor;
//! use pawl::{App, CloseReason, Component, ConnId, Context, EchoServer, Message};
//!
//! #[derive(Default)]
//! struct MyChat {
//!     clients: BTreeSet<ConnId>,
//! }
//!
//! impl Component for MyChat {
//!     fn on_open(&mut self, _: &mut Context<'_>, conn: ConnId) {
//!         self.clients.insert(conn);
//!     }
//!     fn on_message(&mut self, ctx: &mut Context<'_>, _: ConnId, msg: Message<'_>) {
//!         ctx.broadcast(self.clients.iter().copied(), msg);
//!     }
//!     fn on_close(&mut self, _: &mut Context<'_>, conn: ConnId, _: &CloseReason) {
//!         self.clients.remove(&conn);
//!     }
//! }
//!
//! let mut app = App::new("127.0.0.1", 0);
//! app.route("/echo", EchoServer, &["*"]);
//! app.route("/chat", MyChat::default(), &["*"]);
//! let mut reactor = Reactor::new()?;
//! let server = app.listen(&mut reactor)?;
//! assert_ne!(server.local_addr().port(), 0);
//! reactor.turn(Some(std::time::Duration::ZERO))?;
//! # Ok::<(), pawl::Error>(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod app;
mod component;
mod config;
mod connection;
mod context;
mod echo;
mod error;
pub mod frame;
mod handshake;
mod http;
mod proxy;
pub mod reactor;
pub mod redis;
mod router;
mod server;
mod tls;
mod transport;

pub use app::App;
pub use component::{
    CloseReason, Component, ConnId, Message, OwnedMessage, PreparedMessage, SendStatus,
};
pub use config::ServerConfig;
pub use context::Context;
pub use echo::EchoServer;
pub use error::{Error, Limit, Result};
#[doc(hidden)]
pub use handshake::upgrade_only as bench_upgrade;
pub use http::{HttpRequest, HttpResponse};
pub use proxy::TrustedProxies;
pub use router::Origins;
pub use server::{Server, ServerHandle};
pub use tls::TlsConfig;
pub use tungstenite::protocol::WebSocketConfig;
