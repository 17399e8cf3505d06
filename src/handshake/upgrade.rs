//! The upgrade request's head, read straight from the bytes received, and
//! the `101 Switching Protocols` answer.
//!
//! tungstenite's server handshake (`Request::try_parse`, `create_response`,
//! `write_response`) builds an `http::Request` with a `HeaderMap`, then an
//! `http::Response`, to produce about 130 bytes: some twenty allocations per
//! connection, the largest user-space cost of a handshake. This module
//! applies the same rules to httparse's borrowed view with no allocation
//! (the tests below check it against tungstenite on every rule), and keeps
//! tungstenite for the accept key.

use std::borrow::Cow;
use std::fmt;

use crate::deflate::offer::Agreed;

/// tungstenite's limit on the number of request headers.
pub(crate) const MAX_HEADERS: usize = 124;

/// A complete request head, borrowed from the input.
#[derive(Debug)]
pub(crate) struct Head<'h, 'b> {
    /// Bytes of the head, up to and including the blank line.
    pub(crate) len: usize,
    pub(crate) method: &'b str,
    /// The request target as sent: `/path?query`, or an absolute URI.
    pub(crate) target: &'b str,
    /// HTTP minor version: 0 or 1.
    pub(crate) minor_version: u8,
    pub(crate) headers: &'h [httparse::Header<'b>],
    /// The headers the handshake looks at, found in one pass.
    pub(crate) known: Known<'b>,
}

/// The first value of each header the handshake decides on (tungstenite
/// reads the first one too), gathered in one scan over the head.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct Known<'b> {
    pub(crate) upgrade: Option<&'b [u8]>,
    pub(crate) connection: Option<&'b [u8]>,
    pub(crate) version: Option<&'b [u8]>,
    pub(crate) key: Option<&'b [u8]>,
    pub(crate) origin: Option<&'b [u8]>,
    /// How many `Host` headers there were (exactly one is allowed).
    pub(crate) hosts: u8,
}

impl<'b> Known<'b> {
    fn gather(headers: &[httparse::Header<'b>]) -> Known<'b> {
        let mut known = Known::default();
        for h in headers {
            // The length sorts out nearly every other header for one compare.
            let (slot, name) = match h.name.len() {
                4 if h.name.eq_ignore_ascii_case("host") => {
                    known.hosts = known.hosts.saturating_add(1);
                    continue;
                }
                6 => (&mut known.origin, "origin"),
                7 => (&mut known.upgrade, "upgrade"),
                10 => (&mut known.connection, "connection"),
                17 => (&mut known.key, "sec-websocket-key"),
                21 => (&mut known.version, "sec-websocket-version"),
                _ => continue,
            };
            if slot.is_none() && h.name.eq_ignore_ascii_case(name) {
                *slot = Some(h.value);
            }
        }
        known
    }
}

/// Why the head cannot be read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct Malformed(httparse::Error);

impl fmt::Display for Malformed {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "HTTP error: {}", self.0)
    }
}

impl<'h, 'b> Head<'h, 'b> {
    /// Parses the head at the start of `input`; `Ok(None)` until it is
    /// complete.
    pub(crate) fn parse(
        input: &'b [u8],
        headers: &'h mut [httparse::Header<'b>; MAX_HEADERS],
    ) -> Result<Option<Head<'h, 'b>>, Malformed> {
        let mut request = httparse::Request::new(headers);
        let len = match request.parse(input).map_err(Malformed)? {
            httparse::Status::Partial => return Ok(None),
            httparse::Status::Complete(len) => len,
        };
        // httparse fills all three once the head is complete.
        let (Some(method), Some(target), Some(minor_version)) =
            (request.method, request.path, request.version)
        else {
            return Ok(None);
        };
        let headers = request.headers;
        Ok(Some(Head {
            len,
            method,
            target,
            minor_version,
            known: Known::gather(headers),
            headers,
        }))
    }

    /// Every value of header `name`, in order.
    pub(crate) fn headers_named<'s>(
        &'s self,
        name: &'s str,
    ) -> impl Iterator<Item = &'b [u8]> + 's {
        self.headers
            .iter()
            .filter(move |h| h.name.eq_ignore_ascii_case(name))
            .map(|h| h.value)
    }

    /// The path and query the router sees: the target itself in origin form
    /// (`/chat?x=1`, what browsers send), the path part of an absolute URI
    /// (`ws://host/chat`, what a proxy may send). `None` when the target is
    /// neither, which tungstenite refuses too.
    pub(crate) fn path_and_query(&self) -> Option<Cow<'b, str>> {
        if self.target.starts_with('/') {
            // httparse lets through bytes a URI may not hold (a backtick,
            // `{`, `"`, non-UTF-8); http's parser, which tungstenite uses,
            // refuses them. It also drops a `#fragment`, which is then not
            // part of the path either. One small copy per handshake.
            let parsed = tungstenite::http::uri::PathAndQuery::try_from(self.target).ok()?;
            let len = parsed.as_str().len();
            return Some(Cow::Borrowed(&self.target[..len]));
        }
        let uri: tungstenite::http::Uri = self.target.parse().ok()?;
        // `path()`, not the raw path-and-query: an empty path is `/`
        // (`ws://host?x=1` is `/?x=1`), as tungstenite reads it.
        Some(Cow::Owned(match uri.query() {
            Some(query) => format!("{}?{query}", uri.path()),
            None => uri.path().to_owned(),
        }))
    }
}

