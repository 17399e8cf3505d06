//! The HTTP side: the upgrade request a connection keeps, and responses for
//! plain HTTP routes and refusals.

use std::borrow::Cow;
use std::fmt::Write as _;

/// The HTTP request a WebSocket connection was upgraded from (Ratchet's
/// `$conn->httpRequest`), or a request to a plain HTTP route.
///
/// Every connection keeps one, so it is stored compactly: one allocation
/// holding the target and the headers. The upgrade mechanics
/// (`Upgrade`, `Connection`, `Sec-WebSocket-Key`, `-Version`, `-Extensions`)
/// are not kept: they are spent once the connection is open.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpRequest {
    /// `target` then `\nname:value` per header, names lowercased. Header
    /// values cannot contain a newline (the parser rejects them).
    text: Box<str>,
    /// Where the path ends in `text`.
    path_len: u32,
    /// Where the target (path and query) ends in `text`.
    target_len: u32,
}

/// Headers that only serve the upgrade itself.
const SPENT_HEADERS: [&str; 5] = [
    "upgrade",
    "connection",
    "sec-websocket-key",
    "sec-websocket-version",
    "sec-websocket-extensions",
];

impl HttpRequest {
    /// Builds a request from its target (`/path?query`) and headers.
    pub fn new(target: &str, headers: impl IntoIterator<Item = (String, String)>) -> HttpRequest {
        let mut builder = Builder::new(target, 0);
        for (name, value) in headers {
            builder.header(&name, &value);
        }
        builder.finish()
    }

    /// Builds a request from a parsed head, in one allocation of the exact
    /// size: the handshake makes one of these per connection.
    pub(crate) fn from_head(target: &str, headers: &[httparse::Header<'_>]) -> HttpRequest {
        let kept = || headers.iter().filter(|h| !is_spent(h.name));
        let size = kept().map(|h| 2 + h.name.len() + h.value.len()).sum();
        let mut builder = Builder::new(target, size);
        for h in kept() {
            // Nearly every value is ASCII: the plain check is the fast path.
            match std::str::from_utf8(h.value) {
                Ok(value) => builder.header(h.name, value),
                Err(_) => builder.header(h.name, &String::from_utf8_lossy(h.value)),
            }
        }
        builder.finish()
    }

    /// The path, without the query: `/chat`.
    pub fn path(&self) -> &str {
        &self.text[..self.path_len as usize]
    }

    /// The query string without `?`, if there is one: `room=lobby`.
    pub fn query(&self) -> Option<&str> {
        self.text
            .get(self.path_len as usize + 1..self.target_len as usize)
    }

    /// The first value of a query parameter, percent-decoded (`+` is a space).
    pub fn query_param(&self, name: &str) -> Option<Cow<'_, str>> {
        self.query()?.split('&').find_map(|pair| {
            let (key, value) = pair.split_once('=').unwrap_or((pair, ""));
            (percent_decode(key) == name).then(|| percent_decode(value))
        })
    }

    /// The first value of a header, by case-insensitive name.
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v)
    }

    /// Every kept header as (lowercased name, value), in order.
    pub fn headers(&self) -> impl Iterator<Item = (&str, &str)> {
        self.text[self.target_len as usize..]
            .split('\n')
            .skip(1)
            .filter_map(|line| line.split_once(':'))
    }
}

fn is_spent(name: &str) -> bool {
    SPENT_HEADERS
        .iter()
        .any(|s| s.len() == name.len() && s.eq_ignore_ascii_case(name))
}

/// Lays out [`HttpRequest::text`].
struct Builder {
    text: String,
    path_len: usize,
    target_len: usize,
}

impl Builder {
    /// Starts with `target`, reserving `headers` more bytes.
    fn new(target: &str, headers: usize) -> Builder {
        let mut text = String::with_capacity(target.len() + headers);
        if target.contains('\n') {
            text.extend(target.chars().filter(|&c| c != '\n'));
        } else {
            text.push_str(target);
        }
        Builder {
            path_len: text.find('?').unwrap_or(text.len()),
            target_len: text.len(),
            text,
        }
    }

    /// Adds a header unless it only served the upgrade.
    fn header(&mut self, name: &str, value: &str) {
        if is_spent(name) {
            return;
        }
        self.text.push('\n');
        let start = self.text.len();
        self.text.push_str(name);
        self.text[start..].make_ascii_lowercase();
        self.text.push(':');
        self.text.push_str(value.trim().trim_matches('\n'));
    }

    fn finish(self) -> HttpRequest {
        HttpRequest {
            path_len: self.path_len as u32,
            target_len: self.target_len as u32,
            text: self.text.into_boxed_str(),
        }
    }
}

