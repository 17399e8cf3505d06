//! The HTTP/1.1 upgrade handshake (RFC 6455 §4.2), resumable: the
//! connection hands in every byte received so far, and gets back either
//! "need more", a refusal, a plain HTTP response, or an upgrade.
//!
//! [`upgrade`] reads the request head (httparse) and applies tungstenite's
//! rules for the upgrade headers, without building an `http::Request`;
//! tungstenite derives the `Sec-WebSocket-Accept` key. This module adds
//! routing, origins, subprotocols and the status codes a browser or proxy
//! should see, reads the bounded body of a request to a `POST` route, and
//! negotiates permessage-deflate ([`crate::deflate::offer`]) in the route's
//! compression mode.

mod upgrade;

use std::ops::Range;

use crate::deflate::Compression;
use crate::deflate::offer::{self, Agreed};
use crate::guard;
use crate::http::{HttpRequest, HttpResponse};
use crate::router::{Router, Target};

use upgrade::{Head, MAX_HEADERS, Refusal};

/// What to do with the bytes received so far.
#[derive(Debug)]
pub(crate) enum Outcome {
    /// The request is not complete yet.
    Partial,
    /// Upgrade: the 101 response was appended to the output. `consumed`
    /// bytes were the request; anything after them is already WebSocket data.
    Upgrade {
        consumed: usize,
        component: usize,
        request: Box<HttpRequest>,
        /// permessage-deflate, when it was agreed.
        deflate: Option<Agreed>,
    },
    /// A complete HTTP response (a refusal or a page) was appended to the
    /// output; close once it is sent.
    Respond { status: u16 },
    /// The head of a request to a `POST` route is in, its body is not, and
    /// the route has not admitted it yet: the server asks the route's check
    /// before any of the body is kept. `send_continue`: the client waits
    /// for `100 Continue` before sending the body.
    PostHead {
        handler: usize,
        request: Box<HttpRequest>,
        send_continue: bool,
    },
    /// A complete request to a `POST` route: `input[body]` is its body.
    /// Nothing was appended: the server calls the route's handler (after
    /// its check, if the head did not come alone).
    Post {
        handler: usize,
        request: Box<HttpRequest>,
        body: Range<usize>,
    },
}

/// The limits the handshake holds a request to.
#[derive(Debug, Clone, Copy)]
pub(crate) struct RequestLimits {
    /// The request head (431 above it).
    pub(crate) max_request: usize,
    /// The body of a `POST` (413 above it).
    pub(crate) max_body: usize,
    /// The `POST` route's check has admitted this request's head already:
    /// only the complete body is news.
    pub(crate) post_admitted: bool,
    /// The compression mode of WebSocket routes that have none of their own.
    pub(crate) compression: Compression,
}

#[cfg(test)]
impl RequestLimits {
    fn compression(self, compression: Compression) -> Self {
        RequestLimits {
            compression,
            ..self
        }
    }
}