/// What makes an upgrade request unacceptable, checked in tungstenite's
/// order (`create_response`).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Refusal {
    /// Not `GET`.
    Method,
    /// Not HTTP/1.1 or later.
    Version,
    /// No `Host` header, or more than one (RFC 6455 §4.2.1, RFC 9112 §3.2;
    /// tungstenite does not check this one).
    Host,
    /// `Connection` lacks the `upgrade` token.
    NoConnectionUpgrade,
    /// `Upgrade` is not `websocket`.
    NoUpgradeWebSocket,
    /// `Sec-WebSocket-Version` is not 13.
    WebSocketVersion,
    /// `Sec-WebSocket-Key` is missing.
    NoKey,
    /// `Sec-WebSocket-Key` is not 16 bytes in base64.
    BadKey,
}

impl fmt::Display for Refusal {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(match self {
            Refusal::Method => "method must be GET",
            Refusal::Version => "HTTP version must be 1.1 or higher",
            Refusal::Host => "exactly one \"Host\" header is required",
            Refusal::NoConnectionUpgrade => "no \"Connection: upgrade\" header",
            Refusal::NoUpgradeWebSocket => "no \"Upgrade: websocket\" header",
            Refusal::WebSocketVersion => "no \"Sec-WebSocket-Version: 13\" header",
            Refusal::NoKey => "no \"Sec-WebSocket-Key\" header",
            Refusal::BadKey => "invalid \"Sec-WebSocket-Key\" header",
        })
    }
}

/// Checks the upgrade headers; returns the client's key.
pub(crate) fn check<'b>(head: &Head<'_, 'b>) -> Result<&'b [u8], Refusal> {
    // The server answers 405 before it gets here; `upgrade_response`, which
    // has no router, relies on this check.
    if head.method != "GET" {
        return Err(Refusal::Method);
    }
    if head.minor_version < 1 {
        return Err(Refusal::Version);
    }
    let known = &head.known;
    if known.hosts != 1 {
        return Err(Refusal::Host);
    }
    // tungstenite reads the first `Connection` header as text, which `http`
    // allows to hold only visible ASCII, spaces and tabs: any other byte
    // makes the header unreadable, so absent.
    let connection = known
        .connection
        .filter(|v| v.iter().all(|&b| b == b'\t' || (b' '..=b'~').contains(&b)))
        .and_then(|v| std::str::from_utf8(v).ok());
    if !connection.is_some_and(|v| {
        v.split([' ', ','])
            .any(|t| t.eq_ignore_ascii_case("upgrade"))
    }) {
        return Err(Refusal::NoConnectionUpgrade);
    }
    if !known
        .upgrade
        .is_some_and(|v| v.eq_ignore_ascii_case(b"websocket"))
    {
        return Err(Refusal::NoUpgradeWebSocket);
    }
    if known.version != Some(b"13") {
        return Err(Refusal::WebSocketVersion);
    }
    let key = known.key.ok_or(Refusal::NoKey)?;
    if !is_valid_key(key) {
        return Err(Refusal::BadKey);
    }
    Ok(key)
}

/// True for canonical base64 of exactly 16 bytes: 22 characters, the last
/// of which carries only 2 bits (its low 4 are zero), then `==`, as every
/// browser sends. tungstenite's decoder (data-encoding) also takes padded
/// chunks run together that add up to 16 bytes (`dGhlIHNhbXBsZSBuZQ==5b2j`,
/// found by the handshake fuzz target); that is not one base64 value
/// (RFC 4648 §3.3), and pawl refuses it.
fn is_valid_key(key: &[u8]) -> bool {
    let [body @ .., b'=', b'='] = key else {
        return false;
    };
    let Some((&last, rest)) = body.split_last() else {
        return false;
    };
    body.len() == 22
        && rest.iter().all(|&c| base64_value(c).is_some())
        && base64_value(last).is_some_and(|v| v & 0x0F == 0)
}

