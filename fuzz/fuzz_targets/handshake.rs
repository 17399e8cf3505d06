//! The upgrade request and the server's whole answer to it, differential
//! against tungstenite's server handshake.
//!
//! For any bytes a client may send first:
//! - the answer is one complete, well-formed HTTP response of the status
//!   reported (a 101 with nothing after it, or a body of its
//!   `Content-Length`), or nothing while the request is incomplete;
//! - pawl and tungstenite agree on "incomplete", and pawl upgrades exactly
//!   when tungstenite would and the request also has the one `Host` header
//!   RFC 6455 §4.2.1 requires, its path is a WebSocket route and its origin
//!   is allowed there, and its `Sec-WebSocket-Key` is one base64 value
//!   (tungstenite's decoder also takes padded chunks run together, such as
//!   `dGhlIHNhbXBsZSBuZQ==5b2j`, which pawl refuses with 400); the two 101s
//!   carry the same accept key, and the request ends at the same byte;
//! - an upgrade request cut short is only ever "incomplete";
//! - the same holds for the upgrade rules without routes
//!   (`pawl::upgrade_response`).

#![no_main]

use libfuzzer_sys::fuzz_target;
use pawl::fuzzing::{self, Handshake, routes};
use tungstenite::handshake::machine::TryParse;
use tungstenite::handshake::server::{Request, create_response};

/// Small, so that the fuzzer reaches the 431 path with short inputs.
const MAX_REQUEST: usize = 1024;

fuzz_target!(|input: &[u8]| {
    let mut out = Vec::new();
    let ours = fuzzing::handshake(input, MAX_REQUEST, &mut out);
    check_response(&ours, &out);

    let theirs = Request::try_parse(input);
    upgrade_alone(input, &theirs);
    match (&ours, &theirs) {
        (Handshake::Partial, Ok(None)) => return,
        (Handshake::Partial, _) => panic!("pawl waits, tungstenite: {theirs:?}"),
        (_, Ok(None)) if input.len() > MAX_REQUEST => return,
        (Handshake::Respond { status: 431 }, _) => {
            assert!(input.len() > MAX_REQUEST, "431 on {} bytes", input.len());
            return;
        }
        (_, Ok(None)) => panic!("tungstenite waits, pawl: {ours:?}"),
        _ => {}
    }
    let accepted = match &theirs {
        Ok(Some((len, request))) => create_response(request).ok().map(|r| (*len, request, r)),
        _ => None,
    };
    match (&ours, accepted) {
        (Handshake::Upgrade { consumed, path }, Some((len, request, response))) => {
            assert_eq!(*consumed, len, "where the request ends");
            assert_eq!(path, request.uri().path(), "the path");
            let hosts = request.headers().get_all("host").iter().count();
            assert_eq!(hosts, 1, "upgraded with {hosts} Host headers");
            let key = |text: &[u8]| {
                let text = String::from_utf8_lossy(text).to_ascii_lowercase();
                let at = text.find("sec-websocket-accept: ").expect("an accept key");
                text[at..].lines().next().map(str::to_owned)
            };
            let theirs = response.headers()["sec-websocket-accept"]
                .to_str()
                .expect("ascii");
            assert_eq!(
                key(&out),
                Some(format!(
                    "sec-websocket-accept: {}",
                    theirs.to_ascii_lowercase()
                ))
            );
            // Cut anywhere before its end, the same request is incomplete.
            for cut in [len - 1, len / 2] {
                let mut out = Vec::new();
                let prefix = fuzzing::handshake(&input[..cut], MAX_REQUEST, &mut out);
                assert_eq!(prefix, Handshake::Partial, "cut at {cut} of {len}");
            }
        }
        (Handshake::Upgrade { .. }, None) => {
            panic!("pawl upgrades, tungstenite refuses: {theirs:?}")
        }
        (Handshake::Respond { status }, Some((_, request, _))) => {
            let hosts = request.headers().get_all("host").iter().count();
            let path = request.uri().path();
            let origin = request.headers().get("origin").map(|o| o.as_bytes());
            let routed = path == routes::ANY_ORIGIN
                || (path == routes::ONE_ORIGIN && origin == Some(b"https://good.example"));
            assert!(
                hosts != 1 || !routed || !one_base64_key(request),
                "tungstenite upgrades, pawl answers {status}"
            );
            if hosts == 1 && routed {
                assert_eq!(*status, 400, "a key of chunks run together");
            }
        }
        (Handshake::Respond { .. }, None) | (Handshake::Partial, _) => {}
    }
});

/// The upgrade rules alone, without routes or size limit
/// (`pawl::upgrade_response`): pawl upgrades exactly when tungstenite does
/// and there is one `Host` header, with tungstenite's path.
fn upgrade_alone(input: &[u8], theirs: &tungstenite::Result<Option<(usize, Request)>>) {
    let mut out = Vec::new();
    let ours = pawl::upgrade_response(input, &mut out);
    let theirs = match theirs {
        Ok(Some((_, request))) if create_response(request).is_ok() => Some(request),
        _ => None,
    };
    match (ours, theirs) {
        (Some(ours), Some(theirs)) => {
            assert_eq!(ours.path(), theirs.uri().path(), "the path");
            let hosts = theirs.headers().get_all("host").iter().count();
            assert_eq!(hosts, 1, "upgraded with {hosts} Host headers");
            assert!(out.starts_with(b"HTTP/1.1 101 "));
        }
        (Some(ours), None) => panic!("pawl upgrades {ours:?}, tungstenite refuses"),
        (None, Some(theirs)) => {
            let hosts = theirs.headers().get_all("host").iter().count();
            assert!(
                hosts != 1 || !one_base64_key(theirs),
                "tungstenite upgrades, pawl refuses"
            );
            assert!(out.is_empty());
        }
        (None, None) => assert!(out.is_empty()),
    }
}

/// The request's key, which tungstenite decoded to 16 bytes, is one base64
/// value: 24 characters with padding only at the end, not chunks run
/// together.
fn one_base64_key(request: &Request) -> bool {
    request
        .headers()
        .get("sec-websocket-key")
        .map(|key| key.as_bytes())
        .is_some_and(|key| key.len() == 24 && !key[..22].contains(&b'='))
}

/// `out` is exactly one response, of the status `outcome` reports.
fn check_response(outcome: &Handshake, out: &[u8]) {
    let status = match outcome {
        Handshake::Partial => {
            assert!(out.is_empty(), "wrote while waiting");
            return;
        }
        Handshake::Upgrade { .. } => 101,
        Handshake::Respond { status } => *status,
    };
    let mut headers = [httparse::EMPTY_HEADER; 16];
    let mut response = httparse::Response::new(&mut headers);
    let head = match response.parse(out) {
        Ok(httparse::Status::Complete(head)) => head,
        other => panic!(
            "not a response ({other:?}): {:?}",
            String::from_utf8_lossy(out)
        ),
    };
    assert_eq!(response.code, Some(status));
    let length = response
        .headers
        .iter()
        .find(|h| h.name.eq_ignore_ascii_case("content-length"))
        .map(|h| {
            std::str::from_utf8(h.value)
                .ok()
                .and_then(|v| v.parse::<usize>().ok())
                .expect("a numeric Content-Length")
        });
    assert_eq!(out.len() - head, length.unwrap_or(0), "body length");
    if status == 101 {
        assert_eq!(length, None);
    }
}
