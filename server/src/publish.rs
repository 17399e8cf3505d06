//! `POST /publish?topic=NAME`: push from outside (a PHP page, a cron job)
//! to a topic's subscribers, on every worker and node, exactly as a
//! client's publish on `/broadcast?topic=NAME` does. Only with
//! `--publish-secret` (or `PAWL_PUBLISH_SECRET`), and only for requests
//! carrying `Authorization: Bearer SECRET`.
//!
//! The body is the message: text for `text/*` and `application/json`
//! (which must then be UTF-8), binary for any other type. The secret and
//! the topic are checked on the request head, before the library reads
//! any of the body (411 without a `Content-Length`, 413 over
//! `--max-message-size`, 405 for other methods).

use log::debug;
use pawl::{App, Context, HttpRequest, HttpResponse, Message};

/// The environment variable that may hold the secret instead of the flag,
/// so that it stays out of `ps`.
pub const SECRET_ENV: &str = "PAWL_PUBLISH_SECRET";

/// Serves `POST /publish` on `app` for requests carrying `secret`.
pub fn route(app: App, secret: String) -> App {
    app.post_checked(
        "/publish",
        move |request| refusal(secret.as_bytes(), request),
        publish,
    )
}

/// Why the head of a request is refused, if it is: no secret, no topic,
/// or one of the chat's.
fn refusal(secret: &[u8], request: &HttpRequest) -> Option<HttpResponse> {
    if !authorized(secret, request.header("authorization")) {
        let response =
            HttpResponse::text(401, "a valid Authorization: Bearer SECRET is required\n");
        return Some(response.with_header("WWW-Authenticate", "Bearer"));
    }
    match topic(request) {
        None => Some(HttpResponse::text(
            400,
            "name a topic: /publish?topic=NAME\n",
        )),
        // The chat's topics carry its own protocol, with ids and a backlog
        // kept beside them: a message put there from outside would be
        // delivered without either (as on /broadcast, they are refused).
        Some(topic) if pawl_chat::is_chat_topic(&topic) => Some(HttpResponse::text(
            403,
            "chat topics are the chat's own: publish to another topic\n",
        )),
        Some(_) => None,
    }
}

fn topic(request: &HttpRequest) -> Option<std::borrow::Cow<'_, str>> {
    request.query_param("topic").filter(|t| !t.is_empty())
}

/// A request whose head passed [`refusal`].
fn publish(ctx: &mut Context<'_>, request: &HttpRequest, body: &[u8]) -> HttpResponse {
    let Some(topic) = topic(request) else {
        return HttpResponse::text(400, "name a topic: /publish?topic=NAME\n");
    };
    let message = if is_text(request.header("content-type")) {
        match std::str::from_utf8(body) {
            Ok(text) => Message::Text(text),
            Err(_) => {
                return HttpResponse::text(400, "a text body must be valid UTF-8\n");
            }
        }
    } else {
        Message::Binary(body)
    };
    let reached = ctx.publish(&topic, message);
    debug!(
        "POST /publish: {} bytes to topic {topic:?}, {reached} subscribers here",
        body.len()
    );
    HttpResponse::new(
        200,
        "application/json",
        format!("{{\"local_subscribers\":{reached}}}\n").into_bytes(),
    )
}

/// True for `text/*` and `application/json`, parameters ignored.
fn is_text(content_type: Option<&str>) -> bool {
    let Some(content_type) = content_type else {
        return false;
    };
    let media = content_type.split(';').next().unwrap_or("").trim();
    media
        .get(..5)
        .is_some_and(|p| p.eq_ignore_ascii_case("text/"))
        || media.eq_ignore_ascii_case("application/json")
}

/// `Authorization: Bearer SECRET`, compared in constant time (in the
/// secret's contents; its length is no secret worth keeping).
fn authorized(secret: &[u8], header: Option<&str>) -> bool {
    let Some((scheme, token)) = header.and_then(|h| h.trim().split_once(' ')) else {
        return false;
    };
    scheme.eq_ignore_ascii_case("bearer") && constant_time_eq(secret, token.trim().as_bytes())
}

/// `a == b`, in a time that depends on their lengths only.
pub(crate) fn constant_time_eq(a: &[u8], b: &[u8]) -> bool {
    if a.len() != b.len() {
        return false;
    }
    let difference = a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y));
    // Keep the compiler from turning the fold into an early exit.
    std::hint::black_box(difference) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bearer_tokens() {
        assert!(authorized(b"s3cret", Some("Bearer s3cret")));
        assert!(authorized(b"s3cret", Some("bearer  s3cret ")));
        assert!(!authorized(b"s3cret", Some("Bearer s3cre")));
        assert!(!authorized(b"s3cret", Some("Bearer s3creT")));
        assert!(!authorized(b"s3cret", Some("Basic s3cret")));
        assert!(!authorized(b"s3cret", Some("s3cret")));
        assert!(!authorized(b"s3cret", None));
    }

    #[test]
    fn text_types() {
        assert!(is_text(Some("text/plain")));
        assert!(is_text(Some("Text/HTML; charset=utf-8")));
        assert!(is_text(Some("application/json")));
        assert!(!is_text(Some("application/octet-stream")));
        assert!(!is_text(Some("application/x-www-form-urlencoded")));
        assert!(!is_text(Some("tex")));
        assert!(!is_text(None));
    }
}
