//! [`App`]: Ratchet's `App`: routes to components, origins, and `run`.

use std::fmt;
use std::net::{SocketAddr, ToSocketAddrs};
use std::rc::Rc;

use log::info;
use mio::net::TcpListener;

use crate::component::Component;
use crate::component::Context;
use crate::config::ServerConfig;
use crate::connection::MAX_ROUTES;
use crate::deflate::Compression;
use crate::error::{Error, Result};
use crate::handles::{AppId, Route, Server};
use crate::http::{HttpRequest, HttpResponse};
use crate::reactor::{LoopHandle, Reactor};
use crate::router::{Origins, Router, Target};
use crate::server::{Endpoint, Mounted, PostRoute, ServerCore, Setup};
use crate::tls::TlsConfig;

/// A WebSocket application: components on paths, served on one address.
///
/// Ratchet's three lines are one expression:
///
/// ```no_run
/// use pawl::{App, EchoServer};
///
/// App::new("127.0.0.1", 8080)
///     .route("/echo", EchoServer, &["*"])
///     .run()?;
/// # Ok::<(), pawl::Error>(())
/// ```
///
/// To reach a component from outside its callbacks (a timer, a Redis
/// reply, another thread), [`App::mount`] it instead: it returns the
/// route's typed handle.
pub struct App {
    address: Address,
    config: ServerConfig,
    router: Router,
    routes: Vec<Box<dyn Endpoint>>,
    posts: Vec<PostRoute>,
    tls: Option<TlsConfig>,
    id: AppId,
    broker: Option<String>,
}

enum Address {
    HostPort(String, u16),
    Listener(std::net::TcpListener),
}

impl App {
    /// An app that will listen on `host:port` (`"0.0.0.0"` for every
    /// interface, port 0 for any free port).
    pub fn new(host: &str, port: u16) -> App {
        App::with_address(Address::HostPort(host.to_owned(), port))
    }

    /// An app serving an already bound listener (a socket with
    /// `SO_REUSEPORT`, one inherited from a supervisor, a test's port 0).
    pub fn from_listener(listener: std::net::TcpListener) -> App {
        App::with_address(Address::Listener(listener))
    }

    fn with_address(address: Address) -> App {
        App {
            address,
            config: ServerConfig::default(),
            router: Router::default(),
            routes: Vec::new(),
            posts: Vec::new(),
            tls: None,
            id: AppId::next(),
            broker: None,
        }
    }

    /// Sets limits and timeouts (see [`ServerConfig`]).
    pub fn config(mut self, config: ServerConfig) -> Self {
        self.config = config;
        self
    }

    /// Serves `wss://` (and `https://` for [`App::http`] routes) instead of
    /// plain TCP: every connection starts with a TLS handshake, on the loop,
    /// within the handshake timeout.
    pub fn tls(mut self, tls: TlsConfig) -> Self {
        self.tls = Some(tls);
        self
    }

    /// Shares topics with every pawl process whose app uses the same Redis
    /// (`redis://[[user]:password@]host[:port][/db]`): a publish reaches the
    /// subscribers of every node, and a node listens to a topic only while
    /// it has a subscriber to it. Delivery across nodes is at most once;
    /// while Redis is unreachable, publishes reach this node's subscribers
    /// only (the loss is counted in the log). The connection is made, never
    /// blocking, when the app listens.
    pub fn broker(mut self, redis_url: &str) -> Self {
        self.broker = Some(redis_url.to_owned());
        self
    }

    /// Mounts `component` on `path` (exact match, query ignored), accepting
    /// `origins`: `&["*"]` or [`Origins::any`] for any, otherwise hosts or
    /// full origins. A refused origin gets HTTP 403; a plain GET on the path
    /// gets 426.
    pub fn route<C: Component>(
        mut self,
        path: &str,
        component: C,
        origins: impl Into<Origins>,
    ) -> Self {
        self.mount(path, component, origins);
        self
    }

    /// Like [`App::route`], and returns the route's typed handle, through
    /// which timers, sources, Redis replies and other threads reach the
    /// component once the app is listening
    /// ([`LoopHandle::with`](crate::reactor::LoopHandle::with)). An app
    /// holds up to 65,536 WebSocket routes; past that, `mount` logs an
    /// error and the path is not served.
    pub fn mount<C: Component>(
        &mut self,
        path: &str,
        component: C,
        origins: impl Into<Origins>,
    ) -> Route<C> {
        let index = self.routes.len();
        if index >= MAX_ROUTES {
            // A Route that reaches nothing; the path is not served.
            log::error!("{path}: more than {MAX_ROUTES} WebSocket routes on one app; not mounted");
            return Route::new(self.id, u32::MAX);
        }
        let protocols = component
            .subprotocols()
            .iter()
            .map(|p| p.to_string())
            .collect();
        self.routes.push(Box::new(Mounted::new(component, path)));
        self.router.insert(
            path,
            Target::WebSocket {
                component: index,
                origins: origins.into(),
                protocols,
                compression: None,
            },
        );
        Route::new(self.id, index as u32)
    }

    /// Gives the WebSocket route at `path` (mounted before) a
    /// permessage-deflate mode of its own, instead of the server's
    /// [`ServerConfig::compression`]: `Off` for a route whose messages are
    /// already compressed, say, or `Dedicated` for one of small, similar
    /// messages. Logs an error if no WebSocket route is mounted at `path`.
    pub fn route_compression(mut self, path: &str, mode: Compression) -> Self {
        if !self.router.set_compression(path, mode) {
            log::error!("route_compression: no WebSocket route at {path}");
        }
        self
    }

