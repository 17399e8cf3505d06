//! The chat's page at `GET /`: HTML, CSS and JavaScript embedded in the
//! binary, served as three plain HTTP routes. No build step, no CDN.

use pawl::{App, HttpResponse};

const HTML: &str = include_str!("page.html");
const CSS: &str = include_str!("page.css");
const JS: &str = include_str!("page.js");

/// Mounts the page on `/` with its stylesheet and script beside it.
pub fn mount(app: App) -> App {
    app.http("/", |_| page(HTML, "text/html; charset=utf-8"))
        .http("/chat.css", |_| page(CSS, "text/css; charset=utf-8"))
        .http("/chat.js", |_| page(JS, "text/javascript; charset=utf-8"))
}

fn page(body: &'static str, content_type: &str) -> HttpResponse {
    HttpResponse::new(200, content_type, body.as_bytes())
        .with_header("Cache-Control", "no-cache")
        .with_header("X-Content-Type-Options", "nosniff")
}