fn percent_decode(s: &str) -> Cow<'_, str> {
    if !s.contains(['%', '+']) {
        return Cow::Borrowed(s);
    }
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        match bytes[i] {
            b'+' => out.push(b' '),
            b'%' if i + 2 < bytes.len() && s.is_char_boundary(i + 3) => {
                match u8::from_str_radix(&s[i + 1..i + 3], 16) {
                    Ok(b) => {
                        out.push(b);
                        i += 2;
                    }
                    Err(_) => out.push(b'%'),
                }
            }
            b => out.push(b),
        }
        i += 1;
    }
    Cow::Owned(String::from_utf8_lossy(&out).into_owned())
}

/// A response to a plain HTTP request.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HttpResponse {
    /// Status code.
    pub status: u16,
    /// Extra headers; `Content-Length` and `Connection` are added.
    pub headers: Vec<(String, String)>,
    /// The body.
    pub body: Cow<'static, [u8]>,
}

impl HttpResponse {
    /// A response with a body of the given content type.
    pub fn new(
        status: u16,
        content_type: &str,
        body: impl Into<Cow<'static, [u8]>>,
    ) -> HttpResponse {
        HttpResponse {
            status,
            headers: vec![("Content-Type".into(), content_type.into())],
            body: body.into(),
        }
    }

    /// A plain-text response, the form refusals take.
    pub fn text(status: u16, body: impl Into<String>) -> HttpResponse {
        let body: String = body.into();
        HttpResponse::new(status, "text/plain; charset=utf-8", body.into_bytes())
    }

    /// Adds a header.
    pub fn with_header(mut self, name: &str, value: &str) -> HttpResponse {
        self.headers.push((name.into(), value.into()));
        self
    }

    /// Appends the response to `out`. Every response closes the connection:
    /// pawl is a WebSocket server, not a keep-alive web server.
    pub(crate) fn write_to(&self, out: &mut Vec<u8>) {
        let mut head = String::with_capacity(128);
        // Writing into a String cannot fail.
        let _ = write!(
            head,
            "HTTP/1.1 {} {}\r\n",
            self.status,
            reason_phrase(self.status)
        );
        for (name, value) in &self.headers {
            let _ = write!(head, "{name}: {value}\r\n");
        }
        let _ = write!(
            head,
            "Content-Length: {}\r\nConnection: close\r\n\r\n",
            self.body.len()
        );
        out.extend_from_slice(head.as_bytes());
        out.extend_from_slice(&self.body);
    }
}

fn reason_phrase(status: u16) -> &'static str {
    match status {
        100 => "Continue",
        200 => "OK",
        202 => "Accepted",
        400 => "Bad Request",
        401 => "Unauthorized",
        403 => "Forbidden",
        404 => "Not Found",
        405 => "Method Not Allowed",
        411 => "Length Required",
        413 => "Content Too Large",
        426 => "Upgrade Required",
        431 => "Request Header Fields Too Large",
        500 => "Internal Server Error",
        503 => "Service Unavailable",
        _ => "",
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn path_query_and_params() {
        let req = HttpRequest::new(
            "/chat?room=the%20den&x=1+2&flag",
            vec![("Origin".into(), "http://a".into())],
        );
        assert_eq!(req.path(), "/chat");
        assert_eq!(req.query(), Some("room=the%20den&x=1+2&flag"));
        assert_eq!(req.query_param("room").as_deref(), Some("the den"));
        assert_eq!(req.query_param("x").as_deref(), Some("1 2"));
        assert_eq!(req.query_param("flag").as_deref(), Some(""));
        assert_eq!(req.query_param("nope"), None);
        assert_eq!(req.header("ORIGIN"), Some("http://a"));
        assert_eq!(req.headers().collect::<Vec<_>>(), [("origin", "http://a")]);
        let bare = HttpRequest::new("/echo", Vec::new());
        assert_eq!((bare.path(), bare.query()), ("/echo", None));
    }

    #[test]
    fn upgrade_mechanics_are_not_kept() {
        let req = HttpRequest::new(
            "/echo",
            vec![
                ("Upgrade".into(), "websocket".into()),
                ("Sec-WebSocket-Key".into(), "abc".into()),
                ("Cookie".into(), "a=b:c".into()),
            ],
        );
        assert_eq!(req.headers().collect::<Vec<_>>(), [("cookie", "a=b:c")]);
        assert_eq!(req.header("upgrade"), None);
    }

    #[test]
    fn bad_percent_escapes_are_kept_literally() {
        let req = HttpRequest::new("/?a=%zz&b=%4", Vec::new());
        assert_eq!(req.query_param("a").as_deref(), Some("%zz"));
        assert_eq!(req.query_param("b").as_deref(), Some("%4"));
    }

    #[test]
    fn response_has_length_and_closes() {
        let mut out = Vec::new();
        HttpResponse::text(404, "no such route").write_to(&mut out);
        let text = String::from_utf8(out).expect("ascii");
        assert!(text.starts_with("HTTP/1.1 404 Not Found\r\n"));
        assert!(text.contains("Content-Length: 13\r\n"));
        assert!(text.contains("Connection: close\r\n"));
        assert!(text.ends_with("\r\n\r\nno such route"));
    }
}