fn base64_value(c: u8) -> Option<u8> {
    match c {
        b'A'..=b'Z' => Some(c - b'A'),
        b'a'..=b'z' => Some(c - b'a' + 26),
        b'0'..=b'9' => Some(c - b'0' + 52),
        b'+' => Some(62),
        b'/' => Some(63),
        _ => None,
    }
}

/// Appends the `101` response for `key`, naming the chosen subprotocol if
/// any. No extension is offered back, which declines permessage-deflate.
pub(crate) fn write_switching_protocols(
    out: &mut Vec<u8>,
    key: &[u8],
    protocol: Option<&str>,
    deflate: Option<&Agreed>,
) {
    let accept = tungstenite::handshake::derive_accept_key(key);
    out.reserve(160);
    out.extend_from_slice(
        b"HTTP/1.1 101 Switching Protocols\r\nconnection: Upgrade\r\nupgrade: websocket\r\nsec-websocket-accept: ",
    );
    out.extend_from_slice(accept.as_bytes());
    out.extend_from_slice(b"\r\n");
    if let Some(protocol) = protocol {
        out.extend_from_slice(b"sec-websocket-protocol: ");
        out.extend_from_slice(protocol.as_bytes());
        out.extend_from_slice(b"\r\n");
    }
    if let Some(deflate) = deflate {
        deflate.write_header(out);
    }
    out.extend_from_slice(b"\r\n");
}

#[cfg(test)]
mod tests {
    //! Differential tests: every rule against tungstenite's own handshake.

    use tungstenite::handshake::machine::TryParse;
    use tungstenite::handshake::server::{Request, create_response, write_response};

    use super::*;

    /// tungstenite's verdict on `input`: its 101 response, or None.
    fn tungstenite_101(input: &[u8]) -> Option<Vec<u8>> {
        let (_, request) = Request::try_parse(input).ok()??;
        let response = create_response(&request).ok()?;
        let mut out = Vec::new();
        write_response(&mut out, &response).ok()?;
        Some(out)
    }

    /// Ours on `input`: the 101 response, or None.
    fn ours_101(input: &[u8]) -> Option<Vec<u8>> {
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = Head::parse(input, &mut headers).ok()??;
        if head.method != "GET" || head.path_and_query().is_none() {
            return None;
        }
        let key = check(&head).ok()?;
        let mut out = Vec::new();
        write_switching_protocols(&mut out, key, None, None);
        Some(out)
    }

    const BASE: &str = "GET /chat?room=a HTTP/1.1\r\nHost: h\r\nUpgrade: websocket\r\n\
        Connection: keep-alive, Upgrade\r\nSec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n\
        Sec-WebSocket-Version: 13\r\n\r\n";

    #[track_caller]
    fn agree(input: &str) {
        let theirs = tungstenite_101(input.as_bytes());
        let ours = ours_101(input.as_bytes());
        assert_eq!(
            ours.as_deref().map(String::from_utf8_lossy),
            theirs.as_deref().map(String::from_utf8_lossy),
            "on {input:?}"
        );
    }

