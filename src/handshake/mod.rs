//! The HTTP/1.1 upgrade handshake (RFC 6455 §4.2), resumable: the
//! connection hands in every byte received so far, and gets back either
//! "need more", a refusal, a plain HTTP response, or an upgrade.
//!
//! [`upgrade`] reads the request head (httparse) and applies tungstenite's
//! rules for the upgrade headers, without building an `http::Request`;
//! tungstenite derives the `Sec-WebSocket-Accept` key. This module adds
//! routing, origins, subprotocols and the status codes a browser or proxy
//! should see. No extension is negotiated, which is how permessage-deflate
//! is declined: the response simply omits it.

mod upgrade;

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
    },
    /// A complete HTTP response (a refusal or a page) was appended to the
    /// output; close once it is sent.
    Respond { status: u16 },
}

/// Runs the handshake over `input`, appending any response to `out`.
pub(crate) fn respond(
    input: &[u8],
    router: &Router,
    max_request: usize,
    out: &mut Vec<u8>,
) -> Outcome {
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
    if head.method != "GET" {
        let mut response = HttpResponse::text(405, "only GET is served here\n");
        response.headers.push(("Allow".into(), "GET".into()));
        response.write_to(out);
        return Outcome::Respond { status: 405 };
    }
    let Some(target) = head.path_and_query() else {
        return refuse(400, &"bad request: invalid request target", out);
    };
    let http_request = HttpRequest::from_head(&target, head.headers);
    let (component, origins, protocols) = match router.find(http_request.path()) {
        None => return refuse(404, &"no route for this path", out),
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
        }) => (*component, origins, protocols),
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
            upgrade::write_switching_protocols(out, key, protocol);
            Outcome::Upgrade {
                consumed: head.len,
                component,
                request: Box::new(http_request),
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
    upgrade::write_switching_protocols(out, key, None);
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
            },
        );
        router.insert(
            "/",
            Target::Http(Rc::new(|_| HttpResponse::text(200, "page"))),
        );
        router
    }

    const UPGRADE: &str = "GET /echo?x=1 HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n\
        Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\nOrigin: https://good.example\r\n\r\n";

    fn run(input: &str) -> (Outcome, String) {
        let mut out = Vec::new();
        let outcome = respond(input.as_bytes(), &router(), 8192, &mut out);
        (outcome, String::from_utf8(out).expect("ascii response"))
    }

    #[test]
    fn upgrade_answers_101_with_the_rfc_accept_key_and_keeps_trailing_bytes() {
        let input = format!("{UPGRADE}\u{81}");
        let (outcome, out) = run(&input);
        let Outcome::Upgrade {
            consumed,
            component,
            request,
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
    fn oversized_request_gets_431() {
        let (outcome, _) = run(&format!("GET /echo HTTP/1.1\r\nX: {}", "a".repeat(9000)));
        assert!(matches!(outcome, Outcome::Respond { status: 431 }));
    }
}