    /// Serves plain HTTP on `path` (a page, a health check). Each response
    /// closes its connection. A handler that panics is logged and answered
    /// with 500.
    pub fn http(
        mut self,
        path: &str,
        handler: impl Fn(&HttpRequest) -> HttpResponse + 'static,
    ) -> Self {
        self.router.insert(path, Target::Http(Rc::new(handler)));
        self
    }

    /// Serves `POST` on `path` with a body: `handler` gets a context on the
    /// whole server (to publish to a topic, send to a connection), the
    /// request and its body, and returns the response. This is how a
    /// program that is not a WebSocket client (a PHP page, a cron job)
    /// pushes to clients.
    ///
    /// The body is read whole before the handler runs. It needs a
    /// `Content-Length` (411 without one; a chunked body is not read), may
    /// be at most [`ServerConfig::max_message_size`] bytes (413 above it),
    /// and must arrive within the handshake timeout counted from the
    /// connection's start (the connection is dropped then). Other methods
    /// get 405; `Expect: 100-continue` is answered. Each response closes
    /// its connection; a handler that panics is logged and answered with
    /// 500. To refuse a request before its body is read (an
    /// `Authorization` that does not match), see [`App::post_checked`].
    ///
    /// ```no_run
    /// use pawl::{App, HttpResponse};
    ///
    /// App::new("127.0.0.1", 8080)
    ///     .post("/publish", |ctx, request, body| {
    ///         let topic = request.query_param("topic").unwrap_or_default().into_owned();
    ///         let reached = ctx.publish(&topic, body);
    ///         HttpResponse::text(200, format!("{reached}\n"))
    ///     })
    ///     .run()?;
    /// # Ok::<(), pawl::Error>(())
    /// ```
    pub fn post(
        self,
        path: &str,
        handler: impl FnMut(&mut Context<'_>, &HttpRequest, &[u8]) -> HttpResponse + 'static,
    ) -> Self {
        self.post_checked(path, |_| None, handler)
    }

    /// Like [`App::post`], with `check` asked about the request head
    /// before any of the body is read or kept: `Some(response)` refuses
    /// the request with it (a 401 for a missing secret costs the server no
    /// buffered body, and curl, which waits for `100 Continue`, sends
    /// none), `None` reads the body and calls `handler`. A check that
    /// panics is logged and answered with 500.
    ///
    /// ```no_run
    /// use pawl::{App, HttpResponse};
    ///
    /// App::new("127.0.0.1", 8080)
    ///     .post_checked(
    ///         "/publish",
    ///         |request| {
    ///             let ok = request.header("authorization") == Some("Bearer s3cret");
    ///             (!ok).then(|| HttpResponse::text(401, "unauthorized\n"))
    ///         },
    ///         |ctx, request, body| {
    ///             let topic = request.query_param("topic").unwrap_or_default().into_owned();
    ///             HttpResponse::text(200, format!("{}\n", ctx.publish(&topic, body)))
    ///         },
    ///     )
    ///     .run()?;
    /// # Ok::<(), pawl::Error>(())
    /// ```
    pub fn post_checked(
        mut self,
        path: &str,
        check: impl FnMut(&HttpRequest) -> Option<HttpResponse> + 'static,
        handler: impl FnMut(&mut Context<'_>, &HttpRequest, &[u8]) -> HttpResponse + 'static,
    ) -> Self {
        let index = self.posts.len();
        self.posts.push(PostRoute {
            check: Box::new(check),
            handle: Box::new(handler),
        });
        self.router.insert(path, Target::Post { handler: index });
        self
    }

    /// Binds and starts serving on the loop, beside whatever else runs on
    /// it; [`Reactor::run`] drives it. The loop owns the server from now on.
    pub fn listen(self, lp: &mut LoopHandle) -> Result<Server> {
        let listener = match self.address {
            Address::HostPort(host, port) => bind(&host, port)?,
            Address::Listener(listener) => {
                listener.set_nonblocking(true)?;
                TcpListener::from_std(listener)
            }
        };
        let routes = self.router.describe();
        // Tests and scripts parse `listening on ADDR:` from this line.
        let over_tls = if self.tls.is_some() {
            " (over TLS)"
        } else {
            ""
        };
        if !self.config.trusted_proxies.is_empty() {
            info!(
                "X-Forwarded-For believed from {}",
                self.config.trusted_proxies
            );
        }
        let tls = self.tls.map(|t| t.rustls);
        let setup = Setup {
            listener,
            router: self.router,
            routes: self.routes,
            posts: self.posts,
            config: self.config,
            tls,
            app: self.id,
            broker: self.broker,
        };
        let server = ServerCore::start(lp, setup)?;
        info!(
            "pawl listening on {}: {routes}{over_tls}",
            server.local_addr()
        );
        Ok(server)
    }

    /// Runs the app on a loop of its own until SIGINT or SIGTERM, then
    /// closes every connection with 1001 and returns.
    pub fn run(self) -> Result<()> {
        let mut reactor = Reactor::new()?;
        reactor.stop_on_signals()?;
        let server = self.listen(&mut reactor)?;
        reactor.run()?;
        server.close_all_now(&mut reactor);
        info!("pawl stopped");
        Ok(())
    }
}

fn bind(host: &str, port: u16) -> Result<TcpListener> {
    let addr: SocketAddr = (host, port)
        .to_socket_addrs()
        .map_err(|e| Error::Config(format!("cannot resolve {host}:{port}: {e}")))?
        .next()
        .ok_or_else(|| Error::Config(format!("{host}:{port} resolves to no address")))?;
    TcpListener::bind(addr).map_err(|e| Error::Config(format!("cannot listen on {addr}: {e}")))
}

impl fmt::Debug for App {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("App")
            .field("routes", &self.router)
            .field("config", &self.config)
            .field("tls", &self.tls.is_some())
            .finish()
    }
}