/// Runs the handshake over `input`, appending any response to `out`.
pub(crate) fn respond(
    input: &[u8],
    router: &Router,
    limits: RequestLimits,
    out: &mut Vec<u8>,
) -> Outcome {
    let max_request = limits.max_request;
    let refuse = |status: u16, why: &dyn std::fmt::Display, out: &mut Vec<u8>| {
        HttpResponse::text(status, format!("{why}\n")).write_to(out);
        Outcome::Respond { status }
    };
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head = match Head::parse(input, &mut headers) {
        // A request that arrived whole in one read is held to the limit too,
        // not only one still growing.
        Ok(Some(head)) if head.len > max_request => {
            return refuse(431, &"request headers too large", out);
        }
        Ok(Some(head)) => head,
        Ok(None) if input.len() > max_request => {
            return refuse(431, &"request headers too large", out);
        }
        Ok(None) => return Outcome::Partial,
        Err(e) => return refuse(400, &format_args!("bad request: {e}"), out),
    };
    let Some(target) = head.path_and_query() else {
        return refuse(400, &"bad request: invalid request target", out);
    };
    let http_request = HttpRequest::from_head(&target, head.headers);
    let (component, origins, protocols, compression) = match router.find(http_request.path()) {
        Some(&Target::Post { handler }) => {
            return post(&head, input, handler, http_request, limits, out);
        }
        None => return refuse(404, &"no route for this path", out),
        _ if head.method != "GET" => return method_not_allowed("GET", out),
        Some(Target::Http(handler)) => {
            let path = http_request.path();
            let what = format_args!("HTTP route {path}");
            let response = guard::call(&what, || handler(&http_request))
                .unwrap_or_else(|_| HttpResponse::text(500, "internal server error\n"));
            response.write_to(out);
            return Outcome::Respond {
                status: response.status,
            };
        }
        Some(Target::WebSocket {
            component,
            origins,
            protocols,
            compression: own,
        }) => (
            *component,
            origins,
            protocols,
            own.unwrap_or(limits.compression),
        ),
    };
    let wants_upgrade = head
        .known
        .upgrade
        .is_some_and(|u| u.eq_ignore_ascii_case(b"websocket"));
    if !wants_upgrade {
        let mut response = HttpResponse::text(
            426,
            "this is a WebSocket endpoint: connect with a WebSocket client\n",
        );
        response
            .headers
            .push(("Upgrade".into(), "websocket".into()));
        response.write_to(out);
        return Outcome::Respond { status: 426 };
    }
    let origin = head.known.origin.map(String::from_utf8_lossy);
    if !origins.allows(origin.as_deref()) {
        return refuse(403, &"origin not allowed", out);
    }
    match upgrade::check(&head) {
        Ok(key) => {
            let protocol = choose_protocol(&head, protocols);
            let deflate =
                offer::negotiate(head.headers_named("sec-websocket-extensions"), compression);
            upgrade::write_switching_protocols(out, key, protocol, deflate.as_ref());
            Outcome::Upgrade {
                consumed: head.len,
                component,
                request: Box::new(http_request),
                deflate,
            }
        }
        Err(Refusal::WebSocketVersion) => {
            let mut response = HttpResponse::text(426, "unsupported WebSocket version\n");
            response
                .headers
                .push(("Sec-WebSocket-Version".into(), "13".into()));
            response.write_to(out);
            Outcome::Respond { status: 426 }
        }
        Err(refusal) => refuse(400, &format_args!("bad upgrade request: {refusal}"), out),
    }
}

fn method_not_allowed(allow: &str, out: &mut Vec<u8>) -> Outcome {
    HttpResponse::text(405, format!("only {allow} is served here\n"))
        .with_header("Allow", allow)
        .write_to(out);
    Outcome::Respond { status: 405 }
}

/// A request to a `POST` route: its body is read whole, up to `max_body`
/// bytes, and only with a `Content-Length` (a chunked body is refused with
/// 411 rather than read without a known end). The deadline is the
/// handshake's: the connection stays in that phase until the body is in.
fn post(
    head: &Head<'_, '_>,
    input: &[u8],
    handler: usize,
    request: HttpRequest,
    limits: RequestLimits,
    out: &mut Vec<u8>,
) -> Outcome {
    let max_body = limits.max_body;
    let refuse = |status: u16, why: &str, out: &mut Vec<u8>| {
        HttpResponse::text(status, format!("{why}\n")).write_to(out);
        Outcome::Respond { status }
    };
    if head.method != "POST" {
        return method_not_allowed("POST", out);
    }
    if head.headers_named("transfer-encoding").next().is_some() {
        return refuse(
            411,
            "send the body with a Content-Length, not Transfer-Encoding",
            out,
        );
    }
    let mut lengths = head.headers_named("content-length");
    let length = match (lengths.next(), lengths.next()) {
        (None, _) => return refuse(411, "a Content-Length is required", out),
        (Some(value), None) => parse_length(value),
        (Some(_), Some(_)) => None,
    };
    let Some(length) = length else {
        return refuse(400, "bad request: invalid Content-Length", out);
    };
    if length > max_body {
        let why = format!("the body is {length} bytes; at most {max_body} are accepted");
        return refuse(413, &why, out);
    }
    let end = head.len + length;
    if input.len() < end {
        if limits.post_admitted {
            return Outcome::Partial;
        }
        // curl and others wait for `100 Continue` before sending a larger
        // body; one that sent some of it already does not.
        let send_continue = input.len() == head.len
            && head
                .headers_named("expect")
                .any(|v| v.eq_ignore_ascii_case(b"100-continue"));
        return Outcome::PostHead {
            handler,
            request: Box::new(request),
            send_continue,
        };
    }
    Outcome::Post {
        handler,
        request: Box::new(request),
        body: head.len..end,
    }
}