    #[test]
    fn agrees_with_tungstenite_on_each_rule() {
        agree(BASE);
        for (from, to) in [
            ("HTTP/1.1", "HTTP/1.0"),
            ("GET", "POST"),
            ("keep-alive, Upgrade", "keep-alive"),
            ("keep-alive, Upgrade", "upgrade"),
            ("keep-alive, Upgrade", "UPGRADE,keep-alive"),
            ("keep-alive, Upgrade", "Upgrades"),
            ("Upgrade: websocket", "Upgrade: WebSocket"),
            ("Upgrade: websocket", "Upgrade: h2c"),
            ("Upgrade: websocket\r\n", ""),
            ("Version: 13", "Version: 8"),
            ("Version: 13", "Version: 13 "),
            ("Version: 13", "Version: 013"),
            ("Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\n", ""),
            ("dGhlIHNhbXBsZSBub25jZQ==", "short"),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZR=="),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ="),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25jZQ=A"),
            ("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBub25j*Q=="),
            ("dGhlIHNhbXBsZSBub25jZQ==", "AAAAAAAAAAAAAAAAAAAAAA=="),
            ("dGhlIHNhbXBsZSBub25jZQ==", "/////////////////////w=="),
            ("/chat?room=a", "ws://example.com/chat?room=a"),
            ("/chat?room=a", "*"),
            (
                "Host: h\r\n",
                "Host: h\r\nsec-websocket-key: AAAAAAAAAAAAAAAAAAAAAA==\r\n",
            ),
        ] {
            agree(&BASE.replace(from, to));
        }
    }

    /// Found by the `handshake` fuzz target: bytes httparse lets through
    /// but tungstenite refuses.
    #[test]
    fn agrees_with_tungstenite_on_uri_and_header_bytes() {
        for (from, to) in [
            ("/chat?room=a", "/ch`at"),
            ("/chat?room=a", "/chat?room=`"),
            ("/chat?room=a", "/{chat}"),
            ("/chat?room=a", "/chat\\"),
            ("/chat?room=a", "/caf\u{e9}"),
            ("/chat?room=a", "/chat#frag"),
            ("keep-alive, Upgrade", "Upgrade, caf\u{e9}"),
            ("keep-alive, Upgrade", "Upgrade,\u{7f}"),
            ("keep-alive, Upgrade", "Upgrade,\tkeep-alive"),
        ] {
            agree(&BASE.replace(from, to));
        }
    }

    /// RFC 6455 §4.2.1: the request must have a `Host` header (and HTTP/1.1
    /// allows only one). tungstenite does not check it; pawl refuses.
    #[test]
    fn host_is_required_once() {
        let refusal = |input: &str| {
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let head = Head::parse(input.as_bytes(), &mut headers)
                .expect("well formed")
                .expect("complete");
            check(&head).err()
        };
        assert_eq!(refusal(BASE), None);
        assert_eq!(
            refusal(&BASE.replace("Host: h\r\n", "")),
            Some(Refusal::Host)
        );
        let twice = BASE.replace("Host: h\r\n", "Host: h\r\nhost: i\r\n");
        assert_eq!(refusal(&twice), Some(Refusal::Host));
    }

    /// Found by the `handshake` fuzz target: tungstenite's base64 decoder
    /// takes padded chunks run together (13 + 3 bytes here); pawl wants one
    /// base64 value, as browsers send.
    #[test]
    fn a_key_of_padded_chunks_run_together_is_refused() {
        let input = BASE.replace("dGhlIHNhbXBsZSBub25jZQ==", "dGhlIHNhbXBsZSBuZQ==5b2j");
        assert!(
            tungstenite_101(input.as_bytes()).is_some(),
            "tungstenite takes it"
        );
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = Head::parse(input.as_bytes(), &mut headers)
            .expect("well formed")
            .expect("complete");
        assert_eq!(check(&head).err(), Some(Refusal::BadKey));
    }

    #[test]
    fn a_fragment_is_not_part_of_the_path() {
        let input = BASE.replace("/chat?room=a", "/chat?room=a#top");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = Head::parse(input.as_bytes(), &mut headers)
            .expect("well formed")
            .expect("complete");
        assert_eq!(head.path_and_query().as_deref(), Some("/chat?room=a"));
    }

    /// Found by the `handshake` fuzz target: an absolute target with an
    /// empty path routed as `""` where tungstenite reads `/`.
    #[test]
    fn an_absolute_target_without_a_path_is_the_root() {
        for (target, want) in [
            ("ws://example.com?x=1", "/?x=1"),
            ("ws://example.com", "/"),
            ("http://example.com/chat?x=1", "/chat?x=1"),
        ] {
            let input = BASE.replace("/chat?room=a", target);
            let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
            let head = Head::parse(input.as_bytes(), &mut headers)
                .expect("well formed")
                .expect("complete");
            assert_eq!(head.path_and_query().as_deref(), Some(want), "{target}");
            let request = Request::try_parse(input.as_bytes())
                .expect("tungstenite parses it")
                .expect("complete")
                .1;
            assert_eq!(
                request.uri().path(),
                want.split('?').next().unwrap_or_default()
            );
        }
    }

    #[test]
    fn agrees_with_tungstenite_on_every_key_ending() {
        // The 22nd character decides whether trailing bits are zero.
        let alphabet = b"ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/=.";
        for &c in alphabet {
            let key = format!("dGhlIHNhbXBsZSBub25jZ{}==", c as char);
            agree(&BASE.replace("dGhlIHNhbXBsZSBub25jZQ==", &key));
        }
    }

    #[test]
    fn too_many_headers_is_malformed_as_in_tungstenite() {
        let many = "X-A: b\r\n".repeat(MAX_HEADERS);
        let input = BASE.replace("Host: h\r\n", &format!("Host: h\r\n{many}"));
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        assert!(Head::parse(input.as_bytes(), &mut headers).is_err());
        assert!(Request::try_parse(input.as_bytes()).is_err());
    }

    #[test]
    fn absolute_targets_route_by_their_path() {
        let input = BASE.replace("/chat?room=a", "ws://example.com/chat?room=a");
        let mut headers = [httparse::EMPTY_HEADER; MAX_HEADERS];
        let head = Head::parse(input.as_bytes(), &mut headers)
            .expect("well formed")
            .expect("complete");
        assert_eq!(head.path_and_query().as_deref(), Some("/chat?room=a"));
    }
}
