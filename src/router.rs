//! Paths to routes, and the allowed origins of each WebSocket route.

use std::fmt;
use std::rc::Rc;

use crate::deflate::Compression;
use crate::http::{HttpRequest, HttpResponse};

/// Which `Origin` headers a WebSocket route accepts.
///
/// Entries match a browser's `Origin` either whole (`https://example.com`) or
/// by host alone (`example.com`), as Ratchet's `OriginCheck` does.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origins {
    /// Any origin, and requests without one (`["*"]`).
    Any,
    /// Only these; a request without an `Origin` header is refused.
    List(Vec<String>),
}

impl Origins {
    /// Any origin, and requests without one.
    pub fn any() -> Origins {
        Origins::Any
    }

    /// Only these origins (hosts like `example.com` or full origins like
    /// `https://example.com`); `*` among them means any.
    pub fn list<S: AsRef<str>>(origins: impl IntoIterator<Item = S>) -> Origins {
        let list: Vec<S> = origins.into_iter().collect();
        Origins::from_list(&list)
    }

    /// Builds from Ratchet's form: `["*"]` (or any list containing `*`) is
    /// [`Origins::Any`]; an empty list refuses every origin.
    pub fn from_list<S: AsRef<str>>(list: &[S]) -> Origins {
        if list.iter().any(|o| o.as_ref() == "*") {
            Origins::Any
        } else {
            Origins::List(
                list.iter()
                    .map(|o| o.as_ref().to_ascii_lowercase())
                    .collect(),
            )
        }
    }

    /// True if a request with this `Origin` header may upgrade.
    pub fn allows(&self, origin: Option<&str>) -> bool {
        let list = match self {
            Origins::Any => return true,
            Origins::List(list) => list,
        };
        let Some(origin) = origin else {
            return false;
        };
        let origin = origin.trim().to_ascii_lowercase();
        let host = origin_host(&origin);
        list.iter()
            .any(|allowed| *allowed == origin || allowed == host)
    }
}

impl<S: AsRef<str>> From<&[S]> for Origins {
    /// Ratchet's `array('*')` form: see [`Origins::from_list`].
    fn from(list: &[S]) -> Origins {
        Origins::from_list(list)
    }
}

impl<S: AsRef<str>, const N: usize> From<&[S; N]> for Origins {
    /// `&["*"]`, `&["example.com"]`: see [`Origins::from_list`].
    fn from(list: &[S; N]) -> Origins {
        Origins::from_list(list)
    }
}

impl<S: AsRef<str>> From<Vec<S>> for Origins {
    /// See [`Origins::from_list`].
    fn from(list: Vec<S>) -> Origins {
        Origins::from_list(&list)
    }
}

impl From<&Origins> for Origins {
    fn from(origins: &Origins) -> Origins {
        origins.clone()
    }
}

/// `example.com` from `https://example.com:8443`.
fn origin_host(origin: &str) -> &str {
    let rest = origin.split_once("://").map_or(origin, |(_, rest)| rest);
    let authority = rest.split('/').next().unwrap_or(rest);
    if let Some(bracketed) = authority.strip_prefix('[') {
        // IPv6 literal: [::1]:8080
        return bracketed.split(']').next().unwrap_or(bracketed);
    }
    authority
        .rsplit_once(':')
        .map_or(authority, |(host, _)| host)
}

/// A handler for plain HTTP requests (a page, a health check).
pub type HttpHandler = Rc<dyn Fn(&HttpRequest) -> HttpResponse>;

/// What a path leads to.
pub(crate) enum Target {
    /// A WebSocket route: the index of its component, its origins, the
    /// subprotocols it speaks in order of preference, and its compression
    /// mode when it has one of its own (the server's otherwise).
    WebSocket {
        component: usize,
        origins: Origins,
        protocols: Vec<String>,
        compression: Option<Compression>,
    },
    /// A plain HTTP route.
    Http(HttpHandler),
    /// An HTTP route that takes a request body (`POST`): the index of its
    /// handler, which the server keeps (it gets a context on the server,
    /// which this layer does not know).
    Post { handler: usize },
}

/// Exact-path routes, looked up by the request path without its query.
#[derive(Default)]
pub(crate) struct Router {
    routes: Vec<(String, Target)>,
}

impl Router {
    /// Adds or replaces the route for `path`.
    pub(crate) fn insert(&mut self, path: &str, target: Target) {
        match self.routes.iter_mut().find(|(p, _)| p == path) {
            Some(route) => route.1 = target,
            None => self.routes.push((path.to_owned(), target)),
        }
    }

    /// The route for `path`, if any.
    pub(crate) fn find(&self, path: &str) -> Option<&Target> {
        // A handful of routes: a linear scan beats hashing here.
        self.routes.iter().find(|(p, _)| p == path).map(|(_, t)| t)
    }

    /// Gives the WebSocket route at `path` a compression mode of its own;
    /// false if there is no such route.
    pub(crate) fn set_compression(&mut self, path: &str, mode: Compression) -> bool {
        match self.routes.iter_mut().find(|(p, _)| p == path) {
            Some((_, Target::WebSocket { compression, .. })) => {
                *compression = Some(mode);
                true
            }
            _ => false,
        }
    }

    /// The paths of WebSocket routes and HTTP routes, for the startup log.
    pub(crate) fn describe(&self) -> String {
        let names: Vec<String> = self
            .routes
            .iter()
            .map(|(path, target)| match target {
                Target::WebSocket { .. } => format!("ws {path}"),
                Target::Http(_) => format!("http {path}"),
                Target::Post { .. } => format!("post {path}"),
            })
            .collect();
        names.join(", ")
    }
}

impl fmt::Debug for Router {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.describe())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn star_allows_everything_including_no_origin() {
        let any = Origins::from_list(&["*"]);
        assert!(any.allows(Some("https://evil.example")));
        assert!(any.allows(None));
    }

    #[test]
    fn list_matches_whole_origin_or_host_case_insensitively() {
        let list = Origins::from_list(&["example.com", "http://localhost:8080"]);
        assert!(list.allows(Some("https://Example.com")));
        assert!(list.allows(Some("http://example.com:8443")));
        assert!(list.allows(Some("http://localhost:8080")));
        assert!(!list.allows(Some("http://localhost:9090")));
        assert!(!list.allows(Some("https://example.com.evil.net")));
        assert!(!list.allows(None));
        assert!(!Origins::from_list::<&str>(&[]).allows(Some("http://a")));
    }

    #[test]
    fn ipv6_origin_host() {
        assert_eq!(origin_host("http://[::1]:8080"), "::1");
        assert!(Origins::from_list(&["::1"]).allows(Some("http://[::1]:8080")));
    }

    #[test]
    fn lookup_is_exact_and_insert_replaces() {
        let mut router = Router::default();
        let origins = Origins::Any;
        router.insert(
            "/echo",
            Target::WebSocket {
                component: 0,
                origins: origins.clone(),
                protocols: Vec::new(),
                compression: None,
            },
        );
        router.insert(
            "/echo",
            Target::WebSocket {
                component: 1,
                origins,
                protocols: Vec::new(),
                compression: None,
            },
        );
        assert!(matches!(
            router.find("/echo"),
            Some(Target::WebSocket { component: 1, .. })
        ));
        assert!(router.find("/echo/").is_none());
        assert!(router.find("/").is_none());
    }
}