/// A `Content-Length` value: decimal digits only (no sign, no spaces
/// inside), and small enough to be a length.
fn parse_length(value: &[u8]) -> Option<usize> {
    let value = value.trim_ascii();
    if value.is_empty() || !value.iter().all(u8::is_ascii_digit) {
        return None;
    }
    std::str::from_utf8(value).ok()?.parse().ok()
}

/// Answers a WebSocket upgrade request without a router, for a program
/// that accepts TCP itself and hands the socket to pawl's rules: reads the
/// request head in `input`, applies RFC 6455's upgrade rules (method,
/// version, `Connection`, `Upgrade`, `Sec-WebSocket-Version: 13`, a key of
/// 16 base64 bytes), appends the `101 Switching Protocols` response to
/// `out` and returns the request. `None` for anything that is not a
/// complete, valid upgrade (nothing is appended then).
///
/// ```
/// let request = b"GET /chat HTTP/1.1\r\nHost: a\r\nUpgrade: websocket\r\n\
///     Connection: Upgrade\r\nSec-WebSocket-Version: 13\r\n\
///     Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\r\n";
/// let mut out = Vec::new();
/// let parsed = pawl::upgrade_response(request, &mut out).expect("a valid upgrade");
/// assert_eq!(parsed.path(), "/chat");
/// assert!(out.starts_with(b"HTTP/1.1 101"));
/// ```
pub fn upgrade_response(input: &[u8], out: &mut Vec<u8>) -> Option<HttpRequest> {
    let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
    let head = Head::parse(input, &mut headers).ok()??;
    let target = head.path_and_query()?;
    let key = upgrade::check(&head).ok()?;
    upgrade::write_switching_protocols(out, key, None, None);
    Some(HttpRequest::from_head(&target, head.headers))
}

/// The first of the route's subprotocols (in its order of preference) that
/// the client offered in `Sec-WebSocket-Protocol`, if any.
fn choose_protocol<'r>(head: &Head<'_, '_>, supported: &'r [String]) -> Option<&'r str> {
    if supported.is_empty() {
        return None;
    }
    let offered = || {
        head.headers_named("sec-websocket-protocol")
            .filter_map(|v| std::str::from_utf8(v).ok())
            .flat_map(|v| v.split(',').map(str::trim))
    };
    supported
        .iter()
        .map(String::as_str)
        .find(|p| offered().any(|o| o == *p))
}

#[cfg(test)]
mod tests {
    use std::rc::Rc;

    use super::*;
    use crate::router::Origins;

    fn router() -> Router {
        let mut router = Router::default();
        router.insert(
            "/echo",
            Target::WebSocket {
                component: 7,
                origins: Origins::from_list(&["good.example"]),
                protocols: vec!["v2.chat".into(), "v1.chat".into()],
                compression: None,
            },
        );
        router.insert(
            "/plain",
            Target::WebSocket {
                component: 8,
                origins: Origins::Any,
                protocols: Vec::new(),
                compression: Some(Compression::Off),
            },
        );
        router.insert(
            "/",
            Target::Http(Rc::new(|_| HttpResponse::text(200, "page"))),
        );
        router.insert("/publish", Target::Post { handler: 3 });
        router
    }

    const UPGRADE: &str = "GET /echo?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://good.example\r\n\r\n";

    const LIMITS: RequestLimits = RequestLimits {
        max_request: 8192,
        max_body: 100,
        post_admitted: false,
        compression: Compression::Off,
    };

    fn run(input: &str) -> (Outcome, String) {
        run_with(input, Compression::Off)
    }

    fn run_with(input: &str, compression: Compression) -> (Outcome, String) {
        let mut out = Vec::new();
        let outcome = respond(
            input.as_bytes(),
            &router(),
            LIMITS.compression(compression),
            &mut out,
        );
        (outcome, String::from_utf8(out).expect("ascii response"))
    }

