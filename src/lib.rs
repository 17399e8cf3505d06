//! pawl: a WebSocket server framework on one thread and one hand-written
//! event loop, in the spirit of PHP's Ratchet on ReactPHP.
//!
//! - [`reactor`]: the event loop (mio), usable on its own: sources, timers,
//!   `defer`, a cross-thread [`Handle`](reactor::Handle), signals. Callbacks
//!   get a [`LoopHandle`](reactor::LoopHandle), which schedules but cannot
//!   turn the loop.
//! - [`redis`]: a non-blocking Redis client and subscriber on that loop.
//! - [`App`] routes paths to [`Component`]s with allowed [`Origins`] and
//!   runs the RFC 6455 server on the loop, which owns it.
//! - A [`Component`] declares its per-connection [`Session`](Component::Session)
//!   and gets `on_open`, `on_message`, `on_close`, `on_error` and
//!   `on_drain`, each with a [`Context`] to send, close, reach sessions and
//!   set timers that come back to it.
//! - [`App::mount`] returns a typed [`Route<C>`] through which any other
//!   event source reaches the component.
//!
//! # Examples
//!
//! The seed's two routes, echo and a broadcast chat:
//!
//! ```no_run
//! use pawl::{App, Component, ConnId, Context, EchoServer, Message};
//!
//! struct MyChat;
//!
//! impl Component for MyChat {
//!     type Session = ();
//!     fn on_open(&mut self, _: &mut Context<'_, Self>, _: ConnId) {}
//!     fn on_message(&mut self, ctx: &mut Context<'_, Self>, _: ConnId, _: &mut (), msg: Message<'_>) {
//!         // Encodes the frame once, queues it on every connection of the route.
//!         ctx.broadcast_route(msg);
//!     }
//! }
//!
//! App::new("0.0.0.0", 8080)
//!     .route("/echo", EchoServer, &["*"])
//!     .route("/chat", MyChat, &["*"])
//!     .run()?;
//! # Ok::<(), pawl::Error>(())
//! ```
//!
//! On a loop of your own, stepped here without blocking:
//!
//! ```
//! use std::time::Duration;
//! use pawl::reactor::Reactor;
//! use pawl::{App, EchoServer};
//!
//! let mut reactor = Reactor::new()?;
//! let server = App::new("127.0.0.1", 0)
//!     .route("/echo", EchoServer, &["*"])
//!     .listen(&mut reactor)?;
//! assert_ne!(server.local_addr().port(), 0);
//! reactor.turn(Some(Duration::ZERO))?;
//! # Ok::<(), pawl::Error>(())
//! ```

#![deny(missing_docs, missing_debug_implementations, rust_2018_idioms)]

mod app;
mod close;
mod component;
mod config;
mod connection;
mod deflate;
mod echo;
mod error;
pub mod frame;
#[cfg(feature = "fuzzing")]
#[doc(hidden)]
pub mod fuzzing;
mod guard;
mod handles;
mod handshake;
mod http;
mod message;
mod proxy;
pub mod reactor;
pub mod redis;
mod router;
mod server;
mod stats;
mod tls;
mod topics;
mod transport;

pub use app::App;
pub use close::{CloseCode, CloseReason, InvalidCloseCode};
pub use component::{Component, Context};
pub use config::ServerConfig;
pub use connection::{ConnId, SendStatus};
pub use deflate::{Compression, DEFAULT_DEDICATED_WINDOW_BITS, InvalidCompression};
pub use echo::EchoServer;
pub use error::{Error, Limit, Result};
pub use handles::{Route, Server, ServerHandle};
pub use handshake::upgrade_response;
pub use http::{HttpRequest, HttpResponse};
pub use message::{Message, OwnedMessage, PreparedMessage};
pub use proxy::TrustedProxies;
pub use router::Origins;
pub use stats::{Closed, RedisStats, Stats};
pub use tls::TlsConfig;
pub use tungstenite::protocol::WebSocketConfig;
