//! What the fuzz targets in `fuzz/` (and `benches/deflate.rs`) reach of the
//! library's insides, behind the `fuzzing` cargo feature: nothing here is
//! public API, and each entry point is one small function so that a target
//! can be re-pointed when the code under it changes.
//!
//! The frame decoder needs nothing here: [`crate::frame::Decoder`] is public
//! and sans-IO already.

use std::cell::RefCell;
use std::rc::Rc;

use crate::deflate::Compression;
use crate::deflate::codec::{Deflater, InflateError, Inflater};
use crate::handshake::{self, Outcome, RequestLimits};
use crate::http::HttpResponse;
use crate::router::{Origins, Router, Target};

/// The fixed routes [`handshake`] answers with.
pub mod routes {
    /// A WebSocket route open to any origin, speaking subprotocol `chat`.
    pub const ANY_ORIGIN: &str = "/echo";
    /// A WebSocket route that only `https://good.example` may open.
    pub const ONE_ORIGIN: &str = "/private";
    /// A plain HTTP route answering 200.
    pub const PAGE: &str = "/";
}

/// How [`handshake`] answered.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Handshake {
    /// More bytes are needed; nothing was written.
    Partial,
    /// Upgraded: the 101 was written; `consumed` bytes were the request, and
    /// the connection's request has this path.
    Upgrade {
        /// Bytes of the request head.
        consumed: usize,
        /// The path the component sees.
        path: String,
    },
    /// A complete HTTP response with this status was written.
    Respond {
        /// The status written.
        status: u16,
    },
}

thread_local! {
    static ROUTER: Router = {
        let mut router = Router::default();
        router.insert(
            routes::ANY_ORIGIN,
            Target::WebSocket {
                component: 0,
                origins: Origins::any(),
                protocols: vec!["chat".into()],
                compression: None,
            },
        );
        router.insert(
            routes::ONE_ORIGIN,
            Target::WebSocket {
                component: 1,
                origins: Origins::from_list(&["https://good.example"]),
                protocols: Vec::new(),
                compression: Some(Compression::Off),
            },
        );
        router.insert(
            routes::PAGE,
            Target::Http(Rc::new(|_| HttpResponse::text(200, "page\n"))),
        );
        router
    };
}

/// The server's whole answer to the bytes `input` (received so far on a new
/// connection), over the [`routes`] above, appended to `out`: exactly what a
/// connection does with its first bytes.
pub fn handshake(input: &[u8], max_request: usize, out: &mut Vec<u8>) -> Handshake {
    ROUTER.with(
        |router| match handshake::respond(input, router, limits(max_request), out) {
            Outcome::Partial => Handshake::Partial,
            Outcome::Upgrade {
                consumed, request, ..
            } => Handshake::Upgrade {
                consumed,
                path: request.path().to_owned(),
            },
            Outcome::Respond { status } => Handshake::Respond { status },
            Outcome::PostHead { .. } | Outcome::Post { .. } => {
                unreachable!("the fuzzing router has no POST route")
            }
        },
    )
}

/// The handshake's limits for the fuzzer: the server's, with a 64 KiB body
/// and permessage-deflate negotiated in the shared mode where a route does
/// not say otherwise, so that offers are fuzzed too.
fn limits(max_request: usize) -> RequestLimits {
    RequestLimits {
        max_request,
        max_body: 64 << 10,
        post_admitted: false,
        compression: Compression::Shared,
    }
}

/// Inflates `payload` as a permessage-deflate message from a client
/// (appending the `00 00 ff ff` tail), stopping past `limit` bytes: the
/// inflated bytes, or why not (`"too big"`, `"corrupt"`).
pub fn inflate(payload: &[u8], limit: usize) -> Result<Vec<u8>, &'static str> {
    thread_local! {
        // One decompressor, reset after every message, as the server's
        // shared one is (and so that a run does not allocate one).
        static INFLATER: RefCell<Inflater> = RefCell::new(Inflater::new(15));
    }
    let mut out = Vec::new();
    INFLATER
        .with_borrow_mut(|inflater| inflater.message(payload, limit, &mut out, true))
        .map(|()| out)
        .map_err(|e| match e {
            InflateError::TooBig => "too big",
            InflateError::Corrupt => "corrupt",
        })
}

/// Compresses `payload` as the server does for a message without context
/// takeover, with a window of 2^`window_bits` (9 to 15).
pub fn deflate(payload: &[u8], window_bits: u8) -> Vec<u8> {
    thread_local! {
        // One compressor per window, reset after every message, as the
        // server's shared ones are.
        static DEFLATERS: RefCell<Vec<Option<Deflater>>> = RefCell::new((9..=15).map(|_| None).collect());
    }
    let window_bits = window_bits.clamp(9, 15);
    let mut out = Vec::new();
    DEFLATERS.with_borrow_mut(|deflaters| {
        deflaters[usize::from(window_bits - 9)]
            .get_or_insert_with(|| Deflater::new(window_bits))
            .message(payload, &mut out, true);
    });
    out
}

/// The loop's compression state (shared compressors and dedicated
/// connections' streams), for `benches/deflate.rs`: what a message costs
/// to compress in each mode, and what a dedicated connection's streams
/// cost to make again after they were freed for idleness.
#[derive(Debug, Default)]
pub struct Codecs {
    inner: crate::deflate::codecs::Codecs,
}

impl Codecs {
    /// Registers connection `key` as agreeing to `offer` (a
    /// `Sec-WebSocket-Extensions` value) in `mode`; false if declined.
    pub fn open(&mut self, key: u32, offer: &str, mode: Compression) -> bool {
        match crate::deflate::offer::negotiate([offer.as_bytes()], mode) {
            Some(agreed) => {
                self.inner.open(key, &agreed);
                true
            }
            None => false,
        }
    }

    /// Appends `payload` compressed for connection `key` to `out` (shared
    /// when `key` is not dedicated).
    pub fn deflate(&mut self, key: u32, payload: &[u8], out: &mut Vec<u8>) {
        self.inner.deflate(key, payload, out);
    }

    /// The sweep's step: frees the streams idle since the last call;
    /// returns how many.
    pub fn rest_idle(&mut self) -> usize {
        self.inner.rest_idle()
    }
}