    #[test]
    fn deflate_is_agreed_in_the_servers_mode_unless_the_route_has_its_own() {
        let offer = UPGRADE.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Extensions: permessage-deflate; client_max_window_bits\r\n\r\n",
        );
        let line = "Sec-WebSocket-Extensions: permessage-deflate; server_no_context_takeover; client_no_context_takeover\r\n";
        let (outcome, out) = run_with(&offer, Compression::Shared);
        assert!(out.contains(line), "{out}");
        assert!(
            out.ends_with("\r\n\r\n") && !out.ends_with("\r\n\r\n\r\n"),
            "{out:?}"
        );
        assert!(matches!(
            outcome,
            Outcome::Upgrade {
                deflate: Some(_),
                ..
            }
        ));
        let (outcome, out) = run_with(&offer, Compression::Off);
        assert!(!out.contains("Extensions"), "{out}");
        assert!(matches!(outcome, Outcome::Upgrade { deflate: None, .. }));
        let (outcome, out) = run_with(&offer.replace("/echo", "/plain"), Compression::Shared);
        assert!(!out.contains("Extensions"), "{out}");
        assert!(matches!(
            outcome,
            Outcome::Upgrade {
                deflate: None,
                component: 8,
                ..
            }
        ));
        // What tungstenite's client makes of the response: a valid 101.
        let (_, out) = run_with(
            &offer.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: v1.chat\r\n\r\n"),
            Compression::Shared,
        );
        let mut headers = [httparse::EMPTY_HEADER; 16];
        let mut response = httparse::Response::new(&mut headers);
        assert!(
            matches!(response.parse(out.as_bytes()), Ok(httparse::Status::Complete(n)) if n == out.len())
        );
        assert_eq!(response.code, Some(101));
    }

    #[test]
    fn upgrade_answers_101_with_the_rfc_accept_key_and_keeps_trailing_bytes() {
        let input = format!("{UPGRADE}\u{81}");
        let (outcome, out) = run(&input);
        let Outcome::Upgrade {
            consumed,
            component,
            request,
            ..
        } = outcome
        else {
            panic!("expected upgrade, got {outcome:?}");
        };
        assert_eq!((consumed, component), (UPGRADE.len(), 7));
        assert_eq!(request.query_param("x").as_deref(), Some("1"));
        assert!(out.starts_with("HTTP/1.1 101"));
        // The example key from RFC 6455 §1.3.
        assert!(out.contains("s3pPLMBiTxaQ9kYGzzhZRbK+xOo="));
        assert!(!out.to_ascii_lowercase().contains("extensions"));
    }

    #[test]
    fn subprotocol_is_the_routes_first_choice_among_those_offered() {
        let offer = UPGRADE.replace(
            "\r\n\r\n",
            "\r\nSec-WebSocket-Protocol: v1.chat, v2.chat\r\n\r\n",
        );
        let (_, out) = run(&offer);
        assert!(out.contains("sec-websocket-protocol: v2.chat\r\n"), "{out}");
        let (_, out) =
            run(&UPGRADE.replace("\r\n\r\n", "\r\nSec-WebSocket-Protocol: mqtt\r\n\r\n"));
        assert!(
            !out.to_ascii_lowercase().contains("sec-websocket-protocol"),
            "{out}"
        );
    }

    #[test]
    fn every_prefix_is_partial() {
        for cut in 0..UPGRADE.len() - 1 {
            assert!(
                matches!(run(&UPGRADE[..cut]).0, Outcome::Partial),
                "cut {cut}"
            );
        }
    }

    #[track_caller]
    fn expect_status(input: &str, status: u16) {
        let (outcome, out) = run(input);
        assert!(
            matches!(outcome, Outcome::Respond { status: s } if s == status),
            "{outcome:?}"
        );
        assert!(out.starts_with(&format!("HTTP/1.1 {status} ")), "{out}");
    }

    #[test]
    fn refusals() {
        expect_status(&UPGRADE.replace("/echo", "/nope"), 404);
        expect_status(&UPGRADE.replace("good.example", "evil.example"), 403);
        expect_status("GET /echo HTTP/1.1\r\nHost: h\r\n\r\n", 426);
        expect_status(&UPGRADE.replace("Version: 13", "Version: 8"), 426);
        expect_status(&UPGRADE.replace("dGhlIHNhbXBsZSBub25jZQ==", "short"), 400);
        expect_status("POST /echo HTTP/1.1\r\n\r\n", 405);
        expect_status("POST /nope HTTP/1.1\r\n\r\n", 404);
        expect_status("\x16\x03\x01garbage\r\n\r\n", 400);
        expect_status("GET / HTTP/1.1\r\n\r\n", 200);
        // RFC 6455 §4.2.1 requires `Host`; found by the `handshake` fuzz
        // target, as were the two below (tungstenite refuses them).
        expect_status(&UPGRADE.replace("Host: h\r\n", ""), 400);
        expect_status(&UPGRADE.replace("/echo?x=1", "/ec`ho"), 400);
        expect_status(
            &UPGRADE.replace("Connection: Upgrade", "Connection: Upgrade, \u{e9}"),
            400,
        );
    }

    /// Found by the `handshake` fuzz target: `upgrade_response` (no
    /// router, so no 405 before the upgrade rules) upgraded any method.
    #[test]
    fn upgrade_response_takes_only_get() {
        for method in ["GEV", "POST", "get"] {
            let request = UPGRADE.replacen("GET", method, 1);
            let mut out = Vec::new();
            assert_eq!(
                upgrade_response(request.as_bytes(), &mut out),
                None,
                "{method}"
            );
            assert!(out.is_empty());
        }
        let mut out = Vec::new();
        assert!(upgrade_response(UPGRADE.as_bytes(), &mut out).is_some());
    }

    #[test]
    fn a_post_body_is_read_whole_within_its_limit() {
        let head = "POST /publish?topic=a HTTP/1.1\r\nHost: h\r\nContent-Length: 5\r\n\r\n";
        let input = format!("{head}hello");
        for cut in 0..head.len() {
            assert!(
                matches!(run(&input[..cut]).0, Outcome::Partial),
                "cut {cut}"
            );
        }
        for cut in head.len()..input.len() {
            // Not admitted yet: the route's check is asked first.
            let (outcome, out) = run(&input[..cut]);
            assert!(
                matches!(
                    outcome,
                    Outcome::PostHead {
                        handler: 3,
                        send_continue: false,
                        ..
                    }
                ),
                "cut {cut}: {outcome:?}"
            );
            assert!(out.is_empty());
            // Admitted: nothing new until the body is whole.
            let admitted = RequestLimits {
                post_admitted: true,
                ..LIMITS
            };
            let mut out = Vec::new();
            let outcome = respond(&input.as_bytes()[..cut], &router(), admitted, &mut out);
            assert!(
                matches!(outcome, Outcome::Partial),
                "cut {cut}: {outcome:?}"
            );
        }
        let (outcome, out) = run(&format!("{input}trailing"));
        let Outcome::Post {
            handler,
            request,
            body,
        } = outcome
        else {
            panic!("expected a post, got {outcome:?}");
        };
        assert_eq!((handler, &input[body]), (3, "hello"));
        assert_eq!(request.query_param("topic").as_deref(), Some("a"));
        assert!(out.is_empty());

        let expecting = head.replace("\r\n\r\n", "\r\nExpect: 100-continue\r\n\r\n");
        let (outcome, _) = run(&expecting);
        assert!(matches!(
            outcome,
            Outcome::PostHead {
                send_continue: true,
                ..
            }
        ));
        let (outcome, _) = run(&format!("{expecting}he"));
        assert!(
            matches!(
                outcome,
                Outcome::PostHead {
                    send_continue: false,
                    ..
                }
            ),
            "the body is coming already"
        );
    }

    #[test]
    fn post_refusals() {
        let post = |headers: &str| format!("POST /publish HTTP/1.1\r\nHost: h\r\n{headers}\r\n");
        expect_status(&post(""), 411);
        expect_status(&post("Transfer-Encoding: chunked\r\n"), 411);
        expect_status(&post("Content-Length: 101\r\n"), 413);
        expect_status(&post("Content-Length: 99999999999999999999999\r\n"), 400);
        expect_status(&post("Content-Length: -1\r\n"), 400);
        expect_status(&post("Content-Length: 1\r\nContent-Length: 1\r\n"), 400);
        expect_status("GET /publish HTTP/1.1\r\nHost: h\r\n\r\n", 405);
        let (_, out) = run("PUT /publish HTTP/1.1\r\nHost: h\r\n\r\n");
        assert!(out.contains("Allow: POST\r\n"), "{out}");
    }

    #[test]
    fn oversized_request_gets_431() {
        let (outcome, _) = run(&format!("GET /echo HTTP/1.1\r\nX: {}", "a".repeat(9000)));
        assert!(matches!(outcome, Outcome::Respond { status: 431 }));
    }
}
